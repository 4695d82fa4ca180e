// The POP3 server state machine over a maildrop whose answers the input
// chooses, in any order and at any time. The server must never crash, never
// ask the maildrop for a message outside the snapshot or for two things at
// once, never apply an update except after QUIT, and never write to the
// client after it closed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pop3/server.h"

namespace {

using namespace popbridge::protocol;

void require(bool condition) {
  if (!condition) std::abort();
}

class FuzzMaildrop : public Maildrop {
 public:
  enum class Pending { None, Open, Fetch, Update };
  const Pop3Server* server = nullptr;
  Pending pending = Pending::None;
  std::size_t count = 0;
  bool opened = false;
  bool closed = false;

  void open(std::string_view, std::string_view) override {
    require(pending == Pending::None && !opened && !closed);
    pending = Pending::Open;
  }
  std::size_t messageCount() const override { return count; }
  std::uint64_t messageSize(std::size_t index) const override {
    require(opened && index < count);
    return index * 7 + 1;
  }
  void appendUidl(std::string& out, std::size_t index) const override {
    require(opened && index < count);
    out += std::to_string(index);
  }
  void fetch(std::size_t index, std::optional<std::uint64_t>) override {
    require(opened && !closed && pending == Pending::None && index < count);
    pending = Pending::Fetch;
  }
  void update(std::span<const std::size_t> indexes) override {
    require(opened && !closed && pending == Pending::None);
    require(server->state() == Pop3Server::State::Update);
    for (std::size_t i = 0; i < indexes.size(); ++i) {
      require(indexes[i] < count);
      if (i > 0) require(indexes[i - 1] < indexes[i]);
    }
    pending = Pending::Update;
  }
  void close() override {
    closed = true;
    pending = Pending::None;
  }
};

class FuzzSink : public Pop3ServerSink {
 public:
  bool clientClosed = false;
  bool tlsPending = false;
  bool delayPending = false;
  void sendToClient(std::string_view) override { require(!clientClosed); }
  void startClientTls() override { tlsPending = true; }
  void startAuthDelay() override { delayPending = true; }
  void closeClient(std::string_view) override { clientClosed = true; }
  void log(LogSeverity, std::string_view) override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  Pop3ServerOptions options;
  options.allowPlaintextAuth = (data[0] & 1) != 0;
  options.stlsAvailable = (data[0] & 2) != 0;
  options.tlsActive = (data[0] & 4) != 0;
  FuzzSink sink;
  FuzzMaildrop maildrop;
  Pop3Server server(options, sink, maildrop);
  maildrop.server = &server;
  server.start();

  std::size_t pos = 1;
  while (pos + 1 < size && !server.closed()) {
    std::uint8_t op = data[pos];
    std::size_t length = data[pos + 1];
    pos += 2;
    std::string_view chunk(reinterpret_cast<const char*>(data) + pos, std::min(length, size - pos));
    pos += chunk.size();
    using Pending = FuzzMaildrop::Pending;
    switch (op % 10) {
      case 0:
      case 1:
      case 2:
        require(server.feedClient(chunk) <= chunk.size());
        break;
      case 3:  // the maildrop answers an open
        if (maildrop.pending == Pending::Open) {
          maildrop.pending = Pending::None;
          if (chunk.empty()) {
            server.onMaildropOpenFailed({static_cast<RespCode>(length % 5), "no", {}});
          } else {
            maildrop.count = length % 9;
            maildrop.opened = true;
            server.onMaildropOpened();
          }
        }
        break;
      case 4:  // message content, in any order the input likes
        switch (length % 5) {
          case 0: server.onMessageBegin(); break;
          case 1: server.onMessageData(chunk); break;
          case 2: server.onMessageEnd(); break;
          case 3:
            if (maildrop.pending == Pending::Fetch) maildrop.pending = Pending::None;
            server.onFetchDone();
            break;
          case 4:
            if (maildrop.pending == Pending::Fetch) maildrop.pending = Pending::None;
            server.onMessageFailed({RespCode::SysTemp, "gone", {}});
            break;
        }
        break;
      case 5:
        if (maildrop.pending == Pending::Update) {
          maildrop.pending = Pending::None;
          if (chunk.empty()) {
            server.onUpdateFailed({RespCode::SysTemp, "failed", "quit; failed"});
          } else {
            server.onUpdated(static_cast<std::uint32_t>(length));
          }
        }
        break;
      case 6:
        maildrop.pending = Pending::None;
        if (chunk.size() % 2 == 0) {
          server.onMaildropLost("lost");
        } else {
          server.onMessageCut("cut");
        }
        break;
      case 7:
        if (sink.tlsPending) server.onClientTlsReady();
        if (sink.delayPending) server.onDelayElapsed();
        sink.tlsPending = sink.delayPending = false;
        break;
      case 8:
        server.onIdleTimeout();
        break;
      case 9:
        server.onClientClosed("reset");
        require(server.closed());
        break;
    }
  }
  if (server.closed()) require(maildrop.closed && sink.clientClosed);
  return 0;
}
