#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <string>

#include "config/config.h"
#include "proxy/maildrop_lease.h"
#include "proxy/metrics.h"
#include "proxy/redis_client.h"
#include "proxy/shared_counters.h"
#include "proxy/state_store.h"
#include "proxy/tls_context.h"

namespace popbridge::proxy {

// What the process builds once from [state] and hands every worker.
struct StateServices {
  const config::StateConfig* config = nullptr;  // in the first snapshot: [state] needs a restart
  const TlsClientContext* redisTls = nullptr;   // for rediss://
  std::string instance;                         // this process among the replicas (random)
  StateStore* embedded = nullptr;               // the SQLite store, when [state] path is set
};

// The process's share of [state]: the embedded store (when configured and Redis is not) and the
// TLS context for rediss://. Logs what it opened; false with `error` when it cannot.
struct ProcessState {
  std::unique_ptr<SqliteStateStore> embedded;
  std::unique_ptr<TlsClientContext> redisTls;
  StateServices services;
};
// 16 random hex digits: a process's name among the replicas (lease holders, fencing).
std::string randomInstanceId();
// The connection [state] redis describes; `tls` is required for rediss://.
RedisClient::Options redisClientOptions(const config::StateConfig& config,
                                        const TlsClientContext* tls);
bool openProcessState(const config::StateConfig& config, ProcessState& out, std::string& error);

// One worker loop's view of [state]: its own Redis connection with the leases and the UIDL map
// over it, or the process's embedded store.
class LoopState {
 public:
  LoopState(uv_loop_t* loop, const StateServices& services, WorkerMetrics& metrics);

  MaildropLeases* leases() { return leases_.get(); }
  SharedLoginCounters* loginCounters() { return loginCounters_.get(); }
  StateStore* store() { return redisStore_ ? redisStore_.get() : embedded_; }
  // The loop is ending: the Redis connection says QUIT and closes.
  void shutdown();

 private:
  void onProblem(std::string_view problem);

  WorkerMetrics& metrics_;
  StateStore* embedded_ = nullptr;
  std::unique_ptr<RedisClient> redis_;
  std::unique_ptr<MaildropLeases> leases_;
  std::unique_ptr<RedisStateStore> redisStore_;
  std::unique_ptr<SharedLoginCounters> loginCounters_;
  std::chrono::steady_clock::time_point lastLogged_{};
  unsigned unlogged_ = 0;
};

}  // namespace popbridge::proxy
