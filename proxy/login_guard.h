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
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// What stands between a login and the work it costs (issue 11): a process-wide bound on
// password checks (argon2 takes tens of milliseconds of CPU and 19 MiB each) and a per-client-IP
// throttle on failed or abandoned logins, so neither a flood of bad logins nor a guesser that
// hangs up before the failure delay can buy unbounded hashing or upstream logins.
//
// Shared by every worker loop, hence the mutex. It does no I/O and reads no clock: callers pass
// `now`, which keeps it testable; LoginGate (below) does the loop side. Meant to grow per-user
// throttling and LOGIN-DELAY later.
class LoginGuard {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Ticket = std::uint64_t;  // a session id: unique in the process

  struct Limits {
    unsigned maxChecks = 4;      // running at once; at least 1
    unsigned queueLength = 32;   // waiting for a slot
    unsigned throttleAfter = 3;  // failures per IP before the throttle; 0 = off
    std::chrono::milliseconds baseDelay{2000};
    std::chrono::milliseconds maxDelay{30000};
    std::chrono::milliseconds forgetAfter = std::chrono::minutes(10);
    // The table of IPs is bounded by this, not by how many addresses an attacker has: beyond it
    // the IP whose last failure is oldest is forgotten.
    std::size_t maxTrackedIps = 16384;
  };
  static Limits limitsFrom(const config::ServerConfig& server);

  explicit LoginGuard(Limits limits) : limits_(limits) {}
  LoginGuard(const LoginGuard&) = delete;
  LoginGuard& operator=(const LoginGuard&) = delete;

  // A reload (SIGHUP): new limits from now on; the IPs' failure counts, the running checks and
  // the queue stay. More slots start queued checks at once; fewer let running ones finish.
  void setLimits(Limits limits);

  // --- Per-IP throttle -------------------------------------------------------------------------

  struct Throttle {
    std::chrono::milliseconds delay{0};  // zero: check at once
    unsigned failures = 0;               // recent failed or abandoned logins from the IP
  };
  // How long a login from `ip` must wait before it is checked at all.
  Throttle throttle(const std::string& ip, TimePoint now);
  // A failed or abandoned login; returns the IP's count of recent ones.
  unsigned recordFailure(const std::string& ip, TimePoint now);
  // A successful login forgives its IP's failures: a device whose password was fixed must not
  // stay throttled. (That lets an attacker holding one valid account clear its own IP's count;
  // the check slots and the per-connection failure limit still bound it.)
  void recordSuccess(const std::string& ip);
  std::size_t trackedIps() const;

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
  struct IpEntry {
    unsigned failures = 0;
    TimePoint lastFailure;
    std::list<std::string>::iterator order;
  };
  struct Waiting {
    unsigned owner;
    Ticket ticket;
  };
  struct Owner {
    std::function<void()> wake;
    std::vector<Ticket> grants;
  };

  void forgetExpired(TimePoint now);
  void grantNextLocked();

  Limits limits_;  // under mutex_
  mutable std::mutex mutex_;
  // Throttle: oldest failure first, so expiry and eviction take from the front.
  std::unordered_map<std::string, IpEntry> ips_;
  std::list<std::string> ipOrder_;
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
