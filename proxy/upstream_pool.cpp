#include "proxy/upstream_pool.h"

#include <openssl/crypto.h>
#include <openssl/digest.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <utility>

#include "proxy/metrics.h"
#include "proxy/session_registry.h"

namespace popbridge::proxy {
namespace {

// Drawn once per process: a MAC from one run means nothing in another, and the process holds
// no password of a pooled connection, only this MAC of it.
const std::array<std::uint8_t, 32>& processMacKey() {
  static const std::array<std::uint8_t, 32> key = [] {
    std::array<std::uint8_t, 32> k{};
    RAND_bytes(k.data(), k.size());
    return k;
  }();
  return key;
}

}  // namespace

Stream::Callbacks UpstreamRoute::callbacks(const std::shared_ptr<UpstreamRoute>& route) {
  Stream::Callbacks callbacks;
  callbacks.onData = [route](std::string_view data) {
    std::shared_ptr<Handlers> handlers = route->handlers;
    if (handlers && handlers->onData) handlers->onData(data);
  };
  callbacks.onDrain = [] {};
  callbacks.onTlsReady = [route] {
    std::shared_ptr<Handlers> handlers = route->handlers;
    if (handlers && handlers->onTlsReady) handlers->onTlsReady();
  };
  callbacks.onClose = [route](std::string_view reason) {
    std::shared_ptr<Handlers> handlers = route->handlers;
    if (handlers && handlers->onClose) handlers->onClose(reason);
  };
  return callbacks;
}

UpstreamPoolKey makeUpstreamPoolKey(std::uint64_t generation,
                                    const protocol::UpstreamCredentials& credentials) {
  UpstreamPoolKey key;
  key.generation = generation;
  key.account = SessionRegistry::accountKey(credentials.user);
  key.bearer = credentials.bearer.has_value();
  if (key.bearer) return key;
  // The user is in the MAC too, with a separator no login name holds, so that the pair is
  // bound: ("ab", "c") and ("a", "bc") differ.
  const auto& secret = processMacKey();
  static constexpr std::uint8_t kSeparator = 0;
  bssl::ScopedHMAC_CTX ctx;
  unsigned length = 0;
  if (HMAC_Init_ex(ctx.get(), secret.data(), secret.size(), EVP_sha256(), nullptr) != 1 ||
      HMAC_Update(ctx.get(), reinterpret_cast<const std::uint8_t*>(credentials.user.data()),
                  credentials.user.size()) != 1 ||
      HMAC_Update(ctx.get(), &kSeparator, 1) != 1 ||
      HMAC_Update(ctx.get(), reinterpret_cast<const std::uint8_t*>(credentials.password.data()),
                  credentials.password.size()) != 1 ||
      HMAC_Final(ctx.get(), key.secretMac.data(), &length) != 1 || length != key.secretMac.size()) {
    // Cannot happen with BoringSSL; a key that matches nothing keeps the pool safe anyway.
    RAND_bytes(key.secretMac.data(), key.secretMac.size());
  }
  return key;
}

bool sameUpstreamPoolKey(const UpstreamPoolKey& a, const UpstreamPoolKey& b) {
  if (a.generation != b.generation || a.bearer != b.bearer || a.account != b.account ||
      a.clientIp != b.clientIp) {
    return false;
  }
  return CRYPTO_memcmp(a.secretMac.data(), b.secretMac.data(), a.secretMac.size()) == 0;
}

// The pool's handlers run straight from libuv callbacks (swallowExceptions): what an exception
// interrupts is a drop or a screen of a parked connection, which its idle timer ends at worst.

struct UpstreamPool::Entry {
  explicit Entry(uv_loop_t* loop) : timer(loop) {}
  UpstreamPoolKey key;
  Connection connection;
  protocol::ImapResponseParser parser{kMaxParkedLine, kMaxParkedLine};
  protocol::ImapEvent event;
  unsigned responses = 0;
  Timer timer;
};

UpstreamPool::UpstreamPool(uv_loop_t* loop, WorkerMetrics* metrics, const SessionRegistry* sessions,
                           LogFn log)
    : loop_(loop), metrics_(metrics), sessions_(sessions), log_(std::move(log)) {}

UpstreamPool::~UpstreamPool() {
  // Streams close their sockets without calling back; the routes are cut first anyway.
  for (auto& [id, entry] : entries_) {
    entry->connection.route->handlers.reset();
    if (metrics_) {
      metrics_->poolUnparked();
      metrics_->poolDropped(PoolDrop::Closed);
      metrics_->upstreamClosed();
    }
  }
  for (auto& [id, stream] : closing_) {
    (void)stream;
    if (metrics_) metrics_->upstreamClosed();
  }
}

unsigned UpstreamPool::sessionsOf(std::string_view account) const {
  return sessions_ ? sessions_->sessionsOf(account) : 0;
}

std::size_t UpstreamPool::parkedOf(std::string_view account) const {
  std::size_t n = 0;
  for (const auto& [id, entry] : entries_) n += entry->key.account == account ? 1 : 0;
  return n;
}

bool UpstreamPool::evictOldest(std::string_view account) {
  for (const auto& [id, entry] : entries_) {
    if (account.empty() || entry->key.account == account) {
      drop(id, Drop::Evicted, "evicted to make room");
      return true;
    }
  }
  return false;
}

bool UpstreamPool::park(UpstreamPoolKey key, Connection& connection, std::string_view unparsed,
                        const Limits& limits) {
  if (closed_ || limits.idle.count() <= 0 || limits.maxTotal == 0 || limits.maxPerAccount == 0 ||
      !connection.stream || connection.stream->closing() || !connection.route ||
      std::chrono::steady_clock::now() - connection.loggedInAt > kMaxLoginAge) {
    return false;
  }
  // The account's own connections go first, then the pool's oldest.
  while (parkedOf(key.account) >= limits.maxPerAccount && evictOldest(key.account)) {
  }
  if (limits.maxSessionsPerAccount != 0) {
    while (sessionsOf(key.account) + parkedOf(key.account) >= limits.maxSessionsPerAccount &&
           evictOldest(key.account)) {
    }
    if (sessionsOf(key.account) + parkedOf(key.account) >= limits.maxSessionsPerAccount) {
      return false;
    }
  }
  while (entries_.size() >= limits.maxTotal && evictOldest({})) {
  }

  const std::uint64_t id = nextId_++;
  auto entry = std::make_unique<Entry>(loop_);
  entry->key = std::move(key);
  entry->connection = std::move(connection);
  auto handlers = std::make_shared<UpstreamRoute::Handlers>();
  handlers->onData = [this, id](std::string_view data) {
    swallowExceptions([&] { onData(id, data); });
  };
  handlers->onClose = [this, id](std::string_view reason) {
    swallowExceptions(
        [&] { drop(id, Drop::Dead, std::string("closed by the upstream: ").append(reason)); });
  };
  entry->connection.route->handlers = std::move(handlers);
  std::string why;
  if (!unparsed.empty() && !screen(*entry, unparsed, why)) {
    // Not kept: the caller's connection goes with the entry, as if dropped while parked.
    entry->connection.route->handlers.reset();
    connection = std::move(entry->connection);
    if (log_) log_("upstream connection not pooled: " + why);
    return false;
  }
  entry->timer.start(limits.idle, [this, id] {
    swallowExceptions([&] { drop(id, Drop::Expired, "pool_idle ran out"); });
  });
  entry->connection.stream->resumeReading();
  entries_.emplace(id, std::move(entry));
  if (metrics_) {
    metrics_->upstreamOpened();
    metrics_->poolParked();
  }
  if (log_) log_("upstream connection pooled");
  return true;
}

std::optional<UpstreamPool::Connection> UpstreamPool::take(const UpstreamPoolKey& key) {
  // Newest first: the connection most recently proven alive.
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    Entry& entry = *it->second;
    if (!sameUpstreamPoolKey(entry.key, key)) continue;
    if (!entry.parser.atResponseBoundary() || entry.connection.stream->closing()) {
      drop(it->first, Drop::Dead, "closing, or a response half-read");
      return take(key);
    }
    Connection connection = std::move(entry.connection);
    connection.route->handlers.reset();
    entries_.erase(std::next(it).base());
    if (metrics_) {
      metrics_->poolHit();
      metrics_->poolUnparked();
      metrics_->upstreamClosed();  // the session counts it from here
    }
    return connection;
  }
  if (metrics_) metrics_->poolMiss();
  return std::nullopt;
}

void UpstreamPool::makeRoom(std::string_view account, const Limits& limits, unsigned uncounted) {
  if (limits.maxSessionsPerAccount == 0) return;
  std::string key = SessionRegistry::accountKey(account);
  while (sessionsOf(key) + parkedOf(key) + uncounted > limits.maxSessionsPerAccount &&
         evictOldest(key)) {
  }
}

void UpstreamPool::closeAll() {
  closed_ = true;
  while (!entries_.empty()) drop(entries_.begin()->first, Drop::Closed, "draining");
}

void UpstreamPool::onData(std::uint64_t id, std::string_view data) {
  auto found = entries_.find(id);
  if (found == entries_.end()) return;
  std::string why;
  if (!screen(*found->second, data, why)) drop(id, Drop::Dead, why);
}

bool UpstreamPool::screen(Entry& entry, std::string_view data, std::string& why) {
  using Kind = protocol::ImapEvent::Kind;
  while (!data.empty() || entry.parser.atResponseBoundary() == false) {
    std::size_t consumed = 0;
    auto status = entry.parser.parse(data, consumed, entry.event);
    data.remove_prefix(consumed);
    if (status == protocol::ImapResponseParser::Status::Error) {
      why = "protocol error while pooled: " + entry.parser.error();
      return false;
    }
    if (status == protocol::ImapResponseParser::Status::NeedMore) return true;
    switch (entry.event.kind) {
      case Kind::Exists:
      case Kind::Recent:
      case Kind::Expunge:
      case Kind::Flags:
      case Kind::Fetch:
      case Kind::MailboxStatus:  // RFC 5465 NOTIFY sends STATUS unasked; it was an Other before
      case Kind::Other:
        break;
      case Kind::Status:
        if (entry.event.status == protocol::ImapStatus::Ok) break;
        why = entry.event.status == protocol::ImapStatus::Bye
                  ? "upstream said BYE while pooled: " + entry.event.text
                  : "unexpected untagged status while pooled";
        return false;
      default:
        why = "unexpected response while pooled";
        return false;
    }
    if (++entry.responses > kMaxParkedResponses) {
      why = "too many unsolicited responses while pooled";
      return false;
    }
  }
  return true;
}

void UpstreamPool::drop(std::uint64_t id, Drop how, std::string_view why) {
  auto found = entries_.find(id);
  if (found == entries_.end()) return;
  std::unique_ptr<Entry> entry = std::move(found->second);
  entries_.erase(found);
  entry->connection.route->handlers.reset();
  if (metrics_) {
    metrics_->poolUnparked();
    metrics_->poolDropped(how == Drop::Expired   ? PoolDrop::Expired
                          : how == Drop::Evicted ? PoolDrop::Evicted
                          : how == Drop::Dead    ? PoolDrop::Dead
                                                 : PoolDrop::Closed);
  }
  if (log_) log_("pooled upstream connection dropped: " + std::string(why));
  std::unique_ptr<Stream> stream = std::move(entry->connection.stream);
  if (how == Drop::Dead || !stream || stream->closing()) {
    // Gone or in doubt: nothing more is said on it. Destroying a Stream from inside its own
    // callback is allowed.
    if (metrics_) metrics_->upstreamClosed();
    return;
  }
  // Idle and sound: end the IMAP session politely, the way a session's QUIT would have.
  protocol::ImapCommandBuilder builder(entry->connection.state.tagPrefix);
  builder.setNextTagNumber(entry->connection.state.nextTag);
  stream->write(builder.logout().segments.front());
  auto handlers = std::make_shared<UpstreamRoute::Handlers>();
  handlers->onClose = [this, id](std::string_view) {
    swallowExceptions([&] {
      if (closing_.erase(id) != 0 && metrics_) metrics_->upstreamClosed();
    });
  };
  entry->connection.route->handlers = std::move(handlers);
  Stream& ref = *stream;
  closing_.emplace(id, std::move(stream));
  ref.closeAfterFlush("pooled connection closed");
}

}  // namespace popbridge::proxy
