#include "proxy/session_registry.h"

#include <utility>

#include "protocol/text.h"

namespace popbridge::proxy {

std::string SessionRegistry::accountKey(std::string_view account) {
  return protocol::toLowerAscii(account);
}

std::string SessionRegistry::folderKey(std::string_view folder) {
  if (protocol::equalsIgnoreCase(folder, "INBOX")) return "INBOX";
  return std::string(folder);
}

std::string_view toString(SessionRegistry::Verdict verdict) {
  switch (verdict) {
    case SessionRegistry::Verdict::Granted:
      return "granted";
    case SessionRegistry::Verdict::MaildropInUse:
      return "maildrop in use";
    case SessionRegistry::Verdict::AccountFull:
      return "account at max_sessions_per_account";
  }
  return "?";
}

SessionRegistry::Verdict LocalSessionRegistry::tryClaim(const Maildrop& maildrop, Holder holder) {
  std::string account = accountKey(maildrop.account);
  std::string folder = folderKey(maildrop.folder);
  std::lock_guard lock(mutex_);
  auto found = accounts_.find(account);
  if (found != accounts_.end()) {
    const Account& entry = found->second;
    if (maxPerAccount_ != 0 && entry.sessions >= maxPerAccount_) return Verdict::AccountFull;
    auto held = entry.folders.find(folder);
    if (held != entry.folders.end() && !held->second.holders.empty() &&
        (maildrop.exclusive || held->second.exclusiveHolders > 0)) {
      return Verdict::MaildropInUse;
    }
  }
  Account& entry = accounts_[account];
  Folder& slot = entry.folders[folder];
  if (!slot.holders.emplace(holder, maildrop.exclusive).second) return Verdict::Granted;
  ++entry.sessions;
  if (maildrop.exclusive) ++slot.exclusiveHolders;
  return Verdict::Granted;
}

void LocalSessionRegistry::release(const Maildrop& maildrop, Holder holder) {
  std::string account = accountKey(maildrop.account);
  std::string folder = folderKey(maildrop.folder);
  std::lock_guard lock(mutex_);
  auto found = accounts_.find(account);
  if (found == accounts_.end()) return;
  Account& entry = found->second;
  auto held = entry.folders.find(folder);
  if (held == entry.folders.end()) return;
  auto it = held->second.holders.find(holder);
  if (it == held->second.holders.end()) return;
  if (it->second) --held->second.exclusiveHolders;
  held->second.holders.erase(it);
  --entry.sessions;
  if (held->second.holders.empty()) entry.folders.erase(held);
  if (entry.folders.empty()) accounts_.erase(found);
}

void LocalSessionRegistry::setMaxPerAccount(unsigned maxPerAccount) {
  std::lock_guard lock(mutex_);
  maxPerAccount_ = maxPerAccount;
}

unsigned LocalSessionRegistry::sessionsOf(std::string_view account) const {
  std::lock_guard lock(mutex_);
  auto found = accounts_.find(accountKey(account));
  return found == accounts_.end() ? 0 : found->second.sessions;
}

std::size_t LocalSessionRegistry::accounts() const {
  std::lock_guard lock(mutex_);
  return accounts_.size();
}

SessionClaim& SessionClaim::operator=(SessionClaim&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = std::exchange(other.registry_, nullptr);
    maildrop_ = std::move(other.maildrop_);
    holder_ = other.holder_;
  }
  return *this;
}

void SessionClaim::reset() noexcept {
  if (registry_ == nullptr) return;
  SessionRegistry* registry = std::exchange(registry_, nullptr);
  try {
    registry->release(maildrop_, holder_);
  } catch (...) {
    // release() only erases; nothing it could throw may escape a destructor.
  }
}

}  // namespace popbridge::proxy
