#include "protocol/bridge/mailbox_options.h"

#include "protocol/text.h"

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

std::optional<std::string_view> canonicalSpecialUse(std::string_view value) {
  for (std::string_view attribute : kSpecialUseAttributes) {
    if (equalsIgnoreCase(value, attribute)) return attribute;
  }
  return std::nullopt;
}

}  // namespace popbridge::protocol
