#pragma once

// Small text helpers every layer needs. They exist once, here, because
// protocol/ is the bottom of the dependency graph (config/ and proxy/ may use
// them; protocol/ uses nothing above it).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// ASCII-only case folding: protocol keywords are ASCII, and locale-dependent
// folding (the Turkish dotless i) must never change what a keyword means.
bool equalsIgnoreCase(std::string_view a, std::string_view b);
char toLowerAscii(char c);
std::string toLowerAscii(std::string_view text);

bool isAsciiDigit(char c);
// C0 controls and DEL: the bytes that must never reach a log line or an error
// message unescaped, because they could forge or hide text.
bool isAsciiControl(char c);
// Non-empty and 0-9 only, of any length (parseDecimal() adds the range check).
bool isAllDigits(std::string_view text);

// Strict decimal: digits only, no sign, no spaces, no overflow.
std::optional<std::uint64_t> parseDecimal(std::string_view text, std::uint64_t max = UINT64_MAX);
std::optional<std::uint32_t> parseUint32(std::string_view text);

// Peer text fit for a log line or an error message: printable ASCII only (anything else becomes
// '?'), at most `max` bytes, then "...".
std::string loggableText(std::string_view text, std::size_t max = 200);

// Overwrites a secret before its memory is released or reused.
void secureWipe(std::string& secret);

}  // namespace popbridge::protocol
