#include "proxy/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cctype>
#include <filesystem>
#include <system_error>

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

bool setVersions(SSL_CTX* ctx, TlsMinVersion minVersion, std::string& error) {
  if (!SSL_CTX_set_min_proto_version(ctx, protocolVersion(minVersion)) ||
      !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
    error = drainTlsErrors("cannot set the TLS protocol versions");
    return false;
  }
  return true;
}

}  // namespace

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
                                                           std::string& error) {
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
  return std::make_unique<TlsServerContext>(Key{}, std::move(ctx));
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
