#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/log_severity.h"

namespace popbridge::proxy {

// The one severity scale of protocol/, config/ and the logger.
using LogLevel = protocol::LogSeverity;

// One process-wide logger on stderr (what container runtimes collect).
// Text:  2026-11-22T02:10:30.123Z info  session=7 client=127.0.0.1:5000 user=alice msg
// JSON:  {"time":"...","level":"info","session":7,"client":"...","user":"...","msg":"..."}
void initLogging(LogLevel level, bool json);
void setLogLevel(LogLevel level);
bool logEnabled(LogLevel level);

// Fields that identify who a line is about; empty ones are left out.
struct LogContext {
  std::uint64_t session = 0;
  std::string_view client;
  std::string_view user;
};

void logLine(LogLevel level, const LogContext& context, std::string_view message);
inline void logLine(LogLevel level, std::string_view message) {
  logLine(level, LogContext{}, message);
}

// Escapes for a JSON string body; exposed for tests.
std::string jsonEscape(std::string_view text);

}  // namespace popbridge::proxy
