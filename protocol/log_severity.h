#pragma once

#include <cstdint>

namespace popbridge::protocol {

// How much a protocol-level log line matters; the proxy maps it onto its
// logger, and config's server.log_level uses the same scale.
enum class LogSeverity : std::uint8_t { Error, Warn, Info, Debug };

}  // namespace popbridge::protocol
