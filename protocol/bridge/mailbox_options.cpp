#include "protocol/bridge/mailbox_options.h"

namespace popbridge::protocol {

std::string_view toString(DeletePolicy policy) {
  switch (policy) {
    case DeletePolicy::Flag:
      return "flag";
    case DeletePolicy::Expunge:
      return "expunge";
    case DeletePolicy::Move:
      return "move";
    case DeletePolicy::Seen:
      return "seen";
    case DeletePolicy::Keep:
      return "keep";
  }
  return "?";
}

}  // namespace popbridge::protocol
