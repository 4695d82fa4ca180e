// `popbridge check-upstream`, the real binary, against the real Dovecot of the fixture and, for
// greetings Dovecot cannot be made to send, a scripted IMAP peer: each failure class ends with
// its documented exit code and names its cause, and a password never reaches the output.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "config/password.h"
#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/scripted_imap.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

constexpr char kAccountPassword[] = "device-Pa55-check";

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// The step's line, e.g. "login  12 ms  OK  as alice ..."; empty when there is none.
std::string stepLine(const std::string& output, std::string_view step) {
  std::size_t start = 0;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    std::string line = output.substr(start, end - start);
    if (line.rfind(std::string(step) + " ", 0) == 0) return line;
    start = end + 1;
  }
  return {};
}

bool stepOk(const std::string& output, std::string_view step) {
  return contains(stepLine(output, step), " ms  OK ");
}

class CheckUpstreamTest : public ::testing::Test {
 protected:
  CheckUpstreamTest() : dir_("popbridge-check") {}

  static DovecotFixture& dovecot() { return DovecotFixture::shared(); }

  struct Upstream {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;  // 0: the fixture's port for `tls`
    std::string tls = "implicit";
    std::string caFile;  // empty: the fixture's CA
    std::string serverName = "localhost";
    std::string commandTimeout = "10s";
    std::string extra;  // more [upstream] lines
  };

  template <typename Change>
  static Upstream with(Change change) {
    Upstream upstream;
    change(upstream);
    return upstream;
  }

  // A complete config in front of the fixture, plus `tail` (accounts, [mailbox]).
  std::string writeConfig(const Upstream& upstream, const std::string& tail = "") {
    std::uint16_t port = upstream.port;
    if (port == 0) port = upstream.tls == "implicit" ? dovecot().imapsPort() : dovecot().imapPort();
    const std::string path = dir_.path() + "/popbridge" + std::to_string(++configs_) + ".toml";
    writeTextFile(path,
                  "[[listener]]\naddress = \"127.0.0.1:1100\"\ntls = \"none\"\n"
                  "allow_plaintext_auth = true\n"
                  "[upstream]\nhost = \"" +
                      upstream.host + "\"\nport = " + std::to_string(port) + "\ntls = \"" +
                      upstream.tls + "\"\nca_file = \"" +
                      (upstream.caFile.empty() ? dovecot().pki().caCert : upstream.caFile) +
                      "\"\nserver_name = \"" + upstream.serverName +
                      "\"\nconnect_timeout = \"5s\"\ncommand_timeout = \"" +
                      upstream.commandTimeout + "\"\n" + upstream.extra + tail);
    return path;
  }

  // [[account]] `name` mapped to the fixture user `upstreamUser` with its password in a file.
  std::string account(const std::string& name, const std::string& upstreamUser,
                      const std::string& password, const std::string& lines = "") {
    const std::string file = dir_.path() + "/" + name + ".password";
    writeTextFile(file, password + "\n");
    static const std::string hash = config::hashPassword(kAccountPassword);
    return "[[account]]\nuser = \"" + name + "\"\npassword_hash = \"" + hash +
           "\"\nupstream_user = \"" + upstreamUser + "\"\nupstream_password_file = \"" + file +
           "\"\n" + lines;
  }

  CommandResult check(const std::vector<std::string>& args, const std::string& stdinText = "",
                      int timeoutMs = 60000) {
    const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
    std::vector<std::string> argv{custom ? custom : POPBRIDGE_BINARY, "check-upstream"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions options;
    options.timeoutMs = timeoutMs;
    if (!stdinText.empty()) {
      options.stdinPath = dir_.path() + "/stdin" + std::to_string(++configs_);
      writeTextFile(options.stdinPath, stdinText);
    }
    CommandResult result = runCommand(argv, options);
    if (std::getenv("PBTEST_SHOW_OUTPUT") != nullptr) std::cerr << result.output;
    return result;
  }

  TempDir dir_;
  int configs_ = 0;
};

TEST_F(CheckUpstreamTest, ReachabilityWithoutUserPassesEveryStep) {
  const std::string config = writeConfig({});
  auto result = check({"--config", config});
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  for (const char* step : {"resolve", "connect", "tls", "greeting", "capability"}) {
    EXPECT_TRUE(stepOk(result.output, step)) << step << "\n" << result.output;
  }
  EXPECT_TRUE(contains(stepLine(result.output, "resolve"), "127.0.0.1")) << result.output;
  const std::string tls = stepLine(result.output, "tls");
  EXPECT_TRUE(contains(tls, "TLSv1.")) << tls;
  EXPECT_TRUE(contains(tls, "popbridge test CA")) << "the issuer is named: " << tls;
  EXPECT_TRUE(contains(tls, "expires")) << tls;
  EXPECT_TRUE(contains(stepLine(result.output, "greeting"), "* OK")) << result.output;
  EXPECT_TRUE(contains(stepLine(result.output, "capability"), "AUTH=PLAIN")) << result.output;
  EXPECT_TRUE(stepLine(result.output, "login").empty()) << "no login without --user";
  EXPECT_TRUE(contains(result.output, "OK: 127.0.0.1:")) << result.output;
}

TEST_F(CheckUpstreamTest, AccountLogsInWithItsUpstreamPasswordAndShowsTheFolder) {
  const auto alice = dovecot().user("alice");
  const std::string user = "check-account";
  dovecot().addUser(user, "check-Account-pw9");
  dovecot().seedMaildir(user, {"Subject: one\r\n\r\nbody\r\n", "Subject: two\r\n\r\nbody\r\n"},
                        "Scans");
  const std::string config =
      writeConfig({}, account("scanner", user, "check-Account-pw9", "folder = \"Scans\"\n"));
  auto result = check({"--config", config, "--user", "scanner"});
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  for (const char* step :
       {"resolve", "connect", "tls", "greeting", "capability", "login", "select", "logout"}) {
    EXPECT_TRUE(stepOk(result.output, step)) << step << "\n" << result.output;
  }
  const std::string select = stepLine(result.output, "select");
  EXPECT_TRUE(contains(select, "\"Scans\"")) << select;
  EXPECT_TRUE(contains(select, "EXISTS 2")) << select;
  EXPECT_TRUE(contains(select, "UIDVALIDITY ")) << select;
  EXPECT_FALSE(contains(result.output, "check-Account-pw9"));
  EXPECT_FALSE(contains(result.output, alice.password));
}

TEST_F(CheckUpstreamTest, PassThroughUserWithPasswordFileOrStdin) {
  const auto bob = dovecot().user("bob");
  const std::string config = writeConfig({});
  const std::string file = dir_.path() + "/bob.password";
  writeTextFile(file, bob.password + "\r\n");
  auto fromFile = check({"--config", config, "--user", "bob", "--password-file", file});
  EXPECT_EQ(fromFile.exitCode, 0) << fromFile.describe();
  EXPECT_TRUE(stepOk(fromFile.output, "login")) << fromFile.output;
  EXPECT_TRUE(contains(stepLine(fromFile.output, "select"), "\"INBOX\"")) << fromFile.output;
  EXPECT_FALSE(contains(fromFile.output, bob.password));

  auto fromStdin = check({"--config", config, "--user", "bob"}, bob.password + "\n");
  EXPECT_EQ(fromStdin.exitCode, 0) << fromStdin.describe();
  EXPECT_TRUE(stepOk(fromStdin.output, "select")) << fromStdin.output;
  EXPECT_FALSE(contains(fromStdin.output, bob.password));

  auto none = check({"--config", config, "--user", "bob"});
  EXPECT_EQ(none.exitCode, 2) << none.describe();
  EXPECT_TRUE(contains(none.output, "no password")) << none.output;
}

TEST_F(CheckUpstreamTest, WrongPasswordExitsSevenWithTheServersText) {
  const std::string config = writeConfig(with([&](Upstream& u) { u.tls = "starttls"; }));
  const std::string wrong = "not-Bobs-pw-4711";
  auto result = check({"--config", config, "--user", "bob"}, wrong + "\n");
  EXPECT_EQ(result.exitCode, 7) << result.describe();
  const std::string login = stepLine(result.output, "login");
  EXPECT_TRUE(contains(login, "FAIL")) << result.output;
  EXPECT_TRUE(contains(login, "AUTHENTICATIONFAILED")) << "the server's answer: " << login;
  EXPECT_FALSE(contains(result.output, wrong));
  EXPECT_FALSE(contains(result.output, dovecot().user("bob").password));
}

TEST_F(CheckUpstreamTest, UnknownHostExitsThreeQuickly) {
  const std::string config =
      writeConfig(with([&](Upstream& u) { u.host = "imap.no-such-host.invalid"; }));
  const auto started = std::chrono::steady_clock::now();
  auto result = check({"--config", config}, "", 30000);
  EXPECT_EQ(result.exitCode, 3) << result.describe();
  EXPECT_TRUE(contains(stepLine(result.output, "resolve"), "FAIL")) << result.output;
  EXPECT_TRUE(contains(result.output, "imap.no-such-host.invalid")) << result.output;
  EXPECT_FALSE(result.timedOut);
  (void)started;
}

TEST_F(CheckUpstreamTest, ClosedPortExitsFour) {
  const std::string config = writeConfig(with([&](Upstream& u) { u.port = freeLoopbackPort(); }));
  auto result = check({"--config", config});
  EXPECT_EQ(result.exitCode, 4) << result.describe();
  const std::string connect = stepLine(result.output, "connect");
  EXPECT_TRUE(contains(connect, "FAIL")) << result.output;
  EXPECT_TRUE(contains(connect, "refused")) << connect;
}

TEST_F(CheckUpstreamTest, WrongCaOrNameExitsFiveNamingTheVerificationFailure) {
  // The system bundle does not know the fixture's test CA.
  auto wrongCa = check({"--config", writeConfig(with([&](Upstream& u) {
                          u.caFile = "/etc/ssl/certs/ca-certificates.crt";
                        }))});
  EXPECT_EQ(wrongCa.exitCode, 5) << wrongCa.describe();
  const std::string tls = stepLine(wrongCa.output, "tls");
  EXPECT_TRUE(contains(tls, "FAIL")) << wrongCa.output;
  EXPECT_TRUE(contains(tls, "certificate verification failed: unable to get local issuer")) << tls;

  auto wrongName =
      check({"--config", writeConfig(with([&](Upstream& u) { u.serverName = "wrong.example"; }))});
  EXPECT_EQ(wrongName.exitCode, 5) << wrongName.describe();
  EXPECT_TRUE(contains(stepLine(wrongName.output, "tls"), "wrong.example")) << wrongName.output;
}

TEST_F(CheckUpstreamTest, StartTlsUpstreamUpgradesAndAsksAgain) {
  const auto carol = dovecot().user("carol");
  const std::string config = writeConfig(with([&](Upstream& u) { u.tls = "starttls"; }));
  auto result = check({"--config", config, "--user", "carol"}, carol.password + "\n");
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  // greeting, capability, starttls, tls, capability (again), login, select, logout
  const auto greeting = result.output.find("\ngreeting ");
  const auto starttls = result.output.find("\nstarttls ");
  const auto tls = result.output.find("\ntls ");
  const auto second = result.output.rfind("\ncapability ");
  ASSERT_NE(starttls, std::string::npos) << result.output;
  EXPECT_LT(greeting, starttls);
  EXPECT_LT(starttls, tls);
  EXPECT_LT(tls, second) << "CAPABILITY again after the handshake\n" << result.output;
  EXPECT_TRUE(stepOk(result.output, "starttls")) << result.output;
  EXPECT_TRUE(stepOk(result.output, "select")) << result.output;
}

TEST_F(CheckUpstreamTest, MissingFolderExitsEight) {
  const std::string config = writeConfig({}, "[mailbox]\nfolder = \"No-Such-Folder\"\n");
  const auto alice = dovecot().user("alice");
  auto result = check({"--config", config, "--user", "alice"}, alice.password + "\n");
  EXPECT_EQ(result.exitCode, 8) << result.describe();
  const std::string select = stepLine(result.output, "select");
  EXPECT_TRUE(contains(select, "FAIL")) << result.output;
  EXPECT_TRUE(contains(select, "No-Such-Folder")) << select;
}

TEST_F(CheckUpstreamTest, InvalidConfigExitsOneBadArgumentsTwoHelpZero) {
  const std::string path = dir_.path() + "/broken.toml";
  writeTextFile(path, "[upstream]\nport = \"x\"\n");
  EXPECT_EQ(check({"--config", path}).exitCode, 1);
  EXPECT_EQ(check({"--config", writeConfig({}), "--frobnicate"}).exitCode, 2);
  auto help = check({"--help"});
  EXPECT_EQ(help.exitCode, 0) << help.describe();
  EXPECT_TRUE(contains(help.output, "7 login refused")) << "--help documents the exit codes";
}

// Greetings a real Dovecot does not send.
struct GreetingCase {
  const char* name;
  ScriptedImapPeer::Reaction::Kind kind;
  const char* text;
  const char* expected;  // in the greeting line
};

class CheckUpstreamGreetingTest : public CheckUpstreamTest,
                                  public ::testing::WithParamInterface<GreetingCase> {};

TEST_P(CheckUpstreamGreetingTest, BadGreetingExitsSix) {
  const GreetingCase& c = GetParam();
  ScriptedImapPeer::Script script;
  script.password = "unused";
  ScriptedImapPeer::Reaction reaction = ScriptedImapPeer::Reaction::of(c.kind);
  reaction.text = c.text;
  script.reactions[ScriptedImapPeer::Step::Greeting] = reaction;
  ScriptedImapPeer peer(script);
  const std::string config = writeConfig(with([&](Upstream& u) {
    u.port = peer.port();
    u.tls = "none";
    // Short only where the silence is the point: it bounds the other greetings too.
    u.commandTimeout = std::string(c.name) == "Silence" ? "1s" : "5s";
  }));
  auto result = check({"--config", config});
  EXPECT_EQ(result.exitCode, 6) << result.describe();
  const std::string greeting = stepLine(result.output, "greeting");
  EXPECT_TRUE(contains(greeting, "FAIL")) << result.output;
  EXPECT_TRUE(contains(greeting, c.expected)) << greeting;
}

INSTANTIATE_TEST_SUITE_P(
    Greetings, CheckUpstreamGreetingTest,
    ::testing::Values(GreetingCase{"Bye", ScriptedImapPeer::Reaction::Kind::Reply,
                                   "* BYE Too many connections", "* BYE Too many connections"},
                      GreetingCase{"Garbage", ScriptedImapPeer::Reaction::Kind::Reply,
                                   "SSH-2.0-OpenSSH_9.2p1", "not an IMAP greeting"},
                      GreetingCase{"PreAuth", ScriptedImapPeer::Reaction::Kind::Reply,
                                   "* PREAUTH [CAPABILITY IMAP4rev1] logged in as root", "PREAUTH"},
                      GreetingCase{"Silence", ScriptedImapPeer::Reaction::Kind::Stall, "",
                                   "no answer within 1s"}),
    [](const ::testing::TestParamInfo<GreetingCase>& info) { return info.param.name; });

}  // namespace
}  // namespace popbridge::test
