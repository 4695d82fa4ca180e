// Sessions whose upstream credentials are an OAuth2 access token: the login
// goes out as XOAUTH2 or OAUTHBEARER, a refused token is renewed once, and a
// token source that cannot deliver maps to the RFC 2449 code the device can
// act on.

#include <string>

#include "protocol/base64.h"
#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

class BearerSink : public RecordingSink {
 public:
  bool renewCredentials() override {
    ++renewCalls;
    return renewable;
  }
  int renewCalls = 0;
  bool renewable = true;
};

UpstreamCredentials bearer(std::string token) {
  UpstreamCredentials credentials;
  credentials.user = "shared@example.com";
  credentials.bearer = BearerMechanism::Auto;
  credentials.accessToken = std::move(token);
  credentials.bearerHost = "imap.example.com";
  credentials.bearerPort = 993;
  return credentials;
}

constexpr std::string_view kOAuthCaps = "IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER";

class SessionBearerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.allowPlaintextAuth = true;
    sink_.autoResolve = false;
    session_.emplace(options_, sink_);
    sink_.session = &*session_;
    session_->start();
    sink_.takeClient();
    session_->feedClient("USER printer\r\nPASS device-pass\r\n");
    sink_.takeClient();
    ASSERT_EQ(sink_.resolveCalls, 1);
  }
  void upstream(std::string_view bytes) { session_->feedUpstream(bytes); }
  void tagged(std::string_view rest) {
    upstream(sink_.lastTag() + " " + std::string(rest) + "\r\n");
  }
  // Connects and answers the greeting; returns the AUTHENTICATE line.
  std::string greet() {
    session_->onUpstreamConnected();
    upstream("* OK [CAPABILITY " + std::string(kOAuthCaps) + "] ready\r\n");
    authTag_ = sink_.lastTag();
    return sink_.lastUpstream();
  }
  void refuse() {
    upstream("+ " + base64Encode(R"({"status":"invalid_token"})") + "\r\n");
    EXPECT_EQ(sink_.lastUpstream(), "AQ==\r\n");
    upstream(authTag_ + " NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
  }
  void openMailbox() {
    tagged("OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE] Logged in");
    ASSERT_NE(sink_.lastUpstream().find("SELECT"), std::string::npos) << sink_.lastUpstream();
    upstream("* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n");
    tagged("OK [READ-WRITE] done");
  }

  SessionOptions options_;
  BearerSink sink_;
  std::string authTag_;
  std::optional<Pop3Session> session_;
};

TEST_F(SessionBearerTest, LogsInWithTheTokenNotThePassword) {
  session_->onCredentials(bearer("tok-1"));
  std::string line = greet();
  EXPECT_EQ(line, "P1 AUTHENTICATE OAUTHBEARER " +
                      base64Encode(std::string("n,a=shared@example.com,\x01"
                                               "host=imap.example.com"
                                               "\x01"
                                               "port=993\x01"
                                               "auth=Bearer tok-1\x01\x01")) +
                      "\r\n");
  openMailbox();
  EXPECT_EQ(sink_.takeClient().rfind("+OK", 0), 0u);
  EXPECT_EQ(session_->state(), Pop3Session::State::Transaction);
  EXPECT_EQ(sink_.upstream.find("device-pass"), std::string::npos);
  EXPECT_EQ(sink_.renewCalls, 0);
}

TEST_F(SessionBearerTest, ARefusedTokenIsRenewedOnceOnANewConnection) {
  session_->onCredentials(bearer("tok-old"));
  greet();
  refuse();
  EXPECT_EQ(sink_.renewCalls, 1);
  EXPECT_GE(sink_.upstreamCloses, 1);
  EXPECT_EQ(sink_.takeClient(), "");  // the device still waits
  session_->onCredentials(bearer("tok-new"));
  EXPECT_EQ(sink_.connects, 2);
  std::string line = greet();
  EXPECT_NE(line.find(base64Encode(std::string("n,a=shared@example.com,\x01"
                                               "host=imap.example.com"
                                               "\x01"
                                               "port=993\x01"
                                               "auth=Bearer tok-new\x01\x01"))),
            std::string::npos);
  openMailbox();
  EXPECT_EQ(sink_.takeClient().rfind("+OK", 0), 0u);
}

TEST_F(SessionBearerTest, ATokenRefusedTwiceIsAnAuthFailure) {
  session_->onCredentials(bearer("tok-1"));
  greet();
  refuse();
  session_->onCredentials(bearer("tok-2"));
  greet();
  refuse();
  EXPECT_EQ(sink_.renewCalls, 1);
  EXPECT_NE(sink_.logs.find("freshly renewed access token too"), std::string::npos) << sink_.logs;
  session_->onDelayElapsed();
  EXPECT_EQ(sink_.takeClient(), "-ERR [AUTH] Authentication failed.\r\n");
}

TEST_F(SessionBearerTest, NothingToRenewIsAnAuthFailure) {
  sink_.renewable = false;
  session_->onCredentials(bearer("tok-1"));
  greet();
  refuse();
  EXPECT_EQ(sink_.renewCalls, 1);
  session_->onDelayElapsed();
  EXPECT_EQ(sink_.takeClient(), "-ERR [AUTH] Authentication failed.\r\n");
}

// A shared mailbox the identity may not open, or a server that wants TLS: another token would be
// refused the same way, so none is asked for.
TEST_F(SessionBearerTest, RefusalsATokenCannotCureAreNotRetried) {
  for (std::string code : {"AUTHORIZATIONFAILED", "PRIVACYREQUIRED", "CONTACTADMIN"}) {
    session_->onCredentials(bearer("tok-1"));
    greet();
    upstream(authTag_ + " NO [" + code + "] no\r\n");
    EXPECT_EQ(sink_.renewCalls, 0) << code;
    EXPECT_NE(sink_.logs.find("[" + code + "]; a new access token would not change that"),
              std::string::npos);
    session_->onDelayElapsed();
    EXPECT_EQ(sink_.takeClient(), "-ERR [AUTH] Authentication failed.\r\n") << code;
    session_->feedClient("USER printer\r\nPASS device-pass\r\n");
    sink_.takeClient();
  }
}

TEST_F(SessionBearerTest, TokenSourceFailuresMapToCodes) {
  struct Case {
    RespCode code;
    std::string reply;
  };
  for (const Case& c :
       {Case{RespCode::Auth, "-ERR [AUTH] Authentication failed.\r\n"},
        Case{RespCode::SysTemp,
             "-ERR [SYS/TEMP] Upstream server unavailable, try again later.\r\n"},
        Case{RespCode::SysPerm, "-ERR [SYS/PERM] Upstream configuration error.\r\n"}}) {
    session_->onCredentialsFailed(c.code, "[oauth2.box] reason");
    session_->onDelayElapsed();
    EXPECT_EQ(sink_.takeClient(), c.reply);
    EXPECT_EQ(sink_.connects, 0);
    EXPECT_NE(sink_.logs.find("no upstream credentials: [oauth2.box] reason"), std::string::npos);
    // The next attempt of the same session.
    session_->feedClient("USER printer\r\nPASS device-pass\r\n");
    sink_.takeClient();
  }
}

TEST_F(SessionBearerTest, NoBearerMechanismOfferedIsAConfigurationError) {
  session_->onCredentials(bearer("tok-1"));
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n");
  EXPECT_EQ(sink_.upstreamCommands.size(), 0u);
  session_->onDelayElapsed();
  EXPECT_EQ(sink_.takeClient(), "-ERR [SYS/PERM] Upstream configuration error.\r\n");
}

}  // namespace
}  // namespace popbridge::protocol::session_test
