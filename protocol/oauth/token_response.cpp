#include "protocol/oauth/token_response.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "protocol/base64.h"
#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

using Json = nlohmann::json;

// JSON nested deeper than any token response is refused before it is parsed, so a hostile
// endpoint cannot make the parser build (and later destroy) a deep tree.
constexpr int kMaxJsonDepth = 16;
// Far beyond a real JWT (Microsoft's are about 2-3 KB, Dovecot takes about 6 KB), and short
// enough to fit an IMAP AUTHENTICATE the upstream will take.
constexpr std::size_t kMaxAccessToken = 16 * 1024;
constexpr std::size_t kMaxRefreshToken = 16 * 1024;
constexpr std::int64_t kMaxLifetimeSeconds = 366LL * 24 * 3600;

bool tooDeep(std::string_view body) {
  int depth = 0;
  bool inString = false;
  bool escaped = false;
  for (char c : body) {
    if (inString) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        inString = false;
      }
      continue;
    }
    if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

// Visible ASCII without spaces: what can go into a SASL message and an HTTP form unchanged.
bool isTokenText(std::string_view text, std::size_t max) {
  return !text.empty() && text.size() <= max &&
         std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::optional<Json> parseObject(std::string_view body) {
  if (tooDeep(body)) return std::nullopt;
  Json json = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  return json;
}

std::string stringField(const Json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// Numbers, and numbers in strings (Azure AD v1 and some gateways quote them).
std::optional<std::int64_t> secondsField(const Json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_integer()) {
    std::int64_t value = it->get<std::int64_t>();
    return std::clamp<std::int64_t>(value, 0, kMaxLifetimeSeconds);
  }
  if (it->is_number_unsigned()) return kMaxLifetimeSeconds;  // beyond int64: huge
  if (it->is_number_float()) {
    double value = it->get<double>();
    if (!(value >= 0)) return 0;
    return value > static_cast<double>(kMaxLifetimeSeconds) ? kMaxLifetimeSeconds
                                                            : static_cast<std::int64_t>(value);
  }
  if (it->is_string()) {
    auto value = parseDecimal(it->get_ref<const std::string&>(), kMaxLifetimeSeconds * 1000);
    if (value)
      return std::min<std::int64_t>(static_cast<std::int64_t>(*value), kMaxLifetimeSeconds);
  }
  return std::nullopt;
}

TokenErrorKind kindOf(std::string_view code) {
  if (code == "invalid_grant") return TokenErrorKind::InvalidGrant;
  if (code == "authorization_pending") return TokenErrorKind::Pending;
  if (code == "slow_down") return TokenErrorKind::SlowDown;
  if (code == "expired_token") return TokenErrorKind::ExpiredToken;
  // Microsoft says authorization_declined where RFC 8628 3.5 says access_denied.
  if (code == "access_denied" || code == "authorization_declined")
    return TokenErrorKind::AccessDenied;
  if (code == "temporarily_unavailable" || code == "server_error") {
    return TokenErrorKind::Temporary;
  }
  // invalid_client, unauthorized_client, invalid_scope, unsupported_grant_type,
  // invalid_request and anything unknown: only the admin can fix the request.
  return TokenErrorKind::Configuration;
}

TokenError httpError(int status, std::string detail) {
  TokenError error;
  error.code = "HTTP " + std::to_string(status);
  error.description = std::move(detail);
  // 5xx, 429 and a gateway's 408 are the endpoint's trouble and pass; other statuses without
  // an OAuth error body mean the request went to the wrong place.
  error.kind = status >= 500 || status == 429 || status == 408 ? TokenErrorKind::Temporary
                                                               : TokenErrorKind::Configuration;
  return error;
}

// Shared by both endpoints: an OAuth error object (RFC 6749 5.2, RFC 8628 3.5), or a status
// that says what happened when the body does not.
TokenError errorFrom(int status, const std::optional<Json>& json) {
  if (json) {
    std::string code = stringField(*json, "error");
    if (!code.empty()) {
      TokenError error;
      error.kind = kindOf(code);
      // A 5xx with an OAuth error is still the endpoint's trouble.
      if (status >= 500 && error.kind == TokenErrorKind::Configuration) {
        error.kind = TokenErrorKind::Temporary;
      }
      error.code = loggableText(code);
      error.description = loggableText(stringField(*json, "error_description"));
      return error;
    }
  }
  if (status >= 200 && status < 300) {
    TokenError error;
    error.kind = TokenErrorKind::Temporary;
    error.code = "bad response";
    error.description =
        json ? "the JSON object lacks the expected fields" : "the body is not a JSON object";
    return error;
  }
  return httpError(status, json ? "" : "the body is not a JSON object");
}

}  // namespace

std::string TokenError::toString() const {
  if (description.empty()) return code;
  return code + " (" + description + ")";
}

TokenResponse parseTokenResponse(int status, std::string_view body) {
  TokenResponse response;
  std::optional<Json> json = parseObject(body);
  if (status < 200 || status >= 300 || !json || json->contains("error")) {
    response.error = errorFrom(status, json);
    return response;
  }
  TokenGrant grant;
  grant.accessToken = stringField(*json, "access_token");
  std::string type = stringField(*json, "token_type");
  // RFC 6749 makes token_type required; a missing one is taken as Bearer (some gateways drop
  // it), but a token of another type cannot be used with XOAUTH2 or OAUTHBEARER.
  if (!type.empty() && !equalsIgnoreCase(type, "bearer")) {
    secureWipe(grant.accessToken);
    response.error = {TokenErrorKind::Configuration, "bad response",
                      "token_type is " + loggableText(type) + ", not Bearer"};
    return response;
  }
  if (!isTokenText(grant.accessToken, kMaxAccessToken)) {
    secureWipe(grant.accessToken);
    response.error = {TokenErrorKind::Temporary, "bad response",
                      "access_token is missing, empty, longer than 16 KiB or not printable ASCII"};
    return response;
  }
  grant.refreshToken = stringField(*json, "refresh_token");
  if (!grant.refreshToken.empty() && !isTokenText(grant.refreshToken, kMaxRefreshToken)) {
    secureWipe(grant.accessToken);
    secureWipe(grant.refreshToken);
    response.error = {TokenErrorKind::Temporary, "bad response",
                      "refresh_token is longer than 16 KiB or not printable ASCII"};
    return response;
  }
  grant.expiresIn = std::chrono::seconds(secondsField(*json, "expires_in").value_or(0));
  grant.scope = loggableText(stringField(*json, "scope"));
  response.grant = std::move(grant);
  return response;
}

DeviceAuthorizationResponse parseDeviceAuthorization(int status, std::string_view body) {
  DeviceAuthorizationResponse response;
  std::optional<Json> json = parseObject(body);
  if (status < 200 || status >= 300 || !json || json->contains("error")) {
    response.error = errorFrom(status, json);
    return response;
  }
  DeviceAuthorization authorization;
  authorization.deviceCode = stringField(*json, "device_code");
  authorization.userCode = loggableText(stringField(*json, "user_code"));
  authorization.verificationUri = loggableText(stringField(*json, "verification_uri"));
  // Google's older endpoint says verification_url.
  if (authorization.verificationUri.empty()) {
    authorization.verificationUri = loggableText(stringField(*json, "verification_url"));
  }
  authorization.verificationUriComplete =
      loggableText(stringField(*json, "verification_uri_complete"));
  authorization.expiresIn = std::chrono::seconds(secondsField(*json, "expires_in").value_or(0));
  if (auto interval = secondsField(*json, "interval")) {
    // Never poll faster than once a second, nor wait more than a minute between polls.
    authorization.interval = std::chrono::seconds(std::clamp<std::int64_t>(*interval, 1, 60));
  }
  if (!isTokenText(authorization.deviceCode, kMaxRefreshToken) || authorization.userCode.empty() ||
      authorization.verificationUri.empty()) {
    secureWipe(authorization.deviceCode);
    response.error = {TokenErrorKind::Configuration, "bad response",
                      "device_code, user_code or verification_uri is missing"};
    return response;
  }
  response.authorization = std::move(authorization);
  return response;
}

std::optional<std::int64_t> jwtExpiry(std::string_view token) {
  std::size_t first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  std::size_t second = token.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  std::string_view payload = token.substr(first + 1, second - first - 1);
  if (payload.empty() || payload.size() > 8192) return std::nullopt;
  // base64url without padding (RFC 7515) to the standard alphabet with padding.
  std::string standard(payload);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (standard.size() % 4 != 0) standard.push_back('=');
  std::optional<std::string> claims = base64Decode(standard);
  if (!claims) return std::nullopt;
  std::optional<Json> json = parseObject(*claims);
  if (!json) return std::nullopt;
  auto it = json->find("exp");
  if (it == json->end() || !it->is_number()) return std::nullopt;
  if (it->is_number_float()) {
    double value = it->get<double>();
    if (!(value > 0 && value < 1e15)) return std::nullopt;
    return static_cast<std::int64_t>(value);
  }
  if (it->is_number_unsigned()) {
    auto value = it->get<std::uint64_t>();
    if (value > 1'000'000'000'000'000ULL) return std::nullopt;
    return static_cast<std::int64_t>(value);
  }
  return it->get<std::int64_t>();
}

}  // namespace popbridge::protocol
