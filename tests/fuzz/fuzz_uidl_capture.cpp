// Capture on arbitrary server replies: never crashes, keeps its limits, gives the same file and
// the same outcome whether the replies arrive whole or split anywhere, and a finished capture is
// a file the import parser reads (or refuses with a line number, e.g. for a repeated UIDL).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/uidl/capture.h"
#include "protocol/uidl/import_file.h"

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}

using popbridge::protocol::uidl::Capture;

struct Run {
  Capture::Status status = Capture::Status::NeedMore;
  std::string file;
  std::string commands;
};

Run drive(std::string_view a, std::string_view b) {
  Capture::Limits limits;
  limits.maxLineLength = 300;
  limits.maxMessages = 20;
  Capture capture(limits);
  Run run;
  for (std::string_view part : {a, b}) {
    run.commands += capture.takeCommand();
    run.status = capture.feed(part, run.file);
    if (run.status != Capture::Status::NeedMore) break;
  }
  run.commands += capture.takeCommand();
  require(run.status != Capture::Status::Error || !capture.error().empty());
  return run;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Run whole = drive(input, {});
  const std::size_t split = data[0] % (input.size() + 1);
  const Run pieces = drive(input.substr(0, split), input.substr(split));
  require(whole.status == pieces.status);
  require(whole.file == pieces.file);
  if (whole.status == Capture::Status::Done) {
    std::string error;
    const auto entries = popbridge::protocol::uidl::parseImportFile(whole.file, error);
    require(entries.has_value() || error.rfind("line ", 0) == 0);
  }
  return 0;
}
