#pragma once

// How values appear in error and warning messages, and how a misspelt name finds its
// suggestion.

#include <cstddef>
#include <string>
#include <string_view>

namespace popbridge::config {

// "\"value\"" with quotes and backslashes escaped, control bytes as \xNN (a message must not
// be able to forge lines in a log), and anything past 80 bytes cut to "...".
std::string quote(std::string_view text);

// Levenshtein distance: insertions, deletions and substitutions of single bytes.
std::size_t editDistance(std::string_view a, std::string_view b);
// A name is suggested for a misspelling only this close: further off, a guess misleads more
// than it helps.
inline constexpr std::size_t kMaxSuggestionDistance = 2;

// strerror() text for an errno value.
std::string errnoText(int error);

}  // namespace popbridge::config
