// RFC 1939 behaviour of the POP3 server over an in-memory maildrop: no IMAP,
// no sockets, microseconds per case.

#include "protocol/pop3/server.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "protocol/base64.h"

namespace popbridge::protocol {
namespace {

class MemoryMaildrop : public Maildrop {
 public:
  std::vector<std::string> messages;
  std::string password = "secret";
  bool async = false;  // hold answers until release()
  MaildropEvents* events = nullptr;

  std::vector<std::string> log;  // what the server asked for
  std::optional<std::vector<std::size_t>> updated;
  bool closed = false;
  std::size_t pulled = 0;  // bytes the server accepted before saying "enough"

  void open(std::string_view user, std::string_view pass) override {
    log.push_back("open " + std::string(user));
    std::string given(pass);
    pending_ = [this, given] {
      if (given == password) {
        events->onMaildropOpened();
      } else {
        events->onMaildropOpenFailed({RespCode::Auth, "Authentication failed.", {}});
      }
    };
    if (!async) release();
  }
  std::size_t messageCount() const override { return messages.size(); }
  std::uint64_t messageSize(std::size_t i) const override { return messages[i].size(); }
  void appendUidl(std::string& out, std::size_t i) const override {
    out += "uid-" + std::to_string(i + 100);
  }
  void fetch(std::size_t i, std::optional<std::uint64_t> topLines) override {
    log.push_back("fetch " + std::to_string(i) + (topLines ? " top" : ""));
    pending_ = [this, i] {
      events->onMessageBegin();
      // One byte at a time: the server must stop asking once TOP has its lines.
      const std::string& m = messages[i];
      for (std::size_t k = 0; k < m.size(); ++k) {
        ++pulled;
        if (!events->onMessageData(std::string_view(m).substr(k, 1))) break;
      }
      events->onMessageEnd();
      events->onFetchDone();
    };
    if (!async) release();
  }
  void update(std::span<const std::size_t> indexes) override {
    updated.emplace(indexes.begin(), indexes.end());
    pending_ = [this, n = indexes.size()] {
      events->onUpdated(static_cast<std::uint32_t>(n));
    };
    if (!async) release();
  }
  void close() override { closed = true; }
  void readAhead(std::size_t i) override { aheads.push_back(i); }
  std::vector<std::size_t> aheads;  // readAhead hints, in order

  void release() {
    auto run = std::move(pending_);
    pending_ = nullptr;
    if (run) run();
  }

 private:
  std::function<void()> pending_;
};

class RecordingSink : public Pop3ServerSink {
 public:
  std::string client;
  int tlsStarts = 0;
  int delays = 0;
  std::optional<std::string> closedWith;
  bool congested = false;

  void sendToClient(std::string_view bytes) override { client += bytes; }
  void startClientTls() override { ++tlsStarts; }
  void startAuthDelay() override { ++delays; }
  void closeClient(std::string_view reason) override { closedWith = std::string(reason); }
  std::vector<std::string> logs;
  void log(LogSeverity, std::string_view message) override { logs.emplace_back(message); }
  bool clientCongested() const override { return congested; }

  std::string take() { return std::exchange(client, {}); }
};

class Pop3ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    maildrop_.messages = {"Subject: a\r\n\r\nfirst\r\n", "Subject: b\r\n\r\n.dot\r\nx\r\ny\r\n",
                          "Subject: c\r\n\r\nno newline at end"};
  }
  void create(Pop3ServerOptions options = {.allowPlaintextAuth = true}) {
    server_.emplace(options, sink_, maildrop_);
    maildrop_.events = &*server_;
    server_->start();
    EXPECT_EQ(sink_.take(), "+OK popbridge ready.\r\n");
  }
  std::string send(std::string_view line) {
    std::size_t consumed = server_->feedClient(line);
    EXPECT_EQ(consumed, line.size());
    return sink_.take();
  }
  void login() {
    create();
    EXPECT_EQ(send("USER u\r\n"), "+OK Send your password.\r\n");
    EXPECT_EQ(send("PASS secret\r\n"), "+OK Logged in.\r\n");
    ASSERT_EQ(server_->state(), Pop3Server::State::Transaction);
  }

  MemoryMaildrop maildrop_;
  RecordingSink sink_;
  std::optional<Pop3Server> server_;
};

TEST_F(Pop3ServerTest, ListingsComeFromTheSnapshot) {
  login();
  EXPECT_EQ(send("STAT\r\n"), "+OK 3 78\r\n");
  EXPECT_EQ(send("LIST\r\n"), "+OK Scan listing follows\r\n1 21\r\n2 26\r\n3 31\r\n.\r\n");
  EXPECT_EQ(send("UIDL 2\r\n"), "+OK 2 uid-101\r\n");
  EXPECT_EQ(send("LIST 4\r\n"), "-ERR There's no message 4.\r\n");
}

// The maildrop hears of a client that downloads in order (RETR n after RETR n-1, DELE'd
// messages skipped, or the first RETR after a whole LIST or UIDL), once the RETR is done, and
// of nothing else.
TEST_F(Pop3ServerTest, SequentialRetrsHintTheNextUndeletedMessage) {
  maildrop_.messages.push_back("Subject: d\r\n\r\nfourth\r\n");
  login();
  send("RETR 1\r\n");  // no listing before, no RETR before: no guess
  EXPECT_EQ(maildrop_.aheads, std::vector<std::size_t>{});
  send("RETR 2\r\n");
  EXPECT_EQ(maildrop_.aheads, std::vector<std::size_t>{2});
  send("DELE 3\r\n");
  send("RETR 1\r\n");  // backwards: no guess
  EXPECT_EQ(maildrop_.aheads, std::vector<std::size_t>{2});
  send("RETR 2\r\n");  // after RETR 1: in order; the next undeleted is message 4
  EXPECT_EQ(maildrop_.aheads, (std::vector<std::size_t>{2, 3}));
  send("RETR 4\r\n");  // in order (3 is deleted), but the last message: nothing follows
  EXPECT_EQ(maildrop_.aheads, (std::vector<std::size_t>{2, 3}));
  send("TOP 1 0\r\n");  // TOP neither hints nor breaks the order
  send("UIDL 1\r\n");   // a single line is no listing
  send("RETR 1\r\n");
  EXPECT_EQ(maildrop_.aheads, (std::vector<std::size_t>{2, 3}));
  send("UIDL\r\n");
  send("RETR 2\r\n");  // the first RETR after a listing, whichever message
  EXPECT_EQ(maildrop_.aheads, (std::vector<std::size_t>{2, 3, 3}));
}

TEST_F(Pop3ServerTest, AFailedRetrHintsNothing) {
  login();
  send("LIST\r\n");
  maildrop_.async = true;
  server_->feedClient("RETR 1\r\n");
  server_->onMessageFailed({RespCode::SysTemp, "Upstream could not fetch the message.", {}});
  EXPECT_EQ(sink_.take(), "-ERR [SYS/TEMP] Upstream could not fetch the message.\r\n");
  EXPECT_TRUE(maildrop_.aheads.empty());
}

TEST_F(Pop3ServerTest, RetrIsDotStuffedAndTerminated) {
  login();
  EXPECT_EQ(send("RETR 2\r\n"),
            "+OK 26 octets\r\nSubject: b\r\n\r\n..dot\r\nx\r\ny\r\n.\r\n");
  EXPECT_EQ(send("RETR 3\r\n"), "+OK 31 octets\r\nSubject: c\r\n\r\nno newline at end\r\n.\r\n");
  EXPECT_EQ(server_->stats().retrieved, 2u);
  EXPECT_EQ(send("LAST\r\n"), "+OK 3\r\n");
}

TEST_F(Pop3ServerTest, TopStopsPullingOnceItHasItsLines) {
  login();
  EXPECT_EQ(send("TOP 2 1\r\n"), "+OK Top of message follows.\r\nSubject: b\r\n\r\n..dot\r\n.\r\n");
  EXPECT_EQ(maildrop_.log.back(), "fetch 1 top");
  // Header (12) + blank line (2) + one line (6): the maildrop was told to stop.
  EXPECT_EQ(maildrop_.pulled, 20u);
  EXPECT_EQ(server_->stats().retrieved, 0u);
}

TEST_F(Pop3ServerTest, DeleIsAppliedOnlyAtQuit) {
  login();
  EXPECT_EQ(send("DELE 1\r\n"), "+OK Marked to be deleted.\r\n");
  EXPECT_EQ(send("DELE 1\r\n"), "-ERR Message is deleted.\r\n");
  EXPECT_EQ(send("RETR 1\r\n"), "-ERR Message is deleted.\r\n");
  EXPECT_EQ(send("STAT\r\n"), "+OK 2 57\r\n");
  EXPECT_EQ(send("LIST\r\n"), "+OK Scan listing follows\r\n2 26\r\n3 31\r\n.\r\n");
  EXPECT_EQ(send("DELE 3\r\n"), "+OK Marked to be deleted.\r\n");
  EXPECT_FALSE(maildrop_.updated);
  EXPECT_EQ(send("QUIT\r\n"), "+OK Logging out, 2 messages deleted.\r\n");
  ASSERT_TRUE(maildrop_.updated);
  EXPECT_EQ(*maildrop_.updated, (std::vector<std::size_t>{0, 2}));
  EXPECT_EQ(server_->stats().deleted, 2u);
  EXPECT_EQ(sink_.closedWith, "quit");
  EXPECT_TRUE(maildrop_.closed);
}

TEST_F(Pop3ServerTest, RsetUnmarksEverything) {
  login();
  send("DELE 2\r\n");
  EXPECT_EQ(send("RSET\r\n"), "+OK maildrop has 3 messages (78 octets)\r\n");
  EXPECT_EQ(send("QUIT\r\n"), "+OK Logging out.\r\n");
  EXPECT_EQ(*maildrop_.updated, std::vector<std::size_t>{});
}

TEST_F(Pop3ServerTest, ADroppedConnectionDeletesNothing) {
  login();
  send("DELE 1\r\n");
  server_->onClientClosed("connection reset");
  EXPECT_FALSE(maildrop_.updated);
  EXPECT_TRUE(maildrop_.closed);
  EXPECT_EQ(server_->endReason(), "connection reset");
}

TEST_F(Pop3ServerTest, PipelinedCommandsWaitForTheMaildrop) {
  login();
  maildrop_.async = true;
  std::string input = "RETR 1\r\nSTAT\r\n";
  std::size_t consumed = server_->feedClient(input);
  EXPECT_EQ(consumed, 8u);  // STAT waits until the retrieval is over
  EXPECT_FALSE(server_->readyForCommand());
  maildrop_.release();
  EXPECT_TRUE(server_->readyForCommand());
  EXPECT_EQ(server_->feedClient(std::string_view(input).substr(consumed)), 6u);
  EXPECT_EQ(sink_.take(), "+OK 21 octets\r\nSubject: a\r\n\r\nfirst\r\n.\r\n+OK 3 78\r\n");
}

TEST_F(Pop3ServerTest, FailedLoginsAreDelayedAndTheThirdCloses) {
  create();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    send("USER u\r\n");
    EXPECT_EQ(send("PASS wrong\r\n"), "");  // held back for the delay
    EXPECT_EQ(sink_.delays, attempt);
    server_->onDelayElapsed();
    EXPECT_EQ(sink_.take(), "-ERR [AUTH] Authentication failed.\r\n");
  }
  EXPECT_TRUE(server_->closed());
  EXPECT_EQ(sink_.closedWith, "too many failed logins");
}

struct WrongStateCase {
  std::string name;
  bool loggedIn;
  std::string command;
  std::string reply;
};
// ctest shows the printed parameter in each test name.
void PrintTo(const WrongStateCase& c, std::ostream* os) { *os << c.name; }


class Pop3ServerStateTest : public Pop3ServerTest,
                            public ::testing::WithParamInterface<WrongStateCase> {};

TEST_P(Pop3ServerStateTest, CommandTableAnswersByState) {
  const WrongStateCase& c = GetParam();
  if (c.loggedIn) {
    login();
  } else {
    create();
  }
  EXPECT_EQ(send(c.command), c.reply);
}

INSTANTIATE_TEST_SUITE_P(
    Table, Pop3ServerStateTest,
    ::testing::Values(
        WrongStateCase{"StatBeforeLogin", false, "STAT\r\n",
                       "-ERR Not logged in; this command needs USER/PASS or AUTH first.\r\n"},
        WrongStateCase{"RetrBeforeLogin", false, "RETR 1\r\n",
                       "-ERR Not logged in; this command needs USER/PASS or AUTH first.\r\n"},
        WrongStateCase{"UserAfterLogin", true, "USER x\r\n", "-ERR Already logged in.\r\n"},
        WrongStateCase{"AuthAfterLogin", true, "AUTH PLAIN\r\n", "-ERR Already logged in.\r\n"},
        WrongStateCase{"StlsAfterLogin", true, "STLS\r\n",
                       "-ERR STLS is only allowed before login.\r\n"},
        WrongStateCase{"PassWithoutUser", false, "PASS x\r\n",
                       "-ERR No user name given; send USER first.\r\n"},
        WrongStateCase{"Apop", false, "APOP u 0123456789abcdef0123456789abcdef\r\n",
                       "-ERR APOP is not supported; use USER/PASS or AUTH over TLS.\r\n"},
        WrongStateCase{"NoopLoggedIn", true, "NOOP\r\n", "+OK\r\n"},
        WrongStateCase{"QuitBeforeLogin", false, "QUIT\r\n", "+OK Logging out.\r\n"}),
    [](const ::testing::TestParamInfo<WrongStateCase>& info) { return info.param.name; });

TEST_F(Pop3ServerTest, PlaintextLoginNeedsTlsUnlessAllowed) {
  create({.stlsAvailable = true});
  EXPECT_EQ(send("USER u\r\n"),
            "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections; use "
            "STLS.\r\n");
  // STLS drops whatever was pipelined behind it (RFC 2595).
  std::string input = "STLS\r\nUSER injected\r\n";
  EXPECT_EQ(server_->feedClient(input), input.size());
  EXPECT_EQ(sink_.take(), "+OK Begin TLS negotiation.\r\n");
  EXPECT_EQ(sink_.tlsStarts, 1);
  server_->onClientTlsReady();
  EXPECT_EQ(send("PASS secret\r\n"), "-ERR No user name given; send USER first.\r\n");
  send("USER u\r\n");
  EXPECT_EQ(send("PASS secret\r\n"), "+OK Logged in.\r\n");
}

TEST_F(Pop3ServerTest, SaslPlainLogsIn) {
  create();
  std::string response = base64Encode(std::string("\0u\0secret", 9));
  EXPECT_EQ(send("AUTH PLAIN\r\n"), "+ \r\n");
  EXPECT_EQ(send(response + "\r\n"), "+OK Logged in.\r\n");
  EXPECT_EQ(maildrop_.log.front(), "open u");
}

// A credential with NUL, CR or LF never reaches the maildrop, whichever login
// command carries it. "secret" is the right password: the bytes after the NUL
// must not let the prefix log in.
struct BadCredentialCase {
  std::string name;
  std::vector<std::string> lines;  // the last one is refused
  std::string logged;              // part of the log line
};

void PrintTo(const BadCredentialCase& c, std::ostream* os) {
  *os << c.name;
}

std::string b64(std::string_view text) {
  return base64Encode(text);
}

class Pop3ServerBadCredentialTest : public Pop3ServerTest,
                                    public ::testing::WithParamInterface<BadCredentialCase> {};

TEST_P(Pop3ServerBadCredentialTest, RefusedWithAuthCodeBeforeTheMaildrop) {
  for (bool oneByteAtATime : {false, true}) {
    SCOPED_TRACE(oneByteAtATime ? "one byte at a time" : "whole lines");
    sink_.logs.clear();
    sink_.client.clear();
    maildrop_.log.clear();
    create();
    const auto& lines = GetParam().lines;
    std::string last;
    for (const std::string& line : lines) {
      if (oneByteAtATime) {
        for (char c : line) {
          ASSERT_EQ(server_->feedClient(std::string_view(&c, 1)), 1u);
        }
        last = sink_.take();
      } else {
        last = send(line);
      }
    }
    EXPECT_EQ(last,
              "-ERR [AUTH] NUL, CR and LF are not allowed in user names and passwords.\r\n");
    EXPECT_TRUE(maildrop_.log.empty()) << maildrop_.log.front();
    EXPECT_EQ(server_->state(), Pop3Server::State::Authorization);
    ASSERT_EQ(sink_.logs.size(), 1u);
    EXPECT_NE(sink_.logs[0].find(GetParam().logged), std::string::npos) << sink_.logs[0];
    EXPECT_EQ(sink_.logs[0].find("junk"), std::string::npos) << sink_.logs[0];
    EXPECT_EQ(sink_.logs[0].find("secret"), std::string::npos) << sink_.logs[0];
    // The session goes on: a clean login still works.
    send("USER u\r\n");
    EXPECT_EQ(send("PASS secret\r\n"), "+OK Logged in.\r\n");
  }
}

using namespace std::string_literals;

INSTANTIATE_TEST_SUITE_P(
    Table, Pop3ServerBadCredentialTest,
    ::testing::Values(
        BadCredentialCase{"PassNul",
                          {"USER u\r\n", "PASS secret\0junk\r\n"s},
                          "USER/PASS login refused: the password contains a NUL byte (user u)"},
        BadCredentialCase{"UserNul",
                          {"USER u\0junk\r\n"s},
                          "USER login refused: the user name contains a NUL byte"},
        BadCredentialCase{
            "PlainInitialResponseNulInPassword",
            {"AUTH PLAIN " + b64("\0u\0secret\0junk"s) + "\r\n"},
            "AUTH PLAIN login refused: the password contains a NUL byte (user u)"},
        BadCredentialCase{"PlainCrInPassword",
                          {"AUTH PLAIN\r\n", b64("\0u\0secret\rjunk"s) + "\r\n"},
                          "AUTH PLAIN login refused: the password contains a CR byte"},
        BadCredentialCase{"PlainLfInUser",
                          {"AUTH PLAIN\r\n", b64("\0u\njunk\0secret"s) + "\r\n"},
                          "AUTH PLAIN login refused: the user name contains a LF byte"},
        BadCredentialCase{"PlainCrInAuthzid",
                          {"AUTH PLAIN\r\n", b64("u\rjunk\0u\0secret"s) + "\r\n"},
                          "AUTH PLAIN login refused: the user name contains a CR byte"},
        BadCredentialCase{"LoginNulInUser",
                          {"AUTH LOGIN\r\n", b64("u\0junk"s) + "\r\n"},
                          "AUTH LOGIN login refused: the user name contains a NUL byte"},
        BadCredentialCase{"LoginInitialUserLfInPassword",
                          {"AUTH LOGIN " + b64("u") + "\r\n", b64("secret\njunk"s) + "\r\n"},
                          "AUTH LOGIN login refused: the password contains a LF byte (user u)"}),
    [](const ::testing::TestParamInfo<BadCredentialCase>& info) { return info.param.name; });

TEST_F(Pop3ServerTest, AFailedMessageIsAnErrAndACutClosesWithoutTerminator) {
  login();
  maildrop_.async = true;
  send("RETR 1\r\n");
  server_->onMessageFailed({RespCode::None, "Message was deleted by another client.", {}});
  EXPECT_EQ(sink_.take(), "-ERR Message was deleted by another client.\r\n");
  EXPECT_TRUE(server_->readyForCommand());
  send("RETR 2\r\n");
  server_->onMessageBegin();
  server_->onMessageData("Subject: b\r\n");
  EXPECT_TRUE(server_->streamingBody());
  server_->onMessageCut("upstream failed during a message body: reset");
  EXPECT_EQ(sink_.take(), "+OK 26 octets\r\nSubject: b\r\n");
  EXPECT_EQ(sink_.closedWith, "upstream failed during a message body: reset");
}

TEST_F(Pop3ServerTest, LostMaildropDuringUpdateSaysDeletionsMayBeUnapplied) {
  login();
  maildrop_.async = true;
  send("DELE 1\r\n");
  send("QUIT\r\n");
  server_->onMaildropLost("upstream closed: reset");
  EXPECT_EQ(sink_.take(),
            "-ERR [SYS/TEMP] Upstream connection lost; deletions may not have been applied.\r\n");
  EXPECT_EQ(server_->endReason(), "upstream lost during update: upstream closed: reset");
}

TEST_F(Pop3ServerTest, CongestedClientStopsCommandProcessing) {
  login();
  sink_.congested = true;
  EXPECT_EQ(server_->feedClient("STAT\r\n"), 0u);
  sink_.congested = false;
  EXPECT_EQ(send("STAT\r\n"), "+OK 3 78\r\n");
}

}  // namespace
}  // namespace popbridge::protocol
