#include "proxy/login_guard.h"

#include <algorithm>
#include <utility>

namespace popbridge::proxy {

LoginGuard::Limits LoginGuard::limitsFrom(const config::ServerConfig& server) {
  Limits limits;
  limits.maxChecks = server.maxPasswordChecks;
  limits.queueLength = server.passwordCheckQueue;
  limits.throttleAfter = server.loginThrottleAfter;
  limits.baseDelay = std::chrono::duration_cast<std::chrono::milliseconds>(server.authFailureDelay);
  limits.maxDelay =
      std::chrono::duration_cast<std::chrono::milliseconds>(server.loginThrottleMaxDelay);
  return limits;
}

// --- Per-IP throttle -----------------------------------------------------------------------------

void LoginGuard::forgetExpired(TimePoint now) {
  while (!ipOrder_.empty()) {
    auto it = ips_.find(ipOrder_.front());
    if (now - it->second.lastFailure < limits_.forgetAfter) return;
    ips_.erase(it);
    ipOrder_.pop_front();
  }
}

LoginGuard::Throttle LoginGuard::throttle(const std::string& ip, TimePoint now) {
  Throttle result;
  std::lock_guard lock(mutex_);  // before limits_, which a reload may change
  if (limits_.throttleAfter == 0) return result;
  forgetExpired(now);
  auto it = ips_.find(ip);
  if (it == ips_.end()) return result;
  result.failures = it->second.failures;
  if (result.failures < limits_.throttleAfter) return result;
  // Doubling per failure beyond the threshold, in closed form: no loop under the lock. The base
  // is at most a minute (auth_failure_delay), so 2^20 times it cannot overflow.
  unsigned extra = std::min(result.failures - limits_.throttleAfter, 20u);
  result.delay = std::min(limits_.baseDelay * (std::int64_t{1} << extra), limits_.maxDelay);
  return result;
}

unsigned LoginGuard::recordFailure(const std::string& ip, TimePoint now) {
  std::lock_guard lock(mutex_);
  if (limits_.throttleAfter == 0) return 0;
  forgetExpired(now);
  auto it = ips_.find(ip);
  if (it == ips_.end()) {
    if (ips_.size() >= limits_.maxTrackedIps && !ipOrder_.empty()) {
      ips_.erase(ipOrder_.front());
      ipOrder_.pop_front();
    }
    it = ips_.emplace(ip, IpEntry{}).first;
    it->second.order = ipOrder_.insert(ipOrder_.end(), ip);
  } else {
    ipOrder_.splice(ipOrder_.end(), ipOrder_, it->second.order);
  }
  IpEntry& entry = it->second;
  // Saturates: a count this high already means the longest delay.
  if (entry.failures < 1'000'000) ++entry.failures;
  entry.lastFailure = now;
  return entry.failures;
}

void LoginGuard::recordSuccess(const std::string& ip) {
  std::lock_guard lock(mutex_);
  auto it = ips_.find(ip);
  if (it == ips_.end()) return;
  ipOrder_.erase(it->second.order);
  ips_.erase(it);
}

std::size_t LoginGuard::trackedIps() const {
  std::lock_guard lock(mutex_);
  return ips_.size();
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
