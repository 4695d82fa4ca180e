#include "protocol/uidl/stable_id.h"

#include "protocol/text.h"
#include "protocol/uidl/sha256.h"

namespace popbridge::protocol::uidl {

bool isValidUidl(std::string_view uidl) {
  if (uidl.empty() || uidl.size() > UidlFormat::kMaxLength) return false;
  for (char c : uidl) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E) return false;
  }
  return true;
}

bool isValidObjectId(std::string_view id) {
  if (id.empty() || id.size() > 255) return false;
  for (char c : id) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || isAsciiDigit(c) || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

StableSource stableSource(const MessageIds& ids) {
  if (ids.emailId && isValidObjectId(*ids.emailId)) return StableSource::EmailId;
  if (ids.gmMsgId) return StableSource::GmMsgId;
  return StableSource::Map;
}

std::optional<std::string> stableIdFromServer(const MessageIds& ids) {
  switch (stableSource(ids)) {
    case StableSource::EmailId:
      return std::string(*ids.emailId);
    case StableSource::GmMsgId:
      return std::to_string(*ids.gmMsgId);
    case StableSource::Map:
      break;
  }
  return std::nullopt;
}

std::string newMapUidl(const UidlFormat& seed, std::uint32_t uid, std::uint32_t uidValidity,
                       const std::function<bool(std::string_view)>& taken) {
  std::string candidate = seed.format(uid, uidValidity);
  if (!taken(candidate)) return candidate;
  for (std::uint32_t attempt = 1;; ++attempt) {
    Sha256 sha;
    sha.update(candidate);
    sha.update(":" + std::to_string(uid) + ":" + std::to_string(uidValidity) + ":" +
               std::to_string(attempt));
    std::string alternative =
        "~" + toBase32(sha.finish()).substr(0, UidlFormat::kMinTextBudget - 1);
    // 130 bits: a second attempt is as likely as a SHA-256 collision.
    if (!taken(alternative)) return alternative;
  }
}

}  // namespace popbridge::protocol::uidl
