// Many POP3 sessions at once on two worker loops, several of them on one mailbox: what the loops
// share (the login guard, the metrics, the session registry, and the snapshot cache and pool
// once they exist) is used from both threads at the same time. In the normal build this checks
// that every session still sees exactly its mailbox; .ci/test also runs it against a popbridge
// built with ThreadSanitizer (PBTEST_POPBRIDGE_BINARY), which turns a data race into a report.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"
#include "tests/support/text_match.h"

namespace popbridge::test {
namespace {

constexpr int kThreads = 24;
constexpr int kSessionsPerThread = 3;

// What a session saw: the STAT count, the UIDL listing and the RETR sizes checked against LIST.
struct Mailbox {
  std::uint64_t count = 0;
  std::string uidl;
};

// One session: USER, PASS, STAT, UIDL, LIST, RETR of every message (each size must match LIST),
// QUIT. Returns an error text, empty on success.
std::string pollAndDownload(std::uint16_t port, const DovecotUser& user, Mailbox& seen) {
  Pop3TestClient pop(port);
  pop.setTimeout(30000);
  if (!startsWith(pop.command("USER " + user.name), "+OK")) return "USER refused";
  const std::string pass = pop.command("PASS " + user.password);
  if (!startsWith(pass, "+OK")) return "PASS: " + pass;
  const std::string stat = pop.command("STAT");
  if (!startsWith(stat, "+OK ")) return "STAT: " + stat;
  seen.count = std::stoull(stat.substr(4));
  seen.uidl = pop.multiLine("UIDL");
  const std::string list = pop.multiLine("LIST");
  std::size_t at = 0;
  std::uint64_t listed = 0;
  while (at < list.size()) {
    const auto end = list.find("\r\n", at);
    const std::string line = list.substr(at, end - at);
    at = end == std::string::npos ? list.size() : end + 2;
    const auto space = line.find(' ');
    const std::string number = line.substr(0, space);
    const std::uint64_t size = std::stoull(line.substr(space + 1));
    const std::string body = pop.multiLine("RETR " + number);
    if (body.size() != size) {
      return "RETR " + number + ": " + std::to_string(body.size()) + " octets, LIST said " +
             std::to_string(size);
    }
    ++listed;
  }
  if (listed != seen.count)
    return "LIST has " + std::to_string(listed) + " lines, STAT said " + std::to_string(seen.count);
  if (!startsWith(pop.command("QUIT"), "+OK")) return "QUIT refused";
  return "";
}

class ConcurrentSessionsTest : public ::testing::Test {
 protected:
  // Runs kThreads threads of kSessionsPerThread sessions each, thread i on users_[i % 3], and
  // returns what each user's sessions saw (they must all agree) or fails the test.
  std::map<std::string, Mailbox> wave(std::uint16_t port) {
    std::mutex mutex;
    std::vector<std::string> failures;
    std::map<std::string, std::vector<Mailbox>> seen;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const DovecotUser& user = dovecot_.user(kUsers[t % 3]);
        for (int s = 0; s < kSessionsPerThread; ++s) {
          Mailbox mailbox;
          std::string error;
          try {
            error = pollAndDownload(port, user, mailbox);
          } catch (const std::exception& e) {
            error = e.what();
          }
          const std::lock_guard lock(mutex);
          if (!error.empty()) failures.push_back(user.name + ": " + error);
          seen[user.name].push_back(mailbox);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    for (const auto& failure : failures) ADD_FAILURE() << failure;
    std::map<std::string, Mailbox> agreed;
    for (const auto& [name, mailboxes] : seen) {
      agreed[name] = mailboxes.front();
      for (const auto& mailbox : mailboxes) {
        EXPECT_EQ(mailbox.count, mailboxes.front().count) << name;
        EXPECT_EQ(mailbox.uidl, mailboxes.front().uidl) << name;
      }
    }
    return agreed;
  }

  static constexpr const char* kUsers[] = {"alice", "bob", "carol"};
  DovecotFixture dovecot_;
};

TEST_F(ConcurrentSessionsTest, SessionsOnTwoWorkersEachSeeTheirWholeMailbox) {
  dovecot_.seedMaildir("alice", {simpleMessage(1), dotLinesMessage(), simpleMessage(3, 5000),
                                 mimeAttachmentMessage(20000)});
  dovecot_.seedMaildir("bob", {simpleMessage(11), simpleMessage(12, 3000)});
  dovecot_.seedMaildir("carol", {eightBitMessage()});
  PopbridgeProcess::Options options;
  options.server = "workers = 2\nmax_connections_per_ip = 0\nmax_sessions_per_account = 0\n";
  options.mailbox = "exclusive = false\n";
  options.logLevel = "info";
  PopbridgeProcess proxy(dovecot_, options);

  auto first = wave(proxy.port());
  EXPECT_EQ(first["alice"].count, 4u);
  EXPECT_EQ(first["bob"].count, 2u);
  EXPECT_EQ(first["carol"].count, 1u);

  // New mail between two waves: whatever a loop kept of the first wave must not hide it.
  dovecot_.seedMaildir("alice", {simpleMessage(5), simpleMessage(6, 8000)});
  auto second = wave(proxy.port());
  EXPECT_EQ(second["alice"].count, 6u);
  EXPECT_TRUE(second["alice"].uidl.starts_with(first["alice"].uidl))
      << "the first four messages keep their numbers and UIDLs";
  EXPECT_EQ(second["bob"].uidl, first["bob"].uidl);
  EXPECT_EQ(second["carol"].uidl, first["carol"].uidl);
}

}  // namespace
}  // namespace popbridge::test
