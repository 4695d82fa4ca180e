// Stable UIDLs (issue 15) against a real Dovecot whose UIDVALIDITY really changes: its
// dovecot-uidlist and index files are removed between sessions, so it numbers the same Maildir
// files anew under a new UIDVALIDITY, as after an index rebuild or a server migration. With
// uidl_format = "%{stable}" and a state store, popbridge keeps serving the UIDLs the devices
// know: real clients (mpop, fetchmail) download nothing again, a message whose match is
// ambiguous gets a new UIDL, and nothing is deleted on a guess.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/real_clients.h"
#include "tests/support/redis_server.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

namespace fs = std::filesystem;

// A message with its own Message-ID, Date, From, To and Subject.
std::string distinctMessage(int index) {
  return simpleMessage(index, 300 + static_cast<std::size_t>(index) * 7);
}

class StableUidlTest : public ::testing::Test {
 protected:
  const DovecotUser& alice() const { return dovecot_.user("alice"); }

  // %{stable} with the given [state]; the pool and the snapshot cache off, so every session
  // sees what Dovecot says now.
  std::unique_ptr<PopbridgeProcess> start(const std::string& state,
                                          const std::string& onDelete = "flag") {
    PopbridgeProcess::Options options;
    options.onDelete = onDelete;
    options.mailbox = "uidl_format = \"%{stable}\"\n";
    options.upstream = "pool_idle = \"0s\"\nsnapshot_cache = false\n";
    options.extra = state;
    options.logLevel = "info";
    return std::make_unique<PopbridgeProcess>(dovecot_, options);
  }
  std::string embeddedState() const { return "[state]\npath = \"" + dir_.path() + "/state.db\"\n"; }

  std::uint32_t uidValidity() {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", alice().password);
    return imap.select().uidValidity;
  }

  // Dovecot forgets its UIDs: the next session numbers the Maildir's files anew, under a new
  // UIDVALIDITY. Returns the new UIDVALIDITY.
  std::uint32_t forgetUids() {
    const std::uint32_t before = uidValidity();
    for (const auto& entry : fs::directory_iterator(dovecot_.maildirPath("alice"))) {
      const std::string name = entry.path().filename().string();
      if (name == "dovecot-uidlist" || name.rfind("dovecot.index", 0) == 0) {
        fs::remove(entry.path());
      }
    }
    const std::uint32_t after = uidValidity();
    EXPECT_NE(after, before) << "Dovecot kept its UIDVALIDITY";
    return after;
  }

  // UIDL through popbridge: message number -> UIDL, and the LIST sizes.
  std::vector<std::string> uidls(std::uint16_t port) {
    Pop3TestClient pop(port);
    EXPECT_TRUE(startsWith(pop.command("USER alice"), "+OK"));
    const std::string pass = pop.command("PASS " + alice().password);
    EXPECT_TRUE(startsWith(pass, "+OK")) << pass;
    std::vector<std::string> out = listingValues(pop.multiLine("UIDL"));
    EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
    return out;
  }

  // UIDL per Message-ID, so that two numberings of one mailbox can be compared.
  std::map<std::string, std::string> uidlsByMessageId(std::uint16_t port) {
    const std::vector<std::string> list = uidls(port);
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", alice().password);
    imap.select();
    const std::vector<std::uint32_t> uids = imap.uids();
    std::map<std::string, std::string> out;
    EXPECT_EQ(list.size(), uids.size());
    for (std::size_t i = 0; i < std::min(list.size(), uids.size()); ++i) {
      const std::string body = imap.body(uids[i]);
      const auto at = body.find("Message-ID: ");
      const std::string id =
          at == std::string::npos ? "none" : body.substr(at + 12, body.find("\r\n", at) - at - 12);
      out[id + "#" + std::to_string(body.size())] = list[i];
    }
    return out;
  }

  std::vector<std::uint32_t> search(const std::string& criteria) {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", alice().password);
    imap.select();
    return imap.uids(criteria);
  }

  DovecotFixture dovecot_;  // its own: the tests rebuild its indexes
  TempDir dir_{"popbridge-stable"};
};

// Without a UIDVALIDITY change %{stable} gives Dovecot's own UIDLs (%08Xu%08Xv of the first
// sight); after one, and after a restart of popbridge on the same state file, the same UIDLs.
TEST_F(StableUidlTest, UidlsSurviveAUidValidityChangeAndARestart) {
  std::vector<std::string> messages;
  for (int i = 1; i <= 6; ++i) messages.push_back(distinctMessage(i));
  dovecot_.seedMaildir("alice", messages);
  const std::uint32_t firstValidity = uidValidity();
  std::map<std::string, std::string> before;
  {
    auto proxy = start(embeddedState());
    before = uidlsByMessageId(proxy->port());
    ASSERT_EQ(before.size(), 6u);
    char expected[17];
    std::snprintf(expected, sizeof expected, "%08x%08x", 1u, firstValidity);
    EXPECT_EQ(uidls(proxy->port()).front(), expected) << "first sight is Dovecot's default";
  }
  forgetUids();
  auto proxy = start(embeddedState());
  const std::map<std::string, std::string> after = uidlsByMessageId(proxy->port());
  EXPECT_EQ(after, before) << proxy->log();
  EXPECT_NE(proxy->log().find("6 of 6 new messages keep an earlier UIDL"), std::string::npos)
      << proxy->log();
  // The map was rewritten for the new UIDVALIDITY: the next session needs no matching.
  EXPECT_EQ(uidlsByMessageId(proxy->port()), before);
}

// The same through Redis: the replicas share the map.
TEST_F(StableUidlTest, UidlsSurviveAUidValidityChangeWithRedis) {
  RedisServer redis;
  const std::string state = "[state]\nredis = \"" + redis.url() + "\"\n";
  std::vector<std::string> messages;
  for (int i = 1; i <= 4; ++i) messages.push_back(distinctMessage(i));
  dovecot_.seedMaildir("alice", messages);
  std::map<std::string, std::string> before;
  {
    auto proxy = start(state);
    before = uidlsByMessageId(proxy->port());
  }
  forgetUids();
  auto proxy = start(state);
  EXPECT_EQ(uidlsByMessageId(proxy->port()), before) << proxy->log();
}

// Redis gone: logins and reads go on with the UIDLs the map would give while UIDVALIDITY stays,
// and QUIT deletes nothing, since a UIDL it could not check might name another message.
TEST_F(StableUidlTest, WithoutRedisTheMapFailsClosed) {
  RedisServer redis;
  const std::string state = "[state]\nredis = \"" + redis.url() + "\"\nredis_timeout = \"1s\"\n";
  std::vector<std::string> messages;
  for (int i = 1; i <= 3; ++i) messages.push_back(distinctMessage(i));
  dovecot_.seedMaildir("alice", messages);
  auto proxy = start(state);
  const std::vector<std::string> before = uidls(proxy->port());
  redis.kill();
  Pop3TestClient pop(proxy->port());
  ASSERT_TRUE(startsWith(pop.command("USER alice"), "+OK"));
  ASSERT_TRUE(startsWith(pop.command("PASS " + alice().password), "+OK")) << proxy->log();
  EXPECT_EQ(listingValues(pop.multiLine("UIDL")), before);
  EXPECT_EQ(pop.multiLine("RETR 2"), messages[1]);
  EXPECT_TRUE(startsWith(pop.command("DELE 2"), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "-ERR [SYS/TEMP]"));
  EXPECT_TRUE(search("DELETED").empty());
  EXPECT_NE(proxy->log().find("the UIDL map could not be read"), std::string::npos) << proxy->log();
}

// Redis answers the map from the loop, after the PASS that asked: a client that pipelined its
// next commands behind PASS (RFC 2449 PIPELINING) has them answered then, not at its idle
// timeout.
TEST_F(StableUidlTest, PipelinedCommandsAfterPassAreAnsweredWhenRedisAnswers) {
  RedisServer redis;
  dovecot_.seedMaildir("alice", {distinctMessage(1), distinctMessage(2)});
  auto proxy = start("[state]\nredis = \"" + redis.url() + "\"\n");
  // The client's default timeout (30s) is far below the idle timeout this guards against, and
  // leaves the login's upstream and Redis steps time on a loaded machine.
  Pop3TestClient pop(proxy->port());
  pop.sendRaw("USER alice\r\nPASS " + alice().password + "\r\nSTAT\r\nUIDL 2\r\nQUIT\r\n");
  EXPECT_TRUE(startsWith(pop.readLine(), "+OK"));
  EXPECT_TRUE(startsWith(pop.readLine(), "+OK")) << proxy->log();
  EXPECT_TRUE(startsWith(pop.readLine(), "+OK 2 "));
  EXPECT_TRUE(startsWith(pop.readLine(), "+OK 2 00000002"));
  EXPECT_TRUE(startsWith(pop.readLine(), "+OK"));
}

// Real clients keep their own UIDL memory: after the change they find nothing new, and a
// message that arrives afterwards is the only one they download.
TEST_F(StableUidlTest, MpopAndFetchmailDownloadNothingAgainInKeepMode) {
  std::vector<std::string> messages;
  for (int i = 1; i <= 5; ++i) messages.push_back(distinctMessage(i));
  dovecot_.seedMaildir("alice", messages);
  auto proxy = start(embeddedState());
  const Account account{proxy->port(), Transport::kPlain, dovecot_.pki().caCert, "alice",
                        alice().password};
  std::vector<std::unique_ptr<MailClient>> clients;
  clients.push_back(makeClient("mpop"));
  clients.push_back(makeClient("fetchmail"));
  for (auto& client : clients) {
    std::vector<Delivered> first;
    ASSERT_NO_THROW(first = client->fetch(account, {Mode::kKeep})) << proxy->log();
    EXPECT_EQ(first.size(), 5u) << client->name() << "\n" << client->lastOutput();
  }
  forgetUids();
  for (auto& client : clients) {
    std::vector<Delivered> again;
    ASSERT_NO_THROW(again = client->fetch(account, {Mode::kKeep})) << proxy->log();
    EXPECT_TRUE(again.empty()) << client->name() << " downloaded " << again.size()
                               << " messages again after the UIDVALIDITY change:\n"
                               << client->lastOutput() << "\n"
                               << proxy->log();
  }
  dovecot_.appendMessage("alice", distinctMessage(9));
  for (auto& client : clients) {
    std::vector<Delivered> fresh;
    ASSERT_NO_THROW(fresh = client->fetch(account, {Mode::kKeep})) << proxy->log();
    ASSERT_EQ(fresh.size(), 1u) << client->name() << "\n" << client->lastOutput();
    EXPECT_NE(fresh[0].bytes.find("msg9"), std::string::npos);
  }
  EXPECT_TRUE(search("DELETED").empty()) << "keep mode deleted something";
}

// Two copies of one message agree on every fact: after the change neither can be told from the
// other, so both get new UIDLs (a device downloads them once more) and neither takes an old
// UIDL. The other messages keep theirs, and QUIT deletes only what the client marked.
TEST_F(StableUidlTest, AnAmbiguousMatchGetsANewUidlAndNothingIsDeletedOnAGuess) {
  std::vector<std::string> messages = {distinctMessage(1), distinctMessage(2), distinctMessage(2),
                                       distinctMessage(3)};
  dovecot_.seedMaildir("alice", messages);
  auto proxy = start(embeddedState());
  const std::vector<std::string> before = uidls(proxy->port());
  ASSERT_EQ(before.size(), 4u);
  forgetUids();
  const std::vector<std::string> after = uidls(proxy->port());
  ASSERT_EQ(after.size(), 4u);
  const std::set<std::string> old(before.begin(), before.end());
  std::size_t kept = 0;
  std::set<std::string> fresh;
  for (const std::string& uidl : after) {
    if (old.contains(uidl)) {
      ++kept;
    } else {
      fresh.insert(uidl);
    }
  }
  EXPECT_EQ(kept, 2u) << "the two distinct messages keep their UIDLs";
  EXPECT_EQ(fresh.size(), 2u) << "the two copies get two new, different UIDLs";
  EXPECT_NE(proxy->log().find("2 ambiguous"), std::string::npos) << proxy->log();
  // A device deletes by the UIDLs it knows: the old UIDLs of the copies are gone, so it can
  // reach them only as the new messages they now are.
  Pop3TestClient pop(proxy->port());
  ASSERT_TRUE(startsWith(pop.command("USER alice"), "+OK"));
  ASSERT_TRUE(startsWith(pop.command("PASS " + alice().password), "+OK"));
  EXPECT_TRUE(startsWith(pop.command("QUIT"), "+OK"));
  EXPECT_TRUE(search("DELETED").empty());
  EXPECT_EQ(search("ALL").size(), 4u);
}

}  // namespace
}  // namespace popbridge::test
