// ProxyHeaderReader and Stream::receivedEarlier on real loopback sockets: the header is taken
// off the connection, what came with it in the same read reaches the Stream first (plaintext
// or TLS), and a bad header, EOF or silence ends in the reader's callback from the loop.

// clang-format off
#include "proxy/boringssl_check.h"  // first: stops the build on OpenSSL 3 headers
// clang-format on

#include "proxy/proxy_header_reader.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "proxy/tls_context.h"
#include "tests/proxy/stream_harness.h"
#include "tests/support/test_tls.h"

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;
using namespace testing_support;

class ProxyHeaderReaderTest : public StreamHarness {
 protected:
  // Accepts one connection, lets `delay` pass (so that whatever the client sent meanwhile is
  // in one read), then reads its header.
  void readHeader(Peer& client, std::chrono::milliseconds delay,
                  std::chrono::milliseconds timeout = 5s) {
    Pair pair = connectPair();
    client.attach(&loop_, std::move(pair.client));
    server_ = std::move(pair.server);
    if (sendBeforeRead_) sendBeforeRead_(client);
    runFor(delay);
    reader_ = std::make_unique<ProxyHeaderReader>(
        &loop_, std::move(server_), timeout,
        [this](ProxyHeaderReader& reader, ProxyHeaderReader::Outcome outcome) {
          if (outcome.ok) socket_ = reader.takeSocket();
          outcome_ = std::move(outcome);
          reader_.reset();  // the callback may destroy the reader
        });
    reader_->start();
    EXPECT_FALSE(outcome_.has_value()) << "never from inside start()";
    ASSERT_TRUE(runUntil([&] { return outcome_.has_value(); }));
  }

  std::function<void(Peer&)> sendBeforeRead_;
  UvHandle<uv_tcp_t> server_;
  std::unique_ptr<ProxyHeaderReader> reader_;
  std::optional<ProxyHeaderReader::Outcome> outcome_;
  UvHandle<uv_tcp_t> socket_;
};

TEST_F(ProxyHeaderReaderTest, BytesAfterTheHeaderReachThePlaintextStreamFirst) {
  Peer client;
  sendBeforeRead_ = [](Peer& c) {
    c.stream->write(std::string_view("PROXY TCP4 192.0.2.10 198.51.100.1 51000 110\r\nCAPA\r\n"));
  };
  readHeader(client, 100ms);
  ASSERT_TRUE(outcome_.has_value());
  ASSERT_TRUE(outcome_->ok) << outcome_->error;
  EXPECT_EQ(outcome_->header.addresses->sourceIp, "192.0.2.10");
  EXPECT_EQ(outcome_->after, "CAPA\r\n") << "one read held the header and the command";
  Peer server;
  server.attach(&loop_, std::move(socket_));
  server.stream->receivedEarlier(std::move(outcome_->after));
  runFor(50ms);
  EXPECT_EQ(server.received, "") << "nothing before reading is wanted";
  server.stream->startReading();
  client.stream->write(std::string_view("QUIT\r\n"));
  ASSERT_TRUE(runUntil([&] { return server.received.size() == 12; }));
  EXPECT_EQ(server.received, "CAPA\r\nQUIT\r\n");
}

TEST_F(ProxyHeaderReaderTest, TlsClientHelloAfterTheHeaderIsNotLost) {
  char tmpl[] = "/tmp/popbridge-pp-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const test::TestPki pki = test::makeTestPki(dir + "/pki");
  std::string error;
  auto serverCtx =
      TlsServerContext::create(pki.serverCert, pki.serverKey, TlsMinVersion::V1_2, error);
  ASSERT_TRUE(serverCtx) << error;
  auto clientCtx = TlsClientContext::create(pki.caCert, true, TlsMinVersion::V1_2, error);
  ASSERT_TRUE(clientCtx) << error;
  Peer client;
  sendBeforeRead_ = [&](Peer& c) {
    c.stream->write(std::string_view("PROXY TCP6 2001:db8::7 2001:db8::1 51000 995\r\n"));
    c.stream->startTlsClient(clientCtx->get(), "localhost", true);
    c.stream->startReading();
  };
  readHeader(client, 200ms);
  ASSERT_TRUE(outcome_.has_value());
  ASSERT_TRUE(outcome_->ok) << outcome_->error;
  EXPECT_EQ(outcome_->header.addresses->sourceIp, "2001:db8::7");
  ASSERT_FALSE(outcome_->after.empty()) << "the ClientHello came in the header's read";
  EXPECT_EQ(outcome_->after[0], '\x16') << "a TLS handshake record";
  Peer server;
  server.attach(&loop_, std::move(socket_));
  server.stream->receivedEarlier(std::move(outcome_->after));
  server.stream->startTlsServer(serverCtx->get());
  server.stream->startReading();
  ASSERT_TRUE(runUntil([&] { return server.tlsReadyCount == 1 && client.tlsReadyCount == 1; }))
      << server.reason << " / " << client.reason;
  client.stream->write(std::string_view("USER alice\r\n"));
  ASSERT_TRUE(runUntil([&] { return server.received == "USER alice\r\n"; }));
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

TEST_F(ProxyHeaderReaderTest, MalformedHeaderIsReported) {
  Peer client;
  sendBeforeRead_ = [](Peer& c) { c.stream->write(std::string_view("USER alice\r\n")); };
  readHeader(client, 50ms);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_FALSE(outcome_->ok);
  EXPECT_NE(outcome_->error.find("not a PROXY protocol header"), std::string::npos)
      << outcome_->error;
}

TEST_F(ProxyHeaderReaderTest, EofBeforeTheEndIsReported) {
  Peer client;
  sendBeforeRead_ = [](Peer& c) {
    c.stream->write(std::string_view("PROXY TCP4 192.0.2.10"));
    c.stream->closeAfterFlush("done");
  };
  readHeader(client, 50ms);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_FALSE(outcome_->ok);
  EXPECT_EQ(outcome_->error, "connection closed before the end of the PROXY header");
  EXPECT_FALSE(outcome_->closedSilently) << "it sent part of a header";
}

// A TCP health check: connect, close, nothing sent.
TEST_F(ProxyHeaderReaderTest, CloseWithoutAByteIsSilent) {
  Peer client;
  sendBeforeRead_ = [](Peer& c) { c.stream->closeAfterFlush("probe done"); };
  readHeader(client, 50ms);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_FALSE(outcome_->ok);
  EXPECT_TRUE(outcome_->closedSilently);
}

TEST_F(ProxyHeaderReaderTest, SilenceTimesOut) {
  Peer client;
  readHeader(client, 0ms, 150ms);
  ASSERT_TRUE(outcome_.has_value());
  EXPECT_FALSE(outcome_->ok);
  EXPECT_EQ(outcome_->error, "no PROXY protocol header within 150 ms");
}

// The owner may drop a reader whose header has not come (a shutdown): no callback, no leak.
TEST_F(ProxyHeaderReaderTest, DestroyedWhileWaitingCallsNothing) {
  Pair pair = connectPair();
  bool called = false;
  auto reader = std::make_unique<ProxyHeaderReader>(
      &loop_, std::move(pair.server), 5s,
      [&](ProxyHeaderReader&, ProxyHeaderReader::Outcome) { called = true; });
  reader->start();
  runFor(20ms);
  reader.reset();
  runFor(20ms);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace popbridge::proxy
