// The [metrics] listener of the real binary in front of the real Dovecot: counters move by
// exactly what real POP3 sessions did, the page passes promtool, /healthz and /readyz answer.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

using namespace std::chrono_literals;

// One HTTP/1.1 GET; the whole response (the server closes after it).
std::string httpGet(std::uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    ADD_FAILURE() << "cannot connect to the metrics listener on port " << port;
    return {};
  }
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buffer[16384];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0) out.append(buffer, n);
  ::close(fd);
  return out;
}

std::string bodyOf(const std::string& response) {
  const std::size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? std::string() : response.substr(at + 4);
}

// "name{labels}" -> value, for every sample line of a page.
std::map<std::string, double> parseSamples(const std::string& page) {
  std::map<std::string, double> samples;
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    samples[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return samples;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    messages_ = {simpleMessage(1), dotLinesMessage(), mimeAttachmentMessage(30000)};
    dovecot_.seedMaildir("alice", messages_);
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", password());
    imap.select();
    for (auto uid : imap.uids()) sizes_.push_back(imap.size(uid));
    metricsPort_ = freeLoopbackPort();
    PopbridgeProcess::Options options;
    options.server = "workers = 2\n";
    // The gauges below count upstream connections per session; a pooled one would stay open.
    options.upstream = "pool_idle = \"0s\"\n";
    options.extra = "[metrics]\naddress = \"127.0.0.1:" + std::to_string(metricsPort_) +
                    "\"\nreadyz_cache = \"0s\"\n";
    proxy_ = std::make_unique<PopbridgeProcess>(dovecot_, options);
  }

  std::string password() const { return dovecot_.user("alice").password; }

  std::map<std::string, double> scrape() {
    const std::string response = httpGet(metricsPort_, "/metrics");
    EXPECT_EQ(response.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << response.substr(0, 200);
    lastPage_ = bodyOf(response);
    return parseSamples(lastPage_);
  }

  // Sessions end and upstream connections close asynchronously after the client saw QUIT's
  // answer: wait until the gauges are back to zero.
  std::map<std::string, double> scrapeWhenIdle() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      auto samples = scrape();
      if ((samples[sessionsActive()] == 0 && samples["popbridge_upstream_connections"] == 0) ||
          std::chrono::steady_clock::now() > deadline) {
        return samples;
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  std::string listenerLabel() const {
    return "{listener=\"127.0.0.1:" + std::to_string(proxy_->port()) + "\"}";
  }
  std::string sessionsActive() const { return "popbridge_sessions_active" + listenerLabel(); }

  DovecotFixture dovecot_;
  std::vector<std::string> messages_;
  std::vector<std::uint64_t> sizes_;
  std::uint16_t metricsPort_ = 0;
  std::unique_ptr<PopbridgeProcess> proxy_;
  std::string lastPage_;
};

TEST_F(MetricsTest, CountersMoveByWhatRealSessionsDid) {
  auto before = scrape();
  EXPECT_EQ(before["popbridge_workers"], 2);
  {
    Pop3TestClient pop(proxy_->port());
    ASSERT_EQ(pop.command("USER alice").rfind("+OK", 0), 0u);
    ASSERT_EQ(pop.command("PASS " + password()).rfind("+OK", 0), 0u);
    // While the session is open, it is active and holds one upstream connection.
    auto during = scrape();
    EXPECT_EQ(during[sessionsActive()], 1);
    EXPECT_EQ(during["popbridge_upstream_connections"], 1);
    pop.multiLine("RETR 1");
    pop.multiLine("RETR 3");
    EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("DELE 2").rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
    EXPECT_TRUE(pop.closedByPeer());
  }
  {
    Pop3TestClient pop(proxy_->port());
    ASSERT_EQ(pop.command("USER alice").rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("PASS wrong-password").rfind("-ERR [AUTH]", 0), 0u);
    EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  }
  auto after = scrapeWhenIdle();
  auto delta = [&](const std::string& name) { return after[name] - before[name]; };
  EXPECT_EQ(delta("popbridge_sessions_total" + listenerLabel()), 2);
  EXPECT_EQ(after[sessionsActive()], 0);
  EXPECT_EQ(after["popbridge_upstream_connections"], 0);
  EXPECT_EQ(delta("popbridge_sessions_ended_total{reason=\"quit\"}"), 2);
  EXPECT_EQ(delta("popbridge_logins_total{result=\"ok\"}"), 1);
  EXPECT_EQ(delta("popbridge_logins_total{result=\"auth\"}"), 1);
  EXPECT_EQ(delta("popbridge_messages_retrieved_total{command=\"retr\"}"), 2);
  EXPECT_EQ(delta("popbridge_messages_retrieved_total{command=\"top\"}"), 0);
  EXPECT_EQ(delta("popbridge_messages_deleted_total{policy=\"flag\"}"), 2);
  EXPECT_EQ(delta("popbridge_deletions_refused_total"), 0);
  EXPECT_EQ(delta("popbridge_uidvalidity_changes_total"), 0);
  EXPECT_GE(delta("popbridge_client_bytes_total{direction=\"out\"}"),
            static_cast<double>(sizes_[0] + sizes_[2]));
  EXPECT_GE(delta("popbridge_upstream_bytes_total{direction=\"in\"}"),
            static_cast<double>(sizes_[0] + sizes_[2]));
  EXPECT_GT(delta("popbridge_client_bytes_total{direction=\"in\"}"), 0);
  EXPECT_GT(delta("popbridge_upstream_bytes_total{direction=\"out\"}"), 0);
  // Two logins went upstream (one refused there); one reached a snapshot.
  EXPECT_EQ(delta("popbridge_upstream_connect_duration_seconds_count"), 2);
  EXPECT_EQ(delta("popbridge_login_duration_seconds_count"), 2);
  EXPECT_EQ(delta("popbridge_snapshot_duration_seconds_count"), 1);
  EXPECT_EQ(delta("popbridge_connections_refused_total{reason=\"total\"}"), 0);

  // The real page passes Prometheus's own linter.
  const std::string file = ::testing::TempDir() + "/popbridge-metrics-scrape.txt";
  std::ofstream(file) << lastPage_;
  FILE* pipe = popen(("promtool check metrics < " + file + " 2>&1").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "promtool check metrics (Debian package prometheus): " << output;
}

TEST_F(MetricsTest, HealthzAndReadyzAnswer) {
  const std::string health = httpGet(metricsPort_, "/healthz");
  EXPECT_EQ(health.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << health;
  EXPECT_EQ(bodyOf(health), "ok\n");
  const std::string ready = httpGet(metricsPort_, "/readyz");
  EXPECT_EQ(ready.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ready;
  EXPECT_EQ(httpGet(metricsPort_, "/nothing").rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
  EXPECT_NE(proxy_->log().find("metrics on http://127.0.0.1:" + std::to_string(metricsPort_)),
            std::string::npos);
}

TEST_F(MetricsTest, TlsHandshakesAreCountedByVersionAndFailuresBySide) {
  const std::uint16_t port = freeLoopbackPort();
  PopbridgeProcess::Options options;
  options.listeners[0].tls = "implicit";
  options.upstreamTls = "implicit";
  options.extra = "[metrics]\naddress = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  PopbridgeProcess proxy(dovecot_, options);
  {
    Pop3TestClient pop(proxy.port(), true, dovecot_.pki().caCert);
    ASSERT_EQ(pop.command("USER alice").rfind("+OK", 0), 0u);
    ASSERT_EQ(pop.command("PASS " + password()).rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  }
  {
    // Not TLS at all: the handshake fails on the client side.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(proxy.port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    const std::string junk = "USER alice\r\n\r\n\r\n";
    ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    char buffer[256];
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
    ::close(fd);
  }
  std::map<std::string, double> samples;
  for (int i = 0; i < 100; ++i) {
    samples = parseSamples(bodyOf(httpGet(port, "/metrics")));
    // A worker counts the failure and the session's end one after the other; a scrape between
    // them sees one only.
    if (samples["popbridge_tls_handshake_failures_total{side=\"client\"}"] == 1 &&
        samples["popbridge_sessions_ended_total{reason=\"tls_error\"}"] == 1 &&
        samples["popbridge_sessions_ended_total{reason=\"quit\"}"] == 1) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(samples["popbridge_tls_handshakes_total{side=\"client\",version=\"TLSv1.3\"}"], 1);
  EXPECT_EQ(samples["popbridge_tls_handshakes_total{side=\"upstream\",version=\"TLSv1.3\"}"], 1);
  EXPECT_EQ(samples["popbridge_tls_handshake_failures_total{side=\"client\"}"], 1);
  EXPECT_EQ(samples["popbridge_tls_handshake_failures_total{side=\"upstream\"}"], 0);
  EXPECT_EQ(samples["popbridge_sessions_ended_total{reason=\"tls_error\"}"], 1);
  EXPECT_EQ(samples["popbridge_sessions_ended_total{reason=\"quit\"}"], 1);
}

}  // namespace
}  // namespace popbridge::test
