#include "protocol/pop3/parser.h"

#include <array>
#include <cstring>
#include <limits>
#include <utility>

namespace popbridge::protocol {

namespace {

struct VerbSpec {
  std::string_view name;
  Pop3Verb verb;
  std::size_t maxWords;  // PASS takes the rest of the line instead of words
};

constexpr std::array<VerbSpec, 16> kVerbs{{
    {"USER", Pop3Verb::User, 1},
    {"PASS", Pop3Verb::Pass, 0},
    {"APOP", Pop3Verb::Apop, 2},
    {"AUTH", Pop3Verb::Auth, 2},
    {"CAPA", Pop3Verb::Capa, 0},
    {"STLS", Pop3Verb::Stls, 0},
    {"STAT", Pop3Verb::Stat, 0},
    {"LIST", Pop3Verb::List, 1},
    {"UIDL", Pop3Verb::Uidl, 1},
    {"RETR", Pop3Verb::Retr, 1},
    {"TOP", Pop3Verb::Top, 2},
    {"DELE", Pop3Verb::Dele, 1},
    {"RSET", Pop3Verb::Rset, 0},
    {"NOOP", Pop3Verb::Noop, 0},
    {"QUIT", Pop3Verb::Quit, 0},
    {"LAST", Pop3Verb::Last, 0},
}};

constexpr std::string_view kEmptyLine = "Empty command line";
constexpr std::string_view kTooManyArguments = "Too many arguments";
constexpr std::string_view kNul = "NUL byte in command line";
constexpr std::string_view kBareCr = "Bare CR in command line";

constexpr bool isBlank(char c) {
  return c == ' ' || c == '\t';
}

constexpr char toUpper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
}

enum class NumberStatus { Ok, Invalid, Overflow };

// Digits only: no sign, no blanks, no base prefix. Leading zeros are allowed.
NumberStatus parseNumber(std::string_view text, std::uint64_t max, std::uint64_t& value) {
  if (text.empty()) return NumberStatus::Invalid;
  for (char c : text) {
    if (c < '0' || c > '9') return NumberStatus::Invalid;
  }
  std::uint64_t v = 0;
  for (char c : text) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    // Checked before multiplying, so the arithmetic itself can never wrap.
    if (v > (max - digit) / 10) return NumberStatus::Overflow;
    v = v * 10 + digit;
  }
  value = v;
  return NumberStatus::Ok;
}

Pop3Parser::Result errorResult(std::string_view text) {
  Pop3Parser::Result result;
  result.status = Pop3Parser::Status::Error;
  result.error = text;
  return result;
}

// Fills command.msn, or returns the error text.
std::string_view parseMsn(std::string_view text, Pop3Command& command) {
  std::uint64_t value = 0;
  switch (parseNumber(text, std::numeric_limits<std::uint32_t>::max(), value)) {
    case NumberStatus::Invalid:
      return "Invalid message number";
    case NumberStatus::Overflow:
      return "Message number too large";
    case NumberStatus::Ok:
      break;
  }
  if (value == 0) return "Message numbers start at 1";
  command.msn = static_cast<std::uint32_t>(value);
  return {};
}

}  // namespace

std::string_view verbName(Pop3Verb verb) {
  if (verb == Pop3Verb::SaslResponse) return "SASL";
  for (const VerbSpec& spec : kVerbs) {
    if (spec.verb == verb) return spec.name;
  }
  return "?";
}

void Pop3Parser::reset() {
  startLine();
}

void Pop3Parser::startLine() {
  state_ = State::LineStart;
  lineIsSasl_ = false;
  lineLength_ = 0;
  lineLimit_ = kMaxCommandLine;
  wordCount_ = 0;
  verb_ = {};
  verbLength_ = 0;
  arg_.clear();
  arg2_.clear();
  error_.clear();
}

void Pop3Parser::fail(std::string_view error) {
  // The first problem of a line is the one reported.
  if (error_.empty()) error_ = error;
  state_ = State::Skip;
}

void Pop3Parser::endVerb() {
  const std::size_t length = verbLength_;
  if (length == 3 || length == 4) {
    char upper[4];
    for (std::size_t i = 0; i < length; ++i) upper[i] = toUpper(verbEcho_[i]);
    const std::string_view name(upper, length);
    for (const VerbSpec& spec : kVerbs) {
      if (spec.name == name) {
        verb_ = spec.verb;
        if (verb_ == Pop3Verb::Pass || verb_ == Pop3Verb::Auth) lineLimit_ = kMaxCredentialLine;
        return;
      }
    }
  }
  // Echo what was sent so the user can see the typo, but only as printable
  // ASCII and only the first few characters. "PASSsecret" (a missing space)
  // must not put the password into a reply or a log line.
  std::string text = "Unknown command: ";
  // A cut echo ends in "...", and the whole echo stays within kMaxVerbEcho.
  std::size_t shown = length <= kMaxVerbEcho ? length : kMaxVerbEcho - 3;
  if (length > 4) {
    std::string_view prefix(verbEcho_, 4);
    char upper[4];
    for (std::size_t i = 0; i < 4; ++i) upper[i] = toUpper(prefix[i]);
    prefix = std::string_view(upper, 4);
    if (prefix == "PASS" || prefix == "AUTH" || prefix == "APOP") shown = 4;
  }
  for (std::size_t i = 0; i < shown; ++i) {
    const char c = verbEcho_[i];
    text.push_back(c > 0x20 && c < 0x7f ? c : '?');
  }
  if (shown < length) text.append("...");
  fail(text);
}

bool Pop3Parser::inCredential() const {
  if (lineIsSasl_) return false;
  if (state_ == State::RestOfLine) return true;  // PASS
  return verb_ == Pop3Verb::User && (state_ == State::Blanks || state_ == State::Word);
}

std::size_t Pop3Parser::maxWords() const {
  for (const VerbSpec& spec : kVerbs) {
    if (spec.verb == verb_) return spec.maxWords;
  }
  return 0;
}

Pop3Parser::Result Pop3Parser::takeError() {
  Result result = errorResult(error_);
  startLine();
  return result;
}

Pop3Parser::Result Pop3Parser::finishLine() {
  if (state_ == State::Verb) endVerb();
  if (state_ == State::Skip) return takeError();

  Result result;
  result.status = Status::Command;
  Pop3Command& command = result.command;

  if (lineIsSasl_) {
    command.verb = Pop3Verb::SaslResponse;
    command.arg = std::move(arg_);
    startLine();
    return result;
  }
  if (verbLength_ == 0) {
    startLine();
    return errorResult(kEmptyLine);
  }

  command.verb = verb_;
  std::string_view error;
  switch (verb_) {
    case Pop3Verb::User:
      if (wordCount_ < 1) {
        error = "Missing user name";
      } else {
        command.arg = std::move(arg_);
      }
      break;
    case Pop3Verb::Pass:
      if (arg_.empty()) {
        error = "Missing password";
      } else {
        command.arg = std::move(arg_);
      }
      break;
    case Pop3Verb::Apop:
      if (wordCount_ < 1) {
        error = "Missing user name";
      } else if (wordCount_ < 2) {
        error = "Missing digest";
      } else {
        command.arg = std::move(arg_);
        command.arg2 = std::move(arg2_);
      }
      break;
    case Pop3Verb::Auth:
      if (wordCount_ >= 1) {
        for (char& c : arg_) c = toUpper(c);
        command.arg = std::move(arg_);
      }
      if (wordCount_ >= 2) command.arg2 = std::move(arg2_);
      break;
    case Pop3Verb::List:
    case Pop3Verb::Uidl:
      if (wordCount_ >= 1) error = parseMsn(arg_, command);
      break;
    case Pop3Verb::Retr:
    case Pop3Verb::Dele:
      error = wordCount_ < 1 ? std::string_view("Missing message number") : parseMsn(arg_, command);
      break;
    case Pop3Verb::Top:
      if (wordCount_ < 1) {
        error = "Missing message number";
        break;
      }
      error = parseMsn(arg_, command);
      if (!error.empty()) break;
      if (wordCount_ < 2) {
        error = "Missing line count";
        break;
      }
      switch (parseNumber(arg2_, std::numeric_limits<std::uint64_t>::max(), command.lines)) {
        case NumberStatus::Invalid:
          error = "Invalid line count";
          break;
        case NumberStatus::Overflow:
          error = "Line count too large";
          break;
        case NumberStatus::Ok:
          break;
      }
      break;
    default:
      // Verbs without arguments: extra words were already refused while the
      // line was read.
      break;
  }
  startLine();
  if (!error.empty()) return errorResult(error);
  return result;
}

Pop3Parser::Result Pop3Parser::parse(std::string_view input, std::size_t& consumed) {
  const char* const data = input.data();
  const std::size_t size = input.size();
  std::size_t i = 0;
  while (i < size) {
    if (state_ == State::Discard) {
      // The only state that can see unbounded input, so it skips in bulk.
      const void* lf = std::memchr(data + i, '\n', size - i);
      if (lf == nullptr) {
        i = size;
        break;
      }
      i = static_cast<std::size_t>(static_cast<const char*>(lf) - data) + 1;
      startLine();
      continue;
    }

    const char c = data[i++];
    if (lineLength_ == 0) {
      lineIsSasl_ = saslMode_;
      if (lineIsSasl_) {
        state_ = State::RestOfLine;
        lineLimit_ = kMaxSaslLine;
      }
    }
    ++lineLength_;
    if (lineLength_ > lineLimit_) {
      Result result = errorResult(lineIsSasl_ ? "SASL response too long" : "Command line too long");
      result.lineTooLong = true;
      startLine();
      // If the byte over the limit is the LF itself, the line is already over
      // and the next one must not be discarded.
      if (c != '\n') state_ = State::Discard;
      consumed = i;
      return result;
    }
    if (c == '\n') {
      consumed = i;
      return finishLine();
    }

    switch (state_) {
      case State::Skip:
        continue;
      case State::AfterCr:
        fail(kBareCr);
        continue;
      default:
        break;
    }
    if (c == '\0' && !inCredential()) {
      fail(kNul);
      continue;
    }

    switch (state_) {
      case State::LineStart:
        if (c == '\r') {
          state_ = State::AfterCr;
        } else if (!isBlank(c)) {
          state_ = State::Verb;
          verbEcho_[0] = c;
          verbLength_ = 1;
        }
        break;
      case State::Verb:
        if (c == '\r' || isBlank(c)) {
          endVerb();
          if (state_ == State::Skip) break;
          if (c == '\r') {
            state_ = State::AfterCr;
          } else {
            state_ = verb_ == Pop3Verb::Pass ? State::RestOfLine : State::Blanks;
          }
        } else {
          if (verbLength_ < kMaxVerbEcho) verbEcho_[verbLength_] = c;
          ++verbLength_;
        }
        break;
      case State::Blanks:
        if (c == '\r') {
          state_ = State::AfterCr;
        } else if (!isBlank(c)) {
          if (++wordCount_ > maxWords()) {
            fail(kTooManyArguments);
            break;
          }
          (wordCount_ == 1 ? arg_ : arg2_).push_back(c);
          state_ = State::Word;
        }
        break;
      case State::Word:
        if (c == '\r') {
          state_ = State::AfterCr;
        } else if (isBlank(c)) {
          state_ = State::Blanks;
        } else {
          (wordCount_ == 1 ? arg_ : arg2_).push_back(c);
        }
        break;
      case State::RestOfLine:
        if (c == '\r') {
          state_ = State::AfterCr;
        } else {
          arg_.push_back(c);
        }
        break;
      case State::AfterCr:
      case State::Skip:
      case State::Discard:
        break;
    }
  }
  consumed = size;
  return {};
}

}  // namespace popbridge::protocol
