#include "proxy/shared_snapshot_cache.h"

#include <utility>
#include <vector>

namespace popbridge::proxy {

protocol::SnapshotPtr SharedSnapshotCache::find(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.snapshot;
}

protocol::SnapshotPtr SharedSnapshotCache::eraseLocked(
    std::unordered_map<std::string, Entry>::iterator it) {
  protocol::SnapshotPtr dropped = std::move(it->second.snapshot);
  messages_ -= dropped->messages.size();
  lru_.erase(it->second.lru);
  entries_.erase(it);
  return dropped;
}

void SharedSnapshotCache::publish(const std::string& key, protocol::SnapshotPtr snapshot) {
  // Freed after the lock is released: a 100k-message snapshot is not freed in a critical section.
  std::vector<protocol::SnapshotPtr> dropped;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end()) dropped.push_back(eraseLocked(it));
  if (snapshot == nullptr || snapshot->messages.size() > maxMessages_) return;
  messages_ += snapshot->messages.size();
  lru_.push_front(key);
  entries_.emplace(key, Entry{std::move(snapshot), lru_.begin()});
  while (messages_ > maxMessages_) {
    dropped.push_back(eraseLocked(entries_.find(lru_.back())));
  }
}

void SharedSnapshotCache::erase(const std::string& key) {
  protocol::SnapshotPtr dropped;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end()) dropped = eraseLocked(it);
}

std::size_t SharedSnapshotCache::entries() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::size_t SharedSnapshotCache::messages() const {
  std::lock_guard lock(mutex_);
  return messages_;
}

}  // namespace popbridge::proxy
