// TokenService on its own: a real HTTPS token endpoint (tests/support/token_endpoint.h), and
// callers on two event loops of their own, as two workers would be.
#include "proxy/token_service.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/client_runner.h"
#include "tests/support/token_endpoint.h"

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;
using test::TokenEndpoint;

// One caller loop, run on its own thread until a reply arrives.
class Caller {
 public:
  Caller() {
    uv_loop_init(&loop_);
    mailbox_ = LoopMailbox::create(&loop_);
  }
  ~Caller() {
    mailbox_->close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  // Asks, then runs the loop until the answer (a keep-alive timer bounds the wait).
  TokenResult get(TokenService& service, const std::string& identity, std::uint64_t rejected = 0) {
    std::optional<TokenResult> answer;
    Timer deadline(&loop_);
    deadline.start(30s, [&] { mailbox_->close(); });
    service.get(identity, rejected, mailbox_, [&](TokenResult result) {
      answer = std::move(result);
      deadline.stop();
    });
    while (!answer && uv_run(&loop_, UV_RUN_ONCE) != 0) {
    }
    if (!answer) throw std::runtime_error("no answer from the token service");
    return *answer;
  }

 private:
  uv_loop_t loop_{};
  std::shared_ptr<LoopMailbox> mailbox_;
};

class TokenServiceTest : public ::testing::Test {
 protected:
  TokenServiceTest() : dir_("popbridge-tokens") { refreshFile_ = dir_.path() + "/refresh"; }

  config::OAuthIdentityConfig& addIdentity(const std::string& name) {
    config::OAuthIdentityConfig identity;
    identity.name = name;
    identity.tokenEndpoint = endpoint_.url("/token");
    identity.clientId = "client";
    identity.caFile = endpoint_.caFile();
    identity.refreshTokenFile = refreshFile_;
    identity.requestTimeout = 2s;
    config_.oauth2.push_back(identity);
    return config_.oauth2.back();
  }

  TokenService& start() {
    service_ = std::make_unique<TokenService>(config_);
    std::string error;
    EXPECT_TRUE(service_->start(error)) << error;
    return *service_;
  }
  // Identity "a" with a refresh token the endpoint refuses (invalid_grant).
  TokenService& startWithUnknownRefreshToken() {
    test::writeTextFile(refreshFile_, "unknown\n");
    addIdentity("a");
    return start();
  }
  // The usual start: identity "a" with a refresh token the endpoint knows.
  TokenService& startWithRefreshToken() {
    endpoint_.addRefreshToken("rt", "alice");
    test::writeTextFile(refreshFile_, "rt\n");
    addIdentity("a");
    return start();
  }

  test::TempDir dir_;
  std::string refreshFile_;
  TokenEndpoint endpoint_;
  config::Config config_;
  std::unique_ptr<TokenService> service_;
};

TEST_F(TokenServiceTest, RefreshesOnceAndServesTheCachedToken) {
  TokenService& service = startWithRefreshToken();
  Caller caller;
  TokenResult first = caller.get(service, "a");
  ASSERT_EQ(first.status, TokenResult::Status::Ok) << first.reason;
  EXPECT_EQ(first.accessToken, endpoint_.lastAccessToken());
  TokenResult second = caller.get(service, "a");
  EXPECT_EQ(second.accessToken, first.accessToken);
  EXPECT_EQ(second.generation, first.generation);
  EXPECT_EQ(endpoint_.count("refresh_token"), 1u);
  // The upstream refused it: exactly that generation is refreshed, once.
  TokenResult forced = caller.get(service, "a", first.generation);
  ASSERT_EQ(forced.status, TokenResult::Status::Ok);
  EXPECT_NE(forced.accessToken, first.accessToken);
  EXPECT_EQ(endpoint_.count("refresh_token"), 2u);
  // A second caller that saw the old generation gets the new token without a third request.
  TokenResult late = caller.get(service, "a", first.generation);
  EXPECT_EQ(late.accessToken, forced.accessToken);
  EXPECT_EQ(endpoint_.count("refresh_token"), 2u);
  auto form = endpoint_.requests().back().form;
  EXPECT_EQ(form.at("client_id"), "client");
  EXPECT_EQ(form.at("refresh_token"), "rt");
}

TEST_F(TokenServiceTest, CallersOnTwoLoopsShareOneInFlightRefresh) {
  endpoint_.addRefreshToken("rt", "alice");
  endpoint_.setResponseDelay(800ms);
  test::writeTextFile(refreshFile_, "rt\n");
  addIdentity("a");
  TokenService& service = start();
  std::vector<TokenResult> results(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      Caller caller;
      results[i] = caller.get(service, "a");
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) {
    EXPECT_EQ(result.status, TokenResult::Status::Ok) << result.reason;
    EXPECT_EQ(result.accessToken, results[0].accessToken);
  }
  EXPECT_EQ(endpoint_.count("refresh_token"), 1u);
  EXPECT_EQ(service.fetchCount("a"), 1u);
}

TEST_F(TokenServiceTest, FailuresBackOffAndANewRefreshTokenEndsTheWait) {
  TokenService& service = startWithUnknownRefreshToken();
  Caller caller;
  TokenResult refused = caller.get(service, "a");
  EXPECT_EQ(refused.status, TokenResult::Status::Auth);
  EXPECT_NE(refused.reason.find("invalid_grant"), std::string::npos) << refused.reason;
  EXPECT_NE(refused.reason.find("popbridge oauth login a"), std::string::npos);
  EXPECT_EQ(caller.get(service, "a").status, TokenResult::Status::Auth);
  EXPECT_EQ(endpoint_.count("refresh_token"), 1u) << "the back-off answered the second";
  // The admin signs in again: the new file is used at once.
  endpoint_.addRefreshToken("fresh", "alice");
  test::writeTextFile(refreshFile_, "fresh\n");
  EXPECT_EQ(caller.get(service, "a").status, TokenResult::Status::Ok);
  EXPECT_EQ(endpoint_.count("refresh_token"), 2u);
}

TEST_F(TokenServiceTest, EndpointTroubleIsTemporary) {
  TokenService& service = startWithRefreshToken();
  Caller caller;
  endpoint_.setFault(TokenEndpoint::Fault::Status500);
  TokenResult down = caller.get(service, "a");
  EXPECT_EQ(down.status, TokenResult::Status::Temporary);
  EXPECT_NE(down.reason.find("HTTP 500"), std::string::npos) << down.reason;
  std::this_thread::sleep_for(1100ms);
  endpoint_.setFault(TokenEndpoint::Fault::CloseEarly);
  TokenResult closed = caller.get(service, "a");
  EXPECT_EQ(closed.status, TokenResult::Status::Temporary);
  std::this_thread::sleep_for(2100ms);
  endpoint_.setFault(TokenEndpoint::Fault::Stall);
  auto started = std::chrono::steady_clock::now();
  TokenResult stalled = caller.get(service, "a");
  EXPECT_EQ(stalled.status, TokenResult::Status::Temporary);
  EXPECT_NE(stalled.reason.find("no complete answer within 2000 ms"), std::string::npos)
      << stalled.reason;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
  endpoint_.setFault(TokenEndpoint::Fault::None);
}

TEST_F(TokenServiceTest, RotatedRefreshTokenIsWrittenBackPrivately) {
  endpoint_.addRefreshToken("rt-1", "alice");
  endpoint_.setRotateRefreshTokens(true);
  test::writeTextFile(refreshFile_, "rt-1\n", 0644);
  addIdentity("a");
  TokenService& service = start();
  Caller caller;
  ASSERT_EQ(caller.get(service, "a").status, TokenResult::Status::Ok);
  const std::string rotated = endpoint_.currentRefreshToken("alice");
  EXPECT_NE(rotated, "rt-1");
  EXPECT_EQ(test::readWholeFile(refreshFile_), rotated + "\n");
  struct stat info {};
  ASSERT_EQ(::stat(refreshFile_.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  // Nothing else is left in the directory (no temporary files).
  EXPECT_EQ(test::listFiles(dir_.path()).size(), 1u);
}

TEST_F(TokenServiceTest, ClientCredentials) {
  endpoint_.addClient("app", "app-secret", "alice");
  auto& identity = addIdentity("app");
  identity.grant = config::OAuthGrant::ClientCredentials;
  identity.clientId = "app";
  identity.clientSecret = "app-secret";
  identity.scope = "https://outlook.office365.com/.default";
  TokenService& service = start();
  Caller caller;
  TokenResult result = caller.get(service, "app");
  ASSERT_EQ(result.status, TokenResult::Status::Ok) << result.reason;
  auto form = endpoint_.requests().back().form;
  EXPECT_EQ(form.at("grant_type"), "client_credentials");
  EXPECT_EQ(form.at("scope"), "https://outlook.office365.com/.default");
}

TEST_F(TokenServiceTest, TokenCommand) {
  const std::string token = endpoint_.issueJwt("alice", 3600s);
  const std::string script = dir_.path() + "/token.sh";
  test::writeTextFile(script, "#!/bin/sh\necho '" + token + "'\n", 0700);
  auto& ok = addIdentity("ok");
  ok.grant = config::OAuthGrant::Command;
  ok.tokenCommand = {script};
  auto& failing = addIdentity("failing");
  failing.grant = config::OAuthGrant::Command;
  failing.tokenCommand = {"/bin/sh", "-c", "echo 'no credentials for scanner' >&2; exit 3"};
  auto& slow = addIdentity("slow");
  slow.grant = config::OAuthGrant::Command;
  slow.tokenCommand = {"/bin/sleep", "30"};
  slow.tokenCommandTimeout = 1s;
  auto& json = addIdentity("json");
  json.grant = config::OAuthGrant::Command;
  json.tokenCommand = {"/bin/echo",
                       R"({"access_token":"abc.def","expires_in":120,"token_type":"Bearer"})"};
  auto& missing = addIdentity("missing");
  missing.grant = config::OAuthGrant::Command;
  missing.tokenCommand = {"/nonexistent/get-token"};
  TokenService& service = start();
  Caller caller;
  TokenResult good = caller.get(service, "ok");
  ASSERT_EQ(good.status, TokenResult::Status::Ok) << good.reason;
  EXPECT_EQ(good.accessToken, token);
  EXPECT_EQ(caller.get(service, "ok").generation, good.generation) << "cached until its exp";
  TokenResult bad = caller.get(service, "failing");
  EXPECT_EQ(bad.status, TokenResult::Status::Temporary);
  EXPECT_NE(bad.reason.find("exited with status 3 (run it by hand to see its stderr)"),
            std::string::npos)
      << bad.reason;
  // Its stderr may hold secrets (set -x, curl -v): it is never passed on.
  EXPECT_EQ(bad.reason.find("no credentials for scanner"), std::string::npos);
  auto started = std::chrono::steady_clock::now();
  TokenResult timedOut = caller.get(service, "slow");
  EXPECT_EQ(timedOut.status, TokenResult::Status::Temporary);
  EXPECT_NE(timedOut.reason.find("did not finish within 1 s"), std::string::npos)
      << timedOut.reason;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  TokenResult parsed = caller.get(service, "json");
  ASSERT_EQ(parsed.status, TokenResult::Status::Ok) << parsed.reason;
  EXPECT_EQ(parsed.accessToken, "abc.def");
  TokenResult absent = caller.get(service, "missing");
  EXPECT_EQ(absent.status, TokenResult::Status::Temporary);
  EXPECT_NE(absent.reason.find("cannot start /nonexistent/get-token"), std::string::npos)
      << absent.reason;
}

// A refusal a new token cannot cure must not make every login a token request.
TEST_F(TokenServiceTest, ForcedRefreshesAreRateLimited) {
  TokenService& service = startWithRefreshToken();
  Caller caller;
  TokenResult first = caller.get(service, "a");
  TokenResult forced = caller.get(service, "a", first.generation);
  ASSERT_EQ(forced.status, TokenResult::Status::Ok);
  EXPECT_NE(forced.generation, first.generation);
  EXPECT_EQ(endpoint_.count("refresh_token"), 2u);
  TokenResult again = caller.get(service, "a", forced.generation);
  EXPECT_EQ(again.generation, forced.generation) << "served the cached token";
  EXPECT_EQ(endpoint_.count("refresh_token"), 2u);
}

// invalid_grant is final for that refresh token: it is not sent again after the back-off, only a
// new file ends the refusal.
TEST_F(TokenServiceTest, ARefusedRefreshTokenIsNotSentAgain) {
  TokenService& service = startWithUnknownRefreshToken();
  Caller caller;
  EXPECT_EQ(caller.get(service, "a").status, TokenResult::Status::Auth);
  std::this_thread::sleep_for(1200ms);  // past the first back-off
  EXPECT_EQ(caller.get(service, "a").status, TokenResult::Status::Auth);
  EXPECT_EQ(endpoint_.count("refresh_token"), 1u);
  endpoint_.addRefreshToken("fresh", "alice");
  test::writeTextFile(refreshFile_, "fresh\n");
  EXPECT_EQ(caller.get(service, "a").status, TokenResult::Status::Ok);
  EXPECT_EQ(endpoint_.count("refresh_token"), 2u);
}

// A missing file that `oauth login` then writes ends the wait at once, and a symlinked file (as in
// a Kubernetes Secret volume) is read through the link.
TEST_F(TokenServiceTest, ARefreshTokenFileThatAppearsIsUsedAtOnce) {
  addIdentity("a");
  TokenService& service = start();
  Caller caller;
  EXPECT_EQ(caller.get(service, "a").status, TokenResult::Status::Auth);
  endpoint_.addRefreshToken("linked", "alice");
  test::writeTextFile(dir_.path() + "/target", "linked\n");
  ASSERT_EQ(::symlink((dir_.path() + "/target").c_str(), refreshFile_.c_str()), 0);
  TokenResult ok = caller.get(service, "a");
  EXPECT_EQ(ok.status, TokenResult::Status::Ok) << ok.reason;
  EXPECT_EQ(endpoint_.count("refresh_token"), 1u);
}

// A command killed at its timeout takes its process group along and leaves no zombie.
TEST_F(TokenServiceTest, ATimedOutCommandLeavesNothingBehind) {
  config::OAuthIdentityConfig slow;
  slow.name = "slow";
  slow.grant = config::OAuthGrant::Command;
  const std::string pidFile = dir_.path() + "/grandchild.pid";
  slow.tokenCommand = {"/bin/sh", "-c", "sleep 30 & echo $$ $! > " + pidFile + "; wait"};
  slow.tokenCommandTimeout = 1s;
  config_.oauth2.push_back(slow);
  TokenService& service = start();
  Caller caller;
  EXPECT_EQ(caller.get(service, "slow").status, TokenResult::Status::Temporary);
  std::istringstream pids(test::readWholeFile(pidFile));
  pid_t child = 0;
  pid_t grandchild = 0;
  pids >> child >> grandchild;
  ASSERT_GT(child, 0);
  ASSERT_GT(grandchild, 0);
  // State and parent of a process from /proc; state 0 when it is gone.
  auto inspect = [](const std::filesystem::path& dir, char& state, long& ppid) {
    state = 0;
    std::ifstream stat(dir / "stat");
    std::string line;
    if (!std::getline(stat, line)) return;
    auto close = line.rfind(')');
    if (close == std::string::npos || close + 2 > line.size()) return;
    std::istringstream rest(line.substr(close + 2));
    rest >> state >> ppid;
  };
  auto zombies = [&] {
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      char state = 0;
      long ppid = 0;
      inspect(entry.path(), state, ppid);
      if (state == 'Z' && ppid == ::getpid()) ++count;
    }
    return count;
  };
  // A zombie reparented to an init that does not reap counts as gone: it runs nothing.
  auto running = [&](pid_t pid) {
    char state = 0;
    long ppid = 0;
    inspect(std::filesystem::path("/proc") / std::to_string(pid), state, ppid);
    return state != 0 && state != 'Z' && state != 'X';
  };
  // The killed command is a zombie for a moment until the loop reaps it: wait until its /proc
  // entry is gone (reaped), not merely until no zombie shows, which a check made before the kill
  // lands would also see.
  auto present = [&](pid_t pid) {
    return std::filesystem::exists(std::filesystem::path("/proc") / std::to_string(pid));
  };
  bool clean = false;
  for (int i = 0; i < 50 && !clean; ++i) {
    clean = !present(child) && !running(grandchild);
    if (!clean) std::this_thread::sleep_for(100ms);
  }
  EXPECT_FALSE(present(child)) << "the killed command was never reaped";
  EXPECT_EQ(zombies(), 0);
  EXPECT_FALSE(running(grandchild)) << "the command's background child survived";
}

TEST_F(TokenServiceTest, UnknownIdentityAndMissingRefreshToken) {
  addIdentity("a");
  TokenService& service = start();
  Caller caller;
  EXPECT_EQ(caller.get(service, "nope").status, TokenResult::Status::Configuration);
  TokenResult missing = caller.get(service, "a");
  EXPECT_EQ(missing.status, TokenResult::Status::Auth);
  EXPECT_NE(missing.reason.find("run `popbridge oauth login a`"), std::string::npos)
      << missing.reason;
  EXPECT_EQ(endpoint_.requests().size(), 0u);
}

}  // namespace
}  // namespace popbridge::proxy
