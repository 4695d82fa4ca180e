#pragma once

#include <netdb.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// The getaddrinfo hints of an upstream connection (TCP, IPv4 and IPv6, numeric port); shared
// with the upstream probe so that it resolves exactly as sessions do.
addrinfo upstreamResolveHints();

// Outbound TCP: resolves with uv_getaddrinfo, then tries every address in the
// order the resolver returned them, under one overall timeout that covers
// resolution and all attempts.
//
// The callback may destroy the Connector or start another connect() on it.
class Connector {
 public:
  // Exactly one call per connect() unless cancelled: tcp is an initialised,
  // connected handle on success (error empty), else empty and error says why:
  // "connect to imap.example.com:993 timed out after 10s",
  // "connect to 127.0.0.1:143 refused", "cannot resolve nowhere.invalid: ...".
  using Callback = std::function<void(UvHandle<uv_tcp_t> tcp, std::string error)>;

  explicit Connector(uv_loop_t* loop);
  ~Connector();  // cancels
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // host is a name or an IP literal ("[::1]" is accepted too). A timeout of zero
  // means none. A connect() while one is in progress cancels the first. The
  // callback is never invoked from inside connect().
  void connect(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
               Callback cb);
  // No callback afterwards; everything is released (requests still inside
  // libuv free themselves when they complete).
  void cancel();
  bool busy() const { return static_cast<bool>(callback_); }

 private:
  struct ResolveRequest;
  struct ConnectRequest;

  static void onResolved(uv_getaddrinfo_t* req, int status, addrinfo* result) noexcept;
  static void onConnected(uv_connect_t* req, int status) noexcept;

  void handleResolved(int status, addrinfo* result);
  void handleConnected(int status);
  void tryNextAddress();
  void fail(std::string error);
  void succeed();
  std::string target() const;

  uv_loop_t* loop_;
  Timer timer_;
  Callback callback_;
  std::string host_;
  std::uint16_t port_ = 0;
  std::chrono::milliseconds timeout_{0};
  ResolveRequest* resolveRequest_ = nullptr;  // owned by libuv until its callback
  ConnectRequest* connectRequest_ = nullptr;  // likewise
  std::vector<sockaddr_storage> addresses_;
  std::size_t nextAddress_ = 0;
  std::vector<std::string> failures_;
  bool allRefused_ = true;
  UvHandle<uv_tcp_t> tcp_;
};

}  // namespace popbridge::proxy
