#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/connector.h"
#include "proxy/stream.h"
#include "proxy/uv_handle.h"

namespace popbridge::protocol {
class HttpResponseParser;
}

namespace popbridge::proxy {

// One HTTPS request on a libuv loop, for OAuth2 token endpoints: Connector, then Stream with
// BoringSSL, then protocol/http's response parser, optionally through an HTTP proxy with
// CONNECT. Small on purpose: Debian's libcurl (every TLS flavour) loads OpenSSL's libcrypto.so.3
// through libssh2, whose symbols then bind to BoringSSL's in this process (see README).
struct HttpsRequest {
  std::string url;  // https://host[:port]/path (http:// only for loopback helpers)
  std::string body;  // a secret more often than not: wiped once sent
  std::string contentType = "application/x-www-form-urlencoded";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string proxy;  // http://[user:password@]host:port; empty: direct
  SSL_CTX* tls = nullptr;  // verifies the endpoint (and never is the proxy's)
  std::chrono::milliseconds timeout{15000};  // the whole exchange, connect included
};

struct HttpsResponse {
  int status = 0;     // 0 when the exchange failed
  std::string body;
  std::string error;  // why it failed: readable, without secrets; empty on success

  bool ok() const { return error.empty(); }
};

class HttpsClient {
 public:
  using Callback = std::function<void(HttpsResponse response)>;

  explicit HttpsClient(uv_loop_t* loop);
  ~HttpsClient();  // cancels: no callback
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // One request at a time; `done` runs once, from the loop, never from inside post(). It may
  // destroy the client. The response body is limited to 256 KiB.
  void post(HttpsRequest request, Callback done);
  void cancel();
  bool busy() const { return static_cast<bool>(done_); }

 private:
  enum class Phase { Idle, Connecting, ProxyConnect, Exchanging };

  void onConnected(UvHandle<uv_tcp_t> tcp, std::string error);
  void onData(std::string_view data);
  void onClose(std::string_view reason);
  void startTls();
  void sendRequest();
  void finish(HttpsResponse response);
  void fail(std::string error);

  uv_loop_t* loop_;
  Connector connector_;
  Timer timer_;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<protocol::HttpResponseParser> parser_;
  Callback done_;
  Phase phase_ = Phase::Idle;
  HttpsRequest request_;
  std::string host_;  // the endpoint's, for SNI, Host and CONNECT
  std::uint16_t port_ = 0;
  std::string target_;
  bool https_ = true;
  std::string proxyAuthorization_;
  std::string where_;  // "https://host:port" or "... through proxy host:port", for errors
};

}  // namespace popbridge::proxy
