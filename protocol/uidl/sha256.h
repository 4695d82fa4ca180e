#pragma once

#include <openssl/sha.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace popbridge::protocol::uidl {

// SHA-256, from BoringSSL's libcrypto (a pure function: protocol/ stays free of TLS and I/O).
// The header hash of the stable-UIDL map is persisted, so it needs a fixed, well-known function
// rather than std::hash.
class Sha256 {
 public:
  using Digest = std::array<std::uint8_t, 32>;

  Sha256();
  void update(std::string_view data);
  void update(const std::uint8_t* data, std::size_t size);
  // Ends the computation; the object must not be updated afterwards.
  Digest finish();

  static Digest of(std::string_view data);

 private:
  SHA256_CTX context_;
};

std::string toHex(const Sha256::Digest& digest);
// RFC 4648 base32, lower case, no padding: 52 characters for 32 bytes.
std::string toBase32(const Sha256::Digest& digest);

}  // namespace popbridge::protocol::uidl
