#pragma once

// Reads the PROXY protocol header (protocol/proxy_header.h) that a load balancer sends first on
// a listener with proxy_protocol = true, before any session exists: before the POP3 greeting and
// before a TLS handshake. The socket then goes to a ProxySession with what was read past the
// header (ClientOrigin::receivedEarlier), so a client that pipelines loses nothing.

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "protocol/proxy_header.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

class ProxyHeaderReader {
 public:
  struct Outcome {
    bool ok = false;
    std::string error;  // why not: a malformed header, the timeout, EOF, a socket error
    // Closed before sending a byte: a TCP health check (connect, then close) more often than
    // an attack, so the owner may log it more quietly.
    bool closedSilently = false;
    protocol::ProxyHeader header;
    std::string after;  // bytes read past the header
  };
  // Called once, always from the loop (a timer), never from inside start() or a socket
  // callback; it may destroy the reader, and takes the socket with takeSocket().
  using Done = std::function<void(ProxyHeaderReader& reader, Outcome outcome)>;

  ProxyHeaderReader(uv_loop_t* loop, UvHandle<uv_tcp_t> tcp, std::chrono::milliseconds timeout,
                    Done onDone);
  ~ProxyHeaderReader();
  ProxyHeaderReader(const ProxyHeaderReader&) = delete;
  ProxyHeaderReader& operator=(const ProxyHeaderReader&) = delete;

  void start();
  // The socket, reading stopped; for the session after a good header.
  UvHandle<uv_tcp_t> takeSocket();

 private:
  static void onAlloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  void handleRead(ssize_t nread);
  void finish(Outcome outcome);

  // Header plus what a load balancer may pass on in the same segment; what is read past the
  // header is at most one such read.
  static constexpr std::size_t kReadSize = 4096;

  UvHandle<uv_tcp_t> tcp_;
  std::chrono::milliseconds timeout_;
  Done onDone_;
  protocol::ProxyHeaderParser parser_;
  std::unique_ptr<char[]> buffer_;
  Timer timer_;  // the timeout, then the deferred completion
  bool finished_ = false;
  bool received_ = false;
};

}  // namespace popbridge::proxy
