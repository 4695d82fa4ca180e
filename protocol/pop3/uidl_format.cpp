#include "protocol/pop3/uidl_format.h"

#include <algorithm>
#include <array>

#include "protocol/uidl/sha256.h"

namespace popbridge::protocol {
namespace {

constexpr std::size_t kMaxDecimalDigits = 10;    // 4294967295
constexpr std::size_t kMaxHexDigits = 8;         // FFFFFFFF
constexpr std::size_t kMaxDecimalDigits64 = 20;  // 18446744073709551615
constexpr std::size_t kMaxHexDigits64 = 16;

std::string offsetText(std::size_t offset) {
  return "at offset " + std::to_string(offset);
}

std::string hexByte(unsigned char c) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("0x") + kHex[c >> 4] + kHex[c & 0xF];
}

// Writes the digits of `value` right-aligned into the end of `buf`, returns how many.
template <std::size_t N>
std::size_t writeDigits(std::array<char, N>& buf, std::uint64_t value, bool hex) {
  static constexpr char kLower[] = "0123456789abcdef";
  std::size_t pos = N;
  if (hex) {
    do {
      buf[--pos] = kLower[value & 0xF];
      value >>= 4;
    } while (value != 0);
  } else {
    do {
      buf[--pos] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
  }
  return N - pos;
}

}  // namespace

std::optional<UidlFormat> UidlFormat::parse(std::string_view spec, std::string& error) {
  if (spec.empty()) {
    error = "must not be empty; Dovecot's default is \"%08Xu%08Xv\"";
    return std::nullopt;
  }
  UidlFormat result;
  result.spec_ = std::string(spec);
  bool usesUid = false;
  int textFields = 0;
  std::size_t maxLength = 0;
  std::size_t i = 0;

  auto tooLong = [&](std::size_t at) {
    error = "output can reach more than " + std::to_string(kMaxLength) +
            " characters (the RFC 1939 limit for a UIDL); the template is too long from offset " +
            std::to_string(at) + " on";
  };

  while (i < spec.size()) {
    const unsigned char c = static_cast<unsigned char>(spec[i]);
    if (c != '%') {
      if (c < 0x21 || c > 0x7E) {
        error = "character " + hexByte(c) + " " + offsetText(i) +
                " is not allowed: a UIDL may only contain printable ASCII 0x21-0x7E";
        return std::nullopt;
      }
      if (++maxLength > kMaxLength) {
        tooLong(i);
        return std::nullopt;
      }
      // Adjacent literal characters share one piece.
      if (result.pieces_.empty() || result.pieces_.back().field != Field::Literal) {
        Piece piece;
        piece.literalOffset = static_cast<std::uint8_t>(result.literals_.size());
        result.pieces_.push_back(piece);
      }
      result.literals_.push_back(static_cast<char>(c));
      ++result.pieces_.back().literalLength;
      ++i;
      continue;
    }

    const std::size_t start = i++;
    if (i < spec.size() && spec[i] == '%') {
      // "%%" is an ordinary literal '%'.
      if (++maxLength > kMaxLength) {
        tooLong(start);
        return std::nullopt;
      }
      if (result.pieces_.empty() || result.pieces_.back().field != Field::Literal) {
        Piece piece;
        piece.literalOffset = static_cast<std::uint8_t>(result.literals_.size());
        result.pieces_.push_back(piece);
      }
      result.literals_.push_back('%');
      ++result.pieces_.back().literalLength;
      ++i;
      continue;
    }

    bool zeroPad = false;
    if (i < spec.size() && spec[i] == '0') {
      zeroPad = true;
      ++i;
    }
    std::size_t width = 0;
    const std::size_t widthStart = i;
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9') {
      width = width * 10 + static_cast<std::size_t>(spec[i] - '0');
      if (width > kMaxLength) {
        error = "width " + offsetText(widthStart) + " is larger than " +
                std::to_string(kMaxLength) + ", the RFC 1939 limit for a UIDL";
        return std::nullopt;
      }
      ++i;
    }
    Radix radix = Radix::Decimal;
    if (i < spec.size() && (spec[i] == 'X' || spec[i] == 'x' || spec[i] == 'd')) {
      radix = spec[i] == 'd' ? Radix::Decimal : Radix::Hex;
      ++i;
    }
    if (i < spec.size() && spec[i] == '{') {
      const std::size_t close = spec.find('}', i);
      const std::string_view name =
          close == std::string_view::npos ? std::string_view() : spec.substr(i + 1, close - i - 1);
      Piece piece;
      if (name == "gmmsgid") {
        piece.field = Field::GmMsgId;
        result.usesGmMsgId_ = true;
      } else if (name == "emailid" || name == "stable") {
        piece.field = name == "emailid" ? Field::EmailId : Field::Stable;
        (name == "emailid" ? result.usesEmailId_ : result.usesStable_) = true;
        if (zeroPad || width > 0 || i != widthStart) {
          error = "%{" + std::string(name) + "} " + offsetText(start) +
                  " takes no flag, width or radix: it is text, not a number";
          return std::nullopt;
        }
        if (textFields++ > 0) {
          error = "only one of %{emailid} and %{stable} fits in a template " + offsetText(start);
          return std::nullopt;
        }
      } else {
        error =
            "unknown field \"" +
            std::string(spec.substr(start, close == std::string_view::npos ? std::string_view::npos
                                                                           : close + 1 - start)) +
            "\" " + offsetText(start) + ": expected %{stable}, %{emailid} or %{gmmsgid}";
        return std::nullopt;
      }
      if (width > 1 && !zeroPad) {
        error = "width without the 0 flag " + offsetText(start) +
                " would pad with spaces, which a UIDL may not contain";
        return std::nullopt;
      }
      piece.radix = radix;
      piece.width = static_cast<std::uint8_t>(width);
      if (piece.field == Field::GmMsgId) {
        maxLength +=
            std::max(width, radix == Radix::Decimal ? kMaxDecimalDigits64 : kMaxHexDigits64);
        if (maxLength > kMaxLength) {
          tooLong(start);
          return std::nullopt;
        }
      }
      result.pieces_.push_back(piece);
      i = close + 1;
      continue;
    }
    if (i >= spec.size()) {
      error = "incomplete directive \"" + std::string(spec.substr(start)) + "\" " +
              offsetText(start) + ": expected %u (UID), %v (UIDVALIDITY) or %%";
      return std::nullopt;
    }
    if (spec[i] != 'u' && spec[i] != 'v') {
      error = "unknown directive \"" + std::string(spec.substr(start, i + 1 - start)) + "\" " +
              offsetText(start) +
              ": expected %u (UID), %v (UIDVALIDITY) or %%, optionally with 0, a width and X, x "
              "or d, as in %08Xu";
      return std::nullopt;
    }
    if (width > 1 && !zeroPad) {
      error = "width without the 0 flag " + offsetText(start) +
              " would pad with spaces, which a UIDL may not contain; write \"%0" +
              std::string(spec.substr(widthStart, i + 1 - widthStart)) + "\"";
      return std::nullopt;
    }

    Piece piece;
    piece.field = spec[i] == 'u' ? Field::Uid : Field::UidValidity;
    piece.radix = radix;
    piece.width = static_cast<std::uint8_t>(width);
    usesUid = usesUid || piece.field == Field::Uid;
    result.usesUidValidity_ = result.usesUidValidity_ || piece.field == Field::UidValidity;
    const std::size_t digits = radix == Radix::Decimal ? kMaxDecimalDigits : kMaxHexDigits;
    maxLength += std::max(width, digits);
    if (maxLength > kMaxLength) {
      tooLong(start);
      return std::nullopt;
    }
    result.pieces_.push_back(piece);
    ++i;
  }

  if (!usesUid && !result.usesMessageIds()) {
    error =
        "must contain %u (or %{stable}, %{emailid}, %{gmmsgid}): without a per-message id the "
        "UIDLs are not unique";
    return std::nullopt;
  }
  if (textFields > 0) {
    if (kMaxLength - maxLength < kMinTextBudget) {
      error = "the rest of the template leaves " + std::to_string(kMaxLength - maxLength) +
              " of the 70 characters for %{" + (result.usesStable_ ? "stable" : "emailid") +
              "}, which needs at least " + std::to_string(kMinTextBudget);
      return std::nullopt;
    }
    result.textBudget_ = kMaxLength - maxLength;
    maxLength = kMaxLength;
  }
  result.maxLength_ = maxLength;
  return result;
}

void UidlFormat::appendTo(std::string& out, std::uint32_t uid, std::uint32_t uidValidity) const {
  Fields fields;
  fields.uid = uid;
  fields.uidValidity = uidValidity;
  if (!appendTo(out, fields)) {
    static const UidlFormat kDefault = [] {
      std::string error;
      return *parse(kDovecotDefault, error);
    }();
    kDefault.appendTo(out, fields);
  }
}

bool UidlFormat::appendTo(std::string& out, const Fields& fields) const {
  auto missing = [](const std::optional<std::string_view>& text) { return !text || text->empty(); };
  if ((usesEmailId_ && missing(fields.emailId)) || (usesStable_ && missing(fields.stable)) ||
      (usesGmMsgId_ && !fields.gmMsgId)) {
    return false;
  }
  std::array<char, kMaxLength> buf;
  std::size_t length = 0;
  for (const Piece& piece : pieces_) {
    if (piece.field == Field::Literal) {
      literals_.copy(buf.data() + length, piece.literalLength, piece.literalOffset);
      length += piece.literalLength;
      continue;
    }
    if (piece.field == Field::EmailId || piece.field == Field::Stable) {
      const std::string_view text =
          piece.field == Field::EmailId ? *fields.emailId : *fields.stable;
      const bool printable = std::all_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x21 && static_cast<unsigned char>(c) <= 0x7E;
      });
      if (printable && text.size() <= textBudget_) {
        text.copy(buf.data() + length, text.size());
        length += text.size();
      } else {
        // Too long or not printable: a fixed-size digest keeps it unique and valid.
        const std::string digest = uidl::toBase32(uidl::Sha256::of(text));
        buf[length++] = '~';
        digest.copy(buf.data() + length, kMinTextBudget - 1);
        length += kMinTextBudget - 1;
      }
      continue;
    }
    std::array<char, kMaxDecimalDigits64> digits;
    const std::uint64_t value = piece.field == Field::Uid           ? fields.uid
                                : piece.field == Field::UidValidity ? fields.uidValidity
                                                                    : *fields.gmMsgId;
    const std::size_t count = writeDigits(digits, value, piece.radix == Radix::Hex);
    for (std::size_t pad = count; pad < piece.width; ++pad) buf[length++] = '0';
    for (std::size_t d = digits.size() - count; d < digits.size(); ++d) buf[length++] = digits[d];
  }
  out.append(buf.data(), length);
  return true;
}

std::optional<std::string> UidlFormat::format(const Fields& fields) const {
  std::string out;
  out.reserve(maxLength_);
  if (!appendTo(out, fields)) return std::nullopt;
  return out;
}

std::string UidlFormat::format(std::uint32_t uid, std::uint32_t uidValidity) const {
  std::string out;
  out.reserve(maxLength_);
  appendTo(out, uid, uidValidity);
  return out;
}

}  // namespace popbridge::protocol
