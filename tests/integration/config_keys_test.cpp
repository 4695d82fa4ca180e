// One integration test per behaviour key of the configuration: the running
// proxy must honour what the TOML file says.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/password.h"
#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

bool hasFlag(const std::vector<std::string>& flags, std::string_view flag) {
  return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

class ConfigKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 1; i <= 4; ++i) messages_.push_back(simpleMessage(i));
    dovecot_.seedMaildir("alice", messages_);
  }
  const DovecotUser& alice() const { return dovecot_.user("alice"); }
  void login(Pop3TestClient& pop) {
    ASSERT_EQ(pop.command("USER alice").rfind("+OK", 0), 0u);
    ASSERT_EQ(pop.command("PASS " + alice().password).rfind("+OK", 0), 0u);
  }
  ImapTestClient imap(std::string_view folder = "INBOX") {
    ImapTestClient client(dovecot_.imapPort());
    client.login("alice", alice().password);
    client.select(folder);
    return client;
  }

  DovecotFixture dovecot_;
  std::vector<std::string> messages_;
};

TEST_F(ConfigKeysTest, Ipv6Listener) {
  PopbridgeProcess::Options options;
  options.listeners[0].host = "::1";
  PopbridgeProcess proxy(dovecot_, options);
  CommandResult result =
      runCommand({"curl", "-s", "--max-time", "20", "--user", "alice:" + alice().password,
                  "pop3://[::1]:" + std::to_string(proxy.port()) + "/1"});
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_EQ(result.output, imap().body(imap().uids()[0]));
}

TEST_F(ConfigKeysTest, MarkSeenOnRetr) {
  PopbridgeProcess::Options options;
  options.mailbox = "mark_seen_on_retr = true";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  pop.multiLine("RETR 2");
  pop.multiLine("TOP 3 0");
  pop.command("QUIT");
  auto client = imap();
  auto uids = client.uids();
  EXPECT_FALSE(hasFlag(client.flags(uids[0]), "\\Seen"));
  EXPECT_TRUE(hasFlag(client.flags(uids[1]), "\\Seen"));
  EXPECT_FALSE(hasFlag(client.flags(uids[2]), "\\Seen")) << "TOP must not mark messages read";
}

TEST_F(ConfigKeysTest, FolderAndMoveTo) {
  dovecot_.seedMaildir("alice", {simpleMessage(90), simpleMessage(91)}, "Scans");
  {
    auto client = imap();
    client.create("Done");
  }
  PopbridgeProcess::Options options;
  options.onDelete = "move";
  options.mailbox = "folder = \"Scans\"\nmove_to = \"Done\"";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  EXPECT_EQ(pop.command("STAT").rfind("+OK 2 ", 0), 0u);
  EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_EQ(imap("Scans").uids().size(), 1u);
  auto done = imap("Done");
  auto moved = done.uids();
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(done.body(moved[0]), simpleMessage(90));
  EXPECT_EQ(imap().uids().size(), messages_.size()) << "INBOX must be untouched";
}

TEST_F(ConfigKeysTest, UidlFormat) {
  PopbridgeProcess::Options options;
  options.mailbox = "uidl_format = \"pb-%u.%v\"";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  auto client = imap();
  ImapTestClient::SelectInfo info = client.select();
  EXPECT_EQ(pop.command("UIDL 1"), "+OK 1 pb-" + std::to_string(client.uids()[0]) + "." +
                                       std::to_string(info.uidValidity));
}

TEST_F(ConfigKeysTest, MaxMessagesShowsOnlyTheNewest) {
  PopbridgeProcess::Options options;
  options.mailbox = "max_messages = 2";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  EXPECT_EQ(pop.command("STAT").rfind("+OK 2 ", 0), 0u);
  EXPECT_EQ(pop.multiLine("RETR 1"), messages_[2]);
  EXPECT_EQ(pop.multiLine("RETR 2"), messages_[3]);
}

TEST_F(ConfigKeysTest, MaxConnectionsPerIp) {
  PopbridgeProcess::Options options;
  options.server = "max_connections_per_ip = 1";
  PopbridgeProcess proxy(dovecot_, options);
  // The start-up probe's connection may not be released yet; wait until a
  // connection is accepted.
  std::unique_ptr<Pop3TestClient> accepted;
  for (int attempt = 0; attempt < 50; ++attempt) {
    accepted = std::make_unique<Pop3TestClient>(proxy.port());
    if (accepted->greeting().rfind("+OK", 0) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Pop3TestClient& first = *accepted;
  ASSERT_EQ(first.greeting().rfind("+OK", 0), 0u);
  Pop3TestClient second(proxy.port());
  EXPECT_EQ(second.greeting(), "-ERR [SYS/TEMP] Too many connections, try again later.");
  EXPECT_TRUE(second.closedByPeer());
  login(first);  // the first is unaffected
}

TEST_F(ConfigKeysTest, MaxBadCommands) {
  PopbridgeProcess::Options options;
  options.server = "max_bad_commands = 2";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  EXPECT_EQ(pop.command("BOGUS").rfind("-ERR", 0), 0u);
  EXPECT_EQ(pop.command("BOGUS"), "-ERR Too many bad commands, closing connection.");
  EXPECT_TRUE(pop.closedByPeer());
}

TEST_F(ConfigKeysTest, IdleTimeout) {
  PopbridgeProcess::Options options;
  // Long enough that a slow login on a loaded machine is not taken for inactivity.
  options.server = "idle_timeout = \"3s\"";
  PopbridgeProcess proxy(dovecot_, options);
  Pop3TestClient pop(proxy.port());
  login(pop);
  pop.command("DELE 1");
  EXPECT_EQ(pop.readLine(), "-ERR Disconnected for inactivity.");
  EXPECT_TRUE(pop.closedByPeer());
  EXPECT_FALSE(hasFlag(imap().flags(imap().uids()[0]), "\\Deleted"));
}

TEST_F(ConfigKeysTest, JsonLogFormat) {
  PopbridgeProcess::Options options;
  options.server = "log_format = \"json\"";
  options.logLevel = "info";
  PopbridgeProcess proxy(dovecot_, options);
  {
    Pop3TestClient pop(proxy.port());
    login(pop);
    pop.command("QUIT");
  }
  proxy.stop();
  std::string log = proxy.log();
  std::size_t lines = 0;
  std::size_t start = 0;
  while (start < log.size()) {
    std::size_t end = log.find('\n', start);
    std::string line = log.substr(start, end - start);
    start = end == std::string::npos ? log.size() : end + 1;
    if (line.empty()) continue;
    ++lines;
    EXPECT_EQ(line.front(), '{') << line;
    EXPECT_EQ(line.back(), '}') << line;
    EXPECT_NE(line.find("\"msg\":"), std::string::npos) << line;
  }
  EXPECT_GE(lines, 3u);
  EXPECT_NE(log.find("\"user\":\"alice\""), std::string::npos) << log;
}

TEST_F(ConfigKeysTest, SeveralWorkers) {
  PopbridgeProcess::Options options;
  options.server = "workers = 2";
  PopbridgeProcess proxy(dovecot_, options);
  for (int i = 0; i < 6; ++i) {
    Pop3TestClient pop(proxy.port());
    login(pop);
    EXPECT_EQ(pop.command("STAT").rfind("+OK 4 ", 0), 0u);
    pop.command("QUIT");
  }
}

TEST_F(ConfigKeysTest, LocalAccountsMapOntoUpstreamAccounts) {
  TempDir secrets("popbridge-secrets");
  std::string passwordFile = secrets.path() + "/alice";
  writeTextFile(passwordFile, alice().password + "\n");
  const std::string localPassword = "scanner-Local-9";
  std::string hash = config::hashPassword(localPassword);
  ASSERT_FALSE(hash.empty());
  PopbridgeProcess::Options options;
  options.extra = "[[account]]\nuser = \"scanner1\"\npassword_hash = \"" + hash +
                  "\"\nupstream_user = \"alice\"\nupstream_password_file = \"" + passwordFile +
                  "\"\nmax_messages = 3\n";
  PopbridgeProcess proxy(dovecot_, options);
  proxy.addSecret(localPassword);
  {
    Pop3TestClient pop(proxy.port());
    pop.command("USER scanner1");
    ASSERT_EQ(pop.command("PASS " + localPassword).rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("STAT").rfind("+OK 3 ", 0), 0u) << "the account's own max_messages";
    EXPECT_EQ(pop.multiLine("RETR 3"), messages_[3]);
    pop.command("QUIT");
  }
  Pop3TestClient pop(proxy.port());
  pop.command("USER scanner1");
  EXPECT_EQ(pop.command("PASS wrong"), "-ERR [AUTH] Authentication failed.");
  pop.command("USER nobody-here");
  EXPECT_EQ(pop.command("PASS " + localPassword), "-ERR [AUTH] Authentication failed.");
  // With accounts configured, upstream credentials are not accepted directly.
  pop.command("USER alice");
  EXPECT_EQ(pop.command("PASS " + alice().password), "-ERR [AUTH] Authentication failed.");
}

}  // namespace
}  // namespace popbridge::test
