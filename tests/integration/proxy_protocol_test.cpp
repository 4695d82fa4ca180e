// PROXY protocol on listeners, against real parts: Debian's haproxy in TCP mode in front of
// popbridge (send-proxy-v2 and send-proxy), popbridge in front of the real Dovecot. Clients
// bind distinct loopback sources (Linux routes all of 127/8), so the address haproxy reports
// differs from haproxy's own 127.0.0.1.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/haproxy.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

using namespace std::chrono_literals;

constexpr char kUser[] = "proxied";

bool startsWith(const std::string& text, std::string_view prefix) {
  return text.rfind(prefix, 0) == 0;
}

class ProxyProtocolTest : public ::testing::Test {
 protected:
  // Dovecot believes IMAP ID's x-originating-ip from loopback (login_trusted_networks), so its
  // log's rip= shows the address popbridge forwarded.
  static DovecotFixture& dovecot() {
    static DovecotFixture seeded([] {
      DovecotFixture::Options options;
      options.enablePop3 = false;
      options.users = {{kUser, "proxied-Secret-7"}};
      options.extraConfig = "login_trusted_networks = 127.0.0.0/8 ::1\n";
      return options;
    }());
    static const bool filled = [] {
      seeded.seedMaildir(kUser, {simpleMessage(1, 300), simpleMessage(2, 400)});
      return true;
    }();
    (void)filled;
    return seeded;
  }

  void SetUp() override {
    char pattern[] = "/tmp/popbridge-haproxy-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Listener 0: plain POP3 (STLS-free) behind the balancer; listener 1: implicit TLS behind it.
  std::unique_ptr<PopbridgeProcess> startPopbridge(const std::string& server = "",
                                                   const std::string& trusted = "127.0.0.1/32") {
    PopbridgeProcess::Options options;
    const std::string proxyLines = "proxy_protocol = true\ntrusted_proxies = [\"" + trusted +
                                   "\"]\n"
                                   "proxy_protocol_timeout = \"1s\"\n";
    PopbridgeProcess::Listener plain;
    plain.extra = proxyLines;
    PopbridgeProcess::Listener implicit;
    implicit.tls = "implicit";
    implicit.extra = proxyLines;
    options.listeners = {plain, implicit};
    options.server = server;
    auto popbridge = std::make_unique<PopbridgeProcess>(dovecot(), options);
    popbridge->addSecret(dovecot().user(kUser).password);
    return popbridge;
  }

  // A whole session: login, STAT, RETR, QUIT.
  void fullSession(Pop3TestClient& pop3) {
    ASSERT_TRUE(startsWith(pop3.greeting(), "+OK")) << pop3.greeting();
    ASSERT_TRUE(startsWith(pop3.command(std::string("USER ") + kUser), "+OK"));
    ASSERT_TRUE(startsWith(pop3.command("PASS " + dovecot().user(kUser).password), "+OK"));
    EXPECT_TRUE(startsWith(pop3.command("STAT"), "+OK 2 ")) << "two messages";
    const std::string body = pop3.multiLine("RETR 1");
    EXPECT_GE(body.size(), 300u);
    EXPECT_TRUE(startsWith(pop3.command("QUIT"), "+OK"));
  }

  // The session lines of the log that name `client` as the client address.
  static bool logHasClient(const std::string& log, const std::string& ip, const std::string& what) {
    return std::regex_search(log, std::regex("client=" + ip + ":[0-9]+[^\n]*" + what));
  }

  // A full session from `clientIp` through haproxy with `serverOptions`: popbridge's log and
  // Dovecot's rip= (IMAP ID from popbridge) show the client, never haproxy's 127.0.0.1.
  void expectClientAddressThrough(const std::string& serverOptions, const std::string& clientIp,
                                  const std::string& version) {
    const std::size_t loginsBefore = dovecot().loginRips(kUser, 0).size();
    auto popbridge = startPopbridge();
    Haproxy haproxy(dir_, {{popbridge->port(0), serverOptions}});
    {
      Pop3TestClient pop3(haproxy.port(0), false, "", clientIp);
      fullSession(pop3);
    }
    std::this_thread::sleep_for(200ms);
    const std::string log = popbridge->log();
    const std::string ipPattern = std::regex_replace(clientIp, std::regex("\\."), "\\.");
    EXPECT_TRUE(logHasClient(
        log, ipPattern, "session start on .* via PROXY " + version + " TCP4 from 127\\.0\\.0\\.1"))
        << log;
    EXPECT_TRUE(logHasClient(log, ipPattern, "user=proxied logged in")) << log;
    EXPECT_FALSE(std::regex_search(log, std::regex("client=127\\.0\\.0\\.1:"))) << log;
    const auto rips = dovecot().loginRips(kUser, loginsBefore + 1);
    ASSERT_GT(rips.size(), loginsBefore) << dovecot().logTail();
    EXPECT_EQ(rips.back(), clientIp) << dovecot().logTail();
  }

  std::string dir_;
};

TEST_F(ProxyProtocolTest, SendProxyV2GivesTheClientsAddress) {
  expectClientAddressThrough("send-proxy-v2", "127.0.0.7", "v2");
}

TEST_F(ProxyProtocolTest, SendProxyV1GivesTheClientsAddress) {
  expectClientAddressThrough("send-proxy", "127.0.0.9", "v1");
}

// max_connections_per_ip counts the address from the header, not haproxy's.
TEST_F(ProxyProtocolTest, PerIpLimitAppliesToTheOriginalAddress) {
  auto popbridge = startPopbridge("max_connections_per_ip = 1\n");
  Haproxy haproxy(dir_, {{popbridge->port(0), "send-proxy-v2"}});
  Pop3TestClient first(haproxy.port(0), false, "", "127.0.0.7");
  ASSERT_TRUE(startsWith(first.greeting(), "+OK")) << first.greeting();
  Pop3TestClient second(haproxy.port(0), false, "", "127.0.0.7");
  EXPECT_EQ(second.greeting(), "-ERR [SYS/TEMP] Too many connections, try again later.");
  EXPECT_TRUE(second.closedByPeer());
  // Another address at the same time, through the same haproxy, is served.
  Pop3TestClient other(haproxy.port(0), false, "", "127.0.0.8");
  fullSession(other);
  // The slot is given back when the first session ends (once its client closed too).
  EXPECT_TRUE(startsWith(first.command("QUIT"), "+OK"));
  EXPECT_TRUE(first.closedByPeer());
  first.close();
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    Pop3TestClient again(haproxy.port(0), false, "", "127.0.0.7");
    served = startsWith(again.greeting(), "+OK");
    if (!served) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(served) << popbridge->log();
  EXPECT_NE(popbridge->log().find("too many connections from 127.0.0.7"), std::string::npos)
      << popbridge->log();
}

// Failed logins count against the address from the header: the login throttle names it.
TEST_F(ProxyProtocolTest, LoginThrottleCountsTheOriginalAddress) {
  auto popbridge = startPopbridge();
  Haproxy haproxy(dir_, {{popbridge->port(0), "send-proxy-v2"}});
  {
    Pop3TestClient guesser(haproxy.port(0), false, "", "127.0.0.11");
    for (int i = 0; i < 3; ++i) {
      popbridge->addSecret("wrong-Guess-" + std::to_string(i));
      ASSERT_TRUE(startsWith(guesser.command(std::string("USER ") + kUser), "+OK"));
      EXPECT_TRUE(startsWith(guesser.command("PASS wrong-Guess-" + std::to_string(i)), "-ERR"));
    }
  }
  Pop3TestClient next(haproxy.port(0), false, "", "127.0.0.11");
  ASSERT_TRUE(startsWith(next.command(std::string("USER ") + kUser), "+OK"));
  EXPECT_TRUE(startsWith(next.command("PASS " + dovecot().user(kUser).password), "+OK"));
  const std::string log = popbridge->log();
  EXPECT_NE(log.find("login throttled: 3 failed or abandoned logins from 127.0.0.11"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("logins from 127.0.0.1;"), std::string::npos) << log;
}

// haproxy sending from 127.0.0.3, outside trusted_proxies: closed at once, no greeting.
TEST_F(ProxyProtocolTest, UntrustedSenderIsClosedWithoutGreeting) {
  auto popbridge = startPopbridge();
  Haproxy haproxy(dir_, {{popbridge->port(0), "send-proxy-v2 source 127.0.0.3"}});
  TestConnection connection(haproxy.port(0), 5000, "127.0.0.7");
  EXPECT_TRUE(connection.closedByPeer(5000));
  EXPECT_EQ(connection.bufferedBytes(), 0u) << "no greeting";
  std::this_thread::sleep_for(200ms);
  EXPECT_NE(popbridge->log().find("refusing connection from 127.0.0.3 on 127.0.0.1:" +
                                  std::to_string(popbridge->port(0)) + ": not in trusted_proxies"),
            std::string::npos)
      << popbridge->log();
}

// A client that talks to the listener directly, without a header: a trusted address (it is
// 127.0.0.1) that sends POP3 is refused at its first byte; one that sends nothing, at the
// timeout. Neither gets a greeting.
TEST_F(ProxyProtocolTest, DirectClientWithoutHeaderIsClosed) {
  auto popbridge = startPopbridge();
  {
    TestConnection connection(popbridge->port(0), 5000);
    connection.sendAll("USER alice\r\n");
    EXPECT_TRUE(connection.closedByPeer(5000));
    EXPECT_EQ(connection.bufferedBytes(), 0u) << "no greeting";
  }
  {
    TestConnection silent(popbridge->port(0), 5000);
    EXPECT_TRUE(silent.closedByPeer(5000)) << "proxy_protocol_timeout = 1s";
    EXPECT_EQ(silent.bufferedBytes(), 0u);
  }
  std::this_thread::sleep_for(200ms);
  const std::string log = popbridge->log();
  EXPECT_NE(log.find("bad PROXY protocol header: not a PROXY protocol header"), std::string::npos)
      << log;
  EXPECT_NE(log.find("bad PROXY protocol header: no PROXY protocol header within 1000 ms"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("session start"), std::string::npos) << log;
}

// A header followed at once by a pipelined command, in one write: nothing after the header is
// lost.
TEST_F(ProxyProtocolTest, BytesAfterTheHeaderReachTheSession) {
  auto popbridge = startPopbridge();
  TestConnection connection(popbridge->port(0), 10000);
  connection.sendAll("PROXY TCP6 2001:db8::7 2001:db8::1 51000 110\r\nCAPA\r\n");
  EXPECT_TRUE(startsWith(connection.readLine("greeting"), "+OK"));
  EXPECT_TRUE(startsWith(connection.readLine("CAPA reply"), "+OK"));
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(logHasClient(popbridge->log(), "\\[2001:db8::7\\]", "session start"))
      << popbridge->log();
}

// SIGTERM while a trusted peer has not sent its header yet: the pending connection is dropped
// with the listeners, and the process stops cleanly.
TEST_F(ProxyProtocolTest, ShutdownWithAHeaderPendingStopsCleanly) {
  auto popbridge = startPopbridge();
  TestConnection pending(popbridge->port(0), 5000);
  pending.sendAll("PROXY TCP4 192.0.2.10 ");
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(popbridge->stop(), 0);
  EXPECT_TRUE(pending.closedByPeer(5000));
  EXPECT_EQ(pending.bufferedBytes(), 0u);
  EXPECT_NE(popbridge->log().find("popbridge stopped"), std::string::npos) << popbridge->log();
}

// v2 LOCAL, a balancer's health check: the connection keeps the balancer's own address.
TEST_F(ProxyProtocolTest, LocalHeaderKeepsThePeersAddress) {
  auto popbridge = startPopbridge();
  TestConnection connection(popbridge->port(0), 10000);
  connection.sendAll(std::string("\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16) + "QUIT\r\n");
  EXPECT_TRUE(startsWith(connection.readLine("greeting"), "+OK"));
  EXPECT_TRUE(startsWith(connection.readLine("QUIT reply"), "+OK"));
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(logHasClient(popbridge->log(), "127\\.0\\.0\\.1",
                           "session start .* via PROXY v2 LOCAL from 127\\.0\\.0\\.1"))
      << popbridge->log();
}

// Implicit TLS behind haproxy in TCP mode: the header first, then the handshake end to end.
TEST_F(ProxyProtocolTest, ImplicitTlsAfterTheHeader) {
  auto popbridge = startPopbridge();
  Haproxy haproxy(dir_, {{popbridge->port(1), "send-proxy-v2"}});
  {
    Pop3TestClient pop3(haproxy.port(0), true, dovecot().pki().caCert, "127.0.0.7");
    EXPECT_TRUE(pop3.connection().tlsActive());
    fullSession(pop3);
  }
  std::this_thread::sleep_for(200ms);
  const std::string log = popbridge->log();
  EXPECT_TRUE(
      logHasClient(log, "127\\.0\\.0\\.7", "session start on .*tls=implicit.* via PROXY v2"))
      << log;
}

}  // namespace
}  // namespace popbridge::test
