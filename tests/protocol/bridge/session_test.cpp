// Whole POP3 sessions against scripted IMAP server bytes: login, STLS, SASL,
// listings and errors. Checks the exact IMAP commands the session emits and
// what the client sees.

#include <ostream>
#include <string>
#include <vector>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

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
}  // namespace popbridge::protocol::session_test
