// ImportParser on arbitrary files: never crashes, every entry it yields has a valid, unique
// UIDL, and feeding in two pieces split anywhere gives the same entries and the same error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/uidl/import_file.h"
#include "protocol/uidl/stable_id.h"

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}

using popbridge::protocol::uidl::ImportParser;

struct Run {
  bool ok;
  std::string error;
  std::vector<ImportParser::Entry> entries;
};

Run parse(std::string_view a, std::string_view b) {
  ImportParser::Limits limits;
  limits.maxLineLength = 300;
  limits.maxEntries = 50;
  limits.header.maxTotal = 2000;
  ImportParser parser(limits);
  Run run;
  if (parser.feed(a, run.entries) != ImportParser::Status::Error &&
      parser.feed(b, run.entries) != ImportParser::Status::Error) {
    parser.finish(run.entries);
  }
  run.error = parser.error();
  run.ok = run.error.empty();
  return run;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Run whole = parse(input, {});
  const std::size_t split = data[0] % (input.size() + 1);
  const Run pieces = parse(input.substr(0, split), input.substr(split));
  require(whole.ok == pieces.ok && whole.error == pieces.error);
  require(whole.entries.size() == pieces.entries.size());
  require(whole.entries.size() <= 50);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < whole.entries.size(); ++i) {
    const auto& e = whole.entries[i];
    require(popbridge::protocol::uidl::isValidUidl(e.uidl));
    require(seen.insert(e.uidl).second);
    require(e.facts.hasHeader);
    require(e.uidl == pieces.entries[i].uidl && e.facts == pieces.entries[i].facts);
  }
  if (!whole.ok) require(whole.error.rfind("line ", 0) == 0);
  return 0;
}
