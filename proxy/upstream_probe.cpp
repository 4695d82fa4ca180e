#include "proxy/upstream_probe.h"

#include <netdb.h>
#include <netinet/in.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "protocol/imap/client.h"
#include "protocol/net_address.h"
#include "protocol/text.h"
#include "proxy/connector.h"
#include "proxy/stream.h"

namespace popbridge::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using protocol::ImapEvent;
using protocol::ImapLoginFailure;
using protocol::ImapStatus;

std::chrono::milliseconds ms(config::Duration duration) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(duration);
}

std::string addressText(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (uv_ip_name(address, text, sizeof text) != 0) return "?";
  return text;
}

std::string bioText(BIO* bio) {
  const std::uint8_t* data = nullptr;
  std::size_t length = 0;
  if (BIO_mem_contents(bio, &data, &length) != 1) return {};
  return std::string(reinterpret_cast<const char*>(data), length);
}

std::string nameText(const X509_NAME* name) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || name == nullptr) return "?";
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  return bioText(bio.get());
}

// "subject CN=imap.example.com, issuer CN=R11,O=Let's Encrypt,C=US, expires Jan  1 00:00:00
// 2027 GMT (in 29 days)".
std::string certificateText(X509* certificate) {
  if (certificate == nullptr) return "no certificate";
  std::string text = "subject " + nameText(X509_get_subject_name(certificate)) + "; issuer " +
                     nameText(X509_get_issuer_name(certificate));
  const ASN1_TIME* notAfter = X509_get0_notAfter(certificate);
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (notAfter != nullptr && bio && ASN1_TIME_print(bio.get(), notAfter) == 1) {
    text += "; expires " + bioText(bio.get());
    int days = 0;
    int seconds = 0;
    if (ASN1_TIME_diff(&days, &seconds, nullptr, notAfter) == 1) {
      text += days >= 0 && seconds >= 0 ? " (in " + std::to_string(days) + " days)"
                                        : " (EXPIRED " + std::to_string(-days) + " days ago)";
    }
  }
  return text;
}

std::string_view tlsModeText(config::UpstreamTls tls) {
  switch (tls) {
    case config::UpstreamTls::Implicit:
      return "implicit TLS";
    case config::UpstreamTls::StartTls:
      return "STARTTLS";
    case config::UpstreamTls::None:
      return "no TLS";
  }
  return "?";
}

ProbeFailure failureOf(ProbeStep step) {
  switch (step) {
    case ProbeStep::Token:
      return ProbeFailure::Token;
    case ProbeStep::Resolve:
      return ProbeFailure::Dns;
    case ProbeStep::Connect:
      return ProbeFailure::Connect;
    case ProbeStep::Tls:
      return ProbeFailure::Tls;
    case ProbeStep::Login:
      return ProbeFailure::Login;
    case ProbeStep::Select:
      return ProbeFailure::Select;
    case ProbeStep::Greeting:
    case ProbeStep::Capability:
    case ProbeStep::StartTls:
    case ProbeStep::Logout:
      return ProbeFailure::Protocol;
  }
  return ProbeFailure::Protocol;
}

std::string joined(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& word : words) {
    if (!text.empty()) text += ' ';
    text += word;
  }
  return text;
}

}  // namespace

std::string_view toString(ProbeStep step) {
  switch (step) {
    case ProbeStep::Token:
      return "token";
    case ProbeStep::Resolve:
      return "resolve";
    case ProbeStep::Connect:
      return "connect";
    case ProbeStep::Tls:
      return "tls";
    case ProbeStep::Greeting:
      return "greeting";
    case ProbeStep::Capability:
      return "capability";
    case ProbeStep::StartTls:
      return "starttls";
    case ProbeStep::Login:
      return "login";
    case ProbeStep::Select:
      return "select";
    case ProbeStep::Logout:
      return "logout";
  }
  return "?";
}

std::string ProbeReport::summary() const {
  const std::string time = std::to_string(total.count()) + " ms";
  if (ok()) {
    return "OK: " + target + " passed " + std::to_string(steps.size()) + " steps in " + time;
  }
  std::string text = "FAIL";
  if (!steps.empty()) text += " at " + std::string(toString(steps.back().step));
  text += " after " + time + ": " + target;
  if (!steps.empty()) text += ": " + steps.back().detail;
  return text;
}

// One probe from start to report. Owned by the UpstreamProbe; everything it started (timers,
// connector, stream) dies with it, and libuv requests still in flight free themselves.
class UpstreamProbe::Run : public protocol::ImapClientSink, public protocol::ImapClientEvents {
 public:
  Run(uv_loop_t* loop, const config::Config& config, const TlsClientContext* tls,
      TokenAccess tokens, std::optional<ProbeLogin> login, std::function<void(ProbeReport)> done)
      : loop_(loop),
        config_(config),
        upstream_(config.upstream),
        tls_(tls),
        tokens_(std::move(tokens)),
        login_(std::move(login)),
        done_(std::move(done)),
        client_(clientOptions(config), *this, *this),
        connector_(loop),
        stepTimer_(loop),
        reportTimer_(loop),
        alive_(std::make_shared<bool>(true)) {
    report_.target = protocol::formatHostPort(upstream_.host, upstream_.port) + " (" +
                     std::string(tlsModeText(upstream_.tls)) + ")";
  }

  ~Run() override {
    *alive_ = false;
    cancelResolve();
    if (login_) {
      protocol::secureWipe(login_->password);
    }
    protocol::secureWipe(accessToken_);
  }

  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  void start() {
    started_ = Clock::now();
    // Every step reports from the loop, so `done` never runs inside start().
    reportTimer_.start(std::chrono::milliseconds(0), [this] {
      guarded([this] {
        if (login_ && !login_->oauth2.empty()) {
          requestToken();
        } else {
          resolve();
        }
      });
    });
  }

  bool finished() const { return phase_ == Phase::Done; }

  // ImapClientSink.
  void sendToUpstream(std::string_view bytes) override {
    if (stream_) stream_->write(bytes);
  }
  void startUpstreamTls() override {
    finishStep(true, "accepted");
    beginStep(ProbeStep::Tls, ms(upstream_.connectTimeout));
    if (tls_ == nullptr) return failStep("no TLS client context");
    stream_->startTlsClient(tls_->get(), upstream_.effectiveServerName(), tls_->verify());
  }
  void log(protocol::LogSeverity severity, std::string_view message) override {
    // The IMAP client explains refusals here ("upstream login failed: [AUTHENTICATIONFAILED]
    // ..."); it never logs a credential.
    if (severity != protocol::LogSeverity::Debug) lastClientMessage_ = message;
  }

  // ImapClientEvents.
  void onGreeting(const ImapEvent& greeting) override {
    greeted_ = true;
    std::string text = "* OK ";
    if (greeting.code) {
      // The CAPABILITY code's words are the capability step's.
      text += "[" + greeting.code->name +
              (greeting.code->text.empty() || greeting.code->name == "CAPABILITY"
                   ? std::string()
                   : " " + greeting.code->text) +
              "] ";
    }
    finishStep(true, protocol::loggableText(text + greeting.text));
    beginStep(ProbeStep::Capability, ms(upstream_.commandTimeout));
    capabilitiesFromGreeting_ = greeting.code && greeting.code->name == "CAPABILITY";
  }
  void onCapabilities(const std::vector<std::string>& words) override {
    if (current_ != ProbeStep::Capability || !inStep_) return;
    finishStep(true, (capabilitiesFromGreeting_ ? "(in the greeting) " : "") +
                         protocol::loggableText(joined(words), 400));
    capabilitiesFromGreeting_ = false;
    if (upstream_.tls == config::UpstreamTls::StartTls && !tlsDone_) {
      beginStep(ProbeStep::StartTls, ms(upstream_.commandTimeout));
    }
  }
  void onReadyToLogin() override {
    if (!login_) {
      // Reachability only: a polite LOGOUT, without waiting for the answer.
      client_.logout();
      return finish();
    }
    beginStep(ProbeStep::Login, ms(upstream_.commandTimeout));
    client_.login();
  }
  void onLoggedIn() override {
    finishStep(true, loginText());
    beginStep(ProbeStep::Select, ms(upstream_.commandTimeout));
    client_.send(client_.builder().select(login_->folder, true));
  }
  void onLoginFailed(ImapLoginFailure failure) override {
    std::string cause = lastClientMessage_.empty() ? "refused" : lastClientMessage_;
    if (failure == ImapLoginFailure::PreAuth) {
      cause =
          "the server greeted with PREAUTH: it skips authentication, so any device password "
          "would be accepted; popbridge refuses such an upstream";
    }
    failStep(cause);
  }
  void onUntagged(const ImapEvent& event) override {
    if (current_ != ProbeStep::Select) return;
    if (event.kind == ImapEvent::Kind::Exists) exists_ = event.number;
    if (event.kind == ImapEvent::Kind::Status && event.code && event.code->name == "UIDVALIDITY") {
      uidValidity_ = protocol::loggableText(event.code->text);
    }
  }
  void onBody(const ImapEvent&) override {}
  void onCompleted(const ImapEvent& tagged) override {
    if (current_ != ProbeStep::Select) return;
    const std::string folder = "\"" + protocol::loggableText(login_->folder) + "\"";
    if (tagged.status != ImapStatus::Ok) {
      return failStep("EXAMINE " + folder +
                      " refused: " + protocol::loggableText(protocol::codeSuffix(tagged)));
    }
    finishStep(true, "EXAMINE " + folder + ": EXISTS " +
                         (exists_ ? std::to_string(*exists_) : std::string("(not sent)")) +
                         ", UIDVALIDITY " + (uidValidity_.empty() ? "(not sent)" : uidValidity_));
    beginStep(ProbeStep::Logout, ms(upstream_.commandTimeout));
    client_.logout();
    // Done when the server closes the connection (onStreamClosed).
  }
  void onBroken(std::string_view reason) override {
    std::string cause(reason);
    const std::string_view bye = "upstream said BYE: ";
    if (cause.rfind(bye, 0) == 0) {
      cause = "the server said * BYE " + cause.substr(bye.size());
    } else if (current_ == ProbeStep::Greeting && !greeted_) {
      cause = "not an IMAP greeting: " + cause;
    }
    failStep(protocol::loggableText(cause));
  }

 private:
  enum class Phase : std::uint8_t { Running, Done };

  static protocol::ImapClientOptions clientOptions(const config::Config& config) {
    protocol::ImapClientOptions options;
    options.startTls = config.upstream.tls == config::UpstreamTls::StartTls;
    options.login = config.upstream.auth;
    options.tagPrefix = "PROBE";
    options.holdBeforeLogin = true;
    return options;
  }

  template <typename Body>
  void guarded(Body&& body) noexcept {
    try {
      body();
    } catch (const std::exception& error) {
      internalError(error.what());
    } catch (...) {
      internalError("unknown exception");
    }
  }
  void internalError(const char* what) noexcept {
    try {
      failStep(std::string("internal error: ") + what);
    } catch (...) {
      phase_ = Phase::Done;
    }
  }

  // --- steps -----------------------------------------------------------------------------

  void beginStep(ProbeStep step, std::chrono::milliseconds timeout) {
    current_ = step;
    inStep_ = true;
    stepStarted_ = Clock::now();
    if (timeout.count() > 0) {
      stepTimer_.start(timeout, [this, timeout] {
        guarded([&] { failStep("no answer within " + config::formatDuration(timeout)); });
      });
    } else {
      stepTimer_.stop();
    }
  }

  void finishStep(bool ok, std::string detail) {
    if (!inStep_ || phase_ == Phase::Done) return;
    inStep_ = false;
    stepTimer_.stop();
    ProbeStepResult result;
    result.step = current_;
    result.ok = ok;
    result.detail = std::move(detail);
    result.duration =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stepStarted_);
    report_.steps.push_back(std::move(result));
    if (!ok) {
      report_.failure = failureOf(current_);
      finish();
    }
  }

  void failStep(std::string cause) {
    if (phase_ == Phase::Done) return;
    if (!inStep_) {
      // A failure between steps (the server closing while the client waits for nothing) is
      // charged to the step that comes next in the IMAP conversation.
      beginStep(current_, std::chrono::milliseconds(0));
    }
    finishStep(false, std::move(cause));
  }

  void finish() {
    if (phase_ == Phase::Done) return;
    phase_ = Phase::Done;
    stepTimer_.stop();
    connector_.cancel();
    cancelResolve();
    client_.close();
    if (login_) protocol::secureWipe(login_->password);
    protocol::secureWipe(accessToken_);
    if (stream_ && !stream_->closing()) stream_->closeAfterFlush("probe done");
    report_.total = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
    // From the loop: the report may destroy the probe, which must not happen inside the
    // ImapClient's or the Stream's own frames.
    reportTimer_.start(std::chrono::milliseconds(0), [this] {
      auto done = std::move(done_);
      done_ = nullptr;
      if (done) done(std::move(report_));
    });
  }

  // --- token -----------------------------------------------------------------------------

  void requestToken() {
    beginStep(ProbeStep::Token, std::chrono::milliseconds(0));
    const config::OAuthIdentityConfig* identity = config_.findOAuthIdentity(login_->oauth2);
    if (identity == nullptr) return failStep("no [oauth2." + login_->oauth2 + "] in the config");
    if (tokens_.tokens == nullptr || !tokens_.mailbox) {
      return failStep("no token service for [oauth2." + login_->oauth2 + "]");
    }
    bearerMechanism_ = identity->mechanism;
    if (login_->user.empty()) login_->user = identity->user;
    std::weak_ptr<bool> weak = alive_;
    tokens_.tokens->get(login_->oauth2, 0, tokens_.mailbox, [this, weak](TokenResult result) {
      auto alive = weak.lock();
      if (!alive || !*alive) {
        protocol::secureWipe(result.accessToken);
        return;
      }
      guarded([&] { onToken(std::move(result)); });
    });
  }

  void onToken(TokenResult result) {
    if (result.status != TokenResult::Status::Ok) {
      return failStep("no access token for [oauth2." + login_->oauth2 + "]: " + result.reason);
    }
    accessToken_ = std::move(result.accessToken);
    protocol::secureWipe(result.accessToken);
    finishStep(true, "access token for [oauth2." + login_->oauth2 + "]");
    resolve();
  }

  // --- resolve and connect ---------------------------------------------------------------

  // Heap-allocated because libuv may complete the lookup after the probe gave up on it (a
  // running getaddrinfo cannot be cancelled); with no owner it frees itself.
  struct ResolveRequest {
    uv_getaddrinfo_t req{};
    Run* owner = nullptr;
  };

  void resolve() {
    beginStep(ProbeStep::Resolve, ms(upstream_.connectTimeout));
    const std::string host(protocol::withoutBrackets(upstream_.host));
    if (host.empty() || host.find('\0') != std::string::npos) {
      return failStep("the host name is empty");
    }
    auto request = std::make_unique<ResolveRequest>();
    request->owner = this;
    request->req.data = request.get();
    const addrinfo hints = upstreamResolveHints();
    const std::string service = std::to_string(upstream_.port);
    const int rc = uv_getaddrinfo(loop_, &request->req, &Run::onResolved, host.c_str(),
                                  service.c_str(), &hints);
    if (rc < 0) return failStep("cannot resolve " + host + ": " + uv_strerror(rc));
    resolveRequest_ = request.release();
  }

  void cancelResolve() {
    if (resolveRequest_ == nullptr) return;
    resolveRequest_->owner = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&resolveRequest_->req));
    resolveRequest_ = nullptr;
  }

  static void onResolved(uv_getaddrinfo_t* req, int status, addrinfo* result) noexcept {
    std::unique_ptr<ResolveRequest> request(static_cast<ResolveRequest*>(req->data));
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(result, &uv_freeaddrinfo);
    Run* owner = request->owner;
    if (owner == nullptr) return;
    owner->resolveRequest_ = nullptr;
    owner->guarded([&] { owner->resolved(status, addresses.get()); });
  }

  void resolved(int status, const addrinfo* result) {
    const std::string host(protocol::withoutBrackets(upstream_.host));
    if (status < 0) return failStep("cannot resolve " + host + ": " + uv_strerror(status));
    for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
      if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) && ai->ai_addr != nullptr) {
        std::string address = addressText(ai->ai_addr);
        if (std::find(addresses_.begin(), addresses_.end(), address) == addresses_.end()) {
          addresses_.push_back(std::move(address));
        }
      }
    }
    if (addresses_.empty()) return failStep("cannot resolve " + host + ": no IPv4 or IPv6 address");
    finishStep(true, host + " -> " + joinedAddresses());
    beginStep(ProbeStep::Connect, ms(upstream_.connectTimeout));
    connectDeadline_ = Clock::now() + ms(upstream_.connectTimeout);
    connectNext();
  }

  std::string joinedAddresses() const {
    std::string text;
    for (const std::string& address : addresses_) {
      if (!text.empty()) text += ", ";
      text += address;
    }
    return text;
  }

  // One address at a time, in the resolver's order, as Connector does for a session; the step
  // timer bounds all attempts together.
  void connectNext() {
    if (nextAddress_ >= addresses_.size()) {
      std::string cause = "no address accepted the connection: ";
      for (std::size_t i = 0; i < connectFailures_.size(); ++i) {
        if (i > 0) cause += "; ";
        cause += connectFailures_[i];
      }
      return failStep(std::move(cause));
    }
    const std::string& address = addresses_[nextAddress_++];
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(connectDeadline_ - Clock::now());
    if (left.count() <= 0) left = std::chrono::milliseconds(1);
    connector_.connect(address, upstream_.port, left,
                       [this, address](UvHandle<uv_tcp_t> tcp, std::string error) {
                         guarded([&] { connected(address, std::move(tcp), std::move(error)); });
                       });
  }

  void connected(const std::string& address, UvHandle<uv_tcp_t> tcp, std::string error) {
    if (!error.empty()) {
      connectFailures_.push_back(std::move(error));
      return connectNext();
    }
    finishStep(true, protocol::formatHostPort(address, upstream_.port));
    Stream::Options options;
    options.readBufferSize = config_.server.bufferSize;
    options.highWatermark = config_.server.writeHighWatermark;
    options.handshakeTimeout = ms(upstream_.connectTimeout);
    Stream::Callbacks callbacks;
    callbacks.onData = [this](std::string_view data) { guarded([&] { client_.feed(data); }); };
    callbacks.onDrain = [] {};
    callbacks.onTlsReady = [this] { guarded([&] { tlsReady(); }); };
    callbacks.onClose = [this](std::string_view reason) { guarded([&] { streamClosed(reason); }); };
    stream_ = std::make_unique<Stream>(loop_, std::move(tcp), options, std::move(callbacks));
    if (upstream_.tls == config::UpstreamTls::Implicit) {
      beginStep(ProbeStep::Tls, ms(upstream_.connectTimeout));
      if (tls_ == nullptr) return failStep("no TLS client context");
      stream_->startTlsClient(tls_->get(), upstream_.effectiveServerName(), tls_->verify());
    } else {
      startImap();
    }
    stream_->startReading();
  }

  // --- TLS and IMAP ------------------------------------------------------------------------

  void tlsReady() {
    tlsDone_ = true;
    std::string detail = stream_->tlsVersion() + " " + stream_->tlsCipher() + "; " +
                         certificateText(stream_->peerCertificate().get());
    if (tls_ != nullptr && !tls_->verify()) {
      detail += "; certificate NOT verified (verify_certificate = false)";
    } else {
      detail += "; verified for " + upstream_.effectiveServerName();
    }
    finishStep(true, std::move(detail));
    if (upstream_.tls == config::UpstreamTls::Implicit) {
      startImap();
    } else {
      beginStep(ProbeStep::Capability, ms(upstream_.commandTimeout));
      client_.onTlsReady();
    }
  }

  void startImap() {
    beginStep(ProbeStep::Greeting, ms(upstream_.commandTimeout));
    if (!login_) {
      client_.connected(std::string_view(), std::string_view());
    } else if (!login_->oauth2.empty()) {
      client_.connected(protocol::BearerLogin{login_->user, accessToken_, bearerMechanism_,
                                              upstream_.host, upstream_.port});
      protocol::secureWipe(accessToken_);
    } else {
      client_.connected(login_->user, login_->password);
      protocol::secureWipe(login_->password);
    }
  }

  void streamClosed(std::string_view reason) {
    stream_.reset();
    if (phase_ == Phase::Done) return;
    if (current_ == ProbeStep::Logout && inStep_) {
      finishStep(true, "the server closed the connection");
      return finish();
    }
    std::string cause(reason);
    const std::string_view verification = "TLS certificate verification failed: ";
    if (cause.rfind(verification, 0) == 0) {
      cause = "certificate verification failed: " + cause.substr(verification.size());
    }
    if (current_ == ProbeStep::Greeting && inStep_ && !greeted_) {
      cause = "the connection closed before a greeting (" + cause + ")";
    }
    failStep(cause);
  }

  std::string loginText() const {
    std::string how;
    if (!login_->oauth2.empty()) {
      how = "with an access token of [oauth2." + login_->oauth2 + "]";
    } else {
      how = "with a password";
    }
    return "as " + protocol::loggableText(login_->user) + " " + how;
  }

  uv_loop_t* loop_;
  const config::Config& config_;
  const config::UpstreamConfig& upstream_;
  const TlsClientContext* tls_;
  TokenAccess tokens_;
  std::optional<ProbeLogin> login_;
  std::function<void(ProbeReport)> done_;
  protocol::ImapClient client_;
  Connector connector_;
  Timer stepTimer_;
  Timer reportTimer_;
  std::unique_ptr<Stream> stream_;
  std::shared_ptr<bool> alive_;

  ProbeReport report_;
  Phase phase_ = Phase::Running;
  ProbeStep current_ = ProbeStep::Resolve;
  bool inStep_ = false;
  Clock::time_point started_{};
  Clock::time_point stepStarted_{};
  ResolveRequest* resolveRequest_ = nullptr;  // owned by libuv until its callback
  std::vector<std::string> addresses_;
  std::size_t nextAddress_ = 0;
  std::vector<std::string> connectFailures_;
  Clock::time_point connectDeadline_{};
  bool tlsDone_ = false;
  bool greeted_ = false;
  bool capabilitiesFromGreeting_ = false;
  std::string lastClientMessage_;
  std::string accessToken_;
  protocol::BearerMechanism bearerMechanism_ = protocol::BearerMechanism::Auto;
  std::optional<std::uint32_t> exists_;
  std::string uidValidity_;
};

UpstreamProbe::UpstreamProbe(uv_loop_t* loop, const config::Config& config,
                             const TlsClientContext* tls, TokenAccess tokens)
    : loop_(loop), config_(config), tls_(tls), tokens_(std::move(tokens)) {}

UpstreamProbe::~UpstreamProbe() = default;

void UpstreamProbe::start(std::optional<ProbeLogin> login, std::function<void(ProbeReport)> done) {
  run_.reset();
  run_ = std::make_unique<Run>(loop_, config_, tls_, tokens_, std::move(login), std::move(done));
  run_->start();
}

bool UpstreamProbe::running() const {
  return run_ && !run_->finished();
}

std::unique_ptr<UpstreamProbe> probeReachability(uv_loop_t* loop, const config::Config& config,
                                                 const TlsClientContext* tls,
                                                 std::function<void(ProbeReport)> done) {
  auto probe = std::make_unique<UpstreamProbe>(loop, config, tls);
  probe->start(std::nullopt, std::move(done));
  return probe;
}

}  // namespace popbridge::proxy
