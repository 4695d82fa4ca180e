#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// What stands between a login and the work it costs (issue 11) and the abuse it could be:
// a process-wide bound on password checks (argon2 takes tens of milliseconds of CPU and 19 MiB
// each), a throttle on failed or abandoned logins keyed both by client IP and by user name, so
// that neither a flood of bad logins, nor a guesser that hangs up before the failure delay, nor
// one spread over many addresses can buy unbounded hashing or upstream logins, and the RFC 2449
// LOGIN-DELAY between one user's successful logins.
//
// Shared by every worker loop, hence the mutex. It does no I/O and reads no clock: callers pass
// `now`, which keeps it testable; LoginGate (below) does the loop side.
class LoginGuard {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Ticket = std::uint64_t;  // a session id: unique in the process

  struct Limits {
    unsigned maxChecks = 4;          // running at once; at least 1
    unsigned queueLength = 32;       // waiting for a slot
    unsigned throttleAfter = 3;      // failures per IP before the throttle; 0 = off
    unsigned userThrottleAfter = 0;  // failures per user name before the throttle; 0 = off
    std::chrono::milliseconds baseDelay{2000};
    std::chrono::milliseconds maxDelay{30000};
    std::chrono::milliseconds forgetAfter = std::chrono::minutes(10);
    // The tables are bounded by these, not by how many addresses or names an attacker has:
    // beyond them the entry whose last failure (or login) is oldest is forgotten.
    std::size_t maxTrackedIps = 16384;
    std::size_t maxTrackedUsers = 16384;
    std::chrono::milliseconds loginDelay{0};  // RFC 2449 LOGIN-DELAY; 0 = off
  };
  static Limits limitsFrom(const config::ServerConfig& server);

  explicit LoginGuard(Limits limits);
  LoginGuard(const LoginGuard&) = delete;
  LoginGuard& operator=(const LoginGuard&) = delete;

  // The table key of a login name: ASCII letters lower-cased (mail servers compare logins that
  // way, so "Alice" must not escape the count of "alice"), at most kMaxUserKey bytes.
  static constexpr std::size_t kMaxUserKey = 256;
  static std::string userKey(std::string_view login);

  // A reload (SIGHUP): new limits from now on; the failure counts, the running checks and the
  // queue stay. More slots start queued checks at once; fewer let running ones finish.
  void setLimits(Limits limits);

  // --- Failed-login throttle, per IP and per user ---------------------------------------------

  // One mechanism with two keys: each has its own table and threshold; the delay, its growth,
  // its cap, expiry and eviction are the same.
  enum class Subject : std::uint8_t { Ip, User };
  struct Throttle {
    std::chrono::milliseconds delay{0};  // zero: check at once
    unsigned failures = 0;               // recent failed or abandoned logins of the subject
    Subject subject = Subject::Ip;       // whose delay this is
  };
  // How long a login from `ip` as `user` must wait before it is checked at all: the longer of
  // the IP's and the user's delay (an empty user: the IP's alone).
  Throttle throttle(const std::string& ip, std::string_view user, TimePoint now);
  // One subject's delay; `key` is an IP or a login name.
  Throttle throttle(Subject subject, std::string_view key, TimePoint now);
  struct Failures {
    unsigned ip = 0;
    unsigned user = 0;
  };
  // A failed or abandoned login; returns the recent counts of its IP and its user.
  Failures recordFailure(const std::string& ip, std::string_view user, TimePoint now);
  // A successful login forgives its IP's and its user's failures: a device whose password was
  // fixed must not stay throttled. (That lets an attacker holding one valid account clear its
  // own IP's count; the check slots and the per-connection failure limit still bound it.)
  void recordSuccess(const std::string& ip, std::string_view user);
  std::size_t tracked(Subject subject) const;
  // The cluster's count for `key` ([state] redis: every replica's failures): the local count
  // becomes the larger of the two, as if this process had seen them. Zero changes nothing; a
  // subject whose throttle is off keeps no count.
  void mergeShared(Subject subject, std::string_view key, unsigned count, TimePoint now);
  // How long a failure counts (the window of the shared counters too).
  std::chrono::milliseconds forgetAfter() const;

  // --- LOGIN-DELAY (RFC 2449) ------------------------------------------------------------------

  // How much longer `user` must wait after its last successful login; zero: it may log in.
  // Asked only once the credentials are proven, so it tells nothing to a guesser.
  std::chrono::milliseconds loginDelayRemaining(std::string_view user, TimePoint now);
  // A successful login (the "+OK" to PASS or AUTH) starts the user's interval.
  void recordLogin(std::string_view user, TimePoint now);
  std::size_t trackedLogins() const;

  // --- Password-check slots --------------------------------------------------------------------

  enum class Admission { Run, Queued, Refused };
  // Each loop registers how to wake it (called from any thread, under the guard's lock, so it
  // must only signal, e.g. uv_async_send) before it queues anything.
  void attach(unsigned owner, std::function<void()> wake);
  // The loop is going away: its queued tickets are dropped and slots granted to it pass on.
  void detach(unsigned owner);
  // Run: a slot is taken; Queued: the ticket waits and will appear in takeGrants(owner) holding
  // a slot; Refused: neither is free.
  Admission requestCheck(unsigned owner, Ticket ticket);
  // The client left while its check waited. Returns false when it was not queued (any more):
  // it may have been granted already, so its owner must release that slot when it finds the
  // grant without a taker.
  bool cancelCheck(Ticket ticket);
  // A slot is free again (a check ended, or a grant found no taker): it goes to the oldest
  // queued ticket, whose owner is woken.
  void releaseCheck();
  // Tickets granted to `owner` since the last call; each holds a slot.
  std::vector<Ticket> takeGrants(unsigned owner);
  unsigned runningChecks() const;
  std::size_t queuedChecks() const;

 private:
  // Keys with a count and the time of their last event, oldest event first, so that expiry and
  // eviction take from the front. Bounded by `max`. The guard's mutex covers it.
  class RecentTable {
   public:
    struct Entry {
      unsigned count = 0;
      TimePoint last;
      std::list<std::string>::iterator order;
    };
    RecentTable(std::size_t max, std::chrono::milliseconds forgetAfter)
        : max_(max), forgetAfter_(forgetAfter) {}
    // After forgetting what expired; null when the key is not there.
    const Entry* find(const std::string& key, TimePoint now);
    // Inserts (evicting the oldest when full) or refreshes the key; its last event is `now`.
    Entry& touch(const std::string& key, TimePoint now);
    void erase(const std::string& key);
    std::size_t size() const { return entries_.size(); }
    // Entries stay ordered by their last event, so a new window keeps expiry from the front.
    void setForgetAfter(std::chrono::milliseconds forgetAfter) { forgetAfter_ = forgetAfter; }

   private:
    void forgetExpired(TimePoint now);
    std::size_t max_;
    std::chrono::milliseconds forgetAfter_;
    std::unordered_map<std::string, Entry> entries_;
    std::list<std::string> order_;
  };
  struct Waiting {
    unsigned owner;
    Ticket ticket;
  };
  struct Owner {
    std::function<void()> wake;
    std::vector<Ticket> grants;
  };

  // One subject's table, or null when its throttle is off; `key` is normalised already.
  RecentTable* failureTable(Subject subject);
  unsigned thresholdOf(Subject subject) const;
  Throttle throttleLocked(Subject subject, const std::string& key, TimePoint now);
  unsigned recordFailureLocked(Subject subject, const std::string& key, TimePoint now);
  void grantNextLocked();

  Limits limits_;  // under mutex_
  mutable std::mutex mutex_;
  RecentTable ips_;
  RecentTable users_;
  RecentTable logins_;  // user -> last successful login, forgotten after loginDelay
  // Slots.
  unsigned running_ = 0;
  std::list<Waiting> queue_;
  std::unordered_map<Ticket, std::list<Waiting>::iterator> queued_;
  std::map<unsigned, Owner> owners_;
};

// The loop side of LoginGuard, one per event loop: queued checks are started on the loop that
// queued them (a session is only ever touched on its own loop's thread), woken by a uv_async
// when a check ending on any loop hands its slot over.
class LoginGate {
 public:
  LoginGate(uv_loop_t* loop, LoginGuard& guard, unsigned owner);
  ~LoginGate();
  LoginGate(const LoginGate&) = delete;
  LoginGate& operator=(const LoginGate&) = delete;

  LoginGuard& guard() { return guard_; }
  // Run: the caller starts its check now. Queued: `start` runs later on this loop, unless
  // cancel(ticket) came first. Refused: nothing happens.
  LoginGuard::Admission requestCheck(LoginGuard::Ticket ticket, std::function<void()> start);
  // Returns true when the check was still waiting (it will never run).
  bool cancel(LoginGuard::Ticket ticket);
  // A check started by Run or by `start` has ended.
  void finished();
  // Shutdown: stops waking this loop so that it can end.
  void close();

 private:
  void onWake();

  LoginGuard& guard_;
  unsigned owner_;
  UvHandle<uv_async_t> async_;
  std::unordered_map<LoginGuard::Ticket, std::function<void()>> waiting_;
};

}  // namespace popbridge::proxy
