#include "proxy/connector.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <memory>
#include <utility>

#include "config/duration.h"
#include "protocol/net_address.h"

namespace popbridge::proxy {

namespace {

std::string formatAddress(const sockaddr_storage& storage) {
  char host[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    uv_ip6_name(in6, host, sizeof host);
    return protocol::formatHostPort(host, ntohs(in6->sin6_port));
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
  uv_ip4_name(in, host, sizeof host);
  return protocol::formatHostPort(host, ntohs(in->sin_port));
}

}  // namespace

addrinfo upstreamResolveHints() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  // No AI_ADDRCONFIG: glibc ignores loopback addresses for it, which hides
  // "localhost" on hosts that have nothing but loopback.
  hints.ai_flags = AI_NUMERICSERV;
  return hints;
}

// Requests live on the heap because libuv may still complete them after the
// Connector gave up on them (uv_cancel cannot stop a lookup that is already
// running, and a closed socket completes its connect with UV_ECANCELED). A
// request whose owner is null frees itself in its callback.
struct Connector::ResolveRequest {
  uv_getaddrinfo_t req{};
  Connector* owner = nullptr;
};

struct Connector::ConnectRequest {
  uv_connect_t req{};
  Connector* owner = nullptr;
};

Connector::Connector(uv_loop_t* loop) : loop_(loop), timer_(loop) {}

Connector::~Connector() {
  cancel();
}

std::string Connector::target() const {
  return protocol::formatHostPort(host_, port_);
}

void Connector::connect(const std::string& host, std::uint16_t port,
                        std::chrono::milliseconds timeout, Callback cb) {
  cancel();
  host_ = std::string(protocol::withoutBrackets(host));
  port_ = port;
  timeout_ = timeout;
  callback_ = std::move(cb);
  addresses_.clear();
  nextAddress_ = 0;
  failures_.clear();
  allRefused_ = true;

  if (host_.empty() || host_.find('\0') != std::string::npos) {
    timer_.start(std::chrono::milliseconds(0),
                 [this] { fail("cannot resolve an empty host name"); });
    return;
  }
  if (timeout.count() > 0) {
    timer_.start(timeout, [this] {
      fail("connect to " + target() + " timed out after " + config::formatDuration(timeout_) +
           (resolveRequest_ != nullptr ? " (resolving the name)" : ""));
    });
  }

  auto request = std::make_unique<ResolveRequest>();
  request->owner = this;
  request->req.data = request.get();
  const addrinfo hints = upstreamResolveHints();
  const std::string service = std::to_string(port);
  const int rc = uv_getaddrinfo(loop_, &request->req, &Connector::onResolved, host_.c_str(),
                                service.c_str(), &hints);
  if (rc < 0) {
    const std::string error = "cannot resolve " + host_ + ": " + uv_strerror(rc);
    timer_.start(std::chrono::milliseconds(0), [this, error] { fail(error); });
    return;
  }
  resolveRequest_ = request.release();
}

void Connector::onResolved(uv_getaddrinfo_t* req, int status, addrinfo* result) noexcept {
  std::unique_ptr<ResolveRequest> request(static_cast<ResolveRequest*>(req->data));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(result, &uv_freeaddrinfo);
  Connector* owner = request->owner;
  if (owner == nullptr) return;
  owner->resolveRequest_ = nullptr;
  owner->handleResolved(status, addresses.get());
}

void Connector::handleResolved(int status, addrinfo* result) {
  if (status < 0) {
    fail("cannot resolve " + host_ + ": " + uv_strerror(status));
    return;
  }
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addr == nullptr ||
        ai->ai_addrlen > sizeof(sockaddr_storage)) {
      continue;
    }
    sockaddr_storage storage{};
    std::memcpy(&storage, ai->ai_addr, ai->ai_addrlen);
    addresses_.push_back(storage);
  }
  if (addresses_.empty()) {
    fail("cannot resolve " + host_ + ": no IPv4 or IPv6 address");
    return;
  }
  tryNextAddress();
}

void Connector::tryNextAddress() {
  while (nextAddress_ < addresses_.size()) {
    const sockaddr_storage& address = addresses_[nextAddress_++];
    tcp_ = UvHandle<uv_tcp_t>::allocate();
    uv_tcp_init(loop_, tcp_.get());
    auto request = std::make_unique<ConnectRequest>();
    request->owner = this;
    request->req.data = request.get();
    const int rc =
        uv_tcp_connect(&request->req, tcp_.get(), reinterpret_cast<const sockaddr*>(&address),
                       &Connector::onConnected);
    if (rc == 0) {
      connectRequest_ = request.release();
      return;
    }
    if (rc != UV_ECONNREFUSED) allRefused_ = false;
    failures_.push_back(formatAddress(address) + ": " + uv_strerror(rc));
    tcp_.reset();
  }
  std::string error = "connect to " + target();
  if (allRefused_) {
    error += " refused";
  } else {
    error += " failed: " + failures_.back();
  }
  // Name the addresses when the host was a name, so that "localhost" resolving
  // to ::1 first is visible.
  if (!protocol::isIpLiteral(host_)) {
    error += " (tried ";
    for (std::size_t i = 0; i < failures_.size(); ++i) {
      if (i > 0) error += ", ";
      error += failures_[i];
    }
    error += ")";
  }
  fail(std::move(error));
}

void Connector::onConnected(uv_connect_t* req, int status) noexcept {
  std::unique_ptr<ConnectRequest> request(static_cast<ConnectRequest*>(req->data));
  Connector* owner = request->owner;
  if (owner == nullptr) return;
  owner->connectRequest_ = nullptr;
  owner->handleConnected(status);
}

void Connector::handleConnected(int status) {
  if (status == 0) {
    succeed();
    return;
  }
  if (status != UV_ECONNREFUSED) allRefused_ = false;
  failures_.push_back(formatAddress(addresses_[nextAddress_ - 1]) + ": " + uv_strerror(status));
  tcp_.reset();
  tryNextAddress();
}

void Connector::succeed() {
  timer_.stop();
  auto callback = std::move(callback_);
  callback_ = nullptr;
  auto tcp = std::move(tcp_);
  addresses_.clear();
  // The callback may destroy or reuse this Connector: nothing after it.
  if (callback) callback(std::move(tcp), std::string());
}

void Connector::fail(std::string error) {
  auto callback = std::move(callback_);
  cancel();
  if (callback) callback(UvHandle<uv_tcp_t>(), std::move(error));
}

void Connector::cancel() {
  timer_.stop();
  callback_ = nullptr;
  if (resolveRequest_ != nullptr) {
    resolveRequest_->owner = nullptr;
    // Either the lookup never starts (callback with UV_EAI_CANCELED) or it is
    // already running in the thread pool; both end in onResolved freeing it.
    uv_cancel(reinterpret_cast<uv_req_t*>(&resolveRequest_->req));
    resolveRequest_ = nullptr;
  }
  if (connectRequest_ != nullptr) {
    connectRequest_->owner = nullptr;
    connectRequest_ = nullptr;
  }
  // Closing the socket completes a pending connect with UV_ECANCELED.
  tcp_.reset();
  addresses_.clear();
}

}  // namespace popbridge::proxy
