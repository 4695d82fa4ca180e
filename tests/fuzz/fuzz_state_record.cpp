// decodeUidlRecord and decodeUidKey on arbitrary bytes (what a shared Redis may hold): whatever
// they accept must encode and decode back to itself, and nothing may crash or over-read.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/state_record.h"

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace popbridge::protocol;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto record = decodeUidlRecord({7, 9}, text)) {
    auto again = decodeUidlRecord({7, 9}, encodeUidlRecord(*record));
    require(again && *again == *record);
  }
  if (auto key = decodeUidKey(text)) {
    auto again = decodeUidKey(encodeUidKey(*key));
    require(again && *again == *key);
  }
  return 0;
}
