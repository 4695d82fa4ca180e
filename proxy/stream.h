#pragma once

// clang-format off
#include "proxy/boringssl_check.h"  // first: stops the build on OpenSSL 3 headers
// clang-format on

#include <openssl/ssl.h>
#include <uv.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// One TCP connection (accepted or connected) with optional TLS.
//
// TLS runs over two memory BIOs in the style of Node's crypto_tls: socket bytes
// go into the input BIO (enc-in), SSL_read produces plaintext for onData
// (clear-out), SSL_write turns the owner's writes into records (clear-in), and
// the output BIO is appended to the socket's write queue (enc-out). cycle() ties
// the four together.
//
// Writes: one uv_write is in flight at a time; everything written meanwhile is
// coalesced into a second buffer, and the two buffers swap when the write
// completes, so steady state does not allocate.
//
// Callbacks and reentrancy:
//  - Any callback may call any method of this Stream, or destroy it. The Stream
//    touches nothing of itself after a callback that destroyed it.
//  - No method invokes a callback synchronously. Work that would (plaintext
//    already buffered when resumeReading() is called, onClose after close())
//    is deferred to the next loop iteration. So the owner never sees a callback
//    from inside its own call into the Stream.
//  - After onClose no other callback is invoked.
//  - Callbacks must not throw: they run inside libuv callbacks (noexcept here).
//
// The process must ignore SIGPIPE: libuv writes with writev(), and a second
// write to a reset socket would otherwise kill it.
class Stream {
 public:
  struct Callbacks {
    // Plaintext received. The view is valid only during the call (even if the
    // callback destroys the Stream).
    std::function<void(std::string_view data)> onData;
    // pendingWriteBytes() fell from >= highWatermark to <= lowWatermark().
    std::function<void()> onDrain;
    // The TLS handshake completed.
    std::function<void()> onTlsReady;
    // Exactly once, when the connection is gone for any reason, always from the
    // event loop (never from inside a call to this Stream). Not called when the
    // Stream is destroyed first. The reason is human-readable.
    std::function<void(std::string_view reason)> onClose;
  };

  struct Options {
    std::size_t readBufferSize = 64 * 1024;
    // The low watermark is half of this.
    std::size_t highWatermark = 256 * 1024;
    // Zero disables the timeout.
    std::chrono::milliseconds handshakeTimeout{30000};
    // Upper bound for closeAfterFlush() (and for flushing after a peer's EOF or
    // a TLS alert): pending writes, close_notify, and waiting for the peer's FIN
    // so that our last bytes are not destroyed by a RST. Then the socket is
    // closed regardless.
    std::chrono::milliseconds closeTimeout{5000};
  };

  // Takes ownership of an initialised, connected uv_tcp_t (from accept or
  // Connector). Sets TCP_NODELAY. Reading starts with startReading().
  Stream(uv_loop_t* loop, UvHandle<uv_tcp_t> tcp, Options options, Callbacks callbacks);
  // Closes the socket without calling onClose.
  ~Stream();

  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  void startReading();
  // Bytes an earlier owner of the socket already read from it (what arrived after a PROXY
  // protocol header in the same read). They are handled before anything read later, from the
  // loop, as if they had just arrived: into TLS once startTls*() was called, else to onData
  // while reading is wanted. Call before startReading().
  void receivedEarlier(std::string bytes);
  // Stops delivering onData and stops reading the socket (a TLS handshake in
  // progress still reads, but its application data waits).
  void pauseReading();
  // Resumes; plaintext that BoringSSL already holds is delivered from the loop.
  void resumeReading();
  bool readingPaused() const { return !wantData_; }

  // Queues bytes. Ignored once closing has begun. While a TLS handshake is in
  // progress the plaintext waits and is encrypted when it completes.
  void write(std::string_view data);
  // May take the buffer without copying when nothing is queued (plaintext only).
  void write(std::string&& data);
  // Queues `data` and leaves `data` empty, usually holding a spare buffer with
  // capacity, so a caller that refills the same string (a RETR streaming body
  // chunks) neither copies nor allocates per chunk on a plaintext connection.
  void writeAndRecycle(std::string& data);
  // Bytes accepted by write() that the kernel has not taken yet (plaintext
  // waiting for the handshake plus encrypted/plain bytes queued or in flight).
  std::size_t pendingWriteBytes() const;
  bool aboveHighWatermark() const { return pendingWriteBytes() >= options_.highWatermark; }
  std::size_t lowWatermark() const { return options_.highWatermark / 2; }

  // Server side of TLS: implicit TLS right after accept, or STLS after "+OK"
  // was written. Bytes written before the call go out in plaintext first; all
  // bytes read after it are TLS. Bytes that already reached onData (the rest of
  // the chunk that carried STLS, or STARTTLS's tagged OK on the client side) are
  // the caller's business: RFC 2595 says discard them, as they may be injected.
  void startTlsServer(SSL_CTX* ctx);
  // Client side. serverName is sent as SNI (unless it is an IP literal) and, with
  // verify, checked against the certificate (DNS name, or IP SAN for an IP
  // literal). A failed check ends in onClose("TLS certificate verification
  // failed: <reason>").
  void startTlsClient(SSL_CTX* ctx, const std::string& serverName, bool verify);
  // True once startTls*() was called (handshaking or established).
  bool tlsActive() const { return tls_ != TlsState::None; }
  bool tlsEstablished() const { return tls_ == TlsState::Established; }
  // "TLSv1.3" / "TLS_AES_128_GCM_SHA256" once the handshake completed, else "".
  std::string tlsVersion() const;
  std::string tlsCipher() const;
  // The peer's leaf certificate once the handshake completed (a client Stream's server
  // certificate), else null.
  bssl::UniquePtr<X509> peerCertificate() const;

  // Finishes pending writes (and sends a TLS close_notify), shuts down the
  // sending side, waits for the peer's FIN, then closes; onClose(reason). Reads
  // are discarded meanwhile. The first close request's reason is the one
  // reported.
  void closeAfterFlush(std::string_view reason);
  // Closes now; pending writes are dropped; onClose(reason) from the loop.
  void close(std::string_view reason);
  // True once closing has begun (closeAfterFlush, close, EOF, error).
  bool closing() const { return state_ != State::Open; }

  // "1.2.3.4:5678" or "[::1]:5678"; IPv4-mapped IPv6 addresses are shown as IPv4.
  std::string peerAddress() const { return peer_; }
  void setNoDelay(bool on);

 private:
  enum class State { Open, Flushing, Lingering, Closed };
  enum class TlsState { None, Handshaking, Established };
  struct Shared;
  struct PendingIo;

  static void onAlloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void onWriteDone(uv_write_t* req, int status) noexcept;
  static void onShutdownDone(uv_shutdown_t* req, int status) noexcept;

  void handleRead(ssize_t nread);
  // Hands receivedEarlier()'s bytes on when they can go; false when a callback destroyed the
  // Stream.
  [[nodiscard]] bool consumeEarlier();
  void handleReadError(ssize_t nread);
  void onWriteComplete(int status);
  void onShutdownComplete(int status);
  void onDeferred();

  // Each returns false when a callback destroyed the Stream.
  [[nodiscard]] bool deliver(const char* data, std::size_t size);
  [[nodiscard]] bool cycle();
  [[nodiscard]] bool cycleOnce();

  void startTls(SSL_CTX* ctx);
  bool encrypt(std::string_view data);
  void drainEncrypted();
  void flushWrites();
  void noteQueued();
  void updateReadState();
  void scheduleCycle();
  std::string handshakeFailureReason(int sslError);
  void failTls(std::string reason);
  void beginFlushClose(std::string_view reason, bool linger, bool closeNotify);
  void maybeShutdown();
  void finish(std::string_view reason);
  void emitClose();

  Options options_;
  Callbacks callbacks_;
  // Liveness token and the read buffers, shared with every callback frame so
  // that a callback destroying the Stream neither leaves us touching freed
  // members nor invalidates the view it was handed.
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<PendingIo> io_;
  std::string pending_;
  std::string clearPending_;
  std::string earlier_;  // see receivedEarlier()
  std::string peer_;
  std::string closeReason_;
  std::string serverName_;

  State state_ = State::Open;
  TlsState tls_ = TlsState::None;
  bool wantData_ = false;
  bool socketReading_ = false;
  bool peerEof_ = false;
  bool lingerAfterShutdown_ = false;
  bool shutdownStarted_ = false;
  bool aboveHigh_ = false;
  bool inCycle_ = false;
  bool verifyPeer_ = false;

  bssl::UniquePtr<SSL> ssl_;
  BIO* encIn_ = nullptr;   // owned by ssl_
  BIO* encOut_ = nullptr;  // owned by ssl_

  Timer handshakeTimer_;
  Timer closeTimer_;
  Timer deferTimer_;
  // Last: its destructor runs first and closes the socket while the rest still
  // exists.
  UvHandle<uv_tcp_t> tcp_;
};

}  // namespace popbridge::proxy
