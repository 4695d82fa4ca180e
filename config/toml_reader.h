#pragma once

// A generic reader of TOML tables that turns every problem into a located ConfigError instead
// of an exception. It and loader.cpp are the only places that include toml++: it is heavy to
// compile, and keeping it here keeps TOML types out of the public header.

#include <toml++/toml.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/enum_names.h"
#include "protocol/text.h"

namespace popbridge::config {

struct Position {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

enum class Read { Absent, Ok, Invalid };

// How a TOML value appears in "got ..." of an error message.
std::string describe(const toml::node& node);

// The problems of one load, and where each key's value came from: a position in the file, or
// the environment variable that overrode it.
class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  void setOverride(const std::string& keyPath, std::string variable) {
    overrides_[keyPath] = std::move(variable);
  }
  bool isOverridden(const std::string& keyPath) const { return overrides_.count(keyPath) != 0; }

  Position position(const std::string& keyPath, const toml::source_region& region) const;
  // The table header; the file alone when there is no table.
  Position tablePosition(const toml::node* node) const;

  void error(Position at, std::string keyPath, std::string message);
  void warn(Position at, std::string keyPath, std::string message);

  // In file order, whatever order the checks ran in; problems without a position last.
  std::vector<ConfigError> takeErrors();
  std::vector<std::string> takeWarnings();

 private:
  std::string source_;
  std::map<std::string, std::string> overrides_;  // key path -> environment variable
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
};

// Reads the keys of one TOML table, and reports every key it does not know (with a suggestion
// for a near miss) so that a typo never silently leaves a default in place.
class TableReader {
 public:
  TableReader(Diagnostics& diagnostics, const toml::table* table, std::string path,
              std::span<const std::string_view> keys, const toml::node* tableNode)
      : diagnostics_(diagnostics),
        table_(table),
        path_(std::move(path)),
        keys_(keys),
        node_(tableNode) {}

  std::string keyPath(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }
  const std::string& path() const { return path_; }
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const toml::node* find(std::string_view key) const { return table_ ? table_->get(key) : nullptr; }

  // Where the key's value was set; the table header when the key is absent.
  Position positionOf(std::string_view key) const;
  Position tablePosition() const { return diagnostics_.tablePosition(node_); }

  void error(std::string_view key, std::string message) const;
  void warn(std::string_view key, std::string message) const;
  // Reported at the table header: for keys that are required but absent.
  void errorAtTable(std::string_view key, std::string message) const;

  Read readString(std::string_view key, std::string& out) const;
  Read readBool(std::string_view key, bool& out) const;
  template <class T>
  Read readInteger(std::string_view key, std::int64_t min, std::int64_t max, T& out) const;
  Read readDuration(std::string_view key, Duration min, Duration max, Duration& out) const;
  template <class E>
  Read readEnum(std::string_view key, E& out) const;

  void reportUnknownKeys() const;

 private:
  Diagnostics& diagnostics_;
  const toml::table* table_;
  std::string path_;
  std::span<const std::string_view> keys_;
  const toml::node* node_;
};

// The array behind "[[name]]" tables; nullptr, with the error reported, when `node` is not an
// array.
const toml::array* asArrayOfTables(Diagnostics& diagnostics, const toml::node& node,
                                   std::string_view name);

// Calls `read(reader, index)` with a reader for each element of an array of "[[name]]" tables,
// and reports each element that is not a table.
template <class ReadTable>
void forEachTable(Diagnostics& diagnostics, const toml::array& array, std::string_view name,
                  std::span<const std::string_view> keys, ReadTable&& read) {
  for (std::size_t i = 0; i < array.size(); ++i) {
    const toml::node& element = *array.get(i);
    const std::string path = std::string(name) + "[" + std::to_string(i) + "]";
    if (!element.is_table()) {
      diagnostics.error(
          diagnostics.position(path, element.source()), path,
          "expected a table ([[" + std::string(name) + "]]), got " + describe(element));
      continue;
    }
    const TableReader reader(diagnostics, element.as_table(), path, keys, &element);
    read(reader, i);
  }
}

template <class T>
Read TableReader::readInteger(std::string_view key, std::int64_t min, std::int64_t max,
                              T& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  const std::string expected =
      "an integer between " + std::to_string(min) + " and " + std::to_string(max);
  if (!node->is_integer()) {
    const bool quotedNumber = node->is_string() && protocol::isAllDigits(node->as_string()->get());
    error(key, "expected " + expected + ", got " + describe(*node) +
                   (quotedNumber ? " (remove the quotes)" : ""));
    return Read::Invalid;
  }
  const std::int64_t value = node->as_integer()->get();
  if (value < min || value > max) {
    error(key, "expected " + expected + ", got " + std::to_string(value));
    return Read::Invalid;
  }
  out = static_cast<T>(value);
  return Read::Ok;
}

template <class E>
Read TableReader::readEnum(std::string_view key, E& out) const {
  const toml::node* node = find(key);
  if (node == nullptr) return Read::Absent;
  if (node->is_string()) {
    const std::string& text = node->as_string()->get();
    for (const EnumName<E>& entry : enumNames<E>()) {
      if (entry.name == text) {
        out = entry.value;
        return Read::Ok;
      }
    }
  }
  error(key, "expected " + oneOf<E>() + ", got " + describe(*node));
  return Read::Invalid;
}

}  // namespace popbridge::config
