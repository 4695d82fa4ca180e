#pragma once

// What the IMAP maildrop does with one mailbox: which folder it opens, how a
// POP3 DELE is applied at QUIT, and how UIDLs are written. config/ builds
// these directly, so each concept has exactly one type.

#include <cstdint>
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

struct MailboxOptions {
  std::string folder = "INBOX";
  DeletePolicy onDelete = DeletePolicy::Flag;
  std::string moveTo = "Trash";  // used by onDelete == Move
  bool markSeenOnRetr = false;
  UidlFormat uidl = defaultUidlFormat();
  std::uint32_t maxMessages = 0;  // 0: the whole mailbox; N: only the newest N
};

}  // namespace popbridge::protocol
