#include "protocol/pop3/uidl_format.h"

#include <algorithm>
#include <array>

namespace popbridge::protocol {
namespace {

constexpr std::size_t kMaxDecimalDigits = 10;  // 4294967295
constexpr std::size_t kMaxHexDigits = 8;       // FFFFFFFF

std::string offsetText(std::size_t offset) {
  return "at offset " + std::to_string(offset);
}

std::string hexByte(unsigned char c) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("0x") + kHex[c >> 4] + kHex[c & 0xF];
}

// Writes the digits of `value` right-aligned into the end of `buf`, returns how many.
template <std::size_t N>
std::size_t writeDigits(std::array<char, N>& buf, std::uint32_t value, bool hex) {
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

  if (!usesUid) {
    error = "must contain %u: without the message UID the UIDLs are not unique";
    return std::nullopt;
  }
  result.maxLength_ = maxLength;
  return result;
}

void UidlFormat::appendTo(std::string& out, std::uint32_t uid, std::uint32_t uidValidity) const {
  std::array<char, kMaxLength> buf;
  std::size_t length = 0;
  for (const Piece& piece : pieces_) {
    if (piece.field == Field::Literal) {
      literals_.copy(buf.data() + length, piece.literalLength, piece.literalOffset);
      length += piece.literalLength;
      continue;
    }
    std::array<char, kMaxDecimalDigits> digits;
    const std::uint32_t value = piece.field == Field::Uid ? uid : uidValidity;
    const std::size_t count =
        writeDigits(digits, value, piece.radix == Radix::Hex);
    for (std::size_t pad = count; pad < piece.width; ++pad) buf[length++] = '0';
    for (std::size_t d = digits.size() - count; d < digits.size(); ++d) buf[length++] = digits[d];
  }
  out.append(buf.data(), length);
}

std::string UidlFormat::format(std::uint32_t uid, std::uint32_t uidValidity) const {
  std::string out;
  out.reserve(maxLength_);
  appendTo(out, uid, uidValidity);
  return out;
}

}  // namespace popbridge::protocol
