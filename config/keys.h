#pragma once

// The schema: every key each table accepts (any other key is an error, with a suggestion) and
// the environment variables that override keys.

#include <span>
#include <string_view>

namespace popbridge::config {

extern const std::span<const std::string_view> kRootKeys;
extern const std::span<const std::string_view> kServerKeys;
extern const std::span<const std::string_view> kListenerKeys;
extern const std::span<const std::string_view> kUpstreamKeys;
extern const std::span<const std::string_view> kMailboxKeys;
extern const std::span<const std::string_view> kAccountKeys;  // its own and the mailbox keys
extern const std::span<const std::string_view> kOAuth2Keys;   // one [oauth2.NAME]
extern const std::span<const std::string_view> kMetricsKeys;
extern const std::span<const std::string_view> kStateKeys;

struct EnvironmentOverride {
  std::string_view variable;  // POPBRIDGE_...
  std::string_view table;
  std::string_view key;
  bool integer;          // environment values are text; this one is read as a number
  bool boolean = false;  // ... or as true / false
};

extern const std::span<const EnvironmentOverride> kEnvironmentOverrides;
// Any variable with this prefix that is not an override is reported, so a misspelt one is not
// ignored without a trace.
inline constexpr std::string_view kEnvironmentPrefix = "POPBRIDGE_";

}  // namespace popbridge::config
