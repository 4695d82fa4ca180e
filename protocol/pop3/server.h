#pragma once

// The POP3 server side of a session (RFC 1939, 2449, 2595, 5034), as a
// sans-I/O state machine over an abstract Maildrop.
//
// Inputs: client bytes (feedClient), the outcome of I/O it asked for
// (onClientTlsReady, onDelayElapsed, timeouts) and MaildropEvents.
// Outputs: calls on a Pop3ServerSink and on the Maildrop. It knows nothing of
// IMAP: RFC 1939 behaviour is testable with an in-memory maildrop.
//
// To add a POP3 command: a verb in pop3/command.h, its syntax in
// pop3/parser.cpp, and a row in the command table of pop3/server.cpp.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/log_severity.h"
#include "protocol/pop3/command.h"
#include "protocol/pop3/dot_stuffer.h"
#include "protocol/pop3/maildrop.h"
#include "protocol/pop3/parser.h"
#include "protocol/pop3/reply.h"

namespace popbridge::protocol {

struct Pop3ServerOptions {
  bool tlsActive = false;           // the client connection is already encrypted
  bool stlsAvailable = false;       // the listener can upgrade with STLS
  bool allowPlaintextAuth = false;  // USER/PASS/AUTH before TLS
  unsigned maxBadCommands = 10;
  // RFC 2449 LOGIN-DELAY: the least seconds between one user's logins, announced in CAPA in
  // both states; the maildrop enforces it. 0: nothing is announced.
  std::uint32_t loginDelaySeconds = 0;
};

class Pop3ServerSink {
 public:
  virtual ~Pop3ServerSink() = default;
  virtual void sendToClient(std::string_view bytes) = 0;
  // Same, but may take the buffer and hand back an empty one, so streaming a
  // body through the same string needs no copy and no allocation per chunk.
  virtual void sendToClientAndRecycle(std::string& bytes) {
    sendToClient(bytes);
    bytes.clear();
  }
  // Called after "+OK Begin TLS" was queued; answer with onClientTlsReady.
  virtual void startClientTls() = 0;
  // Hold the next reply back for the failed-login delay; answer with
  // onDelayElapsed. Slows down password guessing.
  virtual void startAuthDelay() = 0;
  // The session is over: flush what was sent to the client, then close it.
  virtual void closeClient(std::string_view reason) = 0;
  virtual void log(LogSeverity severity, std::string_view message) = 0;
  // True while the client's unsent output is above its high watermark. The
  // server then takes no further commands, so pipelined LISTs cannot pile up
  // output without bound; the caller feeds the rest once the client drains.
  virtual bool clientCongested() const { return false; }

  // Events for metrics, with nothing to answer; the defaults ignore them.
  // A login (PASS, AUTH) ended: ok, or refused with `code`.
  virtual void noteLogin(bool ok, RespCode code) {
    (void)ok;
    (void)code;
  }
  // A RETR (top = false) or TOP (top = true) sent its whole message.
  virtual void noteRetrieved(bool top) { (void)top; }
  // QUIT could not apply the deletion of `count` messages marked with DELE.
  virtual void noteDeletionsRefused(std::uint32_t count) { (void)count; }
};

struct SessionStats {
  std::string user;  // the POP3 login name, once given
  std::uint32_t messages = 0;
  std::uint32_t retrieved = 0;
  std::uint32_t deleted = 0;  // applied at QUIT
  std::uint64_t bodyBytes = 0;
};

class Pop3Server final : public MaildropEvents {
 public:
  enum class State : std::uint8_t { Authorization, LoggingIn, Transaction, Update, Closed };

  // `maildrop` must outlive the server; it is not used before a login.
  Pop3Server(Pop3ServerOptions options, Pop3ServerSink& sink, Maildrop& maildrop);

  // Sends the greeting.
  void start();

  // Parses and runs as many complete client commands from `data` as the
  // server can take now; returns the bytes consumed. Stops while a command
  // waits for the maildrop, so pipelined commands run strictly in order and
  // the caller keeps the rest (bounded by pausing its reads).
  std::size_t feedClient(std::string_view data);
  // True when the next command can run immediately.
  bool readyForCommand() const;

  void onClientTlsReady();
  void onDelayElapsed();
  void onClientClosed(std::string_view reason);
  void onIdleTimeout();
  // Shutdown (SIGTERM) in two steps. drain(): a session that has not logged in (a login in
  // flight or a failed-login delay included) has nothing to lose: it gets "-ERR [SYS/TEMP]" and
  // is closed (during an STLS handshake only closed: no plaintext can go out then). A session in
  // TRANSACTION goes on serving its client, whose QUIT applies its deletions as ever; an UPDATE
  // already running goes on to its end.
  void drain();
  // The drain's deadline: a session still in TRANSACTION gets "-ERR [SYS/TEMP]" (mid-body only
  // the cut: after "+OK" no "-ERR" can follow) and is closed with nothing applied. An UPDATE
  // already running is left to finish: cut in half it would leave part of its deletions applied
  // (the upstream command timeout still bounds it).
  void drainDeadline();
  // Ends now, in any state, applying no pending DELE (a second SIGTERM, or no drain at all).
  void abort(std::string_view reason);

  State state() const { return state_; }
  bool closed() const { return state_ == State::Closed; }
  // True while a message's content is being sent to the client: after its
  // "+OK" no "-ERR" can follow, only a cut.
  bool streamingBody() const { return op_ == Op::Fetch && bodyStarted_ && !bodyDone_; }
  const SessionStats& stats() const { return stats_; }
  const std::string& endReason() const { return endReason_; }

  // MaildropEvents.
  void onMaildropOpened() override;
  void onMaildropOpenFailed(const MaildropError& error) override;
  void onMessageBegin() override;
  bool onMessageData(std::string_view data) override;
  void onMessageEnd() override;
  void onFetchDone() override;
  void onMessageFailed(const MaildropError& error) override;
  void onMessageCut(std::string_view reason) override;
  void onUpdated(std::uint32_t removed) override;
  void onUpdateFailed(const MaildropError& error) override;
  void onMaildropLost(std::string_view reason) override;

 private:
  enum class Op : std::uint8_t { None, Opening, Fetch, Update, AuthDelay, ClientTls };
  enum class SaslStep : std::uint8_t { None, PlainResponse, LoginUser, LoginPassword };
  struct CommandRow;

  static const CommandRow* findRow(Pop3Verb verb);
  void runCommand(const Pop3Command& command);

  // The command table's handlers.
  void cmdCapa(const Pop3Command& command);
  void cmdQuit(const Pop3Command& command);
  void cmdStls(const Pop3Command& command);
  void cmdUser(const Pop3Command& command);
  void cmdPass(const Pop3Command& command);
  void cmdApop(const Pop3Command& command);
  void cmdAuth(const Pop3Command& command);
  void cmdSaslResponse(const Pop3Command& command);
  void cmdStat(const Pop3Command& command);
  void cmdList(const Pop3Command& command);  // LIST and UIDL
  void cmdRetr(const Pop3Command& command);  // RETR and TOP
  void cmdDele(const Pop3Command& command);
  void cmdRset(const Pop3Command& command);
  void cmdNoop(const Pop3Command& command);
  void cmdLast(const Pop3Command& command);

  bool plaintextAuthAllowed() const;
  bool refusePlaintext();
  void startSasl(SaslStep step, std::string_view initial, std::string_view prompt);
  // Refuses with "-ERR [AUTH]" and a log line when a credential holds NUL,
  // CR or LF; true when it did.
  bool refuseBadCredential(std::string_view method, std::string_view user,
                           std::string_view password);
  void beginLogin(std::string_view method, std::string user, std::string_view password);
  void authFailure(std::string_view text, RespCode code);
  std::optional<std::size_t> lookup(const Pop3Command& command);
  std::optional<std::size_t> nextUndeleted(std::size_t index) const;
  void badCommand(std::string_view text, RespCode code = RespCode::None);
  void reply(std::string_view text);
  void replyErr(std::string_view text, RespCode code = RespCode::None);
  void flush();
  void finish(std::string_view reason);

  Pop3ServerOptions options_;
  Pop3ServerSink& sink_;
  Maildrop& maildrop_;
  State state_ = State::Authorization;
  Op op_ = Op::None;
  Pop3Parser parser_;

  // AUTHORIZATION.
  std::string pendingUser_;  // from USER, waiting for PASS
  SaslStep sasl_ = SaslStep::None;
  std::string saslUser_;
  bool tlsActive_ = false;
  unsigned badCommands_ = 0;
  std::string delayedReply_;  // sent when the failed-login delay elapses
  bool closeAfterDelay_ = false;
  unsigned failedLogins_ = 0;
  std::uint32_t markedAtQuit_ = 0;  // DELE'd messages QUIT asked the maildrop to remove
  bool discardClientInput_ = false;

  // TRANSACTION.
  std::vector<bool> deleted_;
  std::uint32_t lastAccessed_ = 0;  // LAST (RFC 1725)
  // Read-ahead (Maildrop::readAhead): a client that RETRs in order is told to the maildrop.
  bool listed_ = false;                  // a whole LIST or UIDL came after the last RETR
  std::optional<std::size_t> lastRetr_;  // the index of the last RETR
  bool sequential_ = false;              // the RETR in progress continues the order

  // The retrieval in progress.
  std::size_t fetchIndex_ = 0;
  bool fetchIsTop_ = false;
  std::optional<TopLimiter> top_;
  DotStuffer stuffer_;
  bool bodyStarted_ = false;
  bool bodyDone_ = false;
  std::string out_;

  SessionStats stats_;
  std::string endReason_;
};

}  // namespace popbridge::protocol
