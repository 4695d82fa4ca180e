#include "proxy/proxy_header_reader.h"

#include <utility>

namespace popbridge::proxy {

ProxyHeaderReader::ProxyHeaderReader(uv_loop_t* loop, UvHandle<uv_tcp_t> tcp,
                                     std::chrono::milliseconds timeout, Done onDone)
    : tcp_(std::move(tcp)),
      timeout_(timeout),
      onDone_(std::move(onDone)),
      buffer_(std::make_unique<char[]>(kReadSize)),
      timer_(loop) {
  tcp_->data = this;
}

ProxyHeaderReader::~ProxyHeaderReader() {
  if (tcp_) tcp_->data = nullptr;  // UvHandle closes the socket
}

void ProxyHeaderReader::start() {
  timer_.start(timeout_, [this] {
    uv_read_stop(tcp_.stream());
    finished_ = true;
    Outcome outcome;
    outcome.error = "no PROXY protocol header within " + std::to_string(timeout_.count()) + " ms";
    if (onDone_) std::exchange(onDone_, nullptr)(*this, std::move(outcome));
  });
  const int rc =
      uv_read_start(tcp_.stream(), &ProxyHeaderReader::onAlloc, &ProxyHeaderReader::onRead);
  if (rc < 0) {
    Outcome outcome;
    outcome.error = std::string("cannot read: ") + uv_strerror(rc);
    finish(std::move(outcome));
  }
}

UvHandle<uv_tcp_t> ProxyHeaderReader::takeSocket() {
  if (tcp_) {
    uv_read_stop(tcp_.stream());
    tcp_->data = nullptr;
  }
  return std::move(tcp_);
}

void ProxyHeaderReader::onAlloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<ProxyHeaderReader*>(handle->data);
  *buf = self == nullptr ? uv_buf_init(nullptr, 0)
                         : uv_buf_init(self->buffer_.get(), static_cast<unsigned>(kReadSize));
}

void ProxyHeaderReader::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) noexcept {
  auto* self = static_cast<ProxyHeaderReader*>(stream->data);
  if (self != nullptr) self->handleRead(nread);
}

void ProxyHeaderReader::handleRead(ssize_t nread) {
  if (finished_ || nread == 0) return;
  Outcome outcome;
  if (nread < 0) {
    outcome.error = nread == UV_EOF
                        ? "connection closed before the end of the PROXY header"
                        : std::string("read error: ") + uv_strerror(static_cast<int>(nread));
    outcome.closedSilently = nread == UV_EOF && !received_;
    return finish(std::move(outcome));
  }
  received_ = true;
  const std::string_view data(buffer_.get(), static_cast<std::size_t>(nread));
  std::size_t consumed = 0;
  switch (parser_.feed(data, consumed)) {
    case protocol::ProxyHeaderParser::Status::NeedMore:
      return;
    case protocol::ProxyHeaderParser::Status::Error:
      outcome.error = parser_.error();
      return finish(std::move(outcome));
    case protocol::ProxyHeaderParser::Status::Done:
      outcome.ok = true;
      outcome.header = parser_.header();
      outcome.after.assign(data.substr(consumed));
      return finish(std::move(outcome));
  }
}

void ProxyHeaderReader::finish(Outcome outcome) {
  // Nothing more is read here: bytes past the header stay in the kernel for the session.
  uv_read_stop(tcp_.stream());
  finished_ = true;
  // From the loop, not from inside libuv's read callback of the socket being handed over.
  timer_.start(std::chrono::milliseconds(0), [this, outcome = std::move(outcome)]() mutable {
    if (onDone_) std::exchange(onDone_, nullptr)(*this, std::move(outcome));
  });
}

}  // namespace popbridge::proxy
