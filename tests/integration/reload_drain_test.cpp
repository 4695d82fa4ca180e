// Operations: SIGHUP reloads the configuration for new sessions while running ones keep theirs;
// SIGTERM drains (no new connections, sessions not logged in end at once, logged-in ones get
// shutdown_timeout to QUIT, nothing applied for the rest), and a second SIGTERM ends it at once.
// The real binary in front of the real Dovecot.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"
#include "tests/support/test_tls.h"

namespace popbridge::test {
namespace {

using namespace std::chrono_literals;

std::size_t countOf(const std::string& text, std::string_view part) {
  std::size_t count = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

// Waits until the log holds `part` at least `times` times (up to 15 s); false on timeout.
bool waitForLog(const PopbridgeProcess& proxy, std::string_view part, std::size_t times = 1) {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (countOf(proxy.log(), part) >= times) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::string readFile(const std::string& path) {
  return readWholeFile(path);
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// Replaces the first `from` in the config file; fails the test when there is none.
void editConfig(const PopbridgeProcess& proxy, const std::string& from, const std::string& to) {
  std::string text = readFile(proxy.configPath());
  auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in\n" << text;
  text.replace(at, from.size(), to);
  writeFile(proxy.configPath(), text);
}

// SIGHUP, then the outcome's log line (the n-th reload's).
void reload(PopbridgeProcess& proxy, std::size_t nth, bool expectOk) {
  const char* line = expectOk ? "configuration reloaded: " : "reload failed: ";
  const std::size_t before = countOf(proxy.log(), line);
  proxy.signal(SIGHUP);
  ASSERT_TRUE(waitForLog(proxy, line, before + 1)) << proxy.log();
  EXPECT_EQ(countOf(proxy.log(), "reloading configuration from " + proxy.configPath()), nth)
      << proxy.log();
}

bool connectionRefused(std::uint16_t port) {
  try {
    TestConnection connection(port, 2000);
    return false;
  } catch (const std::exception&) {
    return true;
  }
}

class ReloadDrainTest : public ::testing::Test {
 protected:
  static DovecotFixture& dovecot() { return DovecotFixture::shared(); }

  // A user of its own with `count` small messages.
  void makeUser(const std::string& name, std::size_t count) {
    user_ = dovecot().addUser(name);
    std::vector<std::string> messages;
    for (std::size_t i = 0; i < count; ++i) {
      messages.push_back("Subject: m" + std::to_string(i) + "\r\n\r\nbody " + std::to_string(i) +
                         "\r\n");
    }
    dovecot().seedMaildir(user_.name, messages);
  }
  void login(Pop3TestClient& pop) {
    ASSERT_EQ(pop.command("USER " + user_.name).rfind("+OK", 0), 0u);
    std::string reply = pop.command("PASS " + user_.password);
    ASSERT_EQ(reply.rfind("+OK", 0), 0u) << reply;
  }
  std::vector<std::uint32_t> uids() {
    ImapTestClient imap(dovecot().imapPort());
    imap.login(user_.name, user_.password);
    imap.select();
    return imap.uids();
  }
  std::vector<std::string> flags(std::uint32_t uid) {
    ImapTestClient imap(dovecot().imapPort());
    imap.login(user_.name, user_.password);
    imap.select();
    return imap.flags(uid);
  }
  static bool hasDeleted(const std::vector<std::string>& flags) {
    for (const auto& flag : flags) {
      if (flag == "\\Deleted") return true;
    }
    return false;
  }

  DovecotUser user_;
};

// --- reload ------------------------------------------------------------------------------------

// certbot renews: the same file names, new content. A new TLS session gets the new certificate
// (it verifies against the new CA and no longer against the old one); a session that was open
// before the reload goes on with the old one.
TEST_F(ReloadDrainTest, NewCertificateFilesServeNewSessionsOnly) {
  makeUser("reload-cert", 2);
  TempDir dir("popbridge-reload-cert");
  TestPki second = makeTestPki(dir.path() + "/second");
  const std::string cert = dir.path() + "/server.crt";
  const std::string key = dir.path() + "/server.key";
  writeFile(cert, readFile(dovecot().pki().serverCert));
  writeFile(key, readFile(dovecot().pki().serverKey));
  PopbridgeProcess::Options options;
  options.listeners[0].tls = "implicit";
  options.listeners[0].certificate = cert;
  options.listeners[0].privateKey = key;
  options.mailbox = "exclusive = false\n";  // an old and a new session of one mailbox at once
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);

  Pop3TestClient before(proxy.port(), /*implicitTls=*/true, dovecot().pki().caCert);
  login(before);

  writeFile(cert, readFile(second.serverCert));
  writeFile(key, readFile(second.serverKey));
  reload(proxy, 1, true);

  // The old CA no longer verifies what a new session gets; the new one does.
  EXPECT_THROW(Pop3TestClient(proxy.port(), true, dovecot().pki().caCert), std::exception);
  Pop3TestClient after(proxy.port(), true, second.caCert);
  login(after);
  EXPECT_EQ(after.command("STAT").rfind("+OK 2 ", 0), 0u);
  // The session from before the reload still works, on its old certificate.
  EXPECT_EQ(before.command("STAT").rfind("+OK 2 ", 0), 0u);
  EXPECT_EQ(before.multiLine("RETR 1").find("body 0"), std::string("Subject: m0\r\n\r\n").size());
  EXPECT_EQ(before.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_EQ(after.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_EQ(proxy.stop(), 0) << proxy.log();
}

// A syntax error, then a semantic one: each is logged with file:line:col, nothing changes (the
// old listener answers with its old settings), and the process goes on; a fixed file then
// reloads. READY=1 follows each RELOADING=1.
TEST_F(ReloadDrainTest, ABrokenConfigurationKeepsTheRunningOne) {
  makeUser("reload-broken", 3);
  PopbridgeProcess::Options options;
  options.onDelete = "flag";
  options.notifySocket = "@popbridge-reload-test-" + std::to_string(::getpid());
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);
  const std::string original = readFile(proxy.configPath());
  const std::string path = proxy.configPath();

  // Line 1 of the file is "[server]": break the TOML syntax there.
  writeFile(path, "[server\n" + original.substr(original.find('\n') + 1));
  reload(proxy, 1, false);
  std::string log = proxy.log();
  EXPECT_NE(log.find(path + ":1:"), std::string::npos) << log;
  EXPECT_NE(log.find("reload failed: 1 error(s); keeping the running configuration"),
            std::string::npos)
      << log;

  // Two semantic errors at once, each with its position.
  writeFile(path, original);
  editConfig(proxy, "on_delete = \"flag\"", "on_delete = \"shred\"");
  editConfig(proxy, "auth_failure_delay = \"200ms\"", "auth_failure_delay = \"soon\"");
  reload(proxy, 2, false);
  log = proxy.log();
  EXPECT_NE(log.find("mailbox.on_delete"), std::string::npos) << log;
  EXPECT_NE(log.find("server.auth_failure_delay"), std::string::npos) << log;
  EXPECT_NE(log.find("reload failed: 2 error(s)"), std::string::npos) << log;
  for (const char* key : {"mailbox.on_delete", "server.auth_failure_delay"}) {
    // "FILE:LINE:COL: key: ..."
    auto at = log.find(std::string(": ") + key);
    ASSERT_NE(at, std::string::npos) << key;
    auto lineStart = log.rfind(path + ":", at);
    ASSERT_NE(lineStart, std::string::npos) << key;
    std::string position = log.substr(lineStart + path.size(), at - lineStart - path.size());
    EXPECT_EQ(countOf(position, ":"), 2u) << key << " at " << position;
  }

  // Still the old settings: a new session deletes with "flag".
  {
    Pop3TestClient pop(proxy.port());
    login(pop);
    EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
    EXPECT_EQ(pop.command("QUIT").rfind("+OK", 0), 0u);
  }
  auto all = uids();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(hasDeleted(flags(all[0])));
  ASSERT_EQ(::kill(proxy.pid(), 0), 0);

  writeFile(path, original);
  reload(proxy, 3, true);
  EXPECT_EQ(proxy.stop(), 0) << proxy.log();
  // RELOADING=1 and READY=1 for each of the three reloads, after the startup READY=1.
  std::size_t reloading = 0, ready = 0;
  for (const auto& datagram : proxy.notifications()) {
    if (hasAssignment(datagram, "RELOADING=1")) ++reloading;
    if (hasAssignment(datagram, "READY=1")) ++ready;
  }
  EXPECT_EQ(reloading, 3u);
  EXPECT_EQ(ready, 4u);
}

// A listener added opens, one removed refuses new connections while the session it accepted
// goes on, and one kept keeps accepting.
TEST_F(ReloadDrainTest, ListenersAddedAndRemoved) {
  makeUser("reload-listeners", 2);
  PopbridgeProcess::Options options;
  options.server = "workers = 2\n";
  options.listeners.push_back(PopbridgeProcess::Listener{});
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);
  const std::uint16_t kept = proxy.port(0);
  const std::uint16_t removed = proxy.port(1);
  const std::uint16_t added = freeLoopbackPort();

  Pop3TestClient onRemoved(removed);
  login(onRemoved);
  editConfig(proxy, "127.0.0.1:" + std::to_string(removed), "127.0.0.1:" + std::to_string(added));
  reload(proxy, 1, true);
  std::string log = proxy.log();
  EXPECT_NE(log.find("listeners added: 127.0.0.1:" + std::to_string(added)), std::string::npos)
      << log;
  EXPECT_NE(log.find("listeners removed: 127.0.0.1:" + std::to_string(removed)), std::string::npos)
      << log;

  EXPECT_TRUE(connectionRefused(removed));
  for (std::uint16_t port : {kept, added}) {
    // Several connections: with two workers each has its own socket on the new port.
    for (int i = 0; i < 4; ++i) {
      Pop3TestClient pop(port);
      EXPECT_EQ(pop.greeting().rfind("+OK", 0), 0u) << port;
    }
  }
  EXPECT_EQ(onRemoved.command("STAT").rfind("+OK 2 ", 0), 0u);
  EXPECT_EQ(onRemoved.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_EQ(proxy.stop(), 0) << proxy.log();
}

// A port that another socket holds fails the reload as a whole: nothing else changes.
TEST_F(ReloadDrainTest, AListenerThatCannotBindFailsTheWholeReload) {
  makeUser("reload-bind", 1);
  PopbridgeProcess proxy(dovecot(), {});
  PopbridgeProcess other(dovecot(), {});  // holds a port popbridge cannot take
  editConfig(proxy, "on_delete = \"flag\"", "on_delete = \"expunge\"");
  std::string text = readFile(proxy.configPath());
  auto at = text.find("[upstream]");
  text.insert(at, "[[listener]]\naddress = \"127.0.0.1:" + std::to_string(other.port()) +
                      "\"\ntls = \"none\"\nallow_plaintext_auth = true\n\n");
  writeFile(proxy.configPath(), text);
  reload(proxy, 1, false);
  std::string log = proxy.log();
  EXPECT_NE(log.find("listener 127.0.0.1:" + std::to_string(other.port()) + ": cannot bind"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("configuration reloaded"), std::string::npos) << log;
  Pop3TestClient pop(proxy.port());
  EXPECT_EQ(pop.greeting().rfind("+OK", 0), 0u);
}

// mailbox.on_delete and a login limit change for new sessions only.
TEST_F(ReloadDrainTest, ChangedSettingsApplyToNewSessionsOnly) {
  makeUser("reload-settings", 3);
  PopbridgeProcess::Options options;
  options.onDelete = "flag";
  options.mailbox = "exclusive = false\n";  // an old and a new session of one mailbox at once
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);

  Pop3TestClient old(proxy.port());
  login(old);
  editConfig(proxy, "on_delete = \"flag\"", "on_delete = \"expunge\"");
  editConfig(proxy, "[server]\n", "[server]\nmax_connections_per_ip = 2\n");
  reload(proxy, 1, true);
  std::string log = proxy.log();
  EXPECT_NE(log.find("mailbox.on_delete flag -> expunge"), std::string::npos) << log;
  EXPECT_NE(log.find("server.max_connections_per_ip 50 -> 2"), std::string::npos) << log;

  // The session from before still flags.
  EXPECT_EQ(old.command("DELE 1").rfind("+OK", 0), 0u);
  {
    // The new limit counts the connection already open: one more, and the third is refused.
    Pop3TestClient fresh(proxy.port());
    login(fresh);
    TestConnection third(proxy.port());
    EXPECT_EQ(third.readLine("a refusal").rfind("-ERR [SYS/TEMP] Too many connections", 0), 0u);
    EXPECT_EQ(fresh.command("DELE 2").rfind("+OK", 0), 0u);
    EXPECT_EQ(fresh.command("QUIT").rfind("+OK", 0), 0u);
  }
  EXPECT_EQ(old.command("QUIT").rfind("+OK", 0), 0u);
  auto left = uids();
  // Message 2 was expunged by the new session; message 1 only flagged by the old one.
  ASSERT_EQ(left.size(), 2u);
  EXPECT_TRUE(hasDeleted(flags(left[0])));
  EXPECT_FALSE(hasDeleted(flags(left[1])));
  EXPECT_EQ(proxy.stop(), 0) << proxy.log();
}

// Reloads while sessions start and end on two workers: every session works, each under one
// configuration or the other, and every reload takes effect.
TEST_F(ReloadDrainTest, ReloadsDuringTrafficLoseNoSession) {
  makeUser("reload-traffic", 2);
  PopbridgeProcess::Options options;
  options.server = "workers = 2\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);
  std::atomic<bool> stop{false};
  std::atomic<int> sessions{0};
  std::string failure;
  std::thread traffic([&] {
    try {
      while (!stop) {
        Pop3TestClient pop(proxy.port());
        login(pop);
        if (pop.command("STAT").rfind("+OK 2 ", 0) != 0) throw std::runtime_error("STAT");
        if (pop.command("QUIT").rfind("+OK", 0) != 0) throw std::runtime_error("QUIT");
        ++sessions;
      }
    } catch (const std::exception& error) {
      failure = error.what();
    }
  });
  for (std::size_t i = 1; i <= 10 && failure.empty(); ++i) {
    const bool odd = i % 2 == 1;
    editConfig(proxy, odd ? "on_delete = \"flag\"" : "on_delete = \"keep\"",
               odd ? "on_delete = \"keep\"" : "on_delete = \"flag\"");
    reload(proxy, i, true);
  }
  stop = true;
  traffic.join();
  EXPECT_EQ(failure, "") << proxy.log();
  EXPECT_GT(sessions.load(), 0);
  EXPECT_EQ(proxy.stop(), 0) << proxy.log();
}

// --- drain -------------------------------------------------------------------------------------

// SIGTERM in the middle of a large RETR read slowly: the body completes, DELE and QUIT within
// shutdown_timeout apply as ever, new connections are refused meanwhile, and the exit is 0.
TEST_F(ReloadDrainTest, DrainLetsARetrFinishAndAQuitApply) {
  user_ = dovecot().addUser("drain-retr");
  std::string line(998, 'x');
  line += "\r\n";
  std::string big = "Subject: big\r\n\r\n";
  while (big.size() < 8 * 1024 * 1024) big += line;
  dovecot().seedMaildir(user_.name, {big, "Subject: small\r\n\r\nsmall\r\n"});
  PopbridgeProcess::Options options;
  options.onDelete = "expunge";
  options.server = "shutdown_timeout = \"20s\"\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);
  Pop3TestClient pop(proxy.port());
  login(pop);
  ASSERT_EQ(pop.command("RETR 1"), "+OK " + std::to_string(big.size()) + " octets");
  std::string body = pop.connection().readExact(64 * 1024, "the start of the body");

  proxy.signal(SIGTERM);
  ASSERT_TRUE(waitForLog(proxy, "draining")) << proxy.log();
  EXPECT_TRUE(connectionRefused(proxy.port()));
  // The rest, slowly.
  while (body.size() + 256 * 1024 < big.size()) {
    body += pop.connection().readExact(256 * 1024, "more of the body");
    std::this_thread::sleep_for(5ms);
  }
  body += pop.readMultiLineBody();
  EXPECT_EQ(body.size(), big.size());
  EXPECT_TRUE(body == big);
  EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("QUIT"), "+OK Logging out, 1 messages deleted.");
  EXPECT_EQ(proxy.waitForExit(15s), 0) << proxy.log();
  EXPECT_EQ(uids().size(), 1u);  // expunged on the IMAP side
}

// A session with DELEs that never QUITs: at shutdown_timeout it gets -ERR [SYS/TEMP] and is
// closed; nothing is deleted upstream; the exit is 0.
TEST_F(ReloadDrainTest, DrainDeadlineAppliesNothing) {
  makeUser("drain-deadline", 3);
  PopbridgeProcess::Options options;
  options.onDelete = "expunge";
  // Long enough that the STAT below is answered inside it on a loaded machine.
  options.server = "shutdown_timeout = \"4s\"\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);
  Pop3TestClient pop(proxy.port());
  login(pop);
  EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
  EXPECT_EQ(pop.command("DELE 2").rfind("+OK", 0), 0u);
  proxy.signal(SIGTERM);
  ASSERT_TRUE(waitForLog(proxy, "draining")) << proxy.log();
  // Still served during the drain.
  EXPECT_EQ(pop.command("STAT").rfind("+OK 1 ", 0), 0u);
  pop.setTimeout(15000);
  EXPECT_EQ(pop.readLine(), "-ERR [SYS/TEMP] Server shutting down.");
  EXPECT_TRUE(pop.closedByPeer());
  EXPECT_EQ(proxy.waitForExit(15s), 0) << proxy.log();
  auto left = uids();
  ASSERT_EQ(left.size(), 3u);
  for (auto uid : left) EXPECT_FALSE(hasDeleted(flags(uid)));
  EXPECT_NE(proxy.log().find("shutdown timeout: closing 1 session(s)"), std::string::npos)
      << proxy.log();
}

// A session not logged in gets -ERR [SYS/TEMP] at once, while a logged-in one is still given its
// time; new connections are refused at once.
TEST_F(ReloadDrainTest, SessionsNotLoggedInEndAtOnce) {
  makeUser("drain-auth", 1);
  PopbridgeProcess::Options options;
  options.server = "shutdown_timeout = \"60s\"\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);
  Pop3TestClient loggedIn(proxy.port());
  login(loggedIn);
  Pop3TestClient greeted(proxy.port());
  EXPECT_EQ(greeted.command("USER " + user_.name).rfind("+OK", 0), 0u);
  proxy.signal(SIGTERM);
  EXPECT_EQ(greeted.readLine(), "-ERR [SYS/TEMP] Server shutting down, try again later.");
  EXPECT_TRUE(greeted.closedByPeer());
  EXPECT_TRUE(connectionRefused(proxy.port()));
  EXPECT_EQ(loggedIn.command("NOOP"), "+OK");
  EXPECT_EQ(loggedIn.command("QUIT").rfind("+OK", 0), 0u);
  EXPECT_EQ(proxy.waitForExit(15s), 0) << proxy.log();
  // The one that was told to go is not counted among those that may QUIT.
  EXPECT_NE(proxy.log().find("draining: 1 logged-in session(s) may QUIT within 1m, 1 not logged "
                             "in closed"),
            std::string::npos)
      << proxy.log();
}

// A second SIGTERM ends a long drain at once, applying nothing.
TEST_F(ReloadDrainTest, ASecondSigtermEndsTheDrainAtOnce) {
  makeUser("drain-twice", 2);
  PopbridgeProcess::Options options;
  options.onDelete = "expunge";
  options.server = "shutdown_timeout = \"1h\"\n";
  PopbridgeProcess proxy(dovecot(), options);
  proxy.addSecret(user_.password);
  Pop3TestClient pop(proxy.port());
  login(pop);
  EXPECT_EQ(pop.command("DELE 1").rfind("+OK", 0), 0u);
  proxy.signal(SIGTERM);
  ASSERT_TRUE(waitForLog(proxy, "draining")) << proxy.log();
  EXPECT_EQ(proxy.stop(), 0) << proxy.log();  // the second SIGTERM; stop() waits 15 s at most
  EXPECT_EQ(pop.readLine(), "-ERR [SYS/TEMP] Server shutting down.");
  EXPECT_EQ(uids().size(), 2u);
  EXPECT_NE(proxy.log().find("again; ending every session now"), std::string::npos) << proxy.log();
}

}  // namespace
}  // namespace popbridge::test
