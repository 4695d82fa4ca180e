#pragma once

// What the state store keeps per message for stable UIDLs, and its stored form (a Redis hash
// value): sans-I/O, shared by the store backends and the fuzz target.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

struct UidKey {
  std::uint32_t uidValidity = 0;
  std::uint32_t uid = 0;
  bool operator==(const UidKey&) const = default;
};

// One message's UIDL and what identifies the message when its UID changes.
struct UidlRecord {
  UidKey key;
  std::string uidl;
  std::string messageId;   // the Message-ID header, as sent
  std::string date;        // the Date header (or INTERNALDATE), as sent
  std::uint64_t size = 0;  // RFC822.SIZE
  std::string headerHash;  // a digest of the header, hex
  // Lines of the whole header; only an import's entries have it (uidl/map_record.h).
  std::uint32_t headerLines = 0;
  bool operator==(const UidlRecord&) const = default;
};

// Length-prefixed fields ("<len>:<bytes>" each: uidl, Message-ID, date, size, header hash,
// header lines), so
// any bytes are allowed in any field. decode refuses anything else, trailing bytes included.
std::string encodeUidlRecord(const UidlRecord& record);
std::optional<UidlRecord> decodeUidlRecord(UidKey key, std::string_view text);
// "uidvalidity:uid", both decimal without sign or leading garbage.
std::string encodeUidKey(UidKey key);
std::optional<UidKey> decodeUidKey(std::string_view text);

}  // namespace popbridge::protocol
