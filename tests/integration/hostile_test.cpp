// Hostile or broken clients: each gets a clear -ERR or a clean close, the
// proxy never crashes, keeps serving another client meanwhile, and its memory
// stays bounded. Also the end-to-end check that no password reaches the log.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "config/password.h"
#include "protocol/base64.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kUser[] = "hostile";
constexpr std::size_t kMessages = 5;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool startsWith(const std::string& text, std::string_view prefix) {
  return text.rfind(prefix, 0) == 0;
}

std::string randomBytes(std::size_t count, unsigned seed) {
  std::mt19937 random(seed);
  std::string bytes(count, '\0');
  for (char& c : bytes) c = static_cast<char>(random() & 0xff);
  return bytes;
}

// A raw TCP connection that never sends anything.
class SilentSocket {
 public:
  explicit SilentSocket(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
  }
  ~SilentSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  SilentSocket(const SilentSocket&) = delete;
  SilentSocket& operator=(const SilentSocket&) = delete;
  // Whether the greeting (or anything) has arrived within the timeout.
  bool readable(int timeoutMs) const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, timeoutMs) == 1;
  }

 private:
  int fd_ = -1;
};

class HostileTest : public ::testing::Test {
 protected:
  static DovecotFixture& dovecot() {
    DovecotFixture& d = DovecotFixture::shared();
    static bool seeded = false;
    if (!seeded) {
      // A user of its own, so sharing the instance with other tests in one process is safe.
      seeded = true;
      d.addUser(kUser, "hostile-Secret-5");
      std::vector<std::string> messages;
      for (std::size_t i = 0; i < kMessages; ++i) {
        messages.push_back(simpleMessage(static_cast<int>(i) + 1, 500 + 100 * i));
      }
      d.seedMaildir(kUser, messages);
    }
    return d;
  }
  static std::string password() { return dovecot().user(kUser).password; }

  PopbridgeProcess* start(PopbridgeProcess::Options options = {}) {
    proxy_ = std::make_unique<PopbridgeProcess>(dovecot(), options);
    baseline_ = memoryOf(proxy_->pid());
    return proxy_.get();
  }

  // Never crashed: still there at the end, and it exits cleanly on SIGTERM.
  void TearDown() override {
    if (!proxy_) return;
    EXPECT_GT(memoryOf(proxy_->pid()).rssKiB, 0) << "popbridge is gone";
    EXPECT_EQ(proxy_->stop(), 0) << "popbridge did not exit cleanly:\n" << proxy_->log();
  }

  static void login(Pop3TestClient& pop) {
    ASSERT_TRUE(startsWith(pop.command(std::string("USER ") + kUser), "+OK"));
    std::string reply = pop.command("PASS " + password());
    ASSERT_TRUE(startsWith(reply, "+OK")) << reply;
  }

  // A well-behaved client gets full service, quickly, while the hostile one is connected.
  static void expectAnotherClientServed(std::uint16_t port) {
    auto start = Clock::now();
    Pop3TestClient pop(port);
    pop.setTimeout(5000);
    login(pop);
    EXPECT_TRUE(startsWith(pop.command("STAT"), "+OK " + std::to_string(kMessages) + " "));
    EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
    // The client's 5 s timeout is the liveness check; the time is reported, not asserted.
    std::printf("[ figures ] another client served in %.3f s\n", secondsSince(start));
  }

  void expectMemoryBounded(const PopbridgeProcess& proxy, long growthKiB, const char* what) {
    MemoryUsage now = memoryOf(proxy.pid());
    ASSERT_GT(now.rssKiB, 0) << "popbridge is gone (crashed?)";
    std::printf("[ figures ] %s: RSS %ld KiB (start %ld KiB), peak %ld KiB\n", what, now.rssKiB,
                baseline_.rssKiB, now.peakKiB);
    EXPECT_LT(now.peakKiB - baseline_.rssKiB, growthKiB) << what;
  }

  MemoryUsage baseline_;
  std::unique_ptr<PopbridgeProcess> proxy_;
};

TEST_F(HostileTest, OneMegabyteLineWithoutLineFeed) {
  PopbridgeProcess* proxy = start();
  Pop3TestClient pop(proxy->port());
  // The proxy must keep reading (and dropping) while the line goes on, or this write blocks.
  pop.sendRaw(std::string(1024 * 1024, 'A'));
  EXPECT_EQ(pop.readLine(), "-ERR Command line too long");
  expectAnotherClientServed(proxy->port());
  // The rest of the line up to its LF is dropped; the session then works again.
  pop.sendRaw("AAAA\r\n");
  EXPECT_NO_THROW(pop.multiLine("CAPA"));
  expectMemoryBounded(*proxy, 16 * 1024, "after a 1 MB line");
}

TEST_F(HostileTest, NulBytesAndBinaryGarbageEndInErrAndDisconnect) {
  PopbridgeProcess* proxy = start();
  Pop3TestClient pop(proxy->port());
  EXPECT_EQ(pop.command(std::string("USER bob\0x", 10)).rfind("-ERR", 0), 0u);
  EXPECT_EQ(pop.command(std::string("\0\0\0\0", 4)).rfind("-ERR", 0), 0u);
  pop.sendRaw(randomBytes(16384, 7));
  // Every line that arrives is an -ERR, and the session ends at max_bad_commands (10).
  ASSERT_TRUE(pop.closedByPeer(5000)) << "the garbage did not end the session";
  TestConnection& connection = pop.connection();
  std::string replies = connection.readExact(connection.bufferedBytes(), "the replies");
  std::size_t lines = 0;
  for (std::size_t pos = 0; pos < replies.size();) {
    std::size_t end = replies.find("\r\n", pos);
    ASSERT_NE(end, std::string::npos) << "a reply without CRLF";
    EXPECT_TRUE(startsWith(replies.substr(pos, end - pos), "-ERR")) << replies.substr(pos, end);
    pos = end + 2;
    ++lines;
  }
  EXPECT_GE(lines, 1u);
  EXPECT_NE(replies.find("-ERR Too many bad commands, closing connection."), std::string::npos);
  expectAnotherClientServed(proxy->port());
  expectMemoryBounded(*proxy, 16 * 1024, "after binary garbage");
}

TEST_F(HostileTest, TenThousandPipelinedCommandsAreAnsweredInOrder) {
  PopbridgeProcess* proxy = start();
  Pop3TestClient pop(proxy->port());
  login(pop);
  std::string list = pop.multiLine("LIST");
  std::vector<std::string> expected;
  for (std::size_t pos = 0; pos < list.size();) {
    std::size_t end = list.find("\r\n", pos);
    expected.push_back("+OK " + list.substr(pos, end - pos));
    pos = end + 2;
  }
  ASSERT_EQ(expected.size(), kMessages);
  // Each reply names its message, so any reordering or loss shows.
  constexpr int kCommands = 10000;
  std::string batch;
  for (int i = 0; i < kCommands; ++i) batch += "LIST " + std::to_string(i % kMessages + 1) + "\r\n";
  auto begin = Clock::now();
  pop.sendRaw(batch);
  for (int i = 0; i < kCommands; ++i) {
    std::string reply = pop.readLine();
    ASSERT_EQ(reply, expected[i % kMessages]) << "reply " << i;
  }
  double elapsed = secondsSince(begin);
  std::printf("[ figures ] %d pipelined commands answered in %.3f s\n", kCommands, elapsed);
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  expectAnotherClientServed(proxy->port());
  expectMemoryBounded(*proxy, 16 * 1024, "after 10,000 pipelined commands");
}

TEST_F(HostileTest, CommandsInTheWrongState) {
  PopbridgeProcess::Options options;
  options.listeners[0].tls = "starttls";
  options.listeners[0].allowPlaintextAuth = false;
  options.listeners.push_back(PopbridgeProcess::Listener{});  // plaintext, no STLS
  options.server = "max_bad_commands = 100\n";
  PopbridgeProcess* proxy = start(options);
  const std::string ca = dovecot().pki().caCert;

  Pop3TestClient pop(proxy->port(0));
  for (const char* command :
       {"RETR 1", "STAT", "LIST", "UIDL", "DELE 1", "RSET", "NOOP", "TOP 1 0", "LAST"}) {
    EXPECT_TRUE(startsWith(pop.command(command), "-ERR")) << command;
  }
  EXPECT_TRUE(startsWith(pop.command("PASS nothing-before-user"), "-ERR"));
  EXPECT_TRUE(startsWith(pop.command("USER bob"), "-ERR [AUTH]")) << "USER in the clear";
  EXPECT_TRUE(startsWith(pop.command("STLS"), "+OK"));
  pop.startTls(ca);
  EXPECT_EQ(pop.command("STLS"), "-ERR TLS is already active.");
  login(pop);
  EXPECT_TRUE(startsWith(pop.command("STLS"), "-ERR"));
  EXPECT_TRUE(startsWith(pop.command("USER bob"), "-ERR"));
  EXPECT_TRUE(startsWith(pop.command("PASS x"), "-ERR"));
  EXPECT_TRUE(startsWith(pop.command("AUTH PLAIN"), "-ERR"));
  EXPECT_TRUE(startsWith(pop.command("APOP bob 0123456789abcdef0123456789abcdef"), "-ERR"));
  EXPECT_TRUE(startsWith(pop.command("STAT"), "+OK " + std::to_string(kMessages) + " "));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));

  Pop3TestClient plain(proxy->port(1));
  EXPECT_EQ(plain.command("STLS"), "-ERR STLS is not available on this listener.");
  plain.command("QUIT");
  expectAnotherClientServed(proxy->port(1));
}

TEST_F(HostileTest, OverflowingNumbersAreRefusedAndDeleteNothing) {
  PopbridgeProcess::Options options;
  options.server = "max_bad_commands = 100\n";
  PopbridgeProcess* proxy = start(options);
  Pop3TestClient pop(proxy->port());
  login(pop);
  for (const char* command :
       {"RETR 4294967296", "RETR 4294967297", "RETR 99999999999999999999999999", "DELE 4294967297",
        "DELE 18446744073709551617", "LIST 4294967296", "UIDL 4294967297", "TOP 4294967297 1",
        "TOP 1 18446744073709551616", "TOP 1 -1", "RETR -1", "RETR 0", "DELE 0", "RETR 1x",
        "RETR +1", "RETR 0x1", "DELE 6"}) {
    EXPECT_TRUE(startsWith(pop.command(command), "-ERR")) << command;
  }
  // Nothing wrapped around onto a real message.
  EXPECT_TRUE(startsWith(pop.command("STAT"), "+OK " + std::to_string(kMessages) + " "));
  // fetchmail's "whole message" TOP count still works.
  std::string status;
  EXPECT_FALSE(pop.multiLine("TOP 1 99999999", &status).empty());
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  expectAnotherClientServed(proxy->port());
}

TEST_F(HostileTest, MalformedAndCancelledSasl) {
  PopbridgeProcess::Options options;
  options.server = "max_bad_commands = 100\n";
  PopbridgeProcess* proxy = start(options);
  Pop3TestClient pop(proxy->port());
  EXPECT_TRUE(startsWith(pop.command("AUTH PLAIN !!!not-base64!!!"), "-ERR"));
  EXPECT_EQ(pop.command("AUTH PLAIN"), "+ ");
  EXPECT_TRUE(startsWith(pop.command("%%%%"), "-ERR"));
  EXPECT_EQ(pop.command("AUTH PLAIN"), "+ ");
  EXPECT_TRUE(startsWith(pop.command(protocol::base64Encode("no separators at all")), "-ERR"));
  EXPECT_EQ(pop.command("AUTH PLAIN"), "+ ");
  EXPECT_TRUE(startsWith(pop.command("QUJD="), "-ERR")) << "bad padding";
  EXPECT_EQ(pop.command("AUTH PLAIN"), "+ ");
  EXPECT_TRUE(startsWith(pop.command(std::string(20000, 'A')), "-ERR")) << "overlong response";
  EXPECT_EQ(pop.command("AUTH LOGIN"), "+ VXNlcm5hbWU6");
  EXPECT_EQ(pop.command(protocol::base64Encode(kUser)), "+ UGFzc3dvcmQ6");
  EXPECT_EQ(pop.command("*"), "-ERR Authentication cancelled.");
  EXPECT_TRUE(startsWith(pop.command("AUTH CRAM-MD5"), "-ERR"));
  // After all that the session is clean: a proper AUTH PLAIN logs in.
  Pop3TestClient fresh(proxy->port());
  std::string plain = std::string("\0", 1) + kUser + std::string("\0", 1) + password();
  EXPECT_TRUE(startsWith(fresh.command("AUTH PLAIN " + protocol::base64Encode(plain)), "+OK"));
  EXPECT_TRUE(startsWith(fresh.command("QUIT"), "+OK"));
  plain.assign(plain.size(), '\0');
  expectAnotherClientServed(proxy->port());
}

// Dovecot checks a LOGIN literal only up to a NUL: "right-password\0junk" logged in with the
// right prefix. Every login command that can carry a NUL, CR or LF is refused before anything goes
// upstream, and the session stays usable.
TEST_F(HostileTest, NulInACredentialDoesNotLogInWithItsPrefix) {
  PopbridgeProcess* proxy = start();
  proxy->addSecret("junk");
  std::ifstream dovecotLog(dovecot().logPath());
  dovecotLog.seekg(0, std::ios::end);  // only this test's lines count
  const std::size_t loginsBefore = dovecot().loginRips(kUser, 0).size();
  const std::string refused =
      "-ERR [AUTH] NUL, CR and LF are not allowed in user names and passwords.";
  const std::string nulJunk = password() + std::string("\0junk", 5);
  Pop3TestClient pop(proxy->port());
  ASSERT_TRUE(startsWith(pop.command(std::string("USER ") + kUser), "+OK"));
  EXPECT_EQ(pop.command("PASS " + nulJunk), refused);
  EXPECT_EQ(pop.command("AUTH PLAIN"), "+ ");
  std::string plain = std::string("\0", 1) + kUser + std::string("\0", 1) + nulJunk;
  EXPECT_EQ(pop.command(protocol::base64Encode(plain)), refused);
  EXPECT_EQ(pop.command("AUTH LOGIN " + protocol::base64Encode(kUser)), "+ UGFzc3dvcmQ6");
  EXPECT_EQ(pop.command(protocol::base64Encode(password() + "\r\njunk")), refused);
  EXPECT_EQ(pop.command("STAT").rfind("-ERR", 0), 0u) << "logged in after all";
  login(pop);
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  plain.assign(plain.size(), '\0');
  const std::string log = proxy->log();
  EXPECT_NE(log.find("USER/PASS login refused: the password contains a NUL byte"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("AUTH LOGIN login refused: the password contains a CR byte"),
            std::string::npos);
  // Nothing of the three reached Dovecot: its only login for the user is the clean one. Dovecot's
  // log process writes a login's line some time after the login: wait for the clean one's, which
  // comes after any the refused attempts would have caused.
  ASSERT_GE(dovecot().loginRips(kUser, loginsBefore + 1).size(), loginsBefore + 1)
      << "Dovecot never logged the clean login\n"
      << dovecot().logTail();
  std::string line;
  int logins = 0;
  while (std::getline(dovecotLog, line)) {
    if (line.find("auth-worker") == std::string::npos &&
        line.find(std::string("user=<") + kUser + ">") != std::string::npos &&
        (line.find("Login: ") != std::string::npos ||
         line.find("auth failed") != std::string::npos)) {
      ++logins;
    }
  }
  EXPECT_EQ(logins, 1) << dovecot().logTail();
}

TEST_F(HostileTest, GarbageTlsHandshakeAndPlaintextOnTheTlsPort) {
  PopbridgeProcess::Options options;
  options.listeners[0].tls = "implicit";
  options.listeners.push_back(PopbridgeProcess::Listener{});
  options.listeners[1].tls = "starttls";
  options.listeners[1].allowPlaintextAuth = false;
  PopbridgeProcess* proxy = start(options);
  {
    TestConnection garbage(proxy->port(0), 5000);
    garbage.sendAll(randomBytes(4096, 11));
    EXPECT_TRUE(garbage.closedByPeer(5000)) << "garbage handshake not closed";
    std::string got = garbage.readExact(garbage.bufferedBytes(), "an alert");
    EXPECT_EQ(got.find("+OK"), std::string::npos);
  }
  {
    // A plaintext POP3 client on the implicit-TLS port: no greeting in the clear, a clean close.
    TestConnection plain(proxy->port(0), 5000);
    plain.sendAll(std::string("USER ") + kUser + "\r\nPASS " + password() + "\r\n");
    EXPECT_TRUE(plain.closedByPeer(5000));
    std::string got = plain.readExact(plain.bufferedBytes(), "alert");
    EXPECT_EQ(got.find("+OK"), std::string::npos);
  }
  {
    // Garbage right after "+OK Begin TLS".
    Pop3TestClient pop(proxy->port(1));
    EXPECT_TRUE(startsWith(pop.command("STLS"), "+OK"));
    pop.sendRaw(randomBytes(4096, 12));
    EXPECT_TRUE(pop.closedByPeer(5000));
  }
  // The TLS listener still serves a real client.
  Pop3TestClient tls(proxy->port(0), true, dovecot().pki().caCert);
  login(tls);
  EXPECT_TRUE(startsWith(tls.command("QUIT"), "+OK"));
  expectMemoryBounded(*proxy, 16 * 1024, "after TLS garbage");
}

TEST_F(HostileTest, SlowlorisIsCutByTheIdleTimeout) {
  PopbridgeProcess::Options options;
  options.server = "idle_timeout = \"3s\"\n";
  PopbridgeProcess* proxy = start(options);
  Pop3TestClient slow(proxy->port());
  auto begin = Clock::now();
  // One byte a second of a command that never ends. RFC 1939's idle timer is about commands,
  // so trickling bytes must not keep the connection forever.
  const std::string never = "NOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOOP";
  bool closed = false;
  std::size_t sent = 0;
  for (; sent < never.size() && secondsSince(begin) < 12.0; ++sent) {
    try {
      slow.sendRaw(never.substr(sent, 1));
    } catch (const std::exception&) {
      closed = true;
      break;
    }
    if (sent == 2) expectAnotherClientServed(proxy->port());
    if (slow.closedByPeer(1000)) {
      closed = true;
      break;
    }
  }
  double elapsed = secondsSince(begin);
  std::printf("[ figures ] slowloris closed=%d after %.1f s and %zu bytes (idle_timeout 3s)\n",
              closed, elapsed, sent);
  EXPECT_TRUE(closed) << "a client trickling one byte per second was never cut off";
  EXPECT_LT(elapsed, 6.0);
  expectAnotherClientServed(proxy->port());
}

TEST_F(HostileTest, ThousandsOfSilentConnections) {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  // 2,000 as the issue asks, unless the sandbox's descriptor limit (shared by this process and
  // popbridge, which inherits it) is lower: then as many as fit with room for the rest.
  std::size_t count = std::min<std::size_t>(2000, limit.rlim_cur > 300 ? limit.rlim_cur - 300 : 0);
  ASSERT_GE(count, 500u) << "ulimit -n is too low for this test";
  PopbridgeProcess::Options options;
  options.server = "max_connections_per_ip = 10000\nmax_connections = 10000\n";
  PopbridgeProcess* proxy = start(options);
  std::vector<std::unique_ptr<SilentSocket>> sockets;
  auto begin = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    sockets.push_back(std::make_unique<SilentSocket>(proxy->port()));
    // Let the accept queue (backlog 511) drain now and then.
    if (i % 256 == 255) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Every one of them is a session: the last ones got their greeting too.
  for (std::size_t i = count - 10; i < count; ++i) EXPECT_TRUE(sockets[i]->readable(5000)) << i;
  std::printf("[ figures ] %zu silent connections opened in %.3f s\n", count, secondsSince(begin));
  expectAnotherClientServed(proxy->port());
  MemoryUsage memory = memoryOf(proxy->pid());
  std::printf("[ figures ] %zu silent connections: RSS %ld KiB (%.1f KiB per connection)\n", count,
              memory.rssKiB,
              static_cast<double>(memory.rssKiB - baseline_.rssKiB) / static_cast<double>(count));
  // Idle sessions must not each pin a full read buffer.
  expectMemoryBounded(*proxy, static_cast<long>(count) * 40, "silent connections");
  sockets.clear();
  expectAnotherClientServed(proxy->port());
}

TEST_F(HostileTest, PasswordGuessingIsSlowedAndCutOffAfterThreeFailures) {
  PopbridgeProcess* proxy = start();  // auth_failure_delay = "200ms" (PopbridgeProcess)
  Pop3TestClient guesser(proxy->port());
  // All guesses pipelined in one write: the delay and the limit must hold anyway.
  std::string batch;
  for (int i = 1; i <= 5; ++i) batch += "USER bob\r\nPASS guess-" + std::to_string(i) + "\r\n";
  auto begin = Clock::now();
  guesser.sendRaw(batch);
  // While the guesser waits out its delays, others are served (from another thread, so the
  // guesser's replies are timed as they arrive).
  auto other = std::async(std::launch::async, [&] { expectAnotherClientServed(proxy->port()); });
  std::vector<double> failures;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(startsWith(guesser.readLine(), "+OK")) << "USER " << i;
    EXPECT_EQ(guesser.readLine(), "-ERR [AUTH] Authentication failed.");
    failures.push_back(secondsSince(begin));
  }
  other.get();
  EXPECT_TRUE(guesser.closedByPeer(3000)) << "still open after three failed logins";
  EXPECT_EQ(guesser.connection().bufferedBytes(), 0u) << "a fourth guess was answered";
  std::printf("[ figures ] failed logins answered at %.3f, %.3f, %.3f s\n", failures[0],
              failures[1], failures[2]);
  // Bounds from the start only: a reply read late shrinks the gap to the next one, never its
  // time since the batch was sent.
  for (int i = 0; i < 3; ++i) EXPECT_GE(failures[i], (i + 1) * 0.18) << "failure " << i;
  expectAnotherClientServed(proxy->port());
}

// --- no password in the log --------------------------------------------------------------------

DovecotFixture* gLogDovecot = nullptr;

// The safety net every integration test relies on: PopbridgeProcess's destructor fails the test
// when a registered secret is in the log. Prove it fires by registering a string that is
// certainly logged.
TEST_F(HostileTest, LogSecretCheckCatchesALeak) {
  gLogDovecot = &dovecot();
  EXPECT_NONFATAL_FAILURE(
      {
        PopbridgeProcess proxy(*gLogDovecot, {});
        proxy.addSecret("listening on 127.0.0.1:");
      },
      "a password appears in the popbridge log");
}

TEST_F(HostileTest, NoPasswordReachesTheDebugLog) {
  DovecotFixture& d = dovecot();
  const std::string devicePassword = "device-Pa55-word!";
  const std::string secretsDir = d.dir() + "/hostile-secrets";
  ::mkdir(secretsDir.c_str(), 0700);
  const std::string upstreamFile = secretsDir + "/bob";
  {
    std::ofstream out(upstreamFile);
    out << password() << "\n";
  }
  PopbridgeProcess::Options options;
  options.logLevel = "debug";
  options.server = "max_bad_commands = 100\n";
  // One account (device name + its own password), which also turns pass-through off.
  options.extra = "[[account]]\nuser = \"scanner7\"\npassword_hash = \"" +
                  config::hashPassword(devicePassword) + "\"\nupstream_user = \"" + kUser +
                  "\"\nupstream_password_file = \"" + upstreamFile + "\"\n";
  PopbridgeProcess proxy(d, options);
  std::vector<std::string> wrong = {"wrong-Guess-1", "wrong-Guess-2", "wrong-Guess-3"};
  proxy.addSecret(devicePassword);
  for (const auto& w : wrong) proxy.addSecret(w);

  auto plainBlob = [](const std::string& user, const std::string& pass) {
    return protocol::base64Encode(std::string("\0", 1) + user + std::string("\0", 1) + pass);
  };
  {
    Pop3TestClient pop(proxy.port());
    pop.command("USER scanner7");
    ASSERT_TRUE(startsWith(pop.command("PASS " + devicePassword), "+OK"));
    pop.command("QUIT");
  }
  {
    Pop3TestClient pop(proxy.port());
    EXPECT_TRUE(
        startsWith(pop.command("AUTH PLAIN " + plainBlob("scanner7", devicePassword)), "+OK"));
    pop.command("QUIT");
  }
  {
    Pop3TestClient pop(proxy.port());
    EXPECT_EQ(pop.command("AUTH LOGIN"), "+ VXNlcm5hbWU6");
    pop.command(protocol::base64Encode("scanner7"));
    EXPECT_TRUE(startsWith(pop.command(protocol::base64Encode(devicePassword)), "+OK"));
    pop.command("QUIT");
  }
  {
    Pop3TestClient pop(proxy.port());
    pop.command("USER scanner7");
    EXPECT_TRUE(startsWith(pop.command("PASS " + wrong[0]), "-ERR [AUTH]"));
    EXPECT_EQ(pop.command("AUTH PLAIN"), "+ ");
    EXPECT_TRUE(startsWith(pop.command(plainBlob("scanner7", wrong[1])), "-ERR [AUTH]"));
    // The upstream's own password is not a device password here.
    pop.command(std::string("USER ") + kUser);
    EXPECT_TRUE(startsWith(pop.command("PASS " + password()), "-ERR [AUTH]"));
  }
  {
    // A password with spaces and a tab, and one given where a user name belongs.
    Pop3TestClient pop(proxy.port());
    pop.command("USER scanner7");
    EXPECT_TRUE(startsWith(pop.command("PASS " + wrong[2] + " \twith blanks"), "-ERR [AUTH]"));
  }
  proxy.stop();
  std::string log = proxy.log();
  EXPECT_NE(log.find("scanner7"), std::string::npos) << "the log should name the user";
  std::vector<std::string> secrets = {
      devicePassword, password(), plainBlob("scanner7", devicePassword),
      plainBlob("scanner7", wrong[1]), protocol::base64Encode(devicePassword)};
  secrets.insert(secrets.end(), wrong.begin(), wrong.end());
  for (const auto& secret : secrets) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "a secret is in the debug log";
  }
  std::remove(upstreamFile.c_str());
  ::rmdir(secretsDir.c_str());
}

}  // namespace
}  // namespace popbridge::test
