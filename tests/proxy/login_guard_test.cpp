// LoginGuard: the per-IP throttle and the process-wide password-check slots, driven with an
// injected clock (no loop, no threads except where the cross-thread hand-over is the point).

#include "proxy/login_guard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;
using Admission = LoginGuard::Admission;
using TimePoint = LoginGuard::TimePoint;

using Subject = LoginGuard::Subject;

LoginGuard::Limits throttleLimits(unsigned after) {
  LoginGuard::Limits limits;
  limits.throttleAfter = after;
  limits.userThrottleAfter = after;
  limits.baseDelay = 2s;
  limits.maxDelay = 30s;
  limits.forgetAfter = 10min;
  return limits;
}

// --- Throttle, per IP and per user: one mechanism, so every case runs for both keys ----------

class LoginGuardThrottle : public ::testing::TestWithParam<Subject> {
 protected:
  Subject subject() const { return GetParam(); }
  // One failure of `key` as this test's subject, the other key left empty (not counted).
  unsigned fail(LoginGuard& guard, const std::string& key, TimePoint now) const {
    LoginGuard::Failures failures = subject() == Subject::Ip ? guard.recordFailure(key, "", now)
                                                             : guard.recordFailure("", key, now);
    return subject() == Subject::Ip ? failures.ip : failures.user;
  }
  void succeed(LoginGuard& guard, const std::string& key) const {
    if (subject() == Subject::Ip) {
      guard.recordSuccess(key, "");
    } else {
      guard.recordSuccess("", key);
    }
  }
  LoginGuard::Throttle throttle(LoginGuard& guard, const std::string& key, TimePoint now) const {
    return guard.throttle(subject(), key, now);
  }
  std::size_t tracked(const LoginGuard& guard) const { return guard.tracked(subject()); }
  // Keys that look like the subject's, for reading failures.
  std::string key(int i) const {
    return subject() == Subject::Ip ? "192.0.2." + std::to_string(i) : "user" + std::to_string(i);
  }
};

INSTANTIATE_TEST_SUITE_P(BothKeys, LoginGuardThrottle,
                         ::testing::Values(Subject::Ip, Subject::User), [](const auto& info) {
                           return std::string(info.param == Subject::Ip ? "Ip" : "User");
                         });

struct DelayCase {
  unsigned after;
  unsigned failures;
  std::chrono::milliseconds expected;
};

TEST_P(LoginGuardThrottle, DelayDoublesPerFailureBeyondTheThresholdUpToTheCap) {
  const DelayCase cases[] = {
      {3, 0, 0ms},    {3, 1, 0ms},     {3, 2, 0ms},     {3, 3, 2000ms},  {3, 4, 4000ms},
      {3, 5, 8000ms}, {3, 6, 16000ms}, {3, 7, 30000ms}, {3, 8, 30000ms}, {3, 100, 30000ms},
      {1, 1, 2000ms}, {1, 2, 4000ms},  {0, 10, 0ms},  // 0 = off
  };
  for (const DelayCase& c : cases) {
    LoginGuard guard(throttleLimits(c.after));
    TimePoint now{};
    for (unsigned i = 0; i < c.failures; ++i) fail(guard, key(1), now);
    LoginGuard::Throttle got = throttle(guard, key(1), now);
    EXPECT_EQ(got.delay, c.expected) << "after=" << c.after << " failures=" << c.failures;
    EXPECT_EQ(got.failures, c.after == 0 ? 0 : c.failures);
    EXPECT_EQ(got.subject, subject());
  }
}

TEST_P(LoginGuardThrottle, ZeroBaseDelayMeansNoWait) {
  auto limits = throttleLimits(1);
  limits.baseDelay = 0ms;
  LoginGuard guard(limits);
  fail(guard, key(1), TimePoint{});
  fail(guard, key(1), TimePoint{});
  EXPECT_EQ(throttle(guard, key(1), TimePoint{}).delay, 0ms);
}

TEST_P(LoginGuardThrottle, CountsArePerKey) {
  LoginGuard guard(throttleLimits(2));
  TimePoint now{};
  fail(guard, key(1), now);
  fail(guard, key(1), now);
  EXPECT_EQ(throttle(guard, key(1), now).delay, 2s);
  EXPECT_EQ(throttle(guard, key(2), now).delay, 0ms);
  EXPECT_EQ(throttle(guard, "2001:db8::1", now).failures, 0u);
}

TEST_P(LoginGuardThrottle, ForgottenTenMinutesAfterTheLastFailure) {
  LoginGuard guard(throttleLimits(2));
  TimePoint start{};
  fail(guard, key(1), start);
  fail(guard, key(1), start + 9min);  // the window restarts at each failure
  EXPECT_EQ(throttle(guard, key(1), start + 18min).delay, 2s);
  EXPECT_EQ(throttle(guard, key(1), start + 19min).delay, 0ms);
  EXPECT_EQ(tracked(guard), 0u);
  // A new failure starts from one again.
  EXPECT_EQ(fail(guard, key(1), start + 20min), 1u);
}

TEST_P(LoginGuardThrottle, SuccessForgivesOnlyItsOwnKey) {
  LoginGuard guard(throttleLimits(1));
  TimePoint now{};
  fail(guard, key(1), now);
  fail(guard, key(2), now);
  succeed(guard, key(1));
  EXPECT_EQ(throttle(guard, key(1), now).delay, 0ms);
  EXPECT_EQ(throttle(guard, key(2), now).delay, 2s);
  // The count starts afresh: one failure after a success is one, not three.
  EXPECT_EQ(fail(guard, key(1), now), 1u);
}

TEST_P(LoginGuardThrottle, TableIsBoundedAndEvictsTheOldestFailure) {
  auto limits = throttleLimits(1);
  limits.maxTrackedIps = 3;
  limits.maxTrackedUsers = 3;
  LoginGuard guard(limits);
  TimePoint now{};
  fail(guard, key(1), now);
  fail(guard, key(2), now + 1s);
  fail(guard, key(3), now + 2s);
  fail(guard, key(1), now + 3s);  // refreshed: no longer the oldest
  for (int i = 0; i < 1000; ++i) {
    fail(guard, "x" + std::to_string(i), now + 4s);
    EXPECT_LE(tracked(guard), 3u);
  }
  fail(guard, key(1), now + 5s);
  EXPECT_EQ(tracked(guard), 3u);
  EXPECT_EQ(throttle(guard, key(2), now + 5s).failures, 0u) << "evicted";
  EXPECT_EQ(throttle(guard, key(1), now + 5s).failures, 1u)
      << "evicted once by the 1000 newer ones, then counted afresh";
}

// [state] redis: other replicas' counts, merged into this process's view.
TEST_P(LoginGuardThrottle, SharedCountsRaiseTheLocalOneAndNeverLowerIt) {
  LoginGuard guard(throttleLimits(3));
  const TimePoint now{};
  guard.mergeShared(subject(), key(1), 0, now);
  EXPECT_EQ(tracked(guard), 0u) << "a zero count adds nothing";
  guard.mergeShared(subject(), key(1), 4, now);
  EXPECT_EQ(throttle(guard, key(1), now).failures, 4u);
  EXPECT_EQ(throttle(guard, key(1), now).delay, 4s);
  guard.mergeShared(subject(), key(1), 2, now);
  EXPECT_EQ(throttle(guard, key(1), now).failures, 4u) << "a stale lower count changes nothing";
  EXPECT_EQ(fail(guard, key(1), now), 5u) << "local failures count on from the merged one";
  EXPECT_EQ(throttle(guard, key(1), now + 10min).failures, 0u) << "and expire like them";
}

TEST(LoginGuardUserThrottle, SharedCountsOfAnOffThrottleAreIgnored) {
  LoginGuard guard(throttleLimits(0));
  guard.mergeShared(Subject::Ip, "192.0.2.1", 9, TimePoint{});
  guard.mergeShared(Subject::User, "alice", 9, TimePoint{});
  EXPECT_EQ(guard.tracked(Subject::Ip), 0u);
  EXPECT_EQ(guard.tracked(Subject::User), 0u);
}

TEST(LoginGuardUserThrottle, NamesAreComparedWithoutAsciiCaseAndBounded) {
  LoginGuard guard(throttleLimits(2));
  TimePoint now{};
  guard.recordFailure("192.0.2.1", "Alice@Example.COM", now);
  guard.recordFailure("192.0.2.2", "alice@example.com", now);
  EXPECT_EQ(guard.throttle(Subject::User, "ALICE@example.com", now).delay, 2s);
  EXPECT_EQ(LoginGuard::userKey("Ünïcode-ABC"), "Ünïcode-abc") << "only ASCII is folded";
  const std::string longName(100'000, 'a');
  EXPECT_EQ(LoginGuard::userKey(longName).size(), LoginGuard::kMaxUserKey);
}

TEST(LoginGuardUserThrottle, ALoginWaitsForTheLongerOfItsIpAndItsUser) {
  auto limits = throttleLimits(0);
  limits.throttleAfter = 3;
  limits.userThrottleAfter = 2;
  LoginGuard guard(limits);
  TimePoint now{};
  // Failures for one user from three IPs: no IP reaches its threshold, the user does.
  guard.recordFailure("192.0.2.1", "alice", now);
  guard.recordFailure("192.0.2.2", "alice", now);
  LoginGuard::Failures failures = guard.recordFailure("192.0.2.3", "alice", now);
  EXPECT_EQ(failures.ip, 1u);
  EXPECT_EQ(failures.user, 3u);
  LoginGuard::Throttle alice = guard.throttle("192.0.2.9", "alice", now);
  EXPECT_EQ(alice.subject, Subject::User);
  EXPECT_EQ(alice.delay, 4s);
  // Another user from one of those IPs is not slowed.
  EXPECT_EQ(guard.throttle("192.0.2.1", "bob", now).delay, 0ms);
  // An IP past its own threshold slows every user from it, by the IP's delay when longer.
  for (int i = 0; i < 4; ++i) guard.recordFailure("198.51.100.7", "user" + std::to_string(i), now);
  LoginGuard::Throttle fromIp = guard.throttle("198.51.100.7", "bob", now);
  EXPECT_EQ(fromIp.subject, Subject::Ip);
  EXPECT_EQ(fromIp.delay, 4s);
  // The user's success clears the user's count, not the IPs'.
  guard.recordSuccess("192.0.2.9", "alice");
  EXPECT_EQ(guard.throttle("192.0.2.9", "alice", now).delay, 0ms);
  EXPECT_EQ(guard.throttle("198.51.100.7", "alice", now).delay, 4s);
}

TEST(LoginGuardUserThrottle, OffByDefaultInLimitsAndWithZero) {
  LoginGuard::Limits limits;  // userThrottleAfter = 0
  LoginGuard guard(limits);
  for (int i = 0; i < 50; ++i) guard.recordFailure("", "alice", TimePoint{});
  EXPECT_EQ(guard.tracked(Subject::User), 0u);
  EXPECT_EQ(guard.throttle("192.0.2.1", "alice", TimePoint{}).delay, 0ms);
}

// --- LOGIN-DELAY -----------------------------------------------------------------------------

TEST(LoginGuardLoginDelay, ASecondLoginWithinTheIntervalWaitsForItsRest) {
  LoginGuard::Limits limits;
  limits.loginDelay = 60s;
  LoginGuard guard(limits);
  TimePoint start{};
  EXPECT_EQ(guard.loginDelayRemaining("alice", start), 0ms) << "never logged in";
  guard.recordLogin("alice", start);
  EXPECT_EQ(guard.loginDelayRemaining("alice", start + 10s), 50s);
  EXPECT_EQ(guard.loginDelayRemaining("ALICE", start + 59s), 1s) << "the same user";
  EXPECT_EQ(guard.loginDelayRemaining("bob", start + 10s), 0ms) << "per user";
  EXPECT_EQ(guard.loginDelayRemaining("alice", start + 60s), 0ms);
  EXPECT_EQ(guard.trackedLogins(), 0u) << "forgotten once the interval is over";
  // A new login starts a new interval.
  guard.recordLogin("alice", start + 61s);
  EXPECT_EQ(guard.loginDelayRemaining("alice", start + 62s), 59s);
}

TEST(LoginGuardLoginDelay, OffRecordsNothing) {
  LoginGuard guard(LoginGuard::Limits{});
  guard.recordLogin("alice", TimePoint{});
  EXPECT_EQ(guard.trackedLogins(), 0u);
  EXPECT_EQ(guard.loginDelayRemaining("alice", TimePoint{}), 0ms);
}

TEST(LoginGuardLoginDelay, TableIsBoundedByMaxTrackedUsers) {
  LoginGuard::Limits limits;
  limits.loginDelay = 1h;
  limits.maxTrackedUsers = 4;
  LoginGuard guard(limits);
  TimePoint now{};
  for (int i = 0; i < 100; ++i) {
    guard.recordLogin("user" + std::to_string(i), now + std::chrono::seconds(i));
    EXPECT_LE(guard.trackedLogins(), 4u);
  }
  EXPECT_EQ(guard.loginDelayRemaining("user0", now + 100s), 0ms) << "evicted, oldest first";
  EXPECT_GT(guard.loginDelayRemaining("user99", now + 100s), 0ms);
}

// --- Check slots -----------------------------------------------------------------------------

LoginGuard::Limits slotLimits(unsigned maxChecks, unsigned queue) {
  LoginGuard::Limits limits;
  limits.maxChecks = maxChecks;
  limits.queueLength = queue;
  return limits;
}

TEST(LoginGuardSlots, RunThenQueueThenRefuse) {
  LoginGuard guard(slotLimits(2, 3));
  guard.attach(0, [] {});
  std::vector<Admission> got;
  for (LoginGuard::Ticket t = 1; t <= 7; ++t) got.push_back(guard.requestCheck(0, t));
  const std::vector<Admission> expected = {Admission::Run,    Admission::Run,    Admission::Queued,
                                           Admission::Queued, Admission::Queued, Admission::Refused,
                                           Admission::Refused};
  EXPECT_EQ(got, expected);
  EXPECT_EQ(guard.runningChecks(), 2u);
  EXPECT_EQ(guard.queuedChecks(), 3u);
}

TEST(LoginGuardSlots, ZeroQueueRefusesAtOnce) {
  LoginGuard guard(slotLimits(1, 0));
  guard.attach(0, [] {});
  EXPECT_EQ(guard.requestCheck(0, 1), Admission::Run);
  EXPECT_EQ(guard.requestCheck(0, 2), Admission::Refused);
}

TEST(LoginGuardSlots, AFinishedCheckGrantsTheOldestWaiterAndWakesItsOwner) {
  LoginGuard guard(slotLimits(1, 10));
  int wakes0 = 0, wakes1 = 0;
  guard.attach(0, [&] { ++wakes0; });
  guard.attach(1, [&] { ++wakes1; });
  EXPECT_EQ(guard.requestCheck(0, 1), Admission::Run);
  EXPECT_EQ(guard.requestCheck(1, 2), Admission::Queued);
  EXPECT_EQ(guard.requestCheck(0, 3), Admission::Queued);
  guard.releaseCheck();  // ticket 1 ends on loop 0: ticket 2 belongs to loop 1
  EXPECT_EQ(wakes0, 0);
  EXPECT_EQ(wakes1, 1);
  EXPECT_EQ(guard.takeGrants(0), std::vector<LoginGuard::Ticket>{});
  EXPECT_EQ(guard.takeGrants(1), std::vector<LoginGuard::Ticket>{2});
  EXPECT_EQ(guard.runningChecks(), 1u) << "the grant holds the slot";
  guard.releaseCheck();
  EXPECT_EQ(wakes0, 1);
  EXPECT_EQ(guard.takeGrants(0), std::vector<LoginGuard::Ticket>{3});
  guard.releaseCheck();
  EXPECT_EQ(guard.runningChecks(), 0u);
}

TEST(LoginGuardSlots, ACancelledWaiterIsNeverGranted) {
  LoginGuard guard(slotLimits(1, 10));
  guard.attach(0, [] {});
  EXPECT_EQ(guard.requestCheck(0, 1), Admission::Run);
  EXPECT_EQ(guard.requestCheck(0, 2), Admission::Queued);
  EXPECT_EQ(guard.requestCheck(0, 3), Admission::Queued);
  EXPECT_TRUE(guard.cancelCheck(2));
  EXPECT_FALSE(guard.cancelCheck(2));
  guard.releaseCheck();
  EXPECT_EQ(guard.takeGrants(0), std::vector<LoginGuard::Ticket>{3});
  // A grant whose client left meanwhile: its owner hands the slot back.
  EXPECT_EQ(guard.requestCheck(0, 4), Admission::Queued);
  guard.releaseCheck();
  EXPECT_FALSE(guard.cancelCheck(4)) << "already granted";
  EXPECT_EQ(guard.takeGrants(0), std::vector<LoginGuard::Ticket>{4});
  guard.releaseCheck();
  EXPECT_EQ(guard.runningChecks(), 0u);
  EXPECT_EQ(guard.requestCheck(0, 5), Admission::Run);
}

TEST(LoginGuardSlots, DetachDropsTheOwnersWaitersAndPassesItsGrantsOn) {
  LoginGuard guard(slotLimits(1, 10));
  int wakes1 = 0;
  guard.attach(0, [] {});
  guard.attach(1, [&] { ++wakes1; });
  EXPECT_EQ(guard.requestCheck(0, 1), Admission::Run);
  EXPECT_EQ(guard.requestCheck(0, 2), Admission::Queued);
  EXPECT_EQ(guard.requestCheck(1, 3), Admission::Queued);
  guard.releaseCheck();  // granted to ticket 2 of loop 0
  guard.detach(0);       // loop 0 goes away before taking it
  EXPECT_EQ(wakes1, 1);
  EXPECT_EQ(guard.takeGrants(1), std::vector<LoginGuard::Ticket>{3});
  EXPECT_EQ(guard.runningChecks(), 1u);
  EXPECT_EQ(guard.queuedChecks(), 0u);
  EXPECT_EQ(guard.requestCheck(0, 4), Admission::Refused) << "a detached owner cannot queue";
}

// Many threads taking and handing back slots: the bound holds and no grant is lost.
TEST(LoginGuardSlots, BoundHoldsAcrossThreads) {
  constexpr unsigned kThreads = 4;
  constexpr unsigned kPerThread = 2000;
  LoginGuard guard(slotLimits(2, 1000000));
  std::atomic<unsigned> maxSeen{0};
  std::atomic<unsigned> done{0};
  for (unsigned owner = 0; owner < kThreads; ++owner) guard.attach(owner, [] {});
  std::vector<std::thread> threads;
  for (unsigned owner = 0; owner < kThreads; ++owner) {
    threads.emplace_back([&, owner] {
      unsigned granted = 0;
      for (unsigned i = 0; i < kPerThread; ++i) {
        LoginGuard::Ticket ticket = owner * kPerThread + i;
        if (guard.requestCheck(owner, ticket) == Admission::Run) ++granted;
        for (LoginGuard::Ticket t : guard.takeGrants(owner)) {
          (void)t;
          ++granted;
        }
        unsigned running = guard.runningChecks();
        unsigned seen = maxSeen.load();
        while (running > seen && !maxSeen.compare_exchange_weak(seen, running)) {
        }
        for (; granted > 0; --granted) {
          guard.releaseCheck();
          ++done;
        }
      }
      // Drain what is still granted to this owner.
      while (done.load() < kThreads * kPerThread) {
        for (LoginGuard::Ticket t : guard.takeGrants(owner)) {
          (void)t;
          guard.releaseCheck();
          ++done;
        }
        std::this_thread::yield();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(maxSeen.load(), 2u);
  EXPECT_EQ(done.load(), kThreads * kPerThread);
  EXPECT_EQ(guard.runningChecks(), 0u);
  EXPECT_EQ(guard.queuedChecks(), 0u);
}

// --- LoginGate: the hand-over between two loops ----------------------------------------------

// Two loops driven in turn from this thread; what matters is which loop runs a queued check.
class TwoLoops : public ::testing::Test {
 protected:
  void SetUp() override {
    uv_loop_init(&a_);
    uv_loop_init(&b_);
  }
  void TearDown() override {
    gateA_.reset();
    gateB_.reset();
    uv_run(&a_, UV_RUN_DEFAULT);
    uv_run(&b_, UV_RUN_DEFAULT);
    EXPECT_EQ(uv_loop_close(&a_), 0);
    EXPECT_EQ(uv_loop_close(&b_), 0);
  }
  void spin() {
    for (int i = 0; i < 5; ++i) {
      uv_run(&a_, UV_RUN_NOWAIT);
      uv_run(&b_, UV_RUN_NOWAIT);
    }
  }

  uv_loop_t a_{};
  uv_loop_t b_{};
  LoginGuard guard_{slotLimits(1, 4)};
  std::unique_ptr<LoginGate> gateA_ = nullptr;
  std::unique_ptr<LoginGate> gateB_ = nullptr;
};

TEST_F(TwoLoops, ACheckEndingOnOneLoopStartsTheWaiterOnItsOwnLoop) {
  gateA_ = std::make_unique<LoginGate>(&a_, guard_, 0);
  gateB_ = std::make_unique<LoginGate>(&b_, guard_, 1);
  EXPECT_EQ(gateA_->requestCheck(1, [] { ADD_FAILURE() << "Run is started by the caller"; }),
            Admission::Run);
  bool startedOnB = false;
  EXPECT_EQ(gateB_->requestCheck(2, [&] { startedOnB = true; }), Admission::Queued);
  spin();
  EXPECT_FALSE(startedOnB);
  gateA_->finished();
  uv_run(&a_, UV_RUN_NOWAIT);
  EXPECT_FALSE(startedOnB) << "never on loop A";
  uv_run(&b_, UV_RUN_NOWAIT);
  EXPECT_TRUE(startedOnB);
  gateB_->finished();
  EXPECT_EQ(guard_.runningChecks(), 0u);
}

TEST_F(TwoLoops, AWaiterCancelledAfterItsGrantPassesTheSlotOn) {
  gateA_ = std::make_unique<LoginGate>(&a_, guard_, 0);
  gateB_ = std::make_unique<LoginGate>(&b_, guard_, 1);
  EXPECT_EQ(gateA_->requestCheck(1, [] {}), Admission::Run);
  int started = 0;
  EXPECT_EQ(gateB_->requestCheck(2, [&] { ADD_FAILURE() << "its client is gone"; }),
            Admission::Queued);
  EXPECT_EQ(gateA_->requestCheck(3, [&] { ++started; }), Admission::Queued);
  gateA_->finished();  // granted to 2, whose loop has not run yet
  EXPECT_TRUE(gateB_->cancel(2));
  EXPECT_FALSE(gateB_->cancel(2));
  spin();
  EXPECT_EQ(started, 1);
  gateA_->finished();
  EXPECT_EQ(guard_.runningChecks(), 0u);
  EXPECT_EQ(guard_.queuedChecks(), 0u);
}

}  // namespace
}  // namespace popbridge::proxy
