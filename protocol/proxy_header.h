#pragma once

// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) that a load
// balancer puts in front of a connection to tell the server who the real client is. Sans-I/O:
// bytes in, a verdict out. It is read before anything else on the connection, before the POP3
// greeting and before a TLS handshake.
//
// What is accepted:
//  - v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", the same with TCP6, or "PROXY UNKNOWN"
//    followed by anything up to CRLF; at most 107 bytes with the CRLF. Single spaces only,
//    addresses in their family's literal form, IPv4 octets and ports in decimal without
//    leading zeros (the spec forbids them, to rule out octal readings), ports 0..65535.
//  - v2: the 12-byte signature, version 2, command LOCAL or PROXY, family UNSPEC, INET, INET6
//    or UNIX. PROXY needs the STREAM transport (UNSPEC with the UNSPEC family). TLVs after the
//    addresses are checked to lie inside the header and otherwise ignored. A header longer
//    than kMaxProxyV2Length is refused.
//  - Anything else is an error as soon as a byte shows it: a connection that does not start
//    with "PROXY " or the v2 signature is refused at its first wrong byte, not after 107.
//
// The parser never takes a byte past the end of the header: what follows (a pipelined POP3
// command, a TLS ClientHello) belongs to the session.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// Bytes after the 16-byte fixed part of a v2 header. An AF_UNIX address block is the largest
// at 216 bytes; what load balancers add as TLVs (ALPN, authority, unique id up to 128 bytes,
// CRC32C, the SSL TLV with version, cipher and client-certificate CN, AWS/Azure endpoint ids)
// stays well under 1 KiB. 2048 leaves room for that and bounds what one connection may make
// the server buffer before it is known to be a client at all.
inline constexpr std::size_t kMaxProxyV2Length = 2048;
inline constexpr std::size_t kProxyV2FixedLength = 16;
inline constexpr std::size_t kMaxProxyV1Length = 107;

struct ProxyAddresses {
  std::string sourceIp;  // literal, IPv6 without brackets, as inet_ntop writes it
  std::uint16_t sourcePort = 0;
  std::string destinationIp;
  std::uint16_t destinationPort = 0;
};

struct ProxyHeader {
  std::uint8_t version = 0;  // 1 or 2
  // The client's real addresses; nullopt when the header carries none that apply (v2 LOCAL,
  // a health check from the balancer itself; v1 UNKNOWN; v2 UNSPEC or UNIX): the connection's
  // own peer address stands.
  std::optional<ProxyAddresses> addresses;
  // For log lines: "TCP4", "TCP6", "UNKNOWN", "LOCAL", "UNSPEC", "UNIX".
  std::string_view kind;
  std::size_t length = 0;  // bytes of the whole header
};

class ProxyHeaderParser {
 public:
  enum class Status { NeedMore, Done, Error };

  // Feeds the bytes that follow those fed before. `consumed` is set to how many of `data`
  // belong to the header: all of them for NeedMore, the header's remainder for Done (the rest
  // is the session's), 0 for Error. After Done or Error the verdict stays and nothing more is
  // consumed.
  Status feed(std::string_view data, std::size_t& consumed);

  Status status() const { return status_; }
  const ProxyHeader& header() const { return header_; }  // after Done
  const std::string& error() const { return error_; }    // after Error

 private:
  Status fail(std::string message);
  Status checkV1Byte();
  Status finishV1();
  Status finishV2();

  Status status_ = Status::NeedMore;
  std::string buffer_;      // the header so far; at most kProxyV2FixedLength + kMaxProxyV2Length
  std::size_t needed_ = 0;  // v2: total length once the fixed part is in
  std::uint8_t version_ = 0;
  ProxyHeader header_;
  std::string error_;
};

}  // namespace popbridge::protocol
