#include "proxy/oauth_login.h"

#include <uv.h>

#include <algorithm>
#include <chrono>
#include <ostream>

#include "protocol/http/form.h"
#include "protocol/oauth/token_response.h"
#include "protocol/text.h"
#include "proxy/https_client.h"
#include "proxy/tls_context.h"
#include "proxy/token_file.h"

namespace popbridge::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::TokenErrorKind;

// RFC 8628 3.5: each slow_down adds five seconds to the polling interval.
constexpr std::chrono::seconds kSlowDownStep{5};
constexpr std::chrono::seconds kDefaultCodeLifetime{900};
constexpr std::chrono::seconds kMaxPollInterval{60};

class DeviceLogin {
 public:
  DeviceLogin(uv_loop_t* loop, const config::OAuthIdentityConfig& identity, SSL_CTX* tls,
              std::ostream& out, std::ostream& err)
      : identity_(identity), tls_(tls), out_(out), err_(err), http_(loop), timer_(loop) {}

  ~DeviceLogin() { protocol::secureWipe(deviceCode_); }

  void start() {
    std::vector<std::pair<std::string, std::string>> form{{"client_id", identity_.clientId}};
    // RFC 8628 3.1: a confidential client authenticates here as at the token endpoint.
    if (!identity_.clientSecret.empty()) form.emplace_back("client_secret", identity_.clientSecret);
    if (!identity_.scope.empty()) form.emplace_back("scope", identity_.scope);
    std::string body = protocol::formEncode(form);
    for (auto& field : form) protocol::secureWipe(field.second);
    http_.post(request(identity_.deviceAuthorizationEndpoint, std::move(body)),
               [this](HttpsResponse response) { onAuthorization(std::move(response)); });
  }

  int exitCode() const { return exitCode_; }

 private:
  HttpsRequest request(const std::string& url, std::string body) const {
    HttpsRequest request;
    request.url = url;
    request.body = std::move(body);
    request.proxy = identity_.httpsProxy;
    request.tls = tls_;
    request.timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(identity_.requestTimeout);
    return request;
  }

  void finish(int code) {
    exitCode_ = code;
    timer_.stop();
    http_.cancel();
  }

  void onAuthorization(HttpsResponse response) {
    if (!response.ok()) {
      err_ << "error: the device authorization endpoint is unreachable: " << response.error << "\n";
      return finish(1);
    }
    auto parsed = protocol::parseDeviceAuthorization(response.status, response.body);
    protocol::secureWipe(response.body);
    if (!parsed.authorization) {
      err_ << "error: the device authorization endpoint answered HTTP " << response.status << ": "
           << parsed.error.toString() << "\n";
      return finish(1);
    }
    const auto& authorization = *parsed.authorization;
    deviceCode_ = authorization.deviceCode;
    interval_ = authorization.interval;
    auto lifetime =
        authorization.expiresIn.count() > 0 ? authorization.expiresIn : kDefaultCodeLifetime;
    deadline_ = Clock::now() + lifetime;
    out_ << "To let popbridge use the mailbox of [oauth2." << identity_.name << "], open\n\n    "
         << authorization.verificationUri << "\n\nand enter the code\n\n    "
         << authorization.userCode << "\n\n";
    if (!authorization.verificationUriComplete.empty()) {
      out_ << "(or open " << authorization.verificationUriComplete << ")\n\n";
    }
    out_ << "Sign in as the account whose mailbox the devices use. Waiting for you (the code "
            "expires in "
         << (lifetime.count() + 59) / 60 << " min)..." << std::endl;
    schedulePoll();
  }

  void schedulePoll() {
    if (Clock::now() + interval_ > deadline_) {
      err_ << "error: the code expired before the sign-in was approved; run the command again\n";
      return finish(1);
    }
    timer_.start(std::chrono::duration_cast<std::chrono::milliseconds>(interval_),
                 [this] { poll(); });
  }

  void poll() {
    std::vector<std::pair<std::string, std::string>> form{
        {"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
        {"device_code", deviceCode_},
        {"client_id", identity_.clientId}};
    if (!identity_.clientSecret.empty()) form.emplace_back("client_secret", identity_.clientSecret);
    std::string body = protocol::formEncode(form);
    for (auto& field : form) protocol::secureWipe(field.second);
    http_.post(request(identity_.tokenEndpoint, std::move(body)),
               [this](HttpsResponse response) { onPoll(std::move(response)); });
  }

  void onPoll(HttpsResponse response) {
    if (!response.ok()) {
      // RFC 8628 3.5: back off on a connection timeout, and keep trying until the code expires.
      err_ << "warning: the token endpoint is unreachable (" << response.error
           << "); trying again\n";
      interval_ = std::min(interval_ * 2, kMaxPollInterval);
      return schedulePoll();
    }
    auto parsed = protocol::parseTokenResponse(response.status, response.body);
    protocol::secureWipe(response.body);
    if (!parsed.grant) {
      switch (parsed.error.kind) {
        case TokenErrorKind::Pending:
          return schedulePoll();
        case TokenErrorKind::SlowDown:
          interval_ = std::min(interval_ + kSlowDownStep, kMaxPollInterval);
          return schedulePoll();
        case TokenErrorKind::Temporary:
          err_ << "warning: the token endpoint answered HTTP " << response.status << ": "
               << parsed.error.toString() << "; trying again\n";
          interval_ = std::min(interval_ * 2, kMaxPollInterval);
          return schedulePoll();
        case TokenErrorKind::ExpiredToken:
          err_ << "error: the code expired before the sign-in was approved; run the command "
                  "again\n";
          return finish(1);
        case TokenErrorKind::AccessDenied:
          err_ << "error: the sign-in was declined\n";
          return finish(1);
        default:
          err_ << "error: the token endpoint answered HTTP " << response.status << ": "
               << parsed.error.toString() << "\n";
          return finish(1);
      }
    }
    std::string refreshToken = std::move(parsed.grant->refreshToken);
    protocol::secureWipe(parsed.grant->accessToken);
    if (refreshToken.empty()) {
      err_ << "error: the sign-in worked, but the endpoint issued no refresh token (Microsoft "
              "needs offline_access in scope)\n";
      return finish(1);
    }
    std::string error;
    bool saved = writeTokenFile(identity_.refreshTokenFile, refreshToken, error);
    protocol::secureWipe(refreshToken);
    if (!saved) {
      err_ << "error: " << error << "\n";
      return finish(1);
    }
    out_ << "Signed in. The refresh token of [oauth2." << identity_.name << "] is in "
         << identity_.refreshTokenFile << " (mode 0600); popbridge reads it at the next login, "
         << "no restart needed." << std::endl;
    finish(0);
  }

  const config::OAuthIdentityConfig& identity_;
  SSL_CTX* tls_;
  std::ostream& out_;
  std::ostream& err_;
  HttpsClient http_;
  Timer timer_;
  std::string deviceCode_;
  std::chrono::seconds interval_{5};
  Clock::time_point deadline_{};
  int exitCode_ = 1;
};

}  // namespace

int runOAuthLogin(const config::Config& config, const std::string& name, std::ostream& out,
                  std::ostream& err) {
  const config::OAuthIdentityConfig* identity = config.findOAuthIdentity(name);
  if (identity == nullptr) {
    err << "error: the config has no [oauth2." << name << "]";
    if (!config.oauth2.empty()) {
      err << " (it has:";
      for (const auto& candidate : config.oauth2) err << " " << candidate.name;
      err << ")";
    }
    err << "\n";
    return 2;
  }
  if (identity->grant != config::OAuthGrant::RefreshToken) {
    err << "error: [oauth2." << name << "] uses grant = \"" << config::toString(identity->grant)
        << "\", which needs no sign-in; only grant = \"refresh_token\" does\n";
    return 2;
  }
  if (identity->deviceAuthorizationEndpoint.empty()) {
    err << "error: [oauth2." << name
        << "] has no device_authorization_endpoint (the presets microsoft and google have one)\n";
    return 2;
  }
  std::string error;
  auto tls = TlsClientContext::create(identity->caFile, true, config::TlsVersion::V1_2, error);
  if (!tls) {
    err << "error: " << error << "\n";
    return 1;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int code = 1;
  {
    DeviceLogin login(&loop, *identity, tls->get(), out, err);
    login.start();
    uv_run(&loop, UV_RUN_DEFAULT);
    code = login.exitCode();
  }
  // The login's handles close in one more run.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return code;
}

}  // namespace popbridge::proxy
