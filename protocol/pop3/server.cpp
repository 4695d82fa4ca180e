#include "protocol/pop3/server.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "protocol/base64.h"
#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

constexpr unsigned kMaxFailedLogins = 3;

constexpr std::string_view kPlaintextRefused =
    "Plaintext authentication disallowed on non-secure connections; use STLS.";
constexpr std::string_view kNotLoggedIn =
    "Not logged in; this command needs USER/PASS or AUTH first.";
constexpr std::string_view kLoggedIn = "Already logged in.";
constexpr std::string_view kBadCredentialByte =
    "NUL, CR and LF are not allowed in user names and passwords.";

// The first byte no credential may hold, named for the log; empty when there
// is none. A NUL ends the string for some servers (Dovecot checked the part of
// "pw\0junk" before the NUL and let the login in), and CR or LF would end an
// IMAP line: a credential with one of them cannot reach the upstream intact.
std::string_view badCredentialByte(std::string_view text) {
  for (char c : text) {
    if (c == '\0') return "NUL";
    if (c == '\r') return "CR";
    if (c == '\n') return "LF";
  }
  return {};
}

// Sizes come from the upstream: a hostile one must not wrap a total around.
std::uint64_t addSaturating(std::uint64_t a, std::uint64_t b) {
  return b > std::numeric_limits<std::uint64_t>::max() - a
             ? std::numeric_limits<std::uint64_t>::max()
             : a + b;
}

}  // namespace

// Which states take a verb, and what a client hears in the other one.
struct Pop3Server::CommandRow {
  Pop3Verb verb;
  bool authorization;
  bool transaction;
  void (Pop3Server::*handler)(const Pop3Command&);
  std::string_view wrongState;
};

const Pop3Server::CommandRow* Pop3Server::findRow(Pop3Verb verb) {
  static constexpr CommandRow kTable[] = {
      {Pop3Verb::Capa, true, true, &Pop3Server::cmdCapa, {}},
      {Pop3Verb::Quit, true, true, &Pop3Server::cmdQuit, {}},
      {Pop3Verb::SaslResponse, true, true, &Pop3Server::cmdSaslResponse, {}},
      {Pop3Verb::Stls, true, false, &Pop3Server::cmdStls, "STLS is only allowed before login."},
      {Pop3Verb::User, true, false, &Pop3Server::cmdUser, kLoggedIn},
      {Pop3Verb::Pass, true, false, &Pop3Server::cmdPass, kLoggedIn},
      {Pop3Verb::Apop, true, false, &Pop3Server::cmdApop, kLoggedIn},
      {Pop3Verb::Auth, true, false, &Pop3Server::cmdAuth, kLoggedIn},
      {Pop3Verb::Stat, false, true, &Pop3Server::cmdStat, kNotLoggedIn},
      {Pop3Verb::List, false, true, &Pop3Server::cmdList, kNotLoggedIn},
      {Pop3Verb::Uidl, false, true, &Pop3Server::cmdList, kNotLoggedIn},
      {Pop3Verb::Retr, false, true, &Pop3Server::cmdRetr, kNotLoggedIn},
      {Pop3Verb::Top, false, true, &Pop3Server::cmdRetr, kNotLoggedIn},
      {Pop3Verb::Dele, false, true, &Pop3Server::cmdDele, kNotLoggedIn},
      {Pop3Verb::Rset, false, true, &Pop3Server::cmdRset, kNotLoggedIn},
      {Pop3Verb::Noop, false, true, &Pop3Server::cmdNoop, kNotLoggedIn},
      {Pop3Verb::Last, false, true, &Pop3Server::cmdLast, kNotLoggedIn},
  };
  for (const CommandRow& row : kTable) {
    if (row.verb == verb) return &row;
  }
  return nullptr;
}

Pop3Server::Pop3Server(Pop3ServerOptions options, Pop3ServerSink& sink, Maildrop& maildrop)
    : options_(options), sink_(sink), maildrop_(maildrop), tlsActive_(options.tlsActive) {}

void Pop3Server::start() {
  reply("popbridge ready.");
}

bool Pop3Server::readyForCommand() const {
  return (state_ == State::Authorization || state_ == State::Transaction) && op_ == Op::None;
}

std::size_t Pop3Server::feedClient(std::string_view data) {
  std::size_t total = 0;
  while (total < data.size() && readyForCommand() && !sink_.clientCongested()) {
    std::size_t consumed = 0;
    Pop3Parser::Result result = parser_.parse(data.substr(total), consumed);
    total += consumed;
    switch (result.status) {
      case Pop3Parser::Status::NeedMore:
        return total;
      case Pop3Parser::Status::Error:
        if (sasl_ != SaslStep::None) {
          sasl_ = SaslStep::None;
          parser_.expectSaslResponse(false);
        }
        badCommand(result.error);
        break;
      case Pop3Parser::Status::Command:
        runCommand(result.command);
        if (discardClientInput_) {
          // RFC 2595: whatever the client pipelined after STLS is dropped, so
          // no plaintext command can be injected into the TLS session.
          discardClientInput_ = false;
          return data.size();
        }
        break;
    }
  }
  return total;
}

void Pop3Server::runCommand(const Pop3Command& command) {
  const CommandRow* row = findRow(command.verb);
  if (row == nullptr) return badCommand("Unknown command.");
  bool allowed = state_ == State::Authorization ? row->authorization : row->transaction;
  if (!allowed) return badCommand(row->wrongState);
  (this->*row->handler)(command);
}

// --- Any state ---------------------------------------------------------------

void Pop3Server::cmdCapa(const Pop3Command&) {
  out_ += "+OK Capability list follows\r\n";
  appendMultiLine(out_, "CAPA");
  appendMultiLine(out_, "TOP");
  appendMultiLine(out_, "UIDL");
  appendMultiLine(out_, "RESP-CODES");
  appendMultiLine(out_, "AUTH-RESP-CODE");
  appendMultiLine(out_, "PIPELINING");
  if (state_ == State::Authorization) {
    // Clients that see USER or SASL PLAIN offered in the clear may send a
    // password in the clear; offer them only where a login can succeed.
    if (plaintextAuthAllowed()) {
      appendMultiLine(out_, "USER");
      appendMultiLine(out_, "SASL PLAIN LOGIN");
    }
    if (options_.stlsAvailable && !tlsActive_) appendMultiLine(out_, "STLS");
  }
  appendMultiLine(out_, "EXPIRE NEVER");
  if (options_.loginDelaySeconds != 0) {
    // The same for every user, so without RFC 2449's "USER" argument, in both states.
    appendMultiLine(out_, "LOGIN-DELAY " + std::to_string(options_.loginDelaySeconds));
  }
  appendMultiLine(out_, "IMPLEMENTATION popbridge");
  appendTerminator(out_);
  flush();
}

void Pop3Server::cmdQuit(const Pop3Command&) {
  if (state_ == State::Authorization) {
    reply("Logging out.");
    finish("client quit before login");
    return;
  }
  // RFC 1939 UPDATE: only now, and only on QUIT, are deletions applied.
  state_ = State::Update;
  op_ = Op::Update;
  std::vector<std::size_t> marked;
  for (std::size_t i = 0; i < deleted_.size(); ++i) {
    if (deleted_[i]) marked.push_back(i);
  }
  markedAtQuit_ = static_cast<std::uint32_t>(marked.size());
  maildrop_.update(marked);
}

// --- AUTHORIZATION -------------------------------------------------------------

bool Pop3Server::plaintextAuthAllowed() const {
  return tlsActive_ || options_.allowPlaintextAuth;
}

bool Pop3Server::refusePlaintext() {
  if (plaintextAuthAllowed()) return false;
  replyErr(kPlaintextRefused, RespCode::Auth);
  return true;
}

void Pop3Server::cmdStls(const Pop3Command&) {
  if (tlsActive_) return badCommand("TLS is already active.");
  if (!options_.stlsAvailable) return badCommand("STLS is not available on this listener.");
  reply("Begin TLS negotiation.");
  pendingUser_.clear();
  parser_.reset();
  discardClientInput_ = true;
  op_ = Op::ClientTls;
  sink_.startClientTls();
}

void Pop3Server::cmdUser(const Pop3Command& command) {
  if (refusePlaintext()) return;
  if (refuseBadCredential("USER", command.arg, {})) return;
  pendingUser_ = command.arg;
  reply("Send your password.");
}

void Pop3Server::cmdPass(const Pop3Command& command) {
  if (refusePlaintext()) return;
  if (pendingUser_.empty()) return badCommand("No user name given; send USER first.");
  std::string user = std::move(pendingUser_);
  pendingUser_.clear();
  beginLogin("USER/PASS", std::move(user), command.arg);
}

void Pop3Server::cmdApop(const Pop3Command&) {
  // The upstream login needs the password itself, which APOP never sends.
  replyErr("APOP is not supported; use USER/PASS or AUTH over TLS.");
}

void Pop3Server::cmdAuth(const Pop3Command& command) {
  if (refusePlaintext()) return;
  if (command.arg.empty()) {
    out_ += "+OK\r\n";
    appendMultiLine(out_, "PLAIN");
    appendMultiLine(out_, "LOGIN");
    appendTerminator(out_);
    flush();
    return;
  }
  if (command.arg == "PLAIN") {
    startSasl(SaslStep::PlainResponse, command.arg2, "+ \r\n");
  } else if (command.arg == "LOGIN") {
    startSasl(SaslStep::LoginUser, command.arg2, "+ VXNlcm5hbWU6\r\n");  // "Username:"
  } else {
    replyErr("Unsupported authentication mechanism.");
  }
}

void Pop3Server::startSasl(SaslStep step, std::string_view initial, std::string_view prompt) {
  sasl_ = step;
  if (!initial.empty()) {
    // RFC 5034: an initial response on the AUTH line; "=" is the empty one.
    Pop3Command response;
    response.verb = Pop3Verb::SaslResponse;
    response.arg = initial == "=" ? std::string() : std::string(initial);
    cmdSaslResponse(response);
    secureWipe(response.arg);
    return;
  }
  out_ += prompt;
  parser_.expectSaslResponse(true);
  flush();
}

void Pop3Server::cmdSaslResponse(const Pop3Command& command) {
  SaslStep step = sasl_;
  sasl_ = SaslStep::None;
  parser_.expectSaslResponse(false);
  if (step == SaslStep::None) return badCommand("Unexpected SASL response.");
  if (command.arg == "*") return replyErr("Authentication cancelled.");
  std::optional<std::string> decoded = base64Decode(command.arg);
  if (!decoded) return badCommand("Invalid base64 data in SASL response.");

  switch (step) {
    case SaslStep::PlainResponse: {
      // authzid NUL authcid NUL passwd (RFC 4616); a further NUL belongs to
      // the password, which then is refused like any credential holding one.
      std::string_view msg = *decoded;
      std::size_t first = msg.find('\0');
      std::size_t second = first == std::string_view::npos ? first : msg.find('\0', first + 1);
      if (second == std::string_view::npos) {
        secureWipe(*decoded);
        return badCommand("Malformed SASL PLAIN response.");
      }
      std::string user(msg.substr(first + 1, second - first - 1));
      std::string authzid(msg.substr(0, first));
      bool foreignAuthzid = !authzid.empty() && authzid != user;
      std::string password(msg.substr(second + 1));
      secureWipe(*decoded);
      if (user.empty()) return badCommand("Malformed SASL PLAIN response: empty user name.");
      if (refuseBadCredential("AUTH PLAIN", authzid, {})) {
        secureWipe(password);
        return;
      }
      if (foreignAuthzid) {
        secureWipe(password);
        return replyErr("Logging in as another user is not supported.", RespCode::Auth);
      }
      beginLogin("AUTH PLAIN", std::move(user), password);
      secureWipe(password);
      return;
    }
    case SaslStep::LoginUser:
      if (decoded->empty()) return badCommand("Empty user name.");
      if (refuseBadCredential("AUTH LOGIN", *decoded, {})) return;
      saslUser_ = std::move(*decoded);
      sasl_ = SaslStep::LoginPassword;
      parser_.expectSaslResponse(true);
      out_ += "+ UGFzc3dvcmQ6\r\n";  // "Password:"
      flush();
      return;
    case SaslStep::LoginPassword: {
      std::string user = std::move(saslUser_);
      saslUser_.clear();
      beginLogin("AUTH LOGIN", std::move(user), *decoded);
      secureWipe(*decoded);
      return;
    }
    case SaslStep::None:
      return;
  }
}

bool Pop3Server::refuseBadCredential(std::string_view method, std::string_view user,
                                     std::string_view password) {
  std::string_view field = "user name";
  std::string_view byte = badCredentialByte(user);
  if (byte.empty()) {
    field = "password";
    byte = badCredentialByte(password);
  }
  if (byte.empty()) return false;
  // Neither credential goes into the log: the user name is not clean, and
  // the password never is logged.
  std::string message = std::string(method) + " login refused: the " + std::string(field) +
                        " contains a " + std::string(byte) + " byte";
  if (field == "password") message += " (user " + std::string(user) + ")";
  sink_.log(LogSeverity::Warn, message);
  badCommand(kBadCredentialByte, RespCode::Auth);
  return true;
}

void Pop3Server::beginLogin(std::string_view method, std::string user, std::string_view password) {
  // Before the password check and before anything goes upstream.
  if (refuseBadCredential(method, user, password)) return;
  stats_.user = user;
  state_ = State::LoggingIn;
  op_ = Op::Opening;
  // The maildrop may answer synchronously; nothing may follow this call.
  maildrop_.open(user, password);
}

void Pop3Server::onMaildropOpened() {
  if (op_ != Op::Opening) return;
  op_ = Op::None;
  deleted_.assign(maildrop_.messageCount(), false);
  state_ = State::Transaction;
  stats_.messages = static_cast<std::uint32_t>(deleted_.size());
  reply("Logged in.");
  sink_.noteLogin(true, RespCode::None);
}

void Pop3Server::onMaildropOpenFailed(const MaildropError& error) {
  if (op_ != Op::Opening) return;
  authFailure(error.text, error.code);
}

void Pop3Server::authFailure(std::string_view text, RespCode code) {
  sink_.noteLogin(false, code);
  state_ = State::Authorization;
  delayedReply_.clear();
  appendErr(delayedReply_, text, code);
  if (code == RespCode::Auth && ++failedLogins_ >= kMaxFailedLogins) closeAfterDelay_ = true;
  if (code != RespCode::Auth) {
    // Outages are not guesses; answer at once so clients can retry later.
    op_ = Op::None;
    sink_.sendToClient(delayedReply_);
    delayedReply_.clear();
    return;
  }
  op_ = Op::AuthDelay;
  sink_.startAuthDelay();
}

void Pop3Server::onDelayElapsed() {
  if (op_ != Op::AuthDelay) return;
  op_ = Op::None;
  sink_.sendToClient(delayedReply_);
  delayedReply_.clear();
  if (closeAfterDelay_) finish("too many failed logins");
}

void Pop3Server::onClientTlsReady() {
  if (op_ != Op::ClientTls) return;
  op_ = Op::None;
  tlsActive_ = true;
}

// --- TRANSACTION ---------------------------------------------------------------

std::optional<std::size_t> Pop3Server::lookup(const Pop3Command& command) {
  std::uint32_t msn = command.msn.value_or(0);
  if (msn == 0 || msn > deleted_.size()) {
    replyErr("There's no message " + std::to_string(msn) + ".");
    return std::nullopt;
  }
  std::size_t index = msn - 1;
  if (deleted_[index]) {
    replyErr("Message is deleted.");
    return std::nullopt;
  }
  return index;
}

void Pop3Server::cmdStat(const Pop3Command&) {
  std::uint64_t count = 0, octets = 0;
  for (std::size_t i = 0; i < deleted_.size(); ++i) {
    if (deleted_[i]) continue;
    ++count;
    octets = addSaturating(octets, maildrop_.messageSize(i));
  }
  reply(std::to_string(count) + " " + std::to_string(octets));
}

void Pop3Server::cmdList(const Pop3Command& command) {
  bool uidl = command.verb == Pop3Verb::Uidl;
  auto appendEntry = [&](std::size_t index) {
    out_ += std::to_string(index + 1);
    out_ += ' ';
    if (uidl) {
      maildrop_.appendUidl(out_, index);
    } else {
      out_ += std::to_string(maildrop_.messageSize(index));
    }
    out_ += "\r\n";
  };
  if (command.msn) {
    auto index = lookup(command);
    if (!index) return;
    out_ += "+OK ";
    appendEntry(*index);
    flush();
    return;
  }
  listed_ = true;
  out_ += uidl ? "+OK Unique-ID listing follows\r\n" : "+OK Scan listing follows\r\n";
  for (std::size_t i = 0; i < deleted_.size(); ++i) {
    if (!deleted_[i]) appendEntry(i);
  }
  appendTerminator(out_);
  flush();
}

void Pop3Server::cmdRetr(const Pop3Command& command) {
  auto index = lookup(command);
  if (!index) return;
  fetchIndex_ = *index;
  fetchIsTop_ = command.verb == Pop3Verb::Top;
  bodyStarted_ = bodyDone_ = false;
  stuffer_.reset();
  top_.reset();
  // The limiter cuts TOP's exact line count whatever the maildrop delivers.
  if (fetchIsTop_) top_.emplace(command.lines);
  lastAccessed_ = std::max<std::uint32_t>(lastAccessed_, *command.msn);
  if (!fetchIsTop_) {
    // RETR n after RETR n-1 (DELE'd messages skipped), or the first RETR after a listing: a
    // client downloading its mail. Anything else reads nothing ahead, so a client that picks
    // messages here and there costs no extra fetch.
    sequential_ = listed_ || (lastRetr_ && nextUndeleted(*lastRetr_) == *index);
    listed_ = false;
    lastRetr_ = *index;
  }
  op_ = Op::Fetch;
  maildrop_.fetch(*index, fetchIsTop_ ? std::optional<std::uint64_t>(command.lines) : std::nullopt);
}

void Pop3Server::cmdDele(const Pop3Command& command) {
  auto index = lookup(command);
  if (!index) return;
  deleted_[*index] = true;
  lastAccessed_ = std::max<std::uint32_t>(lastAccessed_, *command.msn);
  reply("Marked to be deleted.");
}

void Pop3Server::cmdRset(const Pop3Command&) {
  std::fill(deleted_.begin(), deleted_.end(), false);
  lastAccessed_ = 0;
  std::uint64_t octets = 0;
  for (std::size_t i = 0; i < deleted_.size(); ++i) {
    octets = addSaturating(octets, maildrop_.messageSize(i));
  }
  reply("maildrop has " + std::to_string(deleted_.size()) + " messages (" + std::to_string(octets) +
        " octets)");
}

void Pop3Server::cmdNoop(const Pop3Command&) {
  reply("");
}

void Pop3Server::cmdLast(const Pop3Command&) {
  reply(std::to_string(lastAccessed_));
}

// --- Retrieval -----------------------------------------------------------------

void Pop3Server::onMessageBegin() {
  if (op_ != Op::Fetch || bodyStarted_) return;
  bodyStarted_ = true;
  if (fetchIsTop_) {
    reply("Top of message follows.");
  } else {
    reply(std::to_string(maildrop_.messageSize(fetchIndex_)) + " octets");
  }
}

bool Pop3Server::onMessageData(std::string_view data) {
  if (op_ != Op::Fetch || !bodyStarted_ || bodyDone_) return false;
  stats_.bodyBytes += data.size();
  if (top_) data = data.substr(0, top_->take(data));
  if (!data.empty()) {
    stuffer_.feed(data, out_);
    flush();
  }
  return !(top_ && top_->done());
}

void Pop3Server::onMessageEnd() {
  if (op_ != Op::Fetch || !bodyStarted_ || bodyDone_) return;
  stuffer_.finish(out_);
  flush();
  bodyDone_ = true;
  if (!fetchIsTop_) ++stats_.retrieved;
  sink_.noteRetrieved(fetchIsTop_);
}

void Pop3Server::onFetchDone() {
  if (op_ != Op::Fetch) return;
  op_ = Op::None;
  const bool retrieved = !fetchIsTop_ && bodyDone_;
  bodyStarted_ = bodyDone_ = false;
  if (!retrieved || !sequential_) return;
  if (std::optional<std::size_t> next = nextUndeleted(fetchIndex_)) maildrop_.readAhead(*next);
}

std::optional<std::size_t> Pop3Server::nextUndeleted(std::size_t index) const {
  for (std::size_t i = index + 1; i < deleted_.size(); ++i) {
    if (!deleted_[i]) return i;
  }
  return std::nullopt;
}

void Pop3Server::onMessageFailed(const MaildropError& error) {
  if (op_ != Op::Fetch || bodyStarted_) return;
  op_ = Op::None;
  replyErr(error.text, error.code);
}

void Pop3Server::onMessageCut(std::string_view reason) {
  // After "+OK" no "-ERR" can follow: the client must see a cut, not an end.
  finish(reason);
}

// --- UPDATE --------------------------------------------------------------------

void Pop3Server::onUpdated(std::uint32_t removed) {
  if (op_ != Op::Update) return;
  stats_.deleted = removed;
  reply(removed == 0 ? std::string("Logging out.")
                     : "Logging out, " + std::to_string(removed) + " messages deleted.");
  finish("quit");
}

void Pop3Server::onUpdateFailed(const MaildropError& error) {
  if (op_ != Op::Update) return;
  if (markedAtQuit_ > 0) sink_.noteDeletionsRefused(std::exchange(markedAtQuit_, 0));
  replyErr(error.text, error.code);
  finish(error.reason);
}

// --- Endings -------------------------------------------------------------------

void Pop3Server::onMaildropLost(std::string_view reason) {
  switch (state_) {
    case State::LoggingIn:
      if (op_ == Op::Opening) {
        authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
      }
      return;
    case State::Transaction:
      if (streamingBody()) {
        finish(std::string("upstream failed during a message body: ").append(reason));
        return;
      }
      if (op_ != Op::None) {
        replyErr("Upstream connection lost, try again later.", RespCode::SysTemp);
      }
      finish(std::string("upstream lost: ").append(reason));
      return;
    case State::Update:
      if (markedAtQuit_ > 0) sink_.noteDeletionsRefused(std::exchange(markedAtQuit_, 0));
      replyErr("Upstream connection lost; deletions may not have been applied.", RespCode::SysTemp);
      finish(std::string("upstream lost during update: ").append(reason));
      return;
    case State::Authorization:
    case State::Closed:
      return;
  }
}

void Pop3Server::onClientClosed(std::string_view reason) {
  // Whatever was marked stays untouched: RFC 1939 applies DELE only at QUIT.
  finish(reason);
}

void Pop3Server::onIdleTimeout() {
  if (state_ == State::Closed) return;
  if (!streamingBody()) replyErr("Disconnected for inactivity.");
  finish("idle timeout");
}

void Pop3Server::drain() {
  if (state_ != State::Authorization && state_ != State::LoggingIn) return;
  // Nothing to lose before a login: the device retries later, against the next instance.
  if (op_ != Op::ClientTls) replyErr("Server shutting down, try again later.", RespCode::SysTemp);
  delayedReply_.clear();
  finish("server shutting down (not logged in)");
}

void Pop3Server::drainDeadline() {
  if (state_ == State::Update || state_ == State::Closed) return;
  if (!streamingBody() && op_ != Op::ClientTls) {
    replyErr("Server shutting down.", RespCode::SysTemp);
  }
  finish("shutdown timeout: the client did not QUIT in time; nothing was deleted");
}

void Pop3Server::abort(std::string_view reason) {
  if (state_ == State::Closed) return;
  if (state_ == State::Update) {
    replyErr("Server shutting down; deletions may not have been applied.", RespCode::SysTemp);
  } else if (!streamingBody() && op_ != Op::ClientTls) {
    replyErr("Server shutting down.", RespCode::SysTemp);
  }
  finish(reason);
}

// --- helpers -------------------------------------------------------------------

void Pop3Server::badCommand(std::string_view text, RespCode code) {
  if (++badCommands_ >= options_.maxBadCommands && options_.maxBadCommands != 0) {
    replyErr("Too many bad commands, closing connection.");
    finish("too many bad commands");
    return;
  }
  replyErr(text, code);
}

void Pop3Server::reply(std::string_view text) {
  appendOk(out_, text);
  flush();
}

void Pop3Server::replyErr(std::string_view text, RespCode code) {
  appendErr(out_, text, code);
  flush();
}

void Pop3Server::flush() {
  if (out_.empty()) return;
  sink_.sendToClientAndRecycle(out_);
}

void Pop3Server::finish(std::string_view reason) {
  if (state_ == State::Closed) return;
  endReason_ = reason;
  state_ = State::Closed;
  op_ = Op::None;
  secureWipe(saslUser_);
  pendingUser_.clear();
  maildrop_.close();
  sink_.closeClient(endReason_);
}

}  // namespace popbridge::protocol
