#include "protocol/state_record.h"

#include <charconv>

namespace popbridge::protocol {

namespace {

void appendField(std::string& out, std::string_view field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

bool takeField(std::string_view& in, std::string_view& field) {
  const auto colon = in.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 10) return false;
  std::size_t length = 0;
  auto [end, ec] = std::from_chars(in.data(), in.data() + colon, length);
  if (ec != std::errc() || end != in.data() + colon || length > in.size() - colon - 1) return false;
  field = in.substr(colon + 1, length);
  in.remove_prefix(colon + 1 + length);
  return true;
}

template <typename T>
bool parseNumber(std::string_view text, T& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string encodeUidlRecord(const UidlRecord& entry) {
  std::string out;
  appendField(out, entry.uidl);
  appendField(out, entry.messageId);
  appendField(out, entry.date);
  appendField(out, std::to_string(entry.size));
  appendField(out, entry.headerHash);
  appendField(out, std::to_string(entry.headerLines));
  return out;
}

std::optional<UidlRecord> decodeUidlRecord(UidKey key, std::string_view text) {
  UidlRecord entry;
  entry.key = key;
  std::string_view uidl, messageId, date, size, headerHash, headerLines;
  if (!takeField(text, uidl) || !takeField(text, messageId) || !takeField(text, date) ||
      !takeField(text, size) || !takeField(text, headerHash) || !takeField(text, headerLines) ||
      !text.empty() || !parseNumber(size, entry.size) ||
      !parseNumber(headerLines, entry.headerLines)) {
    return std::nullopt;
  }
  entry.uidl = uidl;
  entry.messageId = messageId;
  entry.date = date;
  entry.headerHash = headerHash;
  return entry;
}

std::string encodeUidKey(UidKey key) {
  return std::to_string(key.uidValidity) + ":" + std::to_string(key.uid);
}

std::optional<UidKey> decodeUidKey(std::string_view text) {
  const auto colon = text.find(':');
  UidKey key;
  if (colon == std::string_view::npos || !parseNumber(text.substr(0, colon), key.uidValidity) ||
      !parseNumber(text.substr(colon + 1), key.uid)) {
    return std::nullopt;
  }
  return key;
}

}  // namespace popbridge::protocol
