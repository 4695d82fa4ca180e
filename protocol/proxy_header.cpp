#include "protocol/proxy_header.h"

#include <arpa/inet.h>

#include <array>
#include <vector>

namespace popbridge::protocol {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

constexpr std::uint8_t kCommandLocal = 0x0;
constexpr std::uint8_t kCommandProxy = 0x1;
constexpr std::uint8_t kFamilyUnspec = 0x0;
constexpr std::uint8_t kFamilyInet = 0x1;
constexpr std::uint8_t kFamilyInet6 = 0x2;
constexpr std::uint8_t kFamilyUnix = 0x3;
constexpr std::uint8_t kTransportStream = 0x1;

constexpr std::size_t kInetBlock = 12;
constexpr std::size_t kInet6Block = 36;
constexpr std::size_t kUnixBlock = 216;

bool isPrefixOf(std::string_view part, std::string_view whole) {
  return whole.substr(0, part.size()) == part;
}

// What may follow "PROXY TCP4 " / "PROXY TCP6 " before the CR: the characters of IP literals,
// ports and single spaces. Anything else ends the connection at once.
bool isV1AddressChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' ||
         c == ':' || c == ' ';
}

std::string hexByte(std::uint8_t b) {
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("0x") + kHex[b >> 4] + kHex[b & 0xF];
}

// `text` as an address of `family` in its literal form; the text inet_ntop gives it back.
bool parseV1Ip(std::string_view text, int family, std::string& out) {
  std::array<char, 64> terminated{};
  if (text.empty() || text.size() >= terminated.size()) return false;
  if (family == AF_INET) {
    // glibc refuses leading zeros too; the spec's rule should not depend on the C library.
    std::size_t start = 0;
    while (start <= text.size()) {
      std::size_t end = text.find('.', start);
      if (end == std::string_view::npos) end = text.size();
      if (end - start > 1 && text[start] == '0') return false;
      start = end + 1;
    }
  }
  std::copy(text.begin(), text.end(), terminated.begin());
  std::array<unsigned char, 16> bytes{};
  if (::inet_pton(family, terminated.data(), bytes.data()) != 1) return false;
  char printed[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(family, bytes.data(), printed, sizeof printed) == nullptr) return false;
  out = printed;
  return true;
}

bool parseV1Port(std::string_view text, std::uint16_t& port) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

std::string binaryIp(int family, const unsigned char* bytes) {
  char printed[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, bytes, printed, sizeof printed);  // cannot fail for a valid family
  return printed;
}

std::uint16_t bigEndian16(const unsigned char* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

}  // namespace

ProxyHeaderParser::Status ProxyHeaderParser::fail(std::string message) {
  status_ = Status::Error;
  error_ = std::move(message);
  buffer_.clear();
  buffer_.shrink_to_fit();
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::feed(std::string_view data, std::size_t& consumed) {
  consumed = 0;
  if (status_ != Status::NeedMore) return status_;
  for (std::size_t i = 0; i < data.size(); ++i) {
    buffer_.push_back(data[i]);
    const std::size_t size = buffer_.size();
    if (version_ == 0) {
      const std::string_view seen = buffer_;
      if (isPrefixOf(seen, kV1Prefix)) {
        if (size == kV1Prefix.size()) version_ = 1;
      } else if (isPrefixOf(seen, kV2Signature)) {
        if (size == kV2Signature.size()) version_ = 2;
      } else {
        return fail("not a PROXY protocol header (expected \"PROXY \" or the v2 signature)");
      }
      continue;
    }
    Status status = Status::NeedMore;
    if (version_ == 1) {
      status = checkV1Byte();
    } else {
      const auto* bytes = reinterpret_cast<const unsigned char*>(buffer_.data());
      if (size == 13 && (bytes[12] >> 4) != 2) {
        return fail("PROXY v2: unsupported version " + std::to_string(bytes[12] >> 4));
      }
      if (size == 13 && (bytes[12] & 0xF) > kCommandProxy) {
        return fail("PROXY v2: unknown command " + std::to_string(bytes[12] & 0xF));
      }
      if (size == 14 && ((bytes[13] >> 4) > kFamilyUnix || (bytes[13] & 0xF) > 2)) {
        return fail("PROXY v2: unknown address family/transport " + hexByte(bytes[13]));
      }
      if (size == kProxyV2FixedLength) {
        const std::size_t length = bigEndian16(bytes + 14);
        if (length > kMaxProxyV2Length) {
          return fail("PROXY v2: header length " + std::to_string(length) + " exceeds " +
                      std::to_string(kMaxProxyV2Length));
        }
        needed_ = kProxyV2FixedLength + length;
      }
      if (size >= kProxyV2FixedLength && size == needed_) status = finishV2();
    }
    if (status == Status::Error) return status;
    if (status == Status::Done) {
      consumed = i + 1;
      return status;
    }
  }
  consumed = data.size();
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::checkV1Byte() {
  const std::string_view line = buffer_;
  const char c = line.back();
  const char previous = line[line.size() - 2];
  if (previous == '\r' && c != '\n') return fail("PROXY v1: CR not followed by LF");
  if (c == '\n') {
    if (previous != '\r') return fail("PROXY v1: line ends in LF without CR");
    return finishV1();
  }
  if (line.size() >= kMaxProxyV1Length) {
    return fail("PROXY v1: no CRLF within " + std::to_string(kMaxProxyV1Length) + " bytes");
  }
  const std::string_view rest = line.substr(kV1Prefix.size());
  if (rest.starts_with("UNKNOWN")) return Status::NeedMore;  // the spec: ignore up to CRLF
  if (rest.starts_with("TCP4 ") || rest.starts_with("TCP6 ")) {
    if (c != '\r' && !isV1AddressChar(c))
      return fail("PROXY v1: unexpected character in addresses");
    return Status::NeedMore;
  }
  if (isPrefixOf(rest, "TCP4 ") || isPrefixOf(rest, "TCP6 ") || isPrefixOf(rest, "UNKNOWN")) {
    return Status::NeedMore;
  }
  return fail("PROXY v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)");
}

ProxyHeaderParser::Status ProxyHeaderParser::finishV1() {
  const std::string_view line = std::string_view(buffer_).substr(0, buffer_.size() - 2);
  std::string_view rest = line.substr(kV1Prefix.size());
  header_ = {};
  header_.version = 1;
  header_.length = buffer_.size();
  if (rest.starts_with("UNKNOWN")) {
    if (rest.size() > 7 && rest[7] != ' ') return fail("PROXY v1: unknown protocol");
    header_.kind = "UNKNOWN";
    status_ = Status::Done;
    buffer_.clear();
    return status_;
  }
  std::vector<std::string_view> fields;
  while (true) {
    const std::size_t space = rest.find(' ');
    fields.push_back(rest.substr(0, space));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  for (std::string_view field : fields) {
    if (field.empty()) return fail("PROXY v1: extra space");
  }
  if (fields.size() != 5) {
    return fail("PROXY v1: expected 5 fields after PROXY, got " + std::to_string(fields.size()));
  }
  const bool v6 = fields[0] == "TCP6";
  const int family = v6 ? AF_INET6 : AF_INET;
  ProxyAddresses addresses;
  if (!parseV1Ip(fields[1], family, addresses.sourceIp)) {
    return fail(std::string("PROXY v1: bad ") + (v6 ? "IPv6" : "IPv4") + " source address");
  }
  if (!parseV1Ip(fields[2], family, addresses.destinationIp)) {
    return fail(std::string("PROXY v1: bad ") + (v6 ? "IPv6" : "IPv4") + " destination address");
  }
  if (!parseV1Port(fields[3], addresses.sourcePort)) return fail("PROXY v1: bad source port");
  if (!parseV1Port(fields[4], addresses.destinationPort)) {
    return fail("PROXY v1: bad destination port");
  }
  header_.kind = v6 ? "TCP6" : "TCP4";
  header_.addresses = std::move(addresses);
  status_ = Status::Done;
  buffer_.clear();
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::finishV2() {
  const auto* bytes = reinterpret_cast<const unsigned char*>(buffer_.data());
  const std::uint8_t command = bytes[12] & 0xF;
  const std::uint8_t family = bytes[13] >> 4;
  const std::uint8_t transport = bytes[13] & 0xF;
  const std::size_t length = buffer_.size() - kProxyV2FixedLength;
  header_ = {};
  header_.version = 2;
  header_.length = buffer_.size();
  if (command == kCommandLocal) {
    // The balancer's own connection (a health check): the spec says ignore the addresses.
    header_.kind = "LOCAL";
    status_ = Status::Done;
    return status_;
  }
  if (family == kFamilyUnspec) {
    header_.kind = "UNSPEC";
    status_ = Status::Done;
    return status_;
  }
  if (transport != kTransportStream) {
    return fail("PROXY v2: PROXY command for a transport other than STREAM " + hexByte(bytes[13]));
  }
  const std::size_t block = family == kFamilyInet    ? kInetBlock
                            : family == kFamilyInet6 ? kInet6Block
                                                     : kUnixBlock;
  if (length < block) {
    return fail("PROXY v2: address block truncated (" + std::to_string(length) + " of " +
                std::to_string(block) + " bytes)");
  }
  // TLVs: type, 16-bit length, value; each must end inside the header.
  for (std::size_t at = kProxyV2FixedLength + block; at < buffer_.size();) {
    if (buffer_.size() - at < 3) return fail("PROXY v2: truncated TLV header");
    const std::size_t valueLength = bigEndian16(bytes + at + 1);
    if (buffer_.size() - at - 3 < valueLength) {
      return fail("PROXY v2: TLV " + hexByte(bytes[at]) + " runs past the header");
    }
    at += 3 + valueLength;
  }
  const unsigned char* block0 = bytes + kProxyV2FixedLength;
  if (family == kFamilyUnix) {
    header_.kind = "UNIX";
  } else if (family == kFamilyInet) {
    header_.kind = "TCP4";
    header_.addresses = ProxyAddresses{binaryIp(AF_INET, block0), bigEndian16(block0 + 8),
                                       binaryIp(AF_INET, block0 + 4), bigEndian16(block0 + 10)};
  } else {
    header_.kind = "TCP6";
    header_.addresses = ProxyAddresses{binaryIp(AF_INET6, block0), bigEndian16(block0 + 32),
                                       binaryIp(AF_INET6, block0 + 16), bigEndian16(block0 + 34)};
  }
  status_ = Status::Done;
  buffer_.clear();
  buffer_.shrink_to_fit();
  return status_;
}

}  // namespace popbridge::protocol
