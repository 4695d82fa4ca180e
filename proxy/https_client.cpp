#include "proxy/https_client.h"

#include "protocol/base64.h"
#include "protocol/http/response_parser.h"
#include "protocol/http/url.h"
#include "protocol/text.h"

namespace popbridge::proxy {
namespace {

std::string hostPort(const std::string& host, std::uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

HttpsClient::HttpsClient(uv_loop_t* loop) : loop_(loop), connector_(loop), timer_(loop) {}

HttpsClient::~HttpsClient() {
  protocol::secureWipe(request_.body);
}

void HttpsClient::cancel() {
  connector_.cancel();
  timer_.stop();
  stream_.reset();
  parser_.reset();
  done_ = nullptr;
  protocol::secureWipe(request_.body);
  phase_ = Phase::Idle;
}

void HttpsClient::post(HttpsRequest request, Callback done) {
  cancel();
  request_ = std::move(request);
  done_ = std::move(done);
  std::string problem;
  auto url = protocol::parseHttpUrl(request_.url, problem);
  if (!url) {
    // Deferred like every other outcome: the caller never sees its callback from post().
    timer_.start(std::chrono::milliseconds(0),
                 [this, problem] { fail("bad URL: " + problem); });
    return;
  }
  host_ = url->host;
  port_ = url->port;
  target_ = url->target;
  https_ = url->scheme == "https";
  where_ = (https_ ? "https://" : "http://") + hostPort(host_, port_);
  std::string connectHost = host_;
  std::uint16_t connectPort = port_;
  proxyAuthorization_.clear();
  if (!request_.proxy.empty()) {
    auto proxy = protocol::parseHttpUrl(request_.proxy, problem);
    if (!proxy || proxy->scheme != "http") {
      timer_.start(std::chrono::milliseconds(0),
                   [this] { fail("bad https_proxy: expected http://host:port"); });
      return;
    }
    connectHost = proxy->host;
    connectPort = proxy->port;
    where_ += " through the proxy " + hostPort(connectHost, connectPort);
    if (!proxy->user.empty() || !proxy->password.empty()) {
      std::string credentials = proxy->user + ":" + proxy->password;
      proxyAuthorization_ = "Basic " + protocol::base64Encode(credentials);
      protocol::secureWipe(credentials);
      protocol::secureWipe(proxy->password);
    }
  }
  if (https_ && request_.tls == nullptr) {
    timer_.start(std::chrono::milliseconds(0), [this] { fail("no TLS context for HTTPS"); });
    return;
  }
  phase_ = Phase::Connecting;
  timer_.start(request_.timeout, [this] {
    fail("no complete answer within " + std::to_string(request_.timeout.count()) + " ms");
  });
  connector_.connect(connectHost, connectPort, request_.timeout,
                     [this](UvHandle<uv_tcp_t> tcp, std::string error) {
                       onConnected(std::move(tcp), std::move(error));
                     });
}

void HttpsClient::onConnected(UvHandle<uv_tcp_t> tcp, std::string error) {
  if (!error.empty()) return fail(error);
  Stream::Options options;
  options.readBufferSize = 16 * 1024;
  options.highWatermark = 64 * 1024;
  options.handshakeTimeout = request_.timeout;
  Stream::Callbacks callbacks;
  callbacks.onData = [this](std::string_view data) { onData(data); };
  callbacks.onClose = [this](std::string_view reason) { onClose(reason); };
  stream_ = std::make_unique<Stream>(loop_, std::move(tcp), options, std::move(callbacks));
  stream_->startReading();
  if (!request_.proxy.empty()) {
    phase_ = Phase::ProxyConnect;
    parser_ = std::make_unique<protocol::HttpResponseParser>(protocol::HttpResponseLimits{},
                                                             /*connectResponse=*/true);
    std::string connect = "CONNECT " + hostPort(host_, port_) + " HTTP/1.1\r\nHost: " +
                          hostPort(host_, port_) + "\r\n";
    if (!proxyAuthorization_.empty()) {
      connect += "Proxy-Authorization: " + proxyAuthorization_ + "\r\n";
    }
    connect += "\r\n";
    stream_->write(connect);
    protocol::secureWipe(connect);
    return;
  }
  startTls();
}

void HttpsClient::startTls() {
  phase_ = Phase::Exchanging;
  parser_ = std::make_unique<protocol::HttpResponseParser>();
  if (https_) stream_->startTlsClient(request_.tls, host_, /*verify=*/true);
  sendRequest();
}

void HttpsClient::sendRequest() {
  const bool defaultPort = port_ == (https_ ? 443 : 80);
  std::string message = "POST " + target_ + " HTTP/1.1\r\nHost: " +
                        (defaultPort ? (host_.find(':') != std::string::npos ? "[" + host_ + "]"
                                                                             : host_)
                                     : hostPort(host_, port_)) +
                        "\r\nUser-Agent: popbridge\r\nAccept: application/json\r\n"
                        "Connection: close\r\nContent-Type: " +
                        request_.contentType +
                        "\r\nContent-Length: " + std::to_string(request_.body.size()) + "\r\n";
  for (const auto& [name, value] : request_.headers) message += name + ": " + value + "\r\n";
  message += "\r\n";
  message += request_.body;
  // Plaintext waits in the Stream until the handshake is done, and is encrypted then.
  stream_->write(message);
  protocol::secureWipe(message);
  protocol::secureWipe(request_.body);
  for (auto& header : request_.headers) protocol::secureWipe(header.second);
}

void HttpsClient::onData(std::string_view data) {
  while (!data.empty() && parser_) {
    std::size_t consumed = 0;
    auto result = parser_->feed(data, consumed);
    data.remove_prefix(consumed);
    if (result == protocol::HttpResponseParser::Result::NeedMore) return;
    if (result == protocol::HttpResponseParser::Result::Error) {
      return fail(std::string(phase_ == Phase::ProxyConnect ? "the proxy's" : "the endpoint's") +
                  " answer is not valid HTTP: " + parser_->error());
    }
    if (phase_ == Phase::ProxyConnect) {
      int status = parser_->status();
      if (status < 200 || status >= 300) {
        return fail("the proxy refused CONNECT: " + std::to_string(status) + " " +
                    parser_->reason());
      }
      if (!data.empty()) return fail("the proxy sent data before the TLS handshake");
      startTls();
      return;
    }
    HttpsResponse response;
    response.status = parser_->status();
    response.body = parser_->body();
    return finish(std::move(response));
  }
}

void HttpsClient::onClose(std::string_view reason) {
  if (phase_ == Phase::Exchanging && parser_) {
    // A response without a length ends when the connection does.
    if (parser_->eof() == protocol::HttpResponseParser::Result::Done) {
      HttpsResponse response;
      response.status = parser_->status();
      response.body = parser_->body();
      return finish(std::move(response));
    }
  }
  if (phase_ == Phase::ProxyConnect && parser_ && parser_->status() != 0) {
    // Proxies often answer a refused CONNECT and close without a length.
    return fail("the proxy refused CONNECT: " + std::to_string(parser_->status()) + " " +
                parser_->reason());
  }
  fail(std::string(phase_ == Phase::ProxyConnect ? "the proxy closed the connection: "
                                                 : "the connection ended early: ") +
       std::string(reason));
}

void HttpsClient::finish(HttpsResponse response) {
  auto done = std::move(done_);
  done_ = nullptr;
  connector_.cancel();
  timer_.stop();
  // Destroying the Stream from inside its own callback is allowed (stream.h).
  stream_.reset();
  parser_.reset();
  phase_ = Phase::Idle;
  if (done) done(std::move(response));
}

void HttpsClient::fail(std::string error) {
  HttpsResponse response;
  response.error = where_.empty() ? error : where_ + ": " + error;
  finish(std::move(response));
}

}  // namespace popbridge::proxy
