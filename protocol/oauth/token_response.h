#pragma once

// What an OAuth2 token endpoint (RFC 6749 5.1/5.2) and a device authorization endpoint
// (RFC 8628 3.2) answer, parsed and classified so that the caller can tell a device and an
// admin something they can act on. Pure: the HTTP exchange is the caller's.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// A successful token response. The tokens are secrets: never log them.
struct TokenGrant {
  std::string accessToken;
  std::string refreshToken;           // empty when the server did not issue (or rotate) one
  std::chrono::seconds expiresIn{0};  // zero when the server did not say
  std::string scope;                  // as granted, when the server said
};

enum class TokenErrorKind {
  InvalidGrant,   // the refresh token or device code is revoked, expired or unknown: log in again
  Configuration,  // invalid_client, invalid_scope, unsupported_grant_type, a 4xx without JSON...
  Pending,        // RFC 8628 authorization_pending: keep polling
  SlowDown,       // RFC 8628 slow_down: poll less often
  ExpiredToken,   // RFC 8628 expired_token: the device code ran out
  AccessDenied,   // the user declined
  Temporary,      // 5xx, 429, temporarily_unavailable, server_error, an unreadable 2xx...
};

struct TokenError {
  TokenErrorKind kind = TokenErrorKind::Temporary;
  // The endpoint's "error" and "error_description", or what was wrong with its answer:
  // printable ASCII only and short, so they can be logged. They never hold a token.
  std::string code;
  std::string description;

  // "invalid_grant (AADSTS70008: The refresh token has expired)" / "HTTP 503".
  std::string toString() const;
};

struct TokenResponse {
  std::optional<TokenGrant> grant;
  TokenError error;  // meaningful when grant is empty
};

// `status` is the HTTP status; `body` the response body (application/json).
TokenResponse parseTokenResponse(int status, std::string_view body);

// RFC 8628 3.2.
struct DeviceAuthorization {
  std::string deviceCode;  // a secret, like a token
  std::string userCode;
  std::string verificationUri;
  std::string verificationUriComplete;  // optional
  std::chrono::seconds expiresIn{0};
  std::chrono::seconds interval{5};  // RFC 8628's default when absent
};

struct DeviceAuthorizationResponse {
  std::optional<DeviceAuthorization> authorization;
  TokenError error;
};

DeviceAuthorizationResponse parseDeviceAuthorization(int status, std::string_view body);

// The "exp" claim (seconds since the epoch) of a JWT access token, read without checking the
// signature: only to know when to refresh a token whose response gave no expires_in (a
// token_command's output). nullopt when the token is not a JWT or has no exp.
std::optional<std::int64_t> jwtExpiry(std::string_view token);

}  // namespace popbridge::protocol
