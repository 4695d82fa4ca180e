#pragma once

// The upstream connection pool: an IMAP connection that served a POP3 session cleanly stays
// logged in and SELECTed for [upstream] pool_idle, and the next login with the same
// credentials takes it instead of paying TCP, TLS, greeting, CAPABILITY and LOGIN again.
// Printers poll every minute, so most polls find their last connection waiting.
//
// One pool per worker: a libuv handle belongs to one loop, and a session only ever adopts a
// connection of its own loop. pool_max_total is therefore per worker.
//
// What is never kept (the callers decide, see ImapMaildrop::parkUpstream): a connection after a
// command timeout, a protocol error or broken literal, a failed UPDATE, a BYE, a client that left
// while a command or literal was in flight, a UIDVALIDITY change; nothing is parked while the
// worker drains. While parked, the connection is still read: untagged EXISTS, EXPUNGE, FETCH,
// FLAGS, RECENT and OK are discarded (at most kMaxParkedResponses of them), anything else (BYE,
// EOF, a tagged reply, a body, a protocol error) drops it.
//
// The key is the configuration generation (a reload never hands old-config connections to new
// sessions), the upstream identity, and for a password an HMAC-SHA256 of it under a key drawn
// at process start: the password itself is never stored, and a wrong password never matches
// (compared in constant time), so it falls through to a fresh login that the upstream refuses.
// An OAuth2 identity is keyed on the identity alone: its tokens change while the grant does not.

#include <uv.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/bridge/imap_maildrop.h"
#include "protocol/imap/client.h"
#include "protocol/imap/parser.h"
#include "proxy/stream.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

class WorkerMetrics;
class SessionRegistry;

// Where an upstream Stream's events go. A Stream's callbacks are fixed when it is made; these
// follow `handlers`, which the session or the pool holding the stream replaces. The dispatch
// holds the handlers it calls, so replacing them from inside one of them is safe.
struct UpstreamRoute {
  struct Handlers {
    std::function<void(std::string_view data)> onData;
    std::function<void()> onTlsReady;
    std::function<void(std::string_view reason)> onClose;
  };
  std::shared_ptr<Handlers> handlers;

  static Stream::Callbacks callbacks(const std::shared_ptr<UpstreamRoute>& route);
};

struct UpstreamPoolKey {
  std::uint64_t generation = 0;  // ConfigSnapshot::generation
  std::string account;           // SessionRegistry::accountKey(user): the caps count by it
  bool bearer = false;
  std::array<std::uint8_t, 32> secretMac{};  // HMAC-SHA256 of user and password; zero for bearer
  // With upstream.send_client_address, the device's IP: the connection told the upstream (IMAP
  // ID) who its client was, and another device must not borrow that identity for its logs,
  // per-IP limits and penalties. Empty when nothing was sent.
  std::string clientIp;
};

// The key for `credentials` under the configuration `generation`.
UpstreamPoolKey makeUpstreamPoolKey(std::uint64_t generation,
                                    const protocol::UpstreamCredentials& credentials);
// Same account, generation and kind, and (constant time) the same MAC.
bool sameUpstreamPoolKey(const UpstreamPoolKey& a, const UpstreamPoolKey& b);

class UpstreamPool {
 public:
  // Untagged responses discarded while parked before the connection is dropped.
  static constexpr unsigned kMaxParkedResponses = 256;
  // The longest line (and inline literal) a parked connection may send.
  static constexpr std::size_t kMaxParkedLine = 8 * 1024;
  // A connection logged in longer ago than this is not parked again. A pooled connection cannot
  // notice a password changed upstream; a device polling within pool_idle would otherwise keep
  // the old password working for ever. This bounds that window to kMaxLoginAge + pool_idle.
  static constexpr std::chrono::hours kMaxLoginAge{1};

  struct Limits {
    std::chrono::milliseconds idle{0};  // 0: no pooling
    std::size_t maxPerAccount = 2;
    std::size_t maxTotal = 256;
    // server.max_sessions_per_account (0: none): sessions and parked connections of an account
    // together stay within it.
    unsigned maxSessionsPerAccount = 0;
  };
  // A connection and what its next client needs.
  struct Connection {
    std::unique_ptr<Stream> stream;
    std::shared_ptr<UpstreamRoute> route;
    protocol::ImapResumeState state;
    // When its LOGIN succeeded: reuse does not renew it (see kMaxLoginAge).
    std::chrono::steady_clock::time_point loggedInAt{};
  };
  using LogFn = std::function<void(std::string_view message)>;

  // `metrics`, `sessions` may be null (tests). `log` gets info/debug lines, never a secret.
  UpstreamPool(uv_loop_t* loop, WorkerMetrics* metrics, const SessionRegistry* sessions,
               LogFn log = {});
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // Keeps `connection` (whose reads already produced `unparsed` past its last reply). False
  // (and the connection is still the caller's) when pooling is off, the pool is closed, or the
  // account's caps leave no room even after evicting its oldest.
  bool park(UpstreamPoolKey key, Connection& connection, std::string_view unparsed,
            const Limits& limits);
  // The newest connection parked under `key`, or nullopt.
  std::optional<Connection> take(const UpstreamPoolKey& key);
  // A session of `account` is about to open a fresh connection: evict the account's parked
  // connections that would put it over max_sessions_per_account. `uncounted`: sessions about to
  // connect that the registry does not count yet.
  void makeRoom(std::string_view account, const Limits& limits, unsigned uncounted);
  // Drain: every parked connection is logged out and closed; nothing is parked any more.
  void closeAll();
  bool closed() const { return closed_; }

  std::size_t size() const { return entries_.size(); }
  std::size_t parkedOf(std::string_view account) const;

 private:
  struct Entry;
  enum class Drop : std::uint8_t { Expired, Evicted, Dead, Closed };

  void onData(std::uint64_t id, std::string_view data);
  // Reads what a parked connection sent; false when it must go (`why` says why).
  bool screen(Entry& entry, std::string_view data, std::string& why);
  void drop(std::uint64_t id, Drop how, std::string_view why);
  bool evictOldest(std::string_view account);  // account empty: any
  unsigned sessionsOf(std::string_view account) const;

  uv_loop_t* loop_;
  WorkerMetrics* metrics_;
  const SessionRegistry* sessions_;
  LogFn log_;
  bool closed_ = false;
  std::uint64_t nextId_ = 1;
  std::map<std::uint64_t, std::unique_ptr<Entry>> entries_;  // by id: oldest first
  // Logged out and flushing; gone at their onClose.
  std::map<std::uint64_t, std::unique_ptr<Stream>> closing_;
};

}  // namespace popbridge::proxy
