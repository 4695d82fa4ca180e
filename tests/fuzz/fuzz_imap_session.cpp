// Whole POP3 sessions against an IMAP server that speaks well-formed IMAP
// but lies with its numbers: EXISTS, sequence numbers, UIDs, RFC822.SIZE,
// UIDVALIDITY and literal sizes are drawn from a table of hostile values
// (0, 2^31, 2^32-1, 2^64-1, ...) or taken raw from the input, and replies
// carry the right tag so the session gets past the login. Random bytes
// alone rarely get that far (fuzz_pop3_session covers them).
//
// It must never crash, never allocate by a count from the wire (libFuzzer's
// malloc limit turns such an allocation into a failure), never send a
// deleting command outside UPDATE or a bare EXPUNGE, and never write to the
// client after closing it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/bridge/session.h"

namespace {

using namespace popbridge::protocol;

void require(bool condition) {
  if (!condition) std::abort();
}

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // A hostile value from the table, or eight raw bytes.
  std::uint64_t number() {
    static constexpr std::uint64_t kHostile[] = {0,
                                                 1,
                                                 2,
                                                 3,
                                                 7,
                                                 255,
                                                 65535,
                                                 65536,
                                                 0x7fffffffULL,
                                                 0x80000000ULL,
                                                 0xfffffffeULL,
                                                 0xffffffffULL,
                                                 0x100000000ULL,
                                                 1ULL << 53,
                                                 0x7fffffffffffffffULL,
                                                 std::numeric_limits<std::uint64_t>::max()};
    std::uint8_t pick = byte();
    if (pick < 240) return kHostile[pick % std::size(kHostile)];
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value = value << 8 | byte();
    return value;
  }
  std::string_view bytes(std::size_t max) {
    std::size_t n = std::min<std::size_t>(byte() % (max + 1), size_ - std::min(pos_, size_));
    std::string_view out(reinterpret_cast<const char*>(data_) + pos_, n);
    pos_ += n;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

class Sink : public SessionSink {
 public:
  void sendToClient(std::string_view) override { require(!clientClosed); }
  void sendToUpstream(std::string_view bytes) override {
    std::string_view line = bytes;
    tag = std::string(line.substr(0, line.find(' ')));
    bool deleting = line.find(" STORE ") != std::string_view::npos ||
                    line.find(" EXPUNGE") != std::string_view::npos ||
                    line.find(" MOVE ") != std::string_view::npos;
    if (deleting) require(session != nullptr && session->state() == Pop3Session::State::Update);
    if (line.find(" EXPUNGE") != std::string_view::npos) {
      require(line.find("UID EXPUNGE") != std::string_view::npos);
    }
    if (line.find("{") != std::string_view::npos) literalPending = true;
  }
  void resolveCredentials(std::string_view, std::string_view) override { resolvePending = true; }
  void claimMaildrop(const MaildropClaimRequest&) override {
    if (session != nullptr) session->onMaildropClaimed(MaildropClaim::Granted);
  }
  void connectUpstream() override { connectPending = true; }
  void startUpstreamTls() override {}
  void startClientTls() override {}
  void startAuthDelay() override { delayPending = true; }
  void closeUpstream() override {}
  void closeClient(std::string_view) override { clientClosed = true; }
  void log(LogSeverity, std::string_view) override {}

  Pop3Session* session = nullptr;
  std::string tag;
  bool clientClosed = false;
  bool resolvePending = false, connectPending = false, delayPending = false;
  bool literalPending = false;
};

std::string n(std::uint64_t value) {
  return std::to_string(value);
}

constexpr std::string_view kCommands[] = {"STAT", "LIST", "UIDL", "RSET", "NOOP", "LAST", "QUIT"};
constexpr std::string_view kNumbered[] = {"LIST", "UIDL", "RETR", "DELE"};
constexpr std::string_view kSections[] = {"", "HEADER", "TEXT", "TEXT]<0>", "TEXT]<65536>"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  SessionOptions options;
  options.allowPlaintextAuth = true;
  std::uint8_t flags = in.byte();
  options.mailbox.onDelete = static_cast<DeletePolicy>(flags % 5);
  options.mailbox.maxMessages = (flags & 0x80) ? static_cast<std::uint32_t>(in.number()) : 0;
  // Read-ahead on most runs, with a limit small enough to be reached.
  options.readAheadLimit = (flags & 0x40) ? 0 : 16 + (flags & 0x3f) * 64;
  Sink sink;
  Pop3Session session(options, sink);
  sink.session = &session;
  session.start();
  session.feedClient("USER alice\r\nPASS secret\r\n");
  if (sink.resolvePending) session.onCredentials(UpstreamCredentials{"alice", "secret", {}});
  if (sink.connectPending) session.onUpstreamConnected();
  session.feedUpstream("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ UIDPLUS MOVE AUTH=PLAIN] hi\r\n");

  while (!in.done() && !session.closed()) {
    std::string line;
    switch (in.byte() % 14) {
      case 0:
        line = std::string(kCommands[in.byte() % std::size(kCommands)]) + "\r\n";
        session.feedClient(line);
        break;
      case 1:
        line = std::string(kNumbered[in.byte() % std::size(kNumbered)]) + " " + n(in.number()) +
               "\r\n";
        session.feedClient(line);
        break;
      case 2:
        session.feedClient("TOP " + n(in.number()) + " " + n(in.number()) + "\r\n");
        break;
      case 3: {
        static constexpr std::string_view kStatus[] = {"OK", "NO", "BAD", "OK [EXPUNGEISSUED]",
                                                       "NO [EXPUNGEISSUED]"};
        session.feedUpstream(sink.tag + " " + std::string(kStatus[in.byte() % 5]) + " done\r\n");
        break;
      }
      case 4:
        session.feedUpstream("* " + n(in.number()) + " EXISTS\r\n");
        break;
      case 5:
        session.feedUpstream("* " + n(in.number()) + " FETCH (UID " + n(in.number()) +
                             " RFC822.SIZE " + n(in.number()) + " FLAGS (" +
                             (in.byte() & 1 ? "\\Deleted" : "\\Seen") + "))\r\n");
        break;
      case 6: {
        std::string_view section = kSections[in.byte() % std::size(kSections)];
        std::string item = section.find(']') != std::string_view::npos
                               ? "BODY[" + std::string(section)
                               : "BODY[" + std::string(section) + "]";
        session.feedUpstream("* " + n(in.number()) + " FETCH (UID " + n(in.number()) + " " + item +
                             " {" + n(in.number()) + "}\r\n");
        session.feedUpstream(in.bytes(64));
        break;
      }
      case 7:
        session.feedUpstream(in.bytes(64));
        break;
      case 8:
        session.feedUpstream("* OK [UIDVALIDITY " + n(in.number()) + "] x\r\n");
        break;
      case 9:
        session.feedUpstream("* " + n(in.number()) + " EXPUNGE\r\n");
        break;
      case 10:
        // The broken literal: our own completion where the body should be.
        session.feedUpstream(")\r\n" + sink.tag + " OK done\r\n");
        break;
      case 11:
        if (sink.literalPending) session.feedUpstream("+ go\r\n");
        sink.literalPending = false;
        break;
      case 12:
        if (sink.delayPending) session.onDelayElapsed();
        sink.delayPending = false;
        break;
      case 13:
        switch (in.byte() % 4) {
          case 0:
            session.onUpstreamTimeout();
            break;
          case 1:
            session.onUpstreamClosed("reset");
            break;
          case 2:
            session.onClientClosed("reset");
            require(session.closed());
            break;
          default:
            session.onIdleTimeout();
            break;
        }
        break;
    }
  }
  return 0;
}
