#include "protocol/imap/client.h"

#include "protocol/base64.h"
#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

// Credentials longer than this (user and password together) make a LOGIN
// command longer than some servers take before login, literals included
// (Dovecot answers "* BYE Input buffer full" at about 1 KB). A SASL response
// on a line of its own has no such limit there, so AUTHENTICATE PLAIN is used
// instead when the server offers it.
constexpr std::size_t kMaxLoginCredentials = 768;

}  // namespace

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

ImapClient::ImapClient(ImapClientOptions options, ImapClientSink& sink, ImapClientEvents& events)
    : options_(options), sink_(sink), events_(events), builder_(options_.tagPrefix) {}

ImapClient::~ImapClient() {
  wipeSecrets();
}

bool ImapClient::awaitingReply() const {
  switch (state_) {
    case State::Idle:
    case State::Closed:
      return false;
    case State::Ready:
      return !pendingTag_.empty();
    case State::HeldBeforeLogin:
      return false;
    default:
      return true;
  }
}

void ImapClient::connected(std::string_view user, std::string_view password) {
  connected(user, password, nullptr);
}

void ImapClient::connected(std::unique_ptr<SaslMechanism> mechanism) {
  connected({}, {}, std::move(mechanism));
}

void ImapClient::connected(BearerLogin login) {
  connected({}, {}, nullptr);
  if (state_ != State::Greeting) return;
  bearer_ = std::move(login);
}

void ImapClient::connected(std::string_view user, std::string_view password,
                           std::unique_ptr<SaslMechanism> mechanism) {
  if (state_ != State::Idle && state_ != State::Closed) return;
  wipeSecrets();
  mechanism_ = std::move(mechanism);
  // A new connection: nothing of an earlier one carries over.
  parser_.reset();
  caps_ = ImapCapabilities{};
  builder_.setLiteralPlus(false);
  builder_.setSaslIr(false);
  idTag_.clear();
  tlsDone_ = false;
  discardInput_ = false;
  user_ = user;
  password_ = password;
  state_ = State::Greeting;
}

void ImapClient::onTlsReady() {
  if (state_ != State::UpstreamTls) return;
  state_ = State::Capability;  // nextLoginStep picks the real next state
  tlsDone_ = true;
  discardInput_ = false;
  // RFC 3501 6.2.1: capabilities learned before STARTTLS are void.
  caps_ = ImapCapabilities{};
  nextLoginStep();
}

void ImapClient::feed(std::string_view data) {
  while (!data.empty() && state_ != State::Closed && state_ != State::Idle && !discardInput_) {
    std::size_t consumed = 0;
    ImapResponseParser::Status status = parser_.parse(data, consumed, event_);
    data.remove_prefix(consumed);
    if (status == ImapResponseParser::Status::Error) {
      broken("IMAP protocol error: " + parser_.error());
      return;
    }
    if (status == ImapResponseParser::Status::NeedMore) return;
    unparsed_ = data;
    onEvent(event_);
    unparsed_ = {};
  }
}

std::optional<ImapResumeState> ImapClient::resumeState() const {
  if (!canSend() || !parser_.atResponseBoundary() || discardInput_) return std::nullopt;
  return ImapResumeState{caps_, builder_.tagPrefix(), builder_.nextTagNumber(),
                         builder_.literalPlus(), builder_.saslIr()};
}

void ImapClient::adopt(const ImapResumeState& state) {
  if (state_ != State::Idle && state_ != State::Closed) return;
  wipeSecrets();
  mechanism_.reset();
  bearer_.reset();
  parser_.reset();
  caps_ = state.caps;
  builder_ = ImapCommandBuilder(state.tagPrefix);
  builder_.setNextTagNumber(state.nextTag);
  builder_.setLiteralPlus(state.literalPlus);
  builder_.setSaslIr(state.saslIr);
  idTag_.clear();
  pendingTag_.clear();
  pendingSegments_.clear();
  nextSegment_ = 0;
  tlsDone_ = true;
  discardInput_ = false;
  state_ = State::Ready;
}

void ImapClient::onEvent(const ImapEvent& event) {
  switch (event.kind) {
    case ImapEvent::Kind::Tagged:
      onTagged(event);
      return;
    case ImapEvent::Kind::Status:
      onStatus(event);
      return;
    case ImapEvent::Kind::Continuation:
      onContinuation(event);
      return;
    case ImapEvent::Kind::Capability:
      applyCapabilities(event.words);
      if (state_ == State::Capability) events_.onCapabilities(event.words);
      if (state_ == State::Ready) events_.onUntagged(event);
      return;
    case ImapEvent::Kind::BodyBegin:
    case ImapEvent::Kind::BodyChunk:
    case ImapEvent::Kind::BodyEnd:
      if (state_ == State::Ready) events_.onBody(event);
      return;
    default:
      if (state_ == State::Ready) events_.onUntagged(event);
      return;
  }
}

void ImapClient::onStatus(const ImapEvent& event) {
  if (event.status == ImapStatus::Bye) {
    // Our own LOGOUT closes the client before its BYE could arrive, so a BYE
    // seen here is always the server ending the connection.
    broken("upstream said BYE: " + event.text);
    return;
  }
  if (state_ == State::Greeting) {
    if (event.status == ImapStatus::PreAuth) {
      sink_.log(LogSeverity::Error, "upstream greeted with PREAUTH; refusing to bypass the login");
      fail(ImapLoginFailure::PreAuth);
      return;
    }
    if (event.status != ImapStatus::Ok) {
      sink_.log(LogSeverity::Warn, "upstream greeting was not OK: " + codeSuffix(event));
      fail(ImapLoginFailure::Unavailable);
      return;
    }
    events_.onGreeting(event);
    if (event.code && event.code->name == "CAPABILITY") {
      applyCapabilities(event.words);
      events_.onCapabilities(event.words);
    }
    nextLoginStep();
    return;
  }
  if (state_ == State::Ready) events_.onUntagged(event);
}

void ImapClient::onContinuation(const ImapEvent& event) {
  if (nextSegment_ < pendingSegments_.size()) {
    sink_.sendToUpstream(pendingSegments_[nextSegment_++]);
    if (nextSegment_ == pendingSegments_.size()) {
      for (auto& segment : pendingSegments_) secureWipe(segment);
      pendingSegments_.clear();
      nextSegment_ = 0;
    }
    return;
  }
  if (state_ == State::Authenticating && mechanism_) {
    // RFC 3501 6.2.2: each challenge is base64; each response one line of
    // base64, or "*" to cancel.
    std::optional<std::string> response;
    bool answered = false;
    if (initialResponsePending_) {
      initialResponsePending_ = false;
      response = mechanism_->initialResponse();
      answered = response.has_value();
    }
    if (!answered) {
      if (std::optional<std::string> challenge = base64Decode(event.text)) {
        response = mechanism_->respond(*challenge);
        secureWipe(*challenge);
      }
    }
    std::string line = response ? base64Encode(*response) : std::string("*");
    line += "\r\n";
    sink_.sendToUpstream(line);
    if (response) secureWipe(*response);
    secureWipe(line);
    return;
  }
  broken("unexpected continuation request");
}

void ImapClient::onTagged(const ImapEvent& event) {
  if (!idTag_.empty() && event.tag == idTag_) {
    idTag_.clear();
    if (event.status != ImapStatus::Ok) {
      sink_.log(LogSeverity::Warn,
                "upstream refused ID with the client's address (logging in anyway): " +
                    codeSuffix(event));
    }
    return;
  }
  if (pendingTag_.empty() || event.tag != pendingTag_) {
    broken("reply with unexpected tag " + event.tag);
    return;
  }
  pendingTag_.clear();
  for (auto& segment : pendingSegments_) secureWipe(segment);
  pendingSegments_.clear();
  nextSegment_ = 0;
  bool ok = event.status == ImapStatus::Ok;
  switch (state_) {
    case State::Capability:
      if (!ok) {
        sink_.log(LogSeverity::Warn, "CAPABILITY failed: " + codeSuffix(event));
        fail(ImapLoginFailure::Unavailable);
        return;
      }
      nextLoginStep();
      return;
    case State::StartTls:
      if (!ok) {
        sink_.log(LogSeverity::Error, "upstream refused STARTTLS: " + codeSuffix(event));
        fail(ImapLoginFailure::Unavailable);
        return;
      }
      state_ = State::UpstreamTls;
      parser_.reset();
      discardInput_ = true;
      sink_.startUpstreamTls();
      return;
    case State::Authenticating:
      if (!ok) {
        loginFailed(event);
        return;
      }
      wipeSecrets();
      if (event.code && event.code->name == "CAPABILITY") {
        applyCapabilities(event.words);
        state_ = State::Ready;
        events_.onLoggedIn();
      } else {
        // Servers often extend their capabilities after login (UIDPLUS, MOVE).
        sendInternal(builder_.capability(), State::PostLoginCapability);
      }
      return;
    case State::PostLoginCapability:
      state_ = State::Ready;
      events_.onLoggedIn();
      return;
    case State::Ready:
      events_.onCompleted(event);
      return;
    default:
      broken("unexpected tagged reply");
      return;
  }
}

void ImapClient::send(const ImapCommand& command) {
  if (!canSend()) return;
  sendInternal(command, State::Ready);
}

void ImapClient::sendInternal(const ImapCommand& command, State state) {
  pendingTag_ = command.tag;
  state_ = state;
  pendingSegments_.assign(command.segments.begin() + 1, command.segments.end());
  nextSegment_ = 0;
  sink_.sendToUpstream(command.segments.front());
}

void ImapClient::nextLoginStep() {
  if (options_.startTls && !tlsDone_) {
    if (!caps_.known) return sendInternal(builder_.capability(), State::Capability);
    if (!caps_.startTls) {
      sink_.log(LogSeverity::Error,
                "upstream does not offer STARTTLS, which the configuration requires");
      fail(ImapLoginFailure::Unavailable);
      return;
    }
    return sendInternal(builder_.starttls(), State::StartTls);
  }
  if (!caps_.known) return sendInternal(builder_.capability(), State::Capability);
  if (options_.holdBeforeLogin) {
    state_ = State::HeldBeforeLogin;
    events_.onReadyToLogin();
    return;
  }
  sendLogin();
}

void ImapClient::login() {
  if (state_ == State::HeldBeforeLogin) sendLogin();
}

std::unique_ptr<SaslMechanism> ImapClient::chooseMechanism() {
  if (bearer_) {
    BearerMechanism choice = bearer_->mechanism;
    if (choice == BearerMechanism::Auto) {
      if (caps_.offers("OAUTHBEARER"))
        choice = BearerMechanism::OAuthBearer;
      else if (caps_.offers("XOAUTH2"))
        choice = BearerMechanism::XOAuth2;
      else
        return nullptr;
    }
    std::unique_ptr<SaslMechanism> mechanism =
        choice == BearerMechanism::OAuthBearer
            ? makeSaslOAuthBearer(bearer_->user, bearer_->accessToken, bearer_->host, bearer_->port)
            : makeSaslXOAuth2(bearer_->user, bearer_->accessToken);
    secureWipe(bearer_->accessToken);
    return mechanism;
  }
  bool plain = options_.login == UpstreamLogin::Plain ||
               (options_.login == UpstreamLogin::Auto && caps_.authPlain);
  if (!plain && caps_.authPlain && user_.size() + password_.size() > kMaxLoginCredentials) {
    sink_.log(LogSeverity::Info,
              "credentials of " + std::to_string(user_.size() + password_.size()) +
                  " bytes are too long for a LOGIN command; using AUTHENTICATE PLAIN, which "
                  "the upstream offers");
    plain = true;
  }
  if (plain) return makeSaslPlain(user_, password_);
  return nullptr;  // the LOGIN command
}

void ImapClient::sendId() {
  if (options_.id.empty() || !caps_.id) return;
  ImapCommand command = builder_.id(options_.id);
  // A value that needs a synchronizing literal would make the login wait for
  // a "+" meant for the ID; addresses and ports never do.
  if (command.segments.size() != 1) {
    sink_.log(LogSeverity::Warn, "ID fields need a literal; not sending ID");
    return;
  }
  // RFC 3501 5.5: the server answers pipelined commands in order, so the
  // login that follows sees the ID's effect, and the ID's reply comes first.
  idTag_ = command.tag;
  sink_.sendToUpstream(command.segments.front());
}

void ImapClient::sendLogin() {
  if (!mechanism_) mechanism_ = chooseMechanism();
  if (!mechanism_ && bearer_) {
    sink_.log(LogSeverity::Error,
              "upstream advertises neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2; an OAuth2 login "
              "needs one (set mechanism in [oauth2.NAME] to try one anyway)");
    fail(ImapLoginFailure::NoMechanism);
    return;
  }
  if (!mechanism_ && caps_.loginDisabled) {
    sink_.log(LogSeverity::Error,
              "upstream advertises LOGINDISABLED and no AUTH=PLAIN; use TLS to the upstream");
    fail(ImapLoginFailure::LoginDisabled);
    return;
  }
  if (bearer_) {
    sink_.log(LogSeverity::Debug, "upstream login by AUTHENTICATE " +
                                      std::string(mechanism_->name()) + " as " + bearer_->user);
  }
  sendId();
  if (!mechanism_) {
    ImapCommand command = builder_.login(user_, password_);
    wipeSecrets();
    sendInternal(command, State::Authenticating);
    for (auto& segment : command.segments) secureWipe(segment);
    return;
  }
  secureWipe(password_);
  std::optional<std::string> initial;
  initialResponsePending_ = false;
  if (caps_.saslIr) {
    initial = mechanism_->initialResponse();
  }
  std::optional<std::string> encoded;
  if (initial) encoded = base64Encode(*initial);
  // Without SASL-IR a client-first mechanism answers the server's first,
  // empty challenge with its initial response (RFC 4422 5).
  initialResponsePending_ = !caps_.saslIr;
  ImapCommand command = builder_.authenticate(
      mechanism_->name(), encoded ? std::optional<std::string_view>(*encoded) : std::nullopt);
  if (initial) secureWipe(*initial);
  if (encoded) secureWipe(*encoded);
  sendInternal(command, State::Authenticating);
  for (auto& segment : command.segments) secureWipe(segment);
}

void ImapClient::loginFailed(const ImapEvent& event) {
  std::string_view code = event.code ? std::string_view(event.code->name) : std::string_view();
  lastLoginCode_ = code;
  std::string message = "upstream login failed: " + codeSuffix(event);
  if (mechanism_) {
    std::string detail = mechanism_->failureDetail();
    if (!detail.empty())
      message += " (" + std::string(mechanism_->name()) + " error: " + detail + ")";
  }
  wipeSecrets();
  sink_.log(LogSeverity::Info, message);
  if (event.status == ImapStatus::No &&
      (code.empty() || code == "AUTHENTICATIONFAILED" || code == "AUTHORIZATIONFAILED" ||
       code == "EXPIRED" || code == "PRIVACYREQUIRED" || code == "CONTACTADMIN")) {
    fail(ImapLoginFailure::Rejected);
  } else if (code == "INUSE") {
    fail(ImapLoginFailure::InUse);
  } else {
    fail(ImapLoginFailure::Unavailable);
  }
}

void ImapClient::fail(ImapLoginFailure failure) {
  close();
  events_.onLoginFailed(failure);
}

void ImapClient::broken(std::string_view reason) {
  if (state_ == State::Closed || state_ == State::Idle) return;
  std::string copy(reason);
  close();
  events_.onBroken(copy);
}

void ImapClient::logout() {
  if (state_ == State::Ready || state_ == State::HeldBeforeLogin) {
    ImapCommand command = builder_.logout();
    for (const auto& segment : command.segments) sink_.sendToUpstream(segment);
  }
  close();
}

void ImapClient::close() {
  state_ = State::Closed;
  discardInput_ = false;
  pendingTag_.clear();
  idTag_.clear();
  for (auto& segment : pendingSegments_) secureWipe(segment);
  pendingSegments_.clear();
  nextSegment_ = 0;
  wipeSecrets();
}

void ImapClient::wipeSecrets() {
  secureWipe(user_);
  secureWipe(password_);
  if (mechanism_) {
    mechanism_->wipe();
    mechanism_.reset();
  }
  if (bearer_) {
    secureWipe(bearer_->user);
    secureWipe(bearer_->accessToken);
    bearer_.reset();
  }
  initialResponsePending_ = false;
}

bool ImapCapabilities::offers(std::string_view mechanism) const {
  for (const std::string& name : authMechanisms) {
    if (equalsIgnoreCase(name, mechanism)) return true;
  }
  return false;
}

void ImapClient::applyCapabilities(const std::vector<std::string>& words) {
  caps_ = ImapCapabilities{};
  caps_.known = true;
  for (const std::string& word : words) {
    if (equalsIgnoreCase(word, "STARTTLS"))
      caps_.startTls = true;
    else if (equalsIgnoreCase(word, "LOGINDISABLED"))
      caps_.loginDisabled = true;
    else if (equalsIgnoreCase(word, "AUTH=PLAIN"))
      caps_.authPlain = true;
    else if (equalsIgnoreCase(word, "SASL-IR"))
      caps_.saslIr = true;
    else if (equalsIgnoreCase(word, "LITERAL+"))
      caps_.literalPlus = true;
    else if (equalsIgnoreCase(word, "UIDPLUS"))
      caps_.uidPlus = true;
    else if (equalsIgnoreCase(word, "MOVE"))
      caps_.move = true;
    else if (equalsIgnoreCase(word, "ID"))
      caps_.id = true;
    else if (equalsIgnoreCase(word, "SPECIAL-USE"))
      caps_.specialUse = true;
    else if (equalsIgnoreCase(word, "CONDSTORE") || equalsIgnoreCase(word, "QRESYNC"))
      caps_.condStore = true;
    else if (equalsIgnoreCase(word, "OBJECTID"))
      caps_.objectId = true;
    else if (equalsIgnoreCase(word, "X-GM-EXT-1"))
      caps_.gmExt1 = true;
    if (word.size() > 5 && equalsIgnoreCase(std::string_view(word).substr(0, 5), "AUTH=")) {
      caps_.authMechanisms.emplace_back(std::string_view(word).substr(5));
    }
  }
  builder_.setLiteralPlus(caps_.literalPlus);
  builder_.setSaslIr(caps_.saslIr);
}

}  // namespace popbridge::protocol
