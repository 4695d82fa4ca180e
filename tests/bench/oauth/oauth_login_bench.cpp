// Login latency of an OAuth2-backed account against a password-backed one, on loopback:
// the time from PASS to +OK as a POP3 device sees it, through popbridge to a real Dovecot.
//
//   password        [[account]] with an argon2 hash and upstream_password_file: PLAIN upstream
//   oauth2 cached   the same account bound to [oauth2.box]: XOAUTH2 with the cached token
//   oauth2 refresh  every login finds the token expired and waits for the refresh grant
//
// All three check the device's argon2 hash first, so the difference between the first two is
// what OAuth2 adds to a login. Figures only: it asserts nothing about time.

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "config/password.h"
#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"
#include "tests/support/token_endpoint.h"

namespace popbridge::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kJwtSecret[] = "popbridge-oauth2-bench-secret-0123456789";
constexpr char kDevicePassword[] = "printer-Pa55-12";

struct Figures {
  double median = 0, p90 = 0, min = 0;
};

Figures summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Figures f;
  f.min = ms.front();
  f.median = ms[ms.size() / 2];
  f.p90 = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  return f;
}

// One login: USER, then PASS timed to its +OK, then QUIT. Returns milliseconds, or -1.
double timedLogin(std::uint16_t port) {
  Pop3TestClient pop3(port);
  pop3.command("USER printer");
  auto start = Clock::now();
  std::string reply = pop3.command(std::string("PASS ") + kDevicePassword);
  auto elapsed = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  pop3.command("QUIT");
  if (reply.rfind("+OK", 0) != 0) {
    std::fprintf(stderr, "login failed: %s\n", reply.c_str());
    return -1;
  }
  return elapsed;
}

bool run(const char* name, std::uint16_t port, int rounds, std::chrono::milliseconds pause,
         bool warm) {
  if (warm && timedLogin(port) < 0) return false;
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    double t = timedLogin(port);
    if (t < 0) return false;
    ms.push_back(t);
  }
  Figures f = summarize(ms);
  std::printf("%-16s %6d %10.2f %10.2f %10.2f\n", name, rounds, f.min, f.median, f.p90);
  return true;
}

int runBench() {
  DovecotFixture::Options dovecotOptions;
  DovecotOAuth2Options oauth2;
  oauth2.jwtSecret = kJwtSecret;
  dovecotOptions.oauth2 = oauth2;
  dovecotOptions.enablePop3 = false;
  DovecotFixture dovecot(dovecotOptions);
  const std::string user = "bench";
  DovecotUser account = dovecot.addUser(user);
  dovecot.seedMaildir(user, {simpleMessage(1, 2000), simpleMessage(2, 2000)});

  TempDir state("popbridge-oauth-bench");
  ::chmod(state.path().c_str(), 0700);
  const std::string hash = config::hashPassword(kDevicePassword);
  const std::string passwordFile = state.path() + "/imap-password";
  writeTextFile(passwordFile, account.password + "\n", 0600);

  TokenEndpoint::Options cachedOptions;
  cachedOptions.jwtSecret = kJwtSecret;
  TokenEndpoint cachedEndpoint(cachedOptions);
  TokenEndpoint::Options shortOptions = cachedOptions;
  shortOptions.accessTokenLifetime = std::chrono::seconds(2);
  TokenEndpoint shortEndpoint(shortOptions);

  auto identity = [&](TokenEndpoint& endpoint, const std::string& file) {
    endpoint.addRefreshToken("rt-bench", user);
    writeTextFile(file, "rt-bench\n", 0600);
    return "[oauth2.box]\ntoken_endpoint = \"" + endpoint.url("/token") +
           "\"\nclient_id = \"bench\"\nca_file = \"" + endpoint.caFile() + "\"\nuser = \"" + user +
           "\"\nrefresh_token_file = \"" + file +
           "\"\nmechanism = \"xoauth2\"\n[[account]]\nuser = \"printer\"\npassword_hash = \"" +
           hash + "\"\noauth2 = \"box\"\n";
  };

  PopbridgeProcess::Options base;
  base.logLevel = "info";
  base.server = "max_connections_per_ip = 0\n";
  PopbridgeProcess::Options password = base;
  password.extra = "[[account]]\nuser = \"printer\"\npassword_hash = \"" + hash +
                   "\"\nupstream_user = \"" + user + "\"\nupstream_password_file = \"" +
                   passwordFile + "\"\n";
  PopbridgeProcess::Options cached = base;
  cached.extra = identity(cachedEndpoint, state.path() + "/cached.token");
  PopbridgeProcess::Options refreshing = base;
  refreshing.extra = identity(shortEndpoint, state.path() + "/short.token");

  PopbridgeProcess a(dovecot, password);
  PopbridgeProcess b(dovecot, cached);
  PopbridgeProcess c(dovecot, refreshing);

  const int rounds =
      std::getenv("POPBRIDGE_BENCH_ROUNDS") ? std::atoi(std::getenv("POPBRIDGE_BENCH_ROUNDS")) : 50;
  std::printf("login latency, PASS to +OK, ms (loopback, Dovecot %s)\n", "2.3 oauth2 passdb");
  std::printf("%-16s %6s %10s %10s %10s\n", "account", "logins", "min", "median", "p90");
  bool ok = run("password", a.port(), rounds, std::chrono::milliseconds(0), true) &&
            run("oauth2 cached", b.port(), rounds, std::chrono::milliseconds(0), true) &&
            // Past the 2 s lifetime each time: the login waits for a refresh grant.
            run("oauth2 refresh", c.port(), std::max(5, rounds / 5),
                std::chrono::milliseconds(2100), false);
  std::printf("token endpoint requests: cached %zu, refresh %zu\n",
              cachedEndpoint.count("refresh_token"), shortEndpoint.count("refresh_token"));
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace popbridge::test

int main() {
  return popbridge::test::runBench();
}
