// The build must use Debian's BoringSSL, never OpenSSL 3: its headers sit in
// /usr/include too, and a mix-up compiles and links silently.

// clang-format off
#include "proxy/boringssl_check.h"  // first: stops the build on OpenSSL 3 headers
// clang-format on

#include <gtest/gtest.h>
#include <openssl/base.h>
#include <openssl/ssl.h>

#include <fstream>
#include <string>

namespace popbridge::proxy {
namespace {

#ifdef OPENSSL_IS_BORINGSSL
constexpr bool kCompiledAgainstBoringSsl = true;
#else
constexpr bool kCompiledAgainstBoringSsl = false;
#endif
static_assert(kCompiledAgainstBoringSsl, "OPENSSL_IS_BORINGSSL must be defined");

TEST(BoringSslTest, HeadersAreBoringSsl) {
  EXPECT_TRUE(kCompiledAgainstBoringSsl);
  EXPECT_GT(BORINGSSL_API_VERSION, 0);
}

TEST(BoringSslTest, RuntimeLibraryIsBoringSsl) {
  EXPECT_EQ(tlsLibraryVersion(), "BoringSSL");
  const std::string path = loadedLibsslPath();
  EXPECT_NE(path.find("/android/"), std::string::npos) << path;
  EXPECT_EQ(path.find("libssl.so.3"), std::string::npos) << path;
}

TEST(BoringSslTest, NoOpenSsl3IsMapped) {
  // Make sure libssl is really loaded (not only linked lazily) before looking.
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  ASSERT_TRUE(ctx);
  std::ifstream maps("/proc/self/maps");
  ASSERT_TRUE(maps.is_open());
  std::string line;
  bool sawBoringSsl = false;
  while (std::getline(maps, line)) {
    EXPECT_EQ(line.find("libssl.so.3"), std::string::npos) << line;
    EXPECT_EQ(line.find("libcrypto.so.3"), std::string::npos) << line;
    if (line.find("/android/libssl.so") != std::string::npos) sawBoringSsl = true;
  }
  EXPECT_TRUE(sawBoringSsl);
}

}  // namespace
}  // namespace popbridge::proxy
