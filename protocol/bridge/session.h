#pragma once

// The POP3 side of one bridged session, as a sans-I/O state machine.
//
// Inputs: client bytes (feedClient), upstream bytes (feedUpstream) and the
// outcome of I/O the session asked for (onUpstreamConnected, onTlsReady...).
// Outputs: calls on a SessionSink. Nothing here touches a socket, so whole
// sessions can be scripted in tests.
//
// Three numberings are kept apart:
//   msn    POP3 message number, 1..n, frozen at login (RFC 1939);
//   index  msn - 1, the position in the snapshot vectors;
//   uid    the IMAP UID, the only id ever sent upstream. UIDs are never
//          reused within a UIDVALIDITY, so a command on a UID another client
//          expunged touches nothing instead of touching the wrong message.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bridge/mailbox_options.h"
#include "protocol/imap/sasl.h"
#include "protocol/log_severity.h"
#include "protocol/pop3/dot_stuffer.h"
#include "protocol/imap/command.h"
#include "protocol/imap/parser.h"
#include "protocol/pop3/parser.h"
#include "protocol/pop3/reply.h"
#include "protocol/pop3/uidl_format.h"

namespace popbridge::protocol {


struct SessionOptions {
  bool tlsActive = false;           // the client connection is already encrypted
  bool stlsAvailable = false;       // the listener can upgrade with STLS
  bool allowPlaintextAuth = false;  // USER/PASS/AUTH before TLS
  bool upstreamStartTls = false;    // upgrade the IMAP connection with STARTTLS
  UpstreamLogin upstreamLogin = UpstreamLogin::Auto;
  unsigned maxBadCommands = 10;
  MailboxOptions mailbox;
};

// What the local account layer (or pass-through) decided for a login.
struct UpstreamCredentials {
  std::string user;
  std::string password;
  std::optional<MailboxOptions> mailbox;  // per-account overrides
};

class SessionSink {
 public:
  virtual ~SessionSink() = default;
  virtual void sendToClient(std::string_view bytes) = 0;
  // Same, but may take the buffer and hand back an empty one, so streaming a
  // body through the same string needs no copy and no allocation per chunk.
  virtual void sendToClientAndRecycle(std::string& bytes) {
    sendToClient(bytes);
    bytes.clear();
  }
  virtual void sendToUpstream(std::string_view bytes) = 0;
  // Decide whether user/password may log in and with which upstream
  // credentials; answer with Pop3Session::onCredentials (now or later).
  virtual void resolveCredentials(std::string_view user, std::string_view password) = 0;
  // Open the upstream connection (implicit TLS included); answer with
  // onUpstreamConnected or onUpstreamFailed.
  virtual void connectUpstream() = 0;
  // Called once STARTTLS was accepted upstream; answer with onUpstreamTlsReady.
  virtual void startUpstreamTls() = 0;
  // Called after "+OK Begin TLS" was queued; answer with onClientTlsReady.
  virtual void startClientTls() = 0;
  // Hold the next reply back for the failed-login delay; answer with
  // onDelayElapsed. Slows down password guessing.
  virtual void startAuthDelay() = 0;
  virtual void closeUpstream() = 0;
  // The session is over: flush what was sent to the client, then close it.
  virtual void closeClient(std::string_view reason) = 0;
  virtual void log(LogSeverity severity, std::string_view message) = 0;
  // True while the client's unsent output is above its high watermark. The
  // session then takes no further commands, so pipelined LISTs cannot pile up
  // output without bound; the caller feeds the rest once the client drains.
  virtual bool clientCongested() const { return false; }
};

struct SessionStats {
  std::string user;  // the POP3 login name, once given
  std::uint32_t messages = 0;
  std::uint32_t retrieved = 0;
  std::uint32_t deleted = 0;  // applied upstream at QUIT
  std::uint64_t bodyBytes = 0;
};

class Pop3Session {
 public:
  enum class State : std::uint8_t { Authorization, LoggingIn, Transaction, Update, Closed };

  Pop3Session(SessionOptions options, SessionSink& sink);

  // Sends the greeting.
  void start();

  // Parses and runs as many complete client commands from `data` as the
  // session can take now; returns the bytes consumed. Stops while a command
  // waits for the upstream, so pipelined commands run strictly in order and
  // the caller keeps the rest (bounded by pausing its reads).
  std::size_t feedClient(std::string_view data);
  // True when the next command can run immediately.
  bool readyForCommand() const;

  // Runs all upstream bytes; body chunks go to the client as they arrive.
  void feedUpstream(std::string_view data);

  void onCredentials(std::optional<UpstreamCredentials> credentials);
  void onUpstreamConnected();
  void onUpstreamFailed(std::string_view reason);
  void onUpstreamTlsReady();
  void onClientTlsReady();
  void onDelayElapsed();
  void onUpstreamClosed(std::string_view reason);
  void onUpstreamTimeout();
  void onClientClosed(std::string_view reason);
  void onIdleTimeout();
  // Shutdown: close without applying any pending DELE.
  void abort(std::string_view reason);

  State state() const { return state_; }
  bool closed() const { return state_ == State::Closed; }
  // True while an upstream reply is awaited (the command timer runs).
  bool awaitingUpstream() const {
    return op_ != Op::None && op_ != Op::AuthDelay && op_ != Op::ClientTls && op_ != Op::Resolving;
  }
  // True until the upstream greeting arrived: that wait belongs to connecting
  // (connect_timeout), not to a command.
  bool awaitingGreeting() const { return op_ == Op::Connecting || op_ == Op::Greeting; }
  // True while a message body is being streamed to the client.
  bool streamingBody() const { return bodyStarted_ && !bodyDone_; }
  const SessionStats& stats() const { return stats_; }
  const std::string& endReason() const { return endReason_; }

 private:
  enum class Op : std::uint8_t {
    None,
    Resolving,
    Connecting,
    Greeting,
    StartTls,
    UpstreamTls,
    Capability,
    Login,
    PostLoginCapability,
    Select,
    Snapshot,
    Fetch,
    UpdateStore,
    UpdateExpunge,
    UpdateCopy,
    UpdateMove,
    AuthDelay,
    ClientTls,
  };
  enum class Retrieval : std::uint8_t { Retr, Top };

  // Client side.
  void runCommand(const Pop3Command& command);
  void authorizationCommand(const Pop3Command& command);
  void transactionCommand(const Pop3Command& command);
  void saslResponse(const Pop3Command& command);
  void beginLogin(std::string user, std::string_view password);
  void authFailure(std::string_view text, RespCode code);
  void resetUpstream();
  void enterTransaction();
  void onFetchDone(const ImapEvent& event);
  void sendBodyStatus(std::uint64_t literalSize);
  void logoutAndFinish(std::string_view reason);
  void flush();
  void wipeSegments();
  bool plaintextAuthAllowed() const;
  void replyCapa();
  void badCommand(std::string_view text, RespCode code = RespCode::None);
  std::optional<std::size_t> lookup(const Pop3Command& command);
  void startRetrieval(std::size_t index, Retrieval kind, std::uint64_t lines);
  void startUpdate();
  void finishUpdate();

  // Upstream side.
  void onImapEvent(const ImapEvent& event);
  void onTagged(const ImapEvent& event);
  void onBody(const ImapEvent& event);
  void sendImap(const ImapCommand& command, Op op);
  void sendCapabilityOrLogin();
  void sendLogin();
  void sendSelect();
  void sendSnapshot();
  void applyCapabilities(const std::vector<std::string>& words);
  void loginFailed(const ImapEvent& event);
  void upstreamBroken(std::string_view reason);
  void nextUpdateStep();
  void updateFailed(const ImapEvent& event);
  std::string markedUidSet() const;

  void send(std::string_view bytes) { sink_.sendToClient(bytes); }
  void reply(std::string_view text);
  void replyErr(std::string_view text, RespCode code = RespCode::None);
  void finish(std::string_view reason);
  void wipeSecret();

  SessionOptions options_;
  SessionSink& sink_;
  State state_ = State::Authorization;
  Op op_ = Op::None;

  Pop3Parser parser_;
  ImapResponseParser imapParser_;
  ImapCommandBuilder builder_;
  ImapEvent event_;

  // AUTHORIZATION.
  std::string pendingUser_;  // from USER, waiting for PASS
  enum class SaslStep : std::uint8_t { None, PlainResponse, LoginUser, LoginPassword };
  SaslStep sasl_ = SaslStep::None;
  std::string saslUser_;
  bool tlsActive_ = false;
  unsigned badCommands_ = 0;
  std::string delayedReply_;  // sent when the failed-login delay elapses
  bool closeAfterDelay_ = false;
  unsigned failedLogins_ = 0;
  bool discardClientInput_ = false;

  // Upstream login, credentials held only until they are sent.
  UpstreamCredentials upstream_;
  std::string pendingTag_;
  std::vector<std::string> pendingSegments_;  // after a synchronizing literal
  std::size_t nextSegment_ = 0;
  bool capsKnown_ = false;
  bool capStartTls_ = false, capLoginDisabled_ = false, capAuthPlain_ = false;
  bool capSaslIr_ = false, capLiteralPlus_ = false, capUidPlus_ = false, capMove_ = false;
  bool upstreamTlsDone_ = false;
  bool discardUpstreamInput_ = false;  // the rest of the read that carried the STARTTLS OK

  // Snapshot (TRANSACTION).
  std::uint32_t exists_ = 0;
  std::uint32_t uidValidity_ = 0;
  bool uidValidityChanged_ = false;
  std::vector<std::uint32_t> uids_;
  std::vector<std::uint64_t> sizes_;
  std::vector<bool> deleted_;
  std::uint32_t lastAccessed_ = 0;  // LAST (RFC 1725)

  // The retrieval in progress.
  std::size_t fetchIndex_ = 0;
  Retrieval fetchKind_ = Retrieval::Retr;
  std::optional<TopLimiter> top_;
  DotStuffer stuffer_;
  bool bodyStarted_ = false;
  bool bodyDone_ = false;
  bool ignoringBody_ = false;
  bool emptyBodyPending_ = false;  // an empty literal whose meaning the tagged reply decides
  std::string out_;

  // UPDATE.
  DeletePolicy effectivePolicy_ = DeletePolicy::Flag;
  std::string updateSet_;  // the marked UIDs, as an IMAP set
  std::vector<Op> updateSteps_;
  std::size_t updateStep_ = 0;

  SessionStats stats_;
  std::string endReason_;
};

}  // namespace popbridge::protocol
