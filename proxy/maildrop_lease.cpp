#include "proxy/maildrop_lease.h"

#include <utility>

namespace popbridge::proxy {
namespace {

// A holder's field in the maildrop hash: "<token>|<exclusive 0/1>|<expiry, ms of Redis' clock>".
// Expired holders are dropped by whoever looks next; the hash and the account's set expire on
// their own once their last holder's lease has passed.
//
// KEYS: maildrop hash, account sorted set (holder -> expiry), fence counter.
// ARGV: holder, exclusive, ttl ms, max sessions per account (0: none).
// Returns {0, token} granted, {1, 0} maildrop in use, {2, 0} account full.
constexpr const char* kClaimScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local max = tonumber(ARGV[4])
if max > 0 and not redis.call('ZSCORE', KEYS[2], ARGV[1]) and redis.call('ZCARD', KEYS[2]) >= max then
  return {2, 0}
end
local fields = redis.call('HGETALL', KEYS[1])
local busy = false
for i = 1, #fields, 2 do
  local token, excl, expiry = string.match(fields[i + 1], '^(%d+)|(%d)|(%d+)$')
  if not expiry or tonumber(expiry) <= now then
    redis.call('HDEL', KEYS[1], fields[i])
  elseif fields[i] ~= ARGV[1] and (ARGV[2] == '1' or excl == '1') then
    busy = true
  end
end
if busy then return {1, 0} end
local token = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], token .. '|' .. ARGV[2] .. '|' .. string.format('%d', now + ttl))
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return {0, token}
)lua";

// KEYS: maildrop hash, account set. ARGV: holder, token, ttl ms. 1: held and extended; 0: lost.
constexpr const char* kRenewScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local token, excl, expiry = string.match(value, '^(%d+)|(%d)|(%d+)$')
if token ~= ARGV[2] or not expiry or tonumber(expiry) <= now then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], token .. '|' .. excl .. '|' .. string.format('%d', now + ttl))
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
)lua";

// KEYS: maildrop hash, account set. ARGV: holder, token. Gives back only this holder's own grant;
// token "0" (never granted: the fence counter starts at 1) gives back whatever grant the holder
// has, for a session that ends before it learnt its token (a claim still on its way, or one
// that timed out here after Redis ran it). Holder names are unique (instance:session), and one
// connection's commands run in order, so that release comes after the claim it undoes.
constexpr const char* kReleaseScript = R"lua(
local value = redis.call('HGET', KEYS[1], ARGV[1])
if value and (ARGV[2] == '0' or string.match(value, '^(%d+)|') == ARGV[2]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return 0
)lua";

std::string answerProblem(const RedisReply& reply) {
  if (!reply.answered) return reply.problem;
  if (reply.value.isError()) return "redis error: " + reply.value.text;
  return "redis: unexpected reply";
}

}  // namespace

MaildropLeases::MaildropLeases(RedisClient& redis, std::string keyPrefix, std::string instance,
                               std::chrono::milliseconds ttl)
    : redis_(redis), prefix_(std::move(keyPrefix)), instance_(std::move(instance)), ttl_(ttl) {}

std::string MaildropLeases::holderName(SessionRegistry::Holder holder) const {
  return instance_ + ":" + std::to_string(holder);
}

std::string MaildropLeases::maildropKey(const SessionRegistry::Maildrop& maildrop) const {
  // The account's length first: neither name can make two maildrops share a key.
  std::string account = SessionRegistry::accountKey(maildrop.account);
  return prefix_ + "maildrop:" + std::to_string(account.size()) + ":" + account + ":" +
         SessionRegistry::folderKey(maildrop.folder);
}

std::string MaildropLeases::accountKey(const SessionRegistry::Maildrop& maildrop) const {
  return prefix_ + "account:" + SessionRegistry::accountKey(maildrop.account);
}

std::string MaildropLeases::fenceKey(const SessionRegistry::Maildrop& maildrop) const {
  std::string account = SessionRegistry::accountKey(maildrop.account);
  return prefix_ + "fence:" + std::to_string(account.size()) + ":" + account + ":" +
         SessionRegistry::folderKey(maildrop.folder);
}

void MaildropLeases::claim(const SessionRegistry::Maildrop& maildrop,
                           SessionRegistry::Holder holder, unsigned maxPerAccount,
                           std::function<void(Grant)> done) {
  redis_.command({"EVAL", kClaimScript, "3", maildropKey(maildrop), accountKey(maildrop),
                  fenceKey(maildrop), holderName(holder), maildrop.exclusive ? "1" : "0",
                  std::to_string(ttl_.count()), std::to_string(maxPerAccount)},
                 [done = std::move(done)](RedisReply reply) {
                   Grant grant;
                   const RedisValue& value = reply.value;
                   if (reply.answered && value.type == RedisValue::Type::Array &&
                       value.elements.size() == 2 &&
                       value.elements[0].type == RedisValue::Type::Integer &&
                       value.elements[1].type == RedisValue::Type::Integer) {
                     switch (value.elements[0].integer) {
                       case 0:
                         grant.outcome = Outcome::Granted;
                         grant.token = static_cast<std::uint64_t>(value.elements[1].integer);
                         break;
                       case 1:
                         grant.outcome = Outcome::InUse;
                         break;
                       default:
                         grant.outcome = Outcome::AccountFull;
                         break;
                     }
                   } else {
                     grant.problem = answerProblem(reply);
                   }
                   done(std::move(grant));
                 });
}

void MaildropLeases::renew(const SessionRegistry::Maildrop& maildrop,
                           SessionRegistry::Holder holder, std::uint64_t token,
                           std::function<void(Check, std::string)> done) {
  redis_.command({"EVAL", kRenewScript, "2", maildropKey(maildrop), accountKey(maildrop),
                  holderName(holder), std::to_string(token), std::to_string(ttl_.count())},
                 [done = std::move(done)](RedisReply reply) {
                   if (reply.answered && reply.value.type == RedisValue::Type::Integer) {
                     return done(reply.value.integer == 1 ? Check::Held : Check::Lost, {});
                   }
                   done(Check::Unavailable, answerProblem(reply));
                 });
}

void MaildropLeases::release(const SessionRegistry::Maildrop& maildrop,
                             SessionRegistry::Holder holder, std::uint64_t token) {
  redis_.command({"EVAL", kReleaseScript, "2", maildropKey(maildrop), accountKey(maildrop),
                  holderName(holder), std::to_string(token)},
                 {});
}

// --- one session's lease -----------------------------------------------------------------------

MaildropLease::MaildropLease(uv_loop_t* loop, MaildropLeases& leases,
                             SessionRegistry::Maildrop maildrop, SessionRegistry::Holder holder,
                             unsigned maxPerAccount, Events events)
    : leases_(leases),
      maildrop_(std::move(maildrop)),
      holder_(holder),
      maxPerAccount_(maxPerAccount),
      events_(std::move(events)),
      renewTimer_(loop) {}

MaildropLease::~MaildropLease() {
  *alive_ = false;
  // A claim may have reached Redis without its answer reaching us (still pending, or timed out
  // here): left alone it would hold the maildrop [IN-USE] until lease_ttl runs out.
  if (state_ == State::Held) {
    leases_.release(maildrop_, holder_, token_);
  } else if (state_ == State::Pending || state_ == State::Unconfirmed) {
    leases_.release(maildrop_, holder_, 0);
  }
}

void MaildropLease::acquire(std::function<void(MaildropLeases::Outcome)> done) {
  std::weak_ptr<bool> alive = alive_;
  leases_.claim(maildrop_, holder_, maxPerAccount_,
                [this, alive, done = std::move(done)](MaildropLeases::Grant grant) {
                  if (auto live = alive.lock(); !live || !*live) return;
                  switch (grant.outcome) {
                    case MaildropLeases::Outcome::Granted:
                      state_ = State::Held;
                      token_ = grant.token;
                      break;
                    case MaildropLeases::Outcome::Unavailable:
                      state_ = State::Unconfirmed;
                      if (events_.onUnavailable) events_.onUnavailable(grant.problem);
                      break;
                    case MaildropLeases::Outcome::InUse:
                    case MaildropLeases::Outcome::AccountFull:
                      state_ = State::Lost;
                      break;
                  }
                  if (state_ != State::Lost) scheduleRenewal();
                  done(grant.outcome);
                });
}

void MaildropLease::scheduleRenewal() {
  std::weak_ptr<bool> alive = alive_;
  renewTimer_.start(leases_.ttl() / 3, [this, alive] {
    if (auto live = alive.lock(); live && *live) renew();
  });
}

void MaildropLease::renew() {
  if (renewing_ || state_ == State::Lost) return;
  std::weak_ptr<bool> alive = alive_;
  renewing_ = true;
  if (state_ == State::Unconfirmed) {
    // Redis was unreachable at login: claim now, if nobody else took the maildrop meanwhile.
    leases_.claim(maildrop_, holder_, 0, [this, alive](MaildropLeases::Grant grant) {
      if (auto live = alive.lock(); !live || !*live) return;
      renewing_ = false;
      if (state_ != State::Unconfirmed) return;
      if (grant.outcome == MaildropLeases::Outcome::Granted) {
        state_ = State::Held;
        token_ = grant.token;
      } else if (grant.outcome != MaildropLeases::Outcome::Unavailable) {
        return lose("another session holds the maildrop");
      }
      scheduleRenewal();
    });
    return;
  }
  leases_.renew(maildrop_, holder_, token_,
                [this, alive](MaildropLeases::Check check, std::string problem) {
                  if (auto live = alive.lock(); !live || !*live) return;
                  renewing_ = false;
                  if (state_ != State::Held) return;
                  if (check == MaildropLeases::Check::Lost) {
                    return lose("the lease expired or another session took the maildrop over");
                  }
                  if (check == MaildropLeases::Check::Unavailable && events_.onUnavailable) {
                    events_.onUnavailable(problem);
                  }
                  scheduleRenewal();
                });
}

void MaildropLease::lose(std::string why) {
  state_ = State::Lost;
  renewTimer_.stop();
  if (events_.onLost) events_.onLost(why);
}

void MaildropLease::confirm(std::function<void(bool)> done) {
  std::weak_ptr<bool> alive = alive_;
  if (state_ != State::Held) {
    // Nothing to ask: answered on the loop all the same, as Redis' answer would be.
    leases_.renew(maildrop_, holder_, 0,
                  [alive, done = std::move(done)](MaildropLeases::Check, std::string) {
                    if (auto live = alive.lock(); live && *live) done(false);
                  });
    return;
  }
  leases_.renew(
      maildrop_, holder_, token_,
      [this, alive, done = std::move(done)](MaildropLeases::Check check, std::string problem) {
        if (auto live = alive.lock(); !live || !*live) return;
        if (check == MaildropLeases::Check::Lost && state_ == State::Held) {
          lose("the lease expired or another session took the maildrop over");
        } else if (check == MaildropLeases::Check::Unavailable && events_.onUnavailable) {
          events_.onUnavailable(problem);
        }
        done(check == MaildropLeases::Check::Held && state_ == State::Held);
      });
}

}  // namespace popbridge::proxy
