// The TLS cipher policy of the running binary, asked by clients that share no code with it: the
// openssl CLI, and for 3DES a BoringSSL client, because Debian's OpenSSL 3 has no 3DES at all
// (its s_client cannot even offer DES-CBC3-SHA).

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/popbridge_process.h"

namespace popbridge::test {
namespace {

struct Handshake {
  bool ok = false;
  std::string version;  // e.g. "TLSv1.2"
  std::string cipher;   // OpenSSL's name
  std::string detail;   // for failure messages
};

std::string valueAfter(const std::string& output, const std::string& label) {
  const std::size_t at = output.find(label);
  if (at == std::string::npos) return "";
  const std::size_t start = at + label.size();
  return output.substr(start, output.find('\n', start) - start);
}

// `openssl s_client` with `args`; stls runs POP3 STLS first.
Handshake sClient(std::uint16_t port, const std::vector<std::string>& args, bool stls = false) {
  std::vector<std::string> argv = {"openssl", "s_client", "-brief", "-connect",
                                   "127.0.0.1:" + std::to_string(port)};
  if (stls) argv.insert(argv.end(), {"-starttls", "pop3"});
  argv.insert(argv.end(), args.begin(), args.end());
  CommandOptions options;
  options.timeoutMs = 10000;
  const CommandResult result = runCommand(argv, options);
  Handshake out;
  out.version = valueAfter(result.output, "Protocol version: ");
  out.cipher = valueAfter(result.output, "Ciphersuite: ");
  out.ok = result.exitCode == 0 && !out.cipher.empty();
  out.detail = result.describe();
  return out;
}

class Socket {
 public:
  Socket() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A BoringSSL client offering exactly `ciphers` at exactly `version`, on an implicit-TLS port.
Handshake boringClient(std::uint16_t port, std::uint16_t version, const char* ciphers) {
  Handshake out;
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx || !SSL_CTX_set_min_proto_version(ctx.get(), version) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), version) ||
      !SSL_CTX_set_strict_cipher_list(ctx.get(), ciphers)) {
    out.detail = "cannot set up the BoringSSL client";
    return out;
  }
  Socket socket;
  const timeval timeout{5, 0};
  ::setsockopt(socket.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(socket.fd(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    out.detail = "cannot connect";
    return out;
  }
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), socket.fd());
  out.ok = SSL_connect(ssl.get()) == 1;
  if (out.ok) {
    out.version = SSL_get_version(ssl.get());
    out.cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl.get()));
  }
  out.detail = std::string("BoringSSL client offering ") + ciphers;
  return out;
}

void expectAccepted(const Handshake& h, const std::string& version, const std::string& cipher) {
  EXPECT_TRUE(h.ok) << h.detail;
  EXPECT_EQ(h.version, version) << h.detail;
  if (!cipher.empty()) {
    EXPECT_EQ(h.cipher, cipher) << h.detail;
  }
}

void expectRefused(const Handshake& h) {
  EXPECT_FALSE(h.ok) << "negotiated " << h.version << " " << h.cipher << "\n" << h.detail;
}

// OpenSSL 3's own security level refuses TLS 1.0/1.1 and SHA-1 suites before popbridge could.
const std::string kAnyLevel = ":@SECLEVEL=0";

PopbridgeProcess::Listener tlsListener(const std::string& tls, const std::string& minVersion,
                                       const std::string& extra = "") {
  PopbridgeProcess::Listener listener;
  listener.tls = tls;
  listener.allowPlaintextAuth = false;
  listener.minTlsVersion = minVersion;
  listener.extra = extra;
  return listener;
}

class CipherPolicyTest : public ::testing::Test {
 protected:
  static DovecotFixture& dovecot() { return DovecotFixture::shared(); }
};

TEST_F(CipherPolicyTest, DefaultListenersOfferOnlyEcdheAeadAndTls13) {
  PopbridgeProcess::Options options;
  options.listeners = {tlsListener("implicit", "1.2"), tlsListener("starttls", "1.2")};
  PopbridgeProcess proxy(dovecot(), options);
  const std::uint16_t pop3s = proxy.port(0);
  const std::uint16_t pop3 = proxy.port(1);

  expectAccepted(sClient(pop3s, {"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"}), "TLSv1.2",
                 "ECDHE-RSA-AES128-GCM-SHA256");
  expectAccepted(sClient(pop3s, {"-tls1_3"}), "TLSv1.3", "");
  expectAccepted(sClient(pop3, {"-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"}, true),
                 "TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305");
  // Static RSA (no forward secrecy), CBC, and everything below TLS 1.2.
  for (const std::uint16_t port : {pop3s, pop3}) {
    const bool stls = port == pop3;
    expectRefused(sClient(port, {"-tls1_2", "-cipher", "AES128-SHA" + kAnyLevel}, stls));
    expectRefused(sClient(port, {"-tls1_2", "-cipher", "AES128-GCM-SHA256"}, stls));
    expectRefused(sClient(port, {"-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA" + kAnyLevel}, stls));
    expectRefused(sClient(port, {"-tls1", "-cipher", "ALL" + kAnyLevel}, stls));
    expectRefused(sClient(port, {"-tls1_1", "-cipher", "ALL" + kAnyLevel}, stls));
  }
  expectRefused(boringClient(pop3s, TLS1_2_VERSION, "DES-CBC3-SHA"));

  const std::string log = proxy.log();
  EXPECT_NE(log.find("listener 127.0.0.1:" + std::to_string(pop3s) +
                     " accepts TLS 1.2-1.3; suites for TLS 1.2 in the server's order (profile "
                     "intermediate): ECDHE-ECDSA-AES128-GCM-SHA256:"),
            std::string::npos)
      << log;
}

// A client that lists its own preferences gets popbridge's first choice among them.
TEST_F(CipherPolicyTest, ServerOrderWins) {
  PopbridgeProcess::Options options;
  options.listeners = {tlsListener("implicit", "1.2"), tlsListener("implicit", "1.0")};
  PopbridgeProcess proxy(dovecot(), options);

  expectAccepted(sClient(proxy.port(0), {"-tls1_2", "-cipher",
                                         "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384:"
                                         "ECDHE-RSA-AES128-GCM-SHA256"}),
                 "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256");
  expectAccepted(
      sClient(proxy.port(1),
              {"-tls1_2", "-cipher",
               "AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384" + kAnyLevel}),
      "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384");
  expectAccepted(sClient(proxy.port(1), {"-tls1", "-cipher",
                                         "AES256-SHA:AES128-SHA:ECDHE-RSA-AES256-SHA" + kAnyLevel}),
                 "TLSv1", "ECDHE-RSA-AES256-SHA");
}

TEST_F(CipherPolicyTest, OldProfileServesTls10ClientsWithoutTripleDes) {
  PopbridgeProcess::Options options;
  options.listeners = {tlsListener("implicit", "1.0")};
  PopbridgeProcess proxy(dovecot(), options);
  const std::uint16_t port = proxy.port(0);

  expectAccepted(sClient(port, {"-tls1", "-cipher", "ECDHE-RSA-AES128-SHA" + kAnyLevel}), "TLSv1",
                 "ECDHE-RSA-AES128-SHA");
  expectAccepted(sClient(port, {"-tls1", "-cipher", "AES128-SHA" + kAnyLevel}), "TLSv1",
                 "AES128-SHA");
  expectAccepted(sClient(port, {"-tls1_1", "-cipher", "AES256-SHA" + kAnyLevel}), "TLSv1.1",
                 "AES256-SHA");
  expectAccepted(sClient(port, {"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"}), "TLSv1.2",
                 "ECDHE-RSA-AES128-GCM-SHA256");
  expectRefused(boringClient(port, TLS1_VERSION, "DES-CBC3-SHA"));
  expectRefused(boringClient(port, TLS1_2_VERSION, "DES-CBC3-SHA"));
  EXPECT_NE(proxy.log().find("(profile old): "), std::string::npos) << proxy.log();
}

// An admin whose device speaks nothing but 3DES may name it, and is warned.
TEST_F(CipherPolicyTest, ExplicitListIsAppliedAsWritten) {
  PopbridgeProcess::Options options;
  options.listeners = {
      tlsListener("implicit", "1.0", "ciphers = \"ECDHE-RSA-AES128-GCM-SHA256:DES-CBC3-SHA\"\n")};
  PopbridgeProcess proxy(dovecot(), options);
  const std::uint16_t port = proxy.port(0);

  expectAccepted(boringClient(port, TLS1_VERSION, "DES-CBC3-SHA"), "TLSv1", "DES-CBC3-SHA");
  expectAccepted(sClient(port, {"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"}), "TLSv1.2",
                 "ECDHE-RSA-AES128-GCM-SHA256");
  // Left out of the list, so refused although the old profile has it.
  expectRefused(sClient(port, {"-tls1", "-cipher", "ECDHE-RSA-AES128-SHA" + kAnyLevel}));

  const std::string log = proxy.log();
  EXPECT_NE(log.find("listener[0].ciphers: enables DES-CBC3-SHA: 3DES has 64-bit blocks and is "
                     "open to SWEET32"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("(ciphers as configured): ECDHE-RSA-AES128-GCM-SHA256:DES-CBC3-SHA;"),
            std::string::npos)
      << log;
}

}  // namespace
}  // namespace popbridge::test
