#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/pop3/uidl_format.h"

namespace popbridge::protocol::uidl {

// Stable UIDLs (issue 15). The id behind %{stable} comes from the first source that applies to
// the message:
//   1. its EMAILID (RFC 8474), when the server offers OBJECTID and the value is a valid objectid;
//   2. its X-GM-MSGID, in decimal, on Gmail (X-GM-EXT-1);
//   3. otherwise the persistent map (mailbox, UIDVALIDITY, UID) -> UIDL. A message the map has
//      never seen gets newMapUidl(): the seed format (Dovecot's default "%08Xu%08Xv") of its UID
//      and UIDVALIDITY, so a mailbox that never sees a UIDVALIDITY change keeps today's default
//      UIDLs. After a change, the session (bridge/stable_uidls.h) carries the old UIDLs over to the
//      messages that match (matcher.h), and gives the others new ones.

// RFC 1939 section 7: 1 to 70 characters in 0x21..0x7E.
bool isValidUidl(std::string_view uidl);
// RFC 8474 objectid: 1 to 255 of ALPHA, DIGIT, "_" and "-".
bool isValidObjectId(std::string_view id);

enum class StableSource : std::uint8_t { EmailId, GmMsgId, Map };

struct MessageIds {
  std::optional<std::string_view> emailId;  // EMAILID, when the server sent one
  std::optional<std::uint64_t> gmMsgId;     // X-GM-MSGID, when the server sent one
};

// Which source gives the message's stable id (the map when neither id is there or valid).
StableSource stableSource(const MessageIds& ids);
// The stable id from EMAILID or X-GM-MSGID; nullopt when the map has to give it.
std::optional<std::string> stableIdFromServer(const MessageIds& ids);

// The map's UIDL for a message seen for the first time. `taken` says whether a UIDL is already
// held in this mailbox's map (by a present message or by an old entry a client may still
// remember; RFC 1939 forbids reuse). On a clash, which needs a server that reused a UIDVALIDITY,
// the candidate becomes "~" + 26 base32 characters of SHA-256 over the candidate and an attempt
// number, until one is free.
std::string newMapUidl(const UidlFormat& seed, std::uint32_t uid, std::uint32_t uidValidity,
                       const std::function<bool(std::string_view)>& taken);

}  // namespace popbridge::protocol::uidl
