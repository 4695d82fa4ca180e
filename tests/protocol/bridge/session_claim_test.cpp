// The maildrop claim after a proven login (RFC 1939 exclusive access, the per-account session
// cap, RFC 2449 LOGIN-DELAY): what goes upstream and what the client sees for each answer, and
// the LOGIN-DELAY capability.

#include <string>

#include "tests/protocol/bridge/session_fixture.h"

namespace popbridge::protocol::session_test {
namespace {

class SessionClaimTest : public SessionTest {
 protected:
  // USER/PASS up to the upstream's OK to the login, which is when the claim is asked.
  void loginUntilClaim() {
    create();
    sink_.takeClient();
    client("USER alice\r\n");
    sink_.takeClient();
    client("PASS s3cret pass\r\n");
    session_->onUpstreamConnected();
    upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready.\r\n");
    tagged("OK [CAPABILITY " + std::string(kPostLoginCaps) + "] Logged in");
  }
  bool sentUpstream(std::string_view verb) const {
    for (const std::string& command : sink_.upstreamCommands) {
      if (command.find(" " + std::string(verb)) != std::string::npos) return true;
    }
    return false;
  }
};

TEST_F(SessionClaimTest, AGrantedClaimOpensTheFolderItNamed) {
  login();
  EXPECT_EQ(sink_.claims, 1);
  EXPECT_EQ(sink_.claimedAccount, "alice");
  EXPECT_EQ(sink_.claimedFolder, "INBOX");
  EXPECT_TRUE(sink_.claimedExclusive);
}

// A device that QUITs and logs in again at once must not meet its own last session: the
// maildrop is released before the client reads the QUIT answer.
TEST_F(SessionClaimTest, QuitReleasesTheMaildropBeforeTheClientHearsTheAnswer) {
  login();
  const int before = sink_.releases;
  const std::size_t sent = sink_.client.size();
  client("QUIT\r\n");
  EXPECT_GT(sink_.releases, before);
  ASSERT_GT(sink_.releasedAt.size(), static_cast<std::size_t>(before));
  EXPECT_EQ(sink_.releasedAt[before], sent) << "the first release after QUIT";
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(SessionClaimTest, QuitWithDeletionsReleasesOnceTheyAreApplied) {
  login();
  client("DELE 1\r\n");
  sink_.takeClient();
  const int before = sink_.releases;
  client("QUIT\r\n");
  EXPECT_EQ(sink_.releases, before) << "still applying: the maildrop is in use";
  answerUidValidityCheck();
  EXPECT_EQ(sink_.releases, before) << "still applying: the maildrop is in use";
  const std::size_t sent = sink_.client.size();
  tagged("OK Store completed");
  EXPECT_GT(sink_.releases, before);
  ASSERT_GT(sink_.releasedAt.size(), static_cast<std::size_t>(before));
  EXPECT_EQ(sink_.releasedAt[before], sent) << "the first release after QUIT";
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out, 1 messages deleted.\r\n");
}

// A cluster's lease (MaildropSink::confirmUpdate): nothing is applied before the answer, and a
// refusal applies nothing at all.
TEST_F(SessionClaimTest, QuitAppliesDeletionsOnlyOnceTheLeaseIsConfirmed) {
  login();
  sink_.autoConfirm = false;
  client("DELE 1\r\n");
  sink_.takeClient();
  const std::size_t commands = sink_.upstreamCommands.size();
  client("QUIT\r\n");
  EXPECT_EQ(sink_.confirms, 1);
  EXPECT_EQ(sink_.upstreamCommands.size(), commands) << "nothing upstream while confirming";
  EXPECT_EQ(sink_.takeClient(), "");
  session_->onUpdateConfirmed(true);
  answerUidValidityCheck();
  EXPECT_EQ(sink_.lastUpstream(), "P5 UID STORE 10 +FLAGS.SILENT (\\Deleted)\r\n");
  tagged("OK Store completed");
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out, 1 messages deleted.\r\n");
}

TEST_F(SessionClaimTest, AnUnconfirmedLeaseAppliesNothing) {
  login();
  sink_.autoConfirm = false;
  client("DELE 1\r\nDELE 2\r\n");
  sink_.takeClient();
  const int releases = sink_.releases;
  client("QUIT\r\n");
  session_->onUpdateConfirmed(false);
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
  EXPECT_EQ(sink_.upstream.find("EXPUNGE"), std::string::npos);
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Cannot confirm exclusive access to the mailbox; no messages were "
            "deleted.\r\n");
  EXPECT_GT(sink_.releases, releases);
  EXPECT_NE(sink_.logs.find("not applying deletions of UIDs 10:11"), std::string::npos)
      << sink_.logs;
  // A late second answer changes nothing.
  session_->onUpdateConfirmed(true);
  EXPECT_EQ(sink_.upstream.find("STORE"), std::string::npos);
}

TEST_F(SessionClaimTest, QuitWithoutDeletionsAsksNoConfirmation) {
  login();
  sink_.autoConfirm = false;
  client("QUIT\r\n");
  EXPECT_EQ(sink_.confirms, 0);
  EXPECT_EQ(sink_.takeClient(), "+OK Logging out.\r\n");
}

TEST_F(SessionClaimTest, TheClaimNamesTheAccountsUpstreamLoginAndItsMailboxOverrides) {
  sink_.autoResolve = false;
  create();
  client("USER scanner\r\nPASS pw\r\n");
  MailboxOptions mailbox;
  mailbox.folder = "Scans";
  mailbox.exclusive = false;
  session_->onCredentials(UpstreamCredentials{"scans@example.com", "imap-pw", mailbox});
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready.\r\n");
  tagged("OK [CAPABILITY " + std::string(kPostLoginCaps) + "] Logged in");
  EXPECT_EQ(sink_.claimedAccount, "scans@example.com");
  EXPECT_EQ(sink_.claimedFolder, "Scans");
  EXPECT_FALSE(sink_.claimedExclusive);
  EXPECT_EQ(sink_.lastUpstream(), "P2 SELECT Scans\r\n");
}

struct RefusalCase {
  MaildropClaim answer;
  std::string_view reply;
};

class SessionClaimRefusal : public SessionClaimTest,
                            public ::testing::WithParamInterface<RefusalCase> {};

// RFC 1939: the maildrop could not be locked, so -ERR; the server may stay in AUTHORIZATION,
// as after a failed PASS, and popbridge does: the client may try again or QUIT.
TEST_P(SessionClaimRefusal, LogsOutUpstreamSelectsNothingAndStaysInAuthorization) {
  sink_.claimAnswer = GetParam().answer;
  loginUntilClaim();
  EXPECT_EQ(sink_.claims, 1);
  EXPECT_FALSE(sentUpstream("SELECT"));
  EXPECT_FALSE(sentUpstream("EXAMINE"));
  EXPECT_FALSE(sentUpstream("LIST"));
  EXPECT_EQ(sink_.lastUpstream(), "P2 LOGOUT\r\n");
  EXPECT_EQ(sink_.upstreamCloses, 1);
  EXPECT_EQ(sink_.takeClient(), std::string(GetParam().reply));
  EXPECT_EQ(sink_.delays, 0) << "a proven login is no failure: answered at once";
  EXPECT_EQ(session_->state(), Pop3Session::State::Authorization);
  EXPECT_FALSE(sink_.clientClosed);
  EXPECT_FALSE(session_->awaitingUpstream());

  // A later attempt starts afresh and may be granted.
  sink_.claimAnswer = MaildropClaim::Granted;
  client("USER alice\r\nPASS s3cret pass\r\n");
  EXPECT_EQ(sink_.connects, 2);
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready.\r\n");
  tagged("OK [CAPABILITY " + std::string(kPostLoginCaps) + "] Logged in");
  EXPECT_EQ(sink_.claims, 2);
  EXPECT_EQ(sink_.lastUpstream(), sink_.lastTag() + " SELECT INBOX\r\n");
}

INSTANTIATE_TEST_SUITE_P(
    Answers, SessionClaimRefusal,
    ::testing::Values(
        RefusalCase{MaildropClaim::InUse,
                    "-ERR [IN-USE] Mailbox is in use by another session, try again later.\r\n"},
        RefusalCase{MaildropClaim::LoginDelay,
                    "-ERR [LOGIN-DELAY] Logged in too recently; wait before logging in "
                    "again.\r\n"}),
    [](const auto& info) {
      return std::string(info.param.answer == MaildropClaim::InUse ? "InUse" : "LoginDelay");
    });

TEST_F(SessionClaimTest, AWrongPasswordIsNeverClaimedAndGetsTheUsualAuthAnswer) {
  sink_.claimAnswer = MaildropClaim::InUse;
  create();
  sink_.takeClient();
  client("USER alice\r\n");
  sink_.takeClient();
  client("PASS wrong\r\n");
  session_->onUpstreamConnected();
  upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready.\r\n");
  tagged("NO [AUTHENTICATIONFAILED] Authentication failed.");
  EXPECT_EQ(sink_.claims, 0);
  EXPECT_EQ(sink_.delays, 1);
  session_->onDelayElapsed();
  EXPECT_EQ(sink_.takeClient(), "-ERR [AUTH] Authentication failed.\r\n");
}

TEST_F(SessionClaimTest, ALaterAnswerIsWaitedForWithNothingSelected) {
  sink_.autoClaim = false;
  loginUntilClaim();
  const std::size_t sent = upstreamCount();
  EXPECT_EQ(sink_.claims, 1);
  EXPECT_FALSE(session_->awaitingUpstream()) << "no command timer while the sink decides";
  EXPECT_EQ(session_->state(), Pop3Session::State::LoggingIn);
  EXPECT_FALSE(session_->readyForCommand());
  EXPECT_EQ(upstreamCount(), sent);
  session_->onMaildropClaimed(MaildropClaim::Granted);
  EXPECT_EQ(sink_.lastUpstream(), "P2 SELECT INBOX\r\n");
  // A repeated answer changes nothing.
  session_->onMaildropClaimed(MaildropClaim::InUse);
  EXPECT_EQ(sink_.lastUpstream(), "P2 SELECT INBOX\r\n");
  EXPECT_EQ(sink_.takeClient(), "");
}

TEST_F(SessionClaimTest, TheUpstreamGoingAwayWhileTheClaimWaitsEndsTheLogin) {
  sink_.autoClaim = false;
  loginUntilClaim();
  session_->onUpstreamClosed("reset");
  EXPECT_EQ(sink_.takeClient(),
            "-ERR [SYS/TEMP] Upstream server unavailable, try again later.\r\n");
  EXPECT_EQ(session_->state(), Pop3Session::State::Authorization);
  const std::size_t sent = upstreamCount();
  session_->onMaildropClaimed(MaildropClaim::Granted);  // too late: ignored
  EXPECT_EQ(upstreamCount(), sent);
}

// Local accounts are claimed before anything goes upstream: the proxy answers the credentials
// request with the refusal.
TEST_F(SessionClaimTest, ARefusalInsteadOfCredentialsSendsNothingUpstream) {
  for (RespCode code : {RespCode::InUse, RespCode::LoginDelay}) {
    sink_ = RecordingSink{};
    sink_.autoResolve = false;
    create();
    sink_.takeClient();
    client("USER printer\r\n");
    sink_.takeClient();
    client("PASS right\r\n");
    session_->onCredentialsFailed(code, "maildrop in use");
    EXPECT_EQ(sink_.connects, 0);
    EXPECT_TRUE(sink_.upstreamCommands.empty());
    EXPECT_EQ(sink_.delays, 0);
    std::string reply = sink_.takeClient();
    EXPECT_EQ(reply.rfind(code == RespCode::InUse ? "-ERR [IN-USE] " : "-ERR [LOGIN-DELAY] ", 0),
              0u)
        << reply;
    EXPECT_EQ(session_->state(), Pop3Session::State::Authorization);
    EXPECT_EQ(sink_.logs.find("maildrop in use") != std::string::npos, true);
  }
}

TEST_F(SessionClaimTest, CapaAnnouncesLoginDelayInBothStatesWhenSet) {
  options_.loginDelaySeconds = 900;
  login();
  client("CAPA\r\n");
  EXPECT_NE(sink_.takeClient().find("\r\nLOGIN-DELAY 900\r\n"), std::string::npos);
  session_.reset();
  sink_ = RecordingSink{};
  create();
  sink_.takeClient();
  client("CAPA\r\n");
  std::string capa = sink_.takeClient();
  EXPECT_NE(capa.find("\r\nLOGIN-DELAY 900\r\n"), std::string::npos) << capa;
  EXPECT_EQ(capa.find("LOGIN-DELAY 900 USER"), std::string::npos) << "the same for every user";
}

TEST_F(SessionClaimTest, CapaSaysNothingOfLoginDelayWhenItIsOff) {
  create();
  sink_.takeClient();
  client("CAPA\r\n");
  EXPECT_EQ(sink_.takeClient().find("LOGIN-DELAY"), std::string::npos);
}

}  // namespace
}  // namespace popbridge::protocol::session_test
