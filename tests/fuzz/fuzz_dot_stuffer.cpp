// DotStuffer and TopLimiter under arbitrary messages. The first byte picks
// the TOP line count and the chunk sizes; the rest is the message.
// Properties:
//   unstuff(stuff(x)) == crlfNormalise(x), where unstuff is a strict client;
//   the output is the same however the message is split;
//   TopLimiter forwards a prefix of x, the same one however x is split.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pop3/dot_stuffer.h"

namespace {

using popbridge::protocol::DotStuffer;
using popbridge::protocol::TopLimiter;

void require(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::string_view> split(std::string_view in, const std::vector<std::size_t>& sizes) {
  std::vector<std::string_view> chunks;
  std::size_t i = 0;
  while (!in.empty()) {
    const std::size_t n = sizes[i++ % sizes.size()];
    chunks.push_back(in.substr(0, n));
    in.remove_prefix(chunks.back().size());
  }
  return chunks;
}

std::string stuff(const std::vector<std::string_view>& chunks) {
  DotStuffer stuffer;
  std::string out;
  for (std::string_view chunk : chunks) stuffer.feed(chunk, out);
  stuffer.finish(out);
  return out;
}

std::string crlfNormalise(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) out.push_back('\r');
    out.push_back(in[i]);
  }
  if (!out.empty() && out.back() != '\n') out.append(out.back() == '\r' ? "\n" : "\r\n");
  return out;
}

// A strict client: aborts on anything a conforming multi-line reply cannot
// contain (an unstuffed leading dot, bytes after the terminator, no
// terminator).
std::string unstuff(std::string_view reply) {
  std::string body;
  for (;;) {
    const std::size_t end = reply.find("\r\n");
    require(end != std::string_view::npos);
    std::string_view line = reply.substr(0, end);
    reply.remove_prefix(end + 2);
    if (line == ".") {
      require(reply.empty());
      return body;
    }
    if (!line.empty() && line.front() == '.') {
      require(line.size() >= 2 && line[1] == '.');
      line.remove_prefix(1);
    }
    body.append(line);
    body.append("\r\n");
  }
}

struct TopOutcome {
  std::string forwarded;
  bool done;
};

TopOutcome top(std::uint64_t lines, const std::vector<std::string_view>& chunks) {
  TopLimiter limiter(lines);
  TopOutcome outcome{{}, false};
  for (std::string_view chunk : chunks) {
    const bool wasDone = limiter.done();
    const std::size_t n = limiter.take(chunk);
    require(n <= chunk.size());
    if (wasDone) require(n == 0);
    if (!limiter.done()) require(n == chunk.size());
    outcome.forwarded.append(chunk.substr(0, n));
  }
  outcome.done = limiter.done();
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view message(reinterpret_cast<const char*>(data + 1), size - 1);

  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < message.size() && sizes.size() < 16; i += 5) {
    sizes.push_back(static_cast<std::uint8_t>(message[i]) % (control % 13 + 2));
  }
  if (sizes.empty() || sizes[0] == 0) sizes.insert(sizes.begin(), 1);

  const std::string whole = stuff({message});
  require(unstuff(whole) == crlfNormalise(message));
  require(stuff(split(message, {1})) == whole);
  require(stuff(split(message, sizes)) == whole);

  const std::uint64_t lines = control >= 0xf0 ? UINT64_MAX : control % 8;
  const TopOutcome topWhole = top(lines, {message});
  require(message.substr(0, topWhole.forwarded.size()) == topWhole.forwarded);
  const TopOutcome topBytes = top(lines, split(message, {1}));
  require(topBytes.forwarded == topWhole.forwarded && topBytes.done == topWhole.done);
  const TopOutcome topChunks = top(lines, split(message, sizes));
  require(topChunks.forwarded == topWhole.forwarded && topChunks.done == topWhole.done);
  return 0;
}
