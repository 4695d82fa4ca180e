// The command counter of the benchmark's relay: W6's "commands per poll" is only as good as it.
#include "tests/bench/imap_relay.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace popbridge::bench {
namespace {

struct Case {
  const char* name;
  std::string stream;  // client-to-server bytes
  std::map<std::string, std::uint64_t> expected;
};

std::vector<Case> cases() {
  return {
      {"plain commands",
       "a1 CAPABILITY\r\na2 LOGIN u p\r\na3 select INBOX\r\na4 LOGOUT\r\n",
       {{"CAPABILITY", 1}, {"LOGIN", 1}, {"SELECT", 1}, {"LOGOUT", 1}}},
      {"UID commands keep their second word",
       "7 UID FETCH 1:* (UID RFC822.SIZE)\r\n8 uid store 3 +FLAGS (\\Deleted)\r\n"
       "9 UID EXPUNGE 3\r\n",
       {{"UID FETCH", 1}, {"UID STORE", 1}, {"UID EXPUNGE", 1}}},
      {"literal data is skipped, even when it looks like a command",
       "a1 LOGIN {4}\r\nuser {15}\r\nx2 LOGOUT\r\npass\r\na2 NOOP\r\n",
       {{"LOGIN", 1}, {"NOOP", 1}}},
      {"non-synchronising literal",
       "A APPEND INBOX {12+}\r\nb1 NOOP\r\nxyz\r\nB NOOP\r\n",
       {{"APPEND", 1}, {"NOOP", 1}}},
      {"AUTHENTICATE answers and DONE are not commands",
       "a AUTHENTICATE PLAIN\r\nAHVzZXIAcGFzcw==\r\nb IDLE\r\nDONE\r\n*\r\n",
       {{"AUTHENTICATE", 1}, {"IDLE", 1}}},
      {"bare LF ends a line too", "a NOOP\nb NOOP\n", {{"NOOP", 2}}},
      {"no tag, no command", " NOOP\r\n+ x\r\n\r\na\r\n(x) NOOP\r\n", {}},
      {"a line not yet ended is not counted", "a NOOP\r\nb NOO", {{"NOOP", 1}}},
  };
}

void expectCounts(const Case& c, const ImapCommandCounter& counter, const std::string& how) {
  EXPECT_EQ(counter.byName(), c.expected) << c.name << " " << how;
  std::uint64_t total = 0;
  for (const auto& [name, count] : c.expected) total += count;
  EXPECT_EQ(counter.commands(), total) << c.name << " " << how;
}

TEST(ImapCommandCounter, CountsCommandLinesOnly) {
  for (const Case& c : cases()) {
    ImapCommandCounter whole;
    whole.consume(c.stream);
    expectCounts(c, whole, "(whole)");
    ImapCommandCounter bytewise;
    for (const char byte : c.stream) bytewise.consume(std::string_view(&byte, 1));
    expectCounts(c, bytewise, "(one byte at a time)");
  }
}

TEST(ImapCommandCounter, TakeNamesReturnsEachCommandOnce) {
  ImapCommandCounter counter;
  counter.consume("a LOGIN u p\r\nb SELECT INBOX\r\n");
  EXPECT_EQ(counter.takeNames(), (std::vector<std::string>{"LOGIN", "SELECT"}));
  EXPECT_TRUE(counter.takeNames().empty());
  counter.consume("c LOGOUT\r\n");
  EXPECT_EQ(counter.takeNames(), (std::vector<std::string>{"LOGOUT"}));
}

}  // namespace
}  // namespace popbridge::bench
