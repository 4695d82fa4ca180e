#pragma once

// What the IMAP maildrop does with one mailbox: which folder it opens, how a
// POP3 DELE is applied at QUIT, and how UIDLs are written. config/ builds
// these directly, so each concept has exactly one type.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/pop3/uidl_format.h"

namespace popbridge::protocol {

enum class DeletePolicy : std::uint8_t { Flag, Expunge, Move, Seen, Keep };

// "flag", "expunge", "move", "seen", "keep": the config spelling.
std::string_view toString(DeletePolicy policy);

inline UidlFormat defaultUidlFormat() {
  std::string error;
  return *UidlFormat::parse(UidlFormat::kDovecotDefault, error);
}

// The RFC 6154 special-use attributes a move_to may name instead of a folder, in their canonical
// spelling.
inline constexpr std::array<std::string_view, 7> kSpecialUseAttributes = {
    "\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"};

// A move_to starting with '\' names a special-use attribute, never a folder (the same spelling
// as the attribute in a LIST response); config/ refuses one that is not in kSpecialUseAttributes.
inline bool isSpecialUse(std::string_view moveTo) {
  return moveTo.starts_with('\\');
}

// The canonical spelling of `value` if it is one of kSpecialUseAttributes in any case.
std::optional<std::string_view> canonicalSpecialUse(std::string_view value);

struct MailboxOptions {
  std::string folder = "INBOX";
  DeletePolicy onDelete = DeletePolicy::Flag;
  // Used by onDelete == Move: a folder name (UTF-8), or a special-use attribute such as "\\Trash"
  // that the maildrop resolves with LIST after login.
  std::string moveTo = "Trash";
  bool markSeenOnRetr = false;
  UidlFormat uidl = defaultUidlFormat();
  std::uint32_t maxMessages = 0;  // 0: the whole mailbox; N: only the newest N
  // RFC 1939's exclusive-access lock: a second session for the same upstream account and folder
  // gets -ERR [IN-USE]. False: sessions share the maildrop (each with its own snapshot), unless
  // an exclusive one holds it.
  bool exclusive = true;
};

}  // namespace popbridge::protocol
