#include "proxy/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <cctype>
#include <filesystem>
#include <system_error>
#include <vector>

#include "protocol/text.h"

namespace popbridge::proxy {

namespace {

std::uint16_t protocolVersion(TlsMinVersion version) {
  switch (version) {
    case TlsMinVersion::V1_0:
      return TLS1_VERSION;
    case TlsMinVersion::V1_1:
      return TLS1_1_VERSION;
    case TlsMinVersion::V1_2:
      return TLS1_2_VERSION;
    case TlsMinVersion::V1_3:
      return TLS1_3_VERSION;
  }
  return TLS1_2_VERSION;
}

// BoringSSL reasons are tokens like WRONG_VERSION_NUMBER; logs read better as
// "wrong version number".
std::string readableReason(const char* reason) {
  std::string out = reason;
  bool token = !out.empty();
  for (char c : out) {
    if (std::islower(static_cast<unsigned char>(c)) || c == ' ') token = false;
  }
  if (!token) return out;
  for (char& c : out) {
    c = c == '_' ? ' ' : protocol::toLowerAscii(c);
  }
  return out;
}

const char* sslErrorMeaning(int sslError) {
  switch (sslError) {
    case SSL_ERROR_SYSCALL:
      return "connection ended without a TLS close_notify";
    case SSL_ERROR_ZERO_RETURN:
      return "peer closed the TLS session";
    case SSL_ERROR_SSL:
      return "TLS protocol error";
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return "TLS operation incomplete";
    default:
      return nullptr;
  }
}

// A file that is missing or unreadable gives a cryptic "system library"
// entry from BoringSSL, so check it first and say which file and why.
bool checkReadable(const std::string& what, const std::string& file, std::string& error) {
  if (file.empty()) {
    error = what + " is not set";
    return false;
  }
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(status)) {
    error = what + " " + file + " does not exist";
    return false;
  }
  if (!std::filesystem::is_regular_file(status)) {
    error = what + " " + file + " is not a regular file";
    return false;
  }
  return true;
}

// Mozilla's lists name suites BoringSSL does not have (DHE, CBC with SHA-256/384); strict
// parsing rejects unknown names, so these lists name only what BoringSSL has.
constexpr std::string_view kIntermediateCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// The "old" profile adds only what TLS 1.0 and 1.1 clients can use, after every AEAD suite, so
// that a TLS 1.2 client on an old-profile listener still gets AEAD.
constexpr std::string_view kOldAdditions =
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
    "AES128-SHA:AES256-SHA";

std::vector<std::string> splitCipherTerms(const std::string& list) {
  std::vector<std::string> terms;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = list.find(':', start);
    std::string term = list.substr(start, end == std::string::npos ? end : end - start);
    if (!term.empty()) terms.push_back(std::move(term));
    if (end == std::string::npos) return terms;
    start = end + 1;
  }
}

// Whether a term names a class of suites BoringSSL never had or dropped; OpenSSL-era lists
// exclude them ("!aNULL:!RC4"), which strict parsing refuses like any unknown name.
bool namesAbsentClass(std::string_view term) {
  static constexpr std::array<std::string_view, 12> kAbsent = {
      "RC4", "NULL", "eNULL", "aNULL", "EXP", "EXPORT", "ADH", "AECDH", "MD5", "DHE", "EDH", "LOW"};
  while (!term.empty() && (term.front() == '!' || term.front() == '-' || term.front() == '+')) {
    term.remove_prefix(1);
  }
  std::size_t start = 0;
  while (start <= term.size()) {
    std::size_t end = term.find_first_of("+-", start);
    if (end == std::string_view::npos) end = term.size();
    const std::string_view word = term.substr(start, end - start);
    for (std::string_view absent : kAbsent) {
      if (word == absent) return true;
    }
    start = end + 1;
  }
  return false;
}

// BoringSSL says only "invalid command" or "no cipher match"; an admin needs the term at fault.
std::string explainRefusedList(const std::string& list, bool noMatch) {
  const std::vector<std::string> terms = splitCipherTerms(list);
  std::string unknown;
  bool separators = false;
  bool absentClass = false;
  bool tls13Name = false;
  for (const std::string& term : terms) {
    tls13Name = tls13Name || term.starts_with("TLS_");
    // "ALL:" keeps an exclusion or reordering term from leaving an empty list, and a term that
    // still leaves none ("!ALL") is known, merely too strict.
    bssl::UniquePtr<SSL_CTX> probe(SSL_CTX_new(TLS_method()));
    if (!probe || SSL_CTX_set_strict_cipher_list(probe.get(), ("ALL:" + term).c_str()) == 1) {
      continue;
    }
    const bool known = ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_NO_CIPHER_MATCH;
    ERR_clear_error();
    if (known) continue;
    if (!unknown.empty()) unknown += ", ";
    unknown += "\"" + term + "\"";
    separators = separators || term.find_first_of(" ,;") != std::string::npos;
    absentClass = absentClass || namesAbsentClass(term);
  }
  if (!unknown.empty()) {
    std::string out = "BoringSSL does not know " + unknown;
    if (separators) out += "; separate the names with ':'";
    if (absentClass) {
      out +=
          "; it has no RC4, NULL, export, anonymous, MD5 or DHE suites, so leave such terms "
          "out, exclusions like \"!aNULL\" included";
    }
    return out;
  }
  if (noMatch) {
    std::string out = "enables no cipher suite";
    if (tls13Name) out += "; TLS 1.3 suites (TLS_...) are always on and cannot be named here";
    return out;
  }
  return drainTlsErrors("BoringSSL refuses the list");
}

config::TlsVersion suiteMinVersion(const SSL_CIPHER* cipher) {
  const std::uint16_t version = SSL_CIPHER_get_min_version(cipher);
  if (version <= TLS1_VERSION) return config::TlsVersion::V1_0;
  if (version == TLS1_1_VERSION) return config::TlsVersion::V1_1;
  if (version == TLS1_2_VERSION) return config::TlsVersion::V1_2;
  return config::TlsVersion::V1_3;
}

// "TLS 1.2-1.3, TLS 1.2 suites in popbridge's order (profile intermediate): A:B; TLS 1.3: ..."
std::string describePolicy(SSL_CTX* ctx, TlsMinVersion minVersion, bool profile) {
  const std::string_view lowest = config::toString(minVersion);
  std::string out =
      minVersion == TlsMinVersion::V1_3 ? "TLS 1.3 only" : "TLS " + std::string(lowest) + "-1.3";
  if (minVersion != TlsMinVersion::V1_3) {
    out += "; suites for TLS " + std::string(lowest) +
           (minVersion == TlsMinVersion::V1_2 ? "" : "-1.2") + " in the server's order (" +
           (profile ? "profile " + std::string(cipherProfileName(minVersion))
                    : std::string("ciphers as configured")) +
           "): ";
    const STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx);
    for (std::size_t i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
      if (i != 0) out += ':';
      out += SSL_CIPHER_get_name(sk_SSL_CIPHER_value(ciphers, i));
    }
  }
  out += "; TLS 1.3: BoringSSL's fixed suites (AES-GCM, ChaCha20-Poly1305)";
  return out;
}

bool setVersions(SSL_CTX* ctx, TlsMinVersion minVersion, std::string& error) {
  if (!SSL_CTX_set_min_proto_version(ctx, protocolVersion(minVersion)) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
    error = drainTlsErrors("cannot set the TLS protocol versions");
    return false;
  }
  return true;
}

}  // namespace

std::string defaultCipherList(TlsMinVersion minVersion) {
  std::string list(kIntermediateCiphers);
  if (minVersion < TlsMinVersion::V1_2) list += ":" + std::string(kOldAdditions);
  return list;
}

std::string_view cipherProfileName(TlsMinVersion minVersion) {
  return minVersion < TlsMinVersion::V1_2 ? "old" : "intermediate";
}

config::CipherListCheck checkCipherList(const std::string& list) {
  config::CipherListCheck check;
  if (list.find('\0') != std::string::npos) {
    check.error = "contains a NUL character";
    return check;
  }
  ERR_clear_error();
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) {
    check.error = drainTlsErrors("cannot create a TLS context to check the list");
    return check;
  }
  if (SSL_CTX_set_strict_cipher_list(ctx.get(), list.c_str()) != 1) {
    const uint32_t packed = ERR_peek_last_error();
    const bool noMatch =
        ERR_GET_LIB(packed) == ERR_LIB_SSL && ERR_GET_REASON(packed) == SSL_R_NO_CIPHER_MATCH;
    ERR_clear_error();
    check.error = explainRefusedList(list, noMatch);
    return check;
  }
  const STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx.get());
  for (std::size_t i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(ciphers, i);
    check.suites.push_back({SSL_CIPHER_get_name(cipher), suiteMinVersion(cipher),
                            SSL_CIPHER_get_cipher_nid(cipher) == NID_des_ede3_cbc,
                            SSL_CIPHER_get_auth_nid(cipher) == NID_auth_psk});
  }
  return check;
}

std::string drainTlsErrors(std::string_view context, int sslError) {
  std::string reasons;
  std::string previous;
  const char* file = nullptr;
  int line = 0;
  const char* data = nullptr;
  int flags = 0;
  while (const uint32_t packed = ERR_get_error_line_data(&file, &line, &data, &flags)) {
    std::string entry;
    if (const char* reason = ERR_reason_error_string(packed)) {
      entry = readableReason(reason);
    } else {
      entry = "error " + std::to_string(ERR_GET_REASON(packed));
    }
    if (ERR_GET_LIB(packed) != ERR_LIB_SSL) {
      if (const char* lib = ERR_lib_error_string(packed)) entry += std::string(" (") + lib + ")";
    }
    if ((flags & ERR_FLAG_STRING) != 0 && data != nullptr && *data != '\0') {
      entry += std::string(": ") + data;
    }
    if (entry == previous) continue;
    if (!reasons.empty()) reasons += "; ";
    reasons += entry;
    previous = std::move(entry);
  }
  const char* meaning = sslErrorMeaning(sslError);
  if (meaning != nullptr && (reasons.empty() || sslError == SSL_ERROR_SYSCALL)) {
    if (!reasons.empty()) reasons += "; ";
    reasons += meaning;
  }
  if (reasons.empty()) reasons = "unknown TLS error";
  std::string out(context);
  if (!out.empty()) out += ": ";
  out += reasons;
  return out;
}

std::unique_ptr<TlsServerContext> TlsServerContext::create(const std::string& certFile,
                                                           const std::string& keyFile,
                                                           TlsMinVersion minVersion,
                                                           std::string& error,
                                                           const std::string& ciphers) {
  ERR_clear_error();
  if (!checkReadable("TLS certificate file", certFile, error) ||
      !checkReadable("TLS key file", keyFile, error)) {
    return nullptr;
  }
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) {
    error = drainTlsErrors("cannot create a TLS server context");
    return nullptr;
  }
  if (!setVersions(ctx.get(), minVersion, error)) return nullptr;
  const bool profile = ciphers.empty();
  const std::string list = profile ? defaultCipherList(minVersion) : ciphers;
  if (SSL_CTX_set_strict_cipher_list(ctx.get(), list.c_str()) != 1) {
    error = drainTlsErrors("cannot use the cipher list \"" + list + "\"");
    return nullptr;
  }
  // Without this BoringSSL follows the client's order, and an old client that lists a CBC or
  // static-RSA suite first would get it although it also offers an ECDHE AEAD one.
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), certFile.c_str()) != 1) {
    error = drainTlsErrors("cannot load TLS certificate chain from " + certFile);
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), keyFile.c_str(), SSL_FILETYPE_PEM) != 1) {
    const uint32_t last = ERR_peek_last_error();
    const bool mismatch =
        ERR_GET_LIB(last) == ERR_LIB_X509 && (ERR_GET_REASON(last) == X509_R_KEY_TYPE_MISMATCH ||
                                              ERR_GET_REASON(last) == X509_R_KEY_VALUES_MISMATCH);
    error = drainTlsErrors(mismatch ? "TLS private key " + keyFile +
                                          " does not match certificate " + certFile
                                    : "cannot load TLS private key from " + keyFile);
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    error =
        drainTlsErrors("TLS private key " + keyFile + " does not match certificate " + certFile);
    return nullptr;
  }
  // A server-side session cache grows with every client; stateless tickets give
  // resumption to the clients that want it without that memory.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  std::string policy = describePolicy(ctx.get(), minVersion, profile);
  return std::make_unique<TlsServerContext>(Key{}, std::move(ctx), std::move(policy));
}

std::unique_ptr<TlsClientContext> TlsClientContext::create(const std::string& caFile, bool verify,
                                                           TlsMinVersion minVersion,
                                                           std::string& error) {
  ERR_clear_error();
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) {
    error = drainTlsErrors("cannot create a TLS client context");
    return nullptr;
  }
  if (!setVersions(ctx.get(), minVersion, error)) return nullptr;

  const bool useSystemBundle = caFile.empty();
  const std::string bundle = useSystemBundle ? std::string(kSystemCaBundle) : caFile;
  if (verify || !useSystemBundle) {
    if (!checkReadable(useSystemBundle ? "system CA bundle" : "CA file", bundle, error)) {
      if (useSystemBundle) error += " (install ca-certificates or configure a CA file)";
      return nullptr;
    }
    if (SSL_CTX_load_verify_locations(ctx.get(), bundle.c_str(), nullptr) != 1) {
      error = drainTlsErrors("cannot load CA certificates from " + bundle);
      return nullptr;
    }
  }
  SSL_CTX_set_verify(ctx.get(), verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return std::make_unique<TlsClientContext>(Key{}, std::move(ctx), verify);
}

}  // namespace popbridge::proxy
