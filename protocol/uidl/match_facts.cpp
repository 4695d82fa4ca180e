#include "protocol/uidl/match_facts.h"

#include <array>
#include <vector>

#include "protocol/text.h"

namespace popbridge::protocol::uidl {
namespace {

constexpr int kMessageIdField = 4;
constexpr int kDateField = 3;

bool isWsp(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
std::int64_t daysFromCivil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::optional<int> monthNumber(std::string_view token) {
  static constexpr std::string_view kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  for (int i = 0; i < 12; ++i) {
    if (equalsIgnoreCase(token, kMonths[i])) return i + 1;
  }
  return std::nullopt;
}

// Offset east of UTC in minutes.
std::optional<int> zoneOffset(std::string_view zone) {
  if (zone.size() == 5 && (zone[0] == '+' || zone[0] == '-') && isAllDigits(zone.substr(1))) {
    const int hh = (zone[1] - '0') * 10 + (zone[2] - '0');
    const int mm = (zone[3] - '0') * 10 + (zone[4] - '0');
    if (mm > 59) return std::nullopt;
    const int minutes = hh * 60 + mm;
    return zone[0] == '-' ? -minutes : minutes;
  }
  struct Named {
    std::string_view name;
    int hours;
  };
  static constexpr Named kNamed[] = {{"ut", 0},   {"gmt", 0},  {"utc", 0},  {"est", -5},
                                     {"edt", -4}, {"cst", -6}, {"cdt", -5}, {"mst", -7},
                                     {"mdt", -6}, {"pst", -8}, {"pdt", -7}};
  for (const Named& n : kNamed) {
    if (equalsIgnoreCase(zone, n.name)) return n.hours * 60;
  }
  // RFC 5322 4.3: military zones were defined wrongly in RFC 822, so they mean -0000.
  if (zone.size() == 1 &&
      ((zone[0] >= 'a' && zone[0] <= 'z') || (zone[0] >= 'A' && zone[0] <= 'Z')) &&
      zone[0] != 'j' && zone[0] != 'J') {
    return 0;
  }
  return std::nullopt;
}

std::optional<int> smallNumber(std::string_view digits, std::size_t minLen, std::size_t maxLen) {
  if (digits.size() < minLen || digits.size() > maxLen || !isAllDigits(digits)) return std::nullopt;
  int value = 0;
  for (char c : digits) value = value * 10 + (c - '0');
  return value;
}

}  // namespace

std::optional<std::int64_t> parseRfc5322Date(std::string_view text) {
  // Comments become spaces, commas too, and whitespace around ':' goes (obs-time allows CFWS
  // there); then the date is a list of tokens.
  std::string clean;
  int depth = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (depth > 0) {
      if (c == '\\' && i + 1 < text.size()) {
        ++i;
      } else if (c == '(') {
        if (++depth > 8) return std::nullopt;
      } else if (c == ')') {
        --depth;
      }
      if (depth == 0) clean += ' ';
      continue;
    }
    if (c == '(') {
      depth = 1;
    } else if (c == ',' || isWsp(c)) {
      clean += ' ';
    } else {
      clean += c;
    }
  }
  std::vector<std::string_view> tokens;
  {
    std::string joined;
    for (std::size_t i = 0; i < clean.size(); ++i) {
      if (clean[i] == ' ') {
        // Drop a space next to ':'.
        std::size_t j = i;
        while (j < clean.size() && clean[j] == ' ') ++j;
        const bool beforeColon = j < clean.size() && clean[j] == ':';
        const bool afterColon = !joined.empty() && joined.back() == ':';
        if (!beforeColon && !afterColon && !joined.empty() && j < clean.size()) joined += ' ';
        i = j - 1;
        continue;
      }
      joined += clean[i];
    }
    clean = std::move(joined);
  }
  std::string_view rest = clean;
  while (!rest.empty()) {
    const std::size_t space = rest.find(' ');
    tokens.push_back(rest.substr(0, space));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  std::size_t t = 0;
  static constexpr std::string_view kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
  if (t < tokens.size()) {
    for (std::string_view day : kDays) {
      if (equalsIgnoreCase(tokens[t], day)) {
        ++t;
        break;
      }
    }
  }
  if (tokens.size() - t < 5) return std::nullopt;
  const auto day = smallNumber(tokens[t], 1, 2);
  const auto month = monthNumber(tokens[t + 1]);
  auto year = smallNumber(tokens[t + 2], 2, 4);
  const std::string_view time = tokens[t + 3];
  const auto zone = zoneOffset(tokens[t + 4]);
  if (!day || !month || !year || !zone || tokens.size() != t + 5) return std::nullopt;
  if (*day < 1 || *day > 31) return std::nullopt;
  if (tokens[t + 2].size() == 2) {
    *year += *year < 50 ? 2000 : 1900;
  } else if (tokens[t + 2].size() == 3) {
    *year += 1900;
  }
  const std::size_t c1 = time.find(':');
  if (c1 == std::string_view::npos) return std::nullopt;
  const std::size_t c2 = time.find(':', c1 + 1);
  const auto hour = smallNumber(time.substr(0, c1), 2, 2);
  const auto minute = smallNumber(
      time.substr(c1 + 1, c2 == std::string_view::npos ? std::string_view::npos : c2 - c1 - 1), 2,
      2);
  std::optional<int> second = 0;
  if (c2 != std::string_view::npos) second = smallNumber(time.substr(c2 + 1), 2, 2);
  if (!hour || !minute || !second || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  const std::int64_t days =
      daysFromCivil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  return days * 86400 + *hour * 3600 + *minute * 60 + *second - std::int64_t{*zone} * 60;
}

HeaderFactsParser::HeaderFactsParser(HeaderLimits limits) : limits_(limits) {}

HeaderFactsParser::Status HeaderFactsParser::fail(std::string message) {
  error_ = std::move(message);
  status_ = Status::Error;
  return status_;
}

void HeaderFactsParser::appendCanonical(std::string_view text) {
  // Date and Message-ID are not hashed (see kHashedFields); only their first values are kept.
  Sha256* hash = static_cast<std::size_t>(field_) < kHashedFields ? &fieldHash_[field_] : nullptr;
  const bool keep =
      (field_ == kMessageIdField && !haveMessageId_) || (field_ == kDateField && !haveDate_);
  for (char c : text) {
    if (isWsp(c)) {
      pendingSpace_ = fieldHasText_;
      continue;
    }
    if (pendingSpace_) {
      if (hash) hash->update(" ");
      if (keep) value_ += ' ';
      pendingSpace_ = false;
    }
    if (hash) hash->update(std::string_view(&c, 1));
    fieldHasText_ = true;
    if (keep) value_ += c;
    if (value_.size() > limits_.maxValueLength) {
      valueOverlong_ = true;
      value_.clear();
    }
  }
}

void HeaderFactsParser::endField() {
  if (field_ < 0) return;
  if (static_cast<std::size_t>(field_) < kHashedFields) fieldHash_[field_].update("\n");
  ++fieldCount_[field_];
  if (field_ == kMessageIdField && !haveMessageId_) {
    haveMessageId_ = true;
    // The msg-id between the first '<' and the next '>'; a value without brackets is taken
    // whole. Whitespace inside (folding) is not part of the id.
    std::string_view id = value_;
    const std::size_t open = id.find('<');
    if (open != std::string_view::npos) {
      const std::size_t close = id.find('>', open + 1);
      id = id.substr(open + 1,
                     close == std::string_view::npos ? std::string_view::npos : close - open - 1);
    }
    if (!valueOverlong_) {
      for (char c : id) {
        if (c != ' ') facts_.messageId += c;
      }
    }
  } else if (field_ == kDateField && !haveDate_) {
    haveDate_ = true;
    if (!valueOverlong_ && !value_.empty()) {
      if (const auto seconds = parseRfc5322Date(value_)) {
        facts_.dateKey = "@" + std::to_string(*seconds);
      } else {
        facts_.dateKey = "=" + value_;
      }
    }
  }
  field_ = -1;
  value_.clear();
  valueOverlong_ = false;
  pendingSpace_ = false;
  fieldHasText_ = false;
}

void HeaderFactsParser::processLine(std::string_view line) {
  if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
    // A continuation: unfolding keeps the whitespace, which the canonical form collapses.
    if (field_ >= 0) {
      pendingSpace_ = fieldHasText_;
      appendCanonical(line);
    }
    ++lines_;
    return;
  }
  endField();
  ++lines_;
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return;  // not a field (an mbox "From " line): skipped
  std::string_view name = line.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  for (std::size_t i = 0; i < std::size(kMatchFields); ++i) {
    if (equalsIgnoreCase(name, kMatchFields[i])) {
      field_ = static_cast<int>(i);
      appendCanonical(line.substr(colon + 1));
      return;
    }
  }
}

void HeaderFactsParser::complete() {
  endField();
  Sha256 all;
  for (std::size_t i = 0; i < kHashedFields; ++i) {
    all.update(kMatchFields[i]);
    all.update(":" + std::to_string(fieldCount_[i]) + ":");
    const Sha256::Digest digest = fieldHash_[i].finish();
    all.update(digest.data(), digest.size());
  }
  facts_.headerHash = all.finish();
  facts_.hasHeader = true;
  facts_.headerLines = lines_;
  status_ = Status::Done;
}

HeaderFactsParser::Status HeaderFactsParser::feed(std::string_view data, std::size_t& consumed) {
  consumed = 0;
  if (status_ != Status::NeedMore) return status_;
  while (consumed < data.size()) {
    const char c = data[consumed++];
    if (++total_ > limits_.maxTotal) {
      return fail("the header is longer than " + std::to_string(limits_.maxTotal) + " bytes");
    }
    if (c != '\n') {
      if (line_.size() + 1 >= limits_.maxLineLength) {
        return fail("header line " + std::to_string(lines_ + 1) + " is longer than " +
                    std::to_string(limits_.maxLineLength) + " bytes");
      }
      line_ += c;
      continue;
    }
    std::string_view line = line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      line_.clear();
      complete();
      return status_;
    }
    processLine(line);
    line_.clear();
  }
  return status_;
}

HeaderFactsParser::Status HeaderFactsParser::finish() {
  if (status_ != Status::NeedMore) return status_;
  std::string_view line = line_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!line.empty()) processLine(line);
  line_.clear();
  complete();
  return status_;
}

std::optional<MatchFacts> parseHeaderFacts(std::string_view block, std::string& error,
                                           HeaderLimits limits) {
  HeaderFactsParser parser(limits);
  std::size_t consumed = 0;
  auto status = parser.feed(block, consumed);
  if (status == HeaderFactsParser::Status::NeedMore) status = parser.finish();
  if (status == HeaderFactsParser::Status::Error) {
    error = parser.error();
    return std::nullopt;
  }
  return parser.facts();
}

}  // namespace popbridge::protocol::uidl
