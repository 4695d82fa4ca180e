// HttpResponseParser under arbitrary bytes from a token endpoint or a proxy. The first byte
// steers the run: it picks the limits, whether the response answers a CONNECT and whether the
// peer closes after the input; the rest is what the peer sends. The input is fed whole, one
// byte at a time and in pieces whose sizes derive from the data, and the three outcomes must
// agree; every call is checked against the parser's contract. Any violation aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/http/response_parser.h"

namespace {

using popbridge::protocol::HttpResponseLimits;
using popbridge::protocol::HttpResponseParser;
using Result = HttpResponseParser::Result;

void require(bool condition) {
  if (!condition) std::abort();
}

struct Options {
  HttpResponseLimits limits;
  bool connect;
  bool eof;
};

std::string run(std::string_view input, const std::vector<std::size_t>& pieces, const Options& o) {
  HttpResponseParser parser(o.limits, o.connect);
  std::size_t offset = 0;
  std::size_t index = 0;
  Result result = Result::NeedMore;
  while (offset < input.size()) {
    const std::size_t size = pieces.empty() ? input.size() : pieces[index++ % pieces.size()];
    const std::string_view piece = input.substr(offset, size);
    std::size_t consumed = static_cast<std::size_t>(-1);
    result = parser.feed(piece, consumed);
    require(consumed <= piece.size());
    offset += consumed;
    require(parser.body().size() <= o.limits.maxBodyBytes);
    if (result != Result::NeedMore) break;
    require(consumed == piece.size());
    require(parser.error().empty());
  }
  if (result == Result::NeedMore && o.eof) result = parser.eof();
  if (result == Result::NeedMore) return "NEEDMORE";

  // Done and Error are final: further input is refused untouched, eof() changes nothing.
  std::size_t again = static_cast<std::size_t>(-1);
  require(parser.feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", again) == result);
  require(again == 0);
  require(parser.eof() == result);
  if (result == Result::Error) {
    // Never empty, never an echo of the input beyond a short quote.
    require(!parser.error().empty() && parser.error().size() <= 240);
    require(parser.body().empty());
    return "ERROR " + parser.error();
  }
  require(parser.error().empty());
  require(parser.status() >= 200 && parser.status() <= 599);
  require(parser.body().size() <= o.limits.maxBodyBytes);
  return "DONE " + std::to_string(parser.status()) + " " + parser.reason() + "|" + parser.body() +
         "|" + std::to_string(offset);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  // Small limits so the fuzzer reaches them; one setting in four is the default.
  static constexpr HttpResponseLimits kLimits[] = {
      {16 * 1024, 256 * 1024, 100}, {64, 16, 3}, {200, 1, 1}, {1024, 0, 0}};
  const Options options{kLimits[control & 3], (control & 4) != 0, (control & 8) != 0};

  std::vector<std::size_t> pieces;
  std::uint32_t seed = control | (static_cast<std::uint32_t>(size) << 8);
  for (std::size_t i = 0; i < 16; ++i) {
    // Mixed into the sizes so that different data split differently.
    if (i + 1 < size) seed ^= data[i + 1];
    seed = seed * 1103515245u + 12345u;
    pieces.push_back(1 + ((seed >> 16) % 23));
  }

  const std::string whole = run(input, {}, options);
  require(run(input, {1}, options) == whole);
  require(run(input, pieces, options) == whole);
  return 0;
}
