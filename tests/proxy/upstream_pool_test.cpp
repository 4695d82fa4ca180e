#include "proxy/upstream_pool.h"

#include <gtest/gtest.h>

#include "proxy/metrics.h"
#include "proxy/session_registry.h"
#include "stream_harness.h"

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;
using testing_support::Peer;
using testing_support::StreamHarness;

protocol::UpstreamCredentials credentials(std::string user, std::string password) {
  protocol::UpstreamCredentials c;
  c.user = std::move(user);
  c.password = std::move(password);
  return c;
}

TEST(UpstreamPoolKey, MatchesOnlyTheSameIdentitySecretAndGeneration) {
  const UpstreamPoolKey key = makeUpstreamPoolKey(1, credentials("alice", "secret"));
  EXPECT_TRUE(sameUpstreamPoolKey(key, makeUpstreamPoolKey(1, credentials("alice", "secret"))));
  // The login goes upstream as typed: another spelling is another connection.
  EXPECT_FALSE(sameUpstreamPoolKey(key, makeUpstreamPoolKey(1, credentials("Alice", "secret"))));
  EXPECT_FALSE(sameUpstreamPoolKey(key, makeUpstreamPoolKey(1, credentials("alice", "Secret"))));
  EXPECT_FALSE(sameUpstreamPoolKey(key, makeUpstreamPoolKey(1, credentials("alice", ""))));
  EXPECT_FALSE(sameUpstreamPoolKey(key, makeUpstreamPoolKey(1, credentials("bob", "secret"))));
  EXPECT_FALSE(sameUpstreamPoolKey(key, makeUpstreamPoolKey(2, credentials("alice", "secret"))));
  // A connection that named its device upstream (IMAP ID) serves only that device's address.
  UpstreamPoolKey fromA = makeUpstreamPoolKey(1, credentials("alice", "secret"));
  fromA.clientIp = "192.0.2.1";
  UpstreamPoolKey fromB = fromA;
  fromB.clientIp = "192.0.2.2";
  EXPECT_FALSE(sameUpstreamPoolKey(fromA, fromB));
  EXPECT_FALSE(sameUpstreamPoolKey(fromA, key));
  fromB.clientIp = "192.0.2.1";
  EXPECT_TRUE(sameUpstreamPoolKey(fromA, fromB));
  // The user is bound into the MAC: moving a character across the boundary changes it.
  EXPECT_NE(makeUpstreamPoolKey(1, credentials("ab", "c")).secretMac,
            makeUpstreamPoolKey(1, credentials("a", "bc")).secretMac);
}

TEST(UpstreamPoolKey, NeverHoldsThePassword) {
  const std::string password = "correct horse battery staple";
  const UpstreamPoolKey key = makeUpstreamPoolKey(1, credentials("alice", password));
  const std::string mac(key.secretMac.begin(), key.secretMac.end());
  EXPECT_EQ(mac.find("correct"), std::string::npos);
  EXPECT_EQ(key.account.find("correct"), std::string::npos);
}

TEST(UpstreamPoolKey, BearerIdentitiesKeyOnTheIdentityAlone) {
  protocol::UpstreamCredentials a = credentials("printer@example.com", "");
  a.bearer = protocol::BearerMechanism::XOAuth2;
  a.accessToken = "token-1";
  protocol::UpstreamCredentials b = a;
  b.accessToken = "token-2";
  EXPECT_TRUE(sameUpstreamPoolKey(makeUpstreamPoolKey(1, a), makeUpstreamPoolKey(1, b)));
  // A password login of the same name is another key.
  EXPECT_FALSE(sameUpstreamPoolKey(makeUpstreamPoolKey(1, a),
                                   makeUpstreamPoolKey(1, credentials("printer@example.com", ""))));
}

class UpstreamPoolTest : public StreamHarness {
 protected:
  // A connection as a session would park it: our end routed, the "server" end a Peer.
  struct Parked {
    UpstreamPool::Connection connection;
    std::unique_ptr<Peer> server = std::make_unique<Peer>();
  };
  Parked connection(std::uint64_t nextTag = 7) {
    Parked p;
    Pair pair = connectPair();
    p.connection.route = std::make_shared<UpstreamRoute>();
    p.connection.stream =
        std::make_unique<Stream>(&loop_, std::move(pair.client), Stream::Options{},
                                 UpstreamRoute::callbacks(p.connection.route));
    p.connection.stream->startReading();
    p.connection.state.tagPrefix = "T";
    p.connection.state.nextTag = nextTag;
    p.connection.loggedInAt = std::chrono::steady_clock::now();
    p.server->attach(&loop_, std::move(pair.server));
    p.server->stream->startReading();
    return p;
  }
  UpstreamPool::Limits limits(std::chrono::milliseconds idle = 60s) {
    UpstreamPool::Limits l;
    l.idle = idle;
    l.maxPerAccount = 2;
    l.maxTotal = 4;
    return l;
  }
  UpstreamPoolKey key(const std::string& user, const std::string& password = "pw") {
    return makeUpstreamPoolKey(1, credentials(user, password));
  }

  WorkerMetrics metrics_;
};

TEST_F(UpstreamPoolTest, TakesBackWhatWasParkedUnderTheSameKey) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked p = connection(42);
  ASSERT_TRUE(pool.park(key("alice"), p.connection, "", limits()));
  EXPECT_FALSE(p.connection.stream);
  EXPECT_EQ(pool.size(), 1u);
  EXPECT_FALSE(pool.take(key("alice", "wrong")));  // the keyed hash must match
  EXPECT_FALSE(pool.take(key("bob")));
  std::optional<UpstreamPool::Connection> taken = pool.take(key("alice"));
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->state.nextTag, 42u);
  EXPECT_TRUE(taken->stream);
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_FALSE(pool.take(key("alice")));  // taken once only
}

TEST_F(UpstreamPoolTest, MetricsCountHitsMissesDropsAndThePooledGauge) {
  Metrics registry({}, 1);
  UpstreamPool pool(&loop_, &registry.worker(0), nullptr);
  Parked a = connection();
  Parked b = connection();
  ASSERT_TRUE(pool.park(key("alice"), a.connection, "", limits()));
  ASSERT_TRUE(pool.park(key("bob"), b.connection, "", limits()));
  EXPECT_NE(registry.render().find("\npopbridge_upstream_pooled 2\n"), std::string::npos);
  EXPECT_TRUE(pool.take(key("alice")));
  EXPECT_FALSE(pool.take(key("alice")));
  pool.closeAll();
  const std::string page = registry.render();
  EXPECT_NE(page.find("popbridge_upstream_pool_lookups_total{result=\"hit\"} 1\n"),
            std::string::npos)
      << page;
  EXPECT_NE(page.find("popbridge_upstream_pool_lookups_total{result=\"miss\"} 1\n"),
            std::string::npos);
  EXPECT_NE(page.find("popbridge_upstream_pool_drops_total{reason=\"closed\"} 1\n"),
            std::string::npos);
  EXPECT_NE(page.find("\npopbridge_upstream_pooled 0\n"), std::string::npos);
  // Closed for the drain: nothing is parked any more.
  Parked c = connection();
  EXPECT_FALSE(pool.park(key("carol"), c.connection, "", limits()));
}

TEST_F(UpstreamPoolTest, OffWhenIdleIsZero) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked p = connection();
  EXPECT_FALSE(pool.park(key("alice"), p.connection, "", limits(0ms)));
  EXPECT_TRUE(p.connection.stream);  // still the caller's
}

TEST_F(UpstreamPoolTest, ALoginOlderThanTheMaximumAgeIsNotParkedAgain) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked p = connection();
  p.connection.loggedInAt -= UpstreamPool::kMaxLoginAge + 1s;
  EXPECT_FALSE(pool.park(key("alice"), p.connection, "", limits()));
  EXPECT_TRUE(p.connection.stream);
}

TEST_F(UpstreamPoolTest, ExpiresAfterIdleWithLogout) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked p = connection(9);
  ASSERT_TRUE(pool.park(key("alice"), p.connection, "", limits(50ms)));
  ASSERT_TRUE(runUntil([&] { return pool.size() == 0; }));
  EXPECT_FALSE(pool.take(key("alice")));
  ASSERT_TRUE(runUntil([&] { return p.server->received.find("LOGOUT") != std::string::npos; }));
  EXPECT_EQ(p.server->received, "T9 LOGOUT\r\n");
}

TEST_F(UpstreamPoolTest, PerAccountCapEvictsTheAccountsOldest) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked a = connection(1);
  Parked b = connection(2);
  Parked c = connection(3);
  Parked other = connection(4);
  ASSERT_TRUE(pool.park(key("other"), other.connection, "", limits()));
  ASSERT_TRUE(pool.park(key("alice"), a.connection, "", limits()));
  ASSERT_TRUE(pool.park(key("alice"), b.connection, "", limits()));
  ASSERT_TRUE(pool.park(key("alice"), c.connection, "", limits()));
  EXPECT_EQ(pool.parkedOf("alice"), 2u);
  EXPECT_EQ(pool.parkedOf("other"), 1u);
  // Newest first; the oldest (tag 1) was evicted.
  EXPECT_EQ(pool.take(key("alice"))->state.nextTag, 3u);
  EXPECT_EQ(pool.take(key("alice"))->state.nextTag, 2u);
  EXPECT_FALSE(pool.take(key("alice")));
}

TEST_F(UpstreamPoolTest, TotalCapEvictsTheOldest) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  std::vector<Parked> parked;
  for (int i = 0; i < 5; ++i) parked.push_back(connection(i));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.park(key("user" + std::to_string(i)),
                          parked[static_cast<std::size_t>(i)].connection, "", limits()));
  }
  EXPECT_EQ(pool.size(), 4u);
  EXPECT_FALSE(pool.take(key("user0")));
  EXPECT_TRUE(pool.take(key("user4")));
}

TEST_F(UpstreamPoolTest, CountsAgainstMaxSessionsPerAccount) {
  LocalSessionRegistry registry(2);
  UpstreamPool pool(&loop_, &metrics_, &registry);
  UpstreamPool::Limits l = limits();
  l.maxSessionsPerAccount = 2;
  ASSERT_EQ(registry.tryClaim({"alice", "INBOX", false}, 1), SessionRegistry::Verdict::Granted);
  Parked a = connection(1);
  Parked b = connection(2);
  ASSERT_TRUE(pool.park(key("alice"), a.connection, "", l));  // 1 session + 1 parked
  // A second parked one would make three: the older parked one goes.
  ASSERT_TRUE(pool.park(key("alice"), b.connection, "", l));
  EXPECT_EQ(pool.parkedOf("alice"), 1u);
  // Both of the account's slots are sessions now: nothing may be parked.
  ASSERT_EQ(registry.tryClaim({"alice", "INBOX", false}, 2), SessionRegistry::Verdict::Granted);
  EXPECT_EQ(pool.parkedOf("alice"), 1u);
  pool.makeRoom("Alice", l, 0);
  EXPECT_EQ(pool.parkedOf("alice"), 0u);
  Parked c = connection(3);
  EXPECT_FALSE(pool.park(key("alice"), c.connection, "", l));
  EXPECT_TRUE(c.connection.stream);
}

TEST_F(UpstreamPoolTest, UnsolicitedUpdatesAreDiscardedWhileParked) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked p = connection();
  ASSERT_TRUE(pool.park(key("alice"), p.connection, "* 4 EXISTS\r\n* 1 RECE", limits()));
  p.server->stream->write(
      std::string_view("NT\r\n* 2 EXPUNGE\r\n* 3 FETCH (FLAGS (\\Seen))\r\n* OK still here\r\n"));
  // Written to the kernel first, so the pool's read sees it.
  ASSERT_TRUE(runUntil([&] { return p.server->stream->pendingWriteBytes() == 0; }));
  runFor(100ms);
  EXPECT_EQ(pool.size(), 1u);
  EXPECT_TRUE(pool.take(key("alice")));
}

TEST_F(UpstreamPoolTest, HalfReadResponseIsNotHandedOver) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked p = connection();
  ASSERT_TRUE(pool.park(key("alice"), p.connection, "", limits()));
  p.server->stream->write(std::string_view("* 4 EXI"));
  // Written to the kernel first, so the pool's read sees it.
  ASSERT_TRUE(runUntil([&] { return p.server->stream->pendingWriteBytes() == 0; }));
  runFor(100ms);
  EXPECT_FALSE(pool.take(key("alice")));
  EXPECT_EQ(pool.size(), 0u);
}

struct DropCase {
  std::string name;
  std::string input;
};

class UpstreamPoolDrops : public UpstreamPoolTest,
                          public ::testing::WithParamInterface<DropCase> {};

TEST_P(UpstreamPoolDrops, OddDataWhileParkedDropsTheConnection) {
  UpstreamPool pool(&loop_, &metrics_, nullptr);
  Parked p = connection();
  ASSERT_TRUE(pool.park(key("alice"), p.connection, "", limits()));
  p.server->stream->write(GetParam().input);
  ASSERT_TRUE(runUntil([&] { return pool.size() == 0; }));
  EXPECT_FALSE(pool.take(key("alice")));
}

std::string repeated(std::string_view line, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += line;
  return out;
}

const std::vector<DropCase> kDropCases = {
    {"Bye", "* BYE idle too long\r\n"},
    {"Tagged", "T7 OK done\r\n"},
    {"Continuation", "+ go ahead\r\n"},
    {"UntaggedNo", "* NO trouble\r\n"},
    {"Body", "* 1 FETCH (BODY[] {3}\r\nabc)\r\n"},
    {"ProtocolError", "garbage\r\n"},
    {"LineTooLong", "* OK " + std::string(UpstreamPool::kMaxParkedLine, 'a') + "\r\n"},
    {"TooManyResponses", repeated("* 1 EXISTS\r\n", UpstreamPool::kMaxParkedResponses + 1)},
};

INSTANTIATE_TEST_SUITE_P(Table, UpstreamPoolDrops, ::testing::ValuesIn(kDropCases),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace popbridge::proxy
