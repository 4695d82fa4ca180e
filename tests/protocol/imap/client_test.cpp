// The IMAP client state machine against scripted server responses. Every
// script is also fed one byte at a time: the client must not care how the
// upstream's bytes are split.

#include "protocol/imap/client.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "protocol/base64.h"

namespace popbridge::protocol {
namespace {

class Recorder : public ImapClientSink, public ImapClientEvents {
 public:
  std::vector<std::string> sent;
  std::vector<std::string> events;
  int tlsStarts = 0;

  void sendToUpstream(std::string_view bytes) override { sent.emplace_back(bytes); }
  void startUpstreamTls() override { ++tlsStarts; }
  void log(LogSeverity, std::string_view) override {}

  void onLoggedIn() override { events.push_back("logged-in"); }
  void onLoginFailed(ImapLoginFailure failure) override {
    events.push_back("login-failed " + std::to_string(static_cast<int>(failure)));
  }
  void onUntagged(const ImapEvent& event) override {
    events.push_back("untagged " + std::to_string(static_cast<int>(event.kind)));
  }
  void onBody(const ImapEvent& event) override {
    if (event.kind == ImapEvent::Kind::BodyChunk) body += event.data;
  }
  void onCompleted(const ImapEvent& tagged) override {
    events.push_back("completed " + tagged.tag + " " + std::string(imapStatusName(tagged.status)));
  }
  void onBroken(std::string_view reason) override {
    events.push_back("broken " + std::string(reason));
  }

  std::string body;
  std::string last() const { return sent.empty() ? "" : sent.back(); }
};

// A server-first, two-step mechanism: shows that challenges reach the
// mechanism decoded and that its answers (and cancels) go out framed.
class EchoMechanism : public SaslMechanism {
 public:
  std::vector<std::string> challenges;
  std::string_view name() const override { return "X-ECHO"; }
  std::optional<std::string> initialResponse() override { return std::nullopt; }
  std::optional<std::string> respond(std::string_view challenge) override {
    challenges.emplace_back(challenge);
    if (challenge == "stop") return std::nullopt;
    return "re:" + std::string(challenge);
  }
  void wipe() override {}
};

constexpr std::string_view kCaps = "IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN";

class ImapClientTest : public ::testing::TestWithParam<bool> {
 protected:
  void create(ImapClientOptions options = {}) {
    client_.emplace(options, rec_, rec_);
    client_->connected("alice", "pa ss\"word");
  }
  void feed(std::string_view bytes) {
    if (GetParam()) {
      for (char c : bytes) client_->feed(std::string_view(&c, 1));
    } else {
      client_->feed(bytes);
    }
  }
  void loginWithCaps(std::string_view caps) {
    create();
    feed("* OK [CAPABILITY " + std::string(caps) + "] ready\r\n");
  }

  Recorder rec_;
  std::optional<ImapClient> client_;
};

TEST_P(ImapClientTest, PlainWithSaslIrInOneLine) {
  loginWithCaps(kCaps);
  EXPECT_EQ(rec_.last(), "P1 AUTHENTICATE PLAIN " +
                             base64Encode(std::string("\0alice\0pa ss\"word", 17)) + "\r\n");
  EXPECT_TRUE(client_->awaitingReply());
  feed("P1 OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
  EXPECT_TRUE(client_->capabilities().uidPlus);
  EXPECT_TRUE(client_->capabilities().move);
  EXPECT_FALSE(client_->capabilities().condStore);
  EXPECT_TRUE(client_->canSend());
}

TEST_P(ImapClientTest, PlainWithoutSaslIrAnswersTheEmptyChallenge) {
  loginWithCaps("IMAP4rev1 AUTH=PLAIN");
  EXPECT_EQ(rec_.last(), "P1 AUTHENTICATE PLAIN\r\n");
  feed("+ \r\n");
  EXPECT_EQ(rec_.last(), base64Encode(std::string("\0alice\0pa ss\"word", 17)) + "\r\n");
  feed("P1 OK done\r\n");
  // No CAPABILITY in the reply: ask, since logins often extend the list.
  EXPECT_EQ(rec_.last(), "P2 CAPABILITY\r\n");
  EXPECT_TRUE(rec_.events.empty());
  feed("* CAPABILITY IMAP4rev1 UIDPLUS qresync\r\nP2 OK done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
  EXPECT_TRUE(client_->capabilities().uidPlus);
  EXPECT_TRUE(client_->capabilities().condStore);  // QRESYNC implies CONDSTORE
}

// EMAILID (RFC 8474) and X-GM-MSGID are only asked for when the server announces them; the
// list after login replaces the greeting's, which may lack what only logged-in users get.
TEST_P(ImapClientTest, ObjectIdAndGmailExtensionCapabilities) {
  loginWithCaps("IMAP4rev1 SASL-IR AUTH=PLAIN OBJECTID X-GM-EXT-1");
  EXPECT_TRUE(client_->capabilities().objectId);
  EXPECT_TRUE(client_->capabilities().gmExt1);
  feed("P1 OK [CAPABILITY IMAP4rev1 objectid] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
  EXPECT_TRUE(client_->capabilities().objectId);
  EXPECT_FALSE(client_->capabilities().gmExt1);
}

TEST_P(ImapClientTest, GmailExtensionCapabilityInLowerCaseAndLookalikes) {
  loginWithCaps("IMAP4rev1 SASL-IR AUTH=PLAIN OBJECTIDS X-GM-EXT");
  EXPECT_FALSE(client_->capabilities().objectId);
  EXPECT_FALSE(client_->capabilities().gmExt1);
  feed("P1 OK [CAPABILITY IMAP4rev1 x-gm-ext-1 X-GM-EXT-2] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
  EXPECT_FALSE(client_->capabilities().objectId);
  EXPECT_TRUE(client_->capabilities().gmExt1);
}

TEST_P(ImapClientTest, LoginCommandQuotesWhatItCan) {
  loginWithCaps("IMAP4rev1");
  EXPECT_EQ(rec_.last(), "P1 LOGIN alice \"pa ss\\\"word\"\r\n");
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

TEST_P(ImapClientTest, LoginCommandWithSynchronizingLiteral) {
  client_.emplace(ImapClientOptions{}, rec_, rec_);
  client_->connected("alice", "p\xc3\xa4ss");
  feed("* OK [CAPABILITY IMAP4rev1] ready\r\n");
  // 8-bit needs a literal; without LITERAL+ it waits for "+".
  EXPECT_EQ(rec_.last(), "P1 LOGIN alice {5}\r\n");
  std::size_t before = rec_.sent.size();
  feed("+ go ahead\r\n");
  ASSERT_EQ(rec_.sent.size(), before + 1);
  EXPECT_EQ(rec_.last(), "p\xc3\xa4ss\r\n");
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
  // A second "+" is not for anyone.
  feed("+ again\r\n");
  EXPECT_EQ(rec_.events.back(), "broken unexpected continuation request");
}

TEST_P(ImapClientTest, LoginDisabledWithoutPlainIsRefusedLocally) {
  loginWithCaps("IMAP4rev1 LOGINDISABLED");
  EXPECT_TRUE(rec_.sent.empty());
  EXPECT_EQ(rec_.events, std::vector<std::string>{"login-failed 4"});
}

TEST_P(ImapClientTest, GreetingWithoutCapabilitiesAsksForThem) {
  create();
  feed("* OK ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 CAPABILITY\r\n");
  feed("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\nP1 OK done\r\n");
  EXPECT_EQ(rec_.last().rfind("P2 AUTHENTICATE PLAIN ", 0), 0u);
}

TEST_P(ImapClientTest, StartTlsDiscardsTheRestOfTheReadAndForgetsCapabilities) {
  create({.startTls = true});
  feed("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 STARTTLS\r\n");
  // Anything after the OK in the same read was injected before the handshake.
  client_->feed("P1 OK go\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
  EXPECT_EQ(rec_.tlsStarts, 1);
  EXPECT_TRUE(client_->awaitingReply());
  client_->onTlsReady();
  EXPECT_EQ(rec_.last(), "P2 CAPABILITY\r\n");
  feed("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nP2 OK done\r\n");
  EXPECT_EQ(rec_.last(), "P3 AUTHENTICATE PLAIN\r\n");
}

TEST_P(ImapClientTest, StartTlsRequiredButNotOffered) {
  create({.startTls = true});
  feed("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n");
  EXPECT_TRUE(rec_.sent.empty());
  EXPECT_EQ(rec_.events, std::vector<std::string>{"login-failed 2"});
}

TEST_P(ImapClientTest, PreauthGreetingIsRefused) {
  create();
  feed("* PREAUTH welcome\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"login-failed 3"});
  EXPECT_EQ(client_->state(), ImapClient::State::Closed);
}

TEST_P(ImapClientTest, PluggedInMechanismGetsDecodedChallenges) {
  client_.emplace(ImapClientOptions{}, rec_, rec_);
  auto mechanism = std::make_unique<EchoMechanism>();
  EchoMechanism* echo = mechanism.get();
  client_->connected(std::move(mechanism));
  feed("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=X-ECHO] ready\r\n");
  // Server-first: no initial response even with SASL-IR.
  EXPECT_EQ(rec_.last(), "P1 AUTHENTICATE X-ECHO\r\n");
  EXPECT_EQ(client_->capabilities().authMechanisms, std::vector<std::string>{"X-ECHO"});
  feed("+ " + base64Encode("first") + "\r\n");
  EXPECT_EQ(rec_.last(), base64Encode("re:first") + "\r\n");
  // An empty challenge reaches the mechanism as empty, not as a cancel.
  feed("+ \r\n");
  EXPECT_EQ(rec_.last(), base64Encode("re:") + "\r\n");
  // The mechanism declines: the exchange is cancelled with "*".
  feed("+ " + base64Encode("stop") + "\r\n");
  EXPECT_EQ(rec_.last(), "*\r\n");
  EXPECT_EQ(echo->challenges, (std::vector<std::string>{"first", "", "stop"}));
  feed("P1 BAD cancelled\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"login-failed 2"});
}

TEST_P(ImapClientTest, BrokenConnections) {
  loginWithCaps(kCaps);
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  feed("* BYE shutting down\r\n");
  EXPECT_EQ(rec_.events.back(), "broken upstream said BYE: shutting down");
  EXPECT_EQ(client_->state(), ImapClient::State::Closed);
  // Nothing more is interpreted after the client is closed.
  feed("P9 OK late\r\n");
  EXPECT_EQ(rec_.events.size(), 2u);
}

TEST_P(ImapClientTest, UnexpectedTagAndContinuationBreak) {
  loginWithCaps(kCaps);
  feed("P7 OK wrong tag\r\n");
  EXPECT_EQ(rec_.events.back(), "broken reply with unexpected tag P7");

  rec_.events.clear();
  loginWithCaps(kCaps);
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n+ nobody asked\r\n");
  EXPECT_EQ(rec_.events.back(), "broken unexpected continuation request");
}

TEST_P(ImapClientTest, StreamsBodiesAndReportsUntaggedAfterLogin) {
  loginWithCaps(kCaps);
  feed("* 3 EXISTS\r\n");  // before login: not reported
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  client_->send(client_->builder().uidFetch("7", "(BODY.PEEK[])"));
  feed("* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n* 4 EXISTS\r\nP2 OK done\r\n");
  EXPECT_EQ(rec_.body, "hello");
  EXPECT_EQ(rec_.events.back(), "completed P2 OK");
  EXPECT_FALSE(client_->awaitingReply());
}

TEST_P(ImapClientTest, LogoutClosesWithoutWaiting) {
  loginWithCaps(kCaps);
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  client_->logout();
  EXPECT_EQ(rec_.last(), "P2 LOGOUT\r\n");
  EXPECT_EQ(client_->state(), ImapClient::State::Closed);
  feed("* BYE bye\r\nP2 OK done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

// --- the device's address with ID (RFC 2971) -------------------------------------------------

const std::vector<std::pair<std::string, std::string>> kIdFields = {
    {"x-originating-ip", "2001:db8::7"},
    {"x-originating-port", "50123"},
    {"x-connected-ip", "192.0.2.1"},
    {"x-connected-port", "995"}};

std::string idLine(std::string_view tag) {
  return std::string(tag) +
         " ID (\"x-originating-ip\" \"2001:db8::7\" \"x-originating-port\" \"50123\" "
         "\"x-connected-ip\" \"192.0.2.1\" \"x-connected-port\" \"995\")\r\n";
}

const std::string kPlainIr = base64Encode(std::string("\0alice\0pa ss\"word", 17));

TEST_P(ImapClientTest, IdWithTheClientAddressIsPipelinedBeforeAuthenticate) {
  create({.id = kIdFields});
  feed("* OK [CAPABILITY IMAP4rev1 ID SASL-IR AUTH=PLAIN] ready\r\n");
  ASSERT_EQ(rec_.sent.size(), 2u);
  EXPECT_EQ(rec_.sent[0], idLine("P1"));
  EXPECT_EQ(rec_.sent[1], "P2 AUTHENTICATE PLAIN " + kPlainIr + "\r\n");
  feed("* ID (\"name\" \"Dovecot\")\r\nP1 OK ID completed.\r\n");
  EXPECT_TRUE(rec_.events.empty());
  feed("P2 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

TEST_P(ImapClientTest, IdGoesBeforeLoginAndAfterStartTls) {
  create({.startTls = true, .login = UpstreamLogin::Login, .id = kIdFields});
  feed("* OK [CAPABILITY IMAP4rev1 ID STARTTLS] ready\r\n");
  ASSERT_EQ(rec_.sent, std::vector<std::string>{"P1 STARTTLS\r\n"});
  feed("P1 OK Begin TLS\r\n");
  client_->onTlsReady();
  EXPECT_EQ(rec_.last(), "P2 CAPABILITY\r\n");
  feed("* CAPABILITY IMAP4rev1 ID AUTH=PLAIN\r\nP2 OK done\r\n");
  ASSERT_EQ(rec_.sent.size(), 4u);
  EXPECT_EQ(rec_.sent[2], idLine("P3"));
  EXPECT_EQ(rec_.sent[3], "P4 LOGIN alice \"pa ss\\\"word\"\r\n");
  feed("P3 OK ID completed.\r\nP4 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

TEST_P(ImapClientTest, NoIdWithoutTheCapabilityOrWhenDisabled) {
  create({.id = kIdFields});
  feed("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready\r\n");
  EXPECT_EQ(rec_.sent, std::vector<std::string>{"P1 AUTHENTICATE PLAIN " + kPlainIr + "\r\n"});
  rec_.sent.clear();
  create();  // no fields: send_client_address = false
  feed("* OK [CAPABILITY IMAP4rev1 ID SASL-IR AUTH=PLAIN] ready\r\n");
  EXPECT_EQ(rec_.sent, std::vector<std::string>{"P1 AUTHENTICATE PLAIN " + kPlainIr + "\r\n"});
}

TEST_P(ImapClientTest, RefusedIdStillLogsIn) {
  for (std::string_view refusal : {"P1 NO not from you\r\n", "P1 BAD what is ID\r\n"}) {
    rec_.events.clear();
    create({.login = UpstreamLogin::Login, .id = kIdFields});
    feed("* OK [CAPABILITY IMAP4rev1 ID] ready\r\n");
    EXPECT_EQ(rec_.last(), "P2 LOGIN alice \"pa ss\\\"word\"\r\n");
    feed(refusal);
    EXPECT_TRUE(rec_.events.empty());
    feed("P2 OK [CAPABILITY IMAP4rev1] done\r\n");
    EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"}) << refusal;
  }
}

// --- long credentials (OAuth2 tokens, generated passwords) -------------------------------------

TEST_P(ImapClientTest, LongPasswordWithLoginUsesAuthenticatePlainWhenOffered) {
  // Dovecot answers a LOGIN over about 1 KB, literal or not, with "* BYE Input buffer full".
  const std::string password(1200, 'k');
  client_.emplace(ImapClientOptions{.login = UpstreamLogin::Login}, rec_, rec_);
  client_->connected("alice", password);
  feed("* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN] ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 AUTHENTICATE PLAIN\r\n");
  feed("+ \r\n");
  EXPECT_EQ(rec_.last(), base64Encode(std::string("\0alice\0", 7) + password) + "\r\n");
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

TEST_P(ImapClientTest, LongPasswordWithoutAuthPlainGoesAsALiteral) {
  const std::string password(1200, 'k');
  client_.emplace(ImapClientOptions{.login = UpstreamLogin::Auto}, rec_, rec_);
  client_->connected("alice", password);
  feed("* OK [CAPABILITY IMAP4rev1] ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 LOGIN alice {1200}\r\n");
  feed("+ go ahead\r\n");
  EXPECT_EQ(rec_.last(), password + "\r\n");
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});

  rec_.events.clear();
  client_.emplace(ImapClientOptions{.login = UpstreamLogin::Login}, rec_, rec_);
  client_->connected("alice", password);
  feed("* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 LOGIN alice {1200+}\r\n" + password + "\r\n");
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

TEST_P(ImapClientTest, LongInitialResponseWaitsForTheContinuationDespiteSaslIr) {
  const std::string password(4000, 'k');
  client_.emplace(ImapClientOptions{}, rec_, rec_);
  client_->connected("alice", password);
  feed("* OK [CAPABILITY " + std::string(kCaps) + "] ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 AUTHENTICATE PLAIN\r\n");
  feed("+ \r\n");
  EXPECT_EQ(rec_.last(), base64Encode(std::string("\0alice\0", 7) + password) + "\r\n");
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

// OAuth2: mechanism auto follows the server's AUTH= list, an explicit one is
// sent even when not advertised, and none at all is refused before anything
// is sent.
TEST_P(ImapClientTest, BearerMechanismFollowsTheServer) {
  struct Case {
    std::string caps;
    BearerMechanism wanted;
    std::string sent;  // the mechanism name, or "" for a local refusal
  };
  const std::vector<Case> cases = {
      {"IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER", BearerMechanism::Auto, "OAUTHBEARER"},
      {"IMAP4rev1 SASL-IR AUTH=xoauth2", BearerMechanism::Auto, "XOAUTH2"},
      {"IMAP4rev1 SASL-IR AUTH=PLAIN", BearerMechanism::Auto, ""},
      {"IMAP4rev1 SASL-IR AUTH=PLAIN", BearerMechanism::XOAuth2, "XOAUTH2"},
      {"IMAP4rev1 SASL-IR AUTH=XOAUTH2", BearerMechanism::OAuthBearer, "OAUTHBEARER"},
      {"IMAP4rev1 SASL-IR LOGINDISABLED AUTH=XOAUTH2", BearerMechanism::Auto, "XOAUTH2"},
  };
  for (const Case& c : cases) {
    rec_ = Recorder{};
    client_.emplace(ImapClientOptions{}, rec_, rec_);
    client_->connected(BearerLogin{"shared@example.com", "tok", c.wanted, "imap.example.com", 993});
    feed("* OK [CAPABILITY " + c.caps + "] ready\r\n");
    if (c.sent.empty()) {
      EXPECT_TRUE(rec_.sent.empty()) << c.caps;
      EXPECT_EQ(rec_.events, std::vector<std::string>{
                                 "login-failed " +
                                 std::to_string(static_cast<int>(ImapLoginFailure::NoMechanism))});
      continue;
    }
    std::string message = c.sent == "XOAUTH2" ? std::string(
                                                    "user=shared@example.com\x01"
                                                    "auth=Bearer tok\x01\x01")
                                              : std::string(
                                                    "n,a=shared@example.com,\x01"
                                                    "host=imap.example.com\x01"
                                                    "port=993\x01"
                                                    "auth=Bearer tok\x01\x01");
    EXPECT_EQ(rec_.last(), "P1 AUTHENTICATE " + c.sent + " " + base64Encode(message) + "\r\n")
        << c.caps;
    feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
    EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"}) << c.caps;
  }
}

TEST_P(ImapClientTest, BearerWithoutSaslIrAnswersTheEmptyChallenge) {
  client_.emplace(ImapClientOptions{}, rec_, rec_);
  client_->connected(BearerLogin{"u", "tok", BearerMechanism::Auto, "h", 143});
  feed("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2] ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 AUTHENTICATE XOAUTH2\r\n");
  feed("+ \r\n");
  EXPECT_EQ(rec_.last(), base64Encode(std::string("user=u\x01"
                                                  "auth=Bearer tok\x01\x01")) +
                             "\r\n");
  feed("P1 OK [CAPABILITY IMAP4rev1] done\r\n");
  EXPECT_EQ(rec_.events, std::vector<std::string>{"logged-in"});
}

// RFC 7628 3.2.3 and what Dovecot, Gmail and Microsoft 365 send: the error is
// a base64 JSON challenge; XOAUTH2 answers with an empty line, OAUTHBEARER
// with ^A; then the tagged NO is a rejection of the credentials.
TEST_P(ImapClientTest, BearerErrorExchange) {
  struct Case {
    BearerMechanism mechanism;
    std::string name;
    std::string answer;
  };
  for (const Case& c : {Case{BearerMechanism::XOAuth2, "XOAUTH2", "\r\n"},
                        Case{BearerMechanism::OAuthBearer, "OAUTHBEARER", "AQ==\r\n"}}) {
    rec_ = Recorder{};
    client_.emplace(ImapClientOptions{}, rec_, rec_);
    client_->connected(BearerLogin{"u", "tok", c.mechanism, "h", 143});
    feed("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready\r\n");
    ASSERT_EQ(rec_.sent.size(), 1u);
    feed("+ " + base64Encode(R"({"status":"401","schemes":"bearer"})") + "\r\n");
    EXPECT_EQ(rec_.last(), c.answer) << c.name;
    feed("P1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    EXPECT_EQ(rec_.events,
              std::vector<std::string>{
                  "login-failed " + std::to_string(static_cast<int>(ImapLoginFailure::Rejected))});
  }
}

TEST_P(ImapClientTest, BearerMechanismIsChosenAfterStartTls) {
  client_.emplace(ImapClientOptions{.startTls = true}, rec_, rec_);
  client_->connected(BearerLogin{"u", "tok", BearerMechanism::Auto, "h", 143});
  // Before TLS the server offers nothing; afterwards it offers XOAUTH2.
  feed("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n");
  EXPECT_EQ(rec_.last(), "P1 STARTTLS\r\n");
  feed("P1 OK go\r\n");
  client_->onTlsReady();
  EXPECT_EQ(rec_.last(), "P2 CAPABILITY\r\n");
  feed("* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2\r\nP2 OK done\r\n");
  EXPECT_EQ(rec_.last().rfind("P3 AUTHENTICATE XOAUTH2 ", 0), 0u) << rec_.last();
}

// holdBeforeLogin (popbridge check-upstream, /readyz): every step before the login is reported,
// and the client waits; login() goes on, logout() ends it without credentials ever sent.
class StepRecorder : public Recorder {
 public:
  void onGreeting(const ImapEvent& greeting) override {
    events.push_back("greeting " + greeting.text);
  }
  void onCapabilities(const std::vector<std::string>& words) override {
    std::string line = "capabilities";
    for (const auto& word : words) line += " " + word;
    events.push_back(line);
  }
  void onReadyToLogin() override { events.push_back("ready-to-login"); }
};

TEST_P(ImapClientTest, HoldBeforeLoginReportsEachStepAndWaits) {
  StepRecorder rec;
  ImapClientOptions options;
  options.startTls = true;
  options.holdBeforeLogin = true;
  ImapClient client(options, rec, rec);
  client.connected("alice", "secret-pw");
  auto feedTo = [&](std::string_view bytes) {
    if (GetParam()) {
      for (char c : bytes) client.feed(std::string_view(&c, 1));
    } else {
      client.feed(bytes);
    }
  };
  feedTo("* OK hello\r\n");
  EXPECT_EQ(rec.last(), "P1 CAPABILITY\r\n");
  feedTo("* CAPABILITY IMAP4rev1 STARTTLS\r\nP1 OK done\r\n");
  EXPECT_EQ(rec.last(), "P2 STARTTLS\r\n");
  feedTo("P2 OK go\r\n");
  client.onTlsReady();
  feedTo("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\nP3 OK done\r\n");
  EXPECT_EQ(rec.events, (std::vector<std::string>{
                            "greeting hello", "capabilities IMAP4REV1 STARTTLS",
                            "capabilities IMAP4REV1 AUTH=PLAIN SASL-IR", "ready-to-login"}));
  EXPECT_EQ(rec.last(), "P3 CAPABILITY\r\n") << "nothing sent while held";
  EXPECT_FALSE(client.awaitingReply());
  EXPECT_FALSE(client.canSend());
  client.login();
  EXPECT_EQ(rec.last().rfind("P4 AUTHENTICATE PLAIN ", 0), 0u) << rec.last();
  feedTo("P4 OK [CAPABILITY IMAP4rev1] in\r\n");
  EXPECT_EQ(rec.events.back(), "logged-in");
}

TEST_P(ImapClientTest, HeldClientLogsOutWithoutCredentials) {
  StepRecorder rec;
  ImapClientOptions options;
  options.holdBeforeLogin = true;
  ImapClient client(options, rec, rec);
  client.connected("", "");
  client.feed("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n");
  EXPECT_EQ(rec.events, (std::vector<std::string>{
                            "greeting hi", "capabilities IMAP4REV1 AUTH=PLAIN", "ready-to-login"}));
  EXPECT_TRUE(rec.sent.empty());
  client.logout();
  ASSERT_EQ(rec.sent.size(), 1u);
  EXPECT_EQ(rec.last(), "P1 LOGOUT\r\n");
  EXPECT_EQ(client.state(), ImapClient::State::Closed);
}

INSTANTIATE_TEST_SUITE_P(Split, ImapClientTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("ByteByByte") : std::string("Whole");
                         });

struct LoginReplyCase {
  std::string name;
  std::string reply;
  ImapLoginFailure failure;
};
// ctest shows the printed parameter in each test name.
void PrintTo(const LoginReplyCase& c, std::ostream* os) {
  *os << c.name;
}

class ImapClientLoginReplyTest : public ::testing::TestWithParam<LoginReplyCase> {};

TEST_P(ImapClientLoginReplyTest, MapsTheTaggedReply) {
  Recorder rec;
  ImapClient client({}, rec, rec);
  client.connected("u", "p");
  client.feed("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n");
  client.feed("P1 " + GetParam().reply + "\r\n");
  EXPECT_EQ(rec.events, std::vector<std::string>{"login-failed " + std::to_string(static_cast<int>(
                                                                       GetParam().failure))});
  EXPECT_EQ(client.state(), ImapClient::State::Closed);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ImapClientLoginReplyTest,
    ::testing::Values(LoginReplyCase{"PlainNo", "NO bad password", ImapLoginFailure::Rejected},
                      LoginReplyCase{"AuthenticationFailed", "NO [AUTHENTICATIONFAILED] no",
                                     ImapLoginFailure::Rejected},
                      LoginReplyCase{"Expired", "NO [EXPIRED] renew", ImapLoginFailure::Rejected},
                      LoginReplyCase{"InUse", "NO [INUSE] busy", ImapLoginFailure::InUse},
                      LoginReplyCase{"Unavailable", "NO [UNAVAILABLE] later",
                                     ImapLoginFailure::Unavailable},
                      LoginReplyCase{"Bad", "BAD what", ImapLoginFailure::Unavailable}),
    [](const ::testing::TestParamInfo<LoginReplyCase>& info) { return info.param.name; });

}  // namespace
}  // namespace popbridge::protocol
