// The POP3 session state machine under arbitrary client bytes, upstream bytes
// and I/O outcomes. Each input byte pair picks an action; the session must
// never crash, never send a deleting IMAP command except after a QUIT, and
// never write to a peer after it closed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/bridge/session.h"

namespace {

using namespace popbridge::protocol;

void require(bool condition) {
  if (!condition) std::abort();
}

class FuzzSink : public SessionSink {
 public:
  void sendToClient(std::string_view bytes) override {
    require(!clientClosed);
    clientBytes += bytes.size();
  }
  void sendToUpstream(std::string_view bytes) override {
    lastUpstream.assign(bytes);
    bool deleting = lastUpstream.find(" STORE ") != std::string::npos ||
                    lastUpstream.find(" EXPUNGE") != std::string::npos ||
                    lastUpstream.find(" MOVE ") != std::string::npos;
    // RFC 1939: nothing is deleted outside the UPDATE state that QUIT enters.
    if (deleting) require(session != nullptr && session->state() == Pop3Session::State::Update);
    if (lastUpstream.find(" EXPUNGE") != std::string::npos) {
      require(lastUpstream.find("UID EXPUNGE") != std::string::npos);  // never a bare EXPUNGE
    }
  }
  void resolveCredentials(std::string_view, std::string_view) override { resolvePending = true; }
  void claimMaildrop(const MaildropClaimRequest&) override { claimPending = true; }
  void connectUpstream() override { connectPending = true; }
  void startUpstreamTls() override { upstreamTlsPending = true; }
  void startClientTls() override { clientTlsPending = true; }
  void startAuthDelay() override { delayPending = true; }
  void closeUpstream() override {}
  void closeClient(std::string_view) override { clientClosed = true; }
  void log(LogSeverity, std::string_view) override {}

  const Pop3Session* session = nullptr;
  bool clientClosed = false;
  bool resolvePending = false, connectPending = false, upstreamTlsPending = false;
  bool clientTlsPending = false, delayPending = false, claimPending = false;
  std::size_t clientBytes = 0;
  std::string lastUpstream;
};

// A scripted login prefix makes the fuzzer reach TRANSACTION quickly.
constexpr std::string_view kGreeting =
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] ready\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  SessionOptions options;
  options.allowPlaintextAuth = (data[0] & 1) != 0;
  options.stlsAvailable = (data[0] & 2) != 0;
  options.upstreamStartTls = (data[0] & 4) != 0;
  options.mailbox.onDelete = static_cast<DeletePolicy>((data[0] >> 3) % 5);
  options.mailbox.maxMessages = (data[0] & 0x80) ? 2 : 0;
  FuzzSink sink;
  Pop3Session session(options, sink);
  sink.session = &session;
  session.start();

  std::size_t pos = 1;
  while (pos + 1 < size && !session.closed()) {
    std::uint8_t op = data[pos];
    std::size_t length = data[pos + 1];
    pos += 2;
    std::string_view chunk(reinterpret_cast<const char*>(data) + pos, std::min(length, size - pos));
    pos += chunk.size();
    switch (op % 12) {
      case 0:
      case 1:
      case 2: {
        std::size_t consumed = session.feedClient(chunk);
        require(consumed <= chunk.size());
        break;
      }
      case 3:
      case 4:
      case 5:
        session.feedUpstream(chunk);
        break;
      case 6:
        if (sink.resolvePending) {
          sink.resolvePending = false;
          if (chunk.empty()) {
            session.onCredentials(std::nullopt);
          } else {
            session.onCredentials(UpstreamCredentials{"user", std::string(chunk), std::nullopt});
          }
        } else if (sink.claimPending) {
          // Granted, in use or too soon; a refusal must never let a SELECT through.
          sink.claimPending = false;
          auto claim = static_cast<MaildropClaim>(chunk.size() % 3);
          session.onMaildropClaimed(claim);
          if (claim != MaildropClaim::Granted) {
            require(sink.lastUpstream.find(" SELECT ") == std::string::npos &&
                    sink.lastUpstream.find(" EXAMINE ") == std::string::npos);
          }
        }
        break;
      case 7:
        if (sink.connectPending) {
          sink.connectPending = false;
          if (chunk.empty()) {
            session.onUpstreamFailed("refused");
          } else {
            session.onUpstreamConnected();
            session.feedUpstream(kGreeting);
          }
        }
        break;
      case 8:
        if (sink.upstreamTlsPending) session.onUpstreamTlsReady();
        if (sink.clientTlsPending) session.onClientTlsReady();
        sink.upstreamTlsPending = sink.clientTlsPending = false;
        break;
      case 9:
        if (sink.delayPending) session.onDelayElapsed();
        sink.delayPending = false;
        break;
      case 10:
        session.onUpstreamTimeout();
        break;
      case 11:
        if (chunk.size() % 3 == 0) {
          session.onUpstreamClosed("reset");
        } else if (chunk.size() % 3 == 1) {
          session.onClientClosed("reset");
          require(session.closed());
        } else {
          session.onIdleTimeout();
        }
        break;
    }
  }
  return 0;
}
