// Faults on either side of a session must never lose or wrongly delete a message.
//
// A real Dovecot is used where it can produce the fault; the scripted IMAP peer
// (tests/support/scripted_imap.h) covers cuts, stalls and refusals a healthy
// server does not produce on demand, and records every command popbridge sent,
// so "nothing else was touched" is checked on the exact transcript.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/scripted_imap.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

using Step = ScriptedImapPeer::Step;
using Reaction = ScriptedImapPeer::Reaction;
using Kind = ScriptedImapPeer::Reaction::Kind;
using Clock = std::chrono::steady_clock;

constexpr char kScriptedPassword[] = "scripted-Secret-7";
constexpr std::uint32_t kFirstUid = 11;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool startsWith(const std::string& text, std::string_view prefix) {
  return text.rfind(prefix, 0) == 0;
}

bool endsWith(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool hasFlag(const std::vector<std::string>& flags, std::string_view flag) {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

// Commands that change messages upstream.
std::vector<std::string> mutations(const ScriptedImapPeer& peer) {
  std::vector<std::string> out;
  for (const std::string& command : peer.commands()) {
    if (startsWith(command, "UID STORE") || startsWith(command, "UID EXPUNGE") ||
        startsWith(command, "UID MOVE") || startsWith(command, "UID COPY") ||
        startsWith(command, "EXPUNGE") || startsWith(command, "STORE") ||
        startsWith(command, "MOVE") || startsWith(command, "COPY")) {
      out.push_back(command);
    }
  }
  return out;
}

// Reads what arrives until the peer closes (bounded); returns it.
std::string readUntilClosed(Pop3TestClient& pop, int timeoutMs, bool* closed) {
  *closed = pop.closedByPeer(timeoutMs);
  TestConnection& connection = pop.connection();
  return connection.readExact(connection.bufferedBytes(), "the partial body");
}

class FaultsTest : public ::testing::Test {
 protected:
  DovecotFixture& dovecot() { return DovecotFixture::shared(); }

  // Five messages with UIDs 11..15; message 1 is `firstBytes` long when given.
  static ScriptedImapPeer::Script script(std::size_t firstBytes = 0) {
    ScriptedImapPeer::Script s;
    s.password = kScriptedPassword;
    for (std::uint32_t i = 0; i < 5; ++i) {
      std::string bytes = i == 0 && firstBytes != 0 ? bigMessage(firstBytes)
                                                    : simpleMessage(static_cast<int>(i) + 1, 3000);
      s.messages.push_back({kFirstUid + i, bytes, "", {}});
    }
    return s;
  }

  std::unique_ptr<PopbridgeProcess> proxyFor(const ScriptedImapPeer& peer,
                                             PopbridgeProcess::Options options = {}) {
    options.upstreamTls = "none";
    options.upstreamPort = peer.port();
    // These tests read the transcript once the upstream connection closed at the session's end;
    // a pooled one stays open (upstream_pool_test covers the pool against this peer).
    options.upstream += "pool_idle = \"0s\"\n";
    auto proxy = std::make_unique<PopbridgeProcess>(dovecot(), options);
    proxy->addSecret(kScriptedPassword);
    return proxy;
  }

  static void login(Pop3TestClient& pop) {
    ASSERT_TRUE(startsWith(pop.command("USER alice"), "+OK"));
    std::string reply = pop.command(std::string("PASS ") + kScriptedPassword);
    ASSERT_TRUE(startsWith(reply, "+OK")) << reply;
  }
};

// --- the client goes away ------------------------------------------------------------------

TEST_F(FaultsTest, ClientResetAfterPipelinedDeleTouchesNothingOnDovecot) {
  // proxy_test covers a polite close after DELE with on_delete = "expunge"; this one resets the
  // connection (RST) right after pipelined DELEs, with the move policy that touches two folders.
  DovecotFixture& d = dovecot();
  const std::string password = d.addUser("reset", "reset-Secret-4").password;
  d.seedMaildir("reset", {simpleMessage(1), simpleMessage(2), simpleMessage(3)});
  std::vector<std::uint32_t> before;
  {
    ImapTestClient imap(d.imapPort());
    imap.login("reset", password);
    imap.create("Trash");
    imap.select();
    before = imap.uids();
  }
  PopbridgeProcess::Options options;
  options.onDelete = "move";
  PopbridgeProcess proxy(d, options);
  {
    Pop3TestClient pop(proxy.port());
    pop.command("USER reset");
    ASSERT_TRUE(startsWith(pop.command("PASS " + password), "+OK"));
    pop.sendRaw("DELE 1\r\nDELE 2\r\nDELE 3\r\n");
    EXPECT_TRUE(startsWith(pop.readLine(), "+OK"));
    EXPECT_TRUE(startsWith(pop.readLine(), "+OK"));
    EXPECT_TRUE(startsWith(pop.readLine(), "+OK"));
    // SO_LINGER 0: close() sends RST instead of FIN.
    // TestConnection does not expose its descriptor; ours is the one connected to the proxy.
    int fd = -1;
    for (int candidate = 3; candidate < 4096 && fd < 0; ++candidate) {
      sockaddr_in peer{};
      socklen_t length = sizeof peer;
      if (::getpeername(candidate, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
          peer.sin_family == AF_INET && ntohs(peer.sin_port) == proxy.port()) {
        fd = candidate;
      }
    }
    ASSERT_GE(fd, 0);
    linger hard{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    pop.close();
  }
  // The session's end is logged once the proxy has dealt with the reset.
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (proxy.log().find("session end") == std::string::npos && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(proxy.log().find("deleted=0"), std::string::npos) << proxy.log();
  ImapTestClient imap(d.imapPort());
  imap.login("reset", password);
  imap.select();
  EXPECT_EQ(imap.uids(), before);
  for (std::uint32_t uid : before) {
    auto flags = imap.flags(uid);
    EXPECT_FALSE(hasFlag(flags, "\\Deleted")) << uid;
    EXPECT_FALSE(hasFlag(flags, "\\Seen")) << uid;
  }
  EXPECT_EQ(imap.select("Trash").exists, 0u);
}

TEST_F(FaultsTest, ClientDisconnectMidRetrClosesUpstreamWithoutSideEffects) {
  ScriptedImapPeer peer(script(8 * 1024 * 1024));
  auto proxy = proxyFor(peer);
  auto pop = std::make_unique<Pop3TestClient>(proxy->port());
  login(*pop);
  EXPECT_TRUE(startsWith(pop->command("DELE 2"), "+OK"));
  EXPECT_EQ(pop->command("RETR 1"), "+OK " + std::to_string(8 * 1024 * 1024) + " octets");
  pop->connection().readExact(100000, "the start of the body");
  auto start = Clock::now();
  pop.reset();  // closes with unread data: the kernel sends RST
  ASSERT_TRUE(peer.waitForClosed(1, 10000)) << "popbridge kept the upstream connection open";
  double elapsed = secondsSince(start);
  std::printf("[ figures ] upstream closed %.3f s after the client vanished mid-RETR\n", elapsed);
  EXPECT_LT(elapsed, 6.0);
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
}

// --- the upstream breaks in the middle of a body ---------------------------------------------

class MidLiteralCutTest : public FaultsTest, public ::testing::WithParamInterface<Kind> {};

TEST_P(MidLiteralCutTest, ClientIsCutWithoutTerminatorAndNothingIsDeleted) {
  ScriptedImapPeer::Script s = script(200000);
  Reaction cut;
  cut.kind = GetParam();
  cut.literalBytes = 70000;
  s.reactions[Step::Body] = cut;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);
  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_TRUE(startsWith(pop.command("DELE 3"), "+OK"));
  EXPECT_EQ(pop.command("RETR 1"), "+OK 200000 octets");
  bool closed = false;
  std::string partial = readUntilClosed(pop, 10000, &closed);
  EXPECT_TRUE(closed) << "the client connection stayed open after the upstream cut";
  EXPECT_LE(partial.size(), 70000u + 100);
  EXPECT_GT(partial.size(), 0u);
  EXPECT_FALSE(endsWith(partial, "\r\n.\r\n")) << "a cut body must not look complete";
  EXPECT_EQ(partial.find("-ERR"), std::string::npos);
  EXPECT_EQ(partial.find("\r\n.\r\n"), std::string::npos);
  if (GetParam() == Kind::CloseMidLiteral) {
    // What did arrive is the true start of the message (it has no dot lines to stuff). With
    // BYE the "* BYE" line is inside the literal's byte count, so it is body bytes to anyone.
    EXPECT_TRUE(partial == s.messages[0].bytes.substr(0, partial.size()));
  }
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
  // Closing our side first spares the proxy's wait for our FIN before it can exit.
  pop.close();
  proxy->stop();
  EXPECT_NE(proxy->log().find("upstream failed during a message body"), std::string::npos)
      << proxy->log();
}

INSTANTIATE_TEST_SUITE_P(Faults, MidLiteralCutTest,
                         ::testing::Values(Kind::CloseMidLiteral, Kind::ByeMidLiteral),
                         [](const auto& info) { return std::string(toString(info.param)); });

// --- the upstream stalls -----------------------------------------------------------------------

PopbridgeProcess::Options shortTimeouts() {
  PopbridgeProcess::Options options;
  options.upstream = "command_timeout = \"1s\"\n";
  return options;
}

TEST_F(FaultsTest, StallBeforeTheBodyGivesSysTemp) {
  ScriptedImapPeer::Script s = script();
  s.reactions[Step::Body] = Reaction::of(Kind::Stall);
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer, shortTimeouts());
  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_TRUE(startsWith(pop.command("DELE 2"), "+OK"));
  auto start = Clock::now();
  std::string reply = pop.command("RETR 1");
  double elapsed = secondsSince(start);
  EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  EXPECT_GE(elapsed, 0.9);
  // The bound tells command_timeout from a much longer wait, with room for a loaded machine.
  EXPECT_LT(elapsed, 5.0);
  std::printf("[ figures ] stalled UID FETCH answered after %.3f s (command_timeout 1s)\n",
              elapsed);
  EXPECT_TRUE(pop.closedByPeer(3000));
  EXPECT_TRUE(peer.waitForClosed(1, 3000)) << "the stalled upstream connection was not closed";
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
}

TEST_F(FaultsTest, StallInsideTheBodyClosesTheClient) {
  ScriptedImapPeer::Script s = script(100000);
  Reaction stall;
  stall.kind = Kind::StallMidLiteral;
  stall.literalBytes = 30000;
  s.reactions[Step::Body] = stall;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer, shortTimeouts());
  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_TRUE(startsWith(pop.command("DELE 2"), "+OK"));
  auto start = Clock::now();
  EXPECT_EQ(pop.command("RETR 1"), "+OK 100000 octets");
  bool closed = false;
  std::string partial = readUntilClosed(pop, 8000, &closed);
  double elapsed = secondsSince(start);
  EXPECT_TRUE(closed);
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LT(elapsed, 5.5);
  EXPECT_LE(partial.size(), 30000u + 100);
  EXPECT_EQ(partial.find("\r\n.\r\n"), std::string::npos);
  EXPECT_EQ(partial.find("-ERR"), std::string::npos) << "no -ERR may follow a +OK";
  EXPECT_TRUE(peer.waitForClosed(1, 3000));
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
}

class LoginStallTest : public FaultsTest, public ::testing::WithParamInterface<Step> {};

TEST_P(LoginStallTest, StallDuringLoginGivesSysTempInTime) {
  ScriptedImapPeer::Script s = script();
  s.reactions[GetParam()] = Reaction::of(Kind::Stall);
  ScriptedImapPeer peer(s);
  PopbridgeProcess::Options options;
  // The greeting is part of connecting ("connect_timeout: time allowed to connect, including
  // the TLS handshake and greeting"; PopbridgeProcess sets it to 3s); the later steps are
  // commands under command_timeout.
  bool greeting = GetParam() == Step::Greeting;
  options.upstream = greeting ? "command_timeout = \"20s\"\n" : "command_timeout = \"1s\"\n";
  auto proxy = proxyFor(peer, options);
  Pop3TestClient pop(proxy->port());
  pop.command("USER alice");
  auto start = Clock::now();
  std::string reply = pop.command(std::string("PASS ") + kScriptedPassword);
  double elapsed = secondsSince(start);
  EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  EXPECT_LT(elapsed, greeting ? 6.0 : 5.0);  // room for a loaded machine, far below 20s
  std::printf("[ figures ] login with a stalled upstream answered after %.3f s\n", elapsed);
  EXPECT_TRUE(peer.waitForClosed(1, 3000));
  // An outage is not a password guess: the session stays usable for another attempt.
  EXPECT_NO_THROW(pop.multiLine("CAPA"));
}

INSTANTIATE_TEST_SUITE_P(Faults, LoginStallTest,
                         ::testing::Values(Step::Greeting, Step::Login, Step::Select,
                                           Step::Snapshot),
                         [](const auto& info) { return std::string(toString(info.param)); });

// --- the upstream refuses the deletion at QUIT ------------------------------------------------

struct RefusalCase {
  std::string name;
  std::string onDelete;
  std::string capabilities;
  Step refused;
  std::vector<std::string> expectedMutations;  // in order, the refused one last
};

// Readable test names in ctest instead of the bytes of the parameter.
void PrintTo(const RefusalCase& c, std::ostream* os) {
  *os << c.name;
}

class RefusalTest : public FaultsTest, public ::testing::WithParamInterface<RefusalCase> {};

TEST_P(RefusalTest, QuitAnswersErrAndNamesTheUnappliedUids) {
  const RefusalCase& c = GetParam();
  ScriptedImapPeer::Script s = script();
  s.capabilities = c.capabilities;
  Reaction refuse;
  refuse.kind = Kind::Reply;
  refuse.text = "NO [SERVERBUG] Internal error occurred. Refer to server log for more information.";
  s.reactions[c.refused] = refuse;
  ScriptedImapPeer peer(s);
  PopbridgeProcess::Options options;
  options.onDelete = c.onDelete;
  auto proxy = proxyFor(peer, options);
  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_EQ(pop.multiLine("RETR 3"), s.messages[2].bytes);
  EXPECT_TRUE(startsWith(pop.command("DELE 2"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("DELE 4"), "+OK"));
  std::string reply = pop.command("QUIT");
  EXPECT_TRUE(startsWith(reply, "-ERR")) << reply;
  EXPECT_TRUE(pop.closedByPeer());
  ASSERT_TRUE(peer.waitForClosed(1, 5000));

  // Exactly the marked UIDs (12 and 14), only the expected steps, and nothing after the refusal
  // but LOGOUT.
  EXPECT_EQ(mutations(peer), c.expectedMutations) << peer.transcript();
  std::vector<std::string> all = peer.commands();
  auto refusedAt = std::find(all.begin(), all.end(), c.expectedMutations.back());
  ASSERT_NE(refusedAt, all.end());
  for (auto it = refusedAt + 1; it != all.end(); ++it) EXPECT_EQ(*it, "LOGOUT") << *it;

  // Closing our side first spares the proxy's wait for our FIN before it can exit.
  pop.close();
  proxy->stop();
  std::string log = proxy->log();
  EXPECT_NE(log.find("not applied to UIDs 12,14"), std::string::npos) << log;
  EXPECT_NE(log.find("SERVERBUG"), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(
    Faults, RefusalTest,
    ::testing::Values(
        RefusalCase{"FlagStore",
                    "flag",
                    "IMAP4rev1 UIDPLUS MOVE",
                    Step::Store,
                    {"UID STORE 12,14 +FLAGS.SILENT (\\Deleted)"}},
        RefusalCase{"ExpungeStore",
                    "expunge",
                    "IMAP4rev1 UIDPLUS MOVE",
                    Step::Store,
                    {"UID STORE 12,14 +FLAGS.SILENT (\\Deleted)"}},
        RefusalCase{"ExpungeExpunge",
                    "expunge",
                    "IMAP4rev1 UIDPLUS MOVE",
                    Step::Expunge,
                    {"UID STORE 12,14 +FLAGS.SILENT (\\Deleted)", "UID EXPUNGE 12,14"}},
        RefusalCase{"Move", "move", "IMAP4rev1 UIDPLUS MOVE", Step::Move, {"UID MOVE 12,14 Trash"}},
        RefusalCase{"MoveWithoutMoveCopy",
                    "move",
                    "IMAP4rev1 UIDPLUS",
                    Step::Copy,
                    {"UID COPY 12,14 Trash"}},
        RefusalCase{"MoveWithoutMoveExpunge",
                    "move",
                    "IMAP4rev1 UIDPLUS",
                    Step::Expunge,
                    {"UID COPY 12,14 Trash", "UID STORE 12,14 +FLAGS.SILENT (\\Deleted)",
                     "UID EXPUNGE 12,14"}}),
    [](const auto& info) { return info.param.name; });

TEST_F(FaultsTest, RsetNeverSendsAnyFlagChange) {
  ScriptedImapPeer peer(script());
  auto proxy = proxyFor(peer);
  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_TRUE(startsWith(pop.command("DELE 1"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("DELE 5"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("RSET"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  ASSERT_TRUE(peer.waitForClosed(1, 5000));
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
}

// --- another client changes the mailbox during the session --------------------------------

TEST_F(FaultsTest, AnotherMessagesBodyIsNeverServedInPlaceOfAVanishedOne) {
  // A server that answers UID FETCH 12 with the FETCH of UID 13 (as happens when sequence
  // numbers shifted under an expunge and a server or interposer gets it wrong).
  ScriptedImapPeer::Script s = script();
  s.reactions[Step::Body] = Reaction::of(Kind::WrongMessage);
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);
  Pop3TestClient pop(proxy->port());
  login(pop);
  std::string reply = pop.command("RETR 2");
  EXPECT_TRUE(startsWith(reply, "-ERR")) << reply;
  reply = pop.command("TOP 2 0");
  EXPECT_TRUE(startsWith(reply, "-ERR")) << reply;
  EXPECT_TRUE(startsWith(pop.command("DELE 2"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  ASSERT_TRUE(peer.waitForClosed(1, 5000));
  EXPECT_EQ(mutations(peer), std::vector<std::string>{"UID STORE 12 +FLAGS.SILENT (\\Deleted)"})
      << peer.transcript();
}

TEST_F(FaultsTest, VanishedMessageGivesErrAndOthersStillServe) {
  ScriptedImapPeer::Script s = script();
  s.reactions[Step::Body] = Reaction::of(Kind::Vanished);
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);
  Pop3TestClient pop(proxy->port());
  login(pop);
  std::string reply = pop.command("RETR 4");
  EXPECT_EQ(reply, "-ERR Message was deleted by another client.");
  // The numbering stays frozen.
  EXPECT_TRUE(startsWith(pop.command("STAT"), "+OK 5 "));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
}

TEST_F(FaultsTest, UidValidityChangeDuringFetchAbortsDeletions) {
  ScriptedImapPeer::Script s = script();
  Reaction change;
  change.untaggedBefore = {"* OK [UIDVALIDITY 42] Mailbox was recreated"};
  s.reactions[Step::Body] = change;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer);
  Pop3TestClient pop(proxy->port());
  login(pop);
  // The body in flight is still the one asked for; the next retrieval is refused.
  EXPECT_EQ(pop.multiLine("RETR 1"), s.messages[0].bytes);
  EXPECT_TRUE(startsWith(pop.command("RETR 2"), "-ERR [SYS/TEMP]"));
  EXPECT_TRUE(startsWith(pop.command("DELE 1"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("DELE 2"), "+OK"));
  std::string reply = pop.command("QUIT");
  EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  ASSERT_TRUE(peer.waitForClosed(1, 5000));
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
  // Closing our side first spares the proxy's wait for our FIN before it can exit.
  pop.close();
  proxy->stop();
  EXPECT_NE(proxy->log().find("UIDVALIDITY changed"), std::string::npos) << proxy->log();
}

TEST_F(FaultsTest, UnsolicitedUidValidityChangeAbortsDeletions) {
  ScriptedImapPeer peer(script());
  auto proxy = proxyFor(peer);
  Pop3TestClient pop(proxy->port());
  login(pop);
  EXPECT_TRUE(startsWith(pop.command("DELE 3"), "+OK"));
  peer.push("* OK [UIDVALIDITY 1700000001] UIDs reset\r\n");
  // Nothing orders the push against the client's next command: QUIT waits until popbridge saw it.
  for (int i = 0;
       i < 200 && proxy->log().find("UIDVALIDITY changed from 1700000000 to "
                                    "1700000001 during the session") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string reply = pop.command("QUIT");
  EXPECT_EQ(reply,
            "-ERR [SYS/TEMP] Mailbox changed on the server (UIDVALIDITY); no messages "
            "were deleted.");
  ASSERT_TRUE(peer.waitForClosed(1, 5000));
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
}

// --- read-ahead ([upstream] read_ahead) ------------------------------------------------------

// read_ahead explicitly: .ci/test's fast-paths-off run only turns off keys a test leaves unset.
PopbridgeProcess::Options readAheadOn() {
  PopbridgeProcess::Options options;
  options.upstream = "read_ahead = true\n";
  return options;
}

// Resident memory of `pid` in KiB (VmRSS), 0 when unreadable.
std::size_t residentKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (startsWith(line, "VmRSS:")) return std::stoul(line.substr(6));
  }
  return 0;
}

// Waits (bounded) until popbridge's log holds `text`.
bool waitForLog(const PopbridgeProcess& proxy, std::string_view text) {
  for (int i = 0; i < 200; ++i) {
    if (proxy.log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// LIST, then RETR 1: a download in order, so message 2 (UID 12) is read ahead.
void startDownload(Pop3TestClient& pop, const ScriptedImapPeer::Script& s) {
  pop.multiLine("LIST");
  EXPECT_EQ(pop.multiLine("RETR 1"), s.messages[0].bytes);
}

TEST_F(FaultsTest, UpstreamDropDuringAReadAheadGivesTheNextRetrErrAndDeletesNothing) {
  ScriptedImapPeer::Script s = script();
  Reaction cut;
  cut.kind = Kind::CloseMidLiteral;
  cut.literalBytes = 1000;
  cut.uids = {kFirstUid + 1};
  s.reactions[Step::Body] = cut;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer, readAheadOn());
  Pop3TestClient pop(proxy->port());
  login(pop);
  startDownload(pop, s);
  EXPECT_TRUE(startsWith(pop.command("DELE 1"), "+OK"));
  // The client is idle meanwhile: the session stays, and only its next command hears of it.
  ASSERT_TRUE(waitForLog(*proxy, "during a read-ahead")) << proxy->log();
  EXPECT_EQ(pop.command("RETR 2"), "-ERR [SYS/TEMP] Upstream connection lost, try again later.");
  EXPECT_EQ(pop.command("QUIT"),
            "-ERR [SYS/TEMP] Upstream connection lost; deletions may not have been applied.");
  EXPECT_TRUE(pop.closedByPeer());
  EXPECT_TRUE(mutations(peer).empty()) << peer.transcript();
}

// Message 2 says 1000 octets in the snapshot but is 8 MiB (a server's estimate): the existence
// check passes and it is fetched again whatever its size, into the read-ahead. A client that
// does not ask for it must not make popbridge hold it.
TEST_F(FaultsTest, AReadAheadTheClientDoesNotTakeKeepsMemoryBounded) {
  ScriptedImapPeer::Script s = script();
  constexpr std::size_t kBig = 8 * 1024 * 1024;
  s.messages[1].bytes = bigMessage(kBig);
  s.messages[1].reportedSize = 1000;
  ScriptedImapPeer peer(s);
  auto proxy = proxyFor(peer, readAheadOn());
  Pop3TestClient pop(proxy->port());
  login(pop);
  startDownload(pop, s);
  const std::size_t before = residentKib(proxy->pid());
  ASSERT_GT(before, 0u);
  ASSERT_TRUE(waitForLog(*proxy, "the message exists, fetching it again")) << proxy->log();
  std::size_t peak = 0;
  for (int i = 0; i < 20; ++i) {
    peak = std::max(peak, residentKib(proxy->pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The read-ahead holds write_high_watermark (256 KiB) and one read (64 KiB); allow for the
  // allocator, far below the 8 MiB message.
  EXPECT_LT(peak, before + 3 * 1024) << "VmRSS grew from " << before << " KiB to " << peak;
  std::printf(
      "[ figures ] popbridge VmRSS %zu KiB before an 8 MiB read-ahead, at most %zu KiB "
      "while the client does not take it\n",
      before, peak);
  // Asked for, it streams in full, byte-exact, with the size the snapshot announced.
  std::string status;
  std::string body = pop.multiLine("RETR 2", &status);
  EXPECT_EQ(status, "+OK 1000 octets");
  EXPECT_EQ(body.size(), kBig);
  EXPECT_TRUE(body == s.messages[1].bytes);
  EXPECT_EQ(pop.multiLine("RETR 3"), s.messages[2].bytes);
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
}

// --- the upstream is down ---------------------------------------------------------------------

TEST_F(FaultsTest, UpstreamRefusingConnectionsGivesSysTempAtOnce) {
  // A port that was free a moment ago: nothing listens there.
  PopbridgeProcess::Options options;
  options.upstreamPort = freeLoopbackPort();
  PopbridgeProcess proxy(dovecot(), options);
  Pop3TestClient pop(proxy.port());
  pop.command("USER alice");
  auto start = Clock::now();
  std::string reply = pop.command("PASS " + dovecot().user("alice").password);
  double elapsed = secondsSince(start);
  EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  std::printf("[ figures ] upstream refusing: -ERR after %.3f s\n", elapsed);
  EXPECT_LT(elapsed, 2.8);  // inside the 3 s connect_timeout: a refusal is not waited out
  // Outages are not password guesses: no failed-login delay, no disconnect.
  EXPECT_NO_THROW(pop.multiLine("CAPA"));
}

TEST_F(FaultsTest, UpstreamBlackholeGivesSysTempWithinConnectTimeout) {
  // A listener with a full backlog: the kernel drops further SYNs, so connect() hangs exactly
  // like a firewalled or unplugged server.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), length), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  int filler = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(filler, reinterpret_cast<sockaddr*>(&address), length), 0);

  PopbridgeProcess::Options options;
  options.upstreamPort = ntohs(address.sin_port);  // connect_timeout is "3s" in PopbridgeProcess
  PopbridgeProcess proxy(dovecot(), options);
  Pop3TestClient pop(proxy.port());
  pop.command("USER alice");
  auto start = Clock::now();
  std::string reply = pop.command("PASS " + dovecot().user("alice").password);
  double elapsed = secondsSince(start);
  ::close(filler);
  ::close(listener);
  EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  std::printf("[ figures ] upstream blackholed: -ERR after %.3f s (connect_timeout 3s)\n", elapsed);
  EXPECT_GE(elapsed, 2.8);
  EXPECT_LT(elapsed, 6.0);
}

}  // namespace
}  // namespace popbridge::test
