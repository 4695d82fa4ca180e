#pragma once

// A sans-I/O IMAP client connection (RFC 3501, RFC 9051): greeting,
// capabilities, STARTTLS, login by SASL mechanism or LOGIN, then one command
// at a time with its literals and continuations.
//
// Inputs: upstream bytes (feed) and the outcome of I/O it asked for
// (onTlsReady). Outputs: bytes and requests on an ImapClientSink, and
// protocol events on ImapClientEvents. It knows nothing of POP3: what the
// commands mean is its user's business (bridge/imap_maildrop.h).
//
// To add a SASL mechanism: see sasl.h, then chooseMechanism() in client.cpp.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/imap/command.h"
#include "protocol/imap/parser.h"
#include "protocol/imap/sasl.h"
#include "protocol/log_severity.h"

namespace popbridge::protocol {

struct ImapClientOptions {
  bool startTls = false;  // upgrade with STARTTLS before logging in
  UpstreamLogin login = UpstreamLogin::Auto;
  // RFC 2971 ID fields sent just before the login when the server advertises
  // ID (after STARTTLS), pipelined with it; none: no ID. A refused ID does not
  // stop the login.
  std::vector<std::pair<std::string, std::string>> id{};
  // Starts every command tag (atom characters, no '+'). The proxy makes it
  // random per connection: a message whose body starts with ")" CRLF and a
  // tag must not be able to pass for a broken literal (imap_maildrop.cpp).
  std::string tagPrefix = "P";
  // Stop once the connection is ready for the login (greeting OK, capabilities known, STARTTLS
  // done when asked for): report ImapClientEvents::onReadyToLogin and wait for login(). For
  // diagnostics that time each step or never log in (popbridge check-upstream, /readyz).
  bool holdBeforeLogin = false;
};

struct ImapCapabilities {
  bool known = false;
  bool startTls = false;
  bool loginDisabled = false;
  bool authPlain = false;
  bool saslIr = false;
  bool literalPlus = false;
  bool uidPlus = false;
  bool move = false;
  bool id = false;
  bool specialUse = false;                  // RFC 6154: LIST knows the SPECIAL-USE selection option
  bool condStore = false;                   // RFC 7162: CONDSTORE, or QRESYNC (which implies it)
  bool objectId = false;                    // RFC 8474: FETCH EMAILID
  bool gmExt1 = false;                      // Gmail's X-GM-EXT-1: FETCH X-GM-MSGID
  std::vector<std::string> authMechanisms;  // from AUTH=<name>, as sent

  bool offers(std::string_view mechanism) const;  // AUTH=<mechanism>, any case
};

// Why a login did not happen; the client has logged the details.
enum class ImapLoginFailure : std::uint8_t {
  Rejected,       // the credentials were refused
  InUse,          // [INUSE]
  Unavailable,    // greeting, CAPABILITY or STARTTLS failed, or another NO/BAD
  PreAuth,        // the server skipped authentication, which would admit any password
  LoginDisabled,  // LOGINDISABLED and no usable SASL mechanism
  NoMechanism,    // an OAuth2 login, and the server offers no bearer mechanism
};

// An OAuth2 login: the SASL mechanism is chosen once the capabilities are
// known (after STARTTLS), so BearerMechanism::Auto can follow the server.
struct BearerLogin {
  std::string user;  // the mailbox to open; may differ from the token's owner
  std::string accessToken;
  BearerMechanism mechanism = BearerMechanism::Auto;
  std::string host;  // what OAUTHBEARER names as the server (RFC 7628 3.1)
  std::uint16_t port = 0;
};

// What an authenticated, idle connection carries from one session to the next (an upstream
// connection pool, proxy/upstream_pool.h): the codec state a fresh ImapClient needs to go on
// where the last one stopped. Never a credential.
struct ImapResumeState {
  ImapCapabilities caps;
  std::string tagPrefix;
  std::uint64_t nextTag = 1;
  bool literalPlus = false;
  bool saslIr = false;
};

// "[CODE] text" of a status or tagged response, for logs.
std::string codeSuffix(const ImapEvent& event);

class ImapClientSink {
 public:
  virtual ~ImapClientSink() = default;
  virtual void sendToUpstream(std::string_view bytes) = 0;
  // STARTTLS was accepted: run the handshake, then call onTlsReady.
  virtual void startUpstreamTls() = 0;
  virtual void log(LogSeverity severity, std::string_view message) = 0;
};

class ImapClientEvents {
 public:
  virtual ~ImapClientEvents() = default;
  virtual void onLoggedIn() = 0;
  virtual void onLoginFailed(ImapLoginFailure failure) = 0;
  // After login: untagged responses other than bodies and BYE (Status,
  // Exists, Expunge, Flags, Fetch, Capability, Other...).
  virtual void onUntagged(const ImapEvent& event) = 0;
  // After login: BodyBegin, BodyChunk, BodyEnd, in order.
  virtual void onBody(const ImapEvent& event) = 0;
  // The tagged reply to the command given to send().
  virtual void onCompleted(const ImapEvent& tagged) = 0;
  // The connection is unusable (protocol error, BYE, unexpected reply); the
  // client is closed. Not called for a failed login.
  virtual void onBroken(std::string_view reason) = 0;

  // Progress before the login, for diagnostics; the proxy ignores it. These two are
  // notifications only: they must not close or destroy the client.
  // The greeting was "* OK"; `greeting` is it (its code and text).
  virtual void onGreeting(const ImapEvent& greeting) {}
  // capabilities() were (re)learned before the login, from the greeting's code or a CAPABILITY
  // reply (again after STARTTLS); `words` as the server sent them, upper-cased.
  virtual void onCapabilities(const std::vector<std::string>& words) {}
  // ImapClientOptions::holdBeforeLogin only: ready to log in. The handler may call login(),
  // logout() or close().
  virtual void onReadyToLogin() {}
};

class ImapClient {
 public:
  enum class State : std::uint8_t {
    Idle,
    Greeting,
    Capability,
    StartTls,
    UpstreamTls,
    HeldBeforeLogin,  // ImapClientOptions::holdBeforeLogin
    Authenticating,
    PostLoginCapability,
    Ready,
    Closed,
  };

  ImapClient(ImapClientOptions options, ImapClientSink& sink, ImapClientEvents& events);
  ~ImapClient();
  ImapClient(const ImapClient&) = delete;
  ImapClient& operator=(const ImapClient&) = delete;

  // The transport is up (a new one after close()): wait for the greeting and
  // log in as `user`. The password is kept only until it was sent.
  void connected(std::string_view user, std::string_view password);
  // Same, but log in with this SASL mechanism whatever the server
  // advertises (OAuth2 tokens, say); it holds its own credentials.
  void connected(std::unique_ptr<SaslMechanism> mechanism);
  // Same, with an access token; the token is kept only until it was sent.
  void connected(BearerLogin login);
  void onTlsReady();
  // HeldBeforeLogin: log in now with the credentials given to connected().
  void login();
  // Runs all bytes; events fire from inside.
  void feed(std::string_view data);

  // Ready and no command in flight: sends `command` (all its segments, each
  // after the server's continuation) and later reports onCompleted.
  bool canSend() const { return state_ == State::Ready && pendingTag_.empty(); }
  void send(const ImapCommand& command);
  // The tag of the command in flight; empty when none is.
  const std::string& pendingTag() const { return pendingTag_; }
  ImapCommandBuilder& builder() { return builder_; }
  const ImapCapabilities& capabilities() const { return caps_; }

  // Sends LOGOUT without waiting for its reply (when logged in or held before the login), then
  // closes.
  void logout();
  // Forgets the connection; no further events.
  void close();
  // Logged in, no command in flight and nothing of a response half-read: the state a pool can
  // keep; nullopt otherwise.
  std::optional<ImapResumeState> resumeState() const;
  // Inside feed(): the input after the response being handled (empty outside feed()). A
  // connection handed to a pool from an event handler hands these bytes on with it.
  std::string_view unparsedInput() const { return unparsed_; }
  // Takes over a logged-in connection whose earlier client stopped in `state` (an idle or
  // closed client only): Ready at once, with no greeting and no login.
  void adopt(const ImapResumeState& state);

  State state() const { return state_; }
  // The response code of the last refused login ("AUTHENTICATIONFAILED"...), empty when it had
  // none.
  const std::string& lastLoginCode() const { return lastLoginCode_; }
  // True while the server owes a reply.
  bool awaitingReply() const;
  bool awaitingGreeting() const { return state_ == State::Greeting; }

 private:
  void connected(std::string_view user, std::string_view password,
                 std::unique_ptr<SaslMechanism> mechanism);
  void onEvent(const ImapEvent& event);
  void onStatus(const ImapEvent& event);
  void onTagged(const ImapEvent& event);
  void onContinuation(const ImapEvent& event);
  void sendInternal(const ImapCommand& command, State state);
  void nextLoginStep();
  void sendLogin();
  void sendId();
  std::unique_ptr<SaslMechanism> chooseMechanism();
  void loginFailed(const ImapEvent& event);
  void fail(ImapLoginFailure failure);
  void broken(std::string_view reason);
  void applyCapabilities(const std::vector<std::string>& words);
  void wipeSecrets();

  ImapClientOptions options_;
  ImapClientSink& sink_;
  ImapClientEvents& events_;
  State state_ = State::Idle;
  ImapResponseParser parser_;
  ImapCommandBuilder builder_;
  ImapEvent event_;
  ImapCapabilities caps_;
  bool tlsDone_ = false;
  bool discardInput_ = false;  // the rest of the read that carried the STARTTLS OK

  std::string user_;
  std::string password_;
  std::unique_ptr<SaslMechanism> mechanism_;
  std::optional<BearerLogin> bearer_;    // until the mechanism was chosen
  bool initialResponsePending_ = false;  // client-first mechanism without SASL-IR

  std::string lastLoginCode_;
  std::string_view unparsed_;  // see unparsedInput()
  std::string pendingTag_;
  std::string idTag_;                         // the ID pipelined before the login, until its reply
  std::vector<std::string> pendingSegments_;  // after a synchronizing literal
  std::size_t nextSegment_ = 0;
};

}  // namespace popbridge::protocol
