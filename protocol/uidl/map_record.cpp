#include "protocol/uidl/map_record.h"

#include <utility>

namespace popbridge::protocol::uidl {

namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // toHex writes lower case only
}

}  // namespace

UidlRecord toRecord(UidKey key, std::string uidl, const MatchFacts& facts) {
  UidlRecord record;
  record.key = key;
  record.uidl = std::move(uidl);
  record.messageId = facts.messageId;
  record.date = facts.dateKey;
  record.size = facts.size;
  if (facts.hasHeader) record.headerHash = toHex(facts.headerHash);
  record.headerLines = facts.headerLines;
  return record;
}

MatchFacts toFacts(const UidlRecord& record) {
  MatchFacts facts;
  facts.messageId = record.messageId;
  facts.dateKey = record.date;
  facts.size = record.size;
  facts.headerLines = record.headerLines;
  if (record.headerHash.size() != facts.headerHash.size() * 2) return facts;
  for (std::size_t i = 0; i < facts.headerHash.size(); ++i) {
    const int high = hexValue(record.headerHash[2 * i]);
    const int low = hexValue(record.headerHash[2 * i + 1]);
    if (high < 0 || low < 0) return facts;
    facts.headerHash[i] = static_cast<std::uint8_t>(high * 16 + low);
  }
  facts.hasHeader = true;
  return facts;
}

}  // namespace popbridge::protocol::uidl
