#include "proxy/loop_state.h"

#include <openssl/rand.h>

#include "proxy/log.h"

namespace popbridge::proxy {
namespace {

// Redis being down is one problem however many sessions meet it: one line a minute per loop.
constexpr std::chrono::seconds kProblemLogInterval{60};

}  // namespace

std::string randomInstanceId() {
  std::uint8_t bytes[8];
  RAND_bytes(bytes, sizeof bytes);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

RedisClient::Options redisClientOptions(const config::StateConfig& config,
                                        const TlsClientContext* tls) {
  RedisClient::Options options;
  options.endpoint.host = config.redisHost;
  options.endpoint.port = config.redisPort;
  options.endpoint.tls = config.redisTls;
  options.endpoint.user = config.redisUser;
  options.endpoint.password = config.redisPassword;
  options.endpoint.database = config.redisDatabase;
  options.tls = tls;
  options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.redisTimeout);
  return options;
}

bool openProcessState(const config::StateConfig& config, ProcessState& out, std::string& error) {
  out.services.config = &config;
  if (config.redisEnabled()) {
    if (config.redisTls) {
      out.redisTls =
          TlsClientContext::create(config.redisCaFile, true, config::TlsVersion::V1_2, error);
      if (!out.redisTls) {
        error = "state.redis_ca_file: " + error;
        return false;
      }
      out.services.redisTls = out.redisTls.get();
    }
    // Never the URL as written: it may hold the password.
    logLine(LogLevel::Info, "shared state in Redis at " + config.redisDisplay() +
                                (config.redisPassword.empty() ? "" : " (AUTH)") +
                                ", lease_ttl=" + config::formatDuration(config.leaseTtl) +
                                ", key_prefix=\"" + config.keyPrefix + "\"");
    return true;
  }
  if (!config.path.empty()) {
    out.embedded = SqliteStateStore::open(config.path, error);
    if (!out.embedded) return false;
    out.services.embedded = out.embedded.get();
    logLine(LogLevel::Info, "state store: " + config.path + " (SQLite)");
  }
  return true;
}

LoopState::LoopState(uv_loop_t* loop, const StateServices& services, WorkerMetrics& metrics)
    : metrics_(metrics), embedded_(services.embedded) {
  const config::StateConfig& config = *services.config;
  if (!config.redisEnabled()) return;
  redis_ = std::make_unique<RedisClient>(loop, redisClientOptions(config, services.redisTls),
                                         [this](std::string_view problem) { onProblem(problem); });
  leases_ = std::make_unique<MaildropLeases>(
      *redis_, config.keyPrefix, services.instance,
      std::chrono::duration_cast<std::chrono::milliseconds>(config.leaseTtl));
  redisStore_ = std::make_unique<RedisStateStore>(*redis_, config.keyPrefix);
  loginCounters_ = std::make_unique<SharedLoginCounters>(*redis_, config.keyPrefix);
}

void LoopState::onProblem(std::string_view problem) {
  metrics_.stateUnavailable();
  const auto now = std::chrono::steady_clock::now();
  if (lastLogged_ != std::chrono::steady_clock::time_point{} &&
      now - lastLogged_ < kProblemLogInterval) {
    ++unlogged_;
    return;
  }
  std::string line =
      std::string(problem) + "; logins and reads go on, QUIT applies no deletion without its lease";
  if (unlogged_ > 0) line += " (" + std::to_string(unlogged_) + " more since the last line)";
  logLine(LogLevel::Warn, line);
  lastLogged_ = now;
  unlogged_ = 0;
}

void LoopState::shutdown() {
  if (redis_) redis_->shutdown();
}

}  // namespace popbridge::proxy
