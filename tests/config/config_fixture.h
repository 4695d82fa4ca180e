#pragma once

// Shared by the config loader tests: sample TOML snippets and a fixture with
// a temporary directory holding the files configs refer to.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace popbridge::config::config_test {


// A syntactically valid argon2 hash (the example config's "change-me"); loading never runs it.
inline const std::string kHash =
    "$argon2id$v=19$m=19456,t=2,p=1$+x9QXnwAcOfqGkQ7CoKktA$"
    "6emEGL+kJSEP8bRjp2ps2/5UgClj/+kc67wGDv9ktgw";

// Four lines: a loopback cleartext listener that needs no files and gives no warnings.
inline const std::string kListenerOnly =
    "[[listener]]\n"
    "address = \"127.0.0.1:1100\"\n"
    "tls = \"none\"\n"
    "allow_plaintext_auth = true\n";
// Three lines: a loopback cleartext upstream that gives no warnings.
inline const std::string kUpstreamOnly =
    "[upstream]\n"
    "host = \"127.0.0.1\"\n"
    "tls = \"none\"\n";
inline const std::string kMinimal = kListenerOnly + kUpstreamOnly;

// Five lines; the password file exists in every test's directory.
inline std::string account(const std::string& user) {
  return "[[account]]\n"
         "user = \"" +
         user +
         "\"\n"
         "password_hash = \"" +
         kHash +
         "\"\n"
         "upstream_user = \"" +
         user +
         "@example.com\"\n"
         "upstream_password_file = \"@DIR@/secret\"\n";
}

inline std::string replaceAll(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "popbridge-config-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    const std::filesystem::path file = std::filesystem::path(path_) / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
    return file.string();
  }

 private:
  std::string path_;
};

class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() {
    dir_.write("cert.pem", "-----BEGIN CERTIFICATE-----\n");
    dir_.write("key.pem", "-----BEGIN PRIVATE KEY-----\n");
    dir_.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    dir_.write("secret", "s3cret pass\n");
    dir_.write("empty-secret", "\n");
    dir_.write("two-line-secret", "first\nsecond\n");
  }

  std::string withDir(const std::string& text) const {
    return replaceAll(text, "@DIR@", dir_.path());
  }

  LoadResult load(const std::string& text, const Environment& env = {}) const {
    return loadConfigString(withDir(text), "t.toml", env);
  }

  static std::vector<std::string> errorsOf(const LoadResult& result) {
    std::vector<std::string> out;
    for (const ConfigError& error : result.errors) out.push_back(error.toString());
    return out;
  }

  TempDir dir_;
};

inline const std::string kDurationText =
    "expected a duration like \"500ms\", \"30s\", \"10m\", \"1h\" or \"1h30m\", got ";
inline const std::string kHashShape =
    "expected an argon2 hash like \"$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>\" as printed by "
    "`popbridge hash-password`";
inline const std::string kAddressShape =
    "expected \"IPv4:port\" or \"[IPv6]:port\" such as \"0.0.0.0:110\" or \"[::]:995\", got ";

inline std::string listenerWith(const std::string& lines) {
  return "[[listener]]\n" + lines + kUpstreamOnly;
}
inline std::string upstreamWith(const std::string& lines) {
  return kListenerOnly + "[upstream]\n" + lines;
}

}  // namespace popbridge::config::config_test
