#include "protocol/uidl/sha256.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "protocol/uidl/sha256.cpp must compile against BoringSSL (/usr/include/android), not OpenSSL"
#endif

namespace popbridge::protocol::uidl {

Sha256::Sha256() {
  SHA256_Init(&context_);
}

void Sha256::update(const std::uint8_t* data, std::size_t size) {
  SHA256_Update(&context_, data, size);
}

void Sha256::update(std::string_view data) {
  SHA256_Update(&context_, data.data(), data.size());
}

Sha256::Digest Sha256::finish() {
  Digest digest;
  SHA256_Final(digest.data(), &context_);
  return digest;
}

Sha256::Digest Sha256::of(std::string_view data) {
  Sha256 sha;
  sha.update(data);
  return sha.finish();
}

std::string toHex(const Sha256::Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (std::uint8_t b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0xF];
  }
  return out;
}

std::string toBase32(const Sha256::Digest& digest) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (std::uint8_t b : digest) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (5 - bits)) & 31];
  return out;
}

}  // namespace popbridge::protocol::uidl
