#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "protocol/bridge/session.h"
#include "proxy/config_snapshot.h"
#include "proxy/connector.h"
#include "proxy/log.h"
#include "proxy/login_guard.h"
#include "proxy/loop_mailbox.h"
#include "proxy/maildrop_lease.h"
#include "proxy/metrics.h"
#include "proxy/session_registry.h"
#include "proxy/shared_counters.h"
#include "proxy/shared_snapshot_cache.h"
#include "proxy/state_store.h"
#include "proxy/stream.h"
#include "proxy/tls_context.h"
#include "proxy/token_service.h"
#include "proxy/upstream_pool.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// What one listener offers its sessions. Both point into the snapshot of the SessionEnvironment
// they are used with, which keeps them alive.
struct ListenerRuntime {
  const config::ListenerConfig* config = nullptr;
  const TlsServerContext* tls = nullptr;  // null for tls = "none"
  std::size_t index = 0;                  // in config.listeners: the metrics' listener label
};

// Everything a session needs from the process, shared by all its sessions. A session copies it
// at its start: the snapshot (and with it config and upstreamTls, which point into it) stays the
// session's for its whole life, whatever a reload brings later.
struct SessionEnvironment {
  uv_loop_t* loop = nullptr;
  std::shared_ptr<const ConfigSnapshot> snapshot;
  const config::Config* config = nullptr;         // &snapshot->config
  const TlsClientContext* upstreamTls = nullptr;  // in snapshot; null for upstream tls = "none"
  LoginGate* loginGate = nullptr;                 // this loop's share of the process's LoginGuard
  TokenService* tokens = nullptr;                 // null when no [oauth2.NAME] is configured
  std::shared_ptr<LoopMailbox> mailbox;           // where the token service answers this loop
  // Exclusive maildrops and max_sessions_per_account, shared by every loop; null: no claims.
  SessionRegistry* sessions = nullptr;
  WorkerMetrics* metrics = nullptr;      // this loop's counters; never null in a session
  UpstreamPool* upstreamPool = nullptr;  // this loop's idle upstream connections; null: none
  // The cluster's maildrop leases ([state] redis) on this loop; null: this process alone.
  MaildropLeases* leases = nullptr;
  // The state store ([state] path or redis) on this loop; null: none.
  StateStore* state = nullptr;
  // The failed-login counts of every replica ([state] redis); null: this process's alone.
  SharedLoginCounters* loginCounters = nullptr;
  // Shared by every loop; null: every session lists its mailbox in full.
  SharedSnapshotCache* snapshotCache = nullptr;
};

// Who the client is when a load balancer said so in a PROXY protocol header (see
// proxy/proxy_header_reader.h); default-constructed for a connection that came directly.
struct ClientOrigin {
  // The client's real addresses; nullopt: the socket's own peer (a direct connection, or a
  // LOCAL/UNKNOWN header from the balancer's health check).
  std::optional<protocol::ClientEndpoints> endpoints;
  std::string receivedEarlier;  // read after the header: the start of POP3 or of TLS
  std::string via;              // for the "session start" line, e.g. "PROXY v2 from 10.0.0.5:4711"
};

// Glue between two Streams and one protocol::Pop3Session: turns the
// session's actions into I/O and I/O events into session inputs. Owns both
// connections; tells its owner through `onDone` when it is finished, after
// which the owner destroys it (never from inside one of its callbacks).
class ProxySession : public protocol::SessionSink {
 public:
  ProxySession(const SessionEnvironment& env, const ListenerRuntime& listener, std::uint64_t id,
               UvHandle<uv_tcp_t> client, std::function<void(ProxySession&)> onDone,
               ClientOrigin origin = {});
  ~ProxySession() override;

  void start();
  // SIGTERM, step 1: a session that has not logged in ends now with -ERR [SYS/TEMP]; one in
  // TRANSACTION keeps serving until its QUIT (see protocol::Pop3Server::drain()).
  void drain();
  // The drain's deadline: what has not QUIT ends with nothing applied; an UPDATE already running
  // finishes (bounded by the upstream command timeout).
  void drainDeadline();
  // A second SIGTERM: end now, in any state, applying no pending DELE.
  void shutdown();
  std::uint64_t id() const { return id_; }
  bool done() const { return done_; }
  bool loggedIn() const { return loggedIn_; }  // reached TRANSACTION
  const std::string& clientAddress() const { return clientAddress_; }
  std::string clientIp() const;

  // SessionSink.
  void sendToClient(std::string_view bytes) override;
  void sendToClientAndRecycle(std::string& bytes) override;
  void sendToUpstream(std::string_view bytes) override;
  void resolveCredentials(std::string_view user, std::string_view password) override;
  bool renewCredentials() override;
  void claimMaildrop(const protocol::MaildropClaimRequest& request) override;
  void releaseMaildrop() override {
    lease_.reset();
    claim_.reset();
  }
  bool confirmUpdate() override;
  void connectUpstream() override;
  void startUpstreamTls() override;
  void startClientTls() override;
  void startAuthDelay() override;
  void closeUpstream() override;
  std::optional<protocol::ImapResumeState> adoptPooledUpstream(
      const protocol::UpstreamCredentials& credentials) override;
  bool parkUpstream(const protocol::ImapResumeState& state, std::string_view unparsed) override;
  void notePooledUpstreamStale() override { metrics_.poolDropped(PoolDrop::Dead); }
  void closeClient(std::string_view reason) override;
  void log(protocol::LogSeverity severity, std::string_view message) override;
  bool clientCongested() const override { return client_ && client_->aboveHighWatermark(); }
  // Metrics hooks (Pop3ServerSink, MaildropSink).
  void noteLogin(bool ok, protocol::RespCode code) override;
  void noteRetrieved(bool top) override { metrics_.retrieved(top); }
  void noteDeletionsRefused(std::uint32_t count) override { metrics_.deletionsRefused(count); }
  void noteUpstreamLoggedIn() override { snapshotStarted_ = std::chrono::steady_clock::now(); }
  void noteUidValidityChanged() override { metrics_.uidValidityChanged(); }
  void noteUidlMapUnavailable() override { metrics_.stateUnavailable(); }
  void noteSnapshotCache(protocol::SnapshotCacheOutcome outcome) override {
    metrics_.snapshotCache(outcome);
  }
  void noteDeleted(protocol::DeletePolicy policy, std::uint32_t count) override {
    metrics_.deleted(policy, count);
  }

 private:
  struct VerifyJob;

  void startGuarded();
  void onClientData(std::string_view data);
  void onClientDrain();
  void onClientTlsReady();
  void onClientClosed(std::string_view reason);
  void onUpstreamData(std::string_view data);
  void onUpstreamTlsReady();
  void onUpstreamClosed(std::string_view reason, std::uint64_t generation);
  void onConnected(UvHandle<uv_tcp_t> tcp, std::string error);
  // Points upstreamRoute_ at this session, for the upstream of `generation`.
  void routeUpstream(std::uint64_t generation);
  UpstreamPool::Limits poolLimits() const;
  void checkCredentials(std::string_view user, std::string_view password);
  // Keeps user and password through a wait (the throttle, the cluster's counts);
  // releaseHeldLogin hands them to `then` and wipes every copy of the password.
  void holdLogin(std::string_view user, std::string_view password);
  void releaseHeldLogin(void (ProxySession::*then)(std::string_view, std::string_view));
  // The per-IP and per-user throttle, then checkCredentials (now or after the delay).
  void throttleThenCheck(std::string_view user, std::string_view password);
  // A failed or abandoned login, counted here and (with Redis) across the replicas.
  LoginGuard::Failures recordLoginFailure();
  void startVerify();
  // An account bound to [oauth2.NAME]: its credentials are an access token from the token
  // service. `rejected` is the generation of a token the upstream refused (0: none).
  void requestToken(const config::AccountConfig& account, std::uint64_t rejected);
  void onToken(TokenResult result, std::chrono::steady_clock::time_point asked);
  void noteLoginProgress();
  // A login whose credentials are proven: may it go on (LOGIN-DELAY, then the maildrop claim)?
  // Granted holds the claim in claim_ until the session ends or the login fails after all.
  protocol::MaildropClaim admit(std::string_view account, std::string_view folder, bool exclusive);
  // admit(), then the cluster's lease when there is one; `answer` runs now or from the loop
  // (guarded, followed by pumpClient).
  void admitThen(std::string_view account, std::string_view folder, bool exclusive,
                 std::function<void(protocol::MaildropClaim)> answer);
  // Every login refused or slowed by abuse control passes here (throttled, login_delay, in_use).
  void refused(RefusedReason reason);
  void onLoginTimeout();
  void endBeforeLogin(std::string_view text, protocol::RespCode code, std::string_view reason);
  void dropPendingLogin();
  void pumpClient();
  void holdUpstreamForReadAhead();
  void updateTimers();
  void touchIdle();
  void logAt(LogLevel level, std::string_view message);
  void markDone();
  // Brings the upstream-connections gauge in line with the streams this session holds.
  void syncUpstreamGauge();
  void observeSince(HistogramId which,
                    std::optional<std::chrono::steady_clock::time_point>& started);

  // Every entry from libuv goes through here: an exception from this session's code (a
  // std::bad_alloc, say) ends this session alone, with nothing it marked deleted, instead of
  // reaching libuv, where it would end the process and every other session with it.
  template <typename Body>
  void guarded(Body&& body) noexcept {
    try {
      body();
    } catch (const std::exception& error) {
      failInternal(error.what());
    } catch (...) {
      failInternal("unknown exception");
    }
  }
  // `callback` wrapped for a libuv callback: see guarded().
  template <typename Callback>
  auto guard(Callback callback) {
    return [this, callback = std::move(callback)](auto&&... args) {
      guarded([&] { callback(std::forward<decltype(args)>(args)...); });
    };
  }
  void failInternal(const char* what) noexcept;

  SessionEnvironment env_;
  ListenerRuntime listener_;
  std::uint64_t id_;
  std::function<void(ProxySession&)> onDone_;
  std::string clientAddress_;
  std::string via_;  // ClientOrigin::via
  std::chrono::steady_clock::time_point started_;

  // The UIDL map as the maildrop sees it: env_.state, with answers that come later (Redis)
  // brought in like every other event from the loop (guarded, then the client's pipelined
  // input pumped and the timers set), and answers given inside the call (SQLite) passed
  // straight back. Declared before session_, whose maildrop keeps a pointer to it.
  class UidlMapRelay final : public protocol::UidlMapStore {
   public:
    explicit UidlMapRelay(ProxySession& session) : session_(session) {}
    void getUidls(const Mailbox& mailbox, std::vector<protocol::UidKey> keys,
                  EntriesCallback done) override;
    void loadUidls(const Mailbox& mailbox, EntriesCallback done) override;
    void putUidls(const Mailbox& mailbox, std::vector<protocol::UidlRecord> entries,
                  DoneCallback done) override;
    void eraseUidls(const Mailbox& mailbox, std::vector<protocol::UidKey> keys,
                    DoneCallback done) override;

   private:
    template <typename... Args>
    std::function<void(Args...)> relay(std::function<void(Args...)> done);
    template <typename Call>
    void forward(Call&& call);

    ProxySession& session_;
    bool inCall_ = false;
  };
  UidlMapRelay uidlMap_{*this};

  protocol::Pop3Session session_;
  std::unique_ptr<Stream> client_;
  std::unique_ptr<Stream> upstream_;
  std::shared_ptr<UpstreamRoute> upstreamRoute_;  // upstream_'s events; it follows the stream
  std::optional<UpstreamPoolKey> poolKey_;        // the credentials of this login, for the pool
  std::chrono::steady_clock::time_point upstreamLoggedInAt_{};  // see UpstreamPool::kMaxLoginAge
  std::uint64_t upstreamGeneration_ = 0;
  std::vector<std::pair<std::uint64_t, std::unique_ptr<Stream>>>
      retiredUpstreams_;  // flushing LOGOUT
  std::unique_ptr<Connector> connector_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  std::string clientInput_;  // received but not yet parsed: the session was busy
  bool clientPaused_ = false;
  bool upstreamPaused_ = false;   // for the client's watermark
  bool readAheadPaused_ = false;  // for a full read-ahead (holdUpstreamForReadAhead)
  bool greeted_ = false;
  bool done_ = false;
  std::string endReason_;

  // A PASS/AUTH waiting for its answer (throttle, queue, check, upstream login): a client that
  // hangs up meanwhile abandoned it, which counts against its IP like a failure.
  bool loginPending_ = false;
  bool loggedIn_ = false;
  std::string heldUser_;           // during the throttle wait
  std::string heldPassword_;       // during the throttle wait; wiped
  bool refreshingCounts_ = false;  // waiting for the cluster's failure counts (heldUser_ kept)
  std::unique_ptr<VerifyJob> queuedJob_;                 // waiting for a password-check slot
  const config::AccountConfig* oauthAccount_ = nullptr;  // set while an OAuth2 login runs
  std::uint64_t tokenGeneration_ = 0;                    // of the token last sent upstream
  SessionClaim claim_;  // the maildrop this session holds (exclusive access, per-account cap)
  std::unique_ptr<MaildropLease> lease_;  // its cluster-wide lease ([state] redis)

  Timer idleTimer_;
  Timer commandTimer_;
  Timer delayTimer_;             // the failed-login delay, or the per-IP throttle before a check
  Timer loginTimer_{env_.loop};  // env_ is initialised first: it is declared first

  // Metrics: this loop's block (env_ is initialised first). Each count is a relaxed store.
  WorkerMetrics& metrics_ = *env_.metrics;
  std::size_t upstreamsCounted_ = 0;  // upstream streams in the gauge
  std::optional<std::chrono::steady_clock::time_point> connectStarted_;
  std::optional<std::chrono::steady_clock::time_point> loginStarted_;
  std::optional<std::chrono::steady_clock::time_point> snapshotStarted_;
};

}  // namespace popbridge::proxy
