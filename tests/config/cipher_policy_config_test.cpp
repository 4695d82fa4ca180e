// A listener's `ciphers` at load: what BoringSSL refuses is a located error naming the terms at
// fault, what it accepts but is weak or pointless is a warning; and the built-in profiles.

#include <ostream>
#include <string>
#include <vector>

#include "proxy/tls_context.h"
#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

// Lines 1-5 make an implicit-TLS listener; the caller's lines start at line 6.
std::string tlsListener(const std::string& lines) {
  return "[[listener]]\n"
         "address = \"127.0.0.1:9950\"\n"
         "tls = \"implicit\"\n"
         "certificate = \"@DIR@/cert.pem\"\n"
         "private_key = \"@DIR@/key.pem\"\n" +
         lines + kUpstreamOnly;
}

struct CipherCase {
  std::string name;
  std::string toml;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

void PrintTo(const CipherCase& c, std::ostream* os) {
  *os << c.name;
}

// What popbridge itself loads with: the lists are judged by the BoringSSL it runs with.
class CipherConfig : public ConfigTest, public ::testing::WithParamInterface<CipherCase> {
 protected:
  LoadResult loadChecked(const std::string& text) const {
    return loadConfigString(withDir(text), "t.toml", {}, proxy::checkCipherList);
  }
};

TEST_P(CipherConfig, ReportsExactlyTheseProblems) {
  const CipherCase& c = GetParam();
  const LoadResult result = loadChecked(c.toml);
  EXPECT_EQ(errorsOf(result), c.errors);
  EXPECT_EQ(result.ok(), c.errors.empty());
  EXPECT_EQ(result.warnings, c.warnings);
}

const std::string kAbsentClasses =
    "; it has no RC4, NULL, export, anonymous, MD5 or DHE suites, so leave such terms out, "
    "exclusions like \"!aNULL\" included";
const std::string kDeprecated10 =
    "t.toml:6:19: listener[0].min_tls_version: TLS 1.0 is deprecated (RFC 8996); allow it only "
    "for devices that need it";

const CipherCase kCipherCases[] = {
    {"ValidList", tlsListener("ciphers = \"ECDHE+AESGCM:ECDHE+CHACHA20\"\n"), {}, {}},
    {"EmptyMeansProfile", tlsListener("ciphers = \"\"\n"), {}, {}},
    {"UnknownName",
     tlsListener("ciphers = \"ECDHE+AESGCM:FOO-SHA\"\n"),
     {"t.toml:6:11: listener[0].ciphers: BoringSSL does not know \"FOO-SHA\""},
     {}},
    {"SpaceSeparated",
     tlsListener("ciphers = \"ECDHE+AESGCM ECDHE+CHACHA20\"\n"),
     {"t.toml:6:11: listener[0].ciphers: BoringSSL does not know \"ECDHE+AESGCM ECDHE+CHACHA20\"; "
      "separate the names with ':'"},
     {}},
    {"OpenSslExclusions",
     tlsListener("ciphers = \"HIGH:!aNULL:!RC4\"\n"),
     {"t.toml:6:11: listener[0].ciphers: BoringSSL does not know \"!aNULL\", \"!RC4\"" +
      kAbsentClasses},
     {}},
    {"Rc4Named",
     tlsListener("ciphers = \"RC4-SHA\"\n"),
     {"t.toml:6:11: listener[0].ciphers: BoringSSL does not know \"RC4-SHA\"" + kAbsentClasses},
     {}},
    {"DheFromMozillaList",
     tlsListener("ciphers = \"ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256\"\n"),
     {"t.toml:6:11: listener[0].ciphers: BoringSSL does not know \"DHE-RSA-AES128-GCM-SHA256\"" +
      kAbsentClasses},
     {}},
    {"NoSuiteLeft",
     tlsListener("ciphers = \"!ALL\"\n"),
     {"t.toml:6:11: listener[0].ciphers: enables no cipher suite"},
     {}},
    {"Tls13NameOnly",
     tlsListener("ciphers = \"TLS_AES_128_GCM_SHA256\"\n"),
     {"t.toml:6:11: listener[0].ciphers: enables no cipher suite; TLS 1.3 suites (TLS_...) are "
      "always on and cannot be named here"},
     {}},
    {"OnlyPsk",
     tlsListener("ciphers = \"PSK\"\n"),
     {"t.toml:6:11: listener[0].ciphers: enables only pre-shared-key (PSK) suites, which "
      "popbridge never uses; name suites for a certificate, e.g. \"ECDHE+AESGCM\""},
     {}},
    {"TripleDesNamed",
     tlsListener("ciphers = \"ECDHE+AESGCM:DES-CBC3-SHA\"\n"),
     {},
     {"t.toml:6:11: listener[0].ciphers: enables DES-CBC3-SHA: 3DES has 64-bit blocks and is "
      "open to SWEET32 (CVE-2016-2183); keep it only for a device that has nothing better"}},
    {"TripleDesByAlias",
     tlsListener("min_tls_version = \"1.0\"\nciphers = \"ALL\"\n"),
     {},
     {kDeprecated10,
      "t.toml:7:11: listener[0].ciphers: enables DES-CBC3-SHA: 3DES has 64-bit blocks and is "
      "open to SWEET32 (CVE-2016-2183); keep it only for a device that has nothing better"}},
    {"Tls12OnlyListForTls10",
     tlsListener("min_tls_version = \"1.0\"\nciphers = \"ECDHE+AESGCM\"\n"),
     {},
     {kDeprecated10,
      "t.toml:7:11: listener[0].ciphers: enables only TLS 1.2 suites, so the TLS 1.0 clients "
      "that min_tls_version admits cannot connect; add AES-CBC suites such as "
      "ECDHE-RSA-AES128-SHA"}},
    {"ListWithTls13Only",
     tlsListener("min_tls_version = \"1.3\"\nciphers = \"ECDHE+AESGCM\"\n"),
     {},
     {"t.toml:7:11: listener[0].ciphers: has no effect with min_tls_version = \"1.3\": TLS 1.3 "
      "suites are not configurable"}},
    // A cleartext listener never uses the list, so even a bad one is only ignored.
    {"IgnoredWithoutTls",
     kListenerOnly + "ciphers = \"FOO\"\n" + kUpstreamOnly,
     {},
     {"t.toml:5:11: listener[0].ciphers: ignored because tls = \"none\""}},
};

INSTANTIATE_TEST_SUITE_P(Table, CipherConfig, ::testing::ValuesIn(kCipherCases),
                         [](const auto& info) { return info.param.name; });

std::vector<std::string> suiteNames(const CipherListCheck& check) {
  std::vector<std::string> names;
  for (const CipherSuite& suite : check.suites) names.push_back(suite.name);
  return names;
}

const std::vector<std::string> kIntermediate = {
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"};

// The profiles are what config/README.md documents, and BoringSSL takes them as written.
TEST(CipherProfiles, IntermediateForTls12AndUp) {
  for (const TlsVersion version : {TlsVersion::V1_2, TlsVersion::V1_3}) {
    const CipherListCheck check = proxy::checkCipherList(proxy::defaultCipherList(version));
    EXPECT_EQ(check.error, "");
    EXPECT_EQ(suiteNames(check), kIntermediate);
    EXPECT_EQ(proxy::cipherProfileName(version), "intermediate");
  }
}

TEST(CipherProfiles, OldAddsAesCbcAfterTheAeadSuitesForTls10And11) {
  std::vector<std::string> old = kIntermediate;
  for (const char* name :
       {"ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA", "AES128-SHA", "AES256-SHA"}) {
    old.push_back(name);
  }
  for (const TlsVersion version : {TlsVersion::V1_0, TlsVersion::V1_1}) {
    const CipherListCheck check = proxy::checkCipherList(proxy::defaultCipherList(version));
    EXPECT_EQ(check.error, "");
    EXPECT_EQ(suiteNames(check), old);
    for (const CipherSuite& suite : check.suites) EXPECT_FALSE(suite.tripleDes) << suite.name;
    EXPECT_EQ(proxy::cipherProfileName(version), "old");
  }
}

}  // namespace
}  // namespace popbridge::config::config_test
