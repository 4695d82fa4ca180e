// Stable UIDLs in the session, against a scripted upstream and an in-memory UIDL map: which
// commands go upstream, what the client sees, what the map keeps, and that a map that fails or
// answers late never makes QUIT delete anything.

#include <functional>
#include <map>
#include <utility>

#include "protocol/uidl/map_record.h"
#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

constexpr std::string_view kFactsFetch =
    "UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)])\r\n";

// The map in memory. Answers at once, or (deferred) when the test says so, as Redis would.
class MemoryMap : public UidlMapStore {
 public:
  void getUidls(const Mailbox& mailbox, std::vector<UidKey> keys, EntriesCallback done) override {
    ++gets;
    lastMailbox = mailbox;
    answer([this, keys = std::move(keys), done = std::move(done)] {
      if (failReads) return done(Status::Unavailable, {});
      std::vector<UidlRecord> out;
      for (UidKey key : keys) {
        auto it = entries.find({key.uidValidity, key.uid});
        if (it != entries.end()) out.push_back(it->second);
      }
      done(Status::Ok, std::move(out));
    });
  }
  void loadUidls(const Mailbox& mailbox, EntriesCallback done) override {
    ++loads;
    answer([this, done = std::move(done)] {
      if (failReads) return done(Status::Unavailable, {});
      std::vector<UidlRecord> out;
      for (const auto& [key, record] : entries) out.push_back(record);
      done(Status::Ok, std::move(out));
    });
  }
  void putUidls(const Mailbox& mailbox, std::vector<UidlRecord> records,
                DoneCallback done) override {
    ++puts;
    answer([this, records = std::move(records), done = std::move(done)] {
      if (failWrites) return done(Status::Unavailable);
      for (const UidlRecord& r : records) entries[{r.key.uidValidity, r.key.uid}] = r;
      done(Status::Ok);
    });
  }
  void eraseUidls(const Mailbox& mailbox, std::vector<UidKey> keys, DoneCallback done) override {
    ++erases;
    answer([this, keys = std::move(keys), done = std::move(done)] {
      for (UidKey key : keys) entries.erase({key.uidValidity, key.uid});
      done(Status::Ok);
    });
  }
  // Runs the oldest deferred answer.
  void flushOne() {
    ASSERT_FALSE(pending.empty());
    auto next = std::move(pending.front());
    pending.erase(pending.begin());
    next();
  }
  // Runs the deferred answers.
  void flush() {
    while (!pending.empty()) {
      auto next = std::move(pending.front());
      pending.erase(pending.begin());
      next();
    }
  }

  std::map<std::pair<std::uint32_t, std::uint32_t>, UidlRecord> entries;
  bool deferred = false;
  bool failReads = false;
  bool failWrites = false;
  int gets = 0, loads = 0, puts = 0, erases = 0;
  Mailbox lastMailbox;
  std::vector<std::function<void()>> pending;

 private:
  void answer(std::function<void()> reply) {
    if (deferred) {
      pending.push_back(std::move(reply));
    } else {
      reply();
    }
  }
};

class MapSink : public RecordingSink {
 public:
  void noteUidlMapUnavailable() override { ++mapUnavailable; }
  int mapUnavailable = 0;
};

struct Mail {
  std::uint32_t uid;
  std::string header;  // the HEADER.FIELDS block the server returns
  std::uint64_t size;
};

std::string headerOf(int n, const std::string& messageId) {
  return "From: sender" + std::to_string(n) + "@example.org\r\nTo: alice@example.org\r\n" +
         "Subject: scan " + std::to_string(n) + "\r\nDate: Tue, 1 Dec 2026 10:0" +
         std::to_string(n) + ":00 +0000\r\nMessage-ID: <" + messageId + ">\r\n\r\n";
}

class StableUidlTest : public ::testing::Test {
 protected:
  // Logs in and lists `mails` under `uidValidity`; stops where the first stable-UIDL step is
  // sent (or at TRANSACTION).
  void startSession(const std::vector<Mail>& mails, std::uint32_t uidValidity,
                    std::string_view caps = kPostLoginCaps) {
    sink_.emplace();
    SessionOptions options;
    options.allowPlaintextAuth = true;
    options.mailbox.uidl = *UidlFormat::parse(format_, error_);
    options.mailbox.onDelete = DeletePolicy::Flag;
    options.uidlMap = withMap_ ? &map_ : nullptr;
    session_.emplace(options, *sink_);
    sink_->session = &*session_;
    session_->start();
    session_->feedClient("USER Alice\r\nPASS pw\r\n");
    session_->onUpstreamConnected();
    upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready.\r\n");
    tagged("OK [CAPABILITY " + std::string(caps) + "] Logged in");
    upstream("* " + std::to_string(mails.size()) + " EXISTS\r\n* OK [UIDVALIDITY " +
             std::to_string(uidValidity) + "] ok\r\n");
    tagged("OK [READ-WRITE] Select completed");
    std::string listing;
    std::uint32_t seq = 1;
    for (const Mail& m : mails) {
      listing += "* " + std::to_string(seq++) + " FETCH (UID " + std::to_string(m.uid) +
                 " RFC822.SIZE " + std::to_string(m.size) + " FLAGS ())\r\n";
    }
    upstream(listing);
    tagged("OK Fetch completed");
  }
  // Answers the facts FETCH for `mails` (UID after the body, as a server may order it).
  void answerFacts(const std::vector<Mail>& mails) {
    std::string reply;
    std::uint32_t seq = 1;
    for (const Mail& m : mails) {
      reply += "* " + std::to_string(seq++) + " FETCH (RFC822.SIZE " + std::to_string(m.size) +
               " BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO SUBJECT)] {" +
               std::to_string(m.header.size()) + "}\r\n" + m.header + " UID " +
               std::to_string(m.uid) + ")\r\n";
    }
    upstream(reply);
    tagged("OK Fetch completed");
  }
  std::vector<std::string> uidls() {
    sink_->takeClient();
    session_->feedClient("UIDL\r\n");
    std::string text = sink_->takeClient();
    std::vector<std::string> out;
    std::size_t pos = text.find("\r\n") + 2;
    while (pos < text.size() && text.compare(pos, 3, ".\r\n") != 0) {
      std::size_t end = text.find("\r\n", pos);
      std::string line = text.substr(pos, end - pos);
      out.push_back(line.substr(line.find(' ') + 1));
      pos = end + 2;
    }
    return out;
  }
  void upstream(std::string_view bytes) { session_->feedUpstream(bytes); }
  void tagged(std::string_view rest) {
    upstream(sink_->lastTag() + " " + std::string(rest) + "\r\n");
  }
  std::string lastCommand() const {
    const std::string c = sink_->lastUpstream();
    return c.substr(c.find(' ') + 1);
  }

  std::string format_ = "%{stable}";
  std::string error_;
  bool withMap_ = true;
  MemoryMap map_;
  std::optional<MapSink> sink_;
  std::optional<Pop3Session> session_;
};

const std::vector<Mail> kMails = {{10, headerOf(1, "a1@example.org"), 1000},
                                  {11, headerOf(2, "a2@example.org"), 2000},
                                  {15, headerOf(3, "a3@example.org"), 3000}};

TEST_F(StableUidlTest, FirstSightGivesDovecotsDefaultAndKeepsTheFacts) {
  startSession(kMails, 7);
  EXPECT_EQ(map_.gets, 1);
  EXPECT_EQ(map_.loads, 1);
  EXPECT_EQ(map_.lastMailbox.account, "alice") << "logins compare case-insensitively";
  EXPECT_EQ(map_.lastMailbox.folder, "INBOX");
  ASSERT_EQ(lastCommand(), "UID FETCH 10:11,15 (" + std::string(kFactsFetch));
  answerFacts(kMails);
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(uidls(),
            (std::vector<std::string>{"0000000a00000007", "0000000b00000007", "0000000f00000007"}));
  ASSERT_EQ(map_.entries.size(), 3u);
  const UidlRecord& first = map_.entries.at({7, 10});
  EXPECT_EQ(first.uidl, "0000000a00000007");
  EXPECT_EQ(first.messageId, "a1@example.org");
  EXPECT_EQ(first.size, 1000u);
  EXPECT_EQ(first.headerHash.size(), 64u);
}

TEST_F(StableUidlTest, AKnownMailboxCostsOneLookupAndNoFetch) {
  startSession(kMails, 7);
  answerFacts(kMails);
  startSession(kMails, 7);
  EXPECT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(map_.gets, 2);
  EXPECT_EQ(map_.loads, 1) << "nothing was missing";
  EXPECT_EQ(lastCommand(), "UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n") << "no facts FETCH";
  EXPECT_EQ(uidls()[2], "0000000f00000007");
}

TEST_F(StableUidlTest, AfterAUidValidityChangeMatchedMessagesKeepTheirUidls) {
  startSession(kMails, 7);
  answerFacts(kMails);
  // The server renumbered everything under UIDVALIDITY 9, in another order, and a new message
  // arrived.
  std::vector<Mail> renumbered = {{1, kMails[2].header, 3000},
                                  {2, kMails[0].header, 1000},
                                  {3, kMails[1].header, 2000},
                                  {4, headerOf(4, "new@example.org"), 4000}};
  startSession(renumbered, 9);
  ASSERT_EQ(lastCommand(), "UID FETCH 1:4 (" + std::string(kFactsFetch));
  answerFacts(renumbered);
  EXPECT_EQ(uidls(), (std::vector<std::string>{"0000000f00000007", "0000000a00000007",
                                               "0000000b00000007", "0000000400000009"}));
  // The old UIDVALIDITY's entries went once the new ones were kept.
  EXPECT_EQ(map_.entries.size(), 4u);
  EXPECT_FALSE(map_.entries.contains({7, 10}));
  EXPECT_EQ(map_.entries.at({9, 1}).uidl, "0000000f00000007");
  EXPECT_NE(sink_->logs.find("3 of 4 new messages keep an earlier UIDL"), std::string::npos)
      << sink_->logs;
}

TEST_F(StableUidlTest, ASizeThatChangedIsNoMatch) {
  startSession(kMails, 7);
  answerFacts(kMails);
  std::vector<Mail> renumbered = {{1, kMails[0].header, 1001}};
  startSession(renumbered, 9);
  answerFacts(renumbered);
  EXPECT_EQ(uidls(), (std::vector<std::string>{"0000000100000009"}));
}

TEST_F(StableUidlTest, AnImportIsMatchedOnItsFirstSession) {
  std::string error;
  auto facts = uidl::parseHeaderFacts(kMails[1].header, error);
  ASSERT_TRUE(facts);
  facts->size = 2000;
  map_.entries[{uidl::kImportUidValidity, 1}] =
      uidl::toRecord({uidl::kImportUidValidity, 1}, "UW-IMAP-0042", *facts);
  startSession(kMails, 7);
  answerFacts(kMails);
  EXPECT_EQ(uidls(),
            (std::vector<std::string>{"0000000a00000007", "UW-IMAP-0042", "0000000f00000007"}));
  EXPECT_FALSE(map_.entries.contains({0, 1})) << "the import is used up";
}

TEST_F(StableUidlTest, AnUnreadableMapServesSeedUidlsAndQuitDeletesNothing) {
  map_.failReads = true;
  startSession(kMails, 7);
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_->mapUnavailable, 1);
  EXPECT_EQ(uidls()[0], "0000000a00000007");
  session_->feedClient("DELE 1\r\n");
  const std::size_t commands = sink_->upstreamCommands.size();
  sink_->takeClient();
  session_->feedClient("QUIT\r\n");
  EXPECT_EQ(sink_->takeClient(),
            "-ERR [SYS/TEMP] Message ids could not be confirmed; no messages were deleted.\r\n");
  for (std::size_t i = commands; i < sink_->upstreamCommands.size(); ++i) {
    EXPECT_EQ(sink_->upstreamCommands[i].find("STORE"), std::string::npos);
  }
}

TEST_F(StableUidlTest, AnUnwritableMapServesTheUidlsButQuitDeletesNothing) {
  map_.failWrites = true;
  startSession(kMails, 7);
  answerFacts(kMails);
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_->mapUnavailable, 1);
  session_->feedClient("DELE 2\r\n");
  sink_->takeClient();
  session_->feedClient("QUIT\r\n");
  EXPECT_EQ(sink_->takeClient().rfind("-ERR [SYS/TEMP]", 0), 0u);
}

TEST_F(StableUidlTest, WithoutAMapTheSeedIsServed) {
  withMap_ = false;
  startSession(kMails, 7);
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(uidls()[1], "0000000b00000007");
  EXPECT_EQ(sink_->mapUnavailable, 0);
}

TEST_F(StableUidlTest, ALateAnswerAfterTheClientLeftIsIgnored) {
  map_.deferred = true;
  startSession(kMails, 7);
  EXPECT_EQ(session_->state(), Pop3Session::State::LoggingIn);
  ASSERT_EQ(map_.pending.size(), 1u);
  session_.reset();  // the client hung up while the map was asked
  map_.flush();      // must not touch the session
  EXPECT_EQ(map_.loads, 0);
}

TEST_F(StableUidlTest, DeferredAnswersOpenTheSession) {
  map_.deferred = true;
  startSession(kMails, 7);
  map_.flush();  // get
  map_.flush();  // load
  ASSERT_EQ(lastCommand(), "UID FETCH 10:11,15 (" + std::string(kFactsFetch));
  answerFacts(kMails);
  EXPECT_EQ(session_->state(), Pop3Session::State::LoggingIn) << "the put is still out";
  map_.flush();
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(map_.entries.size(), 3u);
}

TEST_F(StableUidlTest, TheMapsUidlCanBeWrapped) {
  format_ = "pb-%{stable}";
  startSession(kMails, 7);
  answerFacts(kMails);
  EXPECT_EQ(uidls()[0], "pb-0000000a00000007");
}

TEST_F(StableUidlTest, EmailIdIsTheStableIdWhereOffered) {
  startSession(kMails, 7, "IMAP4rev1 UIDPLUS MOVE OBJECTID");
  ASSERT_EQ(lastCommand(), "UID FETCH 10:11,15 (UID EMAILID)\r\n");
  upstream(
      "* 1 FETCH (UID 10 EMAILID (M6d99ac3275bb4e))\r\n"
      "* 2 FETCH (EMAILID (Mb5a0c5ae2f1f5b) UID 11)\r\n"
      "* 3 FETCH (UID 15)\r\n");  // a message without one falls back to the map
  tagged("OK Fetch completed");
  EXPECT_EQ(map_.gets, 1);
  ASSERT_EQ(lastCommand(), "UID FETCH 15 (" + std::string(kFactsFetch));
  answerFacts({kMails[2]});
  EXPECT_EQ(uidls(),
            (std::vector<std::string>{"M6d99ac3275bb4e", "Mb5a0c5ae2f1f5b", "0000000f00000007"}));
  EXPECT_EQ(map_.entries.size(), 1u) << "only the message without EMAILID is in the map";
}

TEST_F(StableUidlTest, GmailsMessageIdNeedsNoMap) {
  startSession(kMails, 7, "IMAP4rev1 UIDPLUS MOVE X-GM-EXT-1");
  ASSERT_EQ(lastCommand(), "UID FETCH 10:11,15 (UID X-GM-MSGID)\r\n");
  upstream(
      "* 1 FETCH (UID 10 X-GM-MSGID 1278455344230334865)\r\n"
      "* 2 FETCH (UID 11 X-GM-MSGID 1278455344230334866)\r\n"
      "* 3 FETCH (UID 15 X-GM-MSGID 18446744073709551615)\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(map_.gets, 0);
  EXPECT_EQ(uidls(), (std::vector<std::string>{"1278455344230334865", "1278455344230334866",
                                               "18446744073709551615"}));
}

TEST_F(StableUidlTest, EmailIdFieldWithoutObjectIdFallsBackToTheDefault) {
  format_ = "%{emailid}";
  startSession(kMails, 7);
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(uidls()[0], "0000000a00000007");
  EXPECT_NE(sink_->logs.find("does not offer OBJECTID"), std::string::npos);
  EXPECT_EQ(map_.gets, 0) << "%{emailid} alone never uses the map";
}

TEST_F(StableUidlTest, ARefusedIdFetchRefusesTheLoginRatherThanServeOtherUidls) {
  startSession(kMails, 7, "IMAP4rev1 UIDPLUS MOVE OBJECTID");
  upstream("* 1 FETCH (UID 10 EMAILID (M1))\r\n");
  tagged("NO [SERVERBUG] no ids today");
  EXPECT_EQ(map_.gets, 0);
  EXPECT_NE(sink_->takeClient().find("-ERR [SYS/TEMP] Cannot read message ids, try again later."),
            std::string::npos);
  EXPECT_NE(session_->state(), Pop3Session::State::Transaction);
}

TEST_F(StableUidlTest, ARepeatedServerIdIsServedOnce) {
  startSession(kMails, 7, "IMAP4rev1 UIDPLUS MOVE OBJECTID");
  upstream(
      "* 1 FETCH (UID 10 EMAILID (Msame))\r\n"
      "* 2 FETCH (UID 11 EMAILID (Msame))\r\n"
      "* 3 FETCH (UID 15 EMAILID (M15))\r\n");
  tagged("OK Fetch completed");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(uidls(), (std::vector<std::string>{"Msame", "0000000b00000007", "M15"}));
}

TEST_F(StableUidlTest, AFirstSightFactsFailureMapsWhatCame) {
  startSession(kMails, 7);
  upstream(
      "* 1 FETCH (UID 10 RFC822.SIZE 1000 BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM TO "
      "SUBJECT)] {" +
      std::to_string(kMails[0].header.size()) + "}\r\n" + kMails[0].header + ")\r\n");
  tagged("NO [UNAVAILABLE] message 2 is broken");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_->mapUnavailable, 0);
  EXPECT_EQ(uidls()[1], "0000000b00000007");
  EXPECT_EQ(map_.entries.size(), 1u) << "only the message whose facts came";
}

TEST_F(StableUidlTest, AFactsFailureWhileMatchingDeletesNothing) {
  startSession(kMails, 7);
  answerFacts(kMails);
  startSession({{1, kMails[0].header, 1000}}, 9);
  tagged("NO [UNAVAILABLE] try later");
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_->mapUnavailable, 1);
  EXPECT_TRUE(map_.entries.contains({7, 10})) << "nothing was consumed";
}

TEST_F(StableUidlTest, AnEntryAnotherSessionWroteMeanwhileStands) {
  map_.deferred = true;
  startSession(kMails, 7);
  map_.flushOne();  // get: nothing
  // Another session mapped UID 11 between this one's lookups.
  map_.entries[{7, 11}] = uidl::toRecord({7, 11}, "other-session", {});
  map_.flushOne();  // load
  answerFacts(kMails);
  map_.flush();
  ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(uidls()[1], "other-session");
  EXPECT_EQ(map_.entries.at({7, 11}).uidl, "other-session");
}

}  // namespace
}  // namespace popbridge::protocol::session_test
