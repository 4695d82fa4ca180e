#pragma once

#include <string>

namespace popbridge::test {

// A throwaway PKI for tests, made with the `openssl` command-line tool. The product itself links
// only BoringSSL; the CLI is used here because making certificates is not product code.
//
// All files are PEM. The server key is RSA 2048 so that legacy TLS_RSA_* suites (old printers)
// can be exercised with it; the CA and wrong-name keys are P-256 because RSA key generation
// dominates fixture start-up and ctest starts one fixture per test process.
struct TestPki {
  std::string dir;
  std::string caCert;  // self-signed test CA (CN "popbridge test CA")
  std::string caKey;
  std::string serverCert;  // CN and SAN DNS "localhost", SAN IP 127.0.0.1, signed by the CA
  std::string serverKey;
  std::string wrongNameCert;  // signed by the same CA, but only for "wrong.example"
  std::string wrongNameKey;
};

// Creates `dir` if needed and writes the PKI into it. Throws std::runtime_error with the openssl
// output when a step fails.
TestPki makeTestPki(const std::string& dir);

}  // namespace popbridge::test
