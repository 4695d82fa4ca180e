#include "protocol/bridge/session.h"

#include <algorithm>
#include <cctype>
#include <numeric>

#include "protocol/base64.h"
#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

constexpr unsigned kMaxFailedLogins = 3;

bool hasFlag(const std::optional<std::vector<std::string>>& flags, std::string_view flag) {
  if (!flags) return false;
  return std::any_of(flags->begin(), flags->end(),
                     [&](const std::string& f) { return equalsIgnoreCase(f, flag); });
}

std::string codeSuffix(const ImapEvent& event) {
  std::string text;
  if (event.code) {
    text += '[';
    text += event.code->name;
    text += "] ";
  }
  text += event.text;
  return text;
}

}  // namespace

Pop3Session::Pop3Session(SessionOptions options, SessionSink& sink)
    : options_(std::move(options)), sink_(sink), tlsActive_(options_.tlsActive) {}

void Pop3Session::start() {
  reply("popbridge ready.");
}

bool Pop3Session::readyForCommand() const {
  return (state_ == State::Authorization || state_ == State::Transaction) && op_ == Op::None;
}

std::size_t Pop3Session::feedClient(std::string_view data) {
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

void Pop3Session::runCommand(const Pop3Command& command) {
  if (command.verb == Pop3Verb::SaslResponse) {
    saslResponse(command);
    return;
  }
  if (command.verb == Pop3Verb::Capa) {
    replyCapa();
    return;
  }
  if (state_ == State::Authorization) {
    authorizationCommand(command);
  } else {
    transactionCommand(command);
  }
}

bool Pop3Session::plaintextAuthAllowed() const {
  return tlsActive_ || options_.allowPlaintextAuth;
}

void Pop3Session::replyCapa() {
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
  appendMultiLine(out_, "IMPLEMENTATION popbridge");
  appendTerminator(out_);
  flush();
}

void Pop3Session::authorizationCommand(const Pop3Command& command) {
  switch (command.verb) {
    case Pop3Verb::Quit:
      reply("Logging out.");
      finish("client quit before login");
      return;
    case Pop3Verb::Stls:
      if (tlsActive_) return badCommand("TLS is already active.");
      if (!options_.stlsAvailable) return badCommand("STLS is not available on this listener.");
      reply("Begin TLS negotiation.");
      pendingUser_.clear();
      parser_.reset();
      discardClientInput_ = true;
      op_ = Op::ClientTls;
      sink_.startClientTls();
      return;
    case Pop3Verb::User:
      if (!plaintextAuthAllowed()) {
        return replyErr("Plaintext authentication disallowed on non-secure connections; use STLS.",
                        RespCode::Auth);
      }
      pendingUser_ = command.arg;
      reply("Send your password.");
      return;
    case Pop3Verb::Pass: {
      if (!plaintextAuthAllowed()) {
        return replyErr("Plaintext authentication disallowed on non-secure connections; use STLS.",
                        RespCode::Auth);
      }
      if (pendingUser_.empty()) return badCommand("No user name given; send USER first.");
      std::string user = std::move(pendingUser_);
      pendingUser_.clear();
      beginLogin(std::move(user), command.arg);
      return;
    }
    case Pop3Verb::Apop:
      // The upstream login needs the password itself, which APOP never sends.
      return replyErr("APOP is not supported; use USER/PASS or AUTH over TLS.");
    case Pop3Verb::Auth:
      if (!plaintextAuthAllowed()) {
        return replyErr("Plaintext authentication disallowed on non-secure connections; use STLS.",
                        RespCode::Auth);
      }
      if (command.arg.empty()) {
        out_ += "+OK\r\n";
        appendMultiLine(out_, "PLAIN");
        appendMultiLine(out_, "LOGIN");
        appendTerminator(out_);
        flush();
        return;
      }
      if (command.arg == "PLAIN") {
        if (!command.arg2.empty()) {
          Pop3Command initial;
          initial.verb = Pop3Verb::SaslResponse;
          initial.arg = command.arg2 == "=" ? std::string() : command.arg2;
          sasl_ = SaslStep::PlainResponse;
          saslResponse(initial);
          return;
        }
        sasl_ = SaslStep::PlainResponse;
        out_ += "+ \r\n";
      } else if (command.arg == "LOGIN") {
        if (!command.arg2.empty()) {
          Pop3Command initial;
          initial.verb = Pop3Verb::SaslResponse;
          initial.arg = command.arg2 == "=" ? std::string() : command.arg2;
          sasl_ = SaslStep::LoginUser;
          saslResponse(initial);
          return;
        }
        sasl_ = SaslStep::LoginUser;
        out_ += "+ VXNlcm5hbWU6\r\n";  // "Username:"
      } else {
        return replyErr("Unsupported authentication mechanism.");
      }
      parser_.expectSaslResponse(true);
      flush();
      return;
    case Pop3Verb::Stat:
    case Pop3Verb::List:
    case Pop3Verb::Uidl:
    case Pop3Verb::Retr:
    case Pop3Verb::Top:
    case Pop3Verb::Dele:
    case Pop3Verb::Rset:
    case Pop3Verb::Noop:
    case Pop3Verb::Last:
      return badCommand("Not logged in; this command needs USER/PASS or AUTH first.");
    case Pop3Verb::Capa:
    case Pop3Verb::SaslResponse:
      return;  // handled in runCommand
  }
}

void Pop3Session::saslResponse(const Pop3Command& command) {
  SaslStep step = sasl_;
  sasl_ = SaslStep::None;
  parser_.expectSaslResponse(false);
  if (step == SaslStep::None) return badCommand("Unexpected SASL response.");
  if (command.arg == "*") return replyErr("Authentication cancelled.");
  std::optional<std::string> decoded = base64Decode(command.arg);
  if (!decoded) return badCommand("Invalid base64 data in SASL response.");

  switch (step) {
    case SaslStep::PlainResponse: {
      // authzid NUL authcid NUL passwd (RFC 4616)
      std::string_view msg = *decoded;
      std::size_t first = msg.find('\0');
      std::size_t second = first == std::string_view::npos ? first : msg.find('\0', first + 1);
      if (second == std::string_view::npos ||
          msg.find('\0', second + 1) != std::string_view::npos) {
        secureWipe(*decoded);
        return badCommand("Malformed SASL PLAIN response.");
      }
      std::string user(msg.substr(first + 1, second - first - 1));
      bool foreignAuthzid = first != 0 && msg.substr(0, first) != user;
      std::string password(msg.substr(second + 1));
      secureWipe(*decoded);
      if (user.empty()) return badCommand("Malformed SASL PLAIN response: empty user name.");
      if (foreignAuthzid) {
        secureWipe(password);
        return replyErr("Logging in as another user is not supported.", RespCode::Auth);
      }
      beginLogin(std::move(user), password);
      secureWipe(password);
      return;
    }
    case SaslStep::LoginUser:
      if (decoded->empty()) return badCommand("Empty user name.");
      saslUser_ = std::move(*decoded);
      sasl_ = SaslStep::LoginPassword;
      parser_.expectSaslResponse(true);
      out_ += "+ UGFzc3dvcmQ6\r\n";  // "Password:"
      flush();
      return;
    case SaslStep::LoginPassword: {
      std::string user = std::move(saslUser_);
      saslUser_.clear();
      beginLogin(std::move(user), *decoded);
      secureWipe(*decoded);
      return;
    }
    case SaslStep::None:
      return;
  }
}

void Pop3Session::beginLogin(std::string user, std::string_view password) {
  stats_.user = user;
  state_ = State::LoggingIn;
  op_ = Op::Resolving;
  // The sink may answer synchronously; nothing may follow this call.
  sink_.resolveCredentials(user, password);
}

void Pop3Session::onCredentials(std::optional<UpstreamCredentials> credentials) {
  if (op_ != Op::Resolving) return;
  if (!credentials) {
    sink_.log(LogSeverity::Info, "login rejected by the local account table");
    authFailure("Authentication failed.", RespCode::Auth);
    return;
  }
  upstream_ = std::move(*credentials);
  if (upstream_.mailbox) options_.mailbox = *upstream_.mailbox;
  op_ = Op::Connecting;
  sink_.connectUpstream();
}

void Pop3Session::authFailure(std::string_view text, RespCode code) {
  resetUpstream();
  state_ = State::Authorization;
  delayedReply_.clear();
  appendErr(delayedReply_, text, code);
  if (code == RespCode::Auth && ++failedLogins_ >= kMaxFailedLogins) closeAfterDelay_ = true;
  if (code != RespCode::Auth) {
    // Outages are not guesses; answer at once so clients can retry later.
    op_ = Op::None;
    send(delayedReply_);
    return;
  }
  op_ = Op::AuthDelay;
  sink_.startAuthDelay();
}

void Pop3Session::onDelayElapsed() {
  if (op_ != Op::AuthDelay) return;
  op_ = Op::None;
  send(delayedReply_);
  delayedReply_.clear();
  if (closeAfterDelay_) finish("too many failed logins");
}

void Pop3Session::onUpstreamConnected() {
  if (op_ != Op::Connecting) return;
  op_ = Op::Greeting;
}

void Pop3Session::onUpstreamFailed(std::string_view reason) {
  if (op_ != Op::Connecting) return;
  sink_.log(LogSeverity::Warn, std::string("upstream unavailable: ").append(reason));
  authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
}

void Pop3Session::onUpstreamTlsReady() {
  if (op_ != Op::UpstreamTls) return;
  op_ = Op::None;
  upstreamTlsDone_ = true;
  discardUpstreamInput_ = false;
  // RFC 3501 6.2.1: capabilities learned before STARTTLS are void.
  capsKnown_ = false;
  sendCapabilityOrLogin();
}

void Pop3Session::onClientTlsReady() {
  if (op_ != Op::ClientTls) return;
  op_ = Op::None;
  tlsActive_ = true;
}

void Pop3Session::resetUpstream() {
  wipeSecret();
  pendingTag_.clear();
  pendingSegments_.clear();
  nextSegment_ = 0;
  capsKnown_ = false;
  upstreamTlsDone_ = false;
  discardUpstreamInput_ = false;
  imapParser_.reset();
  exists_ = 0;
  uids_.clear();
  sizes_.clear();
  deleted_.clear();
  sink_.closeUpstream();
}

// --- TRANSACTION -----------------------------------------------------------

std::optional<std::size_t> Pop3Session::lookup(const Pop3Command& command) {
  std::uint32_t msn = command.msn.value_or(0);
  if (msn == 0 || msn > uids_.size()) {
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

void Pop3Session::transactionCommand(const Pop3Command& command) {
  switch (command.verb) {
    case Pop3Verb::Stat: {
      std::uint64_t count = 0, octets = 0;
      for (std::size_t i = 0; i < uids_.size(); ++i) {
        if (deleted_[i]) continue;
        ++count;
        octets += sizes_[i];
      }
      reply(std::to_string(count) + " " + std::to_string(octets));
      return;
    }
    case Pop3Verb::List:
    case Pop3Verb::Uidl: {
      bool uidl = command.verb == Pop3Verb::Uidl;
      if (command.msn) {
        auto index = lookup(command);
        if (!index) return;
        out_ += "+OK ";
        out_ += std::to_string(*command.msn);
        out_ += ' ';
        if (uidl) {
          options_.mailbox.uidl.appendTo(out_, uids_[*index], uidValidity_);
        } else {
          out_ += std::to_string(sizes_[*index]);
        }
        out_ += "\r\n";
        flush();
        return;
      }
      out_ += uidl ? "+OK Unique-ID listing follows\r\n" : "+OK Scan listing follows\r\n";
      for (std::size_t i = 0; i < uids_.size(); ++i) {
        if (deleted_[i]) continue;
        out_ += std::to_string(i + 1);
        out_ += ' ';
        if (uidl) {
          options_.mailbox.uidl.appendTo(out_, uids_[i], uidValidity_);
        } else {
          out_ += std::to_string(sizes_[i]);
        }
        out_ += "\r\n";
      }
      appendTerminator(out_);
      flush();
      return;
    }
    case Pop3Verb::Retr:
    case Pop3Verb::Top: {
      auto index = lookup(command);
      if (!index) return;
      startRetrieval(*index, command.verb == Pop3Verb::Retr ? Retrieval::Retr : Retrieval::Top,
                     command.lines);
      return;
    }
    case Pop3Verb::Dele: {
      auto index = lookup(command);
      if (!index) return;
      deleted_[*index] = true;
      lastAccessed_ = std::max<std::uint32_t>(lastAccessed_, *command.msn);
      reply("Marked to be deleted.");
      return;
    }
    case Pop3Verb::Rset: {
      std::fill(deleted_.begin(), deleted_.end(), false);
      lastAccessed_ = 0;
      std::uint64_t octets = std::accumulate(sizes_.begin(), sizes_.end(), std::uint64_t{0});
      reply("maildrop has " + std::to_string(uids_.size()) + " messages (" +
            std::to_string(octets) + " octets)");
      return;
    }
    case Pop3Verb::Noop:
      reply("");
      return;
    case Pop3Verb::Last:
      reply(std::to_string(lastAccessed_));
      return;
    case Pop3Verb::Quit:
      startUpdate();
      return;
    case Pop3Verb::Stls:
      return badCommand("STLS is only allowed before login.");
    case Pop3Verb::User:
    case Pop3Verb::Pass:
    case Pop3Verb::Apop:
    case Pop3Verb::Auth:
      return badCommand("Already logged in.");
    case Pop3Verb::Capa:
    case Pop3Verb::SaslResponse:
      return;
  }
}

void Pop3Session::startRetrieval(std::size_t index, Retrieval kind, std::uint64_t lines) {
  if (uidValidityChanged_) {
    return replyErr("Mailbox changed on the server (UIDVALIDITY); log in again.",
                    RespCode::SysTemp);
  }
  fetchIndex_ = index;
  fetchKind_ = kind;
  bodyStarted_ = bodyDone_ = ignoringBody_ = emptyBodyPending_ = false;
  stuffer_.reset();
  top_.reset();
  std::string_view items;
  if (kind == Retrieval::Retr) {
    items = options_.mailbox.markSeenOnRetr ? "(BODY[])" : "(BODY.PEEK[])";
  } else if (lines == 0) {
    // Header-only clients (neomutt indexing) must not pull whole attachments.
    items = "(BODY.PEEK[HEADER])";
  } else {
    items = "(BODY.PEEK[])";
    top_.emplace(lines);
  }
  lastAccessed_ = std::max<std::uint32_t>(lastAccessed_, static_cast<std::uint32_t>(index + 1));
  sendImap(builder_.uidFetch(std::to_string(uids_[index]), items), Op::Fetch);
}

void Pop3Session::onBody(const ImapEvent& event) {
  if (op_ != Op::Fetch) return;  // unsolicited bodies are not ours to forward
  switch (event.kind) {
    case ImapEvent::Kind::BodyBegin: {
      std::uint32_t uid = uids_[fetchIndex_];
      if (bodyStarted_ || (event.fetch.uid && *event.fetch.uid != uid)) {
        ignoringBody_ = true;
        return;
      }
      ignoringBody_ = false;
      bodyStarted_ = true;
      if (event.literalSize == 0 && sizes_[fetchIndex_] != 0) {
        // Dovecot answers a FETCH of a message another session expunged with
        // an empty body and a tagged NO [EXPUNGEISSUED]; the tagged reply
        // decides between -ERR and an (odd) empty message.
        emptyBodyPending_ = true;
        return;
      }
      sendBodyStatus(event.literalSize);
      return;
    }
    case ImapEvent::Kind::BodyChunk: {
      if (ignoringBody_ || bodyDone_) return;
      std::string_view data = event.data;
      stats_.bodyBytes += data.size();
      if (top_) data = data.substr(0, top_->take(data));
      if (data.empty()) return;
      stuffer_.feed(data, out_);
      flush();
      return;
    }
    case ImapEvent::Kind::BodyEnd:
      if (ignoringBody_) {
        ignoringBody_ = false;
        return;
      }
      if (bodyDone_) return;
      if (emptyBodyPending_) {
        bodyDone_ = true;
        return;
      }
      stuffer_.finish(out_);
      flush();
      bodyDone_ = true;
      return;
    default:
      return;
  }
}

void Pop3Session::sendBodyStatus(std::uint64_t literalSize) {
  std::uint32_t uid = uids_[fetchIndex_];
  if (fetchKind_ == Retrieval::Retr) {
    if (literalSize != sizes_[fetchIndex_]) {
      sink_.log(LogSeverity::Warn,
                "UID " + std::to_string(uid) + ": body is " + std::to_string(literalSize) +
                    " octets but RFC822.SIZE said " + std::to_string(sizes_[fetchIndex_]));
    }
    reply(std::to_string(sizes_[fetchIndex_]) + " octets");
  } else {
    reply("Top of message follows.");
  }
}

void Pop3Session::onFetchDone(const ImapEvent& event) {
  bool started = bodyStarted_ && !emptyBodyPending_;
  bool done = bodyDone_;
  bool empty = emptyBodyPending_;
  bodyStarted_ = bodyDone_ = ignoringBody_ = emptyBodyPending_ = false;
  std::uint32_t uid = uids_[fetchIndex_];
  if (started && !done) {
    // Cannot happen with a well-formed server; never leave a body half-sent.
    finish("upstream ended a FETCH before the body was complete");
    return;
  }
  if (started) {
    // The body went out whole; a late NO changes nothing for POP3.
    if (fetchKind_ == Retrieval::Retr) ++stats_.retrieved;
    return;
  }
  bool expunged = event.code && event.code->name == "EXPUNGEISSUED";
  if (event.status == ImapStatus::Ok && !empty) {
    // UID FETCH of an expunged UID answers OK with no data: the message is gone.
    expunged = true;
  }
  if (expunged) {
    sink_.log(LogSeverity::Info, "UID " + std::to_string(uid) + " was expunged by another client");
    replyErr("Message was deleted by another client.");
    return;
  }
  if (event.status != ImapStatus::Ok) {
    sink_.log(LogSeverity::Warn,
              "UID FETCH " + std::to_string(uid) + " failed: " + codeSuffix(event));
    replyErr("Upstream could not fetch the message, try again later.", RespCode::SysTemp);
    return;
  }
  // A truly empty body where RFC822.SIZE promised more: send what exists.
  sendBodyStatus(0);
  stuffer_.finish(out_);
  flush();
  if (fetchKind_ == Retrieval::Retr) ++stats_.retrieved;
}

// --- UPDATE ----------------------------------------------------------------

std::string Pop3Session::markedUidSet() const {
  std::vector<std::uint32_t> marked;
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    if (deleted_[i]) marked.push_back(uids_[i]);
  }
  return formatUidSet(marked);
}

void Pop3Session::startUpdate() {
  state_ = State::Update;
  updateSet_ = markedUidSet();
  updateSteps_.clear();
  updateStep_ = 0;
  if (!updateSet_.empty() && uidValidityChanged_) {
    sink_.log(
        LogSeverity::Error,
        "UIDVALIDITY changed during the session; not applying deletions of UIDs " + updateSet_);
    replyErr("Mailbox changed on the server (UIDVALIDITY); no messages were deleted.",
             RespCode::SysTemp);
    logoutAndFinish("quit; deletions aborted after a UIDVALIDITY change");
    return;
  }
  if (!updateSet_.empty()) {
    switch (effectivePolicy_) {
      case DeletePolicy::Flag:
      case DeletePolicy::Seen:
        updateSteps_ = {Op::UpdateStore};
        break;
      case DeletePolicy::Expunge:
        updateSteps_ = {Op::UpdateStore, Op::UpdateExpunge};
        break;
      case DeletePolicy::Move:
        if (capMove_) {
          updateSteps_ = {Op::UpdateMove};
        } else if (capUidPlus_) {
          updateSteps_ = {Op::UpdateCopy, Op::UpdateStore, Op::UpdateExpunge};
        } else {
          updateSteps_ = {Op::UpdateCopy, Op::UpdateStore};
        }
        break;
      case DeletePolicy::Keep:
        break;
    }
  }
  nextUpdateStep();
}

void Pop3Session::nextUpdateStep() {
  if (updateStep_ >= updateSteps_.size()) {
    finishUpdate();
    return;
  }
  Op step = updateSteps_[updateStep_++];
  switch (step) {
    case Op::UpdateStore:
      sendImap(
          builder_.uidStore(updateSet_, "+FLAGS.SILENT",
                            effectivePolicy_ == DeletePolicy::Seen ? "(\\Seen)" : "(\\Deleted)"),
          step);
      return;
    case Op::UpdateExpunge:
      // Only our UIDs: a bare EXPUNGE would also remove whatever another
      // client had flagged \Deleted.
      sendImap(builder_.uidExpunge(updateSet_), step);
      return;
    case Op::UpdateCopy:
      sendImap(builder_.uidCopy(updateSet_, options_.mailbox.moveTo), step);
      return;
    case Op::UpdateMove:
      sendImap(builder_.uidMove(updateSet_, options_.mailbox.moveTo), step);
      return;
    default:
      return;
  }
}

void Pop3Session::finishUpdate() {
  std::uint32_t count =
      effectivePolicy_ == DeletePolicy::Keep
          ? 0
          : static_cast<std::uint32_t>(std::count(deleted_.begin(), deleted_.end(), true));
  stats_.deleted = count;
  if (count > 0) {
    sink_.log(LogSeverity::Info, "applied on_delete=" + std::string(toString(effectivePolicy_)) +
                                     " to UIDs " + updateSet_);
  }
  reply(count == 0 ? std::string("Logging out.")
                   : "Logging out, " + std::to_string(count) + " messages deleted.");
  logoutAndFinish("quit");
}

void Pop3Session::updateFailed(const ImapEvent& event) {
  Op step = updateSteps_[updateStep_ - 1];
  std::string what;
  switch (step) {
    case Op::UpdateStore:
      what = "UID STORE";
      break;
    case Op::UpdateExpunge:
      what = "UID EXPUNGE";
      break;
    case Op::UpdateCopy:
      what = "UID COPY";
      break;
    case Op::UpdateMove:
      what = "UID MOVE";
      break;
    default:
      what = "update";
      break;
  }
  std::string applied = updateStep_ > 1 ? " (earlier steps succeeded)" : "";
  sink_.log(LogSeverity::Error, "QUIT: " + what + " failed: " + codeSuffix(event) +
                                    "; on_delete=" + std::string(toString(effectivePolicy_)) +
                                    " not applied to UIDs " + updateSet_ + applied);
  replyErr("Deleting messages failed on the server; they were not removed.", RespCode::SysTemp);
  logoutAndFinish("quit; deletions failed upstream");
}

void Pop3Session::logoutAndFinish(std::string_view reason) {
  ImapCommand logout = builder_.logout();
  for (const auto& segment : logout.segments) sink_.sendToUpstream(segment);
  finish(reason);
}

// --- Upstream --------------------------------------------------------------

void Pop3Session::sendImap(const ImapCommand& command, Op op) {
  pendingTag_ = command.tag;
  op_ = op;
  pendingSegments_.assign(command.segments.begin() + 1, command.segments.end());
  nextSegment_ = 0;
  sink_.sendToUpstream(command.segments.front());
}

void Pop3Session::feedUpstream(std::string_view data) {
  while (!data.empty() && state_ != State::Closed && !discardUpstreamInput_) {
    std::size_t consumed = 0;
    ImapResponseParser::Status status = imapParser_.parse(data, consumed, event_);
    data.remove_prefix(consumed);
    if (status == ImapResponseParser::Status::Error) {
      upstreamBroken("IMAP protocol error: " + imapParser_.error());
      return;
    }
    if (status == ImapResponseParser::Status::NeedMore) return;
    onImapEvent(event_);
  }
}

void Pop3Session::applyCapabilities(const std::vector<std::string>& words) {
  capsKnown_ = true;
  capStartTls_ = capLoginDisabled_ = capAuthPlain_ = false;
  capSaslIr_ = capLiteralPlus_ = capUidPlus_ = capMove_ = false;
  for (const std::string& word : words) {
    if (equalsIgnoreCase(word, "STARTTLS"))
      capStartTls_ = true;
    else if (equalsIgnoreCase(word, "LOGINDISABLED"))
      capLoginDisabled_ = true;
    else if (equalsIgnoreCase(word, "AUTH=PLAIN"))
      capAuthPlain_ = true;
    else if (equalsIgnoreCase(word, "SASL-IR"))
      capSaslIr_ = true;
    else if (equalsIgnoreCase(word, "LITERAL+"))
      capLiteralPlus_ = true;
    else if (equalsIgnoreCase(word, "UIDPLUS"))
      capUidPlus_ = true;
    else if (equalsIgnoreCase(word, "MOVE"))
      capMove_ = true;
  }
  builder_.setLiteralPlus(capLiteralPlus_);
  builder_.setSaslIr(capSaslIr_);
}

void Pop3Session::onImapEvent(const ImapEvent& event) {
  switch (event.kind) {
    case ImapEvent::Kind::Tagged:
      onTagged(event);
      return;
    case ImapEvent::Kind::Status:
      if (event.status == ImapStatus::Bye) {
        // Our own LOGOUT is only sent once the session is closed, so a BYE
        // seen here is always the server ending the connection.
        upstreamBroken("upstream said BYE: " + event.text);
        return;
      }
      if (op_ == Op::Greeting) {
        if (event.status == ImapStatus::PreAuth) {
          // A pre-authenticated upstream would let any password through.
          sink_.log(LogSeverity::Error,
                    "upstream greeted with PREAUTH; refusing to bypass the login");
          authFailure("Upstream configuration error.", RespCode::SysPerm);
          return;
        }
        if (event.status != ImapStatus::Ok) {
          sink_.log(LogSeverity::Warn, "upstream greeting was not OK: " + codeSuffix(event));
          authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
          return;
        }
        op_ = Op::None;
        if (event.code && event.code->name == "CAPABILITY") applyCapabilities(event.words);
        sendCapabilityOrLogin();
        return;
      }
      if (event.code && event.code->name == "UIDVALIDITY") {
        std::optional<std::uint32_t> value = parseUint32(event.code->text);
        if (!value) return upstreamBroken("malformed UIDVALIDITY");
        if (op_ == Op::Select) {
          uidValidity_ = *value;
        } else if (state_ == State::Transaction || state_ == State::Update) {
          if (*value != uidValidity_) {
            sink_.log(LogSeverity::Error, "UIDVALIDITY changed from " +
                                              std::to_string(uidValidity_) + " to " +
                                              std::to_string(*value) + " during the session");
            uidValidityChanged_ = true;
          }
        }
      }
      return;
    case ImapEvent::Kind::Capability:
      applyCapabilities(event.words);
      return;
    case ImapEvent::Kind::Exists:
      if (op_ == Op::Select) exists_ = event.number;
      return;
    case ImapEvent::Kind::Fetch:
      if (op_ == Op::Snapshot) {
        if (!event.fetch.uid || !event.fetch.rfc822Size) {
          sink_.log(LogSeverity::Warn, "snapshot FETCH without UID or RFC822.SIZE skipped");
          return;
        }
        if (hasFlag(event.fetch.flags, "\\Deleted")) return;
        uids_.push_back(*event.fetch.uid);
        sizes_.push_back(*event.fetch.rfc822Size);
      }
      return;
    case ImapEvent::Kind::BodyBegin:
    case ImapEvent::Kind::BodyChunk:
    case ImapEvent::Kind::BodyEnd:
      onBody(event);
      return;
    case ImapEvent::Kind::Continuation:
      if (nextSegment_ < pendingSegments_.size()) {
        sink_.sendToUpstream(pendingSegments_[nextSegment_++]);
        if (nextSegment_ == pendingSegments_.size()) wipeSegments();
        return;
      }
      upstreamBroken("unexpected continuation request");
      return;
    default:
      return;
  }
}

void Pop3Session::onTagged(const ImapEvent& event) {
  if (pendingTag_.empty() || event.tag != pendingTag_) {
    upstreamBroken("reply with unexpected tag " + event.tag);
    return;
  }
  pendingTag_.clear();
  wipeSegments();
  Op op = op_;
  op_ = Op::None;
  bool ok = event.status == ImapStatus::Ok;
  switch (op) {
    case Op::Capability:
      if (!ok) {
        sink_.log(LogSeverity::Warn, "CAPABILITY failed: " + codeSuffix(event));
        authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
        return;
      }
      sendCapabilityOrLogin();
      return;
    case Op::StartTls:
      if (!ok) {
        sink_.log(LogSeverity::Error, "upstream refused STARTTLS: " + codeSuffix(event));
        authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
        return;
      }
      op_ = Op::UpstreamTls;
      imapParser_.reset();
      discardUpstreamInput_ = true;
      sink_.startUpstreamTls();
      return;
    case Op::Login:
      wipeSecret();
      if (!ok) {
        loginFailed(event);
        return;
      }
      if (event.code && event.code->name == "CAPABILITY") {
        applyCapabilities(event.words);
        sendSelect();
      } else {
        sendImap(builder_.capability(), Op::PostLoginCapability);
      }
      return;
    case Op::PostLoginCapability:
      sendSelect();
      return;
    case Op::Select:
      if (!ok) {
        sink_.log(LogSeverity::Error,
                  "cannot open folder \"" + options_.mailbox.folder + "\": " + codeSuffix(event));
        authFailure("Cannot open the mailbox folder on the server.", RespCode::SysPerm);
        return;
      }
      sendSnapshot();
      return;
    case Op::Snapshot:
      if (!ok) {
        sink_.log(LogSeverity::Error, "listing the mailbox failed: " + codeSuffix(event));
        authFailure("Cannot list the mailbox, try again later.", RespCode::SysTemp);
        return;
      }
      enterTransaction();
      return;
    case Op::Fetch:
      onFetchDone(event);
      return;
    case Op::UpdateStore:
    case Op::UpdateExpunge:
    case Op::UpdateCopy:
    case Op::UpdateMove:
      if (!ok) {
        updateFailed(event);
        return;
      }
      nextUpdateStep();
      return;
    default:
      upstreamBroken("unexpected tagged reply");
      return;
  }
}

void Pop3Session::sendCapabilityOrLogin() {
  if (options_.upstreamStartTls && !upstreamTlsDone_) {
    if (!capsKnown_) return sendImap(builder_.capability(), Op::Capability);
    if (!capStartTls_) {
      sink_.log(LogSeverity::Error,
                "upstream does not offer STARTTLS, which the configuration requires");
      authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
      return;
    }
    return sendImap(builder_.starttls(), Op::StartTls);
  }
  if (!capsKnown_) return sendImap(builder_.capability(), Op::Capability);
  sendLogin();
}

void Pop3Session::sendLogin() {
  bool plain = options_.upstreamLogin == UpstreamLogin::Plain ||
               (options_.upstreamLogin == UpstreamLogin::Auto && capAuthPlain_);
  if (!plain && capLoginDisabled_) {
    sink_.log(LogSeverity::Error,
              "upstream advertises LOGINDISABLED and no AUTH=PLAIN; use TLS to the upstream");
    authFailure("Upstream refuses the login on this connection.", RespCode::SysPerm);
    return;
  }
  ImapCommand command = plain ? builder_.authenticatePlain(upstream_.user, upstream_.password)
                              : builder_.login(upstream_.user, upstream_.password);
  wipeSecret();
  sendImap(command, Op::Login);
  for (auto& segment : command.segments) secureWipe(segment);
}

void Pop3Session::loginFailed(const ImapEvent& event) {
  std::string_view code = event.code ? std::string_view(event.code->name) : std::string_view();
  sink_.log(LogSeverity::Info, "upstream login failed: " + codeSuffix(event));
  if (event.status == ImapStatus::No &&
      (code.empty() || code == "AUTHENTICATIONFAILED" || code == "AUTHORIZATIONFAILED" ||
       code == "EXPIRED" || code == "PRIVACYREQUIRED" || code == "CONTACTADMIN")) {
    authFailure("Authentication failed.", RespCode::Auth);
  } else if (code == "INUSE") {
    authFailure("Mailbox is in use, try again later.", RespCode::InUse);
  } else {
    authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
  }
}

void Pop3Session::sendSelect() {
  effectivePolicy_ = options_.mailbox.onDelete;
  if (effectivePolicy_ == DeletePolicy::Expunge && !capUidPlus_) {
    // Without UIDPLUS the only expunge is the bare one, which could remove
    // other clients' \Deleted messages: flag instead.
    sink_.log(LogSeverity::Warn,
              "upstream lacks UIDPLUS; on_delete=expunge falls back to flag for this session");
    effectivePolicy_ = DeletePolicy::Flag;
  }
  if (effectivePolicy_ == DeletePolicy::Move && !capMove_ && !capUidPlus_) {
    sink_.log(LogSeverity::Warn,
              "upstream lacks MOVE and UIDPLUS; on_delete=move copies and flags \\Deleted without "
              "expunging");
  }
  bool readOnly = effectivePolicy_ == DeletePolicy::Keep && !options_.mailbox.markSeenOnRetr;
  sendImap(builder_.select(options_.mailbox.folder, readOnly), Op::Select);
}

void Pop3Session::sendSnapshot() {
  uids_.clear();
  sizes_.clear();
  if (exists_ == 0) {
    enterTransaction();
    return;
  }
  std::uint32_t max = options_.mailbox.maxMessages;
  uids_.reserve(max != 0 && max < exists_ ? max : exists_);
  sizes_.reserve(uids_.capacity());
  if (max != 0 && exists_ > max) {
    sendImap(builder_.fetch(std::to_string(exists_ - max + 1) + ":*", "(UID RFC822.SIZE FLAGS)"),
             Op::Snapshot);
  } else {
    sendImap(builder_.uidFetch("1:*", "(RFC822.SIZE FLAGS)"), Op::Snapshot);
  }
}

void Pop3Session::enterTransaction() {
  // Servers answer in sequence order, which is UID order; sort anyway so the
  // numbering never depends on that, and drop repeats from unsolicited FETCHes.
  std::vector<std::size_t> order(uids_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (!std::is_sorted(uids_.begin(), uids_.end()) ||
      std::adjacent_find(uids_.begin(), uids_.end()) != uids_.end()) {
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return uids_[a] < uids_[b]; });
    std::vector<std::uint32_t> uids;
    std::vector<std::uint64_t> sizes;
    for (std::size_t i : order) {
      if (!uids.empty() && uids.back() == uids_[i]) {
        sizes.back() = sizes_[i];
        continue;
      }
      uids.push_back(uids_[i]);
      sizes.push_back(sizes_[i]);
    }
    uids_ = std::move(uids);
    sizes_ = std::move(sizes);
  }
  deleted_.assign(uids_.size(), false);
  state_ = State::Transaction;
  stats_.messages = static_cast<std::uint32_t>(uids_.size());
  sink_.log(LogSeverity::Info, "logged in; " + std::to_string(uids_.size()) + " messages in \"" +
                                   options_.mailbox.folder + "\", UIDVALIDITY " +
                                   std::to_string(uidValidity_));
  reply("Logged in.");
}

void Pop3Session::upstreamBroken(std::string_view reason) {
  if (state_ == State::Closed) return;
  sink_.log(LogSeverity::Warn, std::string(reason));
  if (streamingBody()) {
    // After "+OK" no "-ERR" can follow: the client must see a cut, not an end.
    finish(std::string("upstream failed during a message body: ").append(reason));
    return;
  }
  switch (state_) {
    case State::LoggingIn:
      if (op_ == Op::Resolving || op_ == Op::AuthDelay) return;
      authFailure("Upstream server unavailable, try again later.", RespCode::SysTemp);
      return;
    case State::Update: {
      std::string unapplied = updateSet_.empty() ? "none" : updateSet_;
      sink_.log(LogSeverity::Error,
                "upstream lost during QUIT; possibly unapplied UIDs: " + unapplied);
      replyErr("Upstream connection lost; deletions may not have been applied.", RespCode::SysTemp);
      finish(std::string("upstream lost during update: ").append(reason));
      return;
    }
    case State::Transaction:
      if (op_ != Op::None)
        replyErr("Upstream connection lost, try again later.", RespCode::SysTemp);
      finish(std::string("upstream lost: ").append(reason));
      return;
    default:
      return;
  }
}

void Pop3Session::onUpstreamClosed(std::string_view reason) {
  if (state_ == State::Closed) return;
  if (state_ == State::Authorization) return;  // a failed login already closed it
  upstreamBroken(std::string("upstream closed: ").append(reason));
}

void Pop3Session::onUpstreamTimeout() {
  if (!awaitingUpstream()) return;
  upstreamBroken("upstream timed out");
}

void Pop3Session::onClientClosed(std::string_view reason) {
  // Whatever was marked stays untouched: RFC 1939 applies DELE only at QUIT.
  finish(reason);
}

void Pop3Session::onIdleTimeout() {
  if (state_ == State::Closed) return;
  if (!streamingBody()) replyErr("Disconnected for inactivity.");
  finish("idle timeout");
}

void Pop3Session::abort(std::string_view reason) {
  if (state_ == State::Closed) return;
  if (!streamingBody()) replyErr("Server shutting down.", RespCode::SysTemp);
  finish(reason);
}

// --- helpers ---------------------------------------------------------------

void Pop3Session::badCommand(std::string_view text, RespCode code) {
  if (++badCommands_ >= options_.maxBadCommands && options_.maxBadCommands != 0) {
    replyErr("Too many bad commands, closing connection.");
    finish("too many bad commands");
    return;
  }
  replyErr(text, code);
}

void Pop3Session::reply(std::string_view text) {
  appendOk(out_, text);
  flush();
}

void Pop3Session::replyErr(std::string_view text, RespCode code) {
  appendErr(out_, text, code);
  flush();
}

void Pop3Session::flush() {
  if (out_.empty()) return;
  sink_.sendToClientAndRecycle(out_);
}

void Pop3Session::finish(std::string_view reason) {
  if (state_ == State::Closed) return;
  endReason_ = reason;
  state_ = State::Closed;
  op_ = Op::None;
  wipeSecret();
  secureWipe(saslUser_);
  sink_.closeUpstream();
  sink_.closeClient(reason);
}

void Pop3Session::wipeSecret() {
  secureWipe(upstream_.password);
  wipeSegments();
}

void Pop3Session::wipeSegments() {
  for (auto& segment : pendingSegments_) secureWipe(segment);
  pendingSegments_.clear();
  nextSegment_ = 0;
}

}  // namespace popbridge::protocol
