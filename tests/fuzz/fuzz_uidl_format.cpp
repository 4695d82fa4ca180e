// UidlFormat::parse on arbitrary templates: whatever it accepts must produce,
// for any UID and UIDVALIDITY, 1..70 characters in 0x21..0x7E (RFC 1939), and
// distinct UIDs must give distinct UIDLs. With the message-id fields (issue 15) too: any value,
// however long or unprintable, still gives a valid UIDL.
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
  const std::string longText(200, 'M');
  const std::string_view texts[] = {"M1", "a b", longText, std::string_view("\0\x7f", 2)};
  const std::uint64_t ids[] = {0, 1, 0xFFFFFFFFFFFFFFFFull};
  for (std::string_view text : texts) {
    for (std::uint64_t id : ids) {
      popbridge::protocol::UidlFormat::Fields fields;
      fields.uid = 7;
      fields.uidValidity = 9;
      fields.emailId = text;
      fields.stable = text;
      fields.gmMsgId = id;
      const auto uidl = format->format(fields);
      require(uidl.has_value());
      require(valid(*uidl));
      require(uidl->size() <= format->maxLength());
    }
  }
  if (format->usesMessageIds()) {
    require(!format->format(popbridge::protocol::UidlFormat::Fields{}).has_value());
  }
  return 0;
}
