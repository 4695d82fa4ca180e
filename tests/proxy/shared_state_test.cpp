// The state layer ([state]): the embedded SQLite store, the Redis client (plain, AUTH, TLS,
// outages, a Redis that does not answer) and the maildrop leases, against a real redis-server
// that each test starts on loopback.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "proxy/maildrop_lease.h"
#include "proxy/redis_client.h"
#include "proxy/shared_counters.h"
#include "proxy/state_store.h"
#include "proxy/tls_context.h"
#include "tests/support/client_runner.h"
#include "tests/support/redis_server.h"

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;
using test::RedisServer;
using Entry = StateStore::UidlEntry;
using Key = StateStore::UidKey;

Entry entry(std::uint32_t validity, std::uint32_t uid, std::string uidl) {
  Entry e;
  e.key = {validity, uid};
  e.uidl = std::move(uidl);
  e.messageId = "<" + std::to_string(uid) + "@example.com>";
  e.date = "Mon, 1 Dec 2026 10:00:00 +0000";
  e.size = 1000 + uid;
  e.headerHash = "ab12cd";
  e.headerLines = uid % 7;
  return e;
}

// --- the stored form ---------------------------------------------------------------------------

TEST(StateStoreCodec, EntriesRoundTripWithAnyBytes) {
  Entry e = entry(7, 42, "uidl:with:colons");
  e.messageId = std::string("<a\0b|c:d>", 9);
  e.date = "";
  const std::string encoded = StateStore::encodeEntry(e);
  auto decoded = StateStore::decodeEntry(e.key, encoded);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(*decoded, e);
}

TEST(StateStoreCodec, MalformedEntriesAreRejected) {
  const std::vector<std::string> cases = {
      "",                             // nothing
      "3:abc",                        // fields missing
      "3:abc0:0:4:1000:1:0trailing",  // bytes after the last field
      "3:abc0:0:4:10000:",            // no header-line count
      "3:abc0:0:4:10000:1:x",         // a header-line count that is not a number
      "9:abc0:0:4:10000:",            // a length beyond the text
      "3:abc0:0:3:1x00:",             // a size that is not a number
      "x:abc0:0:4:1000:0:",           // a length that is not a number
      "99999999999:a0:0:1:10:",       // an absurd length
  };
  for (const std::string& text : cases) {
    EXPECT_FALSE(StateStore::decodeEntry({1, 1}, text)) << text;
  }
  EXPECT_TRUE(StateStore::decodeEntry({1, 1}, "3:abc0:0:4:10000:1:0"));
}

TEST(StateStoreCodec, Keys) {
  EXPECT_EQ(StateStore::encodeKey({4294967295u, 12}), "4294967295:12");
  EXPECT_EQ(StateStore::decodeKey("4294967295:12"), (Key{4294967295u, 12}));
  for (const char* bad : {"", "1", ":1", "1:", "1:x", "4294967296:1", "1:2:3"}) {
    EXPECT_FALSE(StateStore::decodeKey(bad)) << bad;
  }
}

// --- the embedded store ------------------------------------------------------------------------

std::vector<Entry> loadAll(StateStore& store, const StateStore::Mailbox& mailbox) {
  std::optional<std::vector<Entry>> out;
  store.loadUidls(mailbox, [&](StateStore::Status status, std::vector<Entry> entries) {
    EXPECT_EQ(status, StateStore::Status::Ok);
    out = std::move(entries);
  });
  EXPECT_TRUE(out) << "the embedded store answers before returning";
  return out.value_or(std::vector<Entry>{});
}

TEST(SqliteStateStore, KeepsTheMapAcrossARestart) {
  test::TempDir dir("popbridge-state");
  const std::string path = dir.path() + "/state.db";
  const StateStore::Mailbox alice{"alice", "INBOX"};
  const StateStore::Mailbox bob{"bob", "INBOX"};
  {
    std::string error;
    auto store = SqliteStateStore::open(path, error);
    ASSERT_TRUE(store) << error;
    bool stored = false;
    store->putUidls(alice, {entry(1, 1, "u1"), entry(1, 2, "u2"), entry(2, 1, "u3")},
                    [&](StateStore::Status status) { stored = status == StateStore::Status::Ok; });
    EXPECT_TRUE(stored);
    store->putUidls(bob, {entry(1, 1, "b1")}, [](StateStore::Status) {});
    // Replacing an entry keeps one.
    store->putUidls(alice, {entry(1, 2, "u2-new")}, [](StateStore::Status) {});
  }
  // The process ends and starts again: the file holds everything.
  std::string error;
  auto store = SqliteStateStore::open(path, error);
  ASSERT_TRUE(store) << error;
  const std::vector<Entry> all = loadAll(*store, alice);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0], entry(1, 1, "u1"));
  EXPECT_EQ(all[1], entry(1, 2, "u2-new"));
  EXPECT_EQ(all[2], entry(2, 1, "u3"));

  std::vector<Entry> got;
  store->getUidls(
      alice, {{1, 2}, {9, 9}, {2, 1}},
      [&](StateStore::Status, std::vector<Entry> entries) { got = std::move(entries); });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].uidl, "u2-new");
  EXPECT_EQ(got[1].uidl, "u3");

  store->eraseUidls(alice, {{1, 1}, {1, 2}}, [](StateStore::Status) {});
  ASSERT_EQ(loadAll(*store, alice).size(), 1u);
  EXPECT_EQ(loadAll(*store, bob).size(), 1u) << "another mailbox is untouched";
}

TEST(SqliteStateStore, AnUnusablePathIsAnError) {
  std::string error;
  EXPECT_FALSE(SqliteStateStore::open("/nonexistent-dir/state.db", error));
  EXPECT_NE(error.find("/nonexistent-dir/state.db"), std::string::npos) << error;
}

// --- Redis -------------------------------------------------------------------------------------

class Loop {
 public:
  Loop() { uv_loop_init(&loop_); }
  ~Loop() {
    uv_walk(
        &loop_,
        [](uv_handle_t* handle, void*) {
          if (!uv_is_closing(handle)) uv_close(handle, nullptr);
        },
        nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  uv_loop_t* get() { return &loop_; }
  // Runs the loop until `done` holds; false after 20 s (a hang fails the test, it never waits
  // forever).
  bool runUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    Timer tick(&loop_);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      tick.start(10ms, [] {});
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

 private:
  uv_loop_t loop_{};
};

RedisClient::Options optionsFor(const RedisServer& server, std::string password = {}) {
  RedisClient::Options options;
  options.endpoint.host = "127.0.0.1";
  options.endpoint.port = server.port();
  options.endpoint.password = std::move(password);
  options.timeout = 2000ms;
  options.retryAfter = 100ms;
  return options;
}

struct Call {
  std::optional<RedisReply> reply;
  RedisClient::Callback callback() {
    return [this](RedisReply r) { reply = std::move(r); };
  }
  bool done() const { return reply.has_value(); }
};

RedisReply run(Loop& loop, RedisClient& client, std::vector<std::string> args) {
  Call call;
  client.command(std::move(args), call.callback());
  EXPECT_FALSE(call.done()) << "never answered from inside command()";
  EXPECT_TRUE(loop.runUntil([&] { return call.done(); }));
  return call.reply.value_or(RedisReply{});
}

TEST(RedisClient, PipelinesCommandsAndAnswersInOrder) {
  RedisServer server;
  Loop loop;
  RedisClient client(loop.get(), optionsFor(server));
  std::vector<std::string> order;
  for (int i = 0; i < 50; ++i) {
    client.command({"SET", "k" + std::to_string(i), "v" + std::to_string(i)}, {});
  }
  for (int i : {3, 49, 0}) {
    client.command({"GET", "k" + std::to_string(i)},
                   [&](RedisReply reply) { order.push_back(reply.value.text); });
  }
  ASSERT_TRUE(loop.runUntil([&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<std::string>{"v3", "v49", "v0"}));
  EXPECT_TRUE(client.connected());
  RedisReply error = run(loop, client, {"NOSUCHCOMMAND"});
  EXPECT_TRUE(error.answered);
  EXPECT_TRUE(error.value.isError());
  EXPECT_EQ(server.command({"GET", "k49"}), "v49");
}

TEST(RedisClient, AuthenticatesAndNeverShowsThePassword) {
  const std::string password = "s3cret-redis-pw";
  RedisServer server({.password = password});
  Loop loop;
  RedisClient client(loop.get(), optionsFor(server, password));
  RedisReply ok = run(loop, client, {"SET", "a", "1"});
  EXPECT_TRUE(ok.answered);
  EXPECT_EQ(ok.value.text, "OK");

  std::vector<std::string> problems;
  RedisClient wrong(loop.get(), optionsFor(server, "not-the-password"),
                    [&](std::string_view problem) { problems.emplace_back(problem); });
  RedisReply refused = run(loop, wrong, {"GET", "a"});
  EXPECT_FALSE(refused.answered) << "a refused AUTH fails the connection, not just a command";
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("AUTH"), std::string::npos) << problems[0];
  for (const std::string& problem : problems) {
    EXPECT_EQ(problem.find("not-the-password"), std::string::npos) << problem;
  }
}

TEST(RedisClient, SpeaksTlsWithBoringSsl) {
  if (!RedisServer::supportsTls()) GTEST_SKIP() << "this redis-server has no TLS";
  RedisServer server({.password = "pw", .tls = true});
  std::string error;
  auto tls = TlsClientContext::create(server.caFile(), true, config::TlsVersion::V1_2, error);
  ASSERT_TRUE(tls) << error;
  Loop loop;
  RedisClient::Options options = optionsFor(server, "pw");
  options.endpoint.host = "localhost";
  options.endpoint.tls = true;
  options.tls = tls.get();
  RedisClient client(loop.get(), options);
  RedisReply reply = run(loop, client, {"INCR", "counter"});
  ASSERT_TRUE(reply.answered) << reply.problem;
  EXPECT_EQ(reply.value.integer, 1);

  // A certificate of another CA is refused.
  auto other = TlsClientContext::create("", true, config::TlsVersion::V1_2, error);
  ASSERT_TRUE(other) << error;
  options.tls = other.get();
  RedisClient untrusting(loop.get(), options);
  RedisReply refused = run(loop, untrusting, {"INCR", "counter"});
  EXPECT_FALSE(refused.answered);
  EXPECT_NE(refused.problem.find("certificate"), std::string::npos) << refused.problem;
}

TEST(RedisClient, AnOutageFailsFastAndHealsOnItsOwn) {
  RedisServer server;
  Loop loop;
  int problems = 0;
  RedisClient::Options options = optionsFor(server);
  // The "failed at once" step below must come within it even on a loaded machine.
  options.retryAfter = 1s;
  RedisClient client(loop.get(), options, [&](std::string_view) { ++problems; });
  EXPECT_TRUE(run(loop, client, {"SET", "x", "1"}).answered);
  server.kill();
  RedisReply lost = run(loop, client, {"GET", "x"});
  EXPECT_FALSE(lost.answered);
  EXPECT_GE(problems, 1);
  // Within retryAfter: failed at once, without another attempt.
  const int seen = problems;
  RedisReply fast = run(loop, client, {"GET", "x"});
  EXPECT_FALSE(fast.answered);
  EXPECT_NE(fast.problem.find("unavailable"), std::string::npos) << fast.problem;
  EXPECT_EQ(problems, seen);

  server.start();  // a fresh Redis on the same port
  std::optional<RedisReply> healed;
  ASSERT_TRUE(loop.runUntil([&] {
    if (healed && healed->answered) return true;
    Call call;
    client.command({"PING"}, call.callback());
    loop.runUntil([&] { return call.done(); });
    healed = call.reply;
    return healed && healed->answered;
  }));
  EXPECT_EQ(healed->value.text, "PONG");
}

TEST(RedisClient, ARedisThatDoesNotAnswerTimesOut) {
  // A socket that listens but never accepts: the connection completes in the backlog, and
  // nothing ever answers.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  Loop loop;
  RedisClient::Options options;
  options.endpoint.host = "127.0.0.1";
  options.endpoint.port = ntohs(addr.sin_port);
  options.timeout = 200ms;
  std::string problem;
  RedisClient client(loop.get(), options, [&](std::string_view p) { problem = p; });
  RedisReply reply = run(loop, client, {"PING"});
  EXPECT_FALSE(reply.answered);
  EXPECT_NE(problem.find("did not answer within 200 ms"), std::string::npos) << problem;
  close(fd);
}

// --- leases ------------------------------------------------------------------------------------

struct LeaseFixture {
  RedisServer server;
  Loop loop;
  RedisClient client{loop.get(), optionsFor(server)};
  MaildropLeases replicaA{client, "pb:", "aaaa", 30000ms};
  MaildropLeases replicaB{client, "pb:", "bbbb", 30000ms};

  MaildropLeases::Grant claim(MaildropLeases& leases, const SessionRegistry::Maildrop& maildrop,
                              SessionRegistry::Holder holder, unsigned max = 0) {
    std::optional<MaildropLeases::Grant> grant;
    leases.claim(maildrop, holder, max, [&](MaildropLeases::Grant g) { grant = std::move(g); });
    EXPECT_TRUE(loop.runUntil([&] { return grant.has_value(); }));
    return grant.value_or(MaildropLeases::Grant{});
  }
  MaildropLeases::Check renew(MaildropLeases& leases, const SessionRegistry::Maildrop& maildrop,
                              SessionRegistry::Holder holder, std::uint64_t token) {
    std::optional<MaildropLeases::Check> check;
    leases.renew(maildrop, holder, token, [&](MaildropLeases::Check c, std::string) { check = c; });
    EXPECT_TRUE(loop.runUntil([&] { return check.has_value(); }));
    return check.value_or(MaildropLeases::Check::Unavailable);
  }
  // As if `holder`'s lease had run out (a paused or dead replica), without waiting for it.
  void expire(MaildropLeases& leases, const SessionRegistry::Maildrop& maildrop,
              SessionRegistry::Holder holder, std::uint64_t token) {
    const std::string excl = maildrop.exclusive ? "1" : "0";
    EXPECT_EQ(server.command({"HSET", leases.maildropKey(maildrop), leases.holderName(holder),
                              std::to_string(token) + "|" + excl + "|1000"}),
              "0");
  }
};

const SessionRegistry::Maildrop kInbox{"Alice", "inbox", true};

TEST(MaildropLeases, OneExclusiveHolderAcrossReplicas) {
  LeaseFixture f;
  auto first = f.claim(f.replicaA, kInbox, 1);
  ASSERT_EQ(first.outcome, MaildropLeases::Outcome::Granted);
  EXPECT_GT(first.token, 0u);
  // The same account in another spelling, on another replica.
  EXPECT_EQ(f.claim(f.replicaB, {"alice", "INBOX", true}, 1).outcome,
            MaildropLeases::Outcome::InUse);
  EXPECT_EQ(f.claim(f.replicaB, {"alice", "INBOX", false}, 1).outcome,
            MaildropLeases::Outcome::InUse)
      << "an exclusive holder keeps shared ones out too";
  EXPECT_EQ(f.renew(f.replicaA, kInbox, 1, first.token), MaildropLeases::Check::Held);
  f.replicaA.release(kInbox, 1, first.token);
  auto second = f.claim(f.replicaB, kInbox, 1);
  ASSERT_EQ(second.outcome, MaildropLeases::Outcome::Granted);
  EXPECT_GT(second.token, first.token) << "fencing tokens only grow";
}

TEST(MaildropLeases, SharedHoldersAndTheAccountCap) {
  LeaseFixture f;
  const SessionRegistry::Maildrop shared{"bob", "INBOX", false};
  const SessionRegistry::Maildrop other{"bob", "Archive", false};
  EXPECT_EQ(f.claim(f.replicaA, shared, 1, 2).outcome, MaildropLeases::Outcome::Granted);
  EXPECT_EQ(f.claim(f.replicaB, shared, 1, 2).outcome, MaildropLeases::Outcome::Granted);
  EXPECT_EQ(f.claim(f.replicaB, other, 2, 2).outcome, MaildropLeases::Outcome::AccountFull);
  EXPECT_EQ(f.claim(f.replicaB, other, 2, 3).outcome, MaildropLeases::Outcome::Granted);
  EXPECT_EQ(f.claim(f.replicaA, {"bob", "INBOX", true}, 3, 0).outcome,
            MaildropLeases::Outcome::InUse);
}

TEST(MaildropLeases, AnExpiredLeaseIsTakenOverAndItsHolderFenced) {
  LeaseFixture f;
  auto first = f.claim(f.replicaA, kInbox, 1);
  ASSERT_EQ(first.outcome, MaildropLeases::Outcome::Granted);
  f.expire(f.replicaA, kInbox, 1, first.token);
  // Expired but not yet taken: still not the holder's any more.
  EXPECT_EQ(f.renew(f.replicaA, kInbox, 1, first.token), MaildropLeases::Check::Lost);
  auto second = f.claim(f.replicaB, kInbox, 7);
  ASSERT_EQ(second.outcome, MaildropLeases::Outcome::Granted);
  EXPECT_EQ(f.renew(f.replicaA, kInbox, 1, first.token), MaildropLeases::Check::Lost);
  // The fenced holder's release does not free the new holder's grant.
  f.replicaA.release(kInbox, 1, first.token);
  EXPECT_EQ(f.renew(f.replicaB, kInbox, 7, second.token), MaildropLeases::Check::Held);
  EXPECT_EQ(f.claim(f.replicaA, kInbox, 2).outcome, MaildropLeases::Outcome::InUse);
}

TEST(MaildropLeases, KeysExpireWithTheirLastLease) {
  LeaseFixture f;
  ASSERT_EQ(f.claim(f.replicaA, kInbox, 1).outcome, MaildropLeases::Outcome::Granted);
  const long ttl = std::stol(f.server.command({"PTTL", f.replicaA.maildropKey(kInbox)}));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 30000);
  EXPECT_GT(std::stol(f.server.command({"PTTL", f.replicaA.accountKey(kInbox)})), 0);
}

// A session that ends before its claim's answer arrived (the client hung up during login) gives
// the grant back: otherwise the maildrop would answer [IN-USE] on every replica until lease_ttl.
TEST(MaildropLease, DestroyedWhileItsClaimIsPendingGivesTheGrantBack) {
  LeaseFixture f;
  {
    MaildropLease lease(f.loop.get(), f.replicaA, kInbox, 1, 0, {});
    lease.acquire([](MaildropLeases::Outcome) { ADD_FAILURE() << "answered after its end"; });
    EXPECT_EQ(lease.state(), MaildropLease::State::Pending);
  }
  // The claim and the release went out in that order on one connection; the next claim follows.
  EXPECT_EQ(f.claim(f.replicaB, kInbox, 2).outcome, MaildropLeases::Outcome::Granted);
}

TEST(MaildropLease, ConfirmsWhileHeldAndFailsClosedWhenRedisIsGone) {
  LeaseFixture f;
  std::vector<std::string> unavailable;
  MaildropLease::Events events;
  events.onUnavailable = [&](std::string_view p) { unavailable.emplace_back(p); };
  MaildropLease lease(f.loop.get(), f.replicaA, kInbox, 1, 0, events);
  std::optional<MaildropLeases::Outcome> outcome;
  lease.acquire([&](MaildropLeases::Outcome o) { outcome = o; });
  EXPECT_FALSE(outcome) << "answered from the loop";
  ASSERT_TRUE(f.loop.runUntil([&] { return outcome.has_value(); }));
  EXPECT_EQ(*outcome, MaildropLeases::Outcome::Granted);
  EXPECT_EQ(lease.state(), MaildropLease::State::Held);

  std::optional<bool> confirmed;
  lease.confirm([&](bool ok) { confirmed = ok; });
  ASSERT_TRUE(f.loop.runUntil([&] { return confirmed.has_value(); }));
  EXPECT_TRUE(*confirmed);

  f.server.kill();
  confirmed.reset();
  lease.confirm([&](bool ok) { confirmed = ok; });
  ASSERT_TRUE(f.loop.runUntil([&] { return confirmed.has_value(); }));
  EXPECT_FALSE(*confirmed) << "UPDATE fails closed without Redis";
  EXPECT_FALSE(unavailable.empty());
}

TEST(MaildropLease, ALostLeaseNeverConfirmsAgain) {
  LeaseFixture f;
  std::vector<std::string> lost;
  MaildropLease::Events events;
  events.onLost = [&](std::string_view why) { lost.emplace_back(why); };
  auto lease = std::make_unique<MaildropLease>(f.loop.get(), f.replicaA, kInbox, 1, 0, events);
  std::optional<MaildropLeases::Outcome> outcome;
  lease->acquire([&](MaildropLeases::Outcome o) { outcome = o; });
  ASSERT_TRUE(f.loop.runUntil([&] { return outcome.has_value(); }));
  f.expire(f.replicaA, kInbox, 1, lease->token());
  ASSERT_EQ(f.claim(f.replicaB, kInbox, 9).outcome, MaildropLeases::Outcome::Granted);
  std::optional<bool> confirmed;
  lease->confirm([&](bool ok) { confirmed = ok; });
  ASSERT_TRUE(f.loop.runUntil([&] { return confirmed.has_value(); }));
  EXPECT_FALSE(*confirmed);
  EXPECT_EQ(lease->state(), MaildropLease::State::Lost);
  EXPECT_EQ(lost.size(), 1u);
  // Destroying the fenced lease leaves the new holder's grant alone.
  lease.reset();
  EXPECT_EQ(f.renew(f.replicaB, kInbox, 9, 2), MaildropLeases::Check::Held);
}

TEST(MaildropLease, ALoginWithoutRedisGoesOnUnconfirmed) {
  LeaseFixture f;
  f.server.kill();
  MaildropLease lease(f.loop.get(), f.replicaA, kInbox, 1, 0, {});
  std::optional<MaildropLeases::Outcome> outcome;
  lease.acquire([&](MaildropLeases::Outcome o) { outcome = o; });
  ASSERT_TRUE(f.loop.runUntil([&] { return outcome.has_value(); }));
  EXPECT_EQ(*outcome, MaildropLeases::Outcome::Unavailable);
  EXPECT_EQ(lease.state(), MaildropLease::State::Unconfirmed);
  f.server.start();
  std::optional<bool> confirmed;
  lease.confirm([&](bool ok) { confirmed = ok; });
  ASSERT_TRUE(f.loop.runUntil([&] { return confirmed.has_value(); }));
  EXPECT_FALSE(*confirmed) << "a lease never held confirms no UPDATE";
}

// --- failed-login counts across replicas --------------------------------------------------------

TEST(SharedLoginCounters, AReplicaSeesTheFailuresOfAnother) {
  RedisServer server;
  Loop loop;
  RedisClient client(loop.get(), optionsFor(server));
  SharedLoginCounters counters(client, "pb:");
  LoginGuard::Limits limits;
  limits.throttleAfter = 3;
  limits.userThrottleAfter = 5;
  LoginGuard replicaA(limits);
  LoginGuard replicaB(limits);
  const auto now = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    replicaA.recordFailure("192.0.2.7", "Alice", now);
    counters.failure(replicaA, "192.0.2.7", "Alice");
  }
  // The failures are pipelined; one more command's answer comes after all of theirs.
  run(loop, client, {"PING"});
  EXPECT_EQ(server.command({"GET", "pb:fail:ip:192.0.2.7"}), "3");
  EXPECT_EQ(server.command({"GET", "pb:fail:user:alice"}), "3");
  const long ttl = std::stol(server.command({"PTTL", "pb:fail:ip:192.0.2.7"}));
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 600000) << "a failure counts as long as forgetAfter, as locally";

  EXPECT_EQ(replicaB.throttle("192.0.2.7", "alice", now).delay.count(), 0);
  bool refreshed = false;
  counters.refresh(replicaB, "192.0.2.7", "ALICE", [&] { refreshed = true; });
  EXPECT_FALSE(refreshed) << "answered from the loop";
  ASSERT_TRUE(loop.runUntil([&] { return refreshed; }));
  const LoginGuard::Throttle throttle = replicaB.throttle("192.0.2.7", "alice", now);
  EXPECT_EQ(throttle.failures, 3u);
  EXPECT_GT(throttle.delay.count(), 0);
  EXPECT_EQ(replicaB.throttle(LoginGuard::Subject::User, "alice", now).failures, 3u);

  // A success forgives the IP and the user across the cluster.
  counters.success("192.0.2.7", "alice");
  run(loop, client, {"PING"});
  EXPECT_EQ(server.command({"EXISTS", "pb:fail:ip:192.0.2.7", "pb:fail:user:alice"}), "0");

  // Without Redis the local view decides, and the refresh still answers.
  server.kill();
  refreshed = false;
  counters.refresh(replicaB, "192.0.2.8", "bob", [&] { refreshed = true; });
  ASSERT_TRUE(loop.runUntil([&] { return refreshed; }));
  counters.failure(replicaB, "192.0.2.8", "bob");
}

// --- the UIDL map in Redis ---------------------------------------------------------------------

TEST(RedisStateStore, BulkPutGetLoadErase) {
  RedisServer server;
  Loop loop;
  RedisClient client(loop.get(), optionsFor(server));
  RedisStateStore store(client, "pb:");
  const StateStore::Mailbox mailbox{"alice", "INBOX"};
  std::optional<StateStore::Status> put;
  store.putUidls(mailbox, {entry(5, 1, "a"), entry(5, 2, "b"), entry(6, 1, "c")},
                 [&](StateStore::Status s) { put = s; });
  ASSERT_TRUE(loop.runUntil([&] { return put.has_value(); }));
  EXPECT_EQ(*put, StateStore::Status::Ok);

  std::optional<std::vector<Entry>> got;
  store.getUidls(mailbox, {{5, 2}, {5, 3}, {6, 1}},
                 [&](StateStore::Status, std::vector<Entry> e) { got = std::move(e); });
  ASSERT_TRUE(loop.runUntil([&] { return got.has_value(); }));
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0], entry(5, 2, "b"));
  EXPECT_EQ((*got)[1], entry(6, 1, "c"));

  std::optional<StateStore::Status> erased;
  store.eraseUidls(mailbox, {{5, 1}}, [&](StateStore::Status s) { erased = s; });
  ASSERT_TRUE(loop.runUntil([&] { return erased.has_value(); }));
  got.reset();
  store.loadUidls(mailbox, [&](StateStore::Status, std::vector<Entry> e) { got = std::move(e); });
  ASSERT_TRUE(loop.runUntil([&] { return got.has_value(); }));
  EXPECT_EQ(got->size(), 2u);

  server.kill();
  std::optional<StateStore::Status> failed;
  store.loadUidls(mailbox, [&](StateStore::Status s, std::vector<Entry>) { failed = s; });
  ASSERT_TRUE(loop.runUntil([&] { return failed.has_value(); }));
  EXPECT_EQ(*failed, StateStore::Status::Unavailable);
}

// A large mailbox's map is read in pieces (several HMGETs, HSCAN pages) that add up to the
// whole, each entry once, with a reply limit far below what one HGETALL would need.
TEST(RedisStateStore, ALargeMapIsReadInPieces) {
  RedisServer server;
  Loop loop;
  RedisClient::Options options = optionsFor(server);
  options.maxReplyBytes = 512 * 1024;
  RedisClient client(loop.get(), options);
  RedisStateStore store(client, "pb:");
  const StateStore::Mailbox mailbox{"big", "INBOX"};
  constexpr std::uint32_t kCount = 12000;
  std::vector<Entry> entries;
  std::vector<Key> keys;
  for (std::uint32_t uid = 1; uid <= kCount; ++uid) {
    entries.push_back(entry(9, uid, "u" + std::to_string(uid)));
    keys.push_back({9, uid});
  }
  std::optional<StateStore::Status> put;
  store.putUidls(mailbox, entries, [&](StateStore::Status s) { put = s; });
  ASSERT_TRUE(loop.runUntil([&] { return put.has_value(); }));
  ASSERT_EQ(*put, StateStore::Status::Ok);

  std::optional<std::vector<Entry>> got;
  std::optional<StateStore::Status> status;
  store.getUidls(mailbox, keys, [&](StateStore::Status st, std::vector<Entry> e) {
    status = st;
    got = std::move(e);
  });
  ASSERT_TRUE(loop.runUntil([&] { return got.has_value(); }));
  ASSERT_EQ(*status, StateStore::Status::Ok);
  EXPECT_EQ(*got, entries);

  got.reset();
  store.loadUidls(mailbox, [&](StateStore::Status st, std::vector<Entry> e) {
    status = st;
    got = std::move(e);
  });
  ASSERT_TRUE(loop.runUntil([&] { return got.has_value(); }));
  ASSERT_EQ(*status, StateStore::Status::Ok);
  std::sort(got->begin(), got->end(),
            [](const Entry& a, const Entry& b) { return a.key.uid < b.key.uid; });
  EXPECT_EQ(*got, entries);
}

}  // namespace
}  // namespace popbridge::proxy
