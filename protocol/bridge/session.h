#pragma once

// One bridged session: a POP3 server over the IMAP maildrop, as a sans-I/O
// state machine.
//
// Inputs: client bytes (feedClient), upstream bytes (feedUpstream) and the
// outcome of I/O the session asked for (onUpstreamConnected, onTlsReady...).
// Outputs: calls on a SessionSink. Nothing here touches a socket, so whole
// sessions can be scripted in tests.
//
// The work is done by the parts it wires together: pop3/server.h speaks
// POP3, bridge/imap_maildrop.h maps it to IMAP, imap/client.h speaks IMAP.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/bridge/imap_maildrop.h"
#include "protocol/bridge/mailbox_options.h"
#include "protocol/imap/client.h"
#include "protocol/imap/sasl.h"
#include "protocol/log_severity.h"
#include "protocol/pop3/server.h"

namespace popbridge::protocol {

// The device's TCP connection, as the upstream should see it.
struct ClientEndpoints {
  std::string clientIp;  // IPv6 without brackets
  std::uint16_t clientPort = 0;
  std::string localIp;  // where the device connected to: popbridge's listener side
  std::uint16_t localPort = 0;
};

struct SessionOptions {
  bool tlsActive = false;           // the client connection is already encrypted
  bool stlsAvailable = false;       // the listener can upgrade with STLS
  bool allowPlaintextAuth = false;  // USER/PASS/AUTH before TLS
  bool upstreamStartTls = false;    // upgrade the IMAP connection with STARTTLS
  UpstreamLogin upstreamLogin = UpstreamLogin::Auto;
  // Sent upstream with ID (x-originating-ip...) so per-IP penalties and logs
  // see the device, not popbridge; unset: nothing is sent.
  std::optional<ClientEndpoints> forwardClient;
  std::string upstreamTagPrefix = "P";  // see ImapClientOptions::tagPrefix
  unsigned maxBadCommands = 10;
  std::uint32_t loginDelaySeconds = 0;  // RFC 2449 LOGIN-DELAY announced in CAPA; 0: none
  MailboxOptions mailbox;
  std::size_t readAheadLimit = 0;          // see ImapMaildropOptions::readAheadLimit
  SnapshotStore* snapshotCache = nullptr;  // see ImapMaildropOptions
  std::string snapshotScope;
  UidlMapStore* uidlMap = nullptr;  // see ImapMaildropOptions
};

// Everything the three parts ask of the outside world.
class SessionSink : public Pop3ServerSink, public ImapClientSink, public MaildropSink {
 public:
  // One log for all three parts.
  void log(LogSeverity severity, std::string_view message) override = 0;
};

class Pop3Session {
 public:
  using State = Pop3Server::State;

  Pop3Session(SessionOptions options, SessionSink& sink);
  Pop3Session(const Pop3Session&) = delete;
  Pop3Session& operator=(const Pop3Session&) = delete;

  // Sends the greeting.
  void start() { server_.start(); }

  // Parses and runs as many complete client commands from `data` as the
  // session can take now; returns the bytes consumed. Stops while a command
  // waits for the upstream, so pipelined commands run strictly in order and
  // the caller keeps the rest (bounded by pausing its reads).
  std::size_t feedClient(std::string_view data) { return server_.feedClient(data); }
  // True when the next command can run immediately.
  bool readyForCommand() const { return server_.readyForCommand(); }

  // Runs all upstream bytes; body chunks go to the client as they arrive.
  void feedUpstream(std::string_view data) { maildrop_.feedUpstream(data); }

  void onCredentials(std::optional<UpstreamCredentials> credentials) {
    maildrop_.onCredentials(std::move(credentials));
  }
  void onCredentialsFailed(RespCode code, std::string_view reason) {
    maildrop_.onCredentialsFailed(code, reason);
  }
  // The answer to SessionSink::claimMaildrop.
  void onMaildropClaimed(MaildropClaim claim) { maildrop_.onMaildropClaimed(claim); }
  // The answer to SessionSink::confirmUpdate.
  void onUpdateConfirmed(bool confirmed) { maildrop_.onUpdateConfirmed(confirmed); }
  void onUpstreamConnected() { maildrop_.onUpstreamConnected(); }
  void onUpstreamFailed(std::string_view reason) { maildrop_.onUpstreamFailed(reason); }
  void onUpstreamTlsReady() { maildrop_.onUpstreamTlsReady(); }
  void onClientTlsReady() { server_.onClientTlsReady(); }
  void onDelayElapsed() { server_.onDelayElapsed(); }
  void onUpstreamClosed(std::string_view reason) { maildrop_.onUpstreamClosed(reason); }
  void onUpstreamTimeout() { maildrop_.onUpstreamTimeout(); }
  void onClientClosed(std::string_view reason) { server_.onClientClosed(reason); }
  void onIdleTimeout() { server_.onIdleTimeout(); }
  // Shutdown: see Pop3Server::drain(), drainDeadline() and abort().
  void drain() { server_.drain(); }
  void drainDeadline() { server_.drainDeadline(); }
  void abort(std::string_view reason) { server_.abort(reason); }

  State state() const { return server_.state(); }
  bool closed() const { return server_.closed(); }
  // True while an upstream reply is awaited (the command timer runs).
  bool awaitingUpstream() const { return !closed() && maildrop_.awaitingUpstream(); }
  // True until the upstream greeting arrived: that wait belongs to connecting
  // (connect_timeout), not to a command.
  bool awaitingGreeting() const { return !closed() && maildrop_.awaitingGreeting(); }
  // A read-ahead holds its limit: pause upstream reads until this turns false.
  bool readAheadFull() const { return maildrop_.readAheadFull(); }
  // True while a message body is being streamed to the client.
  bool streamingBody() const { return server_.streamingBody(); }
  const SessionStats& stats() const { return server_.stats(); }
  const std::string& endReason() const { return server_.endReason(); }

 private:
  ImapMaildrop maildrop_;
  Pop3Server server_;
};

}  // namespace popbridge::protocol
