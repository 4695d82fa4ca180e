#include "config/toml_reader.h"

#include <algorithm>
#include <tuple>

#include "config/message_text.h"

namespace popbridge::config {
namespace {

std::vector<ConfigError> inFileOrder(std::vector<ConfigError> problems) {
  std::stable_sort(problems.begin(), problems.end(),
                   [](const ConfigError& a, const ConfigError& b) {
                     const bool aPlaced = a.line != 0, bPlaced = b.line != 0;
                     if (aPlaced != bPlaced) return aPlaced;
                     if (!aPlaced) return false;
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  return problems;
}

}  // namespace

std::string describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return quote(node.as_string()->get());
    case toml::node_type::integer:
      return std::to_string(node.as_integer()->get());
    case toml::node_type::floating_point: {
      std::string text = std::to_string(node.as_floating_point()->get());
      // std::to_string prints 6 decimals; trim them for readability ("1.5", not "1.500000").
      while (text.size() > 1 && text.back() == '0') text.pop_back();
      if (!text.empty() && text.back() == '.') text.pop_back();
      return "the float " + text;
    }
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true" : "false";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// ---------------------------------------------------------------------------------------------

Position Diagnostics::position(const std::string& keyPath,
                               const toml::source_region& region) const {
  if (auto it = overrides_.find(keyPath); it != overrides_.end()) return {it->second, 0, 0};
  return {source_, region.begin.line, region.begin.column};
}

Position Diagnostics::tablePosition(const toml::node* node) const {
  if (node == nullptr) return {source_, 0, 0};
  return {source_, node->source().begin.line, node->source().begin.column};
}

void Diagnostics::error(Position at, std::string keyPath, std::string message) {
  errors_.push_back(
      {std::move(at.file), at.line, at.column, std::move(keyPath), std::move(message)});
}

void Diagnostics::warn(Position at, std::string keyPath, std::string message) {
  warnings_.push_back(
      {std::move(at.file), at.line, at.column, std::move(keyPath), std::move(message)});
}

std::vector<ConfigError> Diagnostics::takeErrors() {
  return inFileOrder(std::move(errors_));
}

std::vector<std::string> Diagnostics::takeWarnings() {
  std::vector<std::string> out;
  for (const ConfigError& warning : inFileOrder(std::move(warnings_))) {
    out.push_back(warning.toString());
  }
  return out;
}

const toml::array* asArrayOfTables(Diagnostics& diagnostics, const toml::node& node,
                                   std::string_view name) {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    const std::string key(name);
    diagnostics.error(diagnostics.position(key, node.source()), key,
                      "expected an array of tables ([[" + key + "]]), got " + describe(node));
  }
  return array;
}

// ---------------------------------------------------------------------------------------------

Position TableReader::positionOf(std::string_view key) const {
  if (const toml::node* node = find(key)) {
    return diagnostics_.position(keyPath(key), node->source());
  }
  return tablePosition();
}

void TableReader::error(std::string_view key, std::string message) const {
  diagnostics_.error(positionOf(key), keyPath(key), std::move(message));
}

void TableReader::warn(std::string_view key, std::string message) const {
  diagnostics_.warn(positionOf(key), keyPath(key), std::move(message));
}

void TableReader::errorAtTable(std::string_view key, std::string message) const {
  diagnostics_.error(tablePosition(), keyPath(key), std::move(message));
}

Read TableReader::readString(std::string_view key, std::string& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (!node->is_string()) {
    error(key, "expected a string, got " + describe(*node));
    return Read::Invalid;
  }
  out = node->as_string()->get();
  return Read::Ok;
}

Read TableReader::readBool(std::string_view key, bool& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (!node->is_boolean()) {
    std::string hint;
    if (node->is_string() &&
        (node->as_string()->get() == "true" || node->as_string()->get() == "false")) {
      hint = " (remove the quotes)";
    }
    error(key, "expected true or false, got " + describe(*node) + hint);
    return Read::Invalid;
  }
  out = node->as_boolean()->get();
  return Read::Ok;
}

Read TableReader::readDuration(std::string_view key, Duration min, Duration max,
                               Duration& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (!node->is_string()) {
    std::string hint;
    if (node->is_integer()) {
      hint = " (write it as a string with a unit, e.g. \"" +
             std::to_string(node->as_integer()->get()) + "s\")";
    }
    error(key, "expected " + std::string(kDurationExamples) + ", got " + describe(*node) + hint);
    return Read::Invalid;
  }
  const std::string& text = node->as_string()->get();
  std::string problem;
  const auto value = parseDuration(text, problem);
  if (!value) {
    error(key, problem);
    return Read::Invalid;
  }
  if (*value < min || *value > max) {
    error(key, "expected a duration between " + formatDuration(min) + " and " +
                   formatDuration(max) + ", got " + quote(text));
    return Read::Invalid;
  }
  out = *value;
  return Read::Ok;
}

void TableReader::reportUnknownKeys() const {
  if (table_ == nullptr) return;
  for (auto&& [key, value] : *table_) {
    const std::string_view name = key.str();
    if (std::find(keys_.begin(), keys_.end(), name) != keys_.end()) continue;
    std::string message = "unknown key";
    if (name == "password" || name == "upstream_password") {
      // A clear-text password in the config is exactly what the file format avoids.
      message +=
          "; passwords are not written in the config: use password_hash (from `popbridge "
          "hash-password`) or upstream_password_file";
    } else {
      std::string_view best;
      std::size_t bestDistance = kMaxSuggestionDistance + 1;
      for (std::string_view candidate : keys_) {
        const std::size_t distance = editDistance(name, candidate);
        if (distance < bestDistance) {
          bestDistance = distance;
          best = candidate;
        }
      }
      if (!best.empty()) message += " (did you mean " + std::string(best) + "?)";
    }
    Position at{diagnostics_.source(), key.source().begin.line, key.source().begin.column};
    diagnostics_.error(at, keyPath(name), std::move(message));
  }
}

}  // namespace popbridge::config
