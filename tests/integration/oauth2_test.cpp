// Issue 12 against the real binary: devices log in to popbridge with USER/PASS, popbridge logs in
// to a real Dovecot with XOAUTH2 or OAUTHBEARER using access tokens from a loopback HTTPS token
// endpoint (tests/support/token_endpoint.h), and mail is retrieved and deleted at QUIT.
//
// Every PopbridgeProcess is told the endpoint's secrets (tokens, refresh tokens, client secrets,
// device codes), and its destructor fails the test when one of them is in popbridge's log.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
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
#include "tests/support/real_clients.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"
#include "tests/support/token_endpoint.h"

namespace popbridge::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kJwtSecret[] = "popbridge-oauth2-test-secret-0123456789";
constexpr char kDevicePassword[] = "printer-Pa55-12";
// `popbridge oauth login` reads the whole configuration file the server uses, so it must be a
// complete one; this head makes the identity and account below one.
constexpr const char* kLoginConfigHead =
    "[[listener]]\naddress = \"127.0.0.1:1100\"\ntls = \"none\"\nallow_plaintext_auth = true\n"
    "[upstream]\nhost = \"127.0.0.1\"\nport = 143\ntls = \"none\"\n";
constexpr char kClientId[] = "popbridge-test";

// One Dovecot with an oauth2 passdb per test process (ctest runs each case in its own).
DovecotFixture& dovecot() {
  static DovecotFixture instance = [] {
    DovecotFixture::Options options;
    DovecotOAuth2Options oauth2;
    oauth2.jwtSecret = kJwtSecret;
    options.oauth2 = oauth2;
    options.enablePop3 = false;
    // 50 concurrent sessions of one user from 127.0.0.1.
    options.extraConfig = "mail_max_userip_connections = 200\n";
    return DovecotFixture(options);
  }();
  return instance;
}

const std::string& deviceHash() {
  static const std::string hash = config::hashPassword(kDevicePassword);
  return hash;
}

class OAuth2Test : public ::testing::Test {
 protected:
  OAuth2Test() : state_("popbridge-oauth2") {
    TokenEndpoint::Options options;
    options.jwtSecret = kJwtSecret;
    endpoint_ = std::make_unique<TokenEndpoint>(options);
    ::chmod(state_.path().c_str(), 0700);
    refreshFile_ = state_.path() + "/refresh";
  }

  // A Dovecot user of the test's own, with two messages.
  std::string newMailbox(const std::string& name) {
    dovecot().addUser(name);
    dovecot().seedMaildir(name, {simpleMessage(1, 300), simpleMessage(2, 500)});
    return name;
  }

  void grantRefreshToken(const std::string& token, const std::string& sub) {
    endpoint_->addRefreshToken(token, sub);
    writeTextFile(refreshFile_, token + "\n", 0600);
  }

  // [oauth2.box] + [[account]] printer, in front of `mailboxUser`.
  std::string identity(const std::string& mailboxUser, const std::string& lines = "") const {
    return "[oauth2.box]\n"
           "token_endpoint = \"" +
           endpoint_->url("/token") +
           "\"\n"
           "device_authorization_endpoint = \"" +
           endpoint_->url("/devicecode") +
           "\"\n"
           "client_id = \"" +
           std::string(kClientId) +
           "\"\n"
           "ca_file = \"" +
           endpoint_->caFile() +
           "\"\n"
           "user = \"" +
           mailboxUser + "\"\n" +
           (lines.find("grant") == std::string::npos &&
                    lines.find("token_command") == std::string::npos
                ? "refresh_token_file = \"" + refreshFile_ + "\"\n"
                : std::string()) +
           lines + "[[account]]\nuser = \"printer\"\npassword_hash = \"" + deviceHash() +
           "\"\noauth2 = \"box\"\n";
  }

  // The process lives until TearDown, which first hands it every secret the endpoint ever issued
  // or was given: its destructor then fails the test if one of them is in popbridge's log.
  PopbridgeProcess* start(const std::string& extra, const std::string& server = "",
                          const std::string& upstreamTls = "none") {
    PopbridgeProcess::Options options;
    options.upstreamTls = upstreamTls;
    options.extra = extra;
    options.server = "max_connections_per_ip = 0\npassword_check_queue = 100\n" + server;
    auto process = std::make_unique<PopbridgeProcess>(dovecot(), options);
    process->addSecret(kDevicePassword);
    processes_.push_back(std::move(process));
    return processes_.back().get();
  }

  void TearDown() override {
    for (auto& process : processes_) {
      for (const std::string& secret : endpoint_->allSecrets()) process->addSecret(secret);
      for (const std::string& secret : extraSecrets_) process->addSecret(secret);
    }
    processes_.clear();
  }

  static std::string login(Pop3TestClient& pop3) {
    EXPECT_TRUE(startsWith(pop3.command("USER printer"), "+OK"));
    return pop3.command(std::string("PASS ") + kDevicePassword);
  }

  TempDir state_;
  std::string refreshFile_;
  std::unique_ptr<TokenEndpoint> endpoint_;
  std::vector<std::string> extraSecrets_;
  std::vector<std::unique_ptr<PopbridgeProcess>> processes_;
};

// The whole path for each mechanism and transport: USER/PASS in, a token from the refresh grant,
// AUTHENTICATE upstream, RETR, DELE, QUIT, and \Deleted on the IMAP side.
struct MechanismCase {
  const char* mechanism;
  const char* upstreamTls;
  const char* used;  // what goes upstream: auto picks OAUTHBEARER, which Dovecot advertises
};

class OAuth2MechanismTest : public OAuth2Test,
                            public ::testing::WithParamInterface<MechanismCase> {};

TEST_P(OAuth2MechanismTest, RetrievesAndDeletesAtQuit) {
  const std::string user =
      newMailbox(std::string("oa-") + GetParam().mechanism + "-" + GetParam().upstreamTls);
  grantRefreshToken("rt-" + user, user);
  auto popbridge =
      start(identity(user, std::string("mechanism = \"") + GetParam().mechanism + "\"\n"), "",
            GetParam().upstreamTls);
  {
    Pop3TestClient pop3(popbridge->port());
    ASSERT_TRUE(startsWith(login(pop3), "+OK")) << popbridge->log();
    EXPECT_TRUE(startsWith(pop3.command("STAT"), "+OK 2 "));
    std::string body = pop3.multiLine("RETR 1");
    EXPECT_NE(body.find("Subject: Test message 1"), std::string::npos) << body.substr(0, 200);
    EXPECT_TRUE(startsWith(pop3.command("DELE 1"), "+OK"));
    EXPECT_TRUE(startsWith(pop3.command("QUIT"), "+OK"));
  }
  EXPECT_EQ(endpoint_->count("refresh_token"), 1u);
  ImapTestClient imap(dovecot().imapPort());
  imap.login(user, dovecot().user(user).password);
  imap.select();
  auto uids = imap.uids();
  ASSERT_EQ(uids.size(), 2u);
  auto flags = imap.flags(uids[0]);
  EXPECT_NE(std::find(flags.begin(), flags.end(), "\\Deleted"), flags.end());
  auto other = imap.flags(uids[1]);
  EXPECT_EQ(std::find(other.begin(), other.end(), "\\Deleted"), other.end());
  const std::string log = popbridge->log();
  EXPECT_NE(log.find("access token obtained"), std::string::npos) << log;
  EXPECT_NE(
      log.find(std::string("upstream login by AUTHENTICATE ") + GetParam().used + " as " + user),
      std::string::npos)
      << log;
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, OAuth2MechanismTest,
                         ::testing::Values(MechanismCase{"xoauth2", "none", "XOAUTH2"},
                                           MechanismCase{"oauthbearer", "none", "OAUTHBEARER"},
                                           MechanismCase{"auto", "implicit", "OAUTHBEARER"},
                                           MechanismCase{"xoauth2", "starttls", "XOAUTH2"}),
                         [](const auto& info) {
                           return std::string(info.param.mechanism) + "_" + info.param.upstreamTls;
                         });

// A rotated refresh token is written back, and a restarted popbridge logs in with it (the old
// one is revoked by then, so using it would fail).
TEST_F(OAuth2Test, RotatedRefreshTokenSurvivesARestart) {
  const std::string user = newMailbox("oa-rotate");
  endpoint_->setRotateRefreshTokens(true);
  grantRefreshToken("rt-first", user);
  {
    auto popbridge = start(identity(user));
    Pop3TestClient pop3(popbridge->port());
    ASSERT_TRUE(startsWith(login(pop3), "+OK")) << popbridge->log();
    pop3.command("QUIT");
    EXPECT_EQ(popbridge->stop(), 0);
    const std::string rotated = endpoint_->currentRefreshToken(user);
    ASSERT_NE(rotated, "rt-first");
    EXPECT_EQ(readWholeFile(refreshFile_), rotated + "\n");
    struct stat info {};
    ASSERT_EQ(::stat(refreshFile_.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    EXPECT_NE(popbridge->log().find("rotated the refresh token; saved to"), std::string::npos);
  }
  auto again = start(identity(user));
  Pop3TestClient pop3(again->port());
  ASSERT_TRUE(startsWith(login(pop3), "+OK")) << again->log();
  pop3.command("QUIT");
  EXPECT_EQ(endpoint_->count("refresh_token"), 2u);
}

// invalid_grant: the device gets [AUTH], the admin a line naming the identity and the command.
TEST_F(OAuth2Test, RevokedRefreshTokenGivesAuthAndTellsTheAdminToLogIn) {
  const std::string user = newMailbox("oa-revoked");
  grantRefreshToken("rt-revoked", user);
  endpoint_->revokeRefreshToken("rt-revoked");
  auto popbridge = start(identity(user));
  Pop3TestClient pop3(popbridge->port());
  std::string reply = login(pop3);
  EXPECT_TRUE(startsWith(reply, "-ERR [AUTH]")) << reply;
  const std::string log = popbridge->log();
  EXPECT_NE(log.find("[oauth2.box]"), std::string::npos) << log;
  EXPECT_NE(log.find("invalid_grant"), std::string::npos) << log;
  EXPECT_NE(log.find("run `popbridge oauth login box`"), std::string::npos) << log;
}

// The endpoint answers 500, then stalls: [SYS/TEMP] both times, with the cause in the log, and
// the back-off keeps a second login from hitting the endpoint again at once.
TEST_F(OAuth2Test, EndpointTroubleGivesSysTemp) {
  const std::string user = newMailbox("oa-down");
  grantRefreshToken("rt-down", user);
  endpoint_->setFault(TokenEndpoint::Fault::Status500);
  auto popbridge = start(identity(user, "request_timeout = \"2s\"\n"));
  {
    Pop3TestClient pop3(popbridge->port());
    std::string reply = login(pop3);
    EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  }
  {
    Pop3TestClient pop3(popbridge->port());
    std::string reply = login(pop3);
    EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  }
  EXPECT_EQ(endpoint_->count("refresh_token"), 1u) << "the back-off should have answered";
  EXPECT_NE(popbridge->log().find("HTTP 500"), std::string::npos);
  std::this_thread::sleep_for(1100ms);  // past the first back-off
  endpoint_->setFault(TokenEndpoint::Fault::Stall);
  {
    Pop3TestClient pop3(popbridge->port());
    auto started = Clock::now();
    std::string reply = login(pop3);
    EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
    std::printf(
        "stalled endpoint answered after %lld ms (request_timeout 2s)\n",
        static_cast<long long>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()));
  }
  EXPECT_NE(popbridge->log().find("no complete answer within 2000 ms"), std::string::npos)
      << popbridge->log();
  endpoint_->setFault(TokenEndpoint::Fault::None);
}

// Expiry and refresh: a cached token serves the next login without the endpoint; an expired one
// is refreshed; one that is due (refresh_before) is served at once and refreshed behind it.
TEST_F(OAuth2Test, TokensAreCachedAndRefreshedBeforeTheyExpire) {
  endpoint_.reset();
  TokenEndpoint::Options options;
  options.jwtSecret = kJwtSecret;
  options.accessTokenLifetime = 6s;
  endpoint_ = std::make_unique<TokenEndpoint>(options);
  const std::string user = newMailbox("oa-expiry");
  grantRefreshToken("rt-expiry", user);
  auto popbridge = start(identity(user, "refresh_before = \"3s\"\n"));
  auto poll = [&] {
    Pop3TestClient pop3(popbridge->port());
    std::string reply = login(pop3);
    pop3.command("QUIT");
    return reply;
  };
  ASSERT_TRUE(startsWith(poll(), "+OK")) << popbridge->log();
  ASSERT_TRUE(startsWith(poll(), "+OK"));
  EXPECT_EQ(endpoint_->count("refresh_token"), 1u) << "the second login reuses the token";
  std::this_thread::sleep_for(3500ms);  // due (3 s before expiry), not expired
  ASSERT_TRUE(startsWith(poll(), "+OK"));
  // The background refresh, waited for (bounded): it runs after the login it was due in.
  for (const auto deadline = std::chrono::steady_clock::now() + 10s;
       endpoint_->count("refresh_token") < 2 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(endpoint_->count("refresh_token"), 2u) << popbridge->log();
  std::this_thread::sleep_for(6500ms);  // the refreshed token has expired too
  ASSERT_TRUE(startsWith(poll(), "+OK"));
  EXPECT_EQ(endpoint_->count("refresh_token"), 3u);
}

// 50 devices log in at once while the endpoint takes a second to answer: one refresh serves all.
TEST_F(OAuth2Test, FiftyConcurrentLoginsShareOneRefresh) {
  const std::string user = newMailbox("oa-fifty");
  grantRefreshToken("rt-fifty", user);
  endpoint_->setResponseDelay(1500ms);
  // Two worker loops: the devices' sessions are spread over both, and still share the refresh.
  // Fifty sessions of one mailbox at once: shared, and not capped by max_sessions_per_account.
  auto popbridge = start(identity(user) + "exclusive = false\n",
                         "max_password_checks = 8\nworkers = 2\nmax_sessions_per_account = 0\n");
  constexpr int kDevices = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> devices;
  for (int i = 0; i < kDevices; ++i) {
    devices.emplace_back([&] {
      try {
        Pop3TestClient pop3(popbridge->port());
        pop3.setTimeout(30000);
        if (startsWith(login(pop3), "+OK")) ++ok;
        pop3.command("QUIT");
      } catch (const std::exception&) {
      }
    });
  }
  for (auto& device : devices) device.join();
  EXPECT_EQ(ok.load(), kDevices) << popbridge->log();
  EXPECT_EQ(endpoint_->count("refresh_token"), 1u);
  EXPECT_EQ(countOf(popbridge->log(), "access token obtained"), 1u);
}

// Several devices bound to one identity share its token; a device with a wrong password is refused
// by its own argon2 hash and never causes a token request.
TEST_F(OAuth2Test, DevicesShareAnIdentityAndAWrongDevicePasswordFetchesNothing) {
  const std::string user = newMailbox("oa-shared");
  grantRefreshToken("rt-shared", user);
  const std::string scannerPassword = "scanner-Pa55-34";
  auto popbridge = start(identity(user) + "[[account]]\nuser = \"scanner\"\npassword_hash = \"" +
                         config::hashPassword(scannerPassword) + "\"\noauth2 = \"box\"\n");
  popbridge->addSecret(scannerPassword);
  {
    Pop3TestClient pop3(popbridge->port());
    ASSERT_TRUE(startsWith(pop3.command("USER scanner"), "+OK"));
    EXPECT_TRUE(startsWith(pop3.command("PASS printer-Pa55-12"), "-ERR [AUTH]"));
  }
  EXPECT_EQ(endpoint_->count("refresh_token"), 0u) << popbridge->log();
  for (const auto& [device, password] : std::vector<std::pair<std::string, std::string>>{
           {"printer", kDevicePassword}, {"scanner", scannerPassword}}) {
    Pop3TestClient pop3(popbridge->port());
    ASSERT_TRUE(startsWith(pop3.command("USER " + device), "+OK"));
    ASSERT_TRUE(startsWith(pop3.command("PASS " + password), "+OK")) << popbridge->log();
    EXPECT_TRUE(startsWith(pop3.command("STAT"), "+OK 2 "));
    pop3.command("QUIT");
  }
  EXPECT_EQ(endpoint_->count("refresh_token"), 1u);
}

TEST_F(OAuth2Test, ClientCredentialsGrant) {
  const std::string user = newMailbox("oa-app");
  endpoint_->addClient("app-only", "app-Secret-12", user);
  writeTextFile(state_.path() + "/client-secret", "app-Secret-12\n", 0600);
  auto popbridge = start(
      "[oauth2.box]\n"
      "grant = \"client_credentials\"\n"
      "token_endpoint = \"" +
      endpoint_->url("/token") +
      "\"\n"
      "client_id = \"app-only\"\n"
      "client_secret_file = \"" +
      state_.path() +
      "/client-secret\"\n"
      "scope = \"https://outlook.office365.com/.default\"\n"
      "ca_file = \"" +
      endpoint_->caFile() +
      "\"\n"
      "[[account]]\nuser = \"printer\"\npassword_hash = \"" +
      deviceHash() + "\"\noauth2 = \"box\"\nupstream_user = \"" + user + "\"\n");
  Pop3TestClient pop3(popbridge->port());
  ASSERT_TRUE(startsWith(login(pop3), "+OK")) << popbridge->log();
  EXPECT_TRUE(startsWith(pop3.command("STAT"), "+OK 2 "));
  pop3.command("QUIT");
  ASSERT_EQ(endpoint_->count("client_credentials"), 1u);
  auto requests = endpoint_->requests();
  EXPECT_EQ(requests.back().form.at("scope"), "https://outlook.office365.com/.default");
  popbridge->addSecret("app-Secret-12");
}

// The upstream refuses the first token (its signature is wrong): popbridge fetches a new one
// once and retries, and the device never notices. A token_command stands in for the endpoint
// so that the first token can be a bad one.
TEST_F(OAuth2Test, ARejectedTokenIsRefreshedOnceAndRetried) {
  const std::string user = newMailbox("oa-retry");
  const std::string bad =
      makeHs256Jwt(R"({"alg":"HS256","typ":"JWT"})",
                   R"({"sub":")" + user + R"(","exp":4102444800})", "not-the-key");
  const std::string good = endpoint_->issueJwt(user, 3600s);
  const std::string script = state_.path() + "/get-token";
  const std::string counter = state_.path() + "/runs";
  writeTextFile(script,
                "#!/bin/sh\n"
                "echo run >> '" +
                    counter +
                    "'\n"
                    "if [ \"$(wc -l < '" +
                    counter + "')\" -le 1 ]; then echo '" + bad +
                    "'; "
                    "else echo '" +
                    good + "'; fi\n",
                0700);
  auto popbridge = start(identity(user, "token_command = [\"" + script + "\"]\n"));
  popbridge->addSecret(bad);
  popbridge->addSecret(good);
  Pop3TestClient pop3(popbridge->port());
  ASSERT_TRUE(startsWith(login(pop3), "+OK")) << popbridge->log();
  pop3.command("QUIT");
  EXPECT_EQ(countOf(readWholeFile(counter), "run"), 2u);
  EXPECT_NE(popbridge->log().find("renewing it and trying once more"), std::string::npos)
      << popbridge->log();
}

// When the fresh token is refused too, the device gets [AUTH] after exactly one retry.
TEST_F(OAuth2Test, ATokenRefusedTwiceGivesAuth) {
  const std::string user = newMailbox("oa-refused");
  grantRefreshToken("rt-refused", "someone-else");  // tokens for another subject
  auto popbridge = start(identity(user));
  Pop3TestClient pop3(popbridge->port());
  std::string reply = login(pop3);
  EXPECT_TRUE(startsWith(reply, "-ERR [AUTH]")) << reply << popbridge->log();
  EXPECT_EQ(endpoint_->count("refresh_token"), 2u);
}

// `popbridge oauth login NAME`: RFC 8628 with authorization_pending and slow_down, and the
// refresh token lands in refresh_token_file; a popbridge started after it logs in with it.
TEST_F(OAuth2Test, DeviceFlowLoginStoresTheRefreshToken) {
  const std::string user = newMailbox("oa-device");
  endpoint_->setDevicePlan({"authorization_pending", "slow_down", "ok"}, user);
  const std::string configPath = state_.path() + "/device.toml";
  writeTextFile(configPath, kLoginConfigHead + identity(user), 0600);
  const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
  auto result = runCommand(
      {custom ? custom : POPBRIDGE_BINARY, "oauth", "login", "box", "--config", configPath},
      CommandOptions{});
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_NE(result.output.find(endpoint_->url("/device")), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("and enter the code"), std::string::npos);
  const std::string stored = endpoint_->currentRefreshToken(user);
  ASSERT_FALSE(stored.empty());
  EXPECT_EQ(readWholeFile(refreshFile_), stored + "\n");
  auto polls = endpoint_->devicePolls();
  ASSERT_EQ(polls.size(), 3u);
  for (const auto& poll : polls) {
    EXPECT_FALSE(poll.early) << "gap " << poll.gap.count() << " ms, required "
                             << poll.requiredGap.count() << " ms";
  }
  for (const std::string& secret : endpoint_->allSecrets()) {
    EXPECT_EQ(result.output.find(secret), std::string::npos) << "a secret on the terminal";
  }
  auto popbridge = start(identity(user));
  Pop3TestClient pop3(popbridge->port());
  EXPECT_TRUE(startsWith(login(pop3), "+OK")) << popbridge->log();
  pop3.command("QUIT");
}

TEST_F(OAuth2Test, DeviceFlowGivesUpOnExpiredOrDeclined) {
  const std::string user = newMailbox("oa-device-expired");
  const std::string configPath = state_.path() + "/device.toml";
  writeTextFile(configPath, kLoginConfigHead + identity(user), 0600);
  const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
  for (const auto& [answer, message] : std::vector<std::pair<std::string, std::string>>{
           {"expired_token", "the code expired"}, {"access_denied", "the sign-in was declined"}}) {
    endpoint_->setDevicePlan({"authorization_pending", answer}, user);
    auto result = runCommand(
        {custom ? custom : POPBRIDGE_BINARY, "oauth", "login", "box", "--config", configPath},
        CommandOptions{});
    EXPECT_EQ(result.exitCode, 1) << result.describe();
    EXPECT_NE(result.output.find(message), std::string::npos) << result.output;
  }
  struct stat info {};
  EXPECT_NE(::stat(refreshFile_.c_str(), &info), 0) << "nothing stored";
}

// Debian's tinyproxy in front of the token endpoint: the token request goes through CONNECT (with
// the proxy's Basic credentials), TLS stays end to end; wrong credentials give [SYS/TEMP] and a
// log line naming the proxy's answer.
TEST_F(OAuth2Test, TokenRequestsGoThroughAnHttpsProxy) {
  const std::string user = newMailbox("oa-proxy");
  grantRefreshToken("rt-proxy", user);
  TempDir proxyDir("popbridge-tinyproxy");
  const std::uint16_t proxyPort = [] {
    // A free port: bind to 0, read it back, release it for tinyproxy.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
  }();
  const std::string proxyLog = proxyDir.path() + "/tinyproxy.log";
  writeTextFile(proxyDir.path() + "/tinyproxy.conf",
                "Port " + std::to_string(proxyPort) + "\nListen 127.0.0.1\nTimeout 30\nLogFile \"" +
                    proxyLog +
                    "\"\nLogLevel Connect\nMaxClients 20\nAllow 127.0.0.1\n"
                    "BasicAuth proxyuser proxy-Pa55\n" +
                    (::geteuid() == 0 ? "User nobody\nGroup nogroup\n" : ""),
                0644);
  ::chmod(proxyDir.path().c_str(), 0777);
  pid_t proxy = ::fork();
  if (proxy == 0) {
    ::execlp("tinyproxy", "tinyproxy", "-d", "-c", (proxyDir.path() + "/tinyproxy.conf").c_str(),
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(proxy, 0);
  struct ProxyGuard {
    pid_t pid;
    ~ProxyGuard() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } guard{proxy};
  // Wait until it listens.
  for (int i = 0; i < 100; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(proxyPort);
    bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    if (up) break;
    std::this_thread::sleep_for(50ms);
  }
  const std::string base = "http://proxyuser:proxy-Pa55@127.0.0.1:" + std::to_string(proxyPort);
  auto popbridge = start(identity(user, "https_proxy = \"" + base + "\"\n"));
  popbridge->addSecret("proxy-Pa55");
  {
    Pop3TestClient pop3(popbridge->port());
    ASSERT_TRUE(startsWith(login(pop3), "+OK")) << popbridge->log() << readWholeFile(proxyLog);
    pop3.command("QUIT");
  }
  EXPECT_EQ(endpoint_->count("refresh_token"), 1u);
  EXPECT_NE(readWholeFile(proxyLog).find("CONNECT"), std::string::npos) << readWholeFile(proxyLog);

  const std::string wrong = "http://proxyuser:wr0ng-Pa55@127.0.0.1:" + std::to_string(proxyPort);
  auto refused = start(identity(user, "https_proxy = \"" + wrong + "\"\n"));
  Pop3TestClient pop3(refused->port());
  std::string reply = login(pop3);
  EXPECT_TRUE(startsWith(reply, "-ERR [SYS/TEMP]")) << reply;
  // tinyproxy answers a wrong password with 401 where RFC 9110 says 407.
  EXPECT_NE(refused->log().find("the proxy refused CONNECT: 40"), std::string::npos)
      << refused->log();
  refused->addSecret("wr0ng-Pa55");
}

// Real clients once against the OAuth2-backed upstream: each downloads both messages.
TEST_F(OAuth2Test, RealClientsFetchThroughAnOAuth2Upstream) {
  const std::string user = newMailbox("oa-clients");
  grantRefreshToken("rt-clients", user);
  auto popbridge = start(identity(user));
  for (const char* name : {"fetchmail", "mpop", "curl"}) {
    auto client = makeClient(name);
    Account account;
    account.port = popbridge->port();
    account.user = "printer";
    account.password = kDevicePassword;
    auto delivered = client->fetch(account, FetchRun{});
    EXPECT_EQ(delivered.size(), 2u) << name << ": " << client->lastOutput();
  }
  EXPECT_EQ(endpoint_->count("refresh_token"), 1u) << "one token for all three clients";
}

// `popbridge check-upstream --user printer` for an account bound to [oauth2.box]: a token from
// the refresh grant, AUTHENTICATE with it, EXAMINE; without a usable refresh token it exits 9
// at the token step. No secret reaches the terminal.
class OAuth2CheckUpstreamTest : public OAuth2Test {
 protected:
  CommandResult checkUpstream(const std::string& user) {
    const std::string configPath = state_.path() + "/check.toml";
    writeTextFile(configPath,
                  "[[listener]]\naddress = \"127.0.0.1:1100\"\ntls = \"none\"\n"
                  "allow_plaintext_auth = true\n[upstream]\nhost = \"127.0.0.1\"\nport = " +
                      std::to_string(dovecot().imapPort()) + "\ntls = \"none\"\n" + identity(user),
                  0600);
    const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
    return runCommand({custom ? custom : POPBRIDGE_BINARY, "check-upstream", "--config", configPath,
                       "--user", "printer"},
                      CommandOptions{});
  }
};

TEST_F(OAuth2CheckUpstreamTest, LogsInWithTheIdentitysTokenOrExitsNine) {
  const std::string user = newMailbox("oa-check");
  auto missing = checkUpstream(user);
  EXPECT_EQ(missing.exitCode, 9) << missing.describe();
  EXPECT_NE(missing.output.find("token "), std::string::npos) << missing.output;
  EXPECT_NE(missing.output.find("FAIL at token"), std::string::npos) << missing.output;

  grantRefreshToken("rt-check", user);
  auto result = checkUpstream(user);
  ASSERT_EQ(result.exitCode, 0) << result.describe();
  EXPECT_NE(result.output.find("with an access token of [oauth2.box]"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("EXISTS 2"), std::string::npos) << result.output;
  for (const std::string& secret : endpoint_->allSecrets()) {
    EXPECT_EQ(result.output.find(secret), std::string::npos) << "a secret on the terminal";
    EXPECT_EQ(missing.output.find(secret), std::string::npos) << "a secret on the terminal";
  }
}

}  // namespace
}  // namespace popbridge::test
