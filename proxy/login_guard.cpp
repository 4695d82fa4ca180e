#include "proxy/login_guard.h"

#include <algorithm>
#include <utility>

#include "protocol/text.h"

namespace popbridge::proxy {

LoginGuard::Limits LoginGuard::limitsFrom(const config::ServerConfig& server) {
  Limits limits;
  limits.maxChecks = server.maxPasswordChecks;
  limits.queueLength = server.passwordCheckQueue;
  limits.throttleAfter = server.loginThrottleAfter;
  limits.userThrottleAfter = server.loginThrottleUserAfter;
  limits.baseDelay = std::chrono::duration_cast<std::chrono::milliseconds>(server.authFailureDelay);
  limits.maxDelay =
      std::chrono::duration_cast<std::chrono::milliseconds>(server.loginThrottleMaxDelay);
  limits.loginDelay = std::chrono::duration_cast<std::chrono::milliseconds>(server.loginDelay);
  return limits;
}

LoginGuard::LoginGuard(Limits limits)
    : limits_(limits),
      ips_(limits.maxTrackedIps, limits.forgetAfter),
      users_(limits.maxTrackedUsers, limits.forgetAfter),
      logins_(limits.maxTrackedUsers, limits.loginDelay) {}

std::string LoginGuard::userKey(std::string_view login) {
  return protocol::toLowerAscii(login.substr(0, kMaxUserKey));
}

// --- RecentTable ---------------------------------------------------------------------------------

void LoginGuard::RecentTable::forgetExpired(TimePoint now) {
  while (!order_.empty()) {
    auto it = entries_.find(order_.front());
    if (now - it->second.last < forgetAfter_) return;
    entries_.erase(it);
    order_.pop_front();
  }
}

const LoginGuard::RecentTable::Entry* LoginGuard::RecentTable::find(const std::string& key,
                                                                    TimePoint now) {
  forgetExpired(now);
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

LoginGuard::RecentTable::Entry& LoginGuard::RecentTable::touch(const std::string& key,
                                                               TimePoint now) {
  forgetExpired(now);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= max_ && !order_.empty()) {
      entries_.erase(order_.front());
      order_.pop_front();
    }
    it = entries_.emplace(key, Entry{}).first;
    it->second.order = order_.insert(order_.end(), key);
  } else {
    order_.splice(order_.end(), order_, it->second.order);
  }
  it->second.last = now;
  return it->second;
}

void LoginGuard::RecentTable::erase(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  order_.erase(it->second.order);
  entries_.erase(it);
}

// --- Failed-login throttle -----------------------------------------------------------------------

unsigned LoginGuard::thresholdOf(Subject subject) const {
  return subject == Subject::Ip ? limits_.throttleAfter : limits_.userThrottleAfter;
}

LoginGuard::RecentTable* LoginGuard::failureTable(Subject subject) {
  if (thresholdOf(subject) == 0) return nullptr;
  return subject == Subject::Ip ? &ips_ : &users_;
}

LoginGuard::Throttle LoginGuard::throttleLocked(Subject subject, const std::string& key,
                                                TimePoint now) {
  Throttle result;
  result.subject = subject;
  RecentTable* table = failureTable(subject);
  if (table == nullptr || key.empty()) return result;
  const RecentTable::Entry* entry = table->find(key, now);
  if (entry == nullptr) return result;
  result.failures = entry->count;
  const unsigned after = thresholdOf(subject);
  if (result.failures < after) return result;
  // Doubling per failure beyond the threshold, in closed form: no loop under the lock. The base
  // is at most a minute (auth_failure_delay), so 2^20 times it cannot overflow.
  unsigned extra = std::min(result.failures - after, 20u);
  result.delay = std::min(limits_.baseDelay * (std::int64_t{1} << extra), limits_.maxDelay);
  return result;
}

LoginGuard::Throttle LoginGuard::throttle(Subject subject, std::string_view key, TimePoint now) {
  std::string normalised = subject == Subject::User ? userKey(key) : std::string(key);
  std::lock_guard lock(mutex_);
  return throttleLocked(subject, normalised, now);
}

LoginGuard::Throttle LoginGuard::throttle(const std::string& ip, std::string_view user,
                                          TimePoint now) {
  std::string key = userKey(user);
  std::lock_guard lock(mutex_);
  Throttle byIp = throttleLocked(Subject::Ip, ip, now);
  Throttle byUser = throttleLocked(Subject::User, key, now);
  return byUser.delay > byIp.delay ? byUser : byIp;
}

unsigned LoginGuard::recordFailureLocked(Subject subject, const std::string& key, TimePoint now) {
  RecentTable* table = failureTable(subject);
  if (table == nullptr || key.empty()) return 0;
  RecentTable::Entry& entry = table->touch(key, now);
  // Saturates: a count this high already means the longest delay.
  if (entry.count < 1'000'000) ++entry.count;
  return entry.count;
}

LoginGuard::Failures LoginGuard::recordFailure(const std::string& ip, std::string_view user,
                                               TimePoint now) {
  std::string key = userKey(user);
  std::lock_guard lock(mutex_);
  Failures failures;
  failures.ip = recordFailureLocked(Subject::Ip, ip, now);
  failures.user = recordFailureLocked(Subject::User, key, now);
  return failures;
}

void LoginGuard::recordSuccess(const std::string& ip, std::string_view user) {
  std::string key = userKey(user);
  std::lock_guard lock(mutex_);
  ips_.erase(ip);
  users_.erase(key);
}

void LoginGuard::mergeShared(Subject subject, std::string_view key, unsigned count, TimePoint now) {
  if (count == 0) return;
  std::string normalised = subject == Subject::User ? userKey(key) : std::string(key);
  if (normalised.empty()) return;
  std::lock_guard lock(mutex_);
  RecentTable* table = failureTable(subject);
  if (table == nullptr) return;
  RecentTable::Entry& entry = table->touch(normalised, now);
  entry.count = std::max(entry.count, count);
}

std::chrono::milliseconds LoginGuard::forgetAfter() const {
  std::lock_guard lock(mutex_);
  return limits_.forgetAfter;
}

std::size_t LoginGuard::tracked(Subject subject) const {
  std::lock_guard lock(mutex_);
  return subject == Subject::Ip ? ips_.size() : users_.size();
}

// --- LOGIN-DELAY ---------------------------------------------------------------------------------

std::chrono::milliseconds LoginGuard::loginDelayRemaining(std::string_view user, TimePoint now) {
  std::string key = userKey(user);
  std::lock_guard lock(mutex_);  // before limits_, which a reload may change
  if (limits_.loginDelay.count() <= 0) return std::chrono::milliseconds(0);
  const RecentTable::Entry* entry = logins_.find(key, now);
  if (entry == nullptr) return std::chrono::milliseconds(0);
  // find() forgot it if the interval is over, so this is positive.
  return std::chrono::ceil<std::chrono::milliseconds>(entry->last + limits_.loginDelay - now);
}

void LoginGuard::recordLogin(std::string_view user, TimePoint now) {
  std::string key = userKey(user);
  if (key.empty()) return;
  std::lock_guard lock(mutex_);
  if (limits_.loginDelay.count() <= 0) return;
  logins_.touch(key, now);
}

std::size_t LoginGuard::trackedLogins() const {
  std::lock_guard lock(mutex_);
  return logins_.size();
}

// --- Password-check slots ------------------------------------------------------------------------

void LoginGuard::attach(unsigned owner, std::function<void()> wake) {
  std::lock_guard lock(mutex_);
  owners_[owner].wake = std::move(wake);
}

void LoginGuard::detach(unsigned owner) {
  std::lock_guard lock(mutex_);
  auto found = owners_.find(owner);
  if (found == owners_.end()) return;
  std::size_t granted = found->second.grants.size();
  owners_.erase(found);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->owner == owner) {
      queued_.erase(it->ticket);
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  for (; granted > 0; --granted) {
    --running_;
    grantNextLocked();
  }
}

LoginGuard::Admission LoginGuard::requestCheck(unsigned owner, Ticket ticket) {
  std::lock_guard lock(mutex_);
  if (running_ < limits_.maxChecks) {
    ++running_;
    return Admission::Run;
  }
  if (queue_.size() >= limits_.queueLength || !owners_.contains(owner)) return Admission::Refused;
  queued_[ticket] = queue_.insert(queue_.end(), Waiting{owner, ticket});
  return Admission::Queued;
}

bool LoginGuard::cancelCheck(Ticket ticket) {
  std::lock_guard lock(mutex_);
  auto it = queued_.find(ticket);
  if (it == queued_.end()) return false;
  queue_.erase(it->second);
  queued_.erase(it);
  return true;
}

void LoginGuard::releaseCheck() {
  std::lock_guard lock(mutex_);
  if (running_ > 0) --running_;
  grantNextLocked();
}

void LoginGuard::setLimits(Limits limits) {
  std::lock_guard lock(mutex_);
  limits_ = limits;
  logins_.setForgetAfter(limits.loginDelay);  // the other tables keep their fixed window
  while (!queue_.empty() && running_ < limits_.maxChecks) grantNextLocked();
}

void LoginGuard::grantNextLocked() {
  if (queue_.empty() || running_ >= limits_.maxChecks) return;
  Waiting next = queue_.front();
  queue_.pop_front();
  queued_.erase(next.ticket);
  // Queued tickets always have an attached owner: detach drops its own.
  Owner& owner = owners_[next.owner];
  ++running_;
  owner.grants.push_back(next.ticket);
  if (owner.wake) owner.wake();
}

std::vector<LoginGuard::Ticket> LoginGuard::takeGrants(unsigned owner) {
  std::lock_guard lock(mutex_);
  auto it = owners_.find(owner);
  if (it == owners_.end()) return {};
  return std::exchange(it->second.grants, {});
}

unsigned LoginGuard::runningChecks() const {
  std::lock_guard lock(mutex_);
  return running_;
}

std::size_t LoginGuard::queuedChecks() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

// --- LoginGate -----------------------------------------------------------------------------------

LoginGate::LoginGate(uv_loop_t* loop, LoginGuard& guard, unsigned owner)
    : guard_(guard), owner_(owner), async_(UvHandle<uv_async_t>::allocate()) {
  uv_async_init(loop, async_.get(), [](uv_async_t* handle) noexcept {
    if (auto* self = static_cast<LoginGate*>(handle->data)) self->onWake();
  });
  async_->data = this;
  uv_async_t* handle = async_.get();
  guard_.attach(owner_, [handle] { uv_async_send(handle); });
}

LoginGate::~LoginGate() {
  close();
}

void LoginGate::close() {
  // Detach first: after it returns, no other thread can signal the handle being closed.
  guard_.detach(owner_);
  waiting_.clear();
  async_.reset();
}

LoginGuard::Admission LoginGate::requestCheck(LoginGuard::Ticket ticket,
                                              std::function<void()> start) {
  if (!async_) return LoginGuard::Admission::Refused;
  LoginGuard::Admission admission = guard_.requestCheck(owner_, ticket);
  if (admission == LoginGuard::Admission::Queued) waiting_[ticket] = std::move(start);
  return admission;
}

bool LoginGate::cancel(LoginGuard::Ticket ticket) {
  if (waiting_.erase(ticket) == 0) return false;
  // When it was granted meanwhile, onWake finds no taker and passes the slot on.
  guard_.cancelCheck(ticket);
  return true;
}

void LoginGate::finished() {
  guard_.releaseCheck();
}

void LoginGate::onWake() {
  for (LoginGuard::Ticket ticket : guard_.takeGrants(owner_)) {
    auto it = waiting_.find(ticket);
    if (it == waiting_.end()) {
      guard_.releaseCheck();
      continue;
    }
    auto start = std::move(it->second);
    waiting_.erase(it);
    start();
  }
}

}  // namespace popbridge::proxy
