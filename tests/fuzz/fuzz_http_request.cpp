// HttpRequestParser under arbitrary bytes from a metrics client. The first byte picks the
// limits; the rest is fed whole, one byte at a time and in data-derived pieces, and the three
// outcomes must agree; every call is checked against the parser's contract. Any violation aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/http/request_parser.h"

namespace {

using popbridge::protocol::HttpRequestLimits;
using popbridge::protocol::HttpRequestParser;
using Result = HttpRequestParser::Result;

void require(bool condition) {
  if (!condition) std::abort();
}

std::string run(std::string_view input, const std::vector<std::size_t>& pieces,
                const HttpRequestLimits& limits) {
  HttpRequestParser parser(limits);
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
    require(offset <= limits.maxHeadBytes);
    if (result != Result::NeedMore) break;
    require(consumed == piece.size());
  }
  if (result == Result::NeedMore) return "NEEDMORE";
  std::size_t again = 1;
  require(parser.feed("GET / HTTP/1.0\r\n\r\n", again) == result && again == 0);
  if (result == Result::Error) {
    const int status = parser.errorStatus();
    require(status == 400 || status == 405 || status == 431 || status == 505);
    require(!parser.error().empty() && parser.error().size() <= 80);
    return "ERROR " + std::to_string(status) + " " + parser.error() + " " + std::to_string(offset);
  }
  require(parser.method() == "GET" || parser.method() == "HEAD");
  require(!parser.path().empty() && parser.path().front() == '/');
  require(parser.errorStatus() == 0);
  return "DONE " + parser.method() + " " + parser.target() + " " + std::to_string(offset);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  static constexpr HttpRequestLimits kLimits[] = {{8 * 1024, 64}, {64, 3}, {20, 1}, {256, 0}};
  const HttpRequestLimits& limits = kLimits[control & 3];
  std::vector<std::size_t> pieces;
  std::uint32_t seed = control | (static_cast<std::uint32_t>(size) << 8);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i + 1 < size) seed ^= data[i + 1];
    seed = seed * 1103515245u + 12345u;
    pieces.push_back(1 + ((seed >> 16) % 23));
  }
  const std::string whole = run(input, {}, limits);
  require(run(input, {1}, limits) == whole);
  require(run(input, pieces, limits) == whole);
  return 0;
}
