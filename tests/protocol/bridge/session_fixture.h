#pragma once

// The scripted-upstream fixture shared by the session tests: a recording
// sink and a login that drives USER/PASS through the IMAP login, SELECT and
// snapshot to TRANSACTION.

#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "protocol/base64.h"
#include "protocol/bridge/session.h"

namespace popbridge::protocol::session_test {

inline constexpr std::string_view kCaps =
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN AUTH=LOGIN";
inline constexpr std::string_view kPostLoginCaps =
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
  void claimMaildrop(const MaildropClaimRequest& request) override {
    ++claims;
    claimedAccount = request.account;
    claimedFolder = request.folder;
    claimedExclusive = request.exclusive;
    if (autoClaim && session) session->onMaildropClaimed(claimAnswer);
  }
  void releaseMaildrop() override {
    ++releases;
    releasedAt.push_back(client.size());
  }
  bool confirmUpdate() override {
    ++confirms;
    return autoConfirm;
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
  // Metrics hooks.
  void noteLogin(bool ok, RespCode code) override {
    ++(ok ? loginsOk : loginsFailed);
    lastLoginCode = code;
  }
  void noteRetrieved(bool top) override { ++(top ? tops : retrieved); }
  void noteDeletionsRefused(std::uint32_t count) override { deletionsRefused += count; }
  void noteUpstreamLoggedIn() override { ++upstreamLogins; }
  void noteUidValidityChanged() override { ++uidValidityChanges; }
  void noteDeleted(DeletePolicy policy, std::uint32_t count) override {
    deletedBy[static_cast<std::size_t>(policy)] += count;
  }

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
  bool autoClaim = true;  // answer claimMaildrop at once with claimAnswer
  MaildropClaim claimAnswer = MaildropClaim::Granted;
  int claims = 0, releases = 0;
  bool autoConfirm = true;  // confirmUpdate answers at once
  int confirms = 0;
  std::vector<std::size_t> releasedAt;  // client bytes sent by each releaseMaildrop
  std::string claimedAccount, claimedFolder;
  bool claimedExclusive = false;
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
  int loginsOk = 0, loginsFailed = 0, retrieved = 0, tops = 0, upstreamLogins = 0;
  int uidValidityChanges = 0;
  RespCode lastLoginCode = RespCode::None;
  std::uint32_t deletionsRefused = 0;
  std::array<std::uint32_t, 5> deletedBy{};  // by DeletePolicy
};

struct Message {
  std::uint32_t uid;
  std::string body;
  bool deleted = false;
};

// RFC 1939 UPDATE must not delete by UIDs of another UIDVALIDITY, so QUIT with deletions first
// asks STATUS: the last upstream command must be exactly that STATUS, answered here with
// `uidValidity` and a tagged OK.
inline void answerUidValidityCheck(Pop3Session& session, const RecordingSink& sink,
                                   std::string_view uidValidity,
                                   std::string_view folder = "INBOX") {
  const std::string tag = sink.lastTag();
  ASSERT_EQ(sink.lastUpstream(), tag + " STATUS " + std::string(folder) + " (UIDVALIDITY)\r\n");
  session.feedUpstream("* STATUS " + std::string(folder) + " (UIDVALIDITY " +
                       std::string(uidValidity) + ")\r\n");
  session.feedUpstream(tag + " OK Status completed\r\n");
}

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
    uidValidity_ = uidValidity;
    ASSERT_EQ(sink_.lastUpstream(), "P3 UID FETCH 1:* (RFC822.SIZE FLAGS)\r\n");
    upstream(snapshotFetch());
    tagged("OK Fetch completed");
    ASSERT_EQ(sink_.takeClient(), "+OK Logged in.\r\n");
    ASSERT_EQ(session_->state(), Pop3Session::State::Transaction);
  }

  // USER/PASS and the upstream login, up to the first command after it.
  void loginUpstream(std::string_view postLoginCaps = kPostLoginCaps) {
    create();
    client("USER alice\r\nPASS s3cret pass\r\n");
    session_->onUpstreamConnected();
    upstream("* OK [CAPABILITY " + std::string(kCaps) + "] ready.\r\n");
    tagged("OK [CAPABILITY " + std::string(postLoginCaps) + "] Logged in");
    sink_.takeClient();
  }

  // Serves the body of `uid` for the last UID FETCH.
  void serveBody(const std::string& body, std::uint32_t seq, std::uint32_t uid,
                 std::string_view section = "BODY[]") {
    upstream("* " + std::to_string(seq) + " FETCH (UID " + std::to_string(uid) + " " +
             std::string(section) + " {" + std::to_string(body.size()) + "}\r\n" + body + ")\r\n");
    tagged("OK Fetch completed");
  }

  // QUIT with deletions first re-checks UIDVALIDITY: answers that STATUS with `uidValidity`, the
  // session's unless given.
  void answerUidValidityCheck(std::string_view uidValidity = {},
                              std::string_view folder = "INBOX") {
    session_test::answerUidValidityCheck(*session_, sink_,
                                         uidValidity.empty() ? uidValidity_ : uidValidity, folder);
  }

  std::size_t upstreamCount() const { return sink_.upstreamCommands.size(); }

  SessionOptions options_;
  RecordingSink sink_;
  std::optional<Pop3Session> session_;
  std::vector<Message> messages_;
  std::string pending_;
  std::string expectedSelect_ = "P2 SELECT INBOX\r\n";
  std::string uidValidity_ = "1234";  // the session's, as SELECT answered it
};

}  // namespace popbridge::protocol::session_test
