// `popbridge uidl import`: an import file lands in the state store as UIDVALIDITY-0 entries keyed
// 1, 2, 3... in file order, for the mailbox ACCOUNT names, all or nothing; a mailbox that already
// has entries is refused unless --replace. Against a temp SQLite file, a real redis-server, and
// the real binary.

#include "proxy/uidl_command.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/password.h"
#include "protocol/uidl/import_file.h"
#include "protocol/uidl/map_record.h"
#include "proxy/state_store.h"
#include "tests/support/client_runner.h"
#include "tests/support/redis_server.h"

namespace popbridge::proxy {
namespace {

using Entry = StateStore::UidlEntry;

constexpr char kFile[] =
    "popbridge-uidl-import 1\n"
    "# captured from the old server\n"
    "message 1c3a.4f5e 1234\n"
    "From: Alice <a@example.org>\n"
    "To: Bob <b@example.org>\n"
    "Subject: Hello\n"
    "Date: Sat, 1 Jan 2000 00:00:00 +0000\n"
    "Message-ID: <1@example.org>\n"
    "\n"
    ".\n"
    "message UID42-1096552920 99\r\n"
    "..Dotted: yes\r\n"
    "Subject: second\r\n"
    "Date: Sun, 2 Jan 2000 00:00:00 +0000\r\n"
    "Message-ID: <2@example.org>\r\n"
    "\r\n"
    ".\r\n"
    "\n"
    "message third 5000\n"
    "Subject: no ids at all\n"
    "\n"
    ".\n";

struct Outcome {
  int exitCode = -1;
  std::string out;
  std::string err;
};

class UidlImportTest : public ::testing::Test {
 protected:
  UidlImportTest() : dir_("popbridge-uidl") {}

  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string statePath() const { return path("state.db"); }

  // A config with `state` as its [state] lines (default: the temp SQLite file) and `tail`.
  std::string configText(const std::string& tail = "", std::string state = "") const {
    if (state.empty()) state = "[state]\npath = \"" + statePath() + "\"\n";
    return "[[listener]]\naddress = \"127.0.0.1:1100\"\ntls = \"none\"\n"
           "allow_plaintext_auth = true\n"
           "[upstream]\nhost = \"127.0.0.1\"\nport = 143\ntls = \"none\"\n" +
           state + tail;
  }

  config::Config config(const std::string& tail = "", const std::string& state = "") {
    auto result = config::loadConfigString(configText(tail, state), "uidl.toml", {});
    if (!result.ok()) {
      ADD_FAILURE() << (result.errors.empty() ? "no config" : result.errors[0].toString());
      return {};
    }
    return *result.config;
  }

  // [[account]] `name` -> `upstreamUser`, with `lines` (a folder override).
  std::string account(const std::string& name, const std::string& upstreamUser,
                      const std::string& lines = "") {
    const std::string file = path(name + ".password");
    test::writeTextFile(file, "upstream-secret\n");
    static const std::string hash = config::hashPassword("device-password-1");
    return "[[account]]\nuser = \"" + name + "\"\npassword_hash = \"" + hash +
           "\"\nupstream_user = \"" + upstreamUser + "\"\nupstream_password_file = \"" + file +
           "\"\n" + lines;
  }

  std::string importFile(const std::string& text, const std::string& name = "uidls.txt") {
    test::writeTextFile(path(name), text);
    return path(name);
  }

  static Outcome import(const config::Config& config, UidlImportOptions options) {
    std::ostringstream out;
    std::ostringstream err;
    Outcome run;
    run.exitCode = runUidlImport(config, options, out, err);
    run.out = out.str();
    run.err = err.str();
    return run;
  }

  std::vector<Entry> stored(const StateStore::Mailbox& mailbox) {
    std::string error;
    auto store = SqliteStateStore::open(statePath(), error);
    EXPECT_TRUE(store) << error;
    std::vector<Entry> entries;
    if (!store) return entries;
    store->loadUidls(mailbox, [&](StateStore::Status status, std::vector<Entry> got) {
      EXPECT_EQ(status, StateStore::Status::Ok);
      entries = std::move(got);
    });
    return entries;
  }

  void put(const StateStore::Mailbox& mailbox, std::vector<Entry> entries) {
    std::string error;
    auto store = SqliteStateStore::open(statePath(), error);
    ASSERT_TRUE(store) << error;
    bool ok = false;
    store->putUidls(mailbox, std::move(entries),
                    [&](StateStore::Status status) { ok = status == StateStore::Status::Ok; });
    ASSERT_TRUE(ok);
  }

  test::TempDir dir_;
};

Entry servedEntry(std::uint32_t uidValidity, std::uint32_t uid, std::string uidl) {
  Entry entry;
  entry.key = {uidValidity, uid};
  entry.uidl = std::move(uidl);
  entry.messageId = "x@y";
  entry.size = 10;
  return entry;
}

TEST_F(UidlImportTest, StoresEveryMessageUnderUidValidityZeroInFileOrder) {
  const std::string file = importFile(kFile);
  const Outcome run = import(config(), {"alice", file, "", false});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_EQ(run.out,
            "imported 3 UIDLs for alice folder INBOX; the first session matches them against the "
            "mailbox\n");

  std::string error;
  const auto parsed = protocol::uidl::parseImportFile(kFile, error);
  ASSERT_TRUE(parsed) << error;
  const std::vector<Entry> entries = stored({"alice", "INBOX"});
  ASSERT_EQ(entries.size(), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const auto& expected = (*parsed)[i];
    EXPECT_EQ(entries[i].key, (protocol::UidKey{protocol::uidl::kImportUidValidity, i + 1}));
    EXPECT_EQ(entries[i].uidl, expected.uidl);
    EXPECT_EQ(protocol::uidl::toFacts(entries[i]), expected.facts);
    EXPECT_EQ(entries[i], protocol::uidl::toRecord({0, i + 1}, expected.uidl, expected.facts));
  }
  EXPECT_EQ(entries[0].uidl, "1c3a.4f5e");
  EXPECT_EQ(entries[1].uidl, "UID42-1096552920");
  EXPECT_EQ(entries[1].size, 99u);
  EXPECT_EQ(entries[1].messageId, "2@example.org");
  EXPECT_GT(entries[0].headerLines, 0u) << "the TOP block's line count is kept for the match";
  EXPECT_TRUE(stored({"bob", "INBOX"}).empty()) << "another mailbox is untouched";
}

TEST_F(UidlImportTest, AMailboxWithEntriesIsRefusedUnlessReplace) {
  const StateStore::Mailbox inbox{"alice", "INBOX"};
  put(inbox, {servedEntry(77, 1, "served-1"), servedEntry(77, 2, "served-2")});
  put({"alice", "Other"}, {servedEntry(5, 1, "other")});
  const std::string file = importFile(kFile);

  const Outcome refused = import(config(), {"alice", file, "", false});
  EXPECT_EQ(refused.exitCode, kUidlFailed);
  EXPECT_TRUE(refused.out.empty()) << refused.out;
  EXPECT_NE(refused.err.find("already has 2 UIDL entries"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--replace"), std::string::npos) << refused.err;
  std::vector<Entry> entries = stored(inbox);
  ASSERT_EQ(entries.size(), 2u) << "nothing written";
  EXPECT_EQ(entries[0].uidl, "served-1");

  const Outcome replaced = import(config(), {"alice", file, "", true});
  ASSERT_EQ(replaced.exitCode, kUidlOk) << replaced.err;
  entries = stored(inbox);
  ASSERT_EQ(entries.size(), 3u) << "the old entries are erased, the file's stored";
  for (const Entry& entry : entries) EXPECT_EQ(entry.key.uidValidity, 0u);
  EXPECT_EQ(stored({"alice", "Other"}).size(), 1u) << "another folder is untouched";

  // An earlier import (uv-0 entries) also counts as entries: importing twice is refused too.
  const Outcome again = import(config(), {"alice", file, "", false});
  EXPECT_EQ(again.exitCode, kUidlFailed);
  EXPECT_NE(again.err.find("3 of an earlier import"), std::string::npos) << again.err;
  EXPECT_EQ(stored(inbox).size(), 3u);
}

TEST_F(UidlImportTest, ReplaceWithASmallerFileLeavesOnlyIt) {
  const StateStore::Mailbox inbox{"alice", "INBOX"};
  ASSERT_EQ(import(config(), {"alice", importFile(kFile), "", false}).exitCode, kUidlOk);
  const std::string one =
      "popbridge-uidl-import 1\nmessage only 10\nMessage-ID: <o@x>\nDate: x\n\n.\n";
  const Outcome run = import(config(), {"alice", importFile(one, "one.txt"), "", true});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  const std::vector<Entry> entries = stored(inbox);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].uidl, "only");
  EXPECT_EQ(entries[0].key, (protocol::UidKey{0, 1}));
}

TEST_F(UidlImportTest, ABadFileNamesItsLineAndWritesNothing) {
  struct Case {
    std::string text;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"popbridge-uidl-import 1\nmessage a 1\nSubject: x\n\n.\n1 bare-uidl\n", ": line 6: "},
      {"not an import file\n", ": line 1: "},
      {"popbridge-uidl-import 1\nmessage a 1\nSubject: x\n", "message"},  // ends inside one
      {"popbridge-uidl-import 1\nmessage a 1\n\n.\nmessage a 2\n\n.\n", ": line 5: "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string file = importFile(c.text, "bad.txt");
    const Outcome run = import(config(), {"alice", file, "", false});
    EXPECT_EQ(run.exitCode, kUidlUsage);
    EXPECT_EQ(run.err.rfind(file + ": line ", 0), 0u) << run.err;
    EXPECT_NE(run.err.find(c.error), std::string::npos) << run.err;
    EXPECT_TRUE(run.out.empty());
    EXPECT_TRUE(stored({"alice", "INBOX"}).empty());
  }
  const Outcome missing = import(config(), {"alice", path("nonexistent.txt"), "", false});
  EXPECT_EQ(missing.exitCode, kUidlUsage);
  EXPECT_NE(missing.err.find("cannot read"), std::string::npos) << missing.err;
}

TEST_F(UidlImportTest, AnAccountNamesItsUpstreamLoginAndFolder) {
  const config::Config withAccounts =
      config(account("phone", "Alice@Example.ORG", "folder = \"Work\"\n") +
             account("laptop", "bob@example.org"));
  const std::string file = importFile(kFile);

  // The account's upstream login, lower-cased as every maildrop key is, and its folder.
  Outcome run = import(withAccounts, {"phone", file, "", false});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_EQ(run.out,
            "imported 3 UIDLs for phone folder Work; the first session matches them against the "
            "mailbox\n");
  EXPECT_NE(run.err.find("upstream login Alice@Example.ORG"), std::string::npos) << run.err;
  EXPECT_EQ(stored({"alice@example.org", "Work"}).size(), 3u);
  EXPECT_TRUE(stored({"phone", "Work"}).empty());

  // An account without a folder of its own takes [mailbox] folder; --folder overrides.
  run = import(withAccounts, {"laptop", file, "Archive", false});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_EQ(stored({"bob@example.org", "Archive"}).size(), 3u);
  EXPECT_TRUE(stored({"bob@example.org", "INBOX"}).empty());

  // Not an account: the upstream login itself, with a note, and [mailbox] folder.
  run = import(withAccounts, {"Carol@Example.org", file, "", false});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_NE(run.err.find("is not an [[account]]"), std::string::npos) << run.err;
  EXPECT_EQ(stored({"carol@example.org", "INBOX"}).size(), 3u);

  // Without accounts, no note: logins are passed through to the upstream.
  const config::Config custom = config("[mailbox]\nfolder = \"Mail\"\n");
  run = import(custom, {"dave", file, "", false});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_EQ(run.err.find("[[account]]"), std::string::npos) << run.err;
  EXPECT_EQ(stored({"dave", "Mail"}).size(), 3u);
}

TEST_F(UidlImportTest, WithoutAStateStoreThereIsNothingToImportInto) {
  const Outcome run = import(config("", "[state]\n"), {"alice", importFile(kFile), "", false});
  EXPECT_EQ(run.exitCode, kUidlFailed);
  EXPECT_NE(run.err.find("no [state] path or redis"), std::string::npos) << run.err;
}

TEST_F(UidlImportTest, AnUnusableStoreIsAnError) {
  const Outcome run = import(config("", "[state]\npath = \"/nonexistent-dir/state.db\"\n"),
                             {"alice", importFile(kFile), "", false});
  EXPECT_EQ(run.exitCode, kUidlFailed);
  EXPECT_NE(run.err.find("cannot open the state store"), std::string::npos) << run.err;
}

TEST_F(UidlImportTest, IntoRedis) {
  test::RedisServer redis({.password = "redis-Pa55"});
  const std::string state =
      "[state]\nredis = \"redis://:redis-Pa55@127.0.0.1:" + std::to_string(redis.port()) +
      "\"\nkey_prefix = \"t:\"\n";
  const std::string file = importFile(kFile);
  const Outcome run = import(config("", state), {"Alice", file, "", false});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_EQ(run.err.find("redis-Pa55"), std::string::npos) << run.err;
  const std::string key = "t:uidl:5:alice:INBOX";
  EXPECT_EQ(redis.command({"HLEN", key}), "3");
  const auto first = StateStore::decodeEntry({0, 1}, redis.command({"HGET", key, "0:1"}));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->uidl, "1c3a.4f5e");
  EXPECT_EQ(first->messageId, "1@example.org");
  EXPECT_EQ(redis.command({"HEXISTS", key, "0:3"}), "1");

  const Outcome refused = import(config("", state), {"alice", file, "", false});
  EXPECT_EQ(refused.exitCode, kUidlFailed) << refused.err;
  EXPECT_NE(refused.err.find("already has 3 UIDL entries"), std::string::npos) << refused.err;
  const Outcome replaced = import(config("", state), {"alice", file, "", true});
  EXPECT_EQ(replaced.exitCode, kUidlOk) << replaced.err;
}

TEST_F(UidlImportTest, IntoRedisOverTls) {
  if (!test::RedisServer::supportsTls()) GTEST_SKIP() << "this redis-server has no TLS";
  test::RedisServer redis({.password = "tls-Pa55", .tls = true});
  test::writeTextFile(path("redis.password"), "tls-Pa55\n");
  const std::string state = "[state]\nredis = \"" + redis.url() + "\"\nredis_ca_file = \"" +
                            redis.caFile() + "\"\nredis_password_file = \"" +
                            path("redis.password") + "\"\n";
  const Outcome run = import(config("", state), {"alice", importFile(kFile), "", false});
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_EQ(redis.command({"HLEN", "popbridge:uidl:5:alice:INBOX"}), "3");
}

TEST_F(UidlImportTest, AnUnreachableRedisIsAnErrorWithinItsTimeout) {
  const std::string state = "[state]\nredis = \"redis://127.0.0.1:1\"\nredis_timeout = \"1s\"\n";
  const Outcome run = import(config("", state), {"alice", importFile(kFile), "", false});
  EXPECT_EQ(run.exitCode, kUidlFailed);
  EXPECT_NE(run.err.find("nothing written"), std::string::npos) << run.err;
}

// The real binary, as an operator runs it.
TEST_F(UidlImportTest, TheBinaryImportsAndReportsBadFiles) {
  const std::string configPath = path("popbridge.toml");
  test::writeTextFile(configPath, configText());
  const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
  const std::string binary = custom ? custom : POPBRIDGE_BINARY;

  const std::string bad = importFile("popbridge-uidl-import 1\nmessage a\n", "bad.txt");
  test::CommandResult result =
      test::runCommand({binary, "uidl", "import", "--config", configPath, "alice", bad});
  EXPECT_EQ(result.exitCode, 2) << result.describe();
  EXPECT_NE(result.output.find(bad + ": line 2: "), std::string::npos) << result.output;

  result = test::runCommand(
      {binary, "uidl", "import", "--config=" + configPath, "alice", importFile(kFile)});
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_NE(result.output.find("imported 3 UIDLs for alice folder INBOX; the first session "
                               "matches them against the mailbox"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(stored({"alice", "INBOX"}).size(), 3u);

  result = test::runCommand(
      {binary, "uidl", "import", "--config", configPath, "alice", importFile(kFile)});
  EXPECT_EQ(result.exitCode, 1) << result.describe();
  result = test::runCommand({binary, "uidl", "import", "--config", configPath, "--folder", "Old",
                             "--replace", "alice", importFile(kFile)});
  EXPECT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_EQ(stored({"alice", "Old"}).size(), 3u);

  result = test::runCommand({binary, "uidl", "import", "alice"});
  EXPECT_EQ(result.exitCode, 2) << result.describe();
  EXPECT_NE(result.output.find("Usage: popbridge uidl import"), std::string::npos);
}

// --- capture ---------------------------------------------------------------------------------
// Against Dovecot's own POP3 in tests/integration/uidl_import_test.cpp; here what a real server
// cannot be made to do on demand: refuse UIDL, go silent, drop the connection mid-capture.

constexpr char kStall[] = "<stall>";  // no answer; the connection stays open
constexpr char kClose[] = "<close>";  // the connection closes without an answer

// One connection on a free 127.0.0.1 port: the greeting, then each command line's reply from
// `replies` (PASS is looked up as "PASS", whatever the password). A command it has no reply for
// gets "-ERR unknown".
class ScriptedPop3 {
 public:
  explicit ScriptedPop3(std::map<std::string, std::string> replies) : replies_(std::move(replies)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_, 4) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("cannot listen");
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedPop3() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  ScriptedPop3(const ScriptedPop3&) = delete;
  ScriptedPop3& operator=(const ScriptedPop3&) = delete;

  std::uint16_t port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  // The command lines received, in order, without line ends.
  std::vector<std::string> commands() {
    std::lock_guard lock(mutex_);
    return commands_;
  }

 private:
  // Waits for `fd` to be readable, checking stop_ every 50 ms.
  bool readable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) return true;
    }
    return false;
  }

  void serve() {
    if (!readable(listener_)) return;
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    auto send = [fd](const std::string& text) {
      (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    };
    send("+OK scripted POP3 ready\r\n");
    std::string buffer;
    bool stalled = false;
    char chunk[4096];
    while (readable(fd)) {
      const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
      if (got <= 0) break;
      buffer.append(chunk, static_cast<std::size_t>(got));
      std::size_t end;
      bool closed = false;
      while (!stalled && (end = buffer.find("\r\n")) != std::string::npos) {
        const std::string line = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        {
          std::lock_guard lock(mutex_);
          commands_.push_back(line);
        }
        const auto found = replies_.find(line.rfind("PASS ", 0) == 0 ? "PASS" : line);
        const std::string reply = found == replies_.end() ? "-ERR unknown\r\n" : found->second;
        if (reply == kStall) {
          stalled = true;
        } else if (reply == kClose) {
          closed = true;
          break;
        } else {
          send(reply);
        }
      }
      if (closed) break;
    }
    ::close(fd);
  }

  std::map<std::string, std::string> replies_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> commands_;
};

std::map<std::string, std::string> oldServer() {
  return {{"USER alice", "+OK\r\n"},
          {"PASS", "+OK logged in\r\n"},
          {"UIDL", "+OK\r\n1 old-1\r\n2 old-2\r\n.\r\n"},
          {"LIST", "+OK 2 messages\r\n1 120\r\n2 240\r\n.\r\n"},
          {"TOP 1 0",
           "+OK\r\nSubject: one\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: "
           "<1@old>\r\n\r\n.\r\n"},
          {"TOP 2 0",
           "+OK\r\nSubject: two\r\nDate: Mon, 2 Nov 2026 11:00:00 +0000\r\nMessage-ID: "
           "<2@old>\r\n\r\n.\r\n"},
          {"QUIT", "+OK bye\r\n"}};
}

class UidlCaptureTest : public ::testing::Test {
 protected:
  UidlCaptureTest() : dir_("popbridge-capture") {
    test::writeTextFile(passwordFile(), "old-Secret-9\n");
  }

  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string passwordFile() const { return path("password"); }

  Outcome capture(const ScriptedPop3& server, const std::string& output,
                  std::chrono::milliseconds replyTimeout = std::chrono::seconds(20)) {
    UidlCaptureOptions options;
    options.host = "127.0.0.1";
    options.port = server.port();
    options.allowPlaintext = true;
    options.user = "alice";
    options.passwordFile = passwordFile();
    options.output = output;
    options.replyTimeout = replyTimeout;
    std::ostringstream err;
    Outcome outcome;
    outcome.exitCode = runUidlCapture(options, err);
    outcome.err = err.str();
    EXPECT_EQ(outcome.err.find("old-Secret-9"), std::string::npos) << "the password is never shown";
    return outcome;
  }

  static bool exists(const std::string& file) { return ::access(file.c_str(), F_OK) == 0; }

  test::TempDir dir_;
};

TEST_F(UidlCaptureTest, WritesTheImportFileAndQuits) {
  ScriptedPop3 server(oldServer());
  const Outcome run = capture(server, path("out.txt"));
  ASSERT_EQ(run.exitCode, kUidlOk) << run.err;
  EXPECT_NE(run.err.find("captured 2 messages"), std::string::npos) << run.err;
  EXPECT_EQ(test::readWholeFile(path("out.txt")),
            "popbridge-uidl-import 1\n"
            "message old-1 120\nSubject: one\nDate: Mon, 2 Nov 2026 10:00:00 +0000\n"
            "Message-ID: <1@old>\n\n.\n"
            "message old-2 240\nSubject: two\nDate: Mon, 2 Nov 2026 11:00:00 +0000\n"
            "Message-ID: <2@old>\n\n.\n");
  EXPECT_FALSE(exists(path("out.txt.partial")));
  EXPECT_EQ(server.commands(), (std::vector<std::string>{"USER alice", "PASS old-Secret-9", "UIDL",
                                                         "LIST", "TOP 1 0", "TOP 2 0", "QUIT"}));
}

TEST_F(UidlCaptureTest, ARefusalEndsTheCaptureWithoutAFile) {
  struct Case {
    std::string command;
    std::string reply;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"PASS", "-ERR [AUTH] invalid password\r\n", "refused the login: -ERR [AUTH]"},
      {"UIDL", "-ERR UIDL not supported\r\n", "UIDL was refused: -ERR UIDL not supported"},
      {"TOP 2 0", "-ERR no such message\r\n", "TOP n 0 was refused"},
      {"TOP 2 0", kClose, "the connection closed"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command + " -> " + c.reply);
    auto replies = oldServer();
    replies[c.command] = c.reply;
    ScriptedPop3 server(replies);
    const Outcome run = capture(server, path("out.txt"));
    EXPECT_EQ(run.exitCode, kUidlFailed);
    EXPECT_NE(run.err.find(c.error), std::string::npos) << run.err;
    EXPECT_FALSE(exists(path("out.txt")));
    EXPECT_FALSE(exists(path("out.txt.partial")));
  }
}

TEST_F(UidlCaptureTest, SilenceEndsAtTheReplyTimeout) {
  auto replies = oldServer();
  replies["LIST"] = kStall;
  ScriptedPop3 server(replies);
  // The timeout bounds every reply: the earlier ones must fit in it on a loaded machine too.
  const Outcome run = capture(server, path("out.txt"), std::chrono::seconds(2));
  EXPECT_EQ(run.exitCode, kUidlFailed);
  EXPECT_NE(run.err.find("no answer within"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("LIST"), std::string::npos) << run.err;
  EXPECT_FALSE(exists(path("out.txt")));
}

TEST_F(UidlCaptureTest, BadArgumentsAreUsageErrors) {
  const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
  const std::string binary = custom ? custom : POPBRIDGE_BINARY;
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{"--tls", "pop.example.org", "alice", "--password-file", passwordFile()}, "HOST:PORT"},
      {{"--tls", "::1:995", "alice", "--password-file", passwordFile()}, "HOST:PORT"},
      {{"--tls", "pop.example.org:995", "alice"}, "Usage"},
      {{"--tls", "--min-tls-version", "0.9", "pop.example.org:995", "alice", "--password-file",
        passwordFile()},
       "one of 1.0, 1.1, 1.2, 1.3"},
      {{"--frobnicate", "pop.example.org:995", "alice", "--password-file", passwordFile()},
       "--frobnicate"},
      {{"--tls", "pop.example.org:995", "alice", "--password-file", path("missing")},
       "cannot read --password-file"},
      {{"127.0.0.1:110", "alice", "--password-file", passwordFile()}, "--allow-plaintext"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv{binary, "uidl", "capture"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const test::CommandResult result = test::runCommand(argv);
    EXPECT_EQ(result.exitCode, 2) << result.describe();
    EXPECT_NE(result.output.find(c.error), std::string::npos) << result.describe();
  }
}

// On stdout a capture that broke off cannot pass for a whole mailbox: the import refuses it.
TEST_F(UidlCaptureTest, ABrokenCaptureOnStdoutIsRefusedByTheImport) {
  const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
  const std::string binary = custom ? custom : POPBRIDGE_BINARY;
  const std::string configPath = path("popbridge.toml");
  test::writeTextFile(configPath,
                      "[[listener]]\naddress = \"127.0.0.1:1100\"\ntls = \"none\"\n"
                      "allow_plaintext_auth = true\n[upstream]\nhost = \"127.0.0.1\"\n"
                      "port = 143\ntls = \"none\"\n[state]\npath = \"" +
                          path("state.db") + "\"\n");
  for (bool broken : {true, false}) {
    SCOPED_TRACE(broken ? "broken" : "complete");
    auto replies = oldServer();
    if (broken) replies["TOP 2 0"] = kClose;
    ScriptedPop3 server(replies);
    const std::string out = path(broken ? "broken.txt" : "complete.txt");
    test::CommandResult result =
        test::runCommand({"/bin/sh", "-c",
                          binary + " uidl capture --allow-plaintext " + server.target() +
                              " alice --password-file " + passwordFile() + " > " + out});
    EXPECT_EQ(result.exitCode, broken ? 1 : 0) << result.describe();
    const std::string written = test::readWholeFile(out);
    EXPECT_NE(written.find("message old-1 120\n"), std::string::npos) << written;
    EXPECT_EQ(written.find("capture-failed"),
              broken ? written.find("\ncapture-failed: ") + 1 : std::string::npos)
        << written;

    result = test::runCommand(
        {binary, "uidl", "import", "--config", configPath, "--replace", "alice", out});
    EXPECT_EQ(result.exitCode, broken ? 2 : 0) << result.describe();
  }
}

}  // namespace
}  // namespace popbridge::proxy
