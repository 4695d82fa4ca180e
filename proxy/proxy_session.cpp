#include "proxy/proxy_session.h"

#include <openssl/rand.h>

#include <cstring>
#include <optional>
#include <utility>

#include "config/password.h"
#include "protocol/net_address.h"
#include "protocol/text.h"

namespace popbridge::proxy {
namespace {

// One end of the client's TCP connection: address without brackets, port.
bool socketEnd(const sockaddr_storage& storage, std::string& ip, std::uint16_t& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (uv_ip_name(reinterpret_cast<const sockaddr*>(&storage), text, sizeof text) != 0) return false;
  ip = text;
  port = ntohs(storage.ss_family == AF_INET6
                   ? reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port
                   : reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  return true;
}

std::optional<protocol::ClientEndpoints> clientEndpoints(uv_tcp_t* tcp) {
  sockaddr_storage peer{};
  sockaddr_storage local{};
  int peerLength = sizeof peer;
  int localLength = sizeof local;
  protocol::ClientEndpoints e;
  if (tcp == nullptr ||
      uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&peer), &peerLength) != 0 ||
      uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&local), &localLength) != 0 ||
      !socketEnd(peer, e.clientIp, e.clientPort) || !socketEnd(local, e.localIp, e.localPort)) {
    return std::nullopt;
  }
  return e;
}

// IMAP tags no one outside can predict: a message that starts with ")" CRLF
// and a guessed tag would otherwise pass for a server's broken literal.
std::string randomTagPrefix() {
  std::uint8_t bytes[6];
  RAND_bytes(bytes, sizeof bytes);
  std::string prefix;
  for (std::uint8_t b : bytes) prefix += static_cast<char>('A' + b % 26);
  return prefix;
}

protocol::SessionOptions makeOptions(const config::Config& config,
                                     const config::ListenerConfig& listener, uv_tcp_t* client,
                                     const ClientOrigin& origin, SharedSnapshotCache* cache,
                                     protocol::UidlMapStore* uidlMap) {
  protocol::SessionOptions options;
  options.upstreamTagPrefix = randomTagPrefix();
  if (config.upstream.sendClientAddress) {
    options.forwardClient = origin.endpoints ? origin.endpoints : clientEndpoints(client);
  }
  options.tlsActive = listener.tls == config::ListenerTls::Implicit;
  options.stlsAvailable = listener.tls == config::ListenerTls::StartTls;
  options.allowPlaintextAuth = listener.allowPlaintextAuth;
  options.upstreamStartTls = config.upstream.tls == config::UpstreamTls::StartTls;
  options.upstreamLogin = config.upstream.auth;
  options.maxBadCommands = config.server.maxBadCommands;
  options.loginDelaySeconds = static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(config.server.loginDelay).count());
  options.mailbox = config.mailbox;
  // What was read ahead waits within the same bound as the client's unsent output.
  options.readAheadLimit = config.upstream.readAhead ? config.server.writeHighWatermark : 0;
  if (config.upstream.snapshotCache && cache != nullptr) {
    options.snapshotCache = cache;
    options.snapshotScope = protocol::formatHostPort(config.upstream.host, config.upstream.port);
  }
  options.uidlMap = uidlMap;
  return options;
}

}  // namespace

// A password check on libuv's thread pool: argon2 takes tens of milliseconds
// of CPU, which must not stall every other session on the loop.
struct ProxySession::VerifyJob {
  VerifyJob() = default;
  VerifyJob(const VerifyJob&) = delete;
  VerifyJob& operator=(const VerifyJob&) = delete;
  ~VerifyJob() { protocol::secureWipe(password); }

  uv_work_t request{};
  std::weak_ptr<bool> alive;
  // Keeps `account` valid on the pool thread even when the session (and with it the last
  // reference to an older configuration) is gone before the check ends.
  std::shared_ptr<const ConfigSnapshot> snapshot;
  ProxySession* session = nullptr;
  LoginGuard* guard = nullptr;  // outlives every loop; the slot goes back to it
  const config::AccountConfig* account = nullptr;
  std::string password;
  bool ok = false;
};

ProxySession::ProxySession(const SessionEnvironment& env, const ListenerRuntime& listener,
                           std::uint64_t id, UvHandle<uv_tcp_t> client,
                           std::function<void(ProxySession&)> onDone, ClientOrigin origin)
    : env_(env),
      listener_(listener),
      id_(id),
      onDone_(std::move(onDone)),
      via_(std::move(origin.via)),
      started_(std::chrono::steady_clock::now()),
      session_(
          makeOptions(*env.config, *listener.config, client.initialised() ? client.get() : nullptr,
                      origin, env.snapshotCache, env.state ? &uidlMap_ : nullptr),
          *this),
      idleTimer_(env.loop),
      commandTimer_(env.loop),
      delayTimer_(env.loop) {
  const auto& server = env_.config->server;
  Stream::Options options;
  options.readBufferSize = server.bufferSize;
  options.highWatermark = server.writeHighWatermark;
  options.handshakeTimeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(listener_.config->handshakeTimeout);
  Stream::Callbacks callbacks;
  callbacks.onData = guard([this](std::string_view data) { onClientData(data); });
  callbacks.onDrain = guard([this] { onClientDrain(); });
  callbacks.onTlsReady = guard([this] { onClientTlsReady(); });
  callbacks.onClose = guard([this](std::string_view reason) { onClientClosed(reason); });
  client_ = std::make_unique<Stream>(env_.loop, std::move(client), options, std::move(callbacks));
  // The address a load balancer vouched for is the client's everywhere: logs, per-IP limits,
  // the login throttle, IMAP ID.
  clientAddress_ = origin.endpoints ? protocol::formatHostPort(origin.endpoints->clientIp,
                                                               origin.endpoints->clientPort)
                                    : client_->peerAddress();
  client_->receivedEarlier(std::move(origin.receivedEarlier));
  metrics_.sessionStarted(listener_.index);
}

ProxySession::~ProxySession() {
  *alive_ = false;
  // A session destroyed before it ended (the shutdown timeout) still leaves the gauges.
  if (!done_) metrics_.sessionEnded(listener_.index, EndReason::Shutdown);
  for (; upstreamsCounted_ > 0; --upstreamsCounted_) metrics_.upstreamClosed();
  if (env_.loginGate) env_.loginGate->cancel(id_);
  protocol::secureWipe(heldPassword_);
}

std::string ProxySession::clientIp() const {
  // "[::1]:5000" -> "::1", "1.2.3.4:5000" -> "1.2.3.4"
  std::string_view address = clientAddress_;
  if (!address.empty() && address.front() == '[') {
    return std::string(address.substr(1, address.find(']') - 1));
  }
  return std::string(address.substr(0, address.rfind(':')));
}

void ProxySession::start() {
  guarded([this] { startGuarded(); });
}

void ProxySession::startGuarded() {
  logAt(LogLevel::Info, "session start on " + listener_.config->address +
                            " (tls=" + std::string(config::toString(listener_.config->tls)) + ")" +
                            (via_.empty() ? "" : " via " + via_));
  touchIdle();
  // From accept, so a client stalling in the TLS handshake is covered too.
  loginTimer_.start(
      std::chrono::duration_cast<std::chrono::milliseconds>(env_.config->server.loginTimeout),
      guard([this] { onLoginTimeout(); }));
  if (listener_.config->tls == config::ListenerTls::Implicit) {
    client_->startTlsServer(listener_.tls->get());
  } else {
    greeted_ = true;
    session_.start();
  }
  if (client_) client_->startReading();
}

void ProxySession::drain() {
  if (done_) return;
  if (!greeted_) {
    // Still in the implicit-TLS handshake: there is no POP3 conversation to answer in.
    if (client_) client_->close("server shutting down (not logged in)");
    return;
  }
  auto state = session_.state();
  if (state == protocol::Pop3Session::State::Authorization ||
      state == protocol::Pop3Session::State::LoggingIn) {
    dropPendingLogin();
  }
  session_.drain();
}

void ProxySession::drainDeadline() {
  if (done_) return;
  if (!greeted_) {
    if (client_) client_->close("shutdown timeout");
    return;
  }
  session_.drainDeadline();
}

void ProxySession::shutdown() {
  if (done_) return;
  if (!greeted_) {
    if (client_) client_->close("server shutting down");
    return;
  }
  if (session_.state() == protocol::Pop3Session::State::Authorization ||
      session_.state() == protocol::Pop3Session::State::LoggingIn) {
    dropPendingLogin();
  }
  session_.abort("server shutting down");
}

// --- client side -------------------------------------------------------------

void ProxySession::onClientData(std::string_view data) {
  metrics_.bytes(ByteCounter::ClientIn, data.size());
  // The idle timer counts commands, not bytes: a client trickling a line that
  // never ends (slowloris) must not hold its connection forever. Every line,
  // good or bad, ends at an LF, and bad ones count towards max_bad_commands.
  if (data.find('\n') != std::string_view::npos) touchIdle();
  if (session_.closed()) return;
  if (clientInput_.empty() && session_.readyForCommand() && !client_->aboveHighWatermark()) {
    auto alive = alive_;
    std::size_t consumed = session_.feedClient(data);
    if (!*alive || done_) return;
    data.remove_prefix(consumed);
  }
  if (!data.empty() && !session_.closed()) {
    // Kept only while the session is busy; reads stay paused meanwhile, so
    // this holds at most one read's worth.
    clientInput_.append(data);
  }
  pumpClient();
}

void ProxySession::pumpClient() {
  if (done_ || !client_) return;
  auto alive = alive_;
  std::size_t offset = 0;
  while (offset < clientInput_.size() && session_.readyForCommand() &&
         !client_->aboveHighWatermark()) {
    std::size_t consumed = session_.feedClient(std::string_view(clientInput_).substr(offset));
    if (!*alive || done_) return;
    if (consumed == 0) break;
    offset += consumed;
  }
  clientInput_.erase(0, offset);
  holdUpstreamForReadAhead();
  noteLoginProgress();
  if (session_.closed()) return;
  // While a login waits (throttle, queue, check), reading goes on up to one read buffer of
  // pipelined input, so that a client hanging up is noticed and its check skipped.
  bool readDuringLogin = session_.state() == protocol::Pop3Session::State::LoggingIn &&
                         clientInput_.size() < env_.config->server.bufferSize;
  bool wantPause = (!clientInput_.empty() && !readDuringLogin) || client_->aboveHighWatermark();
  if (wantPause && !clientPaused_) {
    client_->pauseReading();
    clientPaused_ = true;
  } else if (!wantPause && clientPaused_) {
    clientPaused_ = false;
    client_->resumeReading();
  }
  updateTimers();
}

void ProxySession::onClientDrain() {
  touchIdle();
  if (upstream_ && upstreamPaused_) {
    upstreamPaused_ = false;
    if (!readAheadPaused_) upstream_->resumeReading();
  }
  pumpClient();
}

// A read-ahead the client has not asked for holds at most write_high_watermark octets (plus
// the read being parsed): then reads stop until the client asks for it (the rest streams like
// any RETR, under the client's watermark) or for something else (the rest is dropped).
void ProxySession::holdUpstreamForReadAhead() {
  const bool hold = upstream_ && session_.readAheadFull();
  if (hold == readAheadPaused_) return;
  readAheadPaused_ = hold;
  if (upstreamPaused_ || !upstream_) return;  // paused for the client: its drain resumes
  if (hold) {
    upstream_->pauseReading();
  } else {
    upstream_->resumeReading();
  }
}

void ProxySession::onClientTlsReady() {
  metrics_.tlsHandshake(TlsSide::Client, client_->tlsVersion());
  logAt(LogLevel::Debug,
        "client TLS established: " + client_->tlsVersion() + " " + client_->tlsCipher());
  if (!greeted_) {
    greeted_ = true;
    session_.start();
  } else {
    session_.onClientTlsReady();
  }
  pumpClient();
}

void ProxySession::onClientClosed(std::string_view reason) {
  if (endReason_.empty()) endReason_ = reason;
  if (client_ && client_->tlsActive() && !client_->tlsEstablished()) {
    metrics_.tlsHandshakeFailed(TlsSide::Client);  // ended during the handshake
  }
  if (loginPending_ && !session_.closed() && env_.loginGate) {
    loginPending_ = false;
    LoginGuard::Failures failures = recordLoginFailure();
    logAt(LogLevel::Info, "login abandoned: the client left before its answer (" +
                              std::to_string(failures.ip) + " failed or abandoned logins from " +
                              clientIp() + ", " + std::to_string(failures.user) + " for the user)");
  }
  auto alive = alive_;
  session_.onClientClosed(reason);
  if (!*alive) return;
  markDone();
}

void ProxySession::sendToClient(std::string_view bytes) {
  metrics_.bytes(ByteCounter::ClientOut, bytes.size());
  if (client_) client_->write(bytes);
}

void ProxySession::sendToClientAndRecycle(std::string& bytes) {
  metrics_.bytes(ByteCounter::ClientOut, bytes.size());
  if (client_) {
    client_->writeAndRecycle(bytes);
  } else {
    bytes.clear();
  }
}

void ProxySession::startClientTls() {
  // "+OK Begin TLS" is already queued; Stream sends it in the clear first.
  clientInput_.clear();
  client_->startTlsServer(listener_.tls->get());
}

void ProxySession::closeClient(std::string_view reason) {
  if (endReason_.empty()) endReason_ = reason;
  if (client_) client_->closeAfterFlush(reason);
}

void ProxySession::startAuthDelay() {
  // Only a rejected login gets here (outages answer at once), local or upstream.
  if (loginPending_ && env_.loginGate) {
    loginPending_ = false;
    LoginGuard::Failures failures = recordLoginFailure();
    logAt(LogLevel::Debug, "login failed (" + std::to_string(failures.ip) +
                               " failed or abandoned logins from " + clientIp() + ", " +
                               std::to_string(failures.user) + " for the user)");
  }
  delayTimer_.start(
      std::chrono::duration_cast<std::chrono::milliseconds>(env_.config->server.authFailureDelay),
      guard([this] {
        auto alive = alive_;
        session_.onDelayElapsed();
        if (*alive) pumpClient();
      }));
}

// --- the UIDL map ----------------------------------------------------------------

template <typename... Args>
std::function<void(Args...)> ProxySession::UidlMapRelay::relay(std::function<void(Args...)> done) {
  std::weak_ptr<bool> weak = session_.alive_;
  return [this, weak, done = std::move(done)](Args... args) mutable {
    if (inCall_) return done(std::move(args)...);  // answered inside the call
    auto alive = weak.lock();
    if (!alive || !*alive) return;
    ProxySession& session = session_;
    session.guarded([&] {
      done(std::move(args)...);
      if (*alive) session.pumpClient();
    });
  };
}

template <typename Call>
void ProxySession::UidlMapRelay::forward(Call&& call) {
  const bool outer = inCall_;
  inCall_ = true;
  call(*session_.env_.state);
  inCall_ = outer;
}

void ProxySession::UidlMapRelay::getUidls(const Mailbox& mailbox,
                                          std::vector<protocol::UidKey> keys,
                                          EntriesCallback done) {
  forward(
      [&](StateStore& store) { store.getUidls(mailbox, std::move(keys), relay(std::move(done))); });
}

void ProxySession::UidlMapRelay::loadUidls(const Mailbox& mailbox, EntriesCallback done) {
  forward([&](StateStore& store) { store.loadUidls(mailbox, relay(std::move(done))); });
}

void ProxySession::UidlMapRelay::putUidls(const Mailbox& mailbox,
                                          std::vector<protocol::UidlRecord> entries,
                                          DoneCallback done) {
  forward([&](StateStore& store) {
    store.putUidls(mailbox, std::move(entries), relay(std::move(done)));
  });
}

void ProxySession::UidlMapRelay::eraseUidls(const Mailbox& mailbox,
                                            std::vector<protocol::UidKey> keys, DoneCallback done) {
  forward([&](StateStore& store) {
    store.eraseUidls(mailbox, std::move(keys), relay(std::move(done)));
  });
}

// --- credentials ---------------------------------------------------------------

LoginGuard::Failures ProxySession::recordLoginFailure() {
  const std::string ip = clientIp();
  const std::string& user = session_.stats().user;
  LoginGuard& guard = env_.loginGate->guard();
  LoginGuard::Failures failures = guard.recordFailure(ip, user, std::chrono::steady_clock::now());
  if (env_.loginCounters) env_.loginCounters->failure(guard, ip, user);
  return failures;
}

void ProxySession::resolveCredentials(std::string_view user, std::string_view password) {
  loginPending_ = true;
  loginStarted_ = std::chrono::steady_clock::now();
  if (env_.loginGate && env_.loginCounters) {
    // Other replicas' failures first: the throttle decides on the cluster's counts.
    holdLogin(user, password);
    refreshingCounts_ = true;
    std::weak_ptr<bool> weak = alive_;
    env_.loginCounters->refresh(env_.loginGate->guard(), clientIp(), user, [this, weak] {
      auto alive = weak.lock();
      if (!alive || !*alive || !refreshingCounts_ || done_ || session_.closed()) return;
      guarded([&] {
        refreshingCounts_ = false;
        releaseHeldLogin(&ProxySession::throttleThenCheck);
        if (*alive) pumpClient();
      });
    });
    return;
  }
  throttleThenCheck(user, password);
}

void ProxySession::holdLogin(std::string_view user, std::string_view password) {
  heldUser_ = std::string(user);
  heldPassword_ = std::string(password);
}

void ProxySession::releaseHeldLogin(void (ProxySession::*then)(std::string_view,
                                                               std::string_view)) {
  // Copied, not moved: a moved short string leaves its bytes behind, unwiped.
  std::string heldUser = std::exchange(heldUser_, {});
  std::string heldPassword = heldPassword_;
  protocol::secureWipe(heldPassword_);
  (this->*then)(heldUser, heldPassword);
  protocol::secureWipe(heldPassword);
}

void ProxySession::throttleThenCheck(std::string_view user, std::string_view password) {
  if (env_.loginGate) {
    std::string ip = clientIp();
    // Keyed by the name as given, before anything is checked: a name that does not exist is
    // throttled like one that does, so the delay tells nothing about which names exist.
    LoginGuard::Throttle throttle =
        env_.loginGate->guard().throttle(ip, user, std::chrono::steady_clock::now());
    if (throttle.delay.count() > 0) {
      logAt(LogLevel::Info,
            "login throttled: " + std::to_string(throttle.failures) +
                " failed or abandoned logins " +
                (throttle.subject == LoginGuard::Subject::Ip ? "from " + ip
                                                             : std::string("for this user")) +
                "; checking in " + std::to_string(throttle.delay.count()) + " ms");
      refused(RefusedReason::Throttled);
      holdLogin(user, password);
      delayTimer_.start(throttle.delay, guard([this] {
                          auto alive = alive_;
                          releaseHeldLogin(&ProxySession::checkCredentials);
                          if (*alive) pumpClient();
                        }));
      return;
    }
  }
  checkCredentials(user, password);
}

void ProxySession::checkCredentials(std::string_view user, std::string_view password) {
  const config::Config& config = *env_.config;
  if (config.accounts.empty()) {
    protocol::UpstreamCredentials credentials;
    credentials.user = std::string(user);
    credentials.password = std::string(password);
    session_.onCredentials(std::move(credentials));
    return;
  }
  auto job = std::make_unique<VerifyJob>();
  job->alive = alive_;
  job->snapshot = env_.snapshot;
  job->session = this;
  job->guard = env_.loginGate ? &env_.loginGate->guard() : nullptr;
  job->account = config.findAccount(user);
  job->password = std::string(password);
  job->request.data = job.get();
  queuedJob_ = std::move(job);
  if (!env_.loginGate) return startVerify();
  switch (env_.loginGate->requestCheck(id_, guard([this] { startVerify(); }))) {
    case LoginGuard::Admission::Run:
      return startVerify();
    case LoginGuard::Admission::Queued:
      logAt(LogLevel::Debug, "password check queued");
      return;
    case LoginGuard::Admission::Refused:
      queuedJob_.reset();
      loginPending_ = false;
      logAt(LogLevel::Warn,
            "password check refused: " + std::to_string(config.server.maxPasswordChecks) +
                " running and " + std::to_string(config.server.passwordCheckQueue) +
                " waiting (max_password_checks, password_check_queue)");
      endBeforeLogin("Too many logins in progress, try again later.", protocol::RespCode::SysTemp,
                     "password checks busy");
      return;
  }
}

// Holds a check slot (or there is no gate): the slot is handed back when the job ends.
void ProxySession::startVerify() {
  std::unique_ptr<VerifyJob> job = std::move(queuedJob_);
  if (!job) return;
  // Until uv_queue_work owns the job, an exception must still give the slot back.
  struct SlotReturn {
    VerifyJob* job;
    ~SlotReturn() {
      if (job != nullptr && job->guard != nullptr) job->guard->releaseCheck();
    }
  } slotReturn{job.get()};
  logAt(LogLevel::Debug, "password check started");
  int rc = uv_queue_work(
      env_.loop, &job->request,
      [](uv_work_t* request) {
        auto* work = static_cast<VerifyJob*>(request->data);
        // Unknown users get a hash check too, so timing does not reveal which names exist.
        try {
          work->ok =
              config::verifyPassword(work->account ? std::string_view(work->account->passwordHash)
                                                   : config::dummyPasswordHash(),
                                     work->password) &&
              work->account != nullptr;
        } catch (...) {
          work->ok = false;  // a thread-pool thread must not throw: the check simply fails
        }
        protocol::secureWipe(work->password);
      },
      [](uv_work_t* request, int status) {
        std::unique_ptr<VerifyJob> work(static_cast<VerifyJob*>(request->data));
        if (work->guard) work->guard->releaseCheck();
        auto alive = work->alive.lock();
        if (!alive || !*alive) return;
        ProxySession& self = *work->session;
        // Ended meanwhile (drain, login timeout, hang-up): it must claim nothing, not even
        // for the moment until it is reaped, or a real login of the mailbox gets [IN-USE].
        if (self.done_ || self.session_.closed()) return;
        self.guarded([&] {
          const config::AccountConfig* account = work->account;
          if (status != 0 || !work->ok) {
            self.session_.onCredentials(std::nullopt);
            if (*alive) self.pumpClient();
            return;
          }
          // Proven by the hash: claimed before a token is fetched or anything goes upstream.
          self.admitThen(
              account->upstreamUser, account->mailbox.folder, account->mailbox.exclusive,
              [&self, account](protocol::MaildropClaim claim) {
                if (claim != protocol::MaildropClaim::Granted) {
                  self.session_.onCredentialsFailed(
                      claim == protocol::MaildropClaim::InUse ? protocol::RespCode::InUse
                                                              : protocol::RespCode::LoginDelay,
                      claim == protocol::MaildropClaim::InUse ? "maildrop in use"
                                                              : "login within login_delay");
                } else if (!account->oauth2.empty()) {
                  self.requestToken(*account, 0);
                } else {
                  protocol::UpstreamCredentials credentials;
                  credentials.user = account->upstreamUser;
                  credentials.password = account->upstreamPassword;
                  credentials.mailbox = account->mailbox;
                  self.session_.onCredentials(std::move(credentials));
                }
              });
          if (*alive) self.pumpClient();
        });
      });
  if (rc != 0) {
    session_.onCredentials(std::nullopt);
    return;  // slotReturn gives the slot back
  }
  slotReturn.job = nullptr;
  job.release();  // owned by the after-work callback now, which gives the slot back
}

void ProxySession::requestToken(const config::AccountConfig& account, std::uint64_t rejected) {
  oauthAccount_ = &account;
  if (env_.tokens == nullptr || !env_.mailbox) {
    session_.onCredentialsFailed(protocol::RespCode::SysTemp, "no token service on this loop");
    return;
  }
  std::weak_ptr<bool> weak = alive_;
  auto asked = std::chrono::steady_clock::now();
  env_.tokens->get(account.oauth2, rejected, env_.mailbox, [this, weak, asked](TokenResult result) {
    auto alive = weak.lock();
    if (!alive || !*alive) return;
    guarded([&] {
      onToken(std::move(result), asked);
      if (*alive) pumpClient();
    });
  });
}

void ProxySession::onToken(TokenResult result, std::chrono::steady_clock::time_point asked) {
  const config::AccountConfig* account = oauthAccount_;
  if (account == nullptr) return;
  switch (result.status) {
    case TokenResult::Status::Ok: {
      const config::OAuthIdentityConfig* identity = env_.config->findOAuthIdentity(account->oauth2);
      auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - asked);
      logAt(LogLevel::Debug, "access token of [oauth2." + account->oauth2 + "] in " +
                                 std::to_string(waited.count()) + " ms");
      tokenGeneration_ = result.generation;
      protocol::UpstreamCredentials credentials;
      credentials.user = account->upstreamUser;
      credentials.bearer = identity ? identity->mechanism : protocol::BearerMechanism::Auto;
      credentials.accessToken = std::move(result.accessToken);
      credentials.bearerHost = env_.config->upstream.host;
      credentials.bearerPort = env_.config->upstream.port;
      credentials.mailbox = account->mailbox;
      session_.onCredentials(std::move(credentials));
      return;
    }
    case TokenResult::Status::Auth:
      return session_.onCredentialsFailed(protocol::RespCode::Auth, result.reason);
    case TokenResult::Status::Configuration:
      return session_.onCredentialsFailed(protocol::RespCode::SysPerm, result.reason);
    case TokenResult::Status::Temporary:
      return session_.onCredentialsFailed(protocol::RespCode::SysTemp, result.reason);
  }
}

bool ProxySession::renewCredentials() {
  if (oauthAccount_ == nullptr) return false;
  requestToken(*oauthAccount_, tokenGeneration_);
  return true;
}

// Called after every event: a login ends in TRANSACTION, or back in AUTHORIZATION without a
// rejection (an outage, answered at once), which is no failure of the client's.
void ProxySession::noteLoginProgress() {
  if (loggedIn_) return;
  auto state = session_.state();
  if (state == protocol::Pop3Session::State::Transaction) {
    loggedIn_ = true;
    loginTimer_.stop();
    if (env_.loginGate) {
      LoginGuard& guard = env_.loginGate->guard();
      if (loginPending_) {
        guard.recordSuccess(clientIp(), session_.stats().user);
        if (env_.loginCounters) env_.loginCounters->success(clientIp(), session_.stats().user);
      }
      // RFC 2449: the interval runs from the "+OK" to PASS or AUTH.
      guard.recordLogin(session_.stats().user, std::chrono::steady_clock::now());
    }
    loginPending_ = false;
  } else if (state != protocol::Pop3Session::State::LoggingIn) {
    loginPending_ = false;
    // A login that failed after its claim (the upstream refused it, the folder cannot be
    // opened, the upstream went away) holds no maildrop.
    lease_.reset();
    claim_.reset();
  }
}

void ProxySession::claimMaildrop(const protocol::MaildropClaimRequest& request) {
  // Local accounts were admitted after their hash check already (claim_ is held, or there is no
  // registry); a pass-through login is proven only now, by the upstream's OK.
  admitThen(request.account, request.folder, request.exclusive,
            [this](protocol::MaildropClaim claim) { session_.onMaildropClaimed(claim); });
}

void ProxySession::admitThen(std::string_view account, std::string_view folder, bool exclusive,
                             std::function<void(protocol::MaildropClaim)> answer) {
  const protocol::MaildropClaim claim = admit(account, folder, exclusive);
  if (claim != protocol::MaildropClaim::Granted || env_.leases == nullptr || lease_) {
    return answer(claim);
  }
  // This process granted it; the other replicas are asked through Redis. When Redis cannot be
  // asked the login goes on (reads keep working) and QUIT applies no deletion.
  MaildropLease::Events events;
  events.onUnavailable = guard([this](std::string_view problem) {
    logAt(LogLevel::Warn,
          "maildrop lease not confirmed (QUIT will apply no deletion unless it "
          "is): " +
              std::string(problem));
  });
  events.onLost = guard([this](std::string_view why) {
    metrics_.leaseLost();
    logAt(LogLevel::Warn,
          "maildrop lease lost: " + std::string(why) + "; QUIT will apply no deletion");
  });
  lease_ = std::make_unique<MaildropLease>(
      env_.loop, *env_.leases,
      SessionRegistry::Maildrop{std::string(account), std::string(folder), exclusive}, id_,
      env_.config->server.maxSessionsPerAccount, std::move(events));
  std::weak_ptr<bool> weak = alive_;
  lease_->acquire([this, weak, answer = std::move(answer), account = std::string(account),
                   folder = std::string(folder)](MaildropLeases::Outcome outcome) {
    auto alive = weak.lock();
    if (!alive || !*alive) return;
    guarded([&] {
      if (done_ || session_.closed()) return;
      if (outcome == MaildropLeases::Outcome::InUse ||
          outcome == MaildropLeases::Outcome::AccountFull) {
        logAt(LogLevel::Info,
              "login refused with [IN-USE]: " +
                  std::string(outcome == MaildropLeases::Outcome::InUse
                                  ? "maildrop in use on another replica"
                                  : "account at max_sessions_per_account across the replicas") +
                  " (upstream account " + account + ", folder \"" + folder + "\")");
        refused(RefusedReason::InUse);
        lease_.reset();
        claim_.reset();
        answer(protocol::MaildropClaim::InUse);
      } else {
        answer(protocol::MaildropClaim::Granted);
      }
      if (*alive) pumpClient();
    });
  });
}

bool ProxySession::confirmUpdate() {
  if (!lease_) return true;  // no cluster: this process's claim is the whole lock
  std::weak_ptr<bool> weak = alive_;
  lease_->confirm([this, weak](bool confirmed) {
    auto alive = weak.lock();
    if (!alive || !*alive) return;
    guarded([&] {
      if (!confirmed) {
        metrics_.updateRefusedState();
        logAt(LogLevel::Error,
              "QUIT refused with [SYS/TEMP]: the maildrop lease could not be confirmed in Redis "
              "(Redis unreachable or slow, or the lease was lost); nothing is deleted");
      }
      session_.onUpdateConfirmed(confirmed);
      if (*alive) pumpClient();
    });
  });
  return false;
}

protocol::MaildropClaim ProxySession::admit(std::string_view account, std::string_view folder,
                                            bool exclusive) {
  if (claim_) return protocol::MaildropClaim::Granted;
  const std::string& user = session_.stats().user;
  if (env_.loginGate) {
    auto wait = env_.loginGate->guard().loginDelayRemaining(user, std::chrono::steady_clock::now());
    if (wait.count() > 0) {
      logAt(LogLevel::Info,
            "login refused with [LOGIN-DELAY]: the user logged in less than login_delay ago; " +
                std::to_string(std::chrono::ceil<std::chrono::seconds>(wait).count()) +
                " s to wait");
      refused(RefusedReason::LoginDelay);
      return protocol::MaildropClaim::LoginDelay;
    }
  }
  if (env_.sessions == nullptr) return protocol::MaildropClaim::Granted;
  SessionRegistry::Maildrop maildrop{std::string(account), std::string(folder), exclusive};
  SessionRegistry::Verdict verdict = env_.sessions->tryClaim(maildrop, id_);
  if (verdict != SessionRegistry::Verdict::Granted) {
    logAt(LogLevel::Info, "login refused with [IN-USE]: " + std::string(toString(verdict)) +
                              " (upstream account " + std::string(account) + ", folder \"" +
                              std::string(folder) + "\")");
    refused(RefusedReason::InUse);
    return protocol::MaildropClaim::InUse;
  }
  claim_ = SessionClaim(*env_.sessions, std::move(maildrop), id_);
  return protocol::MaildropClaim::Granted;
}

void ProxySession::refused(RefusedReason reason) {
  metrics_.refused(reason);  // the caller writes the log line naming it
}

void ProxySession::onLoginTimeout() {
  if (done_ || loggedIn_) return;
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(env_.config->server.loginTimeout);
  logAt(LogLevel::Info,
        "login timeout: not logged in after " + std::to_string(seconds.count()) + "s, closing");
  loginPending_ = false;
  if (!greeted_) {
    // Still in the implicit-TLS handshake: there is no POP3 conversation to answer in.
    if (client_) client_->close("login timeout");
    return;
  }
  endBeforeLogin("Login timeout, closing connection.", protocol::RespCode::None, "login timeout");
}

void ProxySession::endBeforeLogin(std::string_view text, protocol::RespCode code,
                                  std::string_view reason) {
  auto state = session_.state();
  if (state != protocol::Pop3Session::State::Authorization &&
      state != protocol::Pop3Session::State::LoggingIn) {
    return;
  }
  dropPendingLogin();
  sendToClient(protocol::errReply(text, code));
  // The session's "connection over" input: it ends the session (dropping a login in progress)
  // and closes the client after flushing the line above.
  session_.onClientClosed(reason);
}

// Whatever a login still waits for (a throttle, a queued or running check) is for nobody, and
// its end is no failure of the client's.
void ProxySession::dropPendingLogin() {
  delayTimer_.stop();
  refreshingCounts_ = false;
  if (env_.loginGate) env_.loginGate->cancel(id_);
  queuedJob_.reset();
  protocol::secureWipe(heldPassword_);
  loginPending_ = false;
}

// --- upstream side -------------------------------------------------------------

void ProxySession::connectUpstream() {
  const auto& upstream = env_.config->upstream;
  connectStarted_ = std::chrono::steady_clock::now();
  connector_ = std::make_unique<Connector>(env_.loop);
  logAt(LogLevel::Debug,
        "connecting to upstream " + upstream.host + ":" + std::to_string(upstream.port));
  connector_->connect(
      upstream.host, upstream.port,
      std::chrono::duration_cast<std::chrono::milliseconds>(upstream.connectTimeout),
      guard([this](UvHandle<uv_tcp_t> tcp, std::string error) {
        onConnected(std::move(tcp), std::move(error));
      }));
}

void ProxySession::onConnected(UvHandle<uv_tcp_t> tcp, std::string error) {
  auto alive = alive_;
  if (!error.empty()) {
    session_.onUpstreamFailed(error);
    if (*alive) pumpClient();
    return;
  }
  const auto& config = *env_.config;
  Stream::Options options;
  options.readBufferSize = config.server.bufferSize;
  options.highWatermark = config.server.writeHighWatermark;
  options.handshakeTimeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.upstream.connectTimeout);
  std::uint64_t generation = ++upstreamGeneration_;
  // Routed, so that the stream can pass to the pool and to a later session with it.
  upstreamRoute_ = std::make_shared<UpstreamRoute>();
  routeUpstream(generation);
  upstreamLoggedInAt_ = std::chrono::steady_clock::now();
  upstream_ = std::make_unique<Stream>(env_.loop, std::move(tcp), options,
                                       UpstreamRoute::callbacks(upstreamRoute_));
  syncUpstreamGauge();
  upstreamPaused_ = false;
  if (config.upstream.tls != config::UpstreamTls::Implicit) {
    observeSince(HistogramId::UpstreamConnect, connectStarted_);
  }
  if (config.upstream.tls == config::UpstreamTls::Implicit) {
    upstream_->startTlsClient(env_.upstreamTls->get(), config.upstream.effectiveServerName(),
                              env_.upstreamTls->verify());
  } else {
    session_.onUpstreamConnected();
  }
  if (!*alive || !upstream_) return;
  upstream_->startReading();
  updateTimers();
}

void ProxySession::routeUpstream(std::uint64_t generation) {
  auto handlers = std::make_shared<UpstreamRoute::Handlers>();
  handlers->onData = guard([this](std::string_view data) { onUpstreamData(data); });
  handlers->onTlsReady = guard([this] { onUpstreamTlsReady(); });
  handlers->onClose =
      guard([this, generation](std::string_view reason) { onUpstreamClosed(reason, generation); });
  upstreamRoute_->handlers = std::move(handlers);
}

UpstreamPool::Limits ProxySession::poolLimits() const {
  const auto& upstream = env_.config->upstream;
  UpstreamPool::Limits limits;
  limits.idle = std::chrono::duration_cast<std::chrono::milliseconds>(upstream.poolIdle);
  limits.maxPerAccount = upstream.poolMaxPerAccount;
  limits.maxTotal = upstream.poolMaxTotal;
  limits.maxSessionsPerAccount =
      env_.sessions != nullptr ? env_.config->server.maxSessionsPerAccount : 0;
  return limits;
}

std::optional<protocol::ImapResumeState> ProxySession::adoptPooledUpstream(
    const protocol::UpstreamCredentials& credentials) {
  poolKey_.reset();
  UpstreamPool* pool = env_.upstreamPool;
  if (pool == nullptr || pool->closed() || env_.config->upstream.poolIdle.count() <= 0 ||
      upstream_) {
    return std::nullopt;
  }
  poolKey_ = makeUpstreamPoolKey(env_.snapshot ? env_.snapshot->generation : 0, credentials);
  if (env_.config->upstream.sendClientAddress) poolKey_->clientIp = clientIp();
  std::optional<UpstreamPool::Connection> taken = pool->take(*poolKey_);
  if (!taken) {
    // A local account holds its claim already; a pass-through login claims after the upstream's
    // OK, so it counts itself here.
    pool->makeRoom(credentials.user, poolLimits(), claim_ ? 0 : 1);
    return std::nullopt;
  }
  const std::uint64_t generation = ++upstreamGeneration_;
  upstream_ = std::move(taken->stream);
  upstreamRoute_ = std::move(taken->route);
  routeUpstream(generation);
  upstreamLoggedInAt_ = taken->loggedInAt;
  upstreamPaused_ = false;
  syncUpstreamGauge();
  logAt(LogLevel::Debug, "took a pooled upstream connection; checking it with NOOP");
  return taken->state;
}

bool ProxySession::parkUpstream(const protocol::ImapResumeState& state, std::string_view unparsed) {
  UpstreamPool* pool = env_.upstreamPool;
  if (pool == nullptr || !poolKey_ || !upstream_ || !upstreamRoute_ || upstream_->closing() ||
      upstream_->pendingWriteBytes() != 0) {
    return false;
  }
  UpstreamPool::Connection connection{std::move(upstream_), upstreamRoute_, state,
                                      upstreamLoggedInAt_};
  if (!pool->park(*poolKey_, connection, unparsed, poolLimits())) {
    upstream_ = std::move(connection.stream);
    routeUpstream(upstreamGeneration_);
    return false;
  }
  // The stream's events are the pool's now; a late one of this generation means nothing here.
  ++upstreamGeneration_;
  upstreamRoute_.reset();
  poolKey_.reset();
  upstreamPaused_ = false;
  commandTimer_.stop();
  syncUpstreamGauge();
  logAt(LogLevel::Debug, "upstream connection kept in the pool for the next login");
  return true;
}

void ProxySession::onUpstreamTlsReady() {
  metrics_.tlsHandshake(TlsSide::Upstream, upstream_->tlsVersion());
  observeSince(HistogramId::UpstreamConnect, connectStarted_);  // implicit TLS: set until now
  logAt(LogLevel::Debug,
        "upstream TLS established: " + upstream_->tlsVersion() + " " + upstream_->tlsCipher());
  auto alive = alive_;
  // One callback serves implicit TLS and STARTTLS; the session ignores the
  // notification that does not match what it is waiting for.
  session_.onUpstreamConnected();
  if (!*alive) return;
  session_.onUpstreamTlsReady();
  if (!*alive) return;
  pumpClient();
}

void ProxySession::onUpstreamData(std::string_view data) {
  metrics_.bytes(ByteCounter::UpstreamIn, data.size());
  touchIdle();
  auto alive = alive_;
  session_.feedUpstream(data);
  if (!*alive || done_) return;
  if (upstream_ && client_ && client_->aboveHighWatermark() && !upstreamPaused_) {
    // A slow client stops reads from the upstream; onClientDrain resumes them.
    upstreamPaused_ = true;
    if (!readAheadPaused_) upstream_->pauseReading();
  }
  pumpClient();
}

void ProxySession::onUpstreamClosed(std::string_view reason, std::uint64_t generation) {
  if (generation != upstreamGeneration_) {
    // A retired connection finished flushing its LOGOUT; Stream allows being
    // destroyed from inside its own onClose.
    std::erase_if(retiredUpstreams_, [&](const auto& entry) { return entry.first == generation; });
    syncUpstreamGauge();
    return;
  }
  if (upstream_ && upstream_->tlsActive() && !upstream_->tlsEstablished()) {
    metrics_.tlsHandshakeFailed(TlsSide::Upstream);  // ended during the handshake
  }
  auto alive = alive_;
  upstream_.reset();
  syncUpstreamGauge();
  session_.onUpstreamClosed(reason);
  if (*alive) pumpClient();
}

void ProxySession::sendToUpstream(std::string_view bytes) {
  metrics_.bytes(ByteCounter::UpstreamOut, bytes.size());
  if (upstream_) upstream_->write(bytes);
}

void ProxySession::startUpstreamTls() {
  const auto& upstream = env_.config->upstream;
  upstream_->startTlsClient(env_.upstreamTls->get(), upstream.effectiveServerName(),
                            env_.upstreamTls->verify());
}

void ProxySession::closeUpstream() {
  connector_.reset();
  commandTimer_.stop();
  readAheadPaused_ = false;
  if (!upstream_) return;
  // Its onClose no longer speaks for the session once the generation moves on.
  std::uint64_t generation = upstreamGeneration_++;
  Stream& stream = *upstream_;
  retiredUpstreams_.emplace_back(generation, std::move(upstream_));
  stream.closeAfterFlush("session over");
}

void ProxySession::syncUpstreamGauge() {
  const std::size_t open = (upstream_ ? 1 : 0) + retiredUpstreams_.size();
  for (; upstreamsCounted_ < open; ++upstreamsCounted_) metrics_.upstreamOpened();
  for (; upstreamsCounted_ > open; --upstreamsCounted_) metrics_.upstreamClosed();
}

void ProxySession::observeSince(HistogramId which,
                                std::optional<std::chrono::steady_clock::time_point>& started) {
  if (!started) return;
  metrics_.observe(which, std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - *started));
  started.reset();
}

void ProxySession::noteLogin(bool ok, protocol::RespCode code) {
  metrics_.login(ok ? LoginResult::Ok : loginResultOf(code));
  observeSince(HistogramId::Login, loginStarted_);
  if (ok) {
    observeSince(HistogramId::Snapshot, snapshotStarted_);
  } else {
    snapshotStarted_.reset();
  }
}

// --- timers --------------------------------------------------------------------

void ProxySession::touchIdle() {
  if (done_) return;
  idleTimer_.start(
      std::chrono::duration_cast<std::chrono::milliseconds>(env_.config->server.idleTimeout),
      guard([this] {
        logAt(LogLevel::Info, "idle timeout");
        session_.onIdleTimeout();
      }));
}

void ProxySession::updateTimers() {
  if (done_) return;
  // The command timer measures upstream silence, not client slowness: it
  // does not run while upstream reads are paused for backpressure.
  bool waiting = session_.awaitingUpstream() && !upstreamPaused_;
  if (!waiting) {
    commandTimer_.stop();
    return;
  }
  const auto& upstream = env_.config->upstream;
  auto timeout = session_.awaitingGreeting() ? upstream.connectTimeout : upstream.commandTimeout;
  commandTimer_.start(std::chrono::duration_cast<std::chrono::milliseconds>(timeout), guard([this] {
                        logAt(LogLevel::Warn, "upstream command timed out");
                        auto alive = alive_;
                        session_.onUpstreamTimeout();
                        if (*alive) pumpClient();
                      }));
}

// --- end -----------------------------------------------------------------------

void ProxySession::failInternal(const char* what) noexcept {
  try {
    logAt(
        LogLevel::Error,
        std::string("internal error, ending this session; nothing it marked is deleted: ") + what);
    if (endReason_.empty()) endReason_ = "internal error";
    if (done_) return;
    closeUpstream();
    if (client_ && !client_->closing()) {
      client_->close("internal error");  // its onClose ends the session
      return;
    }
    markDone();
  } catch (...) {
    // Nothing more can be done for this session; the process and the other sessions go on.
  }
}

void ProxySession::markDone() {
  if (done_) return;
  done_ = true;
  metrics_.sessionEnded(
      listener_.index,
      classifyEndReason(session_.endReason().empty() ? endReason_ : session_.endReason()));
  idleTimer_.stop();
  commandTimer_.stop();
  delayTimer_.stop();
  loginTimer_.stop();
  connector_.reset();
  // A check still waiting for a slot is never run for a client that is gone.
  if (env_.loginGate && env_.loginGate->cancel(id_)) {
    logAt(LogLevel::Debug, "queued password check skipped: the client is gone");
  }
  queuedJob_.reset();
  protocol::secureWipe(heldPassword_);
  // However the session ended (QUIT, hang-up, timeout, shutdown, an internal error), its
  // maildrop is free again; the destructor would too, but only once the session is reaped.
  lease_.reset();
  claim_.reset();
  const auto& stats = session_.stats();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  started_)
                .count();
  try {
    std::string reason = session_.endReason().empty() ? endReason_ : session_.endReason();
    logAt(LogLevel::Info, "session end: messages=" + std::to_string(stats.messages) +
                              " retrieved=" + std::to_string(stats.retrieved) +
                              " deleted=" + std::to_string(stats.deleted) +
                              " bytes=" + std::to_string(stats.bodyBytes) +
                              " duration_ms=" + std::to_string(ms) + " reason=\"" + reason + "\"");
  } catch (...) {
    // The owner must still hear of the end, or the session and its connection slot leak.
  }
  if (onDone_) onDone_(*this);
}

void ProxySession::log(protocol::LogSeverity severity, std::string_view message) {
  logAt(severity, message);
}

void ProxySession::logAt(LogLevel level, std::string_view message) {
  if (!logEnabled(level)) return;
  LogContext context;
  context.session = id_;
  context.client = clientAddress_;
  context.user = session_.stats().user;
  logLine(level, context, message);
}

}  // namespace popbridge::proxy
