// ProxyHeaderParser on arbitrary bytes, fed whole and again in pieces whose sizes the input's
// last byte picks: both feeds give the same verdict and header, the header never takes a byte
// past its end (at most 107 bytes for v1, 16 + kMaxProxyV2Length for v2), and an accepted
// header's addresses are literals of their family.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/proxy_header.h"

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}

using popbridge::protocol::ProxyHeaderParser;

ProxyHeaderParser::Status run(std::string_view input, std::size_t step, ProxyHeaderParser& parser,
                              std::size_t& total) {
  total = 0;
  ProxyHeaderParser::Status status = ProxyHeaderParser::Status::NeedMore;
  for (std::size_t at = 0; at < input.size() && status == ProxyHeaderParser::Status::NeedMore;
       at += step) {
    const std::string_view piece = input.substr(at, step);
    std::size_t consumed = 0;
    status = parser.feed(piece, consumed);
    require(consumed <= piece.size());
    if (status == ProxyHeaderParser::Status::NeedMore) require(consumed == piece.size());
    if (status == ProxyHeaderParser::Status::Error) require(consumed == 0);
    total += consumed;
  }
  return status;
}

bool isLiteral(const std::string& ip) {
  unsigned char bytes[16];
  return inet_pton(AF_INET, ip.c_str(), bytes) == 1 || inet_pton(AF_INET6, ip.c_str(), bytes) == 1;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  ProxyHeaderParser whole;
  std::size_t wholeTotal = 0;
  const auto status = run(input, input.empty() ? 1 : input.size(), whole, wholeTotal);
  ProxyHeaderParser pieces;
  std::size_t piecesTotal = 0;
  const std::size_t step = size == 0 ? 1 : 1 + data[size - 1] % 17;
  require(run(input, step, pieces, piecesTotal) == status);
  if (status == ProxyHeaderParser::Status::Error) {
    require(!whole.error().empty());
    require(whole.error() == pieces.error());
    return 0;
  }
  if (status != ProxyHeaderParser::Status::Done) return 0;
  const auto& header = whole.header();
  require(wholeTotal == header.length && piecesTotal == header.length);
  require(header.length <= (header.version == 1 ? popbridge::protocol::kMaxProxyV1Length
                                                : popbridge::protocol::kProxyV2FixedLength +
                                                      popbridge::protocol::kMaxProxyV2Length));
  require(pieces.header().kind == header.kind);
  if (header.addresses) {
    require(isLiteral(header.addresses->sourceIp) && isLiteral(header.addresses->destinationIp));
    require(pieces.header().addresses->sourceIp == header.addresses->sourceIp);
    require(pieces.header().addresses->sourcePort == header.addresses->sourcePort);
  }
  return 0;
}
