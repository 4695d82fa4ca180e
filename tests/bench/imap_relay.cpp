#include "tests/bench/imap_relay.h"

#include <arpa/inet.h>
#include <signal.h>
#include <uv.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <list>
#include <memory>
#include <optional>
#include <vector>

#include "proxy/uv_handle.h"

namespace popbridge::bench {
namespace {

using proxy::UvHandle;

constexpr std::size_t kHeadBytes = 64;  // enough for a tag and "UID FETCH"
constexpr std::size_t kTailBytes = 24;  // enough for "{18446744073709551615+}\r"
constexpr std::size_t kReadBuffer = 64 * 1024;

bool isTagChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
         c != '"' && c != '\\' && c != '+';
}

// The command name of a line "tag SP command [SP ...]", upper case, "UID x" kept as two words;
// empty when the line is not a tagged command.
std::string commandOf(std::string_view line) {
  const auto space = line.find(' ');
  if (space == 0 || space == std::string_view::npos) return "";
  if (!std::all_of(line.begin(), line.begin() + static_cast<long>(space), isTagChar)) return "";
  std::string_view rest = line.substr(space + 1);
  auto word = [](std::string_view text) {
    std::string out;
    for (const char c : text) {
      if (!std::isalpha(static_cast<unsigned char>(c))) break;
      out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
  };
  std::string name = word(rest);
  if (name.empty()) return "";
  if (name == "UID" && rest.size() > 4 && rest[3] == ' ') {
    const std::string second = word(rest.substr(4));
    if (!second.empty()) name += " " + second;
  }
  return name;
}

// The octet count of a literal announced at the end of a line ("{12}" or "{12+}", before CR).
std::optional<std::uint64_t> literalAt(std::string_view tail) {
  if (!tail.empty() && tail.back() == '\r') tail.remove_suffix(1);
  if (tail.empty() || tail.back() != '}') return std::nullopt;
  tail.remove_suffix(1);
  if (!tail.empty() && tail.back() == '+') tail.remove_suffix(1);
  const auto open = tail.rfind('{');
  if (open == std::string_view::npos || open + 1 == tail.size()) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : tail.substr(open + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

void ImapCommandCounter::consume(std::string_view data) {
  while (!data.empty()) {
    if (literal_ > 0) {
      const auto skip = static_cast<std::size_t>(std::min<std::uint64_t>(literal_, data.size()));
      literal_ -= skip;
      data.remove_prefix(skip);
      continue;
    }
    const auto newline = data.find('\n');
    const std::string_view part = data.substr(0, newline);
    if (head_.size() < kHeadBytes) head_.append(part.substr(0, kHeadBytes - head_.size()));
    tail_.append(part);
    if (tail_.size() > kTailBytes) tail_.erase(0, tail_.size() - kTailBytes);
    if (newline == std::string_view::npos) return;
    data.remove_prefix(newline + 1);
    endLine();
  }
}

void ImapCommandCounter::endLine() {
  if (!continuation_) {
    const std::string name = commandOf(head_);
    if (!name.empty()) {
      ++commands_;
      ++byName_[name];
      new_.push_back(name);
    }
  }
  const auto literal = literalAt(tail_);
  continuation_ = literal.has_value();
  literal_ = literal.value_or(0);
  head_.clear();
  tail_.clear();
}

namespace {

struct Totals {
  std::uint64_t connections = 0;
  std::uint64_t c2sBytes = 0;
  std::uint64_t s2cBytes = 0;
  std::uint64_t commandCount = 0;
  std::map<std::string, std::uint64_t> byName;
};

class Relay;

// One proxied connection: the accepted client side and the connection to the target. Each
// direction has at most one write in flight, and reading that side waits for it, so the relay
// holds at most one buffer per direction.
class Pair {
 public:
  Pair(Relay& relay, uv_loop_t* loop);
  bool accept(uv_stream_t* server);
  void connect(const sockaddr_in& target);
  void close();
  bool closed() const { return closed_; }

 private:
  struct Side {
    UvHandle<uv_tcp_t> tcp;
    Pair* pair = nullptr;
    bool toServer = false;  // data read on this side goes to the server
  };
  struct Write {
    uv_write_t req{};
    std::unique_ptr<char[]> data;
    Side* from = nullptr;
  };

  static void onConnect(uv_connect_t* req, int status) noexcept;
  static void onAlloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) noexcept;
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void onWrite(uv_write_t* req, int status) noexcept;
  void startReading(Side& side);
  void forward(Side& from, std::unique_ptr<char[]> data, std::size_t length);

  Relay& relay_;
  Side client_;
  Side server_;
  ImapCommandCounter counter_;
  bool closed_ = false;
};

class Relay {
 public:
  Relay(const RelayOptions& options, uv_loop_t* loop) : options_(options), loop_(loop) {}

  int run() {
    if (uv_ip4_addr(options_.targetHost.c_str(), options_.targetPort, &target_) != 0) {
      std::cerr << "pop3load relay: bad target " << options_.targetHost << "\n";
      return 2;
    }
    listener_ = UvHandle<uv_tcp_t>::allocate();
    uv_tcp_init(loop_, listener_.get());
    listener_->data = this;
    sockaddr_in address{};
    uv_ip4_addr("127.0.0.1", options_.listenPort, &address);
    int status = uv_tcp_bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), 0);
    if (status == 0) status = uv_listen(listener_.stream(), 4096, &Relay::onConnection);
    if (status != 0) {
      std::cerr << "pop3load relay: cannot listen on 127.0.0.1:" << options_.listenPort << ": "
                << uv_strerror(status) << "\n";
      return 1;
    }
    for (const int signum : {SIGTERM, SIGINT}) {
      signals_.push_back(UvHandle<uv_signal_t>::allocate());
      uv_signal_init(loop_, signals_.back().get());
      signals_.back()->data = this;
      uv_signal_start(signals_.back().get(), &Relay::onSignal, signum);
    }
    timer_ = UvHandle<uv_timer_t>::allocate();
    uv_timer_init(loop_, timer_.get());
    timer_->data = this;
    uv_timer_start(timer_.get(), &Relay::onTimer, 100, 100);
    writeStats(true);
    uv_run(loop_, UV_RUN_DEFAULT);
    return 0;
  }

  const sockaddr_in& target() const { return target_; }
  Totals& totals() {
    changed_ = true;
    return totals_;
  }

 private:
  static void onConnection(uv_stream_t* server, int status) noexcept {
    auto* self = static_cast<Relay*>(server->data);
    if (self == nullptr || status != 0) return;
    self->pairs_.remove_if([](const std::unique_ptr<Pair>& pair) { return pair->closed(); });
    auto pair = std::make_unique<Pair>(*self, self->loop_);
    if (!pair->accept(server)) return;
    self->totals().connections++;
    pair->connect(self->target_);
    self->pairs_.push_back(std::move(pair));
  }

  static void onSignal(uv_signal_t* handle, int) noexcept {
    auto* self = static_cast<Relay*>(handle->data);
    if (self == nullptr) return;
    self->writeStats(true);
    for (auto& pair : self->pairs_) pair->close();
    self->signals_.clear();
    self->timer_.reset();
    self->listener_.reset();
  }

  static void onTimer(uv_timer_t* handle) noexcept {
    auto* self = static_cast<Relay*>(handle->data);
    if (self == nullptr) return;
    self->pairs_.remove_if([](const std::unique_ptr<Pair>& pair) { return pair->closed(); });
    self->writeStats(false);
  }

  void writeStats(bool always) {
    if (!always && !changed_) return;
    changed_ = false;
    if (options_.statsFile.empty()) return;
    const std::string temporary = options_.statsFile + ".tmp";
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << "connections=" << totals_.connections << " commands=" << totals_.commandCount
          << " c2s_bytes=" << totals_.c2sBytes << " s2c_bytes=" << totals_.s2cBytes;
      for (const auto& [name, count] : totals_.byName) {
        std::string key = name;
        std::replace(key.begin(), key.end(), ' ', '_');
        out << " cmd." << key << "=" << count;
      }
      out << "\n";
    }
    std::rename(temporary.c_str(), options_.statsFile.c_str());
  }

  const RelayOptions& options_;
  uv_loop_t* loop_;
  sockaddr_in target_{};
  UvHandle<uv_tcp_t> listener_;
  UvHandle<uv_timer_t> timer_;
  std::vector<UvHandle<uv_signal_t>> signals_;
  std::list<std::unique_ptr<Pair>> pairs_;
  Totals totals_;
  bool changed_ = false;
};

Pair::Pair(Relay& relay, uv_loop_t* loop) : relay_(relay) {
  for (Side* side : {&client_, &server_}) {
    side->tcp = UvHandle<uv_tcp_t>::allocate();
    uv_tcp_init(loop, side->tcp.get());
    side->tcp->data = side;
    side->pair = this;
  }
  client_.toServer = true;
}

bool Pair::accept(uv_stream_t* server) {
  if (uv_accept(server, client_.tcp.stream()) != 0) {
    close();
    return false;
  }
  uv_tcp_nodelay(client_.tcp.get(), 1);
  return true;
}

void Pair::connect(const sockaddr_in& target) {
  auto req = std::make_unique<uv_connect_t>();
  req->data = this;
  if (uv_tcp_connect(req.get(), server_.tcp.get(), reinterpret_cast<const sockaddr*>(&target),
                     &Pair::onConnect) != 0) {
    close();
    return;
  }
  req.release();  // freed in onConnect
}

void Pair::close() {
  if (closed_) return;
  closed_ = true;
  // Pending writes and the connect complete with UV_ECANCELED and no longer touch the pair.
  client_.tcp.reset();
  server_.tcp.reset();
}

void Pair::onConnect(uv_connect_t* req, int status) noexcept {
  std::unique_ptr<uv_connect_t> owned(req);
  if (status == UV_ECANCELED) return;
  auto* self = static_cast<Pair*>(req->data);
  if (status != 0) {
    self->close();
    return;
  }
  uv_tcp_nodelay(self->server_.tcp.get(), 1);
  self->startReading(self->client_);
  self->startReading(self->server_);
}

void Pair::startReading(Side& side) {
  if (!closed_) uv_read_start(side.tcp.stream(), &Pair::onAlloc, &Pair::onRead);
}

void Pair::onAlloc(uv_handle_t*, std::size_t, uv_buf_t* buf) noexcept {
  buf->base = new (std::nothrow) char[kReadBuffer];
  buf->len = buf->base ? kReadBuffer : 0;
}

void Pair::onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
  std::unique_ptr<char[]> data(buf->base);
  auto* side = static_cast<Side*>(stream->data);
  if (side == nullptr || nread == 0) return;
  Pair* self = side->pair;
  if (nread < 0) {
    self->close();
    return;
  }
  self->forward(*side, std::move(data), static_cast<std::size_t>(nread));
}

void Pair::forward(Side& from, std::unique_ptr<char[]> data, std::size_t length) {
  Totals& totals = relay_.totals();
  if (from.toServer) {
    totals.c2sBytes += length;
    counter_.consume(std::string_view(data.get(), length));
    for (std::string& name : counter_.takeNames()) {
      ++totals.commandCount;
      ++totals.byName[std::move(name)];
    }
  } else {
    totals.s2cBytes += length;
  }
  Side& to = from.toServer ? server_ : client_;
  auto write = std::make_unique<Write>();
  write->data = std::move(data);
  write->from = &from;
  write->req.data = write.get();
  const uv_buf_t buf = uv_buf_init(write->data.get(), static_cast<unsigned>(length));
  uv_read_stop(from.tcp.stream());
  if (uv_write(&write->req, to.tcp.stream(), &buf, 1, &Pair::onWrite) != 0) {
    close();
    return;
  }
  write.release();  // freed in onWrite
}

void Pair::onWrite(uv_write_t* req, int status) noexcept {
  std::unique_ptr<Write> write(static_cast<Write*>(req->data));
  if (status == UV_ECANCELED) return;
  Pair* self = write->from->pair;
  if (status != 0) {
    self->close();
    return;
  }
  self->startReading(*write->from);
}

}  // namespace

int runRelay(const RelayOptions& options) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int status = 0;
  {
    Relay relay(options, &loop);
    status = relay.run();
  }
  // Let the close callbacks of the handles free their memory.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return status;
}

}  // namespace popbridge::bench
