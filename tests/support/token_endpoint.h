#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/test_tls.h"

struct ssl_ctx_st;

// A loopback HTTPS OAuth2 authorization server for tests (RFC 6749 token endpoint, RFC 8628
// device authorization, RFC 7662-style introspection), so upstream OAuth2 code can be tested
// without a real provider.
//
// It listens on an ephemeral 127.0.0.1 port with a certificate from a fresh test PKI (caFile()
// verifies it for 127.0.0.1 and "localhost") and serves every connection in its own thread: one
// HTTP/1.1 request per connection, answered with Content-Length and "Connection: close", then
// closed (keep-alive clients simply see the close). Request bodies are
// application/x-www-form-urlencoded; answers are JSON.
//
// Routes (all POST except /device):
//   /token       grant_type=refresh_token | client_credentials |
//                urn:ietf:params:oauth:grant-type:device_code
//   /devicecode  client_id[, scope] -> device_code, user_code, verification_uri, expires_in,
//                interval
//   /introspect  token=<jwt> -> {"active":true,"sub":...} for a valid token it signed (for
//                Dovecot's introspection_mode = post), else {"active":false}
//   /device      GET, a placeholder verification page
// Client authentication: client_id/client_secret in the form, or HTTP Basic (RFC 6749 2.3.1).
// A client id registered with addClient() must present its secret on every grant; other client
// ids count as public clients.
//
// Access tokens are HS256 JWTs signed with Options::jwtSecret, so a Dovecot with local JWT
// validation (writeDovecotKey()) accepts them. Every knob may be changed while it runs; every
// public member is thread-safe. Faults and the response delay apply to every route, and faulted
// requests are still logged.
namespace popbridge::test {

// Outside the class only because a nested struct with default member initializers cannot be a
// defaulted constructor argument of its enclosing class; use it as TokenEndpoint::Options.
struct TokenEndpointOptions {
  // Where the certificate files go. Empty: a fresh directory in /tmp, removed by the destructor.
  std::string dir;
  // The HS256 key of the access tokens. Empty: 32 random bytes.
  std::string jwtSecret;
  std::chrono::seconds accessTokenLifetime{3600};
  // RFC 8628 device flow: the interval announced by /devicecode, how long a device code lives,
  // and how much longer a client must wait after each slow_down (the RFC says 5 s).
  std::chrono::seconds deviceInterval{1};
  std::chrono::seconds deviceCodeLifetime{600};
  std::chrono::seconds slowDownIncrement{5};
  // The JWT header's "kid" and the "azp" claim. Empty leaves them out, and Dovecot then looks for
  // its key under the name "default".
  std::string keyId;
  std::string azp;
};

// Signs header.claims with HMAC-SHA256: base64url without padding, as JWS compact serialization.
// For tests that need a token the endpoint would never issue (missing claims, a foreign key).
std::string makeHs256Jwt(std::string_view headerJson, std::string_view claimsJson,
                         std::string_view secret);
// base64url without padding, and standard base64 with padding.
std::string base64UrlEncode(std::string_view bytes);
std::string base64Encode(std::string_view bytes);

class TokenEndpoint {
 public:
  using Options = TokenEndpointOptions;

  enum class Fault {
    None,
    Status500,   // 500 {"error":"server_error"}
    Stall,       // read the request, never answer (until the client leaves or we are destroyed)
    CloseEarly,  // read the request, close the TCP connection without a byte of answer
  };

  struct Request {
    std::string method;
    std::string path;  // without the query string
    std::map<std::string, std::string> form;
    std::string authorizationHeader;
    std::chrono::steady_clock::time_point at;  // when the whole request had arrived
  };

  // One poll of /token with a device code, judged against RFC 8628's pacing: `requiredGap` is the
  // interval plus slowDownIncrement for every slow_down this code got before, measured from the
  // previous poll (or from the /devicecode answer). `early` is true when the gap was shorter by
  // more than 25 ms (slack for timer granularity).
  struct DevicePoll {
    std::string deviceCode;
    std::chrono::steady_clock::time_point at;
    std::chrono::milliseconds gap{0};
    std::chrono::milliseconds requiredGap{0};
    bool early = false;
    std::string answer;  // the plan entry used: "authorization_pending", ..., "ok"
  };

  // Starts listening and serving. Throws std::runtime_error when the PKI or the socket fails.
  explicit TokenEndpoint(Options options = {});
  // Stops the server thread and every connection thread (stalled ones included) and joins them.
  ~TokenEndpoint();
  TokenEndpoint(const TokenEndpoint&) = delete;
  TokenEndpoint& operator=(const TokenEndpoint&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url(std::string_view path) const;  // "https://127.0.0.1:<port>" + path
  const std::string& caFile() const { return pki_.caCert; }
  const std::string& jwtSecret() const { return options_.jwtSecret; }

  // An HS256 JWT: header {"alg":"HS256","typ":"JWT"[,"kid"]}, claims sub, exp (now + lifetime,
  // which may be negative for an expired token), iat, a unique jti [, azp].
  std::string issueJwt(std::string_view sub, std::chrono::seconds lifetime) const;
  // Writes <keysDir>/<azp>/HS256/<kid> (names default to "default", '/' written %2f) holding the
  // base64 of the secret without a newline: Dovecot's local_validation_key_dict layout. Creates
  // the directories 0755 and the file 0644, because Dovecot's auth process runs as another user.
  void writeDovecotKey(const std::string& keysDir) const;

  // Refresh tokens. With rotation on, each successful refresh answers a new refresh_token and
  // revokes the one used; with it off (the default, as Google does) the answer has none.
  void addRefreshToken(const std::string& token, const std::string& sub);
  void setRotateRefreshTokens(bool rotate);
  void revokeRefreshToken(const std::string& token);
  // The newest refresh token of `sub` that is not revoked; empty when there is none.
  std::string currentRefreshToken(const std::string& sub) const;

  // A confidential client: client_credentials gives tokens for `sub`, and every grant with this
  // client id needs the secret.
  void addClient(const std::string& clientId, const std::string& secret, const std::string& sub);

  // The answers of successive polls with a device code, each one of "authorization_pending",
  // "slow_down", "expired_token", "access_denied" (all 400) or "ok" (200 with an access and a
  // refresh token for `sub`); polls past the end repeat the last. Applies to every device code,
  // each counting its own polls. Without a plan every poll gets authorization_pending. Throws
  // std::invalid_argument for an empty plan or an unknown answer.
  void setDevicePlan(std::vector<std::string> answers, std::string sub);
  std::vector<DevicePoll> devicePolls() const;

  void setFault(Fault fault);
  void setResponseDelay(std::chrono::milliseconds delay);

  std::vector<Request> requests() const;
  // /token requests with this grant_type (faulted ones included).
  std::size_t count(std::string_view grantType) const;
  // Forgets the request log and the device polls (not the tokens).
  void resetLog();

  // The access token of the last successful /token answer; empty before one.
  std::string lastAccessToken() const;
  // Every access token, refresh token, client secret and device code issued or given, and the JWT
  // secret: what must never appear in a log.
  std::vector<std::string> allSecrets() const;

 private:
  struct SslCtxDeleter {
    void operator()(ssl_ctx_st* ctx) const;
  };
  struct Response {
    Response(int status, std::string body, std::string contentType = "application/json",
             std::string extraHeaders = "")
        : status(status),
          body(std::move(body)),
          contentType(std::move(contentType)),
          extraHeaders(std::move(extraHeaders)) {}
    int status;
    std::string body;
    std::string contentType;
    std::string extraHeaders;  // whole lines, each ending in CRLF
  };
  struct RefreshToken {
    std::string sub;
    bool revoked = false;
  };
  struct Client {
    std::string secret;
    std::string sub;
  };
  struct DeviceCode {
    std::string clientId;
    std::string scope;
    std::chrono::steady_clock::time_point issued;
    std::chrono::steady_clock::time_point lastPoll;
    std::size_t polls = 0;
    std::size_t slowDowns = 0;
  };
  struct Worker {
    std::thread thread;
    std::shared_ptr<bool> done;  // guarded by mutex_
  };

  void acceptLoop();
  void serve(int fd);
  // Both return false when the endpoint is stopping or the deadline passed.
  bool waitReady(int fd, short events, std::chrono::steady_clock::time_point deadline) const;
  bool sleepUnlessStopped(std::chrono::milliseconds delay) const;

  Response route(const Request& request, const std::map<std::string, std::string>& headers);
  Response tokenGrant(const Request& request, std::map<std::string, std::string> form);
  Response deviceAuthorization(const std::map<std::string, std::string>& form);
  Response introspect(const std::map<std::string, std::string>& form);
  // The caller holds mutex_.
  std::string issueJwtLocked(std::string_view sub, std::chrono::seconds lifetime) const;
  std::string newRefreshTokenLocked(const std::string& sub);
  Response tokenResponseLocked(const std::string& sub, const std::string& refreshToken,
                               const std::string& scope);

  Options options_;
  std::string ownedDir_;  // removed by the destructor
  TestPki pki_;
  std::unique_ptr<ssl_ctx_st, SslCtxDeleter> sslCtx_;
  int listenFd_ = -1;
  int stopFd_ = -1;  // an eventfd that becomes readable once, at destruction
  std::uint16_t port_ = 0;

  mutable std::mutex mutex_;
  std::map<std::string, RefreshToken> refreshTokens_;
  std::map<std::string, std::string> currentRefresh_;  // sub -> newest live refresh token
  bool rotate_ = false;
  std::map<std::string, Client> clients_;
  std::vector<std::string> devicePlan_;
  std::string deviceSub_;
  std::map<std::string, DeviceCode> deviceCodes_;
  std::vector<DevicePoll> devicePolls_;
  Fault fault_ = Fault::None;
  std::chrono::milliseconds responseDelay_{0};
  std::vector<Request> log_;
  std::string lastAccessToken_;
  mutable std::vector<std::string> secrets_;
  mutable std::uint64_t jtiCounter_ = 0;
  std::vector<Worker> workers_;

  std::thread acceptThread_;
};

}  // namespace popbridge::test
