#include "protocol/uidl/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace popbridge::protocol::uidl {
namespace {

// FIPS 180-4 / NIST example vectors.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(toHex(Sha256::of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(toHex(Sha256::of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(toHex(Sha256::of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(toHex(Sha256::of(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PiecewiseEqualsWhole) {
  const std::string text(200, 'x');
  for (std::size_t split = 0; split <= text.size(); split += 7) {
    Sha256 sha;
    sha.update(std::string_view(text).substr(0, split));
    sha.update(std::string_view(text).substr(split));
    EXPECT_EQ(sha.finish(), Sha256::of(text)) << split;
  }
}

TEST(Sha256, Base32IsRfc4648LowerCase) {
  const std::string b32 = toBase32(Sha256::of(""));
  EXPECT_EQ(b32.size(), 52u);
  // e3b0c442... in base32 (RFC 4648): 4OYMIQ...
  EXPECT_EQ(b32.substr(0, 8), "4oymiquy");
}

}  // namespace
}  // namespace popbridge::protocol::uidl
