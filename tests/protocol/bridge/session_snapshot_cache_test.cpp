// Incremental snapshots: a second poll of a mailbox asks the server only for what changed since
// the cached HIGHESTMODSEQ, and never serves a message that is gone or flagged \Deleted.

#include <map>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

constexpr std::string_view kCondstoreCaps =
    "IMAP4rev1 SASL-IR LITERAL+ UIDPLUS MOVE CONDSTORE NAMESPACE";

class MapStore : public SnapshotStore {
 public:
  SnapshotPtr find(const std::string& key) override {
    auto it = entries.find(key);
    return it == entries.end() ? nullptr : it->second;
  }
  void publish(const std::string& key, SnapshotPtr snapshot) override {
    ++publishes;
    if (snapshot->messages.size() > max) {
      entries.erase(key);
      return;
    }
    entries[key] = std::move(snapshot);
  }
  void erase(const std::string& key) override { entries.erase(key); }
  std::size_t maxMessages() const override { return max; }

  std::map<std::string, SnapshotPtr> entries;
  std::size_t max = 1000;
  int publishes = 0;
};

class OutcomeSink : public RecordingSink {
 public:
  void noteSnapshotCache(SnapshotCacheOutcome outcome) override { outcomes.push_back(outcome); }
  std::vector<SnapshotCacheOutcome> outcomes;
};

struct Mail {
  std::uint32_t uid;
  std::uint64_t size;
  bool deleted = false;
};

// What SELECT reports.
struct Selected {
  std::uint32_t exists = 0;
  std::uint32_t uidValidity = 1234;
  std::optional<std::uint32_t> uidNext;
  std::optional<std::uint64_t> modSeq;
};

class SnapshotCacheTest : public ::testing::Test {
 protected:
  // One poll up to the first command after SELECT (or TRANSACTION, if none is needed).
  void startPoll(const Selected& selected, std::string_view caps = kCondstoreCaps,
                 std::string_view expectedSelect = "P2 SELECT INBOX (CONDSTORE)\r\n",
                 std::string_view selectStatus = "OK [READ-WRITE] Select completed") {
    sink_.emplace();
    SessionOptions options;
    options.allowPlaintextAuth = true;
    options.mailbox = mailbox_;
    options.snapshotCache = &store_;
    options.snapshotScope = "imap.example:993";
    session_.emplace(options, *sink_);
    sink_->session = &*session_;
    session_->start();
    session_->feedClient("USER alice\r\nPASS pw\r\n");
    session_->onUpstreamConnected();
    upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready.\r\n");
    tagged("OK [CAPABILITY " + std::string(caps) + "] Logged in");
    ASSERT_EQ(sink_->lastUpstream(), expectedSelect);
    commandsBefore_ = sink_->upstreamCommands.size();
    std::string reply = "* " + std::to_string(selected.exists) + " EXISTS\r\n* OK [UIDVALIDITY " +
                        std::to_string(selected.uidValidity) + "] ok\r\n";
    if (selected.uidNext)
      reply += "* OK [UIDNEXT " + std::to_string(*selected.uidNext) + "] ok\r\n";
    if (selected.modSeq) {
      reply += "* OK [HIGHESTMODSEQ " + std::to_string(*selected.modSeq) + "] ok\r\n";
    }
    upstream(reply);
    tagged(selectStatus);
  }

  void upstream(std::string_view bytes) { session_->feedUpstream(bytes); }
  void tagged(std::string_view rest) {
    upstream(sink_->lastTag() + " " + std::string(rest) + "\r\n");
  }
  // The commands sent after SELECT, without their tags.
  std::vector<std::string> afterSelect() const {
    std::vector<std::string> out;
    for (std::size_t i = commandsBefore_; i < sink_->upstreamCommands.size(); ++i) {
      const std::string& c = sink_->upstreamCommands[i];
      out.push_back(c.substr(c.find(' ') + 1));
    }
    return out;
  }
  static std::string fetchLines(const std::vector<Mail>& mails, std::uint32_t firstSeq = 1,
                                bool withSize = true) {
    std::string out;
    std::uint32_t seq = firstSeq;
    for (const Mail& m : mails) {
      out += "* " + std::to_string(seq++) + " FETCH (UID " + std::to_string(m.uid);
      if (withSize) out += " RFC822.SIZE " + std::to_string(m.size);
      out += std::string(" FLAGS (") + (m.deleted ? "\\Deleted \\Seen" : "\\Seen") + "))\r\n";
    }
    return out;
  }
  // A cold poll of `mails`: SELECT, full listing.
  void coldPoll(const std::vector<Mail>& mails, std::uint64_t modSeq) {
    startPoll({static_cast<std::uint32_t>(mails.size()), 1234,
               mails.empty() ? 1 : mails.back().uid + 1, modSeq});
    ASSERT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n"});
    upstream(fetchLines(mails));
    tagged("OK Fetch completed");
    ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  }
  // UIDL and LIST of the open session, as the client saw them.
  std::string listing() {
    sink_->takeClient();
    session_->feedClient("UIDL\r\nLIST\r\n");
    return sink_->takeClient();
  }
  void answerUidValidityCheck() { session_test::answerUidValidityCheck(*session_, *sink_, "1234"); }
  // What a session that listed `mails` in full would answer.
  std::string expectedListing(const std::vector<Mail>& mails) {
    std::string uidl = "+OK Unique-ID listing follows\r\n", list = "+OK Scan listing follows\r\n";
    std::size_t n = 1;
    for (const Mail& m : mails) {
      if (m.deleted) continue;
      std::string msn = std::to_string(n++);
      std::string id;
      mailbox_.uidl.appendTo(id, m.uid, 1234);
      uidl += msn + " " + id + "\r\n";
      list += msn + " " + std::to_string(m.size) + "\r\n";
    }
    return uidl + ".\r\n" + list + ".\r\n";
  }

  MailboxOptions mailbox_;
  MapStore store_;
  std::optional<OutcomeSink> sink_;
  std::optional<Pop3Session> session_;
  std::size_t commandsBefore_ = 0;
  const std::vector<Mail> three_ = {{10, 100}, {11, 200}, {12, 300}};
};

using Outcomes = std::vector<SnapshotCacheOutcome>;

TEST_F(SnapshotCacheTest, AWarmPollOfAnUnchangedMailboxSendsNothingAfterSelect) {
  coldPoll(three_, 50);
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Miss});
  ASSERT_EQ(store_.entries.size(), 1u);
  startPoll({3, 1234, 13, 50});
  EXPECT_TRUE(afterSelect().empty());
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing(three_));
}

TEST_F(SnapshotCacheTest, AppendsArePickedUpByChangedSince) {
  coldPoll(three_, 50);
  startPoll({5, 1234, 15, 52});
  ASSERT_EQ(afterSelect(), std::vector<std::string>{
                               "UID FETCH 1:* (UID RFC822.SIZE FLAGS) (CHANGEDSINCE 50)\r\n"});
  upstream(fetchLines({{13, 400}, {14, 500}}, 4));
  tagged("OK Fetch completed");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(afterSelect().size(), 1u);
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {11, 200}, {12, 300}, {13, 400}, {14, 500}}));
  EXPECT_EQ(store_.entries.begin()->second->highestModSeq, 52u);
  EXPECT_EQ(store_.entries.begin()->second->messages.size(), 5u);
}

TEST_F(SnapshotCacheTest, FlagChangesByOtherClientsHideAndShowMessages) {
  coldPoll({{10, 100}, {11, 200, true}, {12, 300}}, 50);
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
  // Another client flags 10 \Deleted and clears the flag of 11.
  startPoll({3, 1234, 13, 53});
  upstream(fetchLines({{10, 100, true}, {11, 200}}));
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing({{11, 200}, {12, 300}}));
}

TEST_F(SnapshotCacheTest, AnExpungeWithoutNewsIsFoundByCountingAndListingTheUids) {
  coldPoll(three_, 50);
  // 11 was expunged by another client: EXISTS went down, HIGHESTMODSEQ up, nothing reported.
  startPoll({2, 1234, 13, 51});
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect(),
            (std::vector<std::string>{"UID FETCH 1:* (UID RFC822.SIZE FLAGS) (CHANGEDSINCE 50)\r\n",
                                      "UID FETCH 1:12 (UID)\r\n"}));
  upstream("* 1 FETCH (UID 10)\r\n* 2 FETCH (UID 12)\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
  // The next poll trusts the corrected entry.
  startPoll({2, 1234, 13, 51});
  EXPECT_TRUE(afterSelect().empty());
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
}

TEST_F(SnapshotCacheTest, AnExpungeWhoseModSeqDidNotMoveIsStillFound) {
  // CONDSTORE alone need not raise HIGHESTMODSEQ on an expunge: the count tells.
  coldPoll(three_, 50);
  startPoll({2, 1234, 13, 50});
  ASSERT_EQ(afterSelect().size(), 1u);
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:12 (UID)\r\n");
  upstream("* 1 FETCH (UID 11)\r\n* 2 FETCH (UID 12)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(listing(), expectedListing({{11, 200}, {12, 300}}));
}

TEST_F(SnapshotCacheTest, AnExpungeAndAnAppendTogether) {
  coldPoll(three_, 50);
  // 10 expunged, 13 appended: EXISTS stays 3, so only the UIDs tell.
  startPoll({3, 1234, 14, 55});
  upstream(fetchLines({{13, 400}}, 3));
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:13 (UID)\r\n");
  upstream("* 1 FETCH (UID 11)\r\n* 2 FETCH (UID 12)\r\n* 3 FETCH (UID 13)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(listing(), expectedListing({{11, 200}, {12, 300}, {13, 400}}));
}

TEST_F(SnapshotCacheTest, AnExpungeAnnouncedDuringTheRefreshIsCounted) {
  coldPoll(three_, 50);
  startPoll({3, 1234, 13, 51});
  upstream("* 2 EXPUNGE\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:12 (UID)\r\n");
  upstream("* 1 FETCH (UID 10)\r\n* 2 FETCH (UID 12)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
}

TEST_F(SnapshotCacheTest, TheStarQuirkAndUnsolicitedFetchesAreFiltered) {
  coldPoll(three_, 50);
  // CHANGEDSINCE reports the unchanged highest message; the UID listing carries a newer UID the
  // range did not ask for (RFC 3501 "*" semantics) and a FETCH without UID.
  startPoll({2, 1234, 14, 51});
  upstream(fetchLines({{12, 300}}, 2));
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:12 (UID)\r\n");
  upstream(
      "* 1 FETCH (UID 10)\r\n* 2 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (UID 12)\r\n"
      "* 3 FETCH (UID 13)\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
}

TEST_F(SnapshotCacheTest, AUidValidityChangeDropsTheEntryAndListsEverything) {
  coldPoll(three_, 50);
  startPoll({2, 999, 3, 60});
  EXPECT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n"});
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Invalidated});
  upstream(
      "* 1 FETCH (UID 1 RFC822.SIZE 7 FLAGS ())\r\n* 2 FETCH (UID 2 RFC822.SIZE 8 FLAGS ())\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(store_.entries.size(), 1u);
  EXPECT_EQ(store_.entries.begin()->second->uidValidity, 999u);
  EXPECT_EQ(store_.entries.begin()->second->messages.size(), 2u);
}

TEST_F(SnapshotCacheTest, NoUidNextStillRefreshesSafely) {
  startPoll({3, 1234, std::nullopt, 50});
  upstream(fetchLines(three_));
  tagged("OK Fetch completed");
  // No UIDNEXT either time: HIGHESTMODSEQ and EXISTS decide; an append is still seen.
  startPoll({4, 1234, std::nullopt, 51});
  ASSERT_EQ(afterSelect().size(), 1u);
  upstream(fetchLines({{13, 400}}, 4));
  tagged("OK Fetch completed");
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {11, 200}, {12, 300}, {13, 400}}));
  startPoll({4, 1234, std::nullopt, 51});
  EXPECT_TRUE(afterSelect().empty());
}

TEST_F(SnapshotCacheTest, NoModSeqRefreshesWithoutChangedSince) {
  startPoll({3, 1234, 13, std::nullopt});
  upstream(fetchLines(three_));
  tagged("OK Fetch completed");
  ASSERT_EQ(store_.entries.size(), 1u);
  EXPECT_EQ(store_.entries.begin()->second->highestModSeq, 0u);
  // NOMODSEQ: the mailbox keeps no mod-sequences, so it is refreshed as without CONDSTORE.
  startPoll({3, 1234, 13, std::nullopt});
  EXPECT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 13:* (UID RFC822.SIZE FLAGS)\r\n"});
  // Mod-sequences again: the entry has none to ask CHANGEDSINCE from, so everything is listed.
  startPoll({3, 1234, 13, 50});
  EXPECT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n"});
}

TEST_F(SnapshotCacheTest, ARefusedCondstoreSelectIsRetriedPlain) {
  coldPoll(three_, 50);
  startPoll({3, 1234, 13, 50}, kCondstoreCaps, "P2 SELECT INBOX (CONDSTORE)\r\n",
            "BAD Unknown SELECT parameter");
  ASSERT_EQ(afterSelect(), std::vector<std::string>{"SELECT INBOX\r\n"});
  upstream("* 3 EXISTS\r\n* OK [UIDVALIDITY 1234] ok\r\n");
  tagged("OK [READ-WRITE] Select completed");
  // No HIGHESTMODSEQ: refreshed the way a server without CONDSTORE is.
  ASSERT_EQ(afterSelect().back(), "UID FETCH 13:* (UID RFC822.SIZE FLAGS)\r\n");
  upstream(fetchLines({{12, 300}}, 3));
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect().back(), "UID SEARCH DELETED\r\n");
  upstream("* SEARCH\r\n");
  tagged("OK Search completed");
  EXPECT_EQ(listing(), expectedListing(three_));
}

TEST_F(SnapshotCacheTest, AReplyTheCacheCannotExplainFallsBackToAFullListing) {
  coldPoll(three_, 50);
  // EXISTS says 5 but only one new message is reported.
  startPoll({5, 1234, 15, 52});
  upstream(fetchLines({{13, 400}}, 4));
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
  std::vector<Mail> all = {{10, 100}, {11, 200}, {12, 300}, {13, 400}, {14, 500}};
  upstream(fetchLines(all));
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Miss});
  EXPECT_EQ(listing(), expectedListing(all));
}

TEST_F(SnapshotCacheTest, ANewMessageWithoutSizeFallsBackToAFullListing) {
  coldPoll(three_, 50);
  startPoll({4, 1234, 14, 52});
  upstream(fetchLines({{13, 400}}, 4, false));
  tagged("OK Fetch completed");
  EXPECT_EQ(afterSelect().back(), "UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
}

TEST_F(SnapshotCacheTest, AUidListingThatNamesUnknownUidsFallsBackToAFullListing) {
  coldPoll(three_, 50);
  startPoll({2, 1234, 13, 51});
  tagged("OK Fetch completed");
  upstream("* 1 FETCH (UID 5)\r\n* 2 FETCH (UID 12)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(afterSelect().back(), "UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
}

TEST_F(SnapshotCacheTest, MaxMessagesBypassesTheCache) {
  mailbox_.maxMessages = 2;
  startPoll({3, 1234, 13, 50});
  EXPECT_EQ(afterSelect(), std::vector<std::string>{"FETCH 2:* (UID RFC822.SIZE FLAGS)\r\n"});
  upstream(fetchLines({{11, 200}, {12, 300}}, 2));
  tagged("OK Fetch completed");
  EXPECT_TRUE(store_.entries.empty());
}

TEST_F(SnapshotCacheTest, AMailboxAboveTheBoundIsNotCached) {
  store_.max = 2;
  coldPoll(three_, 50);
  EXPECT_TRUE(store_.entries.empty());
}

TEST_F(SnapshotCacheTest, ThisSessionsExpungeUpdatesTheEntry) {
  mailbox_.onDelete = DeletePolicy::Expunge;
  coldPoll(three_, 50);
  session_->feedClient("DELE 2\r\nQUIT\r\n");
  answerUidValidityCheck();
  EXPECT_EQ(sink_->lastUpstream().substr(sink_->lastUpstream().find(' ') + 1),
            "UID STORE 11 +FLAGS.SILENT (\\Deleted)\r\n");
  tagged("OK Store completed");
  tagged("OK Expunge completed");
  ASSERT_EQ(store_.entries.size(), 1u);
  EXPECT_EQ(store_.entries.begin()->second->messages,
            (std::vector<CachedMessage>{{100, 10, false}, {300, 12, false}}));
  // The next poll: EXISTS 2, modseq moved by our own store/expunge; nothing reported.
  startPoll({2, 1234, 13, 52});
  tagged("OK Fetch completed");
  EXPECT_EQ(afterSelect().size(), 1u);  // no UID listing needed
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
}

TEST_F(SnapshotCacheTest, ThisSessionsFlagMarksTheEntry) {
  coldPoll(three_, 50);
  session_->feedClient("DELE 1\r\nQUIT\r\n");
  answerUidValidityCheck();
  ASSERT_EQ(sink_->lastUpstream(), "P5 UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n");
  tagged("OK Store completed");
  EXPECT_EQ(store_.entries.begin()->second->messages,
            (std::vector<CachedMessage>{{100, 10, true}, {200, 11, false}, {300, 12, false}}));
}

TEST_F(SnapshotCacheTest, AUidValidityChangeDuringTheSessionDropsTheEntry) {
  coldPoll(three_, 50);
  upstream("* OK [UIDVALIDITY 999] changed\r\n");
  EXPECT_TRUE(store_.entries.empty());
}

TEST_F(SnapshotCacheTest, UsersFoldersAndUpstreamsHaveTheirOwnEntries) {
  EXPECT_NE(snapshotKey("a:993", "bob", "INBOX"), snapshotKey("a:993", "bob", "Sent"));
  EXPECT_NE(snapshotKey("a:993", "bob", "INBOX"), snapshotKey("a:993", "alice", "INBOX"));
  EXPECT_NE(snapshotKey("a:993", "bob", "INBOX"), snapshotKey("b:993", "bob", "INBOX"));
  EXPECT_NE(snapshotKey("a:993", "b", "ob"), snapshotKey("a:993", "bo", "b"));
}

// --- Servers without CONDSTORE ---------------------------------------------------------
// UID FETCH last+1:* for new messages, UID SEARCH DELETED for everyone's \Deleted flags, and,
// only when the counts say something was expunged, the UIDs present.

constexpr std::string_view kSelectPlain = "P2 SELECT INBOX\r\n";
const std::string kNewSince13 = "UID FETCH 13:* (UID RFC822.SIZE FLAGS)\r\n";
const std::string kSearchDeleted = "UID SEARCH DELETED\r\n";

class PlainSnapshotCacheTest : public SnapshotCacheTest {
 protected:
  void coldPlain(const std::vector<Mail>& mails) {
    startPoll({static_cast<std::uint32_t>(mails.size()), 1234, mails.back().uid + 1, std::nullopt},
              kPostLoginCaps, kSelectPlain);
    ASSERT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n"});
    upstream(fetchLines(mails));
    tagged("OK Fetch completed");
    ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
    ASSERT_EQ(store_.entries.size(), 1u);
    EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Miss});
  }
  void warmPlain(std::uint32_t exists, std::uint32_t uidValidity = 1234) {
    startPoll({exists, uidValidity, std::nullopt, std::nullopt}, kPostLoginCaps, kSelectPlain);
  }
  // Answers the SEARCH with `reply` ("* SEARCH ...\r\n").
  void search(std::string_view reply) {
    ASSERT_EQ(afterSelect().back(), kSearchDeleted);
    upstream(reply);
    tagged("OK Search completed");
  }
};

TEST_F(PlainSnapshotCacheTest, AnUnchangedMailboxCostsTwoSmallCommands) {
  coldPlain(three_);
  warmPlain(3);
  ASSERT_EQ(afterSelect(), std::vector<std::string>{kNewSince13});
  // "13:*" names the highest message even though it is below 13 (RFC 3501): filtered.
  upstream(fetchLines({{12, 300}}, 3));
  tagged("OK Fetch completed");
  search("* SEARCH\r\n");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(afterSelect(), (std::vector<std::string>{kNewSince13, kSearchDeleted}));
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing(three_));
}

TEST_F(PlainSnapshotCacheTest, AppendsAreFetchedAboveTheLastCachedUid) {
  coldPlain(three_);
  warmPlain(5);
  upstream(fetchLines({{13, 400}, {14, 500, true}}, 4));
  tagged("OK Fetch completed");
  search("* SEARCH 14\r\n");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(afterSelect().size(), 2u);
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {11, 200}, {12, 300}, {13, 400}}));
  const MailboxSnapshot& entry = *store_.entries.begin()->second;
  EXPECT_EQ(entry.messages, (std::vector<CachedMessage>{{100, 10, false},
                                                        {200, 11, false},
                                                        {300, 12, false},
                                                        {400, 13, false},
                                                        {500, 14, true}}));
  // The next poll asks above the new last UID.
  warmPlain(5);
  EXPECT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 15:* (UID RFC822.SIZE FLAGS)\r\n"});
}

TEST_F(PlainSnapshotCacheTest, AnotherClientsDeletedFlagIsSetAndCleared) {
  coldPlain({{10, 100}, {11, 200, true}, {12, 300}});
  EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
  // Another client flags 10 \Deleted and clears the flag of 11; UID FETCH 13:* cannot see it.
  warmPlain(3);
  upstream(fetchLines({{12, 300}}, 3));
  tagged("OK Fetch completed");
  search("* SEARCH 10\r\n");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing({{11, 200}, {12, 300}}));
  // And clears it again.
  warmPlain(3);
  upstream(fetchLines({{12, 300}}, 3));
  tagged("OK Fetch completed");
  search("* SEARCH\r\n");
  EXPECT_EQ(listing(), expectedListing(three_));
}

TEST_F(PlainSnapshotCacheTest, ExpungesAreFoundByCountingAndListingTheUids) {
  coldPlain(three_);
  // 11 expunged by another client, 12 flagged.
  warmPlain(2);
  upstream(fetchLines({{12, 300}}, 2));
  tagged("OK Fetch completed");
  search("* SEARCH 12\r\n");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:12 (UID)\r\n");
  upstream("* 1 FETCH (UID 10)\r\n* 2 FETCH (UID 12)\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(afterSelect().size(), 3u);
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Hit});
  EXPECT_EQ(listing(), expectedListing({{10, 100}}));
  EXPECT_EQ(store_.entries.begin()->second->messages,
            (std::vector<CachedMessage>{{100, 10, false}, {300, 12, true}}));
}

TEST_F(PlainSnapshotCacheTest, AnExpungeAndAnAppendTogether) {
  coldPlain(three_);
  warmPlain(3);  // 10 expunged, 13 appended
  upstream(fetchLines({{13, 400}}, 3));
  tagged("OK Fetch completed");
  search("* SEARCH\r\n");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:13 (UID)\r\n");
  upstream("* 1 FETCH (UID 11)\r\n* 2 FETCH (UID 12)\r\n* 3 FETCH (UID 13)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(listing(), expectedListing({{11, 200}, {12, 300}, {13, 400}}));
}

TEST_F(PlainSnapshotCacheTest, AUidValidityChangeDropsTheEntryAndListsEverything) {
  coldPlain(three_);
  warmPlain(2, 999);
  EXPECT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n"});
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Invalidated});
  upstream(
      "* 1 FETCH (UID 1 RFC822.SIZE 7 FLAGS ())\r\n* 2 FETCH (UID 2 RFC822.SIZE 8 FLAGS ())\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(store_.entries.size(), 1u);
  EXPECT_EQ(store_.entries.begin()->second->uidValidity, 999u);
}

// Each reply the refresh cannot trust ends in the full listing, served as without a cache.
TEST_F(PlainSnapshotCacheTest, SearchRepliesItCannotUseFallBackToAFullListing) {
  const std::string full = "UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n";
  struct Case {
    std::string name;
    std::string reply;  // untagged data, then the tagged status
    std::string status;
  };
  const Case cases[] = {
      {"more UIDs than EXISTS", "* SEARCH 10 11 12 12\r\n", "OK Search completed"},
      {"more UIDs than EXISTS, split", "* SEARCH 10 11\r\n* SEARCH 12 10\r\n",
       "OK Search completed"},
      {"a UID the cache does not know", "* SEARCH 5\r\n", "OK Search completed"},
      {"no SEARCH at all", "", "OK Search completed"},
      {"a SEARCH the parser cannot read", "* SEARCH 10 (MODSEQ 4)\r\n", "OK Search completed"},
      {"a refused SEARCH", "", "BAD Unknown command"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    store_.entries.clear();
    coldPlain(three_);
    warmPlain(3);
    upstream(fetchLines({{12, 300}}, 3));
    tagged("OK Fetch completed");
    ASSERT_EQ(afterSelect().back(), kSearchDeleted);
    upstream(c.reply);
    tagged(c.status);
    ASSERT_EQ(afterSelect().back(), full);
    EXPECT_EQ(afterSelect().size(), 3u);
    upstream(fetchLines({{10, 100}, {11, 200, true}, {12, 300}}));
    tagged("OK Fetch completed");
    ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
    EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Miss});
    EXPECT_EQ(listing(), expectedListing({{10, 100}, {12, 300}}));
    EXPECT_EQ(store_.entries.begin()->second->messages[1].deleted, true);
  }
}

TEST_F(PlainSnapshotCacheTest, NewMessagesThatDoNotAddUpFallBackToAFullListing) {
  coldPlain(three_);
  warmPlain(5);  // only one of two new messages reported
  upstream(fetchLines({{13, 400}}, 4));
  tagged("OK Fetch completed");
  EXPECT_EQ(afterSelect().back(), "UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
  EXPECT_EQ(afterSelect().size(), 2u);
}

TEST_F(PlainSnapshotCacheTest, AnExpungeRaceDuringTheSearchFallsBackToAFullListing) {
  coldPlain(three_);
  warmPlain(3);
  upstream(fetchLines({{12, 300}}, 3));
  tagged("OK Fetch completed");
  // The UID listing names a UID the cache does not hold.
  upstream("* 2 EXPUNGE\r\n* SEARCH\r\n");
  tagged("OK Search completed");
  ASSERT_EQ(afterSelect().back(), "UID FETCH 1:12 (UID)\r\n");
  upstream("* 1 FETCH (UID 10)\r\n* 2 FETCH (UID 7)\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(afterSelect().back(), "UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
}

TEST_F(PlainSnapshotCacheTest, AManyDeletedMailboxIsListedInFullRatherThanRiskALongSearch) {
  // 2500 \Deleted messages with six-digit UIDs would make a SEARCH reply of 17500 bytes.
  std::vector<Mail> many;
  for (std::uint32_t i = 0; i < 2500; ++i) many.push_back({100000 + i, 10, true});
  many.push_back({200000, 20});
  store_.max = 10000;
  coldPlain(many);
  warmPlain(static_cast<std::uint32_t>(many.size()));
  EXPECT_EQ(afterSelect(), std::vector<std::string>{"UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n"});
  EXPECT_EQ(sink_->outcomes, Outcomes{SnapshotCacheOutcome::Miss});
}

TEST_F(PlainSnapshotCacheTest, ALostConnectionDuringTheSearchDropsTheEntry) {
  coldPlain(three_);
  warmPlain(3);
  upstream(fetchLines({{12, 300}}, 3));
  tagged("OK Fetch completed");
  ASSERT_EQ(afterSelect().back(), kSearchDeleted);
  session_->onUpstreamClosed("connection reset");
  EXPECT_TRUE(store_.entries.empty());
}

// --- The pure pieces, table-driven ------------------------------------------------------

TEST(SnapshotCachePlan, DecidesFromSelect) {
  MailboxSnapshot s{7, 50, 13, {{1, 10, false}, {1, 11, false}, {1, 12, true}}};
  struct Case {
    SelectedState now;
    RefreshPlan plan;
  };
  const Case cases[] = {
      {{7, 3, 50, 13}, RefreshPlan::Current},
      {{7, 3, 50, std::nullopt}, RefreshPlan::Current},
      {{7, 3, 51, 13}, RefreshPlan::Changes},
      {{7, 4, 50, 13}, RefreshPlan::Changes},
      {{7, 2, 50, 13}, RefreshPlan::Changes},
      {{7, 3, 50, 14}, RefreshPlan::Changes},
      {{8, 3, 50, 13}, RefreshPlan::Invalidated},
      {{7, 3, std::nullopt, 13}, RefreshPlan::NewSince},
      {{8, 3, std::nullopt, 13}, RefreshPlan::Invalidated},
      {{7, 3, 49, 13}, RefreshPlan::Full},
  };
  for (const Case& c : cases) EXPECT_EQ(planRefresh(&s, c.now), c.plan);
  EXPECT_EQ(planRefresh(nullptr, {7, 3, 50, 13}), RefreshPlan::Full);
  EXPECT_EQ(planRefresh(nullptr, {7, 3, std::nullopt, 13}), RefreshPlan::Full);
  // An entry taken without mod-sequences cannot be refreshed by CHANGEDSINCE.
  MailboxSnapshot plain{7, 0, 13, {{1, 10, false}}};
  EXPECT_EQ(planRefresh(&plain, {7, 1, 50, 13}), RefreshPlan::Full);
  EXPECT_EQ(planRefresh(&plain, {7, 1, std::nullopt, 13}), RefreshPlan::NewSince);
}

TEST(SnapshotCachePlan, AppliesTheDeletedSet) {
  std::vector<CachedMessage> m = {{1, 10, true}, {2, 11, false}, {3, 12, false}};
  EXPECT_TRUE(applyDeleted(m, {12, 11, 12}));
  EXPECT_EQ(m, (std::vector<CachedMessage>{{1, 10, false}, {2, 11, true}, {3, 12, true}}));
  EXPECT_TRUE(applyDeleted(m, {}));
  EXPECT_EQ(m, (std::vector<CachedMessage>{{1, 10, false}, {2, 11, false}, {3, 12, false}}));
  EXPECT_FALSE(applyDeleted(m, {9}));
  EXPECT_FALSE(applyDeleted(m, {13}));
  EXPECT_FALSE(applyDeleted(m, {10, 11, 12, 13}));
}

TEST(SnapshotCachePlan, AppliesChanges) {
  std::vector<CachedMessage> base = {{1, 10, false}, {2, 11, false}, {3, 12, true}};
  auto merged = applyChanges(
      base,
      {{14, 5, false}, {12, std::nullopt, false}, {10, 99, true}, {13, 4, false}, {14, 5, true}});
  ASSERT_TRUE(merged);
  // Sizes of known messages stay; flags and new messages are taken; the last report wins.
  EXPECT_EQ(*merged,
            (std::vector<CachedMessage>{
                {1, 10, true}, {2, 11, false}, {3, 12, false}, {4, 13, false}, {5, 14, true}}));
  EXPECT_FALSE(applyChanges(base, {{13, std::nullopt, false}}));
  EXPECT_FALSE(applyChanges(base, {{13, 4, std::nullopt}}));
  EXPECT_EQ(*applyChanges(base, {{11, 2, std::nullopt}}), base);
}

TEST(SnapshotCachePlan, KeepsThePresent) {
  std::vector<CachedMessage> m = {{1, 10, false}, {2, 11, false}, {3, 12, true}};
  EXPECT_TRUE(keepPresent(m, {12, 10, 12}));
  EXPECT_EQ(m, (std::vector<CachedMessage>{{1, 10, false}, {3, 12, true}}));
  std::vector<CachedMessage> n = {{1, 10, false}, {2, 11, false}};
  EXPECT_FALSE(keepPresent(n, {9, 10}));
  std::vector<CachedMessage> o = {{1, 10, false}, {2, 11, false}};
  EXPECT_FALSE(keepPresent(o, {10, 12}));
}

}  // namespace
}  // namespace popbridge::protocol::session_test
