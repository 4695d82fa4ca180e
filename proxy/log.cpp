#include "proxy/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdio>

#include "protocol/text.h"

namespace popbridge::proxy {
namespace {

std::atomic<bool> gJson{false};
std::shared_ptr<spdlog::logger> gLogger;

spdlog::level::level_enum toSpd(LogLevel level) {
  switch (level) {
    case LogLevel::Error:
      return spdlog::level::err;
    case LogLevel::Warn:
      return spdlog::level::warn;
    case LogLevel::Info:
      return spdlog::level::info;
    case LogLevel::Debug:
      return spdlog::level::debug;
  }
  return spdlog::level::info;
}

spdlog::logger& logger() {
  if (!gLogger) initLogging(LogLevel::Info, false);
  return *gLogger;
}

// Control characters from a peer (a user name, an upstream error text) must
// not be able to forge log lines.
void appendSanitized(std::string& out, std::string_view text) {
  for (char c : text) {
    if (protocol::isAsciiControl(c)) {
      out += '?';
    } else {
      out += c;
    }
  }
}

}  // namespace

void initLogging(LogLevel level, bool json) {
  gJson = json;
  gLogger = std::make_shared<spdlog::logger>("popbridge",
                                             std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (json) {
    gLogger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",%v})",
                         spdlog::pattern_time_type::utc);
  } else {
    gLogger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
  }
  gLogger->set_level(toSpd(level));
  gLogger->flush_on(spdlog::level::trace);
}

void setLogLevel(LogLevel level) {
  logger().set_level(toSpd(level));
}

bool logEnabled(LogLevel level) {
  return logger().should_log(toSpd(level));
}

std::string jsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (protocol::isAsciiControl(c)) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void logLine(LogLevel level, const LogContext& context, std::string_view message) {
  auto& log = logger();
  if (!log.should_log(toSpd(level))) return;
  std::string line;
  line.reserve(message.size() + 64);
  if (gJson) {
    if (context.session != 0) line += "\"session\":" + std::to_string(context.session) + ",";
    if (!context.client.empty()) line += "\"client\":\"" + jsonEscape(context.client) + "\",";
    if (!context.user.empty()) line += "\"user\":\"" + jsonEscape(context.user) + "\",";
    line += "\"msg\":\"" + jsonEscape(message) + "\"";
  } else {
    if (context.session != 0) line += "session=" + std::to_string(context.session) + " ";
    if (!context.client.empty()) {
      line += "client=";
      appendSanitized(line, context.client);
      line += ' ';
    }
    if (!context.user.empty()) {
      line += "user=";
      appendSanitized(line, context.user);
      line += ' ';
    }
    appendSanitized(line, message);
  }
  log.log(toSpd(level), "{}", line);
}

}  // namespace popbridge::proxy
