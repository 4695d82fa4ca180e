// UidlFormat::parse on arbitrary templates: whatever it accepts must produce,
// for any UID and UIDVALIDITY, 1..70 characters in 0x21..0x7E (RFC 1939), and
// distinct UIDs must give distinct UIDLs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/pop3/uidl_format.h"

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}
bool valid(const std::string& uidl) {
  if (uidl.empty() || uidl.size() > 70) return false;
  for (char c : uidl) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string error;
  auto format = popbridge::protocol::UidlFormat::parse(
      std::string_view(reinterpret_cast<const char*>(data), size), error);
  if (!format) {
    require(!error.empty());
    return 0;
  }
  const std::uint32_t samples[] = {0, 1, 9, 10, 15, 16, 255, 65535, 0x7FFFFFFF, 0xFFFFFFFF};
  for (std::uint32_t uid : samples) {
    for (std::uint32_t validity : samples) {
      std::string uidl = format->format(uid, validity);
      require(valid(uidl));
      require(uidl.size() <= format->maxLength());
      if (uid != 0) require(uidl != format->format(uid - 1, validity));
    }
  }
  return 0;
}
