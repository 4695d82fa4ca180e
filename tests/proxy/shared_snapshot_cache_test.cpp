// The process-wide snapshot cache: LRU eviction by total messages, and workers that find,
// publish and erase the same mailboxes at once (meaningful under ThreadSanitizer: the test_proxy
// TSan stage runs SharedSnapshotCache*).

#include "proxy/shared_snapshot_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace popbridge::proxy {
namespace {

using protocol::CachedMessage;
using protocol::MailboxSnapshot;
using protocol::SnapshotPtr;

// A snapshot whose contents prove it was never torn: every message carries the version.
SnapshotPtr make(std::uint32_t version, std::size_t count) {
  auto s = std::make_shared<MailboxSnapshot>();
  s->uidValidity = version;
  s->highestModSeq = version;
  for (std::size_t i = 0; i < count; ++i) {
    s->messages.push_back({version, static_cast<std::uint32_t>(i + 1), false});
  }
  return s;
}

TEST(SharedSnapshotCache, FindsWhatWasPublished) {
  SharedSnapshotCache cache(100);
  EXPECT_EQ(cache.find("a"), nullptr);
  cache.publish("a", make(1, 3));
  ASSERT_NE(cache.find("a"), nullptr);
  EXPECT_EQ(cache.find("a")->uidValidity, 1u);
  cache.publish("a", make(2, 5));
  EXPECT_EQ(cache.find("a")->uidValidity, 2u);
  EXPECT_EQ(cache.messages(), 5u);
  cache.erase("a");
  EXPECT_EQ(cache.find("a"), nullptr);
  EXPECT_EQ(cache.messages(), 0u);
  cache.erase("a");  // twice is fine
}

TEST(SharedSnapshotCache, EvictsTheLeastRecentlyUsed) {
  SharedSnapshotCache cache(10);
  cache.publish("a", make(1, 4));
  cache.publish("b", make(1, 4));
  ASSERT_NE(cache.find("a"), nullptr);  // a is now more recent than b
  cache.publish("c", make(1, 4));       // 12 > 10: b goes
  EXPECT_NE(cache.find("a"), nullptr);
  EXPECT_EQ(cache.find("b"), nullptr);
  EXPECT_NE(cache.find("c"), nullptr);
  EXPECT_EQ(cache.messages(), 8u);
  EXPECT_EQ(cache.entries(), 2u);
}

TEST(SharedSnapshotCache, AMailboxAboveTheBoundIsNotKeptAndDropsItsOldEntry) {
  SharedSnapshotCache cache(10);
  cache.publish("a", make(1, 4));
  cache.publish("a", make(2, 11));
  EXPECT_EQ(cache.find("a"), nullptr);
  EXPECT_EQ(cache.messages(), 0u);
  cache.publish("b", make(1, 10));  // exactly the bound fits
  EXPECT_NE(cache.find("b"), nullptr);
}

TEST(SharedSnapshotCache, ASnapshotHandedOutOutlivesItsEviction) {
  SharedSnapshotCache cache(4);
  cache.publish("a", make(7, 4));
  SnapshotPtr held = cache.find("a");
  cache.publish("b", make(1, 4));
  EXPECT_EQ(cache.find("a"), nullptr);
  ASSERT_EQ(held->messages.size(), 4u);
  EXPECT_EQ(held->messages.back().size, 7u);
}

TEST(SharedSnapshotCache, WorkersShareMailboxesSafely) {
  // Few keys and a bound below what all of them need, so finds, publishes, evictions and
  // erases of the same entries race all the time.
  SharedSnapshotCache cache(600);
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::atomic<int> torn{0};
  std::atomic<int> found{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        std::string key = "mailbox" + std::to_string((i + t) % 5);
        SnapshotPtr s = cache.find(key);
        if (s) {
          ++found;
          // Read all of it, as a session serving LIST would, while others replace it.
          for (const CachedMessage& m : s->messages) {
            if (m.size != s->uidValidity) ++torn;
          }
        }
        auto version = static_cast<std::uint32_t>(t * kRounds + i + 1);
        if (i % 7 == 0) {
          cache.erase(key);
        } else {
          cache.publish(key, make(version, 50 + (i % 150)));
        }
      }
    });
  }
  for (std::thread& w : workers) w.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(found.load(), 0);
  EXPECT_LE(cache.messages(), 600u);
  // The count kept under the lock matches what is really there.
  std::size_t total = 0;
  for (int k = 0; k < 5; ++k) {
    if (SnapshotPtr s = cache.find("mailbox" + std::to_string(k))) total += s->messages.size();
  }
  EXPECT_EQ(total, cache.messages());
}

}  // namespace
}  // namespace popbridge::proxy
