#include "proxy/token_service.h"

#include <signal.h>

#include <algorithm>
#include <ctime>
#include <optional>

#include "protocol/http/form.h"
#include "protocol/oauth/token_response.h"
#include "protocol/text.h"
#include "proxy/https_client.h"
#include "proxy/log.h"
#include "proxy/tls_context.h"
#include "proxy/token_file.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {
namespace {

using Clock = std::chrono::steady_clock;
using Status = TokenResult::Status;

constexpr std::chrono::milliseconds kFirstBackoff{1000};
constexpr std::chrono::milliseconds kMaxBackoff{60000};
// A token this close to expiry (or a quarter of its lifetime, for short-lived ones) is not
// handed to a login: the login itself takes time.
constexpr std::chrono::seconds kMinRemaining{30};
// When neither expires_in nor a JWT exp says: endpoints' tokens usually live an hour, a
// command's output is asked for again sooner.
constexpr std::chrono::seconds kDefaultEndpointLifetime{3600};
constexpr std::chrono::seconds kDefaultCommandLifetime{300};
constexpr std::size_t kMaxCommandOutput = 16 * 1024;
// A token the upstream refuses forces a new one at most this often per identity: a refusal that
// a new token cannot cure (a mailbox the identity may not open) must not turn every poll of every
// device into a token request.
constexpr std::chrono::seconds kMinForcedRefreshInterval{30};
// A token already expired by this host's clock (a skewed clock, or an exp in the past) is used
// for this long rather than fetched again for every login: the upstream judges it.
constexpr std::chrono::seconds kExpiredTokenReuse{60};
constexpr std::int64_t kMaxLifetimeSeconds = 366LL * 24 * 3600;

std::string reloginHint(const std::string& name) {
  return "; run `popbridge oauth login " + name + "`";
}

Status statusOf(protocol::TokenErrorKind kind) {
  switch (kind) {
    case protocol::TokenErrorKind::InvalidGrant:
    case protocol::TokenErrorKind::AccessDenied:
    case protocol::TokenErrorKind::ExpiredToken:
      return Status::Auth;
    case protocol::TokenErrorKind::Configuration:
      return Status::Configuration;
    default:
      return Status::Temporary;
  }
}

}  // namespace

struct TokenService::Identity {
  const config::OAuthIdentityConfig* config = nullptr;
  std::unique_ptr<TlsClientContext> tls;
  // The cache.
  std::string token;
  Clock::time_point expiresAt{};
  Clock::time_point refreshAt{};
  Clock::duration minRemaining{};
  std::uint64_t generation = 0;
  // The one fetch in flight and who waits for it.
  bool fetching = false;
  std::vector<Waiter> waiters;
  std::unique_ptr<HttpsClient> http;
  std::unique_ptr<CommandRun> command;
  // Back-off after a failure.
  std::chrono::milliseconds backoff{0};
  Clock::time_point retryAfter{};
  TokenResult lastFailure;
  Clock::time_point lastForced{};  // the last refresh forced by an upstream refusal
  // The refresh token in use, kept in memory so that a rotated one survives a failed write; the
  // file is read again only when its stamp changes.
  std::string refreshToken;
  std::optional<FileStamp> refreshStamp;
  // The endpoint refused the refresh token (invalid_grant) or there was none: no request until
  // the file differs from this stamp (nullopt: it was missing).
  bool grantRefused = false;
  std::optional<FileStamp> refusedStamp;
  std::atomic<std::uint64_t> fetches{0};
};

// One run of token_command: stdout is the token (or a JSON token response), stderr's first line
// explains a failure. Killed at token_command_timeout.
class TokenService::CommandRun {
 public:
  using Done = std::function<void(bool ok, std::string output, std::string problem)>;

  CommandRun(uv_loop_t* loop, const config::OAuthIdentityConfig& config, Done done)
      : timer_(loop), done_(std::move(done)) {
    out_ = UvHandle<uv_pipe_t>::allocate();
    err_ = UvHandle<uv_pipe_t>::allocate();
    uv_pipe_init(loop, out_.get(), 0);
    uv_pipe_init(loop, err_.get(), 0);
    out_->data = this;
    err_->data = this;
    std::vector<std::string> args = config.tokenCommand;
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[1].data.stream = out_.stream();
    stdio[2].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
    stdio[2].data.stream = err_.stream();
    uv_process_options_t options{};
    options.file = argv[0];
    options.args = argv.data();
    options.stdio = stdio;
    options.stdio_count = 3;
    options.exit_cb = &CommandRun::onExit;
    // Its own process group, so that a timeout kills what a wrapper script started too.
    options.flags = UV_PROCESS_DETACHED;
    process_ = UvHandle<uv_process_t>::allocate();
    process_->data = this;
    int rc = uv_spawn(loop, process_.get(), &options);
    if (rc != 0) {
      // uv_spawn initialised the handle even on failure; it must still be closed.
      startError_ =
          std::string("cannot start ") + config.tokenCommand.front() + ": " + uv_strerror(rc);
      timer_.start(std::chrono::milliseconds(0), [this] { complete(false, startError_); });
      return;
    }
    spawned_ = true;
    uv_read_start(out_.stream(), &CommandRun::onAlloc, &CommandRun::onRead);
    uv_read_start(err_.stream(), &CommandRun::onAlloc, &CommandRun::onRead);
    timer_.start(
        std::chrono::duration_cast<std::chrono::milliseconds>(config.tokenCommandTimeout),
        [this,
         seconds =
             std::chrono::duration_cast<std::chrono::seconds>(config.tokenCommandTimeout).count()] {
          kill();
          complete(false,
                   "token_command did not finish within " + std::to_string(seconds) + " s; killed");
        });
  }

  ~CommandRun() {
    if (spawned_ && !exited_) {
      kill();
      // The child is reaped only while its handle is open: the handle outlives this run and
      // closes itself when the exit arrives (onExit with no owner).
      uv_process_t* orphan = process_.release();
      orphan->data = nullptr;
    }
    protocol::secureWipe(output_);
    protocol::secureWipe(errors_);
  }

 private:
  static void onAlloc(uv_handle_t* handle, std::size_t, uv_buf_t* buf) noexcept {
    auto* self = static_cast<CommandRun*>(handle->data);
    buf->base = self->buffer_;
    buf->len = sizeof self->buffer_;
  }
  static void onRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* self = static_cast<CommandRun*>(stream->data);
    if (self == nullptr) return;
    bool isOut = stream == self->out_.stream();
    if (nread < 0) {
      uv_read_stop(stream);
      (isOut ? self->outDone_ : self->errDone_) = true;
      self->maybeComplete();
      return;
    }
    std::string& sink = isOut ? self->output_ : self->errors_;
    std::size_t limit = isOut ? kMaxCommandOutput : 1024;
    std::size_t room = sink.size() < limit ? limit - sink.size() : 0;
    sink.append(buf->base, std::min<std::size_t>(room, static_cast<std::size_t>(nread)));
    std::fill(buf->base, buf->base + nread, '\0');
    if (isOut && static_cast<std::size_t>(nread) > room) {
      self->kill();
      self->complete(false, "token_command printed more than 16 KiB");
    }
  }
  static void onExit(uv_process_t* process, int64_t status, int signal) noexcept {
    auto* self = static_cast<CommandRun*>(process->data);
    if (self == nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(process), [](uv_handle_t* handle) noexcept {
        std::unique_ptr<uv_process_t> owned(reinterpret_cast<uv_process_t*>(handle));
      });
      return;
    }
    self->exited_ = true;
    self->exitStatus_ = status;
    self->exitSignal_ = signal;
    self->maybeComplete();
  }

  void kill() {
    if (process_ && !exited_ && process_->pid > 0) ::kill(-process_->pid, SIGKILL);
  }

  void maybeComplete() {
    if (!exited_ || !outDone_ || !errDone_ || !done_) return;
    if (exitSignal_ != 0 || exitStatus_ != 0) {
      // Its stderr is not logged: a script run with `set -x`, or `curl -v`, prints secrets there.
      std::string why = exitSignal_ != 0 ? "killed by signal " + std::to_string(exitSignal_)
                                         : "exited with status " + std::to_string(exitStatus_);
      return complete(false, "token_command " + why +
                                 (errors_.empty() ? "" : " (run it by hand to see its stderr)"));
    }
    complete(true, {});
  }

  void complete(bool ok, std::string problem) {
    auto done = std::move(done_);
    done_ = nullptr;
    timer_.stop();
    if (done) done(ok, ok ? std::move(output_) : std::string(), std::move(problem));
  }

  Timer timer_;
  Done done_;
  UvHandle<uv_pipe_t> out_;
  UvHandle<uv_pipe_t> err_;
  UvHandle<uv_process_t> process_;
  char buffer_[4096];
  std::string output_;
  std::string errors_;
  std::string startError_;
  bool outDone_ = false;
  bool errDone_ = false;
  bool spawned_ = false;  // a child exists, whose exit the process handle must see
  bool exited_ = false;
  std::int64_t exitStatus_ = 0;
  int exitSignal_ = 0;
};

TokenService::TokenService(const config::Config& config) : config_(config) {}

TokenService::~TokenService() {
  stop();
}

bool TokenService::start(std::string& error) {
  for (const config::OAuthIdentityConfig& identityConfig : config_.oauth2) {
    auto identity = std::make_unique<Identity>();
    identity->config = &identityConfig;
    if (identityConfig.grant != config::OAuthGrant::Command) {
      identity->tls = TlsClientContext::create(identityConfig.caFile, /*verify=*/true,
                                               config::TlsVersion::V1_2, error);
      if (!identity->tls) {
        error = "[oauth2." + identityConfig.name + "] " + error;
        return false;
      }
    }
    identities_.emplace(identityConfig.name, std::move(identity));
  }
  if (uv_loop_init(&loop_) != 0) {
    error = "cannot create the token service's event loop";
    return false;
  }
  loopInitialised_ = true;
  inbox_ = LoopMailbox::create(&loop_);
  thread_ = std::thread([this] { run(); });
  return true;
}

void TokenService::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
}

void TokenService::stop() {
  if (!loopInitialised_) return;
  if (thread_.joinable()) {
    stopping_ = true;
    bool posted = inbox_->post([this] {
      for (auto& [name, identity] : identities_) {
        identity->http.reset();
        identity->command.reset();
        identity->waiters.clear();
        protocol::secureWipe(identity->token);
        protocol::secureWipe(identity->refreshToken);
      }
      inbox_->close();
    });
    if (posted)
      thread_.join();
    else
      thread_.detach();  // cannot happen: only this function closes the inbox
  }
  // Let closed handles finish, then free the loop.
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  loopInitialised_ = false;
}

void TokenService::get(const std::string& identity, std::uint64_t rejected,
                       std::shared_ptr<LoopMailbox> mailbox,
                       std::function<void(TokenResult)> replyTo) {
  Waiter waiter{std::move(mailbox), std::move(replyTo)};
  auto request = std::make_shared<Waiter>(std::move(waiter));
  bool posted = inbox_ && inbox_->post([this, identity, rejected, request] {
    handle(identity, rejected, std::move(*request));
  });
  if (!posted && request->mailbox) {
    TokenResult result;
    result.reason = "the token service is shutting down";
    auto replyFn = std::move(request->reply);
    request->mailbox->post([replyFn, result] { replyFn(result); });
  }
}

std::uint64_t TokenService::fetchCount(const std::string& identity) const {
  auto it = identities_.find(identity);
  return it == identities_.end() ? 0 : it->second->fetches.load();
}

void TokenService::reply(Waiter& waiter, TokenResult result) {
  if (!waiter.mailbox || !waiter.reply) return;
  auto replyFn = std::move(waiter.reply);
  auto shared = std::make_shared<TokenResult>(std::move(result));
  waiter.mailbox->post([replyFn = std::move(replyFn), shared]() mutable {
    replyFn(std::move(*shared));
    protocol::secureWipe(shared->accessToken);
  });
}

void TokenService::handle(const std::string& name, std::uint64_t rejected, Waiter waiter) {
  auto it = identities_.find(name);
  if (it == identities_.end()) {
    TokenResult result;
    result.status = Status::Configuration;
    result.reason = "no [oauth2." + name + "] identity";
    return reply(waiter, std::move(result));
  }
  Identity& identity = *it->second;
  const auto now = Clock::now();
  bool refused = rejected != 0 && rejected == identity.generation;
  if (refused && now - identity.lastForced < kMinForcedRefreshInterval) {
    logLine(LogLevel::Debug, "[oauth2." + name +
                                 "] the upstream refused the access token again "
                                 "within " +
                                 std::to_string(kMinForcedRefreshInterval.count()) +
                                 " s of the last forced refresh; not forcing another");
    refused = false;
  }
  if (!identity.token.empty() && !refused && now + identity.minRemaining < identity.expiresAt) {
    TokenResult result;
    result.status = Status::Ok;
    result.accessToken = identity.token;
    result.generation = identity.generation;
    reply(waiter, std::move(result));
    // Due but still good: refresh behind the login's back.
    if (now >= identity.refreshAt && !identity.fetching && now >= identity.retryAfter &&
        !identity.grantRefused) {
      logLine(LogLevel::Debug, "[oauth2." + name + "] access token due; refreshing it");
      startFetch(identity);
    }
    return;
  }
  if (refused && !identity.token.empty()) {
    // The upstream refused a token that has not expired: revoked, or not valid for IMAP.
    protocol::secureWipe(identity.token);
    identity.token.clear();
    identity.lastForced = now;
  }
  if (!identity.fetching) {
    // A refused refresh token is not sent again; a new file (`popbridge oauth login` ran) ends
    // that, and the back-off, at once.
    bool newGrant = identity.grantRefused &&
                    stampTokenFile(identity.config->refreshTokenFile) != identity.refusedStamp;
    if (identity.grantRefused && !newGrant) return reply(waiter, identity.lastFailure);
    if (now < identity.retryAfter && !newGrant) return reply(waiter, identity.lastFailure);
  }
  identity.waiters.push_back(std::move(waiter));
  if (!identity.fetching) startFetch(identity);
}

void TokenService::startFetch(Identity& identity) {
  identity.fetching = true;
  ++identity.fetches;
  if (identity.config->grant == config::OAuthGrant::Command) return fetchFromCommand(identity);
  fetchFromEndpoint(identity);
}

void TokenService::fetchFromEndpoint(Identity& identity) {
  const config::OAuthIdentityConfig& config = *identity.config;
  std::vector<std::pair<std::string, std::string>> form;
  std::string refreshToken;
  if (config.grant == config::OAuthGrant::RefreshToken) {
    std::optional<FileStamp> stamp = stampTokenFile(config.refreshTokenFile);
    if (identity.refreshToken.empty() || (stamp && stamp != identity.refreshStamp)) {
      std::string fresh;
      std::string error;
      if (readTokenFile(config.refreshTokenFile, fresh, error)) {
        protocol::secureWipe(identity.refreshToken);
        identity.refreshToken = std::move(fresh);
        identity.refreshStamp = stamp;
      } else if (identity.refreshToken.empty()) {
        TokenResult result;
        result.status = Status::Auth;
        result.reason =
            "[oauth2." + config.name + "] no refresh token: " + error + reloginHint(config.name);
        identity.grantRefused = true;
        identity.refusedStamp = stamp;
        return fetched(identity, std::move(result), {}, {});
      }
      // An unreadable new file: the token in memory still serves; the next refresh tries again.
    }
    refreshToken = identity.refreshToken;
    form.emplace_back("grant_type", "refresh_token");
    form.emplace_back("refresh_token", refreshToken);
  } else {
    form.emplace_back("grant_type", "client_credentials");
  }
  form.emplace_back("client_id", config.clientId);
  if (!config.clientSecret.empty()) form.emplace_back("client_secret", config.clientSecret);
  if (!config.scope.empty()) form.emplace_back("scope", config.scope);
  HttpsRequest request;
  request.url = config.tokenEndpoint;
  request.body = protocol::formEncode(form);
  for (auto& field : form) protocol::secureWipe(field.second);
  request.proxy = config.httpsProxy;
  request.tls = identity.tls ? identity.tls->get() : nullptr;
  request.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.requestTimeout);
  if (!identity.http) identity.http = std::make_unique<HttpsClient>(&loop_);
  auto started = Clock::now();
  identity.http->post(std::move(request), [this, &identity, refreshToken,
                                           started](HttpsResponse response) mutable {
    const std::string& name = identity.config->name;
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    TokenResult result;
    if (!response.ok()) {
      result.status = Status::Temporary;
      result.reason = "[oauth2." + name + "] token endpoint unreachable: " + response.error;
      protocol::secureWipe(refreshToken);
      return fetched(identity, std::move(result), {}, {});
    }
    protocol::TokenResponse parsed = protocol::parseTokenResponse(response.status, response.body);
    protocol::secureWipe(response.body);
    if (!parsed.grant) {
      result.status = statusOf(parsed.error.kind);
      result.reason = "[oauth2." + name + "] token endpoint answered HTTP " +
                      std::to_string(response.status) + ": " + parsed.error.toString();
      if (result.status == Status::Auth &&
          identity.config->grant == config::OAuthGrant::RefreshToken) {
        result.reason += reloginHint(name);
        identity.grantRefused = true;
        identity.refusedStamp = identity.refreshStamp;
        protocol::secureWipe(identity.refreshToken);
        identity.refreshToken.clear();
      }
      protocol::secureWipe(refreshToken);
      return fetched(identity, std::move(result), {}, {});
    }
    logLine(LogLevel::Info,
            "[oauth2." + name + "] access token obtained in " + std::to_string(elapsed.count()) +
                " ms" +
                (parsed.grant->expiresIn.count() > 0
                     ? ", valid for " + std::to_string(parsed.grant->expiresIn.count()) + " s"
                     : std::string()));
    std::string rotated;
    if (!parsed.grant->refreshToken.empty() && parsed.grant->refreshToken != refreshToken) {
      rotated = std::move(parsed.grant->refreshToken);
    }
    protocol::secureWipe(refreshToken);
    protocol::secureWipe(parsed.grant->refreshToken);
    result.status = Status::Ok;
    result.accessToken = std::move(parsed.grant->accessToken);
    std::chrono::seconds lifetime = parsed.grant->expiresIn;
    fetched(identity, std::move(result), lifetime, std::move(rotated));
  });
}

void TokenService::fetchFromCommand(Identity& identity) {
  identity.command = std::make_unique<CommandRun>(
      &loop_, *identity.config,
      [this, &identity](bool ok, std::string output, std::string problem) {
        const std::string& name = identity.config->name;
        TokenResult result;
        std::chrono::seconds lifetime{0};
        if (!ok) {
          result.status = Status::Temporary;
          result.reason = "[oauth2." + name + "] " + problem;
        } else {
          std::string_view text = output;
          while (!text.empty() &&
                 (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
            text.remove_suffix(1);
          }
          while (!text.empty() && (text.front() == ' ' || text.front() == '\n'))
            text.remove_prefix(1);
          if (!text.empty() && text.front() == '{') {
            // A JSON token response (RFC 6749 5.1), as `oauth2l fetch --output_format json`
            // prints; `az account get-access-token` needs `--query accessToken -o tsv`.
            protocol::TokenResponse parsed = protocol::parseTokenResponse(200, text);
            if (parsed.grant) {
              result.status = Status::Ok;
              result.accessToken = std::move(parsed.grant->accessToken);
              lifetime = parsed.grant->expiresIn;
              protocol::secureWipe(parsed.grant->refreshToken);
            } else {
              result.status = Status::Temporary;
              result.reason = "[oauth2." + name +
                              "] token_command printed JSON without a usable "
                              "access_token: " +
                              parsed.error.toString();
            }
          } else if (!text.empty() && text.size() <= kMaxCommandOutput &&
                     std::all_of(text.begin(), text.end(),
                                 [](char c) { return c > 0x20 && c < 0x7f; })) {
            result.status = Status::Ok;
            result.accessToken = std::string(text);
          } else {
            result.status = Status::Temporary;
            result.reason = "[oauth2." + name +
                            "] token_command printed no token (expected "
                            "one line of printable ASCII, or a JSON token response)";
          }
          protocol::secureWipe(output);
        }
        // CommandRun touches nothing of itself after calling back, so it may go now.
        identity.command.reset();
        fetched(identity, std::move(result), lifetime, {});
      });
}

void TokenService::fetched(Identity& identity, TokenResult result, std::chrono::seconds lifetime,
                           std::string rotatedRefreshToken) {
  const config::OAuthIdentityConfig& config = *identity.config;
  identity.fetching = false;
  const auto now = Clock::now();
  if (result.status == Status::Ok) {
    if (lifetime.count() <= 0) {
      auto exp = protocol::jwtExpiry(result.accessToken);
      if (exp && *exp > 0) {
        std::int64_t left =
            std::clamp<std::int64_t>(*exp, 0, std::time(nullptr) + kMaxLifetimeSeconds) -
            std::time(nullptr);
        lifetime = std::chrono::seconds(std::max<std::int64_t>(left, 0));
      } else {
        lifetime = config.grant == config::OAuthGrant::Command ? kDefaultCommandLifetime
                                                               : kDefaultEndpointLifetime;
      }
    }
    if (lifetime.count() <= 0) {
      logLine(LogLevel::Warn, "[oauth2." + config.name +
                                  "] the new access token has already "
                                  "expired by this host's clock; using it for " +
                                  std::to_string(kExpiredTokenReuse.count()) +
                                  " s anyway (is the clock right?)");
      lifetime = kExpiredTokenReuse;
    }
    lifetime = std::min<std::chrono::seconds>(lifetime, std::chrono::seconds(kMaxLifetimeSeconds));
    protocol::secureWipe(identity.token);
    identity.token = result.accessToken;
    identity.expiresAt = now + lifetime;
    identity.minRemaining = std::min<Clock::duration>(kMinRemaining, lifetime / 4);
    auto margin = std::min<Clock::duration>(config.refreshBefore, lifetime / 2);
    identity.refreshAt = identity.expiresAt - margin;
    result.generation = ++identity.generation;
    identity.backoff = std::chrono::milliseconds(0);
    identity.retryAfter = {};
    identity.grantRefused = false;
    if (!rotatedRefreshToken.empty()) {
      // The old refresh token may be dead now: the new one is used from memory from here on,
      // whether or not the file takes it.
      std::string error;
      bool saved = writeTokenFile(config.refreshTokenFile, rotatedRefreshToken, error);
      protocol::secureWipe(identity.refreshToken);
      identity.refreshToken = std::move(rotatedRefreshToken);
      if (saved) {
        identity.refreshStamp = stampTokenFile(config.refreshTokenFile);
        logLine(LogLevel::Info, "[oauth2." + config.name +
                                    "] the endpoint rotated the refresh "
                                    "token; saved to " +
                                    config.refreshTokenFile);
      } else {
        logLine(LogLevel::Error, "[oauth2." + config.name +
                                     "] the endpoint rotated the refresh token, and the "
                                     "new one could not be saved (" +
                                     error +
                                     "); this process keeps working with "
                                     "it, but after a restart `popbridge oauth login " +
                                     config.name + "` is needed");
      }
    }
  } else {
    identity.backoff = std::clamp(identity.backoff * 2, kFirstBackoff, kMaxBackoff);
    identity.retryAfter = now + identity.backoff;
    identity.lastFailure = result;
    logLine(result.status == Status::Temporary ? LogLevel::Warn : LogLevel::Error,
            result.reason + " (next attempt in " + std::to_string(identity.backoff.count() / 1000) +
                " s at the earliest)");
  }
  std::vector<Waiter> waiters = std::move(identity.waiters);
  identity.waiters.clear();
  for (Waiter& waiter : waiters) reply(waiter, result);
  protocol::secureWipe(result.accessToken);
}

}  // namespace popbridge::proxy
