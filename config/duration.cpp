#include "config/duration.h"

#include <array>
#include <cstdint>

#include "protocol/text.h"

namespace popbridge::config {
namespace {

struct Unit {
  std::string_view suffix;
  std::int64_t millis;
};
// Largest first: a combination must use them in this order, each at most once.
constexpr std::array<Unit, 4> kUnits{{{"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}}};

// Far beyond any sensible timeout, and far from overflowing int64 milliseconds.
constexpr std::int64_t kMaxMillis = 1'000'000LL * 3'600'000LL;

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

}  // namespace

std::optional<Duration> parseDuration(std::string_view text, std::string& error) {
  const std::string expected = "expected " + std::string(kDurationExamples) + ", got ";
  if (text.empty()) {
    error = expected + "\"\"";
    return std::nullopt;
  }
  if (protocol::isAllDigits(text)) {
    error = expected + quoted(text) + " (add a unit, e.g. \"" + std::string(text) + "s\")";
    return std::nullopt;
  }

  std::int64_t total = 0;
  std::size_t nextUnit = 0;  // index into kUnits of the smallest unit still allowed
  std::size_t i = 0;
  while (i < text.size()) {
    if (!protocol::isAsciiDigit(text[i])) {
      error = expected + quoted(text);
      return std::nullopt;
    }
    std::int64_t number = 0;
    while (i < text.size() && protocol::isAsciiDigit(text[i])) {
      number = number * 10 + (text[i] - '0');
      if (number > kMaxMillis) {
        error = expected + quoted(text) + " (too large)";
        return std::nullopt;
      }
      ++i;
    }
    std::size_t suffixEnd = i;
    while (suffixEnd < text.size() && !protocol::isAsciiDigit(text[suffixEnd])) ++suffixEnd;
    const std::string_view suffix = text.substr(i, suffixEnd - i);
    std::size_t unit = nextUnit;
    while (unit < kUnits.size() && kUnits[unit].suffix != suffix) ++unit;
    if (unit == kUnits.size()) {
      error = expected + quoted(text);
      return std::nullopt;
    }
    if (number > kMaxMillis / kUnits[unit].millis) {
      error = expected + quoted(text) + " (too large)";
      return std::nullopt;
    }
    total += number * kUnits[unit].millis;
    if (total > kMaxMillis) {
      error = expected + quoted(text) + " (too large)";
      return std::nullopt;
    }
    nextUnit = unit + 1;
    i = suffixEnd;
  }
  return Duration(total);
}

std::string formatDuration(Duration duration) {
  std::int64_t remaining = duration.count();
  if (remaining == 0) return "0s";
  std::string out;
  if (remaining < 0) {
    // Never produced by parseDuration(); printed plainly rather than hidden.
    return std::to_string(remaining) + "ms";
  }
  for (const Unit& unit : kUnits) {
    if (remaining >= unit.millis) {
      out += std::to_string(remaining / unit.millis);
      out += unit.suffix;
      remaining %= unit.millis;
    }
  }
  return out;
}

}  // namespace popbridge::config
