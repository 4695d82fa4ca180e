// Whole POP3 sessions against scripted IMAP server bytes: checks the exact
// IMAP commands the session emits and what the client sees.

#include "protocol/bridge/session.h"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "protocol/base64.h"

namespace popbridge::protocol {
namespace {

constexpr std::string_view kCaps =
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN";
constexpr std::string_view kPostLoginCaps =
    "IMAP4rev1 SASL-IR LITERAL+ UIDPLUS MOVE NAMESPACE CHILDREN";

class RecordingSink : public SessionSink {
 public:
  void sendToClient(std::string_view bytes) override { client += bytes; }
  void sendToUpstream(std::string_view bytes) override {
    upstream += bytes;
    upstreamCommands.emplace_back(bytes);
  }
  void resolveCredentials(std::string_view user, std::string_view password) override {
    resolvedUser = user;
    resolvedPassword = password;
    ++resolveCalls;
    if (autoResolve && session) {
      UpstreamCredentials credentials{std::string(user), std::string(password), std::nullopt};
      if (rejectLocal) {
        session->onCredentials(std::nullopt);
      } else {
        session->onCredentials(std::move(credentials));
      }
    }
  }
  void connectUpstream() override { ++connects; }
  void startUpstreamTls() override { ++upstreamTls; }
  void startClientTls() override { ++clientTls; }
  void startAuthDelay() override { ++delays; }
  void closeUpstream() override { ++upstreamCloses; }
  void closeClient(std::string_view reason) override {
    clientClosed = true;
    closeReason = reason;
  }
  void log(LogSeverity severity, std::string_view message) override {
    logs += std::string(message) + "\n";
  }
  bool clientCongested() const override { return congested; }

  // The client bytes since the last call.
  std::string takeClient() {
    std::string out = client.substr(clientRead);
    clientRead = client.size();
    return out;
  }
  std::string lastUpstream() const {
    return upstreamCommands.empty() ? std::string() : upstreamCommands.back();
  }
  std::string lastTag() const {
    std::string last = lastUpstream();
    return last.substr(0, last.find(' '));
  }

  Pop3Session* session = nullptr;
  bool autoResolve = true;
  bool rejectLocal = false;
  std::string client;
  std::size_t clientRead = 0;
  std::string upstream;
  std::vector<std::string> upstreamCommands;
  std::string resolvedUser, resolvedPassword;
  int resolveCalls = 0, connects = 0, upstreamTls = 0, clientTls = 0, delays = 0;
  int upstreamCloses = 0;
  bool clientClosed = false;
  bool congested = false;
  std::string closeReason;
  std::string logs;
};

struct Message {
  std::uint32_t uid;
  std::string body;
  bool deleted = false;
};

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.allowPlaintextAuth = true;
    options_.stlsAvailable = true;
    messages_ = {{10, "Subject: one\r\n\r\nfirst\r\n"},
                 {11, "Subject: two\r\n\r\n.dot line\r\nsecond\r\n"},
                 {12, "Subject: gone\r\n\r\ndeleted elsewhere\r\n", true},
                 {15, "Subject: three\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n"}};
  }

  void create() {
    session_.emplace(options_, sink_);
    sink_.session = &*session_;
    session_->start();
  }

  void client(std::string_view bytes) {
    std::size_t consumed = session_->feedClient(bytes);
    pending_ = std::string(bytes.substr(consumed));
  }
  void upstream(std::string_view bytes) { session_->feedUpstream(bytes); }
  // Answers the last upstream command with a tagged reply.
  void tagged(std::string_view rest) {
    upstream(sink_.lastTag() + " " + std::string(rest) + "\r\n");
  }

  std::string snapshotFetch() const {
    std::string out;
    std::uint32_t seq = 1;
    for (const auto& m : messages_) {
      out += "* " + std::to_string(seq++) + " FETCH (UID " + std::to_string(m.uid) +
             " RFC822.SIZE " + std::to_string(m.body.size()) + " FLAGS (" +
             (m.deleted ? "\\Deleted \\Seen" : "\\Seen") + "))\r\n";
    }
    return out;
  }

  // Drives USER/PASS through the upstream login to TRANSACTION.
  void login(std::string_view postLoginCaps = kPostLoginCaps,
             std::string_view uidValidity = "1234") {
    create();
    EXPECT_EQ(sink_.takeClient(), "+OK popbridge ready.\r\n");
    client("USER alice\r\n");
    EXPECT_EQ(sink_.takeClient(), "+OK Send your password.\r\n");
    client("PASS s3cret pass\r\n");
    ASSERT_EQ(sink_.resolvedUser, "alice");
    ASSERT_EQ(sink_.resolvedPassword, "s3cret pass");
    ASSERT_EQ(sink_.connects, 1);
    session_->onUpstreamConnected();
    upstream("* OK [CAPABILITY " + std::string(kCaps) + "] Dovecot ready.\r\n");
    ASSERT_EQ(
        sink_.lastUpstream(),
        "P1 AUTHENTICATE PLAIN " + base64Encode(std::string("\0alice\0s3cret pass", 18)) + "\r\n");
    tagged("OK [CAPABILITY " + std::string(postLoginCaps) + "] Logged in");
    ASSERT_EQ(sink_.lastUpstream(), expectedSelect_);
    upstream("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* " +
             std::to_string(messages_.size()) + " EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY " +
             std::string(uidValidity) + "] UIDs valid\r\n* OK [UIDNEXT 16] Predicted next UID\r\n");
    tagged("OK [READ-WRITE] Select completed");
    ASSERT_EQ(sink_.lastUpstream(), "P3 UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
    upstream(snapshotFetch());
    tagged("OK Fetch completed");
    ASSERT_EQ(sink_.takeClient(), "+OK Logged in.\r\n");
    ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  }

  // Serves the body of `uid` for the last UID FETCH.
  void serveBody(const std::string& body, std::uint32_t seq, std::uint32_t uid,
                 std::string_view section = "BODY[]") {
    upstream("* " + std::to_string(seq) + " FETCH (UID " + std::to_string(uid) + " " +
             std::string(section) + " {" + std::to_string(body.size()) + "}\r\n" + body + ")\r\n");
    tagged("OK Fetch completed");
  }

  std::size_t upstreamCount() const { return sink_.upstreamCommands.size(); }

  SessionOptions options_;
  RecordingSink sink_;
  std::optional<Pop3Session> session_;
  std::vector<Message> messages_;
  std::string pending_;
  std::string expectedSelect_ = "P2 SELECT INBOX\r\n";
};

TEST_F(SessionTest, CapaBeforeLoginOffersUserAndStls) {
  create();
  sink_.takeClient();
  client("CAPA\r\n");
  std::string capa = sink_.takeClient();
  EXPECT_NE(capa.find("\r\nUSER\r\n"), std::string::npos);
  EXPECT_NE(capa.find("\r\nSASL PLAIN LOGIN\r\n"), std::string::npos);
  EXPECT_NE(capa.find("\r\nSTLS\r\n"), std::string::npos);
  EXPECT_NE(capa.find("\r\nUIDL\r\n"), std::string::npos);
  EXPECT_NE(capa.find("\r\nPIPELINING\r\n"), std::string::npos);
  EXPECT_EQ(capa.rfind("\r\n.\r\n"), capa.size() - 5);
}

TEST_F(SessionTest, PlaintextAuthRefusedBeforeStlsWhenPolicySaysSo) {
  options_.allowPlaintextAuth = false;
  create();
  sink_.takeClient();
  client("CAPA\r\n");
  std::string capa = sink_.takeClient();
  EXPECT_EQ(capa.find("USER"), std::string::npos);
  EXPECT_EQ(capa.find("SASL"), std::string::npos);
  EXPECT_NE(capa.find("STLS"), std::string::npos);
  client("USER alice\r\n");
  EXPECT_EQ(sink_.takeClient().rfind("-ERR [AUTH] Plaintext authentication disallowed", 0), 0u);
  client("AUTH PLAIN\r\n");
  EXPECT_EQ(sink_.takeClient().rfind("-ERR [AUTH] Plaintext", 0), 0u);
  EXPECT_EQ(sink_.connects, 0);
}

TEST_F(SessionTest, StlsDiscardsPipelinedCommandsAndEnablesAuth) {
  options_.allowPlaintextAuth = false;
  create();
  sink_.takeClient();
  // The injected USER after STLS must never be executed.
  std::string input = "STLS\r\nUSER mallory\r\n";
  EXPECT_EQ(session_->feedClient(input), input.size());
  EXPECT_EQ(sink_.takeClient(), "+OK Begin TLS negotiation.\r\n");
  EXPECT_EQ(sink_.clientTls, 1);
  EXPECT_FALSE(session_->readyForCommand());
  session_->onClientTlsReady();
  client("PASS x\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR No user name given; send USER first.\r\n");
  client("STLS\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR TLS is already active.\r\n");
  client("CAPA\r\n");
  std::string capa = sink_.takeClient();
  EXPECT_NE(capa.find("USER"), std::string::npos);
  EXPECT_EQ(capa.find("STLS"), std::string::npos);
}

TEST_F(SessionTest, StlsUnavailableOnPlainListener) {
  options_.stlsAvailable = false;
  create();
  sink_.takeClient();
  client("STLS\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR STLS is not available on this listener.\r\n");
  EXPECT_EQ(sink_.clientTls, 0);
}

TEST_F(SessionTest, TransactionCommandsBeforeLoginAreRefused) {
  create();
  sink_.takeClient();
  for (std::string_view command :
       {"STAT\r\n", "LIST\r\n", "RETR 1\r\n", "DELE 1\r\n", "NOOP\r\n"}) {
    client(command);
    EXPECT_EQ(sink_.takeClient(),
              "-ERR Not logged in; this command needs USER/PASS or AUTH first.\r\n")
        << command;
  }
  EXPECT_TRUE(sink_.upstreamCommands.empty());
}

TEST_F(SessionTest, FullSessionStatListUidlRetr) {
  login();
  client("STAT\r\n");
  std::uint64_t total =
      messages_[0].body.size() + messages_[1].body.size() + messages_[3].body.size();
  EXPECT_EQ(sink_.takeClient(), "+OK 3 " + std::to_string(total) + "\r\n");
  client("LIST\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Scan listing follows\r\n1 " +
                                    std::to_string(messages_[0].body.size()) + "\r\n2 " +
                                    std::to_string(messages_[1].body.size()) + "\r\n3 " +
                                    std::to_string(messages_[3].body.size()) + "\r\n.\r\n");
  client("UIDL\r\n");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Unique-ID listing follows\r\n1 0000000a000004d2\r\n2 0000000b000004d2\r\n"
            "3 0000000f000004d2\r\n.\r\n");
  client("UIDL 3\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK 3 0000000f000004d2\r\n");
  client("LIST 4\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR There's no message 4.\r\n");

  client("RETR 2\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 11 (BODY.PEEK[])\r\n");
  EXPECT_EQ(sink_.takeClient(), "");  // no +OK before the literal starts
  serveBody(messages_[1].body, 2, 11);
  EXPECT_EQ(sink_.takeClient(), "+OK " + std::to_string(messages_[1].body.size()) +
                                    " octets\r\nSubject: two\r\n\r\n..dot line\r\nsecond\r\n.\r\n");
  EXPECT_EQ(session_->stats().retrieved, 1u);
}

TEST_F(SessionTest, RetrStreamsBodySplitAnywhere) {
  login();
  client("RETR 1\r\n");
  std::string response = "* 1 FETCH (UID 10 BODY[] {" + std::to_string(messages_[0].body.size()) +
                         "}\r\n" + messages_[0].body + ")\r\n" + sink_.lastTag() + " OK done\r\n";
  for (char c : response) upstream(std::string_view(&c, 1));
  EXPECT_EQ(sink_.takeClient(), "+OK " + std::to_string(messages_[0].body.size()) + " octets\r\n" +
                                    messages_[0].body + ".\r\n");
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(SessionTest, PipelinedCommandsWaitForTheUpstream) {
  login();
  std::string input = "RETR 1\r\nSTAT\r\nNOOP\r\n";
  std::size_t consumed = session_->feedClient(input);
  EXPECT_EQ(consumed, std::string("RETR 1\r\n").size());
  EXPECT_FALSE(session_->readyForCommand());
  serveBody(messages_[0].body, 1, 10);
  sink_.takeClient();
  EXPECT_EQ(session_->feedClient(std::string_view(input).substr(consumed)),
            input.size() - consumed);
  EXPECT_EQ(sink_.takeClient().substr(0, 6), "+OK 3 ");
}

TEST_F(SessionTest, CongestedClientStopsCommandProcessing) {
  login();
  sink_.congested = true;
  std::string input = "LIST\r\nSTAT\r\n";
  EXPECT_EQ(session_->feedClient(input), 0u);
  EXPECT_EQ(sink_.takeClient(), "");
  sink_.congested = false;
  EXPECT_EQ(session_->feedClient(input), input.size());
  EXPECT_EQ(sink_.takeClient().rfind("+OK Scan listing follows", 0), 0u);
}

TEST_F(SessionTest, TopZeroFetchesOnlyTheHeader) {
  login();
  client("TOP 3 0\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 15 (BODY.PEEK[HEADER])\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\n.\r\n");
}

// TOP n k>0 reads the header, then only windows of the text (the issue's
// "TOP by partial fetch": the one wire change of the session split).
TEST_F(SessionTest, TopWithLinesLimitsTheBody) {
  login();
  client("TOP 3 2\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 UID FETCH 15 (BODY.PEEK[HEADER])\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID FETCH 15 (BODY.PEEK[TEXT]<0.65536>)\r\n");
  serveBody("l1\r\nl2\r\nl3\r\n", 4, 15, "BODY[TEXT]<0>");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\nl1\r\nl2\r\n.\r\n");
  EXPECT_EQ(session_->stats().retrieved, 0u);
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(SessionTest, TopReadsFurtherWindowsOnlyUntilItHasItsLines) {
  login();
  client("TOP 3 3\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  // A first window of one long line: no line complete yet, so a second,
  // twice as large window follows from where the first ended.
  std::string longLine(65536, 'a');
  serveBody(longLine, 4, 15, "BODY[TEXT]<0>");
  EXPECT_EQ(sink_.lastUpstream(), "P6 UID FETCH 15 (BODY.PEEK[TEXT]<65536.131072>)\r\n");
  std::string rest = "\r\nb\r\n.c\r\nd\r\n" + std::string(200000, 'e');
  std::size_t before = upstreamCount();
  serveBody(rest.substr(0, 131072), 4, 15, "BODY[TEXT]<65536>");
  EXPECT_EQ(upstreamCount(), before);  // three lines are out: nothing more is read
  EXPECT_EQ(sink_.takeClient(), "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\n" +
                                    longLine + "\r\nb\r\n..c\r\n.\r\n");
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(SessionTest, TopStopsAtTheEndOfAShortBodyWithoutCrlf) {
  login();
  client("TOP 3 10\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  std::size_t before = upstreamCount();
  serveBody("l1\r\nlast", 4, 15, "BODY[TEXT]<0>");
  EXPECT_EQ(upstreamCount(), before);  // a short window is the end of the body
  EXPECT_EQ(sink_.takeClient(),
            "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\nl1\r\nlast\r\n.\r\n");
}

TEST_F(SessionTest, TopWindowFailureCutsTheConnection) {
  login();
  client("TOP 3 10\r\n");
  serveBody("Subject: three\r\nX: y\r\n\r\n", 4, 15, "BODY[HEADER]");
  tagged("NO [SERVERBUG] Internal error");
  EXPECT_TRUE(session_->closed());
  // The "+OK" and the header went out; no "-ERR" and no terminator may follow.
  EXPECT_EQ(sink_.takeClient(), "+OK Top of message follows.\r\nSubject: three\r\nX: y\r\n\r\n");
}

TEST_F(SessionTest, RetrOfMessageExpungedElsewhereGivesErr) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 EXPUNGE\r\n");
  tagged("OK Fetch completed");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message was deleted by another client.\r\n");
  EXPECT_TRUE(session_->readyForCommand());
  // Numbering stays frozen: message 2 is still UID 11.
  client("RETR 2\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID FETCH 11 (BODY.PEEK[])\r\n");
}

TEST_F(SessionTest, DovecotExpungeIssuedGivesErrNotAnEmptyMessage) {
  login();
  client("RETR 2\r\n");
  // What Dovecot sends for a message another session expunged before ours synced.
  upstream("* 2 FETCH (UID 11 BODY[] \"\")\r\n");
  tagged("NO [EXPUNGEISSUED] Some of the requested messages no longer exist");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message was deleted by another client.\r\n");
}

TEST_F(SessionTest, FetchNoWithoutBodyGivesSysTemp) {
  login();
  client("RETR 2\r\n");
  tagged("NO [SERVERBUG] Internal error");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream could not fetch the message, try again later.\r\n");
}

TEST_F(SessionTest, UpstreamDeathMidBodyClosesClientWithoutTerminator) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {100}\r\nSubject: partial\r\n");
  EXPECT_TRUE(session_->streamingBody());
  session_->onUpstreamClosed("connection reset");
  std::string out = sink_.takeClient();
  EXPECT_EQ(out,
            "+OK " + std::to_string(messages_[0].body.size()) + " octets\r\nSubject: partial\r\n");
  EXPECT_TRUE(sink_.clientClosed);
  EXPECT_TRUE(session_->closed());
}

TEST_F(SessionTest, ByeMidBodyClosesClient) {
  login();
  client("RETR 1\r\n");
  upstream("* 1 FETCH (UID 10 BODY[] {100}\r\nabc");
  session_->onUpstreamTimeout();
  EXPECT_TRUE(sink_.clientClosed);
  EXPECT_EQ(sink_.takeClient().find("-ERR"), std::string::npos);
}

TEST_F(SessionTest, UpstreamTimeoutBeforeBodyGivesSysTemp) {
  login();
  client("RETR 1\r\n");
  session_->onUpstreamTimeout();
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Upstream connection lost, try again later.\r\n");
  EXPECT_TRUE(sink_.clientClosed);
}

struct PolicyCase {
  DeletePolicy policy;
  std::string_view postLoginCaps;
  std::vector<std::string> expected;  // update commands, without tags
  std::string_view select = "SELECT";
};

// ctest shows the printed parameter in each test name.
void PrintTo(const PolicyCase& c, std::ostream* os) {
  *os << toString(c.policy) << " with " << c.postLoginCaps;
}

class PolicyTest : public SessionTest, public ::testing::WithParamInterface<PolicyCase> {};

TEST_P(PolicyTest, QuitAppliesPolicyToMarkedUidsOnly) {
  const PolicyCase& c = GetParam();
  options_.mailbox.onDelete = c.policy;
  expectedSelect_ = "P2 " + std::string(c.select) + " INBOX\r\n";
  login(c.postLoginCaps);
  client("DELE 1\r\nDELE 3\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Marked to be deleted.\r\n+OK Marked to be deleted.\r\n");
  client("DELE 1\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message is deleted.\r\n");
  client("RETR 1\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR Message is deleted.\r\n");
  client("STAT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK 1 " + std::to_string(messages_[1].body.size()) + "\r\n");
  std::size_t before = upstreamCount();
  client("QUIT\r\n");
  for (const std::string& expected : c.expected) {
    ASSERT_GT(upstreamCount(), before);
    std::string command = sink_.lastUpstream();
    EXPECT_EQ(command.substr(command.find(' ') + 1), expected + "\r\n");
    EXPECT_EQ(sink_.takeClient(), "");  // QUIT answers only once UPDATE is done
    tagged("OK done");
  }
  std::string last = sink_.lastUpstream();
  EXPECT_EQ(last.substr(last.find(' ') + 1), "LOGOUT\r\n");
  EXPECT_EQ(sink_.takeClient(), c.policy == DeletePolicy::Keep
                                    ? "+OK Logging out.\r\n"
                                    : "+OK Logging out, 2 messages deleted.\r\n");
  EXPECT_TRUE(sink_.clientClosed);
}

INSTANTIATE_TEST_SUITE_P(
    Policies, PolicyTest,
    ::testing::Values(
        PolicyCase{
            DeletePolicy::Flag, kPostLoginCaps, {"UID STORE 10,15 +FLAGS.SILENT (\\Deleted)"}},
        PolicyCase{DeletePolicy::Expunge,
                   kPostLoginCaps,
                   {"UID STORE 10,15 +FLAGS.SILENT (\\Deleted)", "UID EXPUNGE 10,15"}},
        // Without UIDPLUS a bare EXPUNGE would be the only way: flag instead.
        PolicyCase{
            DeletePolicy::Expunge, "IMAP4rev1 MOVE", {"UID STORE 10,15 +FLAGS.SILENT (\\Deleted)"}},
        PolicyCase{DeletePolicy::Move, kPostLoginCaps, {"UID MOVE 10,15 Trash"}},
        PolicyCase{DeletePolicy::Move,
                   "IMAP4rev1 UIDPLUS",
                   {"UID COPY 10,15 Trash", "UID STORE 10,15 +FLAGS.SILENT (\\Deleted)",
                    "UID EXPUNGE 10,15"}},
        PolicyCase{DeletePolicy::Move,
                   "IMAP4rev1",
                   {"UID COPY 10,15 Trash", "UID STORE 10,15 +FLAGS.SILENT (\\Deleted)"}},
        PolicyCase{DeletePolicy::Seen, kPostLoginCaps, {"UID STORE 10,15 +FLAGS.SILENT (\\Seen)"}},
        PolicyCase{DeletePolicy::Keep, kPostLoginCaps, {}, "EXAMINE"}),
    [](const ::testing::TestParamInfo<PolicyCase>& info) {
      return std::string(toString(info.param.policy)) + "_" + std::to_string(info.index);
    });

TEST_F(SessionTest, RsetClearsMarks) {
  login();
  client("DELE 2\r\nRSET\r\n");
  sink_.takeClient();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P4 LOGOUT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(SessionTest, DroppedConnectionAfterDeleAppliesNothing) {
  login();
  client("DELE 1\r\nDELE 2\r\n");
  std::size_t before = upstreamCount();
  session_->onClientClosed("client reset");
  EXPECT_EQ(upstreamCount(), before);  // no STORE, no EXPUNGE, not even LOGOUT
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
  EXPECT_TRUE(session_->closed());
  EXPECT_EQ(session_->stats().deleted, 0u);
}

TEST_F(SessionTest, ShutdownAppliesNothing) {
  login();
  client("DELE 1\r\n");
  sink_.takeClient();
  session_->abort("server shutting down");
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/TEMP] Server shutting down.\r\n");
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
}

TEST_F(SessionTest, StoreFailureAtQuitReportsErrAndLogsUids) {
  login();
  client("DELE 2\r\nQUIT\r\n");
  sink_.takeClient();
  tagged("NO [SERVERBUG] Internal error");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Deleting messages failed on the server; they were not removed.\r\n");
  EXPECT_NE(sink_.logs.find("not applied to UIDs 11"), std::string::npos) << sink_.logs;
  EXPECT_TRUE(sink_.clientClosed);
}

TEST_F(SessionTest, UidValidityChangeAbortsDeletions) {
  login();
  client("DELE 1\r\n");
  upstream("* OK [UIDVALIDITY 999] changed\r\n");
  client("RETR 2\r\n");
  EXPECT_EQ(
      sink_.takeClient(),
      "+OK Marked to be deleted.\r\n-ERR [SYS/TEMP] Mailbox changed on the server (UIDVALIDITY); "
      "log in again.\r\n");
  client("QUIT\r\n");
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
  EXPECT_EQ(sink_.takeClient().rfind("-ERR [SYS/TEMP] Mailbox changed", 0), 0u);
}

TEST_F(SessionTest, WrongPasswordGivesAuthErrAfterDelay) {
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS wrong\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready\r\n");
  tagged("NO [AUTHENTICATIONFAILED] Authentication failed.");
  EXPECT_EQ(sink_.takeClient(), "+OK Send your password.\r\n");
  EXPECT_EQ(sink_.delays, 1);
  EXPECT_FALSE(session_->readyForCommand());
  session_->onDelayElapsed();
  EXPECT_EQ(sink_.takeClient(), "-ERR [AUTH] Authentication failed.\r\n");
  EXPECT_EQ(session_->state(), Pop3Session::State::Authorization);
  EXPECT_GE(sink_.upstreamCloses, 1);
}

TEST_F(SessionTest, ThreeFailedLoginsClose) {
  sink_.rejectLocal = true;
  create();
  sink_.takeClient();
  for (int i = 0; i < 3; ++i) {
    client("USER alice\r\nPASS wrong\r\n");
    session_->onDelayElapsed();
  }
  EXPECT_TRUE(sink_.clientClosed);
  EXPECT_EQ(sink_.connects, 0);
}

TEST_F(SessionTest, UpstreamUnreachableGivesSysTemp) {
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamFailed("connection refused");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Send your password.\r\n-ERR [SYS/TEMP] Upstream server unavailable, try again "
            "later.\r\n");
  EXPECT_TRUE(session_->readyForCommand());
}

TEST_F(SessionTest, UnavailableCodeMapsToSysTemp) {
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready\r\n");
  tagged("NO [UNAVAILABLE] Backend down");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Send your password.\r\n-ERR [SYS/TEMP] Upstream server unavailable, try again "
            "later.\r\n");
}

TEST_F(SessionTest, PreauthGreetingIsRefused) {
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* PREAUTH welcome\r\n");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Send your password.\r\n-ERR [SYS/PERM] Upstream configuration error.\r\n");
  EXPECT_EQ(sink_.upstream.find("SELECT"), std::string::npos);
}

TEST_F(SessionTest, LoginFallsBackToLoginCommandWithoutAuthPlain) {
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* OK ready\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P1 CAPABILITY\r\n");
  upstream("* CAPABILITY IMAP4rev1\r\n");
  tagged("OK done");
  EXPECT_EQ(sink_.lastUpstream(), "P2 LOGIN alice pw\r\n");
}

TEST_F(SessionTest, UpstreamStartTlsThenCapabilityThenLogin) {
  options_.upstreamStartTls = true;
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
  EXPECT_EQ(sink_.lastUpstream(), "P1 STARTTLS\r\n");
  // Bytes after the OK in the same read are an injection attempt: dropped.
  upstream("P1 OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n");
  EXPECT_EQ(sink_.upstreamTls, 1);
  session_->onUpstreamTlsReady();
  EXPECT_EQ(sink_.lastUpstream(), "P2 CAPABILITY\r\n");
  upstream("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
  tagged("OK done");
  EXPECT_EQ(sink_.lastUpstream().rfind("P3 AUTHENTICATE PLAIN", 0), 0u);
}

TEST_F(SessionTest, UpstreamWithoutStartTlsIsRefusedWhenRequired) {
  options_.upstreamStartTls = true;
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n");
  EXPECT_EQ(sink_.upstream.find("AUTHENTICATE"), std::string::npos);
  EXPECT_EQ(sink_.takeClient(),
            "+OK Send your password.\r\n-ERR [SYS/TEMP] Upstream server unavailable, try again "
            "later.\r\n");
}

TEST_F(SessionTest, AuthPlainWithContinuation) {
  create();
  sink_.takeClient();
  client("AUTH PLAIN\r\n");
  EXPECT_EQ(sink_.takeClient(), "+ \r\n");
  client(base64Encode(std::string("\0bob\0pw two", 11)) + "\r\n");
  EXPECT_EQ(sink_.resolvedUser, "bob");
  EXPECT_EQ(sink_.resolvedPassword, "pw two");
}

TEST_F(SessionTest, AuthPlainInitialResponse) {
  create();
  sink_.takeClient();
  client("AUTH PLAIN " + base64Encode(std::string("bob\0bob\0pw", 10)) + "\r\n");
  EXPECT_EQ(sink_.resolvedUser, "bob");
  EXPECT_EQ(sink_.resolvedPassword, "pw");
}

TEST_F(SessionTest, AuthLoginTwoSteps) {
  create();
  sink_.takeClient();
  client("AUTH LOGIN\r\n");
  EXPECT_EQ(sink_.takeClient(), "+ VXNlcm5hbWU6\r\n");
  client(base64Encode("carol") + "\r\n");
  EXPECT_EQ(sink_.takeClient(), "+ UGFzc3dvcmQ6\r\n");
  client(base64Encode("pw3") + "\r\n");
  EXPECT_EQ(sink_.resolvedUser, "carol");
  EXPECT_EQ(sink_.resolvedPassword, "pw3");
}

TEST_F(SessionTest, AuthCancelAndBadBase64) {
  create();
  sink_.takeClient();
  client("AUTH PLAIN\r\n*\r\n");
  EXPECT_EQ(sink_.takeClient(), "+ \r\n-ERR Authentication cancelled.\r\n");
  client("AUTH PLAIN\r\n!!notbase64\r\n");
  EXPECT_EQ(sink_.takeClient(), "+ \r\n-ERR Invalid base64 data in SASL response.\r\n");
  client("AUTH PLAIN " + base64Encode("no-nuls-here") + "\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR Malformed SASL PLAIN response.\r\n");
  client("AUTH CRAM-MD5\r\n");
  EXPECT_EQ(sink_.takeClient(), "-ERR Unsupported authentication mechanism.\r\n");
  EXPECT_EQ(sink_.resolveCalls, 0);
  // The session still works afterwards.
  client("USER alice\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Send your password.\r\n");
}

TEST_F(SessionTest, AuthWithoutMechanismListsThem) {
  create();
  sink_.takeClient();
  client("AUTH\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
}

TEST_F(SessionTest, TooManyBadCommandsDisconnect) {
  options_.maxBadCommands = 3;
  create();
  sink_.takeClient();
  client("FOO\r\nBAR\r\nBAZ\r\nQUIT\r\n");
  std::string out = sink_.takeClient();
  EXPECT_NE(out.find("-ERR Too many bad commands, closing connection.\r\n"), std::string::npos);
  EXPECT_EQ(out.find("+OK Logging out"), std::string::npos);
  EXPECT_TRUE(sink_.clientClosed);
}

TEST_F(SessionTest, QuitBeforeLogin) {
  create();
  sink_.takeClient();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
  EXPECT_TRUE(sink_.clientClosed);
}

TEST_F(SessionTest, MaxMessagesFetchesOnlyTheNewest) {
  options_.mailbox.maxMessages = 2;
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready\r\n");
  tagged("OK [CAPABILITY " + std::string(kPostLoginCaps) + "] in");
  upstream("* 4 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n");
  tagged("OK selected");
  EXPECT_EQ(sink_.lastUpstream(), "P3 FETCH 3:* (UID RFC822.SIZE FLAGS)\r\n");
  upstream(
      "* 3 FETCH (UID 12 RFC822.SIZE 5 FLAGS ())\r\n* 4 FETCH (UID 15 RFC822.SIZE 6 FLAGS ())\r\n");
  tagged("OK done");
  client("STAT\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Send your password.\r\n+OK Logged in.\r\n+OK 2 11\r\n");
}

TEST_F(SessionTest, EmptyMailboxSkipsTheFetch) {
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready\r\n");
  tagged("OK [CAPABILITY " + std::string(kPostLoginCaps) + "] in");
  upstream("* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n");
  tagged("OK selected");
  client("STAT\r\nLIST\r\n");
  EXPECT_EQ(
      sink_.takeClient(),
      "+OK Send your password.\r\n+OK Logged in.\r\n+OK 0 0\r\n+OK Scan listing follows\r\n.\r\n");
}

TEST_F(SessionTest, SelectFailureIsPermanent) {
  options_.mailbox.folder = "Scans";
  expectedSelect_ = "P2 SELECT Scans\r\n";
  create();
  sink_.takeClient();
  client("USER alice\r\nPASS pw\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready\r\n");
  tagged("OK [CAPABILITY " + std::string(kPostLoginCaps) + "] in");
  EXPECT_EQ(sink_.lastUpstream(), expectedSelect_);
  tagged("NO [NONEXISTENT] Mailbox doesn't exist: Scans");
  EXPECT_EQ(sink_.takeClient(),
            "+OK Send your password.\r\n-ERR [SYS/PERM] Cannot open the mailbox folder on the "
            "server.\r\n");
}

TEST_F(SessionTest, LastReportsHighestAccessed) {
  login();
  client("LAST\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK 0\r\n");
  client("DELE 2\r\nLAST\r\n");
  EXPECT_EQ(sink_.takeClient(), "+OK Marked to be deleted.\r\n+OK 2\r\n");
}

TEST_F(SessionTest, IdleTimeoutClosesWithoutApplying) {
  login();
  client("DELE 1\r\n");
  sink_.takeClient();
  session_->onIdleTimeout();
  EXPECT_EQ(sink_.takeClient(), "-ERR Disconnected for inactivity.\r\n");
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
}

TEST_F(SessionTest, PasswordNeverReachesLogs) {
  login();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.logs.find("s3cret"), std::string::npos);
}

}  // namespace
}  // namespace popbridge::protocol
