// HeaderFactsParser on arbitrary header blocks: never crashes, keeps its limits, and gives the
// same facts whether the block arrives whole or in two pieces split anywhere.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/uidl/match_facts.h"

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}

using popbridge::protocol::uidl::HeaderFactsParser;
using popbridge::protocol::uidl::HeaderLimits;

struct Run {
  HeaderFactsParser::Status status;
  popbridge::protocol::uidl::MatchFacts facts;
};

Run parse(std::string_view a, std::string_view b, const HeaderLimits& limits) {
  HeaderFactsParser parser(limits);
  std::size_t consumed = 0;
  auto status = parser.feed(a, consumed);
  if (status == HeaderFactsParser::Status::NeedMore) status = parser.feed(b, consumed);
  if (status == HeaderFactsParser::Status::NeedMore) status = parser.finish();
  require(status != HeaderFactsParser::Status::Error || !parser.error().empty());
  return {status, parser.facts()};
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  HeaderLimits limits;
  limits.maxLineLength = 200;
  limits.maxTotal = 4000;
  limits.maxValueLength = 100;
  const Run whole = parse(input, {}, limits);
  const std::size_t split = data[0] % (input.size() + 1);
  const Run pieces = parse(input.substr(0, split), input.substr(split), limits);
  require(whole.status == pieces.status);
  if (whole.status == HeaderFactsParser::Status::Done) {
    require(whole.facts == pieces.facts);
    require(whole.facts.hasHeader);
    require(whole.facts.messageId.size() <= limits.maxValueLength);
    require(whole.facts.dateKey.size() <= limits.maxValueLength + 1 ||
            whole.facts.dateKey[0] == '@');
    require(whole.facts.messageId.find(' ') == std::string::npos);
  }
  return 0;
}
