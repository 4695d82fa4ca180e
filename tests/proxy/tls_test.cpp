// TLS over the Stream: both ends are ours, on real loopback sockets, with
// certificates from a throwaway PKI made by the openssl CLI.

// clang-format off
#include "proxy/boringssl_check.h"  // first: stops the build on OpenSSL 3 headers
// clang-format on

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "proxy/connector.h"
#include "proxy/stream.h"
#include "proxy/tls_context.h"
#include "proxy/uv_handle.h"
#include "tests/proxy/stream_harness.h"
#include "tests/support/test_tls.h"

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;

using namespace testing_support;

class TlsStreamTest : public StreamHarness {};

// One PKI per test process: the test CA with a server certificate for
// localhost/127.0.0.1 and one for wrong.example (tests/support), plus a
// self-signed certificate made here.
struct Pki {
  Pki() {
    char tmpl[] = "/tmp/popbridge-tls-test-XXXXXX";
    const char* made = mkdtemp(tmpl);
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = made;
    pki = test::makeTestPki(dir + "/pki");
    selfSignedCert = dir + "/self.pem";
    selfSignedKey = dir + "/self.key";
    const std::string command =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30"
        " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
        " -keyout " +
        selfSignedKey + " -out " + selfSignedCert + " >/dev/null 2>&1";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("openssl req -x509 failed");
  }
  ~Pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string dir;
  test::TestPki pki;
  std::string selfSignedCert;
  std::string selfSignedKey;
};

const Pki& pki() {
  static const Pki instance;
  return instance;
}

std::unique_ptr<TlsServerContext> serverContext(TlsMinVersion min = TlsMinVersion::V1_2,
                                                std::string cert = {}, std::string key = {}) {
  if (cert.empty()) {
    cert = pki().pki.serverCert;
    key = pki().pki.serverKey;
  }
  std::string error;
  auto ctx = TlsServerContext::create(cert, key, min, error);
  EXPECT_TRUE(ctx) << error;
  return ctx;
}

std::unique_ptr<TlsClientContext> clientContext(const std::string& caFile, bool verify = true,
                                                TlsMinVersion min = TlsMinVersion::V1_2) {
  std::string error;
  auto ctx = TlsClientContext::create(caFile, verify, min, error);
  EXPECT_TRUE(ctx) << error;
  return ctx;
}

// Runs a handshake between a server Stream and a client Stream and waits until
// both are established or either side closed.
struct TlsPair {
  Peer client;
  Peer server;
  bool settled() const {
    return (client.tlsReadyCount > 0 && server.tlsReadyCount > 0) || client.closed() ||
           server.closed();
  }
  bool established() const { return client.tlsReadyCount == 1 && server.tlsReadyCount == 1; }
};

class TlsTest : public TlsStreamTest {
 protected:
  static void SetUpTestSuite() { (void)pki(); }

  void handshake(TlsPair& pair, SSL_CTX* serverCtx, SSL_CTX* clientCtx,
                 const std::string& serverName = "localhost", bool verify = true,
                 Stream::Options serverOptions = {}, Stream::Options clientOptions = {}) {
    attachPair(pair.client, pair.server, clientOptions, serverOptions);
    pair.server.stream->startReading();
    pair.client.stream->startReading();
    pair.server.stream->startTlsServer(serverCtx);
    pair.client.stream->startTlsClient(clientCtx, serverName, verify);
    ASSERT_TRUE(runUntil([&] { return pair.settled(); }));
    // Let the side that finished first see the other's verdict too.
    if (!pair.established()) runUntil([&] { return pair.client.closed() && pair.server.closed(); });
  }

  // Client verification outcome against a server certificate.
  void expectVerification(const std::string& cert, const std::string& key,
                          const std::string& caFile, const std::string& serverName, bool verify,
                          bool accepted, const std::string& reasonPart = {}) {
    auto server = serverContext(TlsMinVersion::V1_2, cert, key);
    auto client = clientContext(caFile, verify);
    ASSERT_TRUE(server && client);
    TlsPair pair;
    handshake(pair, server->get(), client->get(), serverName, verify);
    if (accepted) {
      EXPECT_TRUE(pair.established()) << pair.client.reason << " / " << pair.server.reason;
      return;
    }
    EXPECT_FALSE(pair.established());
    ASSERT_TRUE(pair.client.closed());
    EXPECT_EQ(pair.client.tlsReadyCount, 0);
    EXPECT_EQ(pair.client.reason.rfind("TLS certificate verification failed: ", 0), 0u)
        << pair.client.reason;
    if (!reasonPart.empty()) {
      EXPECT_NE(pair.client.reason.find(reasonPart), std::string::npos) << pair.client.reason;
    }
    // The server learns of it from the client's alert (or the close).
    ASSERT_TRUE(runUntil([&] { return pair.server.closed(); }));
  }
};

// --------------------------------------------------------------- handshakes

struct VersionCase {
  int maxVersion;
  const char* expected;
};

// Readable ctest names instead of the bytes of the parameter.
void PrintTo(const VersionCase& c, std::ostream* os) {
  *os << c.expected;
}

class TlsVersionTest : public TlsTest, public ::testing::WithParamInterface<VersionCase> {};

TEST_P(TlsVersionTest, HandshakeAndEchoBothWays) {
  auto server = serverContext(TlsMinVersion::V1_2);
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  SSL_CTX_set_max_proto_version(client->get(), static_cast<uint16_t>(GetParam().maxVersion));
  TlsPair pair;
  pair.server.onData = [](Peer& p, std::string_view data) { p.stream->write(data); };
  handshake(pair, server->get(), client->get());
  ASSERT_TRUE(pair.established()) << pair.client.reason << " / " << pair.server.reason;
  EXPECT_EQ(pair.client.stream->tlsVersion(), GetParam().expected);
  EXPECT_EQ(pair.server.stream->tlsVersion(), GetParam().expected);
  EXPECT_FALSE(pair.server.stream->tlsCipher().empty());
  EXPECT_TRUE(pair.server.stream->tlsActive());
  pair.client.stream->write(std::string_view("CAPA\r\n"));
  ASSERT_TRUE(runUntil([&] { return pair.client.received == "CAPA\r\n"; }));
  EXPECT_EQ(pair.server.received, "CAPA\r\n");
}

INSTANTIATE_TEST_SUITE_P(Versions, TlsVersionTest,
                         ::testing::Values(VersionCase{TLS1_3_VERSION, "TLSv1.3"},
                                           VersionCase{TLS1_2_VERSION, "TLSv1.2"}),
                         [](const auto& info) {
                           std::string name = info.param.expected;
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

TEST_F(TlsTest, MinimumTls12ServerRefusesTls11Client) {
  auto server = serverContext(TlsMinVersion::V1_2);
  auto client = clientContext(pki().pki.caCert, true, TlsMinVersion::V1_0);
  ASSERT_TRUE(server && client);
  SSL_CTX_set_max_proto_version(client->get(), TLS1_1_VERSION);
  TlsPair pair;
  handshake(pair, server->get(), client->get());
  EXPECT_FALSE(pair.established());
  ASSERT_TRUE(pair.server.closed() && pair.client.closed());
  EXPECT_EQ(pair.server.reason.rfind("TLS handshake failed: ", 0), 0u) << pair.server.reason;
  EXPECT_NE(pair.server.reason.find("unsupported protocol"), std::string::npos)
      << pair.server.reason;
  EXPECT_EQ(pair.client.reason.rfind("TLS handshake failed: ", 0), 0u) << pair.client.reason;
  EXPECT_NE(pair.client.reason.find("protocol version"), std::string::npos) << pair.client.reason;
}

TEST_F(TlsTest, LegacyServerAcceptsTls10Client) {
  auto server = serverContext(TlsMinVersion::V1_0);
  auto client = clientContext(pki().pki.caCert, true, TlsMinVersion::V1_0);
  ASSERT_TRUE(server && client);
  SSL_CTX_set_max_proto_version(client->get(), TLS1_VERSION);
  TlsPair pair;
  pair.server.onData = [](Peer& p, std::string_view data) { p.stream->write(data); };
  handshake(pair, server->get(), client->get());
  ASSERT_TRUE(pair.established()) << pair.client.reason << " / " << pair.server.reason;
  EXPECT_EQ(pair.server.stream->tlsVersion(), "TLSv1");
  // AES-CBC with SHA-1 is all a TLS 1.0 client can get from BoringSSL.
  const std::string cipher = pair.server.stream->tlsCipher();
  EXPECT_EQ(cipher.rfind("ECDHE-RSA-AES", 0), 0u) << cipher;
  EXPECT_EQ(cipher.substr(cipher.size() - 4), "-SHA") << cipher;
  pair.client.stream->write(std::string_view("STAT\r\n"));
  ASSERT_TRUE(runUntil([&] { return pair.client.received == "STAT\r\n"; }));
}

TEST_F(TlsTest, DefaultServerRefusesTls10) {
  auto server = serverContext(TlsMinVersion::V1_2);
  auto client = clientContext(pki().pki.caCert, true, TlsMinVersion::V1_0);
  ASSERT_TRUE(server && client);
  SSL_CTX_set_max_proto_version(client->get(), TLS1_VERSION);
  TlsPair pair;
  handshake(pair, server->get(), client->get());
  EXPECT_FALSE(pair.established());
}

// --------------------------------------------------------------- verification

TEST_F(TlsTest, VerificationAcceptsCertificateFromConfiguredCa) {
  expectVerification(pki().pki.serverCert, pki().pki.serverKey, pki().pki.caCert, "localhost", true,
                     true);
}

TEST_F(TlsTest, VerificationWithSystemBundleRefusesTheTestCa) {
  expectVerification(pki().pki.serverCert, pki().pki.serverKey, "", "localhost", true, false,
                     "unable to get local issuer certificate");
}

TEST_F(TlsTest, VerificationRefusesNameMismatch) {
  expectVerification(pki().pki.wrongNameCert, pki().pki.wrongNameKey, pki().pki.caCert, "localhost",
                     true, false, "not valid for localhost");
}

TEST_F(TlsTest, VerificationRefusesSelfSignedCertificate) {
  expectVerification(pki().selfSignedCert, pki().selfSignedKey, pki().pki.caCert, "localhost", true,
                     false, "self signed certificate");
}

TEST_F(TlsTest, VerificationOffAcceptsAnything) {
  expectVerification(pki().selfSignedCert, pki().selfSignedKey, "", "localhost", false, true);
  expectVerification(pki().pki.wrongNameCert, pki().pki.wrongNameKey, pki().pki.caCert, "localhost",
                     false, true);
}

TEST_F(TlsTest, IpLiteralIsCheckedAgainstIpSan) {
  expectVerification(pki().pki.serverCert, pki().pki.serverKey, pki().pki.caCert, "127.0.0.1", true,
                     true);
  expectVerification(pki().pki.wrongNameCert, pki().pki.wrongNameKey, pki().pki.caCert, "127.0.0.1",
                     true, false, "not valid for 127.0.0.1");
  expectVerification(pki().pki.serverCert, pki().pki.serverKey, pki().pki.caCert, "127.0.0.2", true,
                     false, "not valid for 127.0.0.2");
}

TEST_F(TlsTest, ServerNameIndicationIsSentForHostNamesOnly) {
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  std::string seen = "unset";
  SSL_CTX_set_tlsext_servername_callback(server->get(), [](SSL* ssl, int*, void* arg) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    *static_cast<std::string*>(arg) = name != nullptr ? name : "";
    return SSL_TLSEXT_ERR_OK;
  });
  SSL_CTX_set_tlsext_servername_arg(server->get(), &seen);
  {
    TlsPair pair;
    handshake(pair, server->get(), client->get(), "localhost");
    ASSERT_TRUE(pair.established());
    EXPECT_EQ(seen, "localhost");
  }
  {
    TlsPair pair;
    handshake(pair, server->get(), client->get(), "127.0.0.1");
    ASSERT_TRUE(pair.established());
    EXPECT_EQ(seen, "");
  }
}

// --------------------------------------------------------------- failures

TEST_F(TlsTest, GarbageInsteadOfClientHelloFailsTheHandshake) {
  auto server = serverContext();
  ASSERT_TRUE(server);
  Peer client;
  Peer server_;
  attachPair(client, server_);
  client.stream->startReading();
  server_.stream->startTlsServer(server->get());
  client.stream->write(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(runUntil([&] { return server_.closed() && client.closed(); }));
  EXPECT_EQ(server_.reason.rfind("TLS handshake failed: ", 0), 0u) << server_.reason;
  EXPECT_EQ(server_.tlsReadyCount, 0);
  // The queue was drained into the reason.
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsTest, HandshakeTimesOutWhenThePeerSendsNothing) {
  auto server = serverContext();
  ASSERT_TRUE(server);
  Peer client;
  Peer server_;
  Stream::Options options;
  options.handshakeTimeout = 200ms;
  attachPair(client, server_, {}, options);
  client.stream->startReading();
  const auto start = std::chrono::steady_clock::now();
  server_.stream->startTlsServer(server->get());
  ASSERT_TRUE(runUntil([&] { return server_.closed(); }, 5s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(server_.reason, "TLS handshake timed out");
  EXPECT_GE(elapsed, 190ms);
  EXPECT_LT(elapsed, 2s);
  ASSERT_TRUE(runUntil([&] { return client.closed(); }));
  EXPECT_EQ(client.reason, "connection closed by peer");
}

TEST_F(TlsTest, PeerClosingDuringHandshakeIsReported) {
  auto server = serverContext();
  ASSERT_TRUE(server);
  Peer client;
  Peer server_;
  attachPair(client, server_);
  server_.stream->startTlsServer(server->get());
  client.stream->write(std::string_view("\x16\x03\x01", 3));  // a record header, then nothing
  client.stream->closeAfterFlush("client gives up");
  ASSERT_TRUE(runUntil([&] { return server_.closed(); }));
  EXPECT_EQ(server_.reason, "TLS handshake failed: connection closed by peer");
}

TEST_F(TlsTest, ClientSeesServerResetDuringHandshake) {
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(client);
  Peer client_;
  Peer server;
  attachPair(client_, server);
  server.stream->startReading();
  server.onData = [](Peer& p, std::string_view) { p.stream->close("not speaking TLS"); };
  client_.stream->startTlsClient(client->get(), "localhost", true);
  ASSERT_TRUE(runUntil([&] { return client_.closed(); }));
  EXPECT_EQ(client_.reason.rfind("TLS handshake failed: ", 0), 0u) << client_.reason;
}

// --------------------------------------------------------------- data

TEST_F(TlsTest, LargeTransferIsByteExact) {
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  TlsPair pair;
  handshake(pair, server->get(), client->get());
  ASSERT_TRUE(pair.established());
  // Server to client, as a RETR would flow; the server keeps below the high
  // watermark and continues on onDrain.
  const std::string data = pattern(20 * 1024 * 1024);
  std::size_t offset = 0;
  auto pump = [&data, &offset](Peer& p) {
    while (offset < data.size() && !p.stream->aboveHighWatermark()) {
      const std::size_t n = std::min<std::size_t>(40 * 1024, data.size() - offset);
      p.stream->write(std::string_view(data).substr(offset, n));
      offset += n;
    }
    if (offset == data.size()) p.stream->closeAfterFlush("sender done");
  };
  pair.server.onDrain = pump;
  pump(pair.server);
  ASSERT_TRUE(runUntil([&] { return pair.client.closed() && pair.server.closed(); }, 60s));
  EXPECT_EQ(pair.client.received.size(), data.size());
  EXPECT_TRUE(pair.client.received == data);
  EXPECT_EQ(pair.server.reason, "sender done");
  // close_notify arrived before the FIN.
  EXPECT_EQ(pair.client.reason, "connection closed by peer");
  EXPECT_GT(pair.server.drains, 0);
}

TEST_F(TlsTest, PauseHoldsBufferedPlaintextAndResumeDeliversItWithoutNewInput) {
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  TlsPair pair;
  Stream::Options small;
  small.readBufferSize = 1024;  // many SSL_read rounds per 16 KiB record
  handshake(pair, server->get(), client->get(), "localhost", true, small);
  ASSERT_TRUE(pair.established());

  // Pause after every delivery; check nothing comes while paused.
  bool paused = false;
  bool deliveredWhilePaused = false;
  pair.server.onData = [&](Peer& p, std::string_view) {
    if (paused) deliveredWhilePaused = true;
    p.stream->pauseReading();
    paused = true;
  };
  const std::string data = pattern(48 * 1024);
  pair.client.stream->write(std::string_view(data));
  for (int round = 0; round < 2000 && pair.server.received.size() < data.size(); ++round) {
    runFor(2ms);
    const std::size_t before = pair.server.received.size();
    runFor(3ms);
    EXPECT_EQ(pair.server.received.size(), before) << "data delivered while paused";
    paused = false;
    pair.server.stream->resumeReading();
  }
  ASSERT_EQ(pair.server.received.size(), data.size());
  EXPECT_TRUE(pair.server.received == data);
  EXPECT_FALSE(deliveredWhilePaused);
  EXPECT_GT(pair.server.dataCalls, 10);
}

TEST_F(TlsTest, ResumeDeliversRecordsBufferedBeforeThePause) {
  // Everything arrives while paused; after resume no more socket input comes,
  // so the data must come out of BoringSSL's buffers alone.
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  TlsPair pair;
  Stream::Options small;
  small.readBufferSize = 1024;
  handshake(pair, server->get(), client->get(), "localhost", true, small);
  ASSERT_TRUE(pair.established());
  pair.server.onData = [](Peer& p, std::string_view) { p.stream->pauseReading(); };
  const std::string data = pattern(64 * 1024);
  pair.client.stream->write(std::string_view(data));
  ASSERT_TRUE(runUntil([&] { return pair.server.dataCalls == 1; }));
  runFor(100ms);  // all bytes are now in the server's kernel buffer or BIO
  EXPECT_EQ(pair.server.dataCalls, 1);
  pair.server.onData = nullptr;
  pair.server.stream->resumeReading();
  EXPECT_EQ(pair.server.dataCalls, 1) << "resumeReading must not call back synchronously";
  ASSERT_TRUE(runUntil([&] { return pair.server.received.size() == data.size(); }));
  EXPECT_TRUE(pair.server.received == data);
}

TEST_F(TlsTest, WritesDuringHandshakeGoOutEncryptedAfterIt) {
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  Peer clientPeer;
  Peer serverPeer;
  attachPair(clientPeer, serverPeer);
  serverPeer.stream->startTlsServer(server->get());
  // Implicit TLS: the greeting is written right after accept.
  serverPeer.stream->write(std::string_view("+OK popbridge ready\r\n"));
  EXPECT_GT(serverPeer.stream->pendingWriteBytes(), 0u);
  clientPeer.stream->startReading();
  clientPeer.stream->startTlsClient(client->get(), "localhost", true);
  ASSERT_TRUE(runUntil([&] { return clientPeer.received == "+OK popbridge ready\r\n"; }));
  EXPECT_EQ(clientPeer.tlsReadyCount, 1);
}

TEST_F(TlsTest, StartTlsAfterPlaintextExchange) {
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  Peer clientPeer;
  Peer serverPeer;
  attachPair(clientPeer, serverPeer);
  serverPeer.stream->startReading();
  clientPeer.stream->startReading();
  serverPeer.onData = [&](Peer& p, std::string_view data) {
    if (!p.stream->tlsActive()) {
      ASSERT_EQ(data, "STLS\r\n");
      p.stream->write(std::string_view("+OK Begin TLS negotiation\r\n"));
      p.stream->startTlsServer(server->get());
      return;
    }
    p.stream->write(std::string_view("+OK secure: "));
    p.stream->write(data);
  };
  clientPeer.onData = [&](Peer& p, std::string_view) {
    if (p.received == "+OK Begin TLS negotiation\r\n") {
      p.received.clear();
      p.stream->startTlsClient(client->get(), "localhost", true);
    }
  };
  clientPeer.onTlsReady = [](Peer& p) { p.stream->write(std::string_view("CAPA\r\n")); };
  clientPeer.stream->write(std::string_view("STLS\r\n"));
  ASSERT_TRUE(runUntil([&] { return clientPeer.received == "+OK secure: CAPA\r\n"; }))
      << clientPeer.reason << " / " << serverPeer.reason;
  EXPECT_EQ(serverPeer.tlsReadyCount, 1);
  EXPECT_FALSE(serverPeer.stream->tlsVersion().empty());
}

// --------------------------------------------------------------- reentrancy

TEST_F(TlsTest, DestroyingTheStreamInsideTlsCallbacksIsSafe) {
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  {
    // Inside onData with more records still buffered in BoringSSL.
    TlsPair pair;
    Stream::Options small;
    small.readBufferSize = 1024;
    handshake(pair, server->get(), client->get(), "localhost", true, small);
    ASSERT_TRUE(pair.established());
    pair.server.onData = [](Peer& p, std::string_view) { p.stream.reset(); };
    pair.client.stream->write(std::string_view(pattern(100 * 1024)));
    ASSERT_TRUE(runUntil([&] { return pair.client.closed(); }));
    EXPECT_EQ(pair.server.dataCalls, 1);
  }
  {
    // Inside onTlsReady, with a write queued during the handshake.
    TlsPair pair;
    pair.server.onTlsReady = [](Peer& p) { p.stream.reset(); };
    attachPair(pair.client, pair.server);
    pair.server.stream->startTlsServer(server->get());
    pair.server.stream->write(std::string_view("+OK hello\r\n"));
    pair.client.stream->startReading();
    pair.client.stream->startTlsClient(client->get(), "localhost", true);
    ASSERT_TRUE(runUntil([&] { return pair.client.closed(); }));
    EXPECT_FALSE(pair.server.stream);
  }
  {
    // Inside onClose after a TLS failure.
    TlsPair pair;
    pair.server.onClose = [](Peer& p) { p.stream.reset(); };
    attachPair(pair.client, pair.server);
    pair.server.stream->startTlsServer(server->get());
    pair.client.stream->write(std::string_view("garbage garbage garbage\r\n"));
    ASSERT_TRUE(runUntil([&] { return pair.server.closed(); }));
    EXPECT_FALSE(pair.server.stream);
  }
  {
    // Destroyed while the handshake is in flight.
    TlsPair pair;
    attachPair(pair.client, pair.server);
    pair.server.stream->startTlsServer(server->get());
    pair.client.stream->startTlsClient(client->get(), "localhost", true);
    runUntil([&] { return false; }, 1ms);
    pair.server.stream.reset();
    pair.client.stream.reset();
    runFor(50ms);
  }
}

TEST_F(TlsTest, CloseNotifyFromPeerEndsTheStream) {
  auto server = serverContext();
  auto client = clientContext(pki().pki.caCert);
  ASSERT_TRUE(server && client);
  TlsPair pair;
  handshake(pair, server->get(), client->get());
  ASSERT_TRUE(pair.established());
  pair.client.stream->write(std::string_view("QUIT\r\n"));
  pair.client.stream->closeAfterFlush("client quit");
  ASSERT_TRUE(runUntil([&] { return pair.server.closed() && pair.client.closed(); }));
  EXPECT_EQ(pair.server.received, "QUIT\r\n");
  EXPECT_EQ(pair.server.reason, "connection closed by peer");
  EXPECT_EQ(pair.client.reason, "client quit");
  // Still available for the session's end-of-session log line.
  EXPECT_FALSE(pair.server.stream->tlsVersion().empty());
}

// --------------------------------------------------------------- contexts

TEST(TlsContextTest, ServerContextErrorsNameTheFile) {
  std::string error;
  EXPECT_FALSE(TlsServerContext::create("/nonexistent/cert.pem", pki().pki.serverKey,
                                        TlsMinVersion::V1_2, error));
  EXPECT_EQ(error, "TLS certificate file /nonexistent/cert.pem does not exist");

  error.clear();
  EXPECT_FALSE(TlsServerContext::create(pki().pki.serverCert, pki().pki.wrongNameKey,
                                        TlsMinVersion::V1_2, error));
  EXPECT_NE(error.find("does not match"), std::string::npos) << error;

  const std::string garbage = pki().dir + "/garbage.pem";
  {
    std::FILE* f = std::fopen(garbage.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not PEM\n", f);
    std::fclose(f);
  }
  error.clear();
  EXPECT_FALSE(TlsServerContext::create(garbage, pki().pki.serverKey, TlsMinVersion::V1_2, error));
  EXPECT_EQ(error.rfind("cannot load TLS certificate chain from " + garbage + ": ", 0), 0u)
      << error;
  EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left non-empty";

  error.clear();
  EXPECT_FALSE(TlsServerContext::create(pki().pki.serverCert, garbage, TlsMinVersion::V1_2, error));
  EXPECT_EQ(error.rfind("cannot load TLS private key from " + garbage + ": ", 0), 0u) << error;

  error.clear();
  auto ok = TlsServerContext::create(pki().pki.serverCert, pki().pki.serverKey, TlsMinVersion::V1_0,
                                     error);
  ASSERT_TRUE(ok) << error;
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ok->get()), TLS1_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(ok->get()), TLS1_3_VERSION);
}

TEST(TlsContextTest, ClientContextLoadsCaAndReportsBadPaths) {
  std::string error;
  auto ctx = TlsClientContext::create("", true, TlsMinVersion::V1_2, error);
  ASSERT_TRUE(ctx) << error;
  EXPECT_TRUE(ctx->verify());
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx->get()), SSL_VERIFY_PEER);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->get()), TLS1_2_VERSION);

  error.clear();
  EXPECT_FALSE(TlsClientContext::create("/nonexistent/ca.pem", true, TlsMinVersion::V1_2, error));
  EXPECT_EQ(error, "CA file /nonexistent/ca.pem does not exist");

  error.clear();
  EXPECT_FALSE(TlsClientContext::create(pki().pki.caKey, true, TlsMinVersion::V1_2, error));
  EXPECT_EQ(error.rfind("cannot load CA certificates from " + pki().pki.caKey, 0), 0u) << error;

  error.clear();
  auto insecure = TlsClientContext::create("", false, TlsMinVersion::V1_3, error);
  ASSERT_TRUE(insecure) << error;
  EXPECT_FALSE(insecure->verify());
  EXPECT_EQ(SSL_CTX_get_verify_mode(insecure->get()), SSL_VERIFY_NONE);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(insecure->get()), TLS1_3_VERSION);
}

TEST(TlsContextTest, DrainTlsErrorsEmptiesTheWholeQueue) {
  ERR_clear_error();
  EXPECT_EQ(drainTlsErrors("nothing"), "nothing: unknown TLS error");
  EXPECT_EQ(drainTlsErrors("eof", SSL_ERROR_SYSCALL),
            "eof: connection ended without a TLS close_notify");
  OPENSSL_PUT_ERROR(SSL, SSL_R_WRONG_VERSION_NUMBER);
  OPENSSL_PUT_ERROR(SSL, SSL_R_HTTP_REQUEST);
  OPENSSL_PUT_ERROR(PEM, PEM_R_NO_START_LINE);
  const std::string reason = drainTlsErrors("TLS handshake failed", SSL_ERROR_SSL);
  EXPECT_EQ(reason,
            "TLS handshake failed: wrong version number; http request; no start line (PEM "
            "routines)");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace popbridge::proxy
