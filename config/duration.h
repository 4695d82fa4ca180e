#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::config {

using Duration = std::chrono::milliseconds;

// Durations are written as strings with units so that "10" can never be misread as seconds
// when minutes were meant: "500ms", "30s", "10m", "1h", or combinations from the largest unit
// down such as "1h30m" or "1m30s". Units: h, m, s, ms. No spaces, no signs, no fractions.
// Returns nullopt with a complete "expected ..., got ..." sentence in `error` on bad input.
std::optional<Duration> parseDuration(std::string_view text, std::string& error);

// The shortest text parseDuration() reads back as the same value, e.g. "1h30m", "500ms", "0s".
std::string formatDuration(Duration duration);

// The phrase used in every duration error, so messages stay the same everywhere.
inline constexpr std::string_view kDurationExamples =
    "a duration like \"500ms\", \"30s\", \"10m\", \"1h\" or \"1h30m\"";

}  // namespace popbridge::config
