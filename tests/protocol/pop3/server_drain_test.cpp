// The shutdown inputs of the POP3 server (SIGTERM's drain): drain() ends what has not logged in
// at once, leaves TRANSACTION serving until QUIT, and drainDeadline() ends the rest with nothing
// applied, except an UPDATE already running, which is let finish.

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "protocol/pop3/server.h"

namespace popbridge::protocol {
namespace {

constexpr std::string_view kShutdownBeforeLogin =
    "-ERR [SYS/TEMP] Server shutting down, try again later.\r\n";
constexpr std::string_view kShutdown = "-ERR [SYS/TEMP] Server shutting down.\r\n";

// Answers only when released, so every state can be caught half-way.
class HeldMaildrop : public Maildrop {
 public:
  MaildropEvents* events = nullptr;
  std::vector<std::string> messages{"Subject: a\r\n\r\nfirst\r\n", "Subject: b\r\n\r\nsecond\r\n"};
  std::optional<std::vector<std::size_t>> updated;
  bool closed = false;
  bool holdOpen = false;

  void open(std::string_view, std::string_view pass) override {
    std::string given(pass);
    pending_ = [this, given] {
      if (given == "secret") {
        events->onMaildropOpened();
      } else {
        events->onMaildropOpenFailed({RespCode::Auth, "Authentication failed.", {}});
      }
    };
    if (!holdOpen) release();
  }
  std::size_t messageCount() const override { return messages.size(); }
  std::uint64_t messageSize(std::size_t i) const override { return messages[i].size(); }
  void appendUidl(std::string& out, std::size_t i) const override { out += std::to_string(i); }
  void fetch(std::size_t i, std::optional<std::uint64_t>) override {
    pending_ = [this, i] {
      events->onMessageBegin();
      events->onMessageData(messages[i]);
      events->onMessageEnd();
      events->onFetchDone();
    };
  }
  void update(std::span<const std::size_t> indexes) override {
    updated.emplace(indexes.begin(), indexes.end());
    pending_ = [this, n = indexes.size()] { events->onUpdated(static_cast<std::uint32_t>(n)); };
  }
  void close() override { closed = true; }

  void release() {
    auto run = std::move(pending_);
    pending_ = nullptr;
    if (run) run();
  }

 private:
  std::function<void()> pending_;
};

class Sink : public Pop3ServerSink {
 public:
  std::string client;
  std::optional<std::string> closedWith;
  int tlsStarts = 0;
  int delays = 0;
  void sendToClient(std::string_view bytes) override { client += bytes; }
  void startClientTls() override { ++tlsStarts; }
  void startAuthDelay() override { ++delays; }
  void closeClient(std::string_view reason) override { closedWith = std::string(reason); }
  void log(LogSeverity, std::string_view) override {}
  std::string take() { return std::exchange(client, {}); }
};

class Pop3ServerDrainTest : public ::testing::Test {
 protected:
  void create() {
    server_.emplace(Pop3ServerOptions{.stlsAvailable = true, .allowPlaintextAuth = true}, sink_,
                    maildrop_);
    maildrop_.events = &*server_;
    server_->start();
    sink_.take();
  }
  std::string send(std::string_view line) {
    EXPECT_EQ(server_->feedClient(line), line.size());
    return sink_.take();
  }
  void login() {
    create();
    send("USER u\r\n");
    ASSERT_EQ(send("PASS secret\r\n"), "+OK Logged in.\r\n");
  }

  HeldMaildrop maildrop_;
  Sink sink_;
  std::optional<Pop3Server> server_;
};

TEST_F(Pop3ServerDrainTest, BeforeLoginTheClientGetsSysTempAndIsClosed) {
  create();
  send("USER u\r\n");
  server_->drain();
  EXPECT_EQ(sink_.take(), kShutdownBeforeLogin);
  EXPECT_TRUE(server_->closed());
  EXPECT_TRUE(sink_.closedWith.has_value());
}

TEST_F(Pop3ServerDrainTest, ALoginInFlightIsDroppedWithSysTemp) {
  create();
  maildrop_.holdOpen = true;
  send("USER u\r\n");
  EXPECT_EQ(send("PASS secret\r\n"), "");
  ASSERT_EQ(server_->state(), Pop3Server::State::LoggingIn);
  server_->drain();
  EXPECT_EQ(sink_.take(), kShutdownBeforeLogin);
  EXPECT_TRUE(server_->closed());
  EXPECT_TRUE(maildrop_.closed);
  // The upstream's late answer changes nothing.
  maildrop_.release();
  EXPECT_EQ(sink_.take(), "");
  EXPECT_TRUE(server_->closed());
}

TEST_F(Pop3ServerDrainTest, AFailedLoginsDelayedReplyGivesWayToSysTemp) {
  create();
  send("USER u\r\n");
  EXPECT_EQ(send("PASS wrong\r\n"), "");
  ASSERT_EQ(sink_.delays, 1);
  server_->drain();
  EXPECT_EQ(sink_.take(), kShutdownBeforeLogin);
  server_->onDelayElapsed();
  EXPECT_EQ(sink_.take(), "");
}

TEST_F(Pop3ServerDrainTest, DuringAnStlsHandshakeNoPlaintextGoesOut) {
  create();
  EXPECT_EQ(send("STLS\r\n"), "+OK Begin TLS negotiation.\r\n");
  server_->drain();
  EXPECT_EQ(sink_.take(), "");
  EXPECT_TRUE(server_->closed());
}

TEST_F(Pop3ServerDrainTest, TransactionKeepsServingAndQuitAppliesDeletions) {
  login();
  EXPECT_EQ(send("DELE 1\r\n"), "+OK Marked to be deleted.\r\n");
  server_->drain();
  EXPECT_EQ(sink_.take(), "");
  EXPECT_FALSE(server_->closed());
  EXPECT_EQ(send("RETR 2\r\n"), "");
  maildrop_.release();
  EXPECT_EQ(sink_.take(), "+OK 22 octets\r\nSubject: b\r\n\r\nsecond\r\n.\r\n");
  EXPECT_EQ(send("DELE 2\r\n"), "+OK Marked to be deleted.\r\n");
  send("QUIT\r\n");
  maildrop_.release();
  EXPECT_EQ(sink_.take(), "+OK Logging out, 2 messages deleted.\r\n");
  ASSERT_TRUE(maildrop_.updated);
  EXPECT_EQ(*maildrop_.updated, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(sink_.closedWith, "quit");
}

TEST_F(Pop3ServerDrainTest, TheDeadlineEndsTransactionWithNothingApplied) {
  login();
  send("DELE 1\r\n");
  server_->drain();
  server_->drainDeadline();
  EXPECT_EQ(sink_.take(), kShutdown);
  EXPECT_TRUE(server_->closed());
  EXPECT_FALSE(maildrop_.updated);
  EXPECT_TRUE(maildrop_.closed);
}

TEST_F(Pop3ServerDrainTest, TheDeadlineAnswersARetrStillWaitingForTheUpstream) {
  login();
  send("RETR 1\r\n");
  server_->drain();
  server_->drainDeadline();
  EXPECT_EQ(sink_.take(), kShutdown);
  maildrop_.release();  // too late: the maildrop is closed, nothing follows the -ERR
  EXPECT_EQ(sink_.take(), "");
}

TEST_F(Pop3ServerDrainTest, TheDeadlineMidBodyOnlyCuts) {
  login();
  send("RETR 1\r\n");
  server_->onMessageBegin();
  server_->onMessageData("Subject: a\r\n");
  EXPECT_EQ(sink_.take(), "+OK 21 octets\r\nSubject: a\r\n");
  server_->drain();
  server_->drainDeadline();
  EXPECT_EQ(sink_.take(), "");  // after +OK no -ERR can follow
  EXPECT_TRUE(server_->closed());
}

TEST_F(Pop3ServerDrainTest, AnUpdateAlreadyRunningOutlivesTheDeadline) {
  login();
  send("DELE 2\r\n");
  send("QUIT\r\n");
  ASSERT_EQ(server_->state(), Pop3Server::State::Update);
  server_->drain();
  server_->drainDeadline();
  EXPECT_EQ(sink_.take(), "");
  EXPECT_FALSE(server_->closed());
  maildrop_.release();
  EXPECT_EQ(sink_.take(), "+OK Logging out, 1 messages deleted.\r\n");
  EXPECT_EQ(sink_.closedWith, "quit");
}

TEST_F(Pop3ServerDrainTest, AbortCutsEvenAnUpdateAndSaysSo) {
  login();
  send("DELE 2\r\n");
  send("QUIT\r\n");
  server_->abort("server shutting down");
  EXPECT_EQ(sink_.take(),
            "-ERR [SYS/TEMP] Server shutting down; deletions may not have been applied.\r\n");
  EXPECT_TRUE(server_->closed());
}

}  // namespace
}  // namespace popbridge::protocol
