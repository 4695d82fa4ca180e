#include "proxy/stream.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "proxy/tls_context.h"

namespace popbridge::proxy {

namespace {

// A TLS record carries at most 16 KiB of plaintext; encrypting in slices of a
// few records keeps the output BIO from ever holding a whole large write twice.
constexpr std::size_t kEncryptSlice = 64 * 1024;

std::string formatAddress(const sockaddr_storage& storage) {
  char host[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    uv_ip4_name(in, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    const auto port = std::to_string(ntohs(in6->sin6_port));
    // Dual-stack listeners see IPv4 clients as ::ffff:a.b.c.d; logs and
    // per-IP limits want the plain IPv4 form.
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      return std::string(host) + ":" + port;
    }
    uv_ip6_name(in6, host, sizeof host);
    return "[" + std::string(host) + "]:" + port;
  }
  return "unknown";
}

std::string socketErrorReason(std::string_view what, int status) {
  switch (status) {
    case UV_ECONNRESET:
      return "connection reset by peer";
    case UV_EPIPE:
      return "connection closed by peer (broken pipe)";
    case UV_ETIMEDOUT:
      return "connection timed out";
    default:
      return std::string(what) + " error: " + uv_strerror(status);
  }
}

bool isIpLiteral(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// One socket-read buffer and one plaintext buffer per thread, that is per
// event loop, shared by all its Streams: bytes are handed to onData
// synchronously and never kept, and libuv callbacks do not nest. Per-Stream
// buffers would cost two 64 KiB blocks per session even when it is idle.
std::shared_ptr<char[]> threadBuffer(int which, std::size_t size) {
  thread_local std::shared_ptr<char[]> buffers[2];
  thread_local std::size_t sizes[2] = {0, 0};
  if (!buffers[which] || sizes[which] < size) {
    buffers[which] = std::make_shared<char[]>(size);
    sizes[which] = size;
  }
  return buffers[which];
}

}  // namespace

struct Stream::Shared {
  explicit Shared(std::size_t readBufferSize)
      : readBuffer(threadBuffer(0, readBufferSize)), readBufferSize(readBufferSize) {}
  bool alive = true;
  // Held by reference count so a callback that destroys the Stream cannot free
  // the bytes it is looking at.
  std::shared_ptr<char[]> readBuffer;
  std::size_t readBufferSize;
  // Plaintext out of SSL_read; taken when TLS starts.
  std::shared_ptr<char[]> plainBuffer;
};

// Requests that libuv may complete after the Stream is gone (their callbacks run
// with UV_ECANCELED once the socket is closed). When the Stream dies with one
// outstanding, it lets go of this and the last callback frees it.
struct Stream::PendingIo {
  uv_write_t write{};
  uv_shutdown_t shutdown{};
  std::string inFlight;
  Stream* owner = nullptr;
  bool writeActive = false;
  bool shutdownActive = false;
};

Stream::Stream(uv_loop_t* loop, UvHandle<uv_tcp_t> tcp, Options options, Callbacks callbacks)
    : options_(options),
      callbacks_(std::move(callbacks)),
      shared_(std::make_shared<Shared>(std::max<std::size_t>(options.readBufferSize, 1024))),
      io_(std::make_unique<PendingIo>()),
      handshakeTimer_(loop),
      closeTimer_(loop),
      deferTimer_(loop),
      tcp_(std::move(tcp)) {
  io_->owner = this;
  if (!tcp_ || !tcp_.initialised()) {
    state_ = State::Closed;
    closeReason_ = "invalid socket";
    peer_ = "unknown";
    deferTimer_.start(std::chrono::milliseconds(0), [this] { onDeferred(); });
    return;
  }
  tcp_->data = this;
  sockaddr_storage storage{};
  int length = sizeof storage;
  if (uv_tcp_getpeername(tcp_.get(), reinterpret_cast<sockaddr*>(&storage), &length) == 0) {
    peer_ = formatAddress(storage);
  } else {
    peer_ = "unknown";
  }
  uv_tcp_nodelay(tcp_.get(), 1);
}

Stream::~Stream() {
  shared_->alive = false;
  if (io_->writeActive || io_->shutdownActive) {
    io_->owner = nullptr;
    (void)io_.release();  // freed by the last outstanding callback
  }
}

// ---------------------------------------------------------------- reading

void Stream::startReading() {
  resumeReading();
}

void Stream::receivedEarlier(std::string bytes) {
  earlier_ = std::move(bytes);
  if (!earlier_.empty()) scheduleCycle();
}

bool Stream::consumeEarlier() {
  if (earlier_.empty()) return true;
  if (state_ != State::Open) {
    earlier_.clear();  // closing discards input, as handleRead does
    return true;
  }
  if (tls_ != TlsState::None) {
    const std::string bytes = std::move(earlier_);
    earlier_.clear();
    if (BIO_write(encIn_, bytes.data(), static_cast<int>(bytes.size())) !=
        static_cast<int>(bytes.size())) {
      failTls(drainTlsErrors("TLS input buffer"));
    }
    return true;  // the caller cycles
  }
  if (!wantData_) return true;  // resumeReading() schedules another try
  const std::string bytes = std::move(earlier_);
  earlier_.clear();
  return deliver(bytes.data(), bytes.size());
}

void Stream::pauseReading() {
  wantData_ = false;
  updateReadState();
}

void Stream::resumeReading() {
  if (state_ != State::Open) return;
  wantData_ = true;
  updateReadState();
  // BoringSSL may hold decrypted records, or the input BIO whole records, that
  // no socket event will announce again.
  if (tls_ == TlsState::Established || !earlier_.empty()) scheduleCycle();
}

void Stream::updateReadState() {
  bool want = false;
  switch (state_) {
    case State::Open:
      want = tls_ == TlsState::Handshaking || wantData_;
      break;
    case State::Flushing:
    case State::Lingering:
      want = !peerEof_;
      break;
    case State::Closed:
      want = false;
      break;
  }
  if (want == socketReading_ || !tcp_) return;
  if (want) {
    const int rc = uv_read_start(tcp_.stream(), &Stream::onAlloc, &Stream::onRead);
    if (rc < 0) {
      finish(socketErrorReason("read", rc));
      return;
    }
  } else {
    uv_read_stop(tcp_.stream());
  }
  socketReading_ = want;
}

void Stream::onAlloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<Stream*>(handle->data);
  if (self == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  *buf = uv_buf_init(self->shared_->readBuffer.get(),
                     static_cast<unsigned int>(self->shared_->readBufferSize));
}

void Stream::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) noexcept {
  auto* self = static_cast<Stream*>(stream->data);
  if (self == nullptr) return;
  self->handleRead(nread);
}

void Stream::handleRead(ssize_t nread) {
  if (nread == 0) return;
  if (nread < 0) {
    handleReadError(nread);
    return;
  }
  // Closing: the owner asked for no more input; reading only detects the FIN.
  if (state_ != State::Open) return;
  // Bytes read earlier go first (the deferred call has not run yet).
  if (!earlier_.empty() && (!consumeEarlier() || state_ != State::Open)) return;
  const auto size = static_cast<std::size_t>(nread);
  if (tls_ == TlsState::None) {
    (void)deliver(shared_->readBuffer.get(), size);
    return;
  }
  if (BIO_write(encIn_, shared_->readBuffer.get(), static_cast<int>(size)) != nread) {
    failTls(drainTlsErrors("TLS input buffer"));
    return;
  }
  (void)cycle();
}

void Stream::handleReadError(ssize_t nread) {
  if (nread != UV_EOF) {
    // Closing already has its reason; a reset now only cuts it short.
    if (state_ != State::Open) {
      finish(closeReason_);
    } else if (tls_ == TlsState::Handshaking) {
      finish("TLS handshake failed: " + socketErrorReason("read", static_cast<int>(nread)));
    } else {
      finish(socketErrorReason("read", static_cast<int>(nread)));
    }
    return;
  }
  // libuv stops reading by itself after EOF.
  peerEof_ = true;
  socketReading_ = false;
  switch (state_) {
    case State::Open:
      if (tls_ == TlsState::Handshaking) {
        finish("TLS handshake failed: connection closed by peer");
      } else {
        // Half-close: what we already queued (say, the answer to a pipelined
        // QUIT) still goes out before we close.
        beginFlushClose("connection closed by peer", false, false);
      }
      return;
    case State::Flushing:
      maybeShutdown();
      return;
    case State::Lingering:
      finish(closeReason_);
      return;
    case State::Closed:
      return;
  }
}

bool Stream::deliver(const char* data, std::size_t size) {
  if (!callbacks_.onData) return true;
  // Holds the buffer `data` points into and the liveness flag across the call.
  const auto shared = shared_;
  callbacks_.onData(std::string_view(data, size));
  return shared->alive;
}

// ---------------------------------------------------------------- writing

std::size_t Stream::pendingWriteBytes() const {
  if (state_ == State::Closed) return 0;
  return pending_.size() + clearPending_.size() + io_->inFlight.size();
}

void Stream::write(std::string_view data) {
  if (state_ != State::Open || data.empty()) return;
  switch (tls_) {
    case TlsState::Handshaking:
      clearPending_.append(data);
      break;
    case TlsState::Established:
      if (!encrypt(data)) return;
      break;
    case TlsState::None:
      pending_.append(data);
      break;
  }
  flushWrites();
  noteQueued();
}

void Stream::writeAndRecycle(std::string& data) {
  if (state_ == State::Open && tls_ == TlsState::None && pending_.empty() && !data.empty()) {
    // pending_'s old buffer (empty, with its capacity) goes back to the caller.
    pending_.swap(data);
    data.clear();
    flushWrites();
    noteQueued();
    return;
  }
  write(std::string_view(data));
  data.clear();
}

void Stream::write(std::string&& data) {
  if (state_ != State::Open || data.empty()) return;
  if (tls_ != TlsState::None || !pending_.empty()) {
    write(std::string_view(data));
    return;
  }
  pending_ = std::move(data);
  flushWrites();
  noteQueued();
}

void Stream::noteQueued() {
  if (state_ == State::Open && pendingWriteBytes() >= options_.highWatermark) aboveHigh_ = true;
}

void Stream::flushWrites() {
  if (state_ == State::Closed || io_->writeActive || pending_.empty() || !tcp_) return;
  // The buffer that just finished (empty, with its capacity) becomes the one
  // that collects the next writes.
  if (pending_.size() > UINT_MAX) {
    finish("write queue exceeds 4 GiB");
    return;
  }
  io_->inFlight.swap(pending_);
  pending_.clear();
  uv_buf_t buf = uv_buf_init(io_->inFlight.data(), static_cast<unsigned int>(io_->inFlight.size()));
  io_->write.data = io_.get();
  const int rc = uv_write(&io_->write, tcp_.stream(), &buf, 1, &Stream::onWriteDone);
  if (rc < 0) {
    io_->inFlight.clear();
    finish(state_ == State::Open ? socketErrorReason("write", rc) : std::string_view(closeReason_));
    return;
  }
  io_->writeActive = true;
}

void Stream::onWriteDone(uv_write_t* req, int status) noexcept {
  auto* io = static_cast<PendingIo*>(req->data);
  io->writeActive = false;
  if (io->owner == nullptr) {
    if (!io->shutdownActive) std::unique_ptr<PendingIo> orphan(io);
    return;
  }
  io->owner->onWriteComplete(status);
}

void Stream::onWriteComplete(int status) {
  io_->inFlight.clear();
  if (state_ == State::Closed) return;
  if (status < 0) {
    finish(state_ == State::Open ? socketErrorReason("write", status)
                                 : std::string_view(closeReason_));
    return;
  }
  flushWrites();
  if (state_ != State::Open) {
    maybeShutdown();
    return;
  }
  if (aboveHigh_ && pendingWriteBytes() <= lowWatermark()) {
    aboveHigh_ = false;
    if (callbacks_.onDrain) {
      const auto shared = shared_;
      callbacks_.onDrain();
      if (!shared->alive) return;
    }
  }
}

// ---------------------------------------------------------------- TLS

void Stream::startTlsServer(SSL_CTX* ctx) {
  if (state_ != State::Open || tls_ != TlsState::None) return;
  startTls(ctx);
  if (ssl_) SSL_set_accept_state(ssl_.get());
}

void Stream::startTlsClient(SSL_CTX* ctx, const std::string& serverName, bool verify) {
  if (state_ != State::Open || tls_ != TlsState::None) return;
  startTls(ctx);
  if (!ssl_) return;
  SSL* ssl = ssl_.get();
  SSL_set_connect_state(ssl);
  // Configuration may spell an IPv6 upstream as "[::1]".
  std::string name = serverName;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  serverName_ = name;
  const bool ipLiteral = isIpLiteral(name);
  // RFC 6066: SNI carries host names only, never addresses.
  if (!ipLiteral && !name.empty() && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    failTls(drainTlsErrors("cannot set TLS server name " + name));
    return;
  }
  verifyPeer_ = verify;
  if (verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int ok = ipLiteral ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                             : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1 || name.empty()) {
      failTls(drainTlsErrors("cannot set the expected TLS peer name \"" + name + "\""));
      return;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  }
  // A server asking to renegotiate is refused (the connection fails with
  // NO_RENEGOTIATION); POP3/IMAP have no use for it.
  SSL_set_renegotiate_mode(ssl, ssl_renegotiate_never);
}

void Stream::startTls(SSL_CTX* ctx) {
  ERR_clear_error();
  ssl_.reset(ctx != nullptr ? SSL_new(ctx) : nullptr);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (!ssl_ || in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    ssl_.reset();
    finish(ctx == nullptr ? std::string("TLS setup failed: no TLS context")
                          : drainTlsErrors("TLS setup failed"));
    return;
  }
  // An empty memory BIO must mean "wait for more", not EOF.
  BIO_set_mem_eof_return(in, -1);
  BIO_set_mem_eof_return(out, -1);
  SSL_set_bio(ssl_.get(), in, out);
  encIn_ = in;
  encOut_ = out;
  if (!shared_->plainBuffer) shared_->plainBuffer = threadBuffer(1, shared_->readBufferSize);
  tls_ = TlsState::Handshaking;
  if (options_.handshakeTimeout.count() > 0) {
    handshakeTimer_.start(options_.handshakeTimeout, [this] { finish("TLS handshake timed out"); });
  }
  updateReadState();
  // The client's hello is produced from the loop as well, so that startTls*()
  // never calls back into the owner.
  scheduleCycle();
}

bool Stream::encrypt(std::string_view data) {
  while (!data.empty()) {
    const std::size_t slice = std::min(data.size(), kEncryptSlice);
    ERR_clear_error();
    const int n = SSL_write(ssl_.get(), data.data(), static_cast<int>(slice));
    if (n <= 0) {
      failTls(drainTlsErrors("TLS write failed", SSL_get_error(ssl_.get(), n)));
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    drainEncrypted();
  }
  return true;
}

void Stream::drainEncrypted() {
  if (encOut_ == nullptr) return;
  for (std::size_t available = BIO_pending(encOut_); available > 0;
       available = BIO_pending(encOut_)) {
    const std::size_t chunk = std::min<std::size_t>(available, INT_MAX);
    const std::size_t old = pending_.size();
    pending_.resize(old + chunk);
    const int n = BIO_read(encOut_, pending_.data() + old, static_cast<int>(chunk));
    pending_.resize(old + static_cast<std::size_t>(std::max(n, 0)));
    if (n <= 0) break;
  }
}

void Stream::scheduleCycle() {
  if (state_ == State::Closed || deferTimer_.active()) return;
  deferTimer_.start(std::chrono::milliseconds(0), [this] { onDeferred(); });
}

void Stream::onDeferred() {
  if (state_ == State::Closed) {
    emitClose();
    return;
  }
  if (!earlier_.empty()) {
    const auto shared = shared_;
    if (!consumeEarlier() || !shared->alive) return;
    if (state_ == State::Closed) return;
  }
  if (ssl_) (void)cycle();
}

bool Stream::cycle() {
  // Callbacks run from inside the cycle cannot re-enter it (methods only
  // schedule), but keep the invariant cheap to check.
  if (inCycle_) {
    scheduleCycle();
    return true;
  }
  inCycle_ = true;
  const auto shared = shared_;
  const bool alive = cycleOnce();
  if (!alive || !shared->alive) return false;
  inCycle_ = false;
  return true;
}

bool Stream::cycleOnce() {
  if (state_ != State::Open || !ssl_) return true;
  SSL* ssl = ssl_.get();
  if (tls_ == TlsState::Handshaking) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl);
    if (rc != 1) {
      const int err = SSL_get_error(ssl, rc);
      drainEncrypted();
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        flushWrites();
        return true;
      }
      failTls(handshakeFailureReason(err));
      return true;
    }
    tls_ = TlsState::Established;
    handshakeTimer_.stop();
    if (!clearPending_.empty()) {
      std::string queued;
      queued.swap(clearPending_);
      if (!encrypt(queued)) return true;
    }
    drainEncrypted();
    flushWrites();
    updateReadState();
    if (state_ != State::Open) return true;
    if (callbacks_.onTlsReady) {
      const auto shared = shared_;
      callbacks_.onTlsReady();
      if (!shared->alive) return false;
      if (state_ != State::Open) return true;
    }
  }

  char* plain = shared_->plainBuffer.get();
  const std::size_t capacity = shared_->readBufferSize;
  while (state_ == State::Open && wantData_) {
    std::size_t filled = 0;
    int err = SSL_ERROR_NONE;
    ERR_clear_error();
    while (filled < capacity) {
      const int n = SSL_read(ssl, plain + filled,
                             static_cast<int>(std::min<std::size_t>(capacity - filled, INT_MAX)));
      if (n > 0) {
        filled += static_cast<std::size_t>(n);
        continue;
      }
      err = SSL_get_error(ssl, n);
      break;
    }
    // SSL_read can produce output too: alerts, KeyUpdate replies.
    drainEncrypted();
    flushWrites();
    if (filled > 0 && !deliver(plain, filled)) return false;
    if (state_ != State::Open) return true;
    if (err == SSL_ERROR_NONE) continue;  // buffer was full; there may be more
    if (err == SSL_ERROR_WANT_READ) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      beginFlushClose("connection closed by peer", false, true);
      return true;
    }
    failTls(drainTlsErrors("TLS error", err));
    return true;
  }
  updateReadState();
  return true;
}

std::string Stream::handshakeFailureReason(int sslError) {
  if (ssl_ && verifyPeer_) {
    const long result = SSL_get_verify_result(ssl_.get());
    if (result != X509_V_OK && result != X509_V_ERR_INVALID_CALL) {
      ERR_clear_error();
      std::string reason = "TLS certificate verification failed: ";
      reason += X509_verify_cert_error_string(result);
      if (result == X509_V_ERR_HOSTNAME_MISMATCH || result == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        reason += " (certificate is not valid for " + serverName_ + ")";
      }
      return reason;
    }
  }
  return drainTlsErrors("TLS handshake failed", sslError);
}

void Stream::failTls(std::string reason) {
  // The alert BoringSSL queued tells the peer why; send it, do not linger.
  drainEncrypted();
  clearPending_.clear();
  beginFlushClose(reason, false, false);
}

// ---------------------------------------------------------------- closing

void Stream::closeAfterFlush(std::string_view reason) {
  beginFlushClose(reason, true, true);
}

void Stream::close(std::string_view reason) {
  if (state_ == State::Closed) return;
  finish(state_ == State::Open ? reason : std::string_view(closeReason_));
}

void Stream::beginFlushClose(std::string_view reason, bool linger, bool closeNotify) {
  if (state_ != State::Open) return;
  state_ = State::Flushing;
  closeReason_ = reason;
  lingerAfterShutdown_ = linger;
  handshakeTimer_.stop();
  // Plaintext waiting for a handshake that will not finish cannot be sent.
  clearPending_.clear();
  if (closeNotify && tls_ == TlsState::Established && ssl_) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    ERR_clear_error();
    drainEncrypted();
  }
  closeTimer_.start(options_.closeTimeout, [this] { finish(closeReason_); });
  updateReadState();
  if (state_ != State::Flushing) return;
  flushWrites();
  maybeShutdown();
}

void Stream::maybeShutdown() {
  if (state_ != State::Flushing || shutdownStarted_ || io_->writeActive || !pending_.empty()) {
    return;
  }
  if (peerEof_) {
    // Everything is with the kernel and the peer sent its FIN: a plain close
    // sends ours after the data.
    finish(closeReason_);
    return;
  }
  shutdownStarted_ = true;
  io_->shutdown.data = io_.get();
  const int rc = uv_shutdown(&io_->shutdown, tcp_.stream(), &Stream::onShutdownDone);
  if (rc < 0) {
    finish(closeReason_);
    return;
  }
  io_->shutdownActive = true;
}

void Stream::onShutdownDone(uv_shutdown_t* req, int status) noexcept {
  auto* io = static_cast<PendingIo*>(req->data);
  io->shutdownActive = false;
  if (io->owner == nullptr) {
    if (!io->writeActive) std::unique_ptr<PendingIo> orphan(io);
    return;
  }
  io->owner->onShutdownComplete(status);
}

void Stream::onShutdownComplete(int status) {
  if (state_ != State::Flushing) return;
  if (status < 0 || !lingerAfterShutdown_ || peerEof_) {
    finish(closeReason_);
    return;
  }
  // Closing now with unread input would make the kernel send a RST, which can
  // destroy our last reply before the peer reads it. Wait for the peer's FIN
  // (bounded by closeTimeout) and discard what comes meanwhile.
  state_ = State::Lingering;
  updateReadState();
}

void Stream::finish(std::string_view reason) {
  if (state_ == State::Closed) return;
  // `reason` may alias closeReason_.
  std::string finalReason(reason);
  state_ = State::Closed;
  closeReason_ = std::move(finalReason);
  handshakeTimer_.stop();
  closeTimer_.stop();
  socketReading_ = false;
  // Outstanding write/shutdown requests complete with UV_ECANCELED; io_ stays
  // valid for them.
  tcp_.reset();
  pending_ = std::string();
  clearPending_ = std::string();
  deferTimer_.start(std::chrono::milliseconds(0), [this] { onDeferred(); });
}

void Stream::emitClose() {
  auto onClose = std::move(callbacks_.onClose);
  // Drop whatever the callbacks captured; no other callback may run now.
  callbacks_ = Callbacks{};
  if (!onClose) return;
  // A copy: the callback may destroy the Stream, and with it closeReason_.
  const std::string reason = closeReason_;
  onClose(reason);
}

// ---------------------------------------------------------------- info

std::string Stream::tlsVersion() const {
  if (!ssl_ || tls_ != TlsState::Established) return {};
  return SSL_get_version(ssl_.get());
}

std::string Stream::tlsCipher() const {
  if (!ssl_ || tls_ != TlsState::Established) return {};
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_.get());
  return cipher != nullptr ? SSL_CIPHER_get_name(cipher) : std::string();
}

bssl::UniquePtr<X509> Stream::peerCertificate() const {
  if (!ssl_ || tls_ != TlsState::Established) return nullptr;
  return bssl::UniquePtr<X509>(SSL_get_peer_certificate(ssl_.get()));
}

void Stream::setNoDelay(bool on) {
  if (tcp_ && state_ != State::Closed) uv_tcp_nodelay(tcp_.get(), on ? 1 : 0);
}

}  // namespace popbridge::proxy
