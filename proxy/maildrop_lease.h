#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "proxy/redis_client.h"
#include "proxy/session_registry.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {

// RFC 1939's exclusive access and max_sessions_per_account across every popbridge process that
// shares one Redis: the cluster's half of SessionRegistry (the process's own LocalSessionRegistry
// still answers first, without a round trip).
//
// A claim is a lease: a field per holder in the maildrop's hash, with an expiry that the holder
// renews while its session lives, so a replica that dies (kill -9, a lost host) leaves locks that
// expire after lease_ttl instead of forever. Each grant takes the next fencing token of the
// maildrop (INCR); UPDATE asks Redis whether the session's token is still the one it holds,
// unexpired, and applies nothing otherwise: a session that was paused past its lease, while
// another replica took the maildrop over, cannot delete what the new holder serves.
//
// Everything is one Lua script per step, so a check and its write are atomic in Redis, and time
// is Redis' own clock (TIME), never a replica's.
class MaildropLeases {
 public:
  enum class Outcome : std::uint8_t { Granted, InUse, AccountFull, Unavailable };
  struct Grant {
    Outcome outcome = Outcome::Unavailable;
    std::uint64_t token = 0;  // the fencing token, for Granted
    std::string problem;      // for Unavailable: why (no password in it)
  };
  enum class Check : std::uint8_t { Held, Lost, Unavailable };

  // `instance`: unique per process (random), so that holders of two replicas never collide.
  MaildropLeases(RedisClient& redis, std::string keyPrefix, std::string instance,
                 std::chrono::milliseconds ttl);

  std::chrono::milliseconds ttl() const { return ttl_; }
  std::string holderName(SessionRegistry::Holder holder) const;

  void claim(const SessionRegistry::Maildrop& maildrop, SessionRegistry::Holder holder,
             unsigned maxPerAccount, std::function<void(Grant)> done);
  // Still held with `token` and unexpired? Held extends it by ttl.
  void renew(const SessionRegistry::Maildrop& maildrop, SessionRegistry::Holder holder,
             std::uint64_t token, std::function<void(Check, std::string problem)> done);
  void release(const SessionRegistry::Maildrop& maildrop, SessionRegistry::Holder holder,
               std::uint64_t token);

  // The keys, for tests and operators: "<prefix>maildrop:<len>:<account>:<folder>".
  std::string maildropKey(const SessionRegistry::Maildrop& maildrop) const;
  std::string accountKey(const SessionRegistry::Maildrop& maildrop) const;
  std::string fenceKey(const SessionRegistry::Maildrop& maildrop) const;

 private:
  RedisClient& redis_;
  std::string prefix_;
  std::string instance_;
  std::chrono::milliseconds ttl_;
};

// One session's lease, renewed every ttl/3 while it lives and released when it is destroyed.
//
// States: Pending until the first answer; Held; Unconfirmed when Redis could not be asked (the
// login goes on: reads keep working, and renewals keep trying to claim); Lost for good once
// Redis said another holder has it or the lease expired. Only Held confirms an UPDATE.
class MaildropLease {
 public:
  enum class State : std::uint8_t { Pending, Held, Unconfirmed, Lost };
  struct Events {
    // Redis could not be asked (login or renewal): for a log line and the metric.
    std::function<void(std::string_view problem)> onUnavailable;
    // The lease was held and is not any more.
    std::function<void(std::string_view why)> onLost;
  };

  MaildropLease(uv_loop_t* loop, MaildropLeases& leases, SessionRegistry::Maildrop maildrop,
                SessionRegistry::Holder holder, unsigned maxPerAccount, Events events);
  ~MaildropLease();
  MaildropLease(const MaildropLease&) = delete;
  MaildropLease& operator=(const MaildropLease&) = delete;

  // The login's claim: Granted or Unavailable let the session go on (Unavailable as
  // Unconfirmed); InUse and AccountFull refuse it. `done` runs on the loop, never inside.
  void acquire(std::function<void(MaildropLeases::Outcome)> done);
  // UPDATE: true only when Redis confirms the lease is still this session's (renewing it).
  void confirm(std::function<void(bool confirmed)> done);

  State state() const { return state_; }
  std::uint64_t token() const { return token_; }

 private:
  void scheduleRenewal();
  void renew();
  void lose(std::string why);

  MaildropLeases& leases_;
  SessionRegistry::Maildrop maildrop_;
  SessionRegistry::Holder holder_;
  unsigned maxPerAccount_;
  Events events_;
  State state_ = State::Pending;
  std::uint64_t token_ = 0;
  bool renewing_ = false;
  Timer renewTimer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace popbridge::proxy
