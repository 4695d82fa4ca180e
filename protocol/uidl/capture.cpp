#include "protocol/uidl/capture.h"

#include <algorithm>
#include <utility>

#include "protocol/text.h"
#include "protocol/uidl/import_file.h"
#include "protocol/uidl/stable_id.h"

namespace popbridge::protocol::uidl {

Capture::Capture() : Capture(Limits{}) {}
Capture::Capture(Limits limits) : limits_(limits) {}

std::string Capture::takeCommand() {
  return std::exchange(command_, std::string());
}

Capture::Status Capture::fail(std::string message) {
  error_ = std::move(message);
  status_ = Status::Error;
  return status_;
}

void Capture::nextTop(std::string& out) {
  if (top_ >= numbers_.size()) {
    phase_ = Phase::Done;
    status_ = Status::Done;
    return;
  }
  out += "message " + uidls_[top_] + " " + std::to_string(sizes_[top_]) + "\n";
  command_ = "TOP " + std::to_string(numbers_[top_]) + " 0\r\n";
  statusLineSeen_ = false;
}

Capture::Status Capture::line(std::string_view text, std::string& out) {
  static constexpr std::string_view kPhaseNames[] = {"UIDL", "LIST", "TOP n 0", ""};
  if (!statusLineSeen_) {
    if (text.substr(0, 3) != "+OK") {
      return fail(std::string(kPhaseNames[static_cast<int>(phase_)]) +
                  " was refused: " + loggableText(text, 120));
    }
    statusLineSeen_ = true;
    return status_;
  }
  const bool end = text == ".";
  switch (phase_) {
    case Phase::Uidl:
    case Phase::List: {
      if (end) {
        if (phase_ == Phase::Uidl) {
          phase_ = Phase::List;
          command_ = "LIST\r\n";
          statusLineSeen_ = false;
          return status_;
        }
        for (std::size_t i = 0; i < numbers_.size(); ++i) {
          if (!sized_[i]) {
            return fail("LIST gave no size for message " + std::to_string(numbers_[i]));
          }
        }
        phase_ = Phase::Top;
        out += std::string(ImportParser::kMagic) + "\n";
        nextTop(out);
        return status_;
      }
      const std::size_t space = text.find(' ');
      const auto number =
          space == std::string_view::npos ? std::nullopt : parseUint32(text.substr(0, space));
      if (!number || *number == 0) {
        return fail(std::string(kPhaseNames[static_cast<int>(phase_)]) +
                    " line is not \"n value\": " + loggableText(text, 120));
      }
      std::string_view value = text.substr(space + 1);
      // Some servers pad LIST lines with extra fields (RFC 1939 allows them); the first counts.
      if (phase_ == Phase::List) value = value.substr(0, value.find(' '));
      if (phase_ == Phase::Uidl) {
        if (!isValidUidl(value)) {
          return fail("message " + std::to_string(*number) + " has no valid UIDL: \"" +
                      loggableText(value, 80) + "\"");
        }
        if (numbers_.size() >= limits_.maxMessages) {
          return fail("more than " + std::to_string(limits_.maxMessages) + " messages");
        }
        if (!numbers_.empty() && *number <= numbers_.back()) {
          return fail("UIDL listing is not in ascending message order at message " +
                      std::to_string(*number));
        }
        numbers_.push_back(*number);
        uidls_.emplace_back(value);
        sizes_.push_back(0);
        sized_.push_back(false);
        return status_;
      }
      const auto size = parseDecimal(value);
      if (!size) {
        return fail("LIST gave no size for message " + std::to_string(*number) + ": " +
                    loggableText(text, 120));
      }
      const auto it = std::lower_bound(numbers_.begin(), numbers_.end(), *number);
      // A message LIST shows and UIDL did not (it arrived in between) is left out.
      if (it != numbers_.end() && *it == *number) {
        const auto i = static_cast<std::size_t>(it - numbers_.begin());
        sizes_[i] = *size;
        sized_[i] = true;
      }
      return status_;
    }
    case Phase::Top:
      out.append(text);
      out += '\n';
      if (end) {
        ++top_;
        nextTop(out);
      }
      return status_;
    case Phase::Done:
      break;
  }
  return status_;
}

Capture::Status Capture::feed(std::string_view data, std::string& out) {
  for (std::size_t i = 0; i < data.size() && status_ == Status::NeedMore; ++i) {
    const char c = data[i];
    if (c != '\n') {
      if (line_.size() + 1 >= limits_.maxLineLength) {
        return fail("a reply line is longer than " + std::to_string(limits_.maxLineLength) +
                    " bytes");
      }
      line_ += c;
      continue;
    }
    std::string_view text = line_;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    line(text, out);
    line_.clear();
  }
  return status_;
}

}  // namespace popbridge::protocol::uidl
