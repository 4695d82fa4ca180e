#include "proxy/redis_client.h"

#include <hiredis/hiredis.h>

#include <utility>

namespace popbridge::proxy {
namespace {

// Answers run from libuv callbacks: an exception in one must not leave them. The caller lost
// that answer; the client itself is intact.
void deliver(const std::function<void(RedisReply)>& callback, RedisReply reply) noexcept {
  swallowExceptions([&] { callback(std::move(reply)); });
}

RedisValue convert(const redisReply& reply) {
  RedisValue value;
  switch (reply.type) {
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STRING:
      value.type = reply.type == REDIS_REPLY_STATUS  ? RedisValue::Type::Status
                   : reply.type == REDIS_REPLY_ERROR ? RedisValue::Type::Error
                                                     : RedisValue::Type::String;
      value.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_INTEGER:
      value.type = RedisValue::Type::Integer;
      value.integer = reply.integer;
      break;
    case REDIS_REPLY_ARRAY:
      value.type = RedisValue::Type::Array;
      value.elements.reserve(reply.elements);
      for (std::size_t i = 0; i < reply.elements; ++i) {
        value.elements.push_back(convert(*reply.element[i]));
      }
      break;
    default:
      value.type = RedisValue::Type::Nil;
      break;
  }
  return value;
}

}  // namespace

void RedisClient::ReaderDeleter::operator()(redisReader* reader) const noexcept {
  redisReaderFree(reader);
}

RedisClient::RedisClient(uv_loop_t* loop, Options options, ProblemHandler onProblem)
    : loop_(loop),
      options_(std::move(options)),
      onProblem_(std::move(onProblem)),
      timer_(loop),
      deferTimer_(loop) {}

RedisClient::~RedisClient() {
  *alive_ = false;
}

std::string RedisClient::format(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* raw = nullptr;
  int length =
      redisFormatCommandArgv(&raw, static_cast<int>(args.size()), argv.data(), lengths.data());
  if (length < 0 || raw == nullptr) throw std::bad_alloc();
  std::string out(raw, static_cast<std::size_t>(length));
  redisFreeCommand(raw);
  return out;
}

std::string RedisClient::target() const {
  return std::string(options_.endpoint.tls ? "rediss://" : "redis://") + options_.endpoint.host +
         ":" + std::to_string(options_.endpoint.port);
}

void RedisClient::command(std::vector<std::string> args, Callback callback) {
  if (state_ == State::Closed) return failLater(std::move(callback), "redis client shut down");
  const auto now = std::chrono::steady_clock::now();
  if (state_ == State::Down && now < retryAt_) {
    return failLater(std::move(callback), "redis unavailable: " + lastProblem_);
  }
  if (pending_.size() >= options_.maxPending) {
    return failLater(std::move(callback), "redis: too many commands waiting");
  }
  std::string bytes = format(args);
  pending_.push_back({std::move(callback), now + options_.timeout, false});
  if (state_ == State::Ready) {
    stream_->write(std::move(bytes));
  } else {
    queued_ += bytes;
    if (state_ == State::Down) connect();
  }
  armTimer();
}

void RedisClient::connect() {
  state_ = State::Connecting;
  if (!connector_) connector_ = std::make_unique<Connector>(loop_);
  std::weak_ptr<bool> alive = alive_;
  connector_->connect(options_.endpoint.host, options_.endpoint.port, options_.timeout,
                      [this, alive](UvHandle<uv_tcp_t> tcp, std::string error) {
                        if (auto live = alive.lock(); live && *live) {
                          onConnected(std::move(tcp), std::move(error));
                        }
                      });
}

void RedisClient::onConnected(UvHandle<uv_tcp_t> tcp, std::string error) {
  if (state_ != State::Connecting) return;
  if (!error.empty()) return fail("redis " + error);
  if (options_.endpoint.tls && options_.tls == nullptr) {
    return fail("redis: TLS requested but no TLS context");
  }
  std::weak_ptr<bool> alive = alive_;
  Stream::Callbacks callbacks;
  callbacks.onData = [this, alive](std::string_view data) {
    if (auto live = alive.lock(); live && *live) onData(data);
  };
  callbacks.onClose = [this, alive](std::string_view reason) {
    if (auto live = alive.lock(); live && *live) {
      if (state_ == State::Closed) {
        stream_.reset();
        return;
      }
      fail("redis connection to " + target() + " lost: " + std::string(reason));
    }
  };
  Stream::Options streamOptions;
  streamOptions.handshakeTimeout = options_.timeout;
  streamOptions.closeTimeout = options_.timeout;
  stream_ = std::make_unique<Stream>(loop_, std::move(tcp), streamOptions, std::move(callbacks));
  reader_.reset(redisReaderCreate());
  if (!reader_) throw std::bad_alloc();
  unansweredBytes_ = 0;
  if (options_.endpoint.tls) {
    stream_->startTlsClient(options_.tls->get(), options_.endpoint.host, options_.tls->verify());
  }
  stream_->startReading();
  // AUTH and SELECT go first; the Stream holds them (and everything queued) until TLS is up.
  std::string prologue;
  std::deque<Pending> internal;
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  auto refusal = [this, alive](std::string what) {
    return [this, alive, what = std::move(what)](RedisReply reply) {
      if (!reply.answered || !reply.value.isError()) return;
      if (auto live = alive.lock(); live && *live) fail("redis " + what + ": " + reply.value.text);
    };
  };
  const RedisEndpoint& endpoint = options_.endpoint;
  if (!endpoint.password.empty()) {
    prologue += endpoint.user.empty() ? format({"AUTH", endpoint.password})
                                      : format({"AUTH", endpoint.user, endpoint.password});
    internal.push_back({refusal("refused AUTH"), deadline, true});
  }
  if (endpoint.database != 0) {
    prologue += format({"SELECT", std::to_string(endpoint.database)});
    internal.push_back({refusal("refused SELECT"), deadline, true});
  }
  pending_.insert(pending_.begin(), internal.begin(), internal.end());
  prologue += std::exchange(queued_, {});
  state_ = State::Ready;
  if (!prologue.empty()) stream_->write(std::move(prologue));
  armTimer();
}

void RedisClient::onData(std::string_view data) {
  unansweredBytes_ += data.size();
  if (unansweredBytes_ > options_.maxReplyBytes) {
    return fail("redis reply larger than " + std::to_string(options_.maxReplyBytes) + " bytes");
  }
  if (redisReaderFeed(reader_.get(), data.data(), data.size()) != REDIS_OK) {
    return fail("redis protocol error");
  }
  std::weak_ptr<bool> alive = alive_;
  for (;;) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
      return fail("redis protocol error: " + std::string(reader_->errstr));
    }
    if (raw == nullptr) return;
    std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(raw),
                                                       freeReplyObject);
    unansweredBytes_ = 0;
    if (pending_.empty()) return fail("redis sent a reply nobody asked for");
    Pending next = std::move(pending_.front());
    pending_.pop_front();
    RedisReply answer;
    answer.answered = true;
    answer.value = convert(*reply);
    reply.reset();
    if (next.callback) deliver(next.callback, std::move(answer));
    if (auto live = alive.lock(); !live || !*live || state_ != State::Ready) return;
    armTimer();
  }
}

void RedisClient::fail(std::string problem) {
  if (state_ == State::Closed) return;
  state_ = State::Down;
  retryAt_ = std::chrono::steady_clock::now() + options_.retryAfter;
  lastProblem_ = problem;
  if (connector_) connector_->cancel();
  stream_.reset();
  reader_.reset();
  queued_.clear();
  timer_.stop();
  std::deque<Pending> failed = std::exchange(pending_, {});
  std::weak_ptr<bool> alive = alive_;
  if (onProblem_) swallowExceptions([this, &problem] { onProblem_(problem); });
  for (Pending& entry : failed) {
    if (auto live = alive.lock(); !live || !*live) return;
    if (entry.callback && !entry.internal) deliver(entry.callback, RedisReply{false, {}, problem});
  }
}

void RedisClient::failLater(Callback callback, std::string problem) {
  deferred_.emplace_back(std::move(callback), std::move(problem));
  if (deferred_.size() > 1) return;
  std::weak_ptr<bool> alive = alive_;
  deferTimer_.start(std::chrono::milliseconds(0), [this, alive] {
    auto due = std::exchange(deferred_, {});
    for (auto& [callback, problem] : due) {
      if (auto live = alive.lock(); !live || !*live) return;
      if (callback) deliver(callback, RedisReply{false, {}, std::move(problem)});
    }
  });
}

void RedisClient::armTimer() {
  if (pending_.empty()) {
    timer_.stop();
    return;
  }
  auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
      pending_.front().deadline - std::chrono::steady_clock::now());
  if (wait.count() < 0) wait = std::chrono::milliseconds(0);
  std::weak_ptr<bool> alive = alive_;
  timer_.start(wait + std::chrono::milliseconds(1), [this, alive] {
    if (auto live = alive.lock(); live && *live) onTimer();
  });
}

void RedisClient::onTimer() {
  if (pending_.empty()) return;
  if (std::chrono::steady_clock::now() < pending_.front().deadline) return armTimer();
  fail("redis at " + target() + " did not answer within " +
       std::to_string(options_.timeout.count()) + " ms");
}

void RedisClient::shutdown() {
  if (state_ == State::Closed) return;
  std::deque<Pending> dropped = std::exchange(pending_, {});
  const bool flush = state_ == State::Ready && stream_;
  if (connector_) connector_->cancel();
  timer_.stop();
  deferTimer_.stop();
  deferred_.clear();
  state_ = State::Closed;
  if (flush) {
    // Redis answers QUIT and closes: the close does not wait for closeTimeout.
    stream_->write(format({"QUIT"}));
    stream_->closeAfterFlush("shutdown");
  } else {
    stream_.reset();
  }
  // Whoever still waits for an answer gets none: the loop is ending.
  (void)dropped;
}

}  // namespace popbridge::proxy
