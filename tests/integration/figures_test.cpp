// Side-by-side figures for the proxy issue: the same operations through
// popbridge and directly against Dovecot's own POP3 on the same mailbox.
// These print measurements; the only assertions are about correctness and
// about memory staying flat, never about time.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void login(Pop3TestClient& pop, const DovecotUser& user) {
  ASSERT_EQ(pop.command("USER " + user.name).rfind("+OK", 0), 0u);
  ASSERT_EQ(pop.command("PASS " + user.password).rfind("+OK", 0), 0u);
}

// RETR 1 through curl, which reads big bodies far faster than the line-by-line
// test client; returns the octets received, or nothing when curl could not run.
std::optional<std::uint64_t> curlRetrOctets(const DovecotUser& user, std::uint16_t port) {
  std::string command = "curl -s --max-time 300 --user " + user.name + ":" + user.password +
                        " pop3://127.0.0.1:" + std::to_string(port) + "/1 | wc -c";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  char count[64] = {};
  bool read = fgets(count, sizeof count, pipe) != nullptr;
  pclose(pipe);
  if (!read) return std::nullopt;
  return std::stoull(count);
}

TEST(Figures, HundredMegabyteRetrKeepsRssFlat) {
  DovecotFixture dovecot;
  const std::size_t size = 100 * 1024 * 1024;
  dovecot.seedMaildir("alice", {bigMessage(size)});
  PopbridgeProcess proxy(dovecot, {});
  MemoryUsage before = memoryOf(proxy.pid());
  double cpuBefore = cpuSecondsOf(proxy.pid());

  // curl reads the 100 MB far faster than the line-by-line test client; the
  // byte-exact comparison of big bodies is done at 20 MB in proxy_test.cpp.
  auto start = std::chrono::steady_clock::now();
  std::optional<std::uint64_t> octets = curlRetrOctets(dovecot.user("alice"), proxy.port());
  double elapsed = secondsSince(start);
  MemoryUsage after = memoryOf(proxy.pid());
  double cpu = cpuSecondsOf(proxy.pid()) - cpuBefore;
  ASSERT_TRUE(octets.has_value());
  EXPECT_EQ(*octets, size);
  std::printf(
      "[ figures ] 100 MB RETR via popbridge: %.2f s (%.0f MB/s), popbridge CPU %.2f s; "
      "RSS before %ld KiB, peak %ld KiB\n",
      elapsed, size / 1048576.0 / elapsed, cpu, before.rssKiB, after.peakKiB);
  // Streaming: the peak grows by buffers bounded by configuration, not by the message.
  if (rssBoundsApply()) {
    EXPECT_LT(after.peakKiB - before.rssKiB, 8 * 1024);
  }
}

TEST(Figures, TwentyMegabyteRetrAndTenThousandMessagePoll) {
  DovecotFixture dovecot;
  std::string big = bigMessage(20 * 1024 * 1024);
  dovecot.seedMaildir("bob", {big});
  std::vector<std::string> many;
  many.reserve(10000);
  for (int i = 0; i < 10000; ++i) many.push_back(simpleMessage(i, 300));
  dovecot.seedMaildir("alice", many);
  PopbridgeProcess proxy(dovecot, {});

  auto retr = [&](std::uint16_t port) {
    Pop3TestClient pop(port);
    login(pop, dovecot.user("bob"));
    auto start = std::chrono::steady_clock::now();
    std::string body = pop.multiLine("RETR 1");
    double elapsed = secondsSince(start);
    EXPECT_EQ(body.size(), big.size());
    pop.command("QUIT");
    return elapsed;
  };
  auto poll = [&](std::uint16_t port) {
    auto start = std::chrono::steady_clock::now();
    Pop3TestClient pop(port);
    login(pop, dovecot.user("alice"));
    EXPECT_EQ(pop.command("STAT").rfind("+OK 10000 ", 0), 0u);
    std::string uidl = pop.multiLine("UIDL");
    EXPECT_EQ(std::count(uidl.begin(), uidl.end(), '\n'), 10000);
    pop.command("QUIT");
    return secondsSince(start);
  };
  // Warm both paths (Dovecot's index, popbridge's first connection), then measure alternately.
  retr(proxy.port());
  retr(dovecot.pop3Port());
  poll(proxy.port());
  poll(dovecot.pop3Port());
  double retrProxy = 1e9, retrDirect = 1e9, pollProxy = 1e9, pollDirect = 1e9;
  for (int round = 0; round < 3; ++round) {
    retrProxy = std::min(retrProxy, retr(proxy.port()));
    retrDirect = std::min(retrDirect, retr(dovecot.pop3Port()));
    pollProxy = std::min(pollProxy, poll(proxy.port()));
    pollDirect = std::min(pollDirect, poll(dovecot.pop3Port()));
  }
  MemoryUsage memory = memoryOf(proxy.pid());
  std::printf(
      "[ figures ] 20 MB RETR: popbridge %.3f s, Dovecot POP3 %.3f s; popbridge peak RSS "
      "%ld KiB\n",
      retrProxy, retrDirect, memory.peakKiB);
  std::printf(
      "[ figures ] 10,000-message poll (USER PASS STAT UIDL QUIT): popbridge %.3f s, "
      "Dovecot POP3 %.3f s (best of 3)\n",
      pollProxy, pollDirect);
}

// /proc/<pid>/io rchar: every byte the process read from any descriptor. The
// POP3 client sends a few dozen bytes, so the growth over one command is what
// came from the upstream.
std::uint64_t bytesReadBy(pid_t pid) {
  FILE* io = std::fopen(("/proc/" + std::to_string(pid) + "/io").c_str(), "r");
  if (io == nullptr) return 0;
  char key[64];
  unsigned long long value = 0;
  std::uint64_t rchar = 0;
  while (std::fscanf(io, "%63s %llu", key, &value) == 2) {
    if (std::string(key) == "rchar:") rchar = value;
  }
  std::fclose(io);
  return rchar;
}

// TOP n k by partial fetch: a scanner previewing a 50 MB attachment mail must
// not pull 50 MB through popbridge.
TEST(Figures, FiftyMegabyteTopReadsOnlyWhatItsLinesNeed) {
  DovecotFixture dovecot;
  const std::size_t size = 50 * 1024 * 1024;
  const std::string big = bigMessage(size);
  dovecot.seedMaildir("alice", {big});
  PopbridgeProcess proxy(dovecot, {});
  const auto& alice = dovecot.user("alice");

  // The header, its blank line and the first five body lines, as RETR would give them.
  std::size_t end = big.find("\r\n\r\n") + 4;
  for (int line = 0; line < 5; ++line) end = big.find("\r\n", end) + 2;
  const std::string expected = big.substr(0, end);

  auto top = [&](std::uint16_t port, std::uint64_t* upstreamBytes) {
    Pop3TestClient pop(port);
    login(pop, alice);
    std::uint64_t before = bytesReadBy(proxy.pid());
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(pop.multiLine("TOP 1 5"), expected);
    double elapsed = secondsSince(start);
    if (upstreamBytes != nullptr) *upstreamBytes = bytesReadBy(proxy.pid()) - before;
    pop.command("QUIT");
    return elapsed;
  };
  top(proxy.port(), nullptr);  // warm Dovecot's index and cache
  std::uint64_t topBytes = 0;
  double topProxy = top(proxy.port(), &topBytes);
  double topDirect = top(dovecot.pop3Port(), nullptr);

  std::uint64_t before = bytesReadBy(proxy.pid());
  auto start = std::chrono::steady_clock::now();
  std::optional<std::uint64_t> octets = curlRetrOctets(alice, proxy.port());
  double retrProxy = secondsSince(start);
  std::uint64_t retrBytes = bytesReadBy(proxy.pid()) - before;
  ASSERT_TRUE(octets.has_value());
  EXPECT_EQ(*octets, size);

  std::printf(
      "[ figures ] 50 MB message: TOP 1 5 via popbridge %.3f s reading %llu bytes from the "
      "upstream (Dovecot POP3 %.3f s); RETR via popbridge %.2f s reading %llu bytes\n",
      topProxy, static_cast<unsigned long long>(topBytes), topDirect, retrProxy,
      static_cast<unsigned long long>(retrBytes));
  // Not a timing: the amount read is what partial fetch is for.
  EXPECT_LT(topBytes, 200u * 1024);
}

}  // namespace
}  // namespace popbridge::test
