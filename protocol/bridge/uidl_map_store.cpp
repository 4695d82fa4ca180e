#include "protocol/bridge/uidl_map_store.h"

#include "protocol/text.h"

namespace popbridge::protocol {

UidlMapStore::Mailbox uidlMapMailbox(std::string_view account, std::string_view folder) {
  return {toLowerAscii(account),
          equalsIgnoreCase(folder, "INBOX") ? std::string("INBOX") : std::string(folder)};
}

}  // namespace popbridge::protocol
