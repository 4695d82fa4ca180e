// The OAuth2 test infrastructure on its own: TokenEndpoint (over HTTPS, driven with the curl
// command-line tool and a raw TLS client) and a Dovecot with an oauth2 passdb (driven with raw
// IMAP AUTHENTICATE), and the two together. Later upstream OAuth2 tests build on these.

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/test_clients.h"
#include "tests/support/token_endpoint.h"

extern char** environ;

namespace popbridge::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kDeviceGrant = "urn:ietf:params:oauth:grant-type:device_code";

struct CurlResult {
  int exitCode = -1;
  int status = 0;  // HTTP status, 0 when there was no answer
  std::string body;
  std::chrono::milliseconds elapsed{0};
};

// Runs curl against the endpoint (no shell: arguments go through as given). `args` are extra
// curl arguments such as {"-d", "grant_type=refresh_token"}.
CurlResult curl(const TokenEndpoint& endpoint, const std::string& path,
                const std::vector<std::string>& args, int maxSeconds = 10,
                const std::string& host = "127.0.0.1") {
  std::vector<std::string> command = {"curl",       "-sS",
                                      "--cacert",   endpoint.caFile(),
                                      "--max-time", std::to_string(maxSeconds),
                                      "-w",         "\n%{http_code}"};
  command.insert(command.end(), args.begin(), args.end());
  command.push_back("https://" + host + ":" + std::to_string(endpoint.port()) + path);
  std::vector<char*> argv;
  for (auto& arg : command) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  const auto start = Clock::now();
  pid_t pid = -1;
  const int error = posix_spawnp(&pid, "curl", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (error != 0) {
    close(out[0]);
    throw std::runtime_error(std::string("cannot run curl: ") + std::strerror(error));
  }
  std::string output;
  char chunk[4096];
  for (ssize_t n; (n = read(out[0], chunk, sizeof chunk)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(chunk, static_cast<std::size_t>(n));
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CurlResult result;
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const auto newline = output.rfind('\n');
  if (newline != std::string::npos) {
    result.status = std::atoi(output.c_str() + newline + 1);
    result.body = output.substr(0, newline);
  }
  return result;
}

// The value of a string or number member of a flat JSON object; "<absent>" when missing.
std::string jsonField(const std::string& json, const std::string& key) {
  const std::regex pattern("\"" + key + "\"\\s*:\\s*(\"([^\"]*)\"|[^,}\\s]+)");
  std::smatch match;
  if (!std::regex_search(json, match, pattern)) return "<absent>";
  return match[2].matched ? match[2].str() : match[1].str();
}

std::string base64UrlDecodeForTest(std::string text) {
  for (char& c : text) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (text.size() % 4 != 0) text += '=';
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const char c : text) {
    if (c == '=') break;
    const auto value = kAlphabet.find(c);
    if (value == std::string::npos) throw std::runtime_error("bad base64");
    buffer = (buffer << 6) | static_cast<unsigned>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  return out;
}

// The JWT's parts: decoded header and claims, and the signature as sent.
struct JwtParts {
  std::string header;
  std::string claims;
  std::string signature;
};

JwtParts splitJwt(const std::string& jwt) {
  const auto first = jwt.find('.');
  const auto last = jwt.rfind('.');
  if (first == std::string::npos || first == last) throw std::runtime_error("not a JWT: " + jwt);
  return {base64UrlDecodeForTest(jwt.substr(0, first)),
          base64UrlDecodeForTest(jwt.substr(first + 1, last - first - 1)), jwt.substr(last + 1)};
}

bool contains(const std::vector<std::string>& all, const std::string& one) {
  return std::find(all.begin(), all.end(), one) != all.end();
}

// --- TokenEndpoint over HTTPS --------------------------------------------------------------------

class TokenEndpointTest : public ::testing::Test {
 protected:
  static TokenEndpoint::Options options() {
    TokenEndpoint::Options options;
    // After a slow_down the device owes 1 s + 3 s: a poll 1 s later is early by far more than a
    // loaded machine's curl start-up could make up.
    options.slowDownIncrement = 3s;
    options.accessTokenLifetime = 600s;
    return options;
  }
  TokenEndpoint endpoint_{options()};
};

TEST_F(TokenEndpointTest, IssuesVerifiableHs256JwtsThatDifferEachTime) {
  const std::string first = endpoint_.issueJwt("alice", 300s);
  const std::string second = endpoint_.issueJwt("alice", 300s);
  EXPECT_NE(first, second);
  const JwtParts parts = splitJwt(first);
  EXPECT_EQ(parts.header, R"({"alg":"HS256","typ":"JWT"})");
  EXPECT_EQ(jsonField(parts.claims, "sub"), "alice");
  EXPECT_EQ(std::stoll(jsonField(parts.claims, "exp")) - std::stoll(jsonField(parts.claims, "iat")),
            300);
  EXPECT_NE(jsonField(parts.claims, "jti"), jsonField(splitJwt(second).claims, "jti"));
  // The signature is HMAC-SHA256 over the parts with the endpoint's secret, and no other.
  EXPECT_EQ(makeHs256Jwt(parts.header, parts.claims, endpoint_.jwtSecret()), first);
  EXPECT_NE(makeHs256Jwt(parts.header, parts.claims, "another secret"), first);
  EXPECT_EQ(first.find('='), std::string::npos);
  EXPECT_TRUE(contains(endpoint_.allSecrets(), first));

  const JwtParts expired = splitJwt(endpoint_.issueJwt("bob", -60s));
  EXPECT_LT(std::stoll(jsonField(expired.claims, "exp")),
            std::stoll(jsonField(expired.claims, "iat")));
}

TEST(TokenEndpointKeys, KeyIdAndAzpGoIntoTheTokenAndTheDovecotKeyPath) {
  TokenEndpoint::Options options;
  options.jwtSecret = "k3y-with/odd+bytes";
  options.keyId = "kid/1";
  options.azp = "popbridge";
  TokenEndpoint endpoint(options);
  const JwtParts parts = splitJwt(endpoint.issueJwt("alice", 60s));
  EXPECT_EQ(parts.header, R"({"alg":"HS256","typ":"JWT","kid":"kid/1"})");
  EXPECT_EQ(jsonField(parts.claims, "azp"), "popbridge");

  char pattern[] = "/tmp/popbridge-keys-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string keys = std::string(pattern) + "/keys";
  endpoint.writeDovecotKey(keys);
  const std::string file = keys + "/popbridge/HS256/kid%2f1";
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), base64Encode("k3y-with/odd+bytes"));  // no newline
  struct stat info {};
  ASSERT_EQ(stat(file.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
  ASSERT_EQ(stat((keys + "/popbridge/HS256").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0755u);
  std::filesystem::remove_all(pattern);
}

TEST_F(TokenEndpointTest, RefreshWithRotationRevokesTheTokenUsed) {
  endpoint_.addRefreshToken("rt-initial", "alice");
  endpoint_.setRotateRefreshTokens(true);
  // '+' and %XX in the body: the scope arrives as "mail imap/full".
  const CurlResult first =
      curl(endpoint_, "/token",
           {"-d", "grant_type=refresh_token&refresh_token=rt-initial&client_id=popbridge", "-d",
            "scope=mail+imap%2Ffull"});
  ASSERT_EQ(first.exitCode, 0);
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(jsonField(first.body, "token_type"), "Bearer");
  EXPECT_EQ(jsonField(first.body, "expires_in"), "600");
  EXPECT_EQ(jsonField(first.body, "scope"), "mail imap/full");
  const std::string access = jsonField(first.body, "access_token");
  EXPECT_EQ(access, endpoint_.lastAccessToken());
  EXPECT_EQ(jsonField(splitJwt(access).claims, "sub"), "alice");
  const std::string rotated = jsonField(first.body, "refresh_token");
  EXPECT_NE(rotated, "rt-initial");
  EXPECT_EQ(endpoint_.currentRefreshToken("alice"), rotated);

  const CurlResult reused = curl(endpoint_, "/token",
                                 {"-d", "grant_type=refresh_token", "-d",
                                  "refresh_token=rt-initial", "-d", "client_id=popbridge"});
  EXPECT_EQ(reused.status, 400);
  EXPECT_EQ(jsonField(reused.body, "error"), "invalid_grant");

  const CurlResult second = curl(endpoint_, "/token",
                                 {"-d", "grant_type=refresh_token", "--data-urlencode",
                                  "refresh_token=" + rotated, "-d", "client_id=popbridge"});
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_NE(jsonField(second.body, "refresh_token"), rotated);
  EXPECT_NE(jsonField(second.body, "access_token"), access);
  EXPECT_EQ(jsonField(second.body, "scope"), "<absent>");

  EXPECT_EQ(endpoint_.count("refresh_token"), 3u);
  EXPECT_EQ(endpoint_.count("client_credentials"), 0u);
  const auto log = endpoint_.requests();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].path, "/token");
  EXPECT_EQ(log[0].method, "POST");
  EXPECT_EQ(log[0].form.at("refresh_token"), "rt-initial");
  EXPECT_EQ(log[0].form.at("scope"), "mail imap/full");
  EXPECT_EQ(log[2].form.at("refresh_token"), rotated);
  EXPECT_LE(log[0].at, log[1].at);

  const auto secrets = endpoint_.allSecrets();
  for (const auto& secret :
       {std::string("rt-initial"), rotated, access, jsonField(second.body, "access_token"),
        jsonField(second.body, "refresh_token")}) {
    EXPECT_TRUE(contains(secrets, secret)) << secret;
  }
  endpoint_.resetLog();
  EXPECT_TRUE(endpoint_.requests().empty());
  EXPECT_EQ(endpoint_.count("refresh_token"), 0u);
}

TEST_F(TokenEndpointTest, RefreshErrorsFollowRfc6749) {
  endpoint_.addRefreshToken("rt-kept", "bob");
  const std::vector<std::string> refresh = {"-d", "grant_type=refresh_token", "-d",
                                            "client_id=popbridge"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), refresh.begin(), refresh.end());
    return curl(endpoint_, "/token", more);
  };
  // Without rotation the answer carries no refresh token and the old one keeps working.
  const CurlResult ok = with({"-d", "refresh_token=rt-kept"});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(jsonField(ok.body, "refresh_token"), "<absent>");
  EXPECT_EQ(with({"-d", "refresh_token=rt-kept"}).status, 200);

  endpoint_.revokeRefreshToken("rt-kept");
  EXPECT_EQ(endpoint_.currentRefreshToken("bob"), "");
  const CurlResult revoked = with({"-d", "refresh_token=rt-kept"});
  EXPECT_EQ(revoked.status, 400);
  EXPECT_EQ(jsonField(revoked.body, "error"), "invalid_grant");
  EXPECT_NE(jsonField(revoked.body, "error_description"), "<absent>");

  EXPECT_EQ(jsonField(with({"-d", "refresh_token=never-issued"}).body, "error"), "invalid_grant");
  EXPECT_EQ(jsonField(with({}).body, "error"), "invalid_request");
  const CurlResult noClient =
      curl(endpoint_, "/token", {"-d", "grant_type=refresh_token&refresh_token=rt-kept"});
  EXPECT_EQ(noClient.status, 400);
  EXPECT_EQ(jsonField(noClient.body, "error"), "invalid_request");
  const CurlResult password =
      curl(endpoint_, "/token", {"-d", "grant_type=password&client_id=x&username=a&password=b"});
  EXPECT_EQ(password.status, 400);
  EXPECT_EQ(jsonField(password.body, "error"), "unsupported_grant_type");
  // RFC 6749 3.1: a parameter must not be repeated.
  const CurlResult twice = curl(endpoint_, "/token",
                                {"-d",
                                 "grant_type=refresh_token&refresh_token=a&refresh_token=b"
                                 "&client_id=x"});
  EXPECT_EQ(twice.status, 400);
  EXPECT_EQ(jsonField(twice.body, "error"), "invalid_request");
  EXPECT_EQ(curl(endpoint_, "/token", {}).status, 405);  // GET
  EXPECT_EQ(curl(endpoint_, "/nowhere", {"-d", "a=b"}).status, 404);
  EXPECT_EQ(endpoint_.count("refresh_token"), 6u);
  EXPECT_EQ(endpoint_.count("password"), 1u);
}

TEST_F(TokenEndpointTest, ClientCredentialsWithFormOrBasicAuthentication) {
  endpoint_.addClient("svc", "s3cret/=x", "carol");
  const CurlResult form = curl(endpoint_, "/token",
                               {"-d", "grant_type=client_credentials&client_id=svc&scope=mail",
                                "--data-urlencode", "client_secret=s3cret/=x"});
  ASSERT_EQ(form.status, 200) << form.body;
  EXPECT_EQ(jsonField(splitJwt(jsonField(form.body, "access_token")).claims, "sub"), "carol");
  EXPECT_EQ(jsonField(form.body, "refresh_token"), "<absent>");
  EXPECT_EQ(jsonField(form.body, "scope"), "mail");

  // Verified for the name "localhost" as well as for 127.0.0.1.
  const CurlResult basic =
      curl(endpoint_, "/token", {"-u", "svc:s3cret/=x", "-d", "grant_type=client_credentials"}, 10,
           "localhost");
  ASSERT_EQ(basic.exitCode, 0);
  ASSERT_EQ(basic.status, 200) << basic.body;
  EXPECT_EQ(endpoint_.requests().back().authorizationHeader,
            "Basic " + base64Encode("svc:s3cret/=x"));

  const CurlResult wrong =
      curl(endpoint_, "/token",
           {"-d", "grant_type=client_credentials&client_id=svc&client_secret=guess"});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(jsonField(wrong.body, "error"), "invalid_client");
  const CurlResult unknown =
      curl(endpoint_, "/token",
           {"-d", "grant_type=client_credentials&client_id=nobody&client_secret=x"});
  EXPECT_EQ(unknown.status, 401);
  // A registered client must authenticate on the other grants too.
  endpoint_.addRefreshToken("rt-svc", "carol");
  EXPECT_EQ(curl(endpoint_, "/token",
                 {"-d", "grant_type=refresh_token&refresh_token=rt-svc&client_id=svc"})
                .status,
            401);
  EXPECT_EQ(endpoint_.count("client_credentials"), 4u);
  EXPECT_TRUE(contains(endpoint_.allSecrets(), "s3cret/=x"));
}

TEST_F(TokenEndpointTest, DevicePlanIsFollowedAndPollPacingIsJudged) {
  EXPECT_THROW(endpoint_.setDevicePlan({}, "bob"), std::invalid_argument);
  EXPECT_THROW(endpoint_.setDevicePlan({"granted"}, "bob"), std::invalid_argument);
  endpoint_.setDevicePlan({"authorization_pending", "slow_down", "ok"}, "bob");

  const CurlResult start = curl(endpoint_, "/devicecode", {"-d", "client_id=tv&scope=mail"});
  ASSERT_EQ(start.status, 200) << start.body;
  const std::string code = jsonField(start.body, "device_code");
  EXPECT_NE(code, "<absent>");
  EXPECT_NE(jsonField(start.body, "user_code"), "<absent>");
  EXPECT_EQ(jsonField(start.body, "verification_uri"), endpoint_.url("/device"));
  EXPECT_EQ(jsonField(start.body, "interval"), "1");
  EXPECT_EQ(jsonField(start.body, "expires_in"), "600");
  EXPECT_TRUE(contains(endpoint_.allSecrets(), code));

  auto poll = [&](const std::string& clientId = "tv") {
    return curl(endpoint_, "/token",
                {"-d", std::string("grant_type=") + kDeviceGrant, "--data-urlencode",
                 "device_code=" + code, "-d", "client_id=" + clientId});
  };
  std::this_thread::sleep_for(1050ms);
  const CurlResult pending = poll();
  EXPECT_EQ(pending.status, 400);
  EXPECT_EQ(jsonField(pending.body, "error"), "authorization_pending");
  std::this_thread::sleep_for(1050ms);
  EXPECT_EQ(jsonField(poll().body, "error"), "slow_down");
  // After slow_down the client owes interval + 3 s (the test's increment): this poll is early.
  std::this_thread::sleep_for(1050ms);
  const CurlResult granted = poll();
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_EQ(jsonField(splitJwt(jsonField(granted.body, "access_token")).claims, "sub"), "bob");
  EXPECT_EQ(jsonField(granted.body, "scope"), "mail");
  const std::string refresh = jsonField(granted.body, "refresh_token");
  EXPECT_EQ(endpoint_.currentRefreshToken("bob"), refresh);
  std::this_thread::sleep_for(4050ms);
  EXPECT_EQ(poll().status, 200);  // past the plan: its last answer again

  const auto polls = endpoint_.devicePolls();
  ASSERT_EQ(polls.size(), 4u);
  const std::vector<std::string> answers = {"authorization_pending", "slow_down", "ok", "ok"};
  const std::vector<bool> early = {false, false, true, false};
  const std::vector<long long> required = {1000, 1000, 4000, 4000};
  for (std::size_t i = 0; i < polls.size(); ++i) {
    EXPECT_EQ(polls[i].deviceCode, code);
    EXPECT_EQ(polls[i].answer, answers[i]) << i;
    EXPECT_EQ(polls[i].early, early[i]) << i << ": gap " << polls[i].gap.count() << " ms";
    EXPECT_EQ(polls[i].requiredGap.count(), required[i]) << i;
    EXPECT_GE(polls[i].gap.count(), 1000) << i;
  }

  // The device code belongs to the client that asked for it; unknown codes are invalid_grant.
  EXPECT_EQ(jsonField(poll("other-client").body, "error"), "invalid_grant");
  const CurlResult unknown =
      curl(endpoint_, "/token",
           {"-d", std::string("grant_type=") + kDeviceGrant + "&device_code=nope&client_id=tv"});
  EXPECT_EQ(jsonField(unknown.body, "error"), "invalid_grant");
  EXPECT_EQ(endpoint_.count(kDeviceGrant), 6u);
  EXPECT_EQ(endpoint_.devicePolls().size(), 4u);

  // The refresh token from the device grant works on the refresh grant.
  const CurlResult refreshed = curl(endpoint_, "/token",
                                    {"-d", "grant_type=refresh_token&client_id=tv",
                                     "--data-urlencode", "refresh_token=" + refresh});
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  EXPECT_EQ(jsonField(splitJwt(jsonField(refreshed.body, "access_token")).claims, "sub"), "bob");

  // Terminal answers repeat too.
  endpoint_.setDevicePlan({"access_denied"}, "bob");
  EXPECT_EQ(jsonField(poll().body, "error"), "access_denied");
  endpoint_.setDevicePlan({"expired_token"}, "bob");
  EXPECT_EQ(jsonField(poll().body, "error"), "expired_token");
  EXPECT_EQ(jsonField(poll().body, "error"), "expired_token");
}

TEST_F(TokenEndpointTest, FaultsAndDelay) {
  endpoint_.addRefreshToken("rt-f", "alice");
  const std::vector<std::string> refresh = {
      "-d", "grant_type=refresh_token&refresh_token=rt-f&client_id=popbridge"};

  endpoint_.setFault(TokenEndpoint::Fault::Status500);
  const CurlResult broken = curl(endpoint_, "/token", refresh);
  EXPECT_EQ(broken.status, 500);
  EXPECT_EQ(jsonField(broken.body, "error"), "server_error");

  endpoint_.setFault(TokenEndpoint::Fault::Stall);
  const CurlResult stalled = curl(endpoint_, "/token", refresh, 2);
  EXPECT_EQ(stalled.exitCode, 28);  // curl: operation timed out
  EXPECT_EQ(stalled.status, 0);
  EXPECT_GE(stalled.elapsed, 1900ms);

  // A stalled connection does not hold up the next one.
  TestConnection held(endpoint_.port(), 5000);
  held.startTls(endpoint_.caFile(), "127.0.0.1");
  held.sendAll(
      "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
      "Content-Length: 3\r\n\r\na=b");
  // The fault is read as the request is logged: wait for that before changing it.
  const auto deadline = Clock::now() + 5s;
  while (endpoint_.requests().size() < 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(endpoint_.requests().size(), 3u);
  endpoint_.setFault(TokenEndpoint::Fault::CloseEarly);
  const CurlResult closed = curl(endpoint_, "/token", refresh);
  EXPECT_NE(closed.exitCode, 0);
  EXPECT_EQ(closed.status, 0);

  endpoint_.setFault(TokenEndpoint::Fault::None);
  endpoint_.setResponseDelay(700ms);
  const CurlResult slow = curl(endpoint_, "/token", refresh);
  EXPECT_EQ(slow.status, 200);
  EXPECT_GE(slow.elapsed, 700ms);
  EXPECT_FALSE(held.closedByPeer(100));  // still stalled

  // Faulted requests count too.
  EXPECT_EQ(endpoint_.count("refresh_token"), 4u);
  EXPECT_EQ(endpoint_.requests().size(), 5u);
}

TEST_F(TokenEndpointTest, ParsesSplitRequestsAndClosesKeepAliveConnections) {
  endpoint_.addRefreshToken("rt a+b", "alice");
  TestConnection connection(endpoint_.port(), 5000);
  connection.startTls(endpoint_.caFile(), "127.0.0.1");
  const std::string body = "grant_type=refresh_token&refresh_token=rt+a%2Bb&client_id=pop%62ridge";
  connection.sendAll("POST /token?ignored=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  std::this_thread::sleep_for(50ms);
  connection.sendAll(
      "Connection: keep-alive\r\ncontent-type: Application/X-WWW-Form-Urlencoded;"
      " charset=UTF-8\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 10));
  std::this_thread::sleep_for(50ms);
  connection.sendAll(body.substr(10));
  EXPECT_EQ(connection.readLine("status"), "HTTP/1.1 200 OK\r\n");
  std::set<std::string> headers;
  std::size_t length = 0;
  for (std::string line; (line = connection.readLine("header")) != "\r\n";) {
    headers.insert(line);
    if (line.rfind("Content-Length: ", 0) == 0) length = std::stoul(line.substr(16));
  }
  EXPECT_EQ(headers.count("Connection: close\r\n"), 1u);
  EXPECT_EQ(headers.count("Content-Type: application/json\r\n"), 1u);
  const std::string json = connection.readExact(length, "body");
  EXPECT_EQ(jsonField(json, "token_type"), "Bearer");
  EXPECT_TRUE(connection.closedByPeer(2000));
  const auto log = endpoint_.requests();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].path, "/token");
  EXPECT_EQ(log[0].form.at("refresh_token"), "rt a+b");
  EXPECT_EQ(log[0].form.at("client_id"), "popbridge");

  // A malformed escape is refused.
  const CurlResult bad = curl(endpoint_, "/token", {"-d", "grant_type=refresh_token%G1"});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(jsonField(bad.body, "error"), "invalid_request");
}

// --- Dovecot's oauth2 passdb ---------------------------------------------------------------------

constexpr const char* kJwtSecret = "popbridge-oauth2-fixture-secret-0123456789";

TokenEndpoint& sharedEndpoint() {
  static TokenEndpoint endpoint([] {
    TokenEndpoint::Options options;
    options.jwtSecret = kJwtSecret;
    return options;
  }());
  return endpoint;
}

DovecotFixture& oauth2Dovecot() {
  static DovecotFixture dovecot([] {
    DovecotFixture::Options options;
    options.enablePop3 = false;
    options.oauth2 = DovecotOAuth2Options{};
    options.oauth2->jwtSecret = kJwtSecret;
    return options;
  }());
  return dovecot;
}

std::string xoauth2(const std::string& user, const std::string& token) {
  return base64Encode("user=" + user + "\x01" + "auth=Bearer " + token + "\x01\x01");
}

std::string oauthbearer(const std::string& user, const std::string& token) {
  return base64Encode("n,a=" + user + ",\x01" + "auth=Bearer " + token + "\x01\x01");
}

std::string withoutLineEnd(std::string line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

// A raw IMAP connection (plaintext; the fixture allows plaintext auth) from `sourceIp`. The wait
// is long: Dovecot starts its auth process at the first login, which took over 10 s once in CI
// while the container stage loaded both cores.
class RawImap {
 public:
  explicit RawImap(std::uint16_t port, const std::string& sourceIp = "")
      : connection_(port, 45000, sourceIp) {
    const std::string greeting = connection_.readLine("greeting");
    if (greeting.rfind("* OK", 0) != 0) throw std::runtime_error("greeting: " + greeting);
  }
  void send(const std::string& line) { connection_.sendAll(line + "\r\n"); }
  std::string line() { return withoutLineEnd(connection_.readLine("an IMAP response")); }
  // Lines up to and including the tagged one; returns the tagged one.
  std::string tagged(const std::string& tag) {
    for (;;) {
      std::string response = line();
      if (response.rfind(tag + " ", 0) == 0) return response;
      untagged_.push_back(response);
    }
  }
  const std::vector<std::string>& untagged() const { return untagged_; }
  TestConnection& connection() { return connection_; }

 private:
  TestConnection connection_;
  std::vector<std::string> untagged_;
};

// SASL-IR then the failure exchange: the challenge is returned decoded, and the tagged answer.
struct Failure {
  std::string challenge;
  std::string tagged;
};

Failure failedAuthenticate(const std::string& mechanism, const std::string& initial,
                           const std::string& sourceIp) {
  RawImap imap(oauth2Dovecot().imapPort(), sourceIp);
  imap.send("a1 AUTHENTICATE " + mechanism + " " + initial);
  const std::string challenge = imap.line();
  Failure failure;
  if (challenge.rfind("+ ", 0) != 0) {
    failure.tagged = challenge;  // no challenge: let the caller's expectation show what came
    return failure;
  }
  failure.challenge = base64UrlDecodeForTest(challenge.substr(2));
  imap.send(mechanism == "XOAUTH2" ? "" : "AQ==");
  failure.tagged = imap.tagged("a1");
  return failure;
}

class OAuth2DovecotTest : public ::testing::Test {
 protected:
  DovecotFixture& dovecot_ = oauth2Dovecot();
  TokenEndpoint& endpoint_ = sharedEndpoint();
};

TEST_F(OAuth2DovecotTest, AdvertisesTheMechanismsAndWritesTheLayout) {
  RawImap imap(dovecot_.imapPort());
  imap.send("c CAPABILITY");
  EXPECT_EQ(imap.tagged("c").rfind("c OK", 0), 0u);
  ASSERT_FALSE(imap.untagged().empty());
  const std::string capabilities = imap.untagged().front();
  for (const char* wanted : {"AUTH=XOAUTH2", "AUTH=OAUTHBEARER", "AUTH=PLAIN", "SASL-IR"}) {
    EXPECT_NE(capabilities.find(wanted), std::string::npos) << wanted << " in " << capabilities;
  }
  std::ifstream key(dovecot_.oauth2KeysDir() + "default/HS256/default", std::ios::binary);
  std::stringstream text;
  text << key.rdbuf();
  EXPECT_EQ(text.str(), base64Encode(kJwtSecret));
}

TEST_F(OAuth2DovecotTest, Xoauth2WithSaslIrLogsIn) {
  RawImap imap(dovecot_.imapPort());
  imap.send("a1 AUTHENTICATE XOAUTH2 " + xoauth2("alice", endpoint_.issueJwt("alice", 300s)));
  const std::string answer = imap.tagged("a1");
  ASSERT_EQ(answer.rfind("a1 OK", 0), 0u) << answer << "\n" << dovecot_.logTail(20);
  // The userdb lookup worked too: the mailbox opens.
  imap.send("a2 SELECT INBOX");
  EXPECT_EQ(imap.tagged("a2").rfind("a2 OK", 0), 0u);
}

TEST_F(OAuth2DovecotTest, OauthbearerWithSaslIrAndXoauth2AfterAContinuationLogIn) {
  {
    RawImap imap(dovecot_.imapPort());
    imap.send("a1 AUTHENTICATE OAUTHBEARER " + oauthbearer("bob", endpoint_.issueJwt("bob", 300s)));
    const std::string answer = imap.tagged("a1");
    EXPECT_EQ(answer.rfind("a1 OK", 0), 0u) << answer << "\n" << dovecot_.logTail(20);
  }
  RawImap imap(dovecot_.imapPort());
  imap.send("a1 AUTHENTICATE XOAUTH2");
  EXPECT_EQ(imap.line(), "+ ");
  imap.send(xoauth2("carol", endpoint_.issueJwt("carol", 300s)));
  const std::string answer = imap.tagged("a1");
  EXPECT_EQ(answer.rfind("a1 OK", 0), 0u) << answer;
}

TEST_F(OAuth2DovecotTest, PasswordsStayWithPlainAndTokensWithTheOAuthMechanisms) {
  ImapTestClient plain(dovecot_.imapPort());
  EXPECT_NO_THROW(plain.login("alice", dovecot_.user("alice").password));
  // The password as a bearer token: passwd-file does not serve XOAUTH2.
  const Failure password = failedAuthenticate(
      "XOAUTH2", xoauth2("alice", dovecot_.user("alice").password), "127.0.0.20");
  EXPECT_EQ(password.tagged.rfind("a1 NO [AUTHENTICATIONFAILED]", 0), 0u) << password.tagged;
}

TEST_F(OAuth2DovecotTest, BadTokensGetTheDocumentedFailureExchange) {
  const std::string xoauth2Challenge = R"({"status":"401","schemes":"bearer","scope":"mail"})";
  const std::string oauthbearerChallenge = R"({"status":"invalid_token"})";
  const std::string now = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  struct Case {
    std::string name;
    std::string token;
  };
  const std::vector<Case> cases = {
      {"token of another user", endpoint_.issueJwt("bob", 300s)},
      {"expired token", endpoint_.issueJwt("alice", -120s)},
      {"foreign signature",
       makeHs256Jwt(R"({"alg":"HS256","typ":"JWT"})",
                    R"({"sub":"alice","iat":)" + now + R"(,"exp":)" + now + "0}",
                    "not the secret Dovecot has")},
      {"no exp claim", makeHs256Jwt(R"({"alg":"HS256","typ":"JWT"})",
                                    R"({"sub":"alice","iat":)" + now + "}", kJwtSecret)},
  };
  int source = 10;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    // Distinct source addresses keep Dovecot's per-IP auth penalty out of the timings.
    const Failure viaXoauth2 = failedAuthenticate("XOAUTH2", xoauth2("alice", c.token),
                                                  "127.0.0." + std::to_string(++source));
    EXPECT_EQ(viaXoauth2.challenge, xoauth2Challenge);
    EXPECT_EQ(viaXoauth2.tagged.rfind("a1 NO [AUTHENTICATIONFAILED]", 0), 0u) << viaXoauth2.tagged;
    const Failure viaOauthbearer = failedAuthenticate("OAUTHBEARER", oauthbearer("alice", c.token),
                                                      "127.0.0." + std::to_string(++source));
    EXPECT_EQ(viaOauthbearer.challenge, oauthbearerChallenge);
    EXPECT_EQ(viaOauthbearer.tagged.rfind("a1 NO [AUTHENTICATIONFAILED]", 0), 0u)
        << viaOauthbearer.tagged;
  }
  // The same tokens' good twin still works, so the failures above were about the tokens.
  RawImap imap(dovecot_.imapPort(), "127.0.0.30");
  imap.send("a1 AUTHENTICATE XOAUTH2 " + xoauth2("alice", endpoint_.issueJwt("alice", 300s)));
  EXPECT_EQ(imap.tagged("a1").rfind("a1 OK", 0), 0u);
}

TEST_F(OAuth2DovecotTest, ATokenFromTheEndpointLogsIntoDovecot) {
  endpoint_.addRefreshToken("rt-dovecot-alice", "alice");
  const CurlResult refreshed =
      curl(endpoint_, "/token",
           {"-d", "grant_type=refresh_token&refresh_token=rt-dovecot-alice&client_id=popbridge"});
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  const std::string token = jsonField(refreshed.body, "access_token");
  EXPECT_EQ(token, endpoint_.lastAccessToken());
  RawImap imap(dovecot_.imapPort());
  imap.send("a1 AUTHENTICATE OAUTHBEARER " + oauthbearer("alice", token));
  EXPECT_EQ(imap.tagged("a1").rfind("a1 OK", 0), 0u);
}

}  // namespace
}  // namespace popbridge::test
