#pragma once

// The process-wide snapshot cache (protocol/bridge/snapshot_cache.h): a device's polls may land
// on any worker, so all workers share one store. Snapshots are immutable and handed out as
// shared_ptr<const>, so the mutex guards only the map and the LRU order: finding an entry copies
// a pointer, publishing swaps one, and a snapshot that leaves the cache is freed outside the lock
// by whoever drops its last reference.

#include <atomic>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "protocol/bridge/snapshot_cache.h"

namespace popbridge::proxy {

class SharedSnapshotCache final : public protocol::SnapshotStore {
 public:
  // maxMessages: messages over all entries; least recently used entries go first.
  explicit SharedSnapshotCache(std::size_t maxMessages) : maxMessages_(maxMessages) {}
  SharedSnapshotCache(const SharedSnapshotCache&) = delete;
  SharedSnapshotCache& operator=(const SharedSnapshotCache&) = delete;

  // SnapshotStore; any thread.
  protocol::SnapshotPtr find(const std::string& key) override;
  void publish(const std::string& key, protocol::SnapshotPtr snapshot) override;
  void erase(const std::string& key) override;
  std::size_t maxMessages() const override { return maxMessages_; }

  // For tests and diagnostics; any thread.
  std::size_t entries() const;
  std::size_t messages() const;

 private:
  struct Entry {
    protocol::SnapshotPtr snapshot;
    std::list<std::string>::iterator lru;  // into lru_
  };
  // Under mutex_; returns the dropped snapshot so that it is freed after the lock is released.
  protocol::SnapshotPtr eraseLocked(std::unordered_map<std::string, Entry>::iterator it);

  const std::size_t maxMessages_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> lru_;  // most recently used first
  std::size_t messages_ = 0;    // over all entries
};

}  // namespace popbridge::proxy
