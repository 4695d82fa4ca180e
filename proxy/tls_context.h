#pragma once

// clang-format off
#include "proxy/boringssl_check.h"  // first: stops the build on OpenSSL 3 headers
// clang-format on

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

namespace popbridge::proxy {

// The lowest protocol version a context accepts, as min_tls_version spells
// it. The highest is always TLS 1.3.
using TlsMinVersion = config::TlsVersion;

// Default trust store when no CA file is configured. BoringSSL's compiled-in
// default (/etc/ssl/cert.pem) does not exist on Debian.
inline constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

// The TLS 1.2-and-older suites a listener offers when `ciphers` is empty, best first. After
// Mozilla's server-side TLS profiles, less the suites BoringSSL lacks (DHE, CBC-SHA256/384):
// "intermediate" (ECDHE with AES-GCM or ChaCha20-Poly1305) for min_tls_version 1.2 and 1.3, and
// for 1.0 and 1.1 the "old" profile's AES-CBC-SHA suites after those (ECDHE, then static RSA),
// never its 3DES. TLS 1.3 suites are BoringSSL's fixed set and cannot be chosen.
std::string defaultCipherList(TlsMinVersion minVersion);
// "intermediate" or "old": the Mozilla profile defaultCipherList() follows.
std::string_view cipherProfileName(TlsMinVersion minVersion);

// What BoringSSL makes of a listener's `ciphers`, for the config loader (which links no TLS
// library): the suites it enables, or why it refuses the list, naming the terms it does not
// know. Parsed strictly, exactly as TlsServerContext::create applies it.
config::CipherListCheck checkCipherList(const std::string& list);

// Context for accepting TLS (implicit TLS listeners and STLS).
class TlsServerContext {
 public:
  // Loads a PEM certificate chain (leaf first) and its PEM private key, and sets the cipher
  // policy: `ciphers` in the server's order of preference, or defaultCipherList(minVersion)
  // when it is empty. On failure returns nullptr and sets `error` to a reason naming the file
  // or the list.
  static std::unique_ptr<TlsServerContext> create(const std::string& certFile,
                                                  const std::string& keyFile,
                                                  TlsMinVersion minVersion, std::string& error,
                                                  const std::string& ciphers = {});
  SSL_CTX* get() const { return ctx_.get(); }
  // The versions and suites this context accepts, for the startup log; holds no secret.
  const std::string& policy() const { return policy_; }

 private:
  struct Key {};

 public:
  TlsServerContext(Key, bssl::UniquePtr<SSL_CTX> ctx, std::string policy)
      : ctx_(std::move(ctx)), policy_(std::move(policy)) {}

 private:
  bssl::UniquePtr<SSL_CTX> ctx_;
  std::string policy_;
};

// Context for connecting to the upstream with TLS.
class TlsClientContext {
 public:
  // caFile empty -> kSystemCaBundle. verify=false disables certificate checks
  // entirely (the caller logs the warning); an explicitly given caFile is still
  // loaded then, so that a broken path is reported rather than ignored.
  static std::unique_ptr<TlsClientContext> create(const std::string& caFile, bool verify,
                                                  TlsMinVersion minVersion, std::string& error);
  SSL_CTX* get() const { return ctx_.get(); }
  bool verify() const { return verify_; }

 private:
  struct Key {};

 public:
  TlsClientContext(Key, bssl::UniquePtr<SSL_CTX> ctx, bool verify)
      : ctx_(std::move(ctx)), verify_(verify) {}

 private:
  bssl::UniquePtr<SSL_CTX> ctx_;
  bool verify_;
};

// Empties this thread's BoringSSL error queue into one readable line:
// "<context>: <reason>; <reason>". `sslError` (an SSL_get_error() value, 0 for
// none) explains failures that leave no queue entry, such as a syscall or EOF.
std::string drainTlsErrors(std::string_view context, int sslError = 0);

}  // namespace popbridge::proxy
