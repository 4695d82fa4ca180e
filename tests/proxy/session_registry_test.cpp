// LocalSessionRegistry: RFC 1939's exclusive maildrop and max_sessions_per_account, and the
// SessionClaim that gives a claim back however its session ends.

#include "proxy/session_registry.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace popbridge::proxy {
namespace {

using Verdict = SessionRegistry::Verdict;
using Maildrop = SessionRegistry::Maildrop;

Maildrop drop(std::string account, std::string folder = "INBOX", bool exclusive = true) {
  return Maildrop{std::move(account), std::move(folder), exclusive};
}

TEST(SessionRegistry, AnExclusiveMaildropHasOneHolderUntilItIsReleased) {
  LocalSessionRegistry registry(0);
  EXPECT_EQ(registry.tryClaim(drop("alice"), 1), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice"), 2), Verdict::MaildropInUse);
  EXPECT_EQ(registry.tryClaim(drop("bob"), 3), Verdict::Granted) << "another account";
  EXPECT_EQ(registry.tryClaim(drop("alice", "Scans"), 4), Verdict::Granted) << "another folder";
  registry.release(drop("alice"), 1);
  EXPECT_EQ(registry.tryClaim(drop("alice"), 2), Verdict::Granted);
}

TEST(SessionRegistry, NamesAreComparedAsMailServersDo) {
  LocalSessionRegistry registry(0);
  EXPECT_EQ(registry.tryClaim(drop("Alice@Example.com", "inbox"), 1), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice@example.COM", "INBOX"), 2), Verdict::MaildropInUse);
  EXPECT_EQ(registry.tryClaim(drop("alice@example.com", "Inbox"), 3), Verdict::MaildropInUse);
  // Other folders keep their case: IMAP names them case-sensitively.
  EXPECT_EQ(registry.tryClaim(drop("alice@example.com", "Scans"), 4), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice@example.com", "scans"), 5), Verdict::Granted);
}

TEST(SessionRegistry, SharedClaimsCoexistButNotWithAnExclusiveOne) {
  LocalSessionRegistry registry(0);
  EXPECT_EQ(registry.tryClaim(drop("alice", "INBOX", false), 1), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice", "INBOX", false), 2), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice", "INBOX", true), 3), Verdict::MaildropInUse);
  registry.release(drop("alice", "INBOX", false), 1);
  registry.release(drop("alice", "INBOX", false), 2);
  EXPECT_EQ(registry.tryClaim(drop("alice", "INBOX", true), 3), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice", "INBOX", false), 4), Verdict::MaildropInUse)
      << "an exclusive holder refuses shared ones too";
}

TEST(SessionRegistry, TheAccountCapCountsEveryFolder) {
  LocalSessionRegistry registry(2);
  EXPECT_EQ(registry.tryClaim(drop("alice", "INBOX", false), 1), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice", "Scans", false), 2), Verdict::Granted);
  EXPECT_EQ(registry.tryClaim(drop("alice", "Other", false), 3), Verdict::AccountFull);
  EXPECT_EQ(registry.tryClaim(drop("ALICE", "INBOX", false), 3), Verdict::AccountFull);
  EXPECT_EQ(registry.tryClaim(drop("bob", "INBOX", false), 4), Verdict::Granted);
  EXPECT_EQ(registry.sessionsOf("alice"), 2u);
  registry.release(drop("alice", "Scans", false), 2);
  EXPECT_EQ(registry.tryClaim(drop("alice", "Other", false), 3), Verdict::Granted);
}

TEST(SessionRegistry, ReleasingWhatIsNotHeldChangesNothing) {
  LocalSessionRegistry registry(1);
  EXPECT_EQ(registry.tryClaim(drop("alice"), 1), Verdict::Granted);
  registry.release(drop("alice"), 2);       // another holder
  registry.release(drop("alice", "X"), 1);  // another folder
  registry.release(drop("nobody"), 1);      // another account
  EXPECT_EQ(registry.sessionsOf("alice"), 1u);
  EXPECT_EQ(registry.tryClaim(drop("alice"), 3), Verdict::AccountFull);
  registry.release(drop("alice"), 1);
  registry.release(drop("alice"), 1);  // twice
  EXPECT_EQ(registry.accounts(), 0u) << "nothing is kept for accounts without sessions";
}

TEST(SessionClaim, GivesTheClaimBackWhenDestroyedOrReset) {
  LocalSessionRegistry registry(0);
  {
    ASSERT_EQ(registry.tryClaim(drop("alice"), 1), Verdict::Granted);
    SessionClaim claim(registry, drop("alice"), 1);
    EXPECT_TRUE(claim);
    EXPECT_EQ(registry.tryClaim(drop("alice"), 2), Verdict::MaildropInUse);
    SessionClaim moved = std::move(claim);
    EXPECT_FALSE(claim);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    EXPECT_EQ(registry.sessionsOf("alice"), 1u) << "a move gives nothing back";
  }
  EXPECT_EQ(registry.sessionsOf("alice"), 0u);
  ASSERT_EQ(registry.tryClaim(drop("alice"), 3), Verdict::Granted);
  SessionClaim claim(registry, drop("alice"), 3);
  claim.reset();
  claim.reset();
  EXPECT_EQ(registry.accounts(), 0u);
}

TEST(SessionRegistry, ClaimsFromManyThreadsGrantOneExclusiveHolder) {
  LocalSessionRegistry registry(0);
  std::vector<std::thread> threads;
  std::vector<int> granted(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        SessionRegistry::Holder holder = static_cast<SessionRegistry::Holder>(t * 1000 + i + 1);
        if (registry.tryClaim(drop("alice"), holder) == Verdict::Granted) {
          ++granted[t];
          EXPECT_EQ(registry.sessionsOf("alice"), 1u);
          registry.release(drop("alice"), holder);
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  int total = 0;
  for (int g : granted) total += g;
  EXPECT_GT(total, 0);
  EXPECT_EQ(registry.accounts(), 0u);
}

}  // namespace
}  // namespace popbridge::proxy
