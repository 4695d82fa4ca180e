// Real POP3 sessions through the popbridge binary to a private Dovecot,
// checked on the IMAP side.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "protocol/base64.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

bool hasFlag(const std::vector<std::string>& flags, std::string_view flag) {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

std::string headerOf(const std::string& message) {
  auto end = message.find("\r\n\r\n");
  return end == std::string::npos ? message : message.substr(0, end + 4);
}

// Runs a shell command and returns its stdout; fails the test on a non-zero exit.
std::string run(const std::string& command) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return output;
  char buffer[65536];
  std::size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << output;
  return output;
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    messages_ = {simpleMessage(1), dotLinesMessage(), bareLfMessage(), eightBitMessage(),
                 mimeAttachmentMessage(30000)};
    dovecot_.seedMaildir("alice", messages_);
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", password());
    info_ = imap.select();
    uids_ = imap.uids();
    for (auto uid : uids_) {
      bodies_.push_back(imap.body(uid));
      sizes_.push_back(imap.size(uid));
    }
  }

  std::string password() const { return dovecot_.user("alice").password; }

  std::vector<std::string> imapFlags(std::uint32_t uid) {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", password());
    imap.select();
    return imap.flags(uid);
  }
  std::vector<std::uint32_t> imapUids(std::string_view folder = "INBOX") {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", password());
    imap.select(folder);
    return imap.uids();
  }

  void login(Pop3TestClient& pop) {
    EXPECT_EQ(pop.command("USER alice").rfind("+OK", 0), 0u);
    std::string reply = pop.command("PASS " + password());
    ASSERT_EQ(reply.rfind("+OK", 0), 0u) << reply;
  }

  DovecotFixture dovecot_;
  std::vector<std::string> messages_;
  ImapTestClient::SelectInfo info_;
  std::vector<std::uint32_t> uids_;
  std::vector<std::string> bodies_;
  std::vector<std::uint64_t> sizes_;
};

struct Transport {
  std::string listener;  // none | starttls | implicit
  std::string upstream;  // none | starttls | implicit
};

// Readable ctest names instead of the bytes of the parameter.
void PrintTo(const Transport& t, std::ostream* os) {
  *os << t.listener << " to " << t.upstream;
}

class TransportTest : public ProxyTest, public ::testing::WithParamInterface<Transport> {};

TEST_P(TransportTest, FullSession) {
  const Transport& t = GetParam();
  PopbridgeProcess::Options options;
  options.listeners[0].tls = t.listener;
  options.listeners[0].allowPlaintextAuth = t.listener == "none";
  options.upstreamTls = t.upstream;
  PopbridgeProcess proxy(dovecot_, options);

  Pop3TestClient pop(proxy.port(), t.listener == "implicit", dovecot_.pki().caCert);
  EXPECT_EQ(pop.greeting().rfind("+OK", 0), 0u);
  std::string capaStatus;
  std::string capa = pop.multiLine("CAPA", &capaStatus);
  if (t.listener == "starttls") {
    EXPECT_NE(capa.find("STLS"), std::string::npos);
    EXPECT_EQ(capa.find("USER"), std::string::npos) << "USER offered in the clear";
    EXPECT_EQ(pop.command("USER alice").rfind("-ERR [AUTH]", 0), 0u);
    EXPECT_EQ(pop.command("STLS").rfind("+OK", 0), 0u);
    pop.startTls(dovecot_.pki().caCert);
    capa = pop.multiLine("CAPA");
    EXPECT_EQ(capa.find("STLS"), std::string::npos);
  }
  EXPECT_NE(capa.find("USER"), std::string::npos);
  EXPECT_NE(capa.find("UIDL"), std::string::npos);
  login(pop);
  EXPECT_EQ(pop.multiLine("CAPA").find("USER"), std::string::npos);

  std::uint64_t total = 0;
  for (auto size : sizes_) total += size;
  EXPECT_EQ(pop.command("STAT"),
            "+OK " + std::to_string(uids_.size()) + " " + std::to_string(total));
  std::string list = pop.multiLine("LIST");
  std::string expected;
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    expected += std::to_string(i + 1) + " " + std::to_string(sizes_[i]) + "\r\n";
  }
  EXPECT_EQ(list, expected);
  std::string uidl = pop.multiLine("UIDL");
  char buf[32];
  std::snprintf(buf, sizeof buf, "1 %08x%08x\r\n", uids_[0], info_.uidValidity);
  EXPECT_EQ(uidl.substr(0, std::string(buf).size()), buf);

  for (std::size_t i = 0; i < uids_.size(); ++i) {
    std::string status;
    std::string body = pop.multiLine("RETR " + std::to_string(i + 1), &status);
    EXPECT_EQ(body, bodies_[i]) << "message " << i + 1;
    EXPECT_EQ(body.size(), sizes_[i]);
    EXPECT_EQ(status, "+OK " + std::to_string(sizes_[i]) + " octets");
  }
  EXPECT_EQ(pop.multiLine("TOP 1 0"), headerOf(bodies_[0]));
  std::string top5 = pop.multiLine("TOP 5 5");
  std::string header5 = headerOf(bodies_[4]);
  EXPECT_EQ(top5.rfind(header5, 0), 0u);
  EXPECT_EQ(std::count(top5.begin(), top5.end(), '\n'),
            std::count(header5.begin(), header5.end(), '\n') + 5);

  EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("RSET").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("DELE 2").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_TRUE(pop.closedByPeer());

  EXPECT_FALSE(hasFlag(imapFlags(uids_[0]), "\\Deleted"));
  EXPECT_TRUE(hasFlag(imapFlags(uids_[1]), "\\Deleted"));
  EXPECT_FALSE(hasFlag(imapFlags(uids_[2]), "\\Seen")) << "RETR must use BODY.PEEK";
  // flag keeps the message on the server, and the next session no longer lists it.
  EXPECT_EQ(imapUids().size(), uids_.size());
  Pop3TestClient again(proxy.port(), t.listener == "implicit", dovecot_.pki().caCert);
  if (t.listener == "starttls") {
    again.command("STLS");
    again.startTls(dovecot_.pki().caCert);
  }
  login(again);
  EXPECT_EQ(again.command("STAT").rfind("+OK " + std::to_string(uids_.size() - 1) + " ", 0), 0u);
  again.command("QUIT");
}

INSTANTIATE_TEST_SUITE_P(
    Transports, TransportTest,
    ::testing::Values(Transport{"none", "none"}, Transport{"starttls", "starttls"},
                      Transport{"implicit", "implicit"}, Transport{"none", "implicit"},
                      Transport{"implicit", "none"}),
    [](const auto& info) { return info.param.listener + "_to_" + info.param.upstream; });

TEST_F(ProxyTest, UidlStableAcrossSessionsAndMatchesDovecotPop3) {
  PopbridgeProcess proxy(dovecot_, {});
  std::string first, second;
  {
    Pop3TestClient pop(proxy.port());
    login(pop);
    first = pop.multiLine("UIDL");
    pop.command("QUIT");
  }
  {
    Pop3TestClient pop(proxy.port());
    login(pop);
    second = pop.multiLine("UIDL");
    pop.command("QUIT");
  }
  EXPECT_EQ(first, second);
  // Users moving from Dovecot's own POP3 keep their UIDLs.
  Pop3TestClient direct(dovecot_.pop3Port());
  direct.command("USER alice");
  direct.command("PASS " + password());
  EXPECT_EQ(direct.multiLine("UIDL"), first);
  direct.command("QUIT");
}

class PolicyTest : public ProxyTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(PolicyTest, DeleteAppliesPolicyOnQuit) {
  const std::string& policy = GetParam();
  {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", password());
    imap.create("Trash");
  }
  PopbridgeProcess::Options options;
  options.onDelete = policy;
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  EXPECT_EQ(pop.command("DELE 2").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("DELE 4").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_TRUE(pop.closedByPeer());

  std::vector<std::uint32_t> inbox = imapUids();
  auto present = [&](std::uint32_t uid) {
    return std::find(inbox.begin(), inbox.end(), uid) != inbox.end();
  };
  for (std::size_t i : {0u, 2u, 4u}) {
    ASSERT_TRUE(present(uids_[i]));
    auto flags = imapFlags(uids_[i]);
    EXPECT_FALSE(hasFlag(flags, "\\Deleted")) << policy;
    EXPECT_FALSE(hasFlag(flags, "\\Seen")) << policy;
  }
  for (std::size_t i : {1u, 3u}) {
    std::uint32_t uid = uids_[i];
    if (policy == "flag") {
      ASSERT_TRUE(present(uid));
      EXPECT_TRUE(hasFlag(imapFlags(uid), "\\Deleted"));
    } else if (policy == "expunge") {
      EXPECT_FALSE(present(uid));
    } else if (policy == "move") {
      EXPECT_FALSE(present(uid));
    } else if (policy == "seen") {
      ASSERT_TRUE(present(uid));
      EXPECT_TRUE(hasFlag(imapFlags(uid), "\\Seen"));
      EXPECT_FALSE(hasFlag(imapFlags(uid), "\\Deleted"));
    } else if (policy == "keep") {
      ASSERT_TRUE(present(uid));
      EXPECT_TRUE(imapFlags(uid).empty() || !hasFlag(imapFlags(uid), "\\Deleted"));
    }
  }
  if (policy == "move") {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", password());
    imap.select("Trash");
    auto trash = imap.uids();
    ASSERT_EQ(trash.size(), 2u);
    EXPECT_EQ(imap.body(trash[0]), bodies_[1]);
    EXPECT_EQ(imap.body(trash[1]), bodies_[3]);
  } else {
    EXPECT_EQ(inbox.size(), policy == "expunge" ? uids_.size() - 2 : uids_.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, PolicyTest,
                         ::testing::Values("flag", "expunge", "move", "seen", "keep"),
                         [](const auto& info) { return info.param; });

TEST_F(ProxyTest, DroppedConnectionAfterDeleLeavesMailboxUntouched) {
  PopbridgeProcess::Options options;
  options.onDelete = "expunge";
  PopbridgeProcess proxy(dovecot_, options);
  {
    Pop3TestClient pop(proxy.port());
    login(pop);
    EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("DELE 2").rfind("+OK", 0), 0u);
    pop.close();  // no QUIT
  }
  // Give the proxy time to notice the drop.
  Pop3TestClient probe(proxy.port());
  login(probe);
  probe.command("QUIT");
  EXPECT_EQ(imapUids().size(), uids_.size());
  EXPECT_FALSE(hasFlag(imapFlags(uids_[0]), "\\Deleted"));
  EXPECT_FALSE(hasFlag(imapFlags(uids_[1]), "\\Deleted"));
}

TEST_F(ProxyTest, MessageExpungedByAnotherClientGivesErrAndNothingElseChanges) {
  PopbridgeProcess::Options options;
  options.onDelete = "expunge";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  {
    ImapTestClient other(dovecot_.imapPort());
    other.login("alice", password());
    other.select();
    other.store(uids_[1], "+FLAGS (\\Deleted)");
    other.expunge();
  }
  EXPECT_EQ(pop.command("RETR 2").rfind("-ERR", 0), 0u);
  EXPECT_EQ(pop.multiLine("RETR 3"), bodies_[2]);  // numbering is frozen
  EXPECT_EQ(pop.command("DELE 2").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("DELE 3").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  auto inbox = imapUids();
  EXPECT_EQ(inbox, (std::vector<std::uint32_t>{uids_[0], uids_[3], uids_[4]}));
}

TEST_F(ProxyTest, ExpungePolicyNeverRemovesAnotherClientsDeletedMessage) {
  {
    ImapTestClient other(dovecot_.imapPort());
    other.login("alice", password());
    other.select();
    other.store(uids_[0], "+FLAGS (\\Deleted)");
  }
  PopbridgeProcess::Options options;
  options.onDelete = "expunge";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  // The \Deleted message is not in the POP3 view at all.
  EXPECT_EQ(pop.command("STAT").rfind("+OK " + std::to_string(uids_.size() - 1) + " ", 0), 0u);
  EXPECT_EQ(pop.multiLine("RETR 1"), bodies_[1]);
  EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  auto inbox = imapUids();
  EXPECT_NE(std::find(inbox.begin(), inbox.end(), uids_[0]), inbox.end())
      << "another client's \\Deleted message was expunged";
  EXPECT_EQ(std::find(inbox.begin(), inbox.end(), uids_[1]), inbox.end());
}

TEST_F(ProxyTest, WrongPasswordGivesAuthError) {
  PopbridgeProcess proxy(dovecot_, {});
  Pop3TestClient pop(proxy.port());
  pop.command("USER alice");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(pop.command("PASS not-the-password"), "-ERR [AUTH] Authentication failed.");
  // The failed-login delay (200 ms in these tests) slows guessing down.
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(150));
  // The session can try again.
  login(pop);
  pop.command("QUIT");
}

TEST_F(ProxyTest, UpstreamDownGivesSysTemp) {
  PopbridgeProcess proxy(dovecot_, {});
  dovecot_.stop();
  Pop3TestClient pop(proxy.port());
  pop.command("USER alice");
  EXPECT_EQ(pop.command("PASS whatever").rfind("-ERR [SYS/TEMP]", 0), 0u);
}

TEST_F(ProxyTest, UpstreamCertificateWithWrongNameIsRefused) {
  PopbridgeProcess::Options options;
  options.upstreamTls = "implicit";
  options.serverName = "wrong.example";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  pop.command("USER alice");
  EXPECT_EQ(pop.command("PASS " + password()).rfind("-ERR [SYS/TEMP]", 0), 0u);
  pop.close();
  proxy.stop();
  EXPECT_NE(proxy.log().find("verification failed"), std::string::npos) << proxy.log();
}

TEST_F(ProxyTest, UpstreamCertificateFromUnknownCaIsRefused) {
  PopbridgeProcess::Options options;
  options.upstreamTls = "starttls";
  options.caFile = "system";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  pop.command("USER alice");
  EXPECT_EQ(pop.command("PASS " + password()).rfind("-ERR [SYS/TEMP]", 0), 0u);
}

TEST_F(ProxyTest, AuthPlainAndSaslCancel) {
  PopbridgeProcess proxy(dovecot_, {});
  Pop3TestClient pop(proxy.port());
  EXPECT_EQ(pop.command("AUTH PLAIN"), "+ ");
  EXPECT_EQ(pop.command("*"), "-ERR Authentication cancelled.");
  std::string plain = std::string("\0alice\0", 7) + password();
  EXPECT_EQ(pop.command("AUTH PLAIN " + protocol::base64Encode(plain)).rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("STAT").rfind("+OK " + std::to_string(uids_.size()), 0), 0u);
  pop.command("QUIT");
}

TEST_F(ProxyTest, BigMessageThroughTlsOnBothSidesIsByteExact) {
  std::string big = bigMessage(20 * 1024 * 1024);
  dovecot_.seedMaildir("bob", {big});
  PopbridgeProcess::Options options;
  options.listeners[0].tls = "implicit";
  options.upstreamTls = "implicit";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port(), true, dovecot_.pki().caCert);
  pop.command("USER bob");
  ASSERT_EQ(pop.command("PASS " + dovecot_.user("bob").password).rfind("+OK", 0), 0u);
  auto start = std::chrono::steady_clock::now();
  std::string body = pop.multiLine("RETR 1");
  auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(body.size(), big.size());
  EXPECT_TRUE(body == dovecotServedBytes(big));
  MemoryUsage memory = memoryOf(proxy.pid());
  std::printf("[ figures ] 20 MB RETR over TLS both sides: %.3f s, popbridge peak RSS %ld KiB\n",
              elapsed, memory.peakKiB);
  // Streaming, not buffering: peak RSS stays far below the message size.
  if (rssBoundsApply()) {
    EXPECT_LT(memory.peakKiB, 16 * 1024);
  }
  pop.command("QUIT");
}

TEST_F(ProxyTest, CurlDownloadsThroughTheProxy) {
  PopbridgeProcess proxy(dovecot_, {});
  std::string url = "pop3://127.0.0.1:" + std::to_string(proxy.port()) + "/1";
  std::string out = run("curl -s --max-time 20 --user alice:" + password() + " " + url);
  // curl turns CRLF into what it received; compare the text.
  EXPECT_EQ(out, bodies_[0]);
}

TEST_F(ProxyTest, SigtermEndsSessionsWithoutApplyingDeletions) {
  PopbridgeProcess::Options options;
  options.onDelete = "expunge";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
  EXPECT_EQ(proxy.stop(), 0);
  EXPECT_EQ(pop.readLine(), "-ERR [SYS/TEMP] Server shutting down.");
  EXPECT_EQ(imapUids().size(), uids_.size());
  EXPECT_FALSE(hasFlag(imapFlags(uids_[0]), "\\Deleted"));
}

// --- the device's address upstream (issue 11 item 5) -------------------------------------------

// Dovecot takes x-originating-ip from hosts in login_trusted_networks: its log's rip= and its auth
// penalty then belong to the device. The test's device connects from 127.0.0.2 (Linux loopback
// takes any 127/8 source); popbridge itself connects from 127.0.0.1.
DovecotFixture& trustingDovecot() {
  static DovecotFixture dovecot([] {
    DovecotFixture::Options options;
    options.enablePop3 = false;
    options.extraConfig = "login_trusted_networks = 127.0.0.0/8 ::1\n";
    return options;
  }());
  return dovecot;
}

void loginAndQuit(std::uint16_t port, const DovecotUser& user, const std::string& sourceIp) {
  Pop3TestClient pop(port, false, "", sourceIp);
  ASSERT_EQ(pop.command("USER " + user.name).rfind("+OK", 0), 0u);
  std::string reply = pop.command("PASS " + user.password);
  ASSERT_EQ(reply.rfind("+OK", 0), 0u) << reply;
  EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
}

TEST(ClientAddressUpstream, DovecotLogsTheDevicesAddressUnlessDisabled) {
  DovecotFixture& dovecot = trustingDovecot();
  // One user per session: Dovecot's login processes need not log in the order they logged in.
  const DovecotUser sent = dovecot.addUser("origin");
  const DovecotUser withheld = dovecot.addUser("origin-withheld");
  {
    PopbridgeProcess proxy(dovecot, {});
    loginAndQuit(proxy.port(), sent, "127.0.0.2");
  }
  {
    PopbridgeProcess::Options options;
    options.upstream = "send_client_address = false\n";
    PopbridgeProcess proxy(dovecot, options);
    loginAndQuit(proxy.port(), withheld, "127.0.0.2");
  }
  EXPECT_EQ(dovecot.loginRips(sent.name, 1), std::vector<std::string>{"127.0.0.2"})
      << dovecot.logTail();
  EXPECT_EQ(dovecot.loginRips(withheld.name, 1), std::vector<std::string>{"127.0.0.1"})
      << dovecot.logTail();
}

// --- long credentials (issue 11 item 8) --------------------------------------------------------

// Dovecot ends a LOGIN command over about 1 KB with "* BYE Input buffer full", literal or not;
// OAuth2 tokens and generated passwords are longer. They log in with every auth setting.
TEST(LongCredentials, LogInWithEveryAuthSetting) {
  DovecotFixture& dovecot = DovecotFixture::shared();
  std::vector<DovecotUser> users;
  for (std::size_t length : {1200u, 4000u}) {
    std::string password;
    const std::string_view alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!";
    for (std::size_t i = 0; i < length; ++i)
      password += alphabet[(i * 7 + length) % alphabet.size()];
    users.push_back(dovecot.addUser("long" + std::to_string(length), password));
  }
  for (const char* auth : {"login", "plain", "auto"}) {
    SCOPED_TRACE(std::string("auth = ") + auth);
    PopbridgeProcess::Options options;
    options.upstream = std::string("auth = \"") + auth + "\"\n";
    PopbridgeProcess proxy(dovecot, options);
    for (const DovecotUser& user : users) {
      SCOPED_TRACE(std::to_string(user.password.size()) + "-character password");
      Pop3TestClient pop(proxy.port());
      ASSERT_EQ(pop.command("USER " + user.name).rfind("+OK", 0), 0u);
      std::string reply = pop.command("PASS " + user.password);
      EXPECT_EQ(reply.rfind("+OK", 0), 0u) << reply << "\n" << proxy.log();
      if (reply.rfind("+OK", 0) != 0) continue;
      EXPECT_EQ(pop.command("STAT").rfind("+OK", 0), 0u);
      EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
      // The same secret through AUTH PLAIN, as a continuation line.
      Pop3TestClient sasl(proxy.port());
      EXPECT_EQ(sasl.command("AUTH PLAIN"), "+ ");
      std::string plain = std::string("\0", 1) + user.name + std::string("\0", 1) + user.password;
      reply = sasl.command(protocol::base64Encode(plain));
      EXPECT_EQ(reply.rfind("+OK", 0), 0u) << reply;
      sasl.command("QUIT");
    }
  }
}

}  // namespace
}  // namespace popbridge::test
