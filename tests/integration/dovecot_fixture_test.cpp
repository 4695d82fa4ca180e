// Tests of the Dovecot fixture and the test clients, which also pin down the Dovecot behaviour
// (2.3.19, Debian 12) that popbridge relies on:
//
// * Bytes served: IMAP BODY[] and POP3 RETR serve a stored message with every LF that has no CR
//   before it turned into CRLF. Bare CR, "\r\r\n" and 8-bit bytes (UTF-8, Latin-1, 0x80-0xff)
//   pass through unchanged. A NUL byte is served as 0x80 in BODY[] (BINARY[] keeps it and uses a
//   literal8) but as NUL in POP3 RETR. A last line without a line end stays so in BODY[]; POP3
//   RETR adds CRLF before the terminating dot line (not counted in LIST).
// * UIDL: the default pop3_uidl_format %08Xu%08Xv gives lowercase hex, e.g. 000000016b025398.
// * Failed logins: even with auth_failure_delay = 0 the reply waits for Dovecot's 500 ms failure
//   timer. Its auth penalty (2, 4, 8, 15 s for the next logins from the same IP) is switched off
//   by the fixture unless Options::authPenalty is set; login_trusted_networks does not exempt an
//   address in 2.3.
// * Sizes: RFC822.SIZE and POP3 LIST/STAT sizes equal the length of the served bytes (CRLF
//   counted), never the on-disk size of a bare-LF file.
// * APPEND: Dovecot stores messages with LF line ends on disk, and serves them back with CRLF,
//   so a CRLF message comes back byte for byte; a bare-LF message comes back with CRLF.
// * Capabilities: before login (greeting and CAPABILITY) only
//   "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN AUTH=LOGIN";
//   UIDPLUS, MOVE, CONDSTORE, QRESYNC, ESEARCH, BINARY ... appear only after login (in the LOGIN
//   reply's [CAPABILITY] code and in CAPABILITY). A bridge must read capabilities after login.

#include "tests/support/dovecot_fixture.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/messages.h"
#include "tests/support/test_clients.h"
#include "tests/support/test_tls.h"

namespace popbridge::test {
namespace {

namespace fs = std::filesystem;

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

std::string joined(const std::vector<std::string>& list) {
  std::string text;
  for (const auto& item : list) text += (text.empty() ? "" : " ") + item;
  return text;
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Dovecot's default pop3_uidl_format "%08Xu%08Xv": the X modifier writes lowercase hex.
std::string uidl(std::uint32_t uid, std::uint32_t uidValidity) {
  char text[32];
  std::snprintf(text, sizeof text, "%08x%08x", uid, uidValidity);
  return text;
}

// A scratch directory that is removed even when the test fails.
struct TempDir {
  std::string path;
  TempDir() {
    std::string pattern = "/tmp/popbridge-pki-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// Tests share one Dovecot per process and keep apart by using a user of their own.
class DovecotFixtureTest : public ::testing::Test {
 protected:
  DovecotFixture& dovecot() { return DovecotFixture::shared(); }
  DovecotUser freshUser() {
    static int counter = 0;
    return dovecot().addUser("user" + std::to_string(++counter));
  }
  ImapTestClient loggedIn(const DovecotUser& user) {
    ImapTestClient imap(dovecot().imapPort());
    imap.login(user.name, user.password);
    return imap;
  }
  Pop3TestClient pop3LoggedIn(const DovecotUser& user, Pop3TestClient client) {
    EXPECT_EQ(client.command("USER " + user.name).substr(0, 3), "+OK");
    EXPECT_EQ(client.command("PASS " + user.password).substr(0, 3), "+OK");
    return client;
  }
};

// ---------------------------------------------------------------------------------------------
// Capabilities and authentication

TEST_F(DovecotFixtureTest, AdvertisesStartTlsBeforeLoginAndExtensionsAfterLogin) {
  const DovecotUser user = freshUser();
  {
    // Without a CAPABILITY command before it, the LOGIN reply carries the new capabilities.
    ImapTestClient imap(dovecot().imapPort());
    const auto loginReply =
        imap.command("LOGIN " + imapQuote(user.name) + " " + imapQuote(user.password));
    ASSERT_FALSE(loginReply.empty());
    EXPECT_NE(loginReply.back().find("OK [CAPABILITY IMAP4rev1 "), std::string::npos)
        << loginReply.back();
    EXPECT_NE(loginReply.back().find(" UIDPLUS "), std::string::npos) << loginReply.back();
    imap.logout();
  }

  ImapTestClient imap(dovecot().imapPort());
  EXPECT_NE(imap.greeting().find("[CAPABILITY "), std::string::npos) << imap.greeting();
  const auto before = imap.capabilities();
  std::cout << "[ info ] pre-login CAPABILITY: " << joined(before) << "\n";
  for (const char* cap :
       {"IMAP4rev1", "STARTTLS", "SASL-IR", "LITERAL+", "AUTH=PLAIN", "AUTH=LOGIN", "ID", "IDLE"}) {
    EXPECT_TRUE(contains(before, cap)) << cap << " missing before login: " << joined(before);
  }
  EXPECT_FALSE(contains(before, "UIDPLUS")) << "Dovecot now advertises UIDPLUS before login";

  // After an explicit CAPABILITY, Dovecot leaves the code out of the LOGIN reply.
  const auto loginReply =
      imap.command("LOGIN " + imapQuote(user.name) + " " + imapQuote(user.password));
  ASSERT_FALSE(loginReply.empty());
  EXPECT_EQ(loginReply.back().find("[CAPABILITY"), std::string::npos) << loginReply.back();

  const auto after = imap.capabilities();
  std::cout << "[ info ] post-login CAPABILITY: " << joined(after) << "\n";
  for (const char* cap : {"IMAP4rev1", "UIDPLUS", "MOVE", "LITERAL+", "SASL-IR", "CONDSTORE",
                          "QRESYNC", "ESEARCH", "ENABLE", "IDLE", "ID", "BINARY"}) {
    EXPECT_TRUE(contains(after, cap)) << cap << " missing after login: " << joined(after);
  }
  EXPECT_FALSE(contains(after, "STARTTLS"));
  EXPECT_FALSE(contains(after, "AUTH=PLAIN"));
  imap.logout();
}

TEST_F(DovecotFixtureTest, WrongPasswordsAreRefusedPromptly) {
  const DovecotUser user = freshUser();
  // auth_failure_delay = 0 and no auth penalty. Dovecot still answers a failure only when its
  // 500 ms failure timer fires, but not after the default 2 s, and never later for the next login.
  // The fastest attempt tells the 500 ms timer from the default 2 s; each attempt's bound catches
  // an auth penalty, which doubles to 4 s by the third attempt, with room for a loaded machine.
  double fastest = 1e9;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const auto start = std::chrono::steady_clock::now();
    ImapTestClient imap(dovecot().imapPort());
    try {
      imap.login(user.name, "not-the-password");
      FAIL() << "LOGIN with a wrong password succeeded";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("NO [AUTHENTICATIONFAILED]"), std::string::npos)
          << e.what();
      EXPECT_EQ(std::string(e.what()).find("not-the-password"), std::string::npos);
    }
    const double seconds = secondsSince(start);
    fastest = std::min(fastest, seconds);
    EXPECT_LT(seconds, 3.5) << "attempt " << attempt;
  }
  EXPECT_LT(fastest, 1.5);
  Pop3TestClient pop3(dovecot().pop3Port());
  EXPECT_EQ(pop3.command("USER " + user.name).substr(0, 3), "+OK");
  const std::string reply = pop3.command("PASS not-the-password");
  EXPECT_EQ(reply.rfind("-ERR [AUTH]", 0), 0u) << reply;

  // An unknown user is an authentication failure too, not a temporary one.
  ImapTestClient unknown(dovecot().imapPort());
  EXPECT_THROW(
      {
        try {
          unknown.login("no-such-user", "whatever");
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("NO [AUTHENTICATIONFAILED]"), std::string::npos)
              << e.what();
          throw;
        }
      },
      std::runtime_error);

  // A correct login right after failures from the same address is not held back.
  const auto goodLogin = std::chrono::steady_clock::now();
  ImapTestClient imap = loggedIn(user);
  EXPECT_LT(secondsSince(goodLogin), 3.5);
  imap.logout();
}

TEST_F(DovecotFixtureTest, UsersAddedWhileRunningCanLogIn) {
  const DovecotUser added = dovecot().addUser("late-user", "late-Pw");
  EXPECT_EQ(dovecot().user("late-user").password, "late-Pw");
  ImapTestClient imap = loggedIn(added);
  EXPECT_EQ(imap.select().exists, 0u);
  imap.logout();
  EXPECT_THROW(dovecot().addUser("late-user"), std::invalid_argument);
  EXPECT_THROW(dovecot().addUser("bad/name"), std::invalid_argument);
  EXPECT_THROW(dovecot().addUser("colon", "pass:word"), std::invalid_argument);
  EXPECT_THROW(dovecot().user("nobody-here"), std::out_of_range);
}

TEST_F(DovecotFixtureTest, DefaultUsersLogInOverImapAndPop3) {
  for (const auto& user : dovecot().users()) {
    SCOPED_TRACE(user.name);
    ImapTestClient imap = loggedIn(user);
    imap.logout();
    Pop3TestClient pop3 = pop3LoggedIn(user, Pop3TestClient(dovecot().pop3Port()));
    EXPECT_EQ(pop3.command("QUIT").substr(0, 3), "+OK");
  }
  EXPECT_EQ(dovecot().user("alice").password, "alice-Secret-1");
}

// ---------------------------------------------------------------------------------------------
// Seeding and what Dovecot serves

TEST_F(DovecotFixtureTest, SeededEdgeCasesAreServedWithCrlfAndMatchingSizes) {
  const DovecotUser user = freshUser();
  const auto cases = edgeCaseMessages();
  std::vector<std::string> messages;
  for (const auto& c : cases) messages.push_back(c.bytes);
  dovecot().seedMaildir(user.name, messages);

  ImapTestClient imap = loggedIn(user);
  const auto info = imap.select();
  EXPECT_EQ(info.exists, cases.size());
  EXPECT_EQ(info.uidNext, cases.size() + 1);
  std::vector<std::uint32_t> expectedUids;
  for (std::uint32_t uid = 1; uid <= cases.size(); ++uid) expectedUids.push_back(uid);
  ASSERT_EQ(imap.uids(), expectedUids);

  for (std::uint32_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    const std::string& stored = cases[i].bytes;
    const std::string body = imap.body(i + 1);
    EXPECT_EQ(body, dovecotServedBytes(stored));
    EXPECT_EQ(imap.size(i + 1), body.size());
    const bool crlfOnly =
        stored.find('\0') == std::string::npos && dovecotServedBytes(stored) == stored;
    if (crlfOnly) {
      EXPECT_EQ(body, stored) << "a CRLF message must come back byte for byte";
    }
  }

  // The cases that differ, spelled out rather than through dovecotServedBytes().
  const std::string bareLf = imap.body(3);
  EXPECT_EQ(bareLf.find('\n'), bareLf.find("\r\n") + 1);
  EXPECT_EQ(bareLf.size(), bareLfMessage().size() + 10);  // 10 lines, each gained a CR
  EXPECT_NE(bareLf.find("\r\n.\r\n.dot line\r\n"), std::string::npos);
  const std::string nul = imap.body(6);
  EXPECT_EQ(nul.find('\0'), std::string::npos);
  EXPECT_NE(nul.find("[\x80]"), std::string::npos);
  EXPECT_EQ(nul.size(), nulByteMessage().size());
  const std::string eightBit = imap.body(4);
  EXPECT_NE(eightBit.find("X-Latin1: caf\xe9"), std::string::npos);
  const std::string noFinalNewline = imap.body(7);
  EXPECT_EQ(noFinalNewline.substr(noFinalNewline.size() - 27), "\r\nThe last line has no CRLF");
  imap.logout();
}

TEST_F(DovecotFixtureTest, TenThousandMessagesSeedInSecondsWithUidsInOrder) {
  const DovecotUser user = freshUser();
  std::vector<std::string> messages;
  messages.reserve(10000);
  for (int i = 1; i <= 10000; ++i) messages.push_back(simpleMessage(i, 100 + (i % 7) * 50));

  auto start = std::chrono::steady_clock::now();
  dovecot().seedMaildir(user.name, messages);
  const double seedSeconds = secondsSince(start);
  start = std::chrono::steady_clock::now();
  ImapTestClient imap = loggedIn(user);
  const auto info = imap.select();
  const double selectSeconds = secondsSince(start);
  std::cout << "[ info ] seeding 10000 messages: " << seedSeconds
            << " s; first SELECT (indexing): " << selectSeconds << " s\n";
  // ~0.5 s on tmpfs, a few seconds on a busy disk; the bounds catch a fixture gone quadratic,
  // not a slow machine.
  EXPECT_LT(seedSeconds, 60.0);
  EXPECT_LT(selectSeconds, 60.0);

  EXPECT_EQ(info.exists, 10000u);
  const auto uids = imap.uids();
  ASSERT_EQ(uids.size(), 10000u);
  for (std::uint32_t i = 0; i < uids.size(); ++i) ASSERT_EQ(uids[i], i + 1);
  for (const std::uint32_t uid : {1u, 2u, 4999u, 5000u, 9999u, 10000u}) {
    SCOPED_TRACE(uid);
    EXPECT_EQ(imap.body(uid), messages[uid - 1]);
    EXPECT_EQ(imap.size(uid), messages[uid - 1].size());
  }
  imap.logout();
}

TEST_F(DovecotFixtureTest, SeedingAgainAppendsAfterExistingUids) {
  const DovecotUser user = freshUser();
  dovecot().seedMaildir(user.name, {simpleMessage(1), simpleMessage(2)});
  {
    ImapTestClient imap = loggedIn(user);
    EXPECT_EQ(imap.select().exists, 2u);
    imap.logout();
  }
  // Same second as the first sync: Dovecot must still notice the new files.
  dovecot().seedMaildir(user.name, {simpleMessage(3), simpleMessage(4), simpleMessage(5)});
  ImapTestClient imap = loggedIn(user);
  const auto info = imap.select();
  EXPECT_EQ(info.exists, 5u);
  EXPECT_EQ(imap.uids(), (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));
  for (std::uint32_t uid = 1; uid <= 5; ++uid) {
    EXPECT_EQ(imap.body(uid), simpleMessage(static_cast<int>(uid)));
  }
  imap.logout();
}

TEST_F(DovecotFixtureTest, SeedsIntoOtherFolders) {
  const DovecotUser user = freshUser();
  dovecot().seedMaildir(user.name, {simpleMessage(10)}, "Archive");
  dovecot().seedMaildir(user.name, {simpleMessage(11), simpleMessage(12)}, "Archive.2024");
  EXPECT_THROW(dovecot().seedMaildir(user.name, {simpleMessage(1)}, "../escape"),
               std::invalid_argument);
  EXPECT_THROW(dovecot().seedMaildir("no-such-user", {simpleMessage(1)}), std::out_of_range);

  ImapTestClient imap = loggedIn(user);
  const auto list = imap.command("LIST \"\" \"*\"");
  std::string listing;
  for (const auto& line : list) listing += line + "\n";
  EXPECT_NE(listing.find(" \".\" Archive\n"), std::string::npos) << listing;
  EXPECT_NE(listing.find(" \".\" Archive.2024\n"), std::string::npos) << listing;
  EXPECT_EQ(imap.select("Archive").exists, 1u);
  EXPECT_EQ(imap.body(1), simpleMessage(10));
  EXPECT_EQ(imap.select("Archive.2024").exists, 2u);
  EXPECT_EQ(imap.body(2), simpleMessage(12));
  EXPECT_EQ(imap.select("INBOX").exists, 0u);
  imap.logout();
}

TEST_F(DovecotFixtureTest, AppendMessageReturnsUidsAndKeepsFlags) {
  const DovecotUser user = freshUser();
  EXPECT_EQ(dovecot().appendMessage(user.name, simpleMessage(1)), 1u);
  EXPECT_EQ(dovecot().appendMessage(user.name, dotLinesMessage(), "\\Seen \\Flagged"), 2u);
  EXPECT_EQ(dovecot().appendMessage(user.name, bareLfMessage()), 3u);
  EXPECT_EQ(dovecot().appendMessage(user.name, eightBitMessage(), "", "Sent"), 1u);

  ImapTestClient imap = loggedIn(user);
  EXPECT_EQ(imap.select().exists, 3u);
  EXPECT_EQ(imap.body(1), simpleMessage(1));
  EXPECT_EQ(imap.body(2), dotLinesMessage());
  EXPECT_EQ(imap.size(2), dotLinesMessage().size());
  const auto flags = imap.flags(2);
  EXPECT_TRUE(contains(flags, "\\Seen")) << joined(flags);
  EXPECT_TRUE(contains(flags, "\\Flagged")) << joined(flags);
  EXPECT_FALSE(contains(imap.flags(1), "\\Seen"));
  // APPENDed bare LF is served with CRLF, like a bare-LF Maildir file.
  EXPECT_EQ(imap.body(3), dovecotServedBytes(bareLfMessage()));
  EXPECT_EQ(imap.size(3), dovecotServedBytes(bareLfMessage()).size());
  EXPECT_EQ(imap.select("Sent").exists, 1u);
  EXPECT_EQ(imap.body(1), eightBitMessage());
  imap.logout();
}

TEST_F(DovecotFixtureTest, StoreAndExpungeThroughTheImapClient) {
  const DovecotUser user = freshUser();
  dovecot().seedMaildir(user.name, {simpleMessage(1), simpleMessage(2), simpleMessage(3)});
  ImapTestClient imap = loggedIn(user);
  imap.select();
  imap.store(2, "+FLAGS (\\Deleted)");
  EXPECT_TRUE(contains(imap.flags(2), "\\Deleted"));
  imap.expunge();
  EXPECT_EQ(imap.uids(), (std::vector<std::uint32_t>{1, 3}));
  EXPECT_THROW(imap.command("NO-SUCH-COMMAND"), std::runtime_error);
  EXPECT_THROW(imap.body(2), std::runtime_error);  // expunged: no FETCH reply for it
  imap.logout();
}

// ---------------------------------------------------------------------------------------------
// Dovecot's own POP3, for comparisons

TEST_F(DovecotFixtureTest, Pop3RetrEqualsImapBodyOverPlainPop3) {
  const DovecotUser user = freshUser();
  const auto cases = edgeCaseMessages();
  std::vector<std::string> messages;
  for (const auto& c : cases) messages.push_back(c.bytes);
  dovecot().seedMaildir(user.name, messages);

  ImapTestClient imap = loggedIn(user);
  const auto info = imap.select();
  std::vector<std::string> bodies;
  std::uint64_t total = 0;
  for (std::uint32_t uid = 1; uid <= cases.size(); ++uid) {
    bodies.push_back(imap.body(uid));
    total += imap.size(uid);
  }
  imap.logout();

  Pop3TestClient pop3 = pop3LoggedIn(user, Pop3TestClient(dovecot().pop3Port()));
  EXPECT_EQ(pop3.greeting().rfind("+OK", 0), 0u);
  EXPECT_EQ(pop3.command("STAT"),
            "+OK " + std::to_string(cases.size()) + " " + std::to_string(total));
  const std::string list = pop3.multiLine("LIST");
  const std::string uidls = pop3.multiLine("UIDL");
  for (std::uint32_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    const std::string n = std::to_string(i + 1);
    EXPECT_NE(list.find(n + " " + std::to_string(bodies[i].size()) + "\r\n"), std::string::npos)
        << list;
    EXPECT_NE(uidls.find(n + " " + uidl(i + 1, info.uidValidity) + "\r\n"), std::string::npos)
        << uidls;
    std::string status;
    const std::string retr = pop3.multiLine("RETR " + n, &status);
    EXPECT_EQ(status, "+OK " + std::to_string(bodies[i].size()) + " octets");
    EXPECT_EQ(retr, dovecotServedBytes(cases[i].bytes, DovecotView::kPop3Retr));
    if (cases[i].name == "no_final_newline") {
      // POP3 needs a line end before the terminator; Dovecot adds one that is not in the size.
      EXPECT_EQ(retr, bodies[i] + "\r\n");
    } else if (cases[i].name == "nul_byte") {
      // IMAP BODY[] turns NUL into 0x80, POP3 RETR does not.
      EXPECT_NE(retr.find('\0'), std::string::npos);
      EXPECT_NE(retr, bodies[i]);
    } else {
      EXPECT_EQ(retr, bodies[i]);
    }
  }
  EXPECT_EQ(pop3.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_TRUE(pop3.closedByPeer());
}

TEST_F(DovecotFixtureTest, Pop3sAndStlsVerifyAgainstTheTestCa) {
  const DovecotUser user = freshUser();
  dovecot().seedMaildir(user.name, {dotLinesMessage()});
  const std::string& ca = dovecot().pki().caCert;

  Pop3TestClient pop3s = pop3LoggedIn(user, Pop3TestClient(dovecot().pop3sPort(), true, ca));
  EXPECT_EQ(pop3s.connection().tlsVersion(), "TLSv1.3");
  EXPECT_EQ(pop3s.multiLine("RETR 1"), dotLinesMessage());
  pop3s.command("QUIT");

  Pop3TestClient stls(dovecot().pop3Port());
  EXPECT_NE(stls.multiLine("CAPA").find("STLS\r\n"), std::string::npos);
  EXPECT_EQ(stls.command("STLS").rfind("+OK", 0), 0u);
  stls.startTls(ca);
  EXPECT_TRUE(stls.connection().tlsActive());
  stls = pop3LoggedIn(user, std::move(stls));
  EXPECT_EQ(stls.multiLine("RETR 1"), dotLinesMessage());

  // The client really verifies: a CA that did not sign the server certificate is refused.
  const TestPki other = makeTestPki(dovecot().dir() + "/other-pki");
  try {
    Pop3TestClient refused(dovecot().pop3sPort(), true, other.caCert);
    FAIL() << "the handshake succeeded with a foreign CA";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("certificate verification"), std::string::npos)
        << e.what();
  }
}

TEST_F(DovecotFixtureTest, ImapsAndStartTlsWork) {
  const DovecotUser user = freshUser();
  dovecot().seedMaildir(user.name, {eightBitMessage()});
  const std::string& ca = dovecot().pki().caCert;

  ImapTestClient imaps(dovecot().imapsPort(), true, ca);
  EXPECT_FALSE(contains(imaps.capabilities(), "STARTTLS"));
  imaps.login(user.name, user.password);
  imaps.select();
  EXPECT_EQ(imaps.body(1), eightBitMessage());
  imaps.logout();

  ImapTestClient starttls(dovecot().imapPort());
  starttls.startTls(ca);
  EXPECT_TRUE(starttls.connection().tlsActive());
  starttls.login(user.name, user.password);
  EXPECT_EQ(starttls.select().exists, 1u);
  starttls.logout();
}

TEST_F(DovecotFixtureTest, TwentyMegabyteMessageRoundTripsOverImapAndPop3) {
  const DovecotUser user = freshUser();
  const std::string big = bigMessage(20 * 1024 * 1024);
  ASSERT_EQ(big.size(), 20u * 1024 * 1024);
  dovecot().seedMaildir(user.name, {big});

  auto start = std::chrono::steady_clock::now();
  ImapTestClient imap = loggedIn(user);
  imap.select();
  EXPECT_EQ(imap.size(1), big.size());
  EXPECT_TRUE(imap.body(1) == big) << "BODY[] of the 20 MB message differs";
  imap.logout();
  const double imapSeconds = secondsSince(start);

  start = std::chrono::steady_clock::now();
  Pop3TestClient pop3 = pop3LoggedIn(user, Pop3TestClient(dovecot().pop3Port()));
  EXPECT_EQ(pop3.command("LIST 1"), "+OK 1 " + std::to_string(big.size()));
  EXPECT_TRUE(pop3.multiLine("RETR 1") == big) << "RETR of the 20 MB message differs";
  pop3.command("QUIT");
  std::cout << "[ info ] 20 MB: IMAP " << imapSeconds << " s, POP3 " << secondsSince(start)
            << " s\n";
}

TEST_F(DovecotFixtureTest, ManyConcurrentSessionsForOneUser) {
  // Dovecot's default mail_max_userip_connections is 10; benchmarks need hundreds.
  const DovecotUser user = freshUser();
  std::vector<std::unique_ptr<ImapTestClient>> sessions;
  for (int i = 0; i < 60; ++i) {
    sessions.push_back(std::make_unique<ImapTestClient>(dovecot().imapPort()));
    sessions.back()->login(user.name, user.password);
  }
  std::vector<std::unique_ptr<Pop3TestClient>> pop3Sessions;
  for (int i = 0; i < 20; ++i) {
    pop3Sessions.push_back(std::make_unique<Pop3TestClient>(dovecot().pop3Port()));
    EXPECT_EQ(pop3Sessions.back()->command("USER " + user.name).substr(0, 3), "+OK");
    EXPECT_EQ(pop3Sessions.back()->command("PASS " + user.password).substr(0, 3), "+OK");
  }
  for (auto& session : sessions) EXPECT_EQ(session->select().exists, 0u);
}

// ---------------------------------------------------------------------------------------------
// Life cycle (private instances)

TEST(DovecotFixtureLifecycle, SharedReturnsOneRunningInstance) {
  DovecotFixture& first = DovecotFixture::shared();
  EXPECT_EQ(&first, &DovecotFixture::shared());
  EXPECT_TRUE(first.running());
  for (const char* name : {"alice", "bob", "carol"}) EXPECT_NO_THROW(first.user(name)) << name;
}

TEST(DovecotFixtureLifecycle, StopMakesEveryPortRefuseConnections) {
  DovecotFixture dovecot;
  const std::vector<std::uint16_t> ports = {dovecot.imapPort(), dovecot.imapsPort(),
                                            dovecot.pop3Port(), dovecot.pop3sPort()};
  std::set<std::uint16_t> distinct(ports.begin(), ports.end());
  EXPECT_EQ(distinct.size(), 4u);
  // An open session must not keep Dovecot alive.
  ImapTestClient open(dovecot.imapPort());
  open.login("alice", "alice-Secret-1");

  dovecot.stop();
  EXPECT_FALSE(dovecot.running());
  for (const auto port : ports) {
    SCOPED_TRACE(port);
    EXPECT_THROW(TestConnection probe(port, 1000), std::runtime_error);
  }
  EXPECT_TRUE(open.connection().closedByPeer(5000));
  EXPECT_NE(dovecot.logTail().find("starting up"), std::string::npos) << dovecot.logTail();
  dovecot.stop();  // idempotent
}

TEST(DovecotFixtureLifecycle, DestructorStopsDovecotAndRemovesItsDirectory) {
  std::string dir;
  pid_t pid = -1;
  {
    DovecotFixture dovecot;
    dir = dovecot.dir();
    pid = dovecot.pid();
    ASSERT_TRUE(fs::exists(dir + "/dovecot.conf"));
    ASSERT_EQ(fs::path(dir).filename().string().rfind("popbridge-dovecot-", 0), 0u) << dir;
    ImapTestClient imap(dovecot.imapPort());
    imap.login("bob", "bob-Secret-2");
    imap.select();
  }
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(kill(pid, 0), -1) << "the master was not reaped";
  // Killed children are reaped by init, which may take a moment; they must not linger.
  const auto start = std::chrono::steady_clock::now();
  while (kill(-pid, 0) == 0 && secondsSince(start) < 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(kill(-pid, 0), -1) << "processes of Dovecot's group are still alive";
}

TEST(DovecotFixtureLifecycle, ImapOnlyInstanceHasNoPop3) {
  DovecotFixture::Options options;
  options.enablePop3 = false;
  options.users = {{"dave", "dave-Secret-4"}};
  DovecotFixture dovecot(options);
  EXPECT_THROW(dovecot.pop3Port(), std::logic_error);
  EXPECT_THROW(dovecot.user("alice"), std::out_of_range);
  ImapTestClient imap(dovecot.imapPort());
  imap.login("dave", "dave-Secret-4");
  imap.logout();
}

TEST(DovecotFixtureLifecycle, BrokenConfigFailsWithTheReasonAndLeavesNothingBehind) {
  DovecotFixture::Options options;
  options.extraConfig = "no_such_setting_popbridge = 1";
  try {
    DovecotFixture dovecot(options);
    FAIL() << "Dovecot started with an unknown setting";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("no_such_setting_popbridge"), std::string::npos) << message;
    const std::string marker = "did not start in ";
    ASSERT_NE(message.find(marker), std::string::npos) << message;
    const auto start = message.find(marker) + marker.size();
    const std::string dir = message.substr(start, message.find(':', start) - start);
    EXPECT_FALSE(fs::exists(dir)) << dir;
  }
}

TEST(DovecotFixtureLifecycle, WithAuthPenaltyDovecotDelaysLoginsAfterAFailure) {
  DovecotFixture::Options options;
  options.authPenalty = true;
  options.enablePop3 = false;
  DovecotFixture dovecot(options);
  ImapTestClient failing(dovecot.imapPort());
  EXPECT_THROW(failing.login("alice", "wrong"), std::runtime_error);
  const auto start = std::chrono::steady_clock::now();
  ImapTestClient imap(dovecot.imapPort());
  imap.login("alice", "alice-Secret-1");
  const double seconds = secondsSince(start);
  std::cout << "[ info ] login after one failure with the auth penalty on: " << seconds << " s\n";
  EXPECT_GT(seconds, 1.5);  // Dovecot's auth penalty: 2 s after the first failure
}

TEST(DovecotFixtureLifecycle, ExtraConfigOverridesEarlierSettings) {
  // A server certificate for another name, from another CA: verification must fail on the name.
  const TempDir pkiDir;
  const TestPki other = makeTestPki(pkiDir.path);
  DovecotFixture::Options options;
  options.extraConfig = "ssl_cert = <" + other.wrongNameCert + "\nssl_key = <" +
                        other.wrongNameKey + "\nlogin_greeting = popbridge test upstream";
  {
    DovecotFixture dovecot(options);
    try {
      Pop3TestClient refused(dovecot.pop3sPort(), true, other.caCert);
      ADD_FAILURE() << "a certificate for wrong.example was accepted for localhost";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("Hostname mismatch"), std::string::npos) << e.what();
    }
    // Without a CA file the client does not verify, so the same server is reachable.
    Pop3TestClient unverified(dovecot.pop3sPort(), true);
    EXPECT_EQ(unverified.greeting(), "+OK popbridge test upstream");
  }
}

TEST(DovecotFixtureLifecycle, TestPkiWritesEveryFileAndKeepsKeysPrivate) {
  const TempDir dir;
  const TestPki pki = makeTestPki(dir.path);
  for (const auto* file : {&pki.caCert, &pki.caKey, &pki.serverCert, &pki.serverKey,
                           &pki.wrongNameCert, &pki.wrongNameKey}) {
    EXPECT_TRUE(fs::file_size(*file) > 0) << *file;
  }
  struct stat info {};
  ASSERT_EQ(stat(pki.serverKey.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0077, 0u) << "the server key is readable by others";
}

// ---------------------------------------------------------------------------------------------
// Sample messages (no Dovecot needed)

TEST(SampleMessages, AreDeterministicAndHaveTheAdvertisedShape) {
  EXPECT_EQ(simpleMessage(5), simpleMessage(5));
  EXPECT_NE(simpleMessage(5), simpleMessage(6));
  for (const std::size_t bodyBytes : {0u, 1u, 2u, 3u, 74u, 200u, 1000u}) {
    SCOPED_TRACE(bodyBytes);
    const std::string message = simpleMessage(3, bodyBytes);
    const auto separator = message.find("\r\n\r\n");
    ASSERT_NE(separator, std::string::npos);
    EXPECT_EQ(message.size() - separator - 4, bodyBytes);
    EXPECT_EQ(dovecotServedBytes(message), message) << "not pure CRLF";
  }
  const std::string simple = simpleMessage(1);
  EXPECT_EQ(simple.rfind("From: ", 0), 0u);
  for (const char* header : {"To: ", "Subject: ", "Message-ID: ", "Date: "}) {
    EXPECT_NE(simple.find(std::string("\r\n") + header), std::string::npos) << header;
  }

  const std::string dots = dotLinesMessage();
  EXPECT_NE(dots.find("\r\n.\r\n..\r\n.leading dot\r\n"), std::string::npos);
  EXPECT_NE(dots.find("\r\n.\r\nThe message goes on"), std::string::npos);

  EXPECT_EQ(bareLfMessage().find('\r'), std::string::npos);
  const std::string eightBit = eightBitMessage();
  const std::string eightBitHeaders = eightBit.substr(0, eightBit.find("\r\n\r\n"));
  EXPECT_NE(eightBitHeaders.find("\xc3\xbc"), std::string::npos);  // UTF-8 in Subject
  EXPECT_NE(eightBitHeaders.find("\xe9"), std::string::npos);      // Latin-1 in X-Latin1

  const std::string mime = mimeAttachmentMessage(3000);
  EXPECT_NE(mime.find("Content-Transfer-Encoding: base64"), std::string::npos);
  EXPECT_GT(mime.size(), 4000u);  // 3000 bytes in base64 is 4000 characters plus line ends

  for (const std::size_t size : {512u, 1000u, 123457u}) {
    const std::string big = bigMessage(size);
    EXPECT_EQ(big.size(), size);
    EXPECT_EQ(big.substr(big.size() - 2), "\r\n");
    EXPECT_EQ(dovecotServedBytes(big), big);
  }
  EXPECT_THROW(bigMessage(100), std::invalid_argument);

  EXPECT_NE(nulByteMessage().find('\0'), std::string::npos);
  EXPECT_NE(noFinalNewlineMessage().substr(noFinalNewlineMessage().size() - 2), "\r\n");
  EXPECT_EQ(emptyBodyMessage().substr(emptyBodyMessage().size() - 4), "\r\n\r\n");
  const std::string longLine = longLineMessage(5000);
  const auto bodyStart = longLine.find("\r\n\r\n") + 4;
  EXPECT_EQ(longLine.find("\r\n", bodyStart), bodyStart + 5000);
}

TEST(SampleMessages, DovecotServedBytesTurnsOnlyBareLfIntoCrlf) {
  const struct {
    std::string stored;
    std::string served;
  } cases[] = {
      {"", ""},
      {"a\n", "a\r\n"},
      {"\n", "\r\n"},
      {"a\r\n", "a\r\n"},
      {"a\rb", "a\rb"},
      {"a\r\r\n", "a\r\r\n"},
      {"a\n\nb", "a\r\n\r\nb"},
      {std::string("a\0b", 3),
       "a\x80"
       "b"},
      {"\xff\xfe\n", "\xff\xfe\r\n"},
  };
  for (const auto& c : cases) EXPECT_EQ(dovecotServedBytes(c.stored), c.served) << c.stored;
}

TEST(SampleMessages, DovecotPop3ViewKeepsNulAndEndsInCrlf) {
  const struct {
    std::string stored;
    std::string retr;
  } cases[] = {
      {"", "\r\n"},   {"a\n", "a\r\n"},   {"a\r\n", "a\r\n"},
      {"a", "a\r\n"}, {"a\r", "a\r\r\n"}, {std::string("a\0b\n", 4), std::string("a\0b\r\n", 5)},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(dovecotServedBytes(c.stored, DovecotView::kPop3Retr), c.retr) << c.stored;
  }
}

}  // namespace
}  // namespace popbridge::test
