#include "config/password.h"

#include <argon2.h>
#include <gtest/gtest.h>

#include <chrono>
#include <ostream>
#include <string>

namespace popbridge::config {
namespace {

// A cheap cost so that the round trips stay fast; the default cost is timed separately.
const PasswordHashCost kCheap{1, 64, 1};

TEST(Password, RoundTripWithDefaultCostIsFastEnough) {
  const std::string hash = hashPassword("correct horse");
  ASSERT_FALSE(hash.empty());
  EXPECT_EQ(hash.rfind("$argon2id$v=19$m=19456,t=2,p=1$", 0), 0u) << hash;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(verifyPassword(hash, "correct horse"));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // The documented budget is under 100 ms; allow for a loaded CI machine and sanitizers.
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  EXPECT_FALSE(verifyPassword(hash, "correct horse "));
}

TEST(Password, WrongPasswordIsRejected) {
  const std::string hash = hashPassword("secret", kCheap);
  ASSERT_FALSE(hash.empty());
  EXPECT_TRUE(verifyPassword(hash, "secret"));
  EXPECT_FALSE(verifyPassword(hash, "Secret"));
  EXPECT_FALSE(verifyPassword(hash, ""));
  EXPECT_FALSE(verifyPassword(hash, std::string("secret\0", 7)));
}

TEST(Password, EmptyAndBinaryPasswordsRoundTrip) {
  const std::string empty = hashPassword("", kCheap);
  EXPECT_TRUE(verifyPassword(empty, ""));
  EXPECT_FALSE(verifyPassword(empty, "x"));
  const std::string binary("a\0b\xff", 4);
  EXPECT_TRUE(verifyPassword(hashPassword(binary, kCheap), binary));
}

TEST(Password, EverySaltIsFresh) {
  const std::string a = hashPassword("same", kCheap);
  const std::string b = hashPassword("same", kCheap);
  EXPECT_NE(a, b);
  EXPECT_TRUE(verifyPassword(a, "same"));
  EXPECT_TRUE(verifyPassword(b, "same"));
}

TEST(Password, TheExampleConfigHashIsChangeMe) {
  // config/popbridge.example.toml tells its readers this.
  EXPECT_TRUE(
      verifyPassword("$argon2id$v=19$m=19456,t=2,p=1$+x9QXnwAcOfqGkQ7CoKktA$"
                     "6emEGL+kJSEP8bRjp2ps2/5UgClj/+kc67wGDv9ktgw",
                     "change-me"));
}

TEST(Password, DummyHashIsValidAndMatchesNothingObvious) {
  std::string error;
  EXPECT_TRUE(checkPasswordHash(dummyPasswordHash(), error)) << error;
  EXPECT_FALSE(verifyPassword(dummyPasswordHash(), ""));
  EXPECT_FALSE(verifyPassword(dummyPasswordHash(), "password"));
}

TEST(Password, HashesWrittenByLibargon2ForEveryVariantVerify) {
  // Hashes made elsewhere (argon2 CLI, other tools) are plain libargon2 encodings; cover the i
  // and d variants, which hashPassword() itself never writes.
  const std::string salt = "saltsaltsalt";
  for (argon2_type type : {Argon2_i, Argon2_d, Argon2_id}) {
    std::string encoded(argon2_encodedlen(1, 64, 1, salt.size(), 32, type), '\0');
    ASSERT_EQ(argon2_hash(1, 64, 1, "password", 8, salt.data(), salt.size(), nullptr, 32,
                          encoded.data(), encoded.size(), type, ARGON2_VERSION_13),
              ARGON2_OK);
    encoded.resize(encoded.find('\0'));
    std::string error;
    EXPECT_TRUE(checkPasswordHash(encoded, error)) << encoded << ": " << error;
    EXPECT_TRUE(verifyPassword(encoded, "password")) << encoded;
    EXPECT_FALSE(verifyPassword(encoded, "passwort")) << encoded;
  }
}

struct MalformedCase {
  std::string hash;
  std::string error;
};

// Shown by gtest in test listings and failures instead of the parameter's bytes.
void PrintTo(const MalformedCase& c, std::ostream* os) {
  *os << '"' << c.hash << '"';
}

class MalformedHash : public ::testing::TestWithParam<MalformedCase> {};

const std::string kShape =
    "expected an argon2 hash like \"$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>\" as printed by "
    "`popbridge hash-password`";
const std::string kSalt = "c29tZXNhbHRzYWx0";                            // 12 bytes
const std::string kTag = "9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ";  // 32 bytes

TEST_P(MalformedHash, IsRejectedWithReasonAndNeverVerifies) {
  const MalformedCase& c = GetParam();
  std::string error;
  EXPECT_FALSE(checkPasswordHash(c.hash, error)) << c.hash;
  EXPECT_EQ(error, c.error);
  EXPECT_FALSE(verifyPassword(c.hash, "password"));
  EXPECT_FALSE(verifyPassword(c.hash, ""));
}

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedHash,
    ::testing::Values(
        MalformedCase{"", kShape}, MalformedCase{"hunter2", kShape},
        MalformedCase{"$2y$10$abcdefghijklmnopqrstuv", kShape},
        MalformedCase{"$argon2x$v=19$m=64,t=1,p=1$" + kSalt + "$" + kTag, kShape},
        MalformedCase{"$argon2id$v=20$m=64,t=1,p=1$" + kSalt + "$" + kTag,
                      kShape + "; the version must be v=16 or v=19"},
        MalformedCase{"$argon2id$v=19$t=1,m=64,p=1$" + kSalt + "$" + kTag,
                      kShape + "; the parameters must read m=<KiB>,t=<passes>,p=<lanes>"},
        MalformedCase{"$argon2id$v=19$m=064,t=1,p=1$" + kSalt + "$" + kTag,
                      kShape + "; the parameters must read m=<KiB>,t=<passes>,p=<lanes>"},
        MalformedCase{"$argon2id$v=19$m=64,t=1,p=1", kShape + "; the parameters must read "
                                                              "m=<KiB>,t=<passes>,p=<lanes>"},
        MalformedCase{"$argon2id$v=19$m=64,t=0,p=1$" + kSalt + "$" + kTag,
                      "argon2 parameters below libargon2's minimum (t >= 1, p >= 1, m >= 8 * p)"},
        MalformedCase{"$argon2id$v=19$m=7,t=1,p=1$" + kSalt + "$" + kTag,
                      "argon2 parameters below libargon2's minimum (t >= 1, p >= 1, m >= 8 * p)"},
        MalformedCase{"$argon2id$v=19$m=4194304,t=1,p=1$" + kSalt + "$" + kTag,
                      "argon2 cost too high for a login path (limits: m <= 262144, t <= 16, p <= "
                      "16)"},
        MalformedCase{"$argon2id$v=19$m=64,t=100,p=1$" + kSalt + "$" + kTag,
                      "argon2 cost too high for a login path (limits: m <= 262144, t <= 16, p <= "
                      "16)"},
        MalformedCase{"$argon2id$v=19$m=64,t=1,p=1$" + kSalt,
                      kShape + "; the salt and hash parts are missing"},
        MalformedCase{"$argon2id$v=19$m=64,t=1,p=1$" + kSalt + "$" + kTag + "=",
                      kShape + "; the salt and hash must be unpadded base64"},
        MalformedCase{"$argon2id$v=19$m=64,t=1,p=1$" + kSalt + "$" + kTag + "$x",
                      kShape + "; the salt and hash must be unpadded base64"},
        MalformedCase{"$argon2id$v=19$m=64,t=1,p=1$" + kSalt + "$" + kTag.substr(0, 42) + "R",
                      kShape + "; the salt and hash must be unpadded base64"},
        MalformedCase{"$argon2id$v=19$m=64,t=1,p=1$c29tZQ$" + kTag,
                      "argon2 salt or hash too short (at least 8 and 4 bytes)"},
        MalformedCase{"$argon2id$v=19$m=64,t=1,p=1$" + kSalt + "$",
                      "argon2 salt or hash too short (at least 8 and 4 bytes)"},
        MalformedCase{std::string(513, 'A'), kShape + ", got 513 characters"}));

TEST(Password, HashWithoutVersionIsArgon2Version16) {
  // libargon2 reads a missing v= as version 1.0; such hashes exist in old deployments.
  std::string error;
  EXPECT_TRUE(checkPasswordHash("$argon2i$m=64,t=1,p=1$" + kSalt + "$" + kTag, error)) << error;
}

}  // namespace
}  // namespace popbridge::config
