// Behaviour of the plaintext byte stream and the outbound connector on real
// loopback sockets, with a libuv loop run in the test thread.
#include "proxy/stream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/connector.h"
#include "proxy/uv_handle.h"
#include "tests/proxy/stream_harness.h"

namespace popbridge::proxy {
namespace {

using namespace std::chrono_literals;

using namespace testing_support;

class StreamTest : public StreamHarness {};

// Writes `data` in slices while below the high watermark, continues on
// onDrain, and calls closeAfterFlush when everything is queued.
void pumpOnDrain(Peer& sender, const std::string& data, std::size_t& offset) {
  auto pump = [&data, &offset](Peer& peer) {
    while (offset < data.size() && !peer.stream->aboveHighWatermark()) {
      const std::size_t n = std::min<std::size_t>(48 * 1024, data.size() - offset);
      peer.stream->write(std::string_view(data).substr(offset, n));
      offset += n;
    }
    if (offset == data.size()) peer.stream->closeAfterFlush("sender done");
  };
  sender.onDrain = pump;
  pump(sender);
}

// --------------------------------------------------------------- tests

TEST_F(StreamTest, EchoRoundTrip) {
  Peer client;
  Peer server;
  attachPair(client, server);
  server.onData = [](Peer& p, std::string_view data) { p.stream->write(data); };
  client.stream->startReading();
  server.stream->startReading();
  EXPECT_FALSE(server.stream->tlsActive());
  EXPECT_EQ(server.stream->tlsVersion(), "");
  EXPECT_TRUE(server.stream->peerAddress().rfind("127.0.0.1:", 0) == 0)
      << server.stream->peerAddress();

  client.stream->write(std::string_view("USER alice\r\n"));
  client.stream->write(std::string("PASS secret\r\n"));
  ASSERT_TRUE(runUntil([&] { return client.received.size() == 25; }));
  EXPECT_EQ(client.received, "USER alice\r\nPASS secret\r\n");
  EXPECT_EQ(client.stream->pendingWriteBytes(), 0u);
  EXPECT_EQ(server.stream->pendingWriteBytes(), 0u);
}

TEST_F(StreamTest, LargeTransferIsByteExactUnderWatermarks) {
  Peer client;
  Peer server;
  attachPair(client, server);
  const std::string data = pattern(20 * 1024 * 1024);
  std::size_t offset = 0;
  server.stream->startReading();
  client.stream->startReading();
  std::size_t maxPending = 0;
  server.onData = [&](Peer&, std::string_view) {
    maxPending = std::max(maxPending, client.stream->pendingWriteBytes());
  };
  pumpOnDrain(client, data, offset);
  ASSERT_TRUE(runUntil([&] { return client.closed() && server.closed(); }, 60s));
  EXPECT_EQ(server.received.size(), data.size());
  EXPECT_TRUE(server.received == data);
  EXPECT_EQ(client.reason, "sender done");
  EXPECT_EQ(server.reason, "connection closed by peer");
  EXPECT_GT(client.drains, 0);
  // The sender never queued much more than the high watermark plus one slice.
  EXPECT_LE(maxPending, Stream::Options{}.highWatermark + 48 * 1024);
}

TEST_F(StreamTest, PausedStreamDeliversNothingAndLosesNothing) {
  Peer client;
  Peer server;
  attachPair(client, server);
  server.stream->startReading();
  client.stream->write(std::string_view("first\r\n"));
  ASSERT_TRUE(runUntil([&] { return server.received == "first\r\n"; }));

  server.stream->pauseReading();
  EXPECT_TRUE(server.stream->readingPaused());
  const std::string more = pattern(300 * 1024);
  client.stream->write(std::string_view(more));
  runFor(200ms);
  EXPECT_EQ(server.received, "first\r\n") << "data delivered while paused";

  server.stream->resumeReading();
  ASSERT_TRUE(runUntil([&] { return server.received.size() == 7 + more.size(); }));
  EXPECT_TRUE(server.received.substr(7) == more);
}

TEST_F(StreamTest, PauseInsideOnDataStopsFurtherDelivery) {
  Peer client;
  Peer server;
  attachPair(client, server);
  server.stream->startReading();
  server.onData = [](Peer& p, std::string_view) { p.stream->pauseReading(); };
  client.stream->write(std::string_view("one\r\n"));
  ASSERT_TRUE(runUntil([&] { return server.dataCalls == 1; }));
  client.stream->write(std::string_view("two\r\n"));
  runFor(100ms);
  EXPECT_EQ(server.dataCalls, 1);
  EXPECT_EQ(server.received, "one\r\n");
  server.onData = nullptr;
  server.stream->resumeReading();
  ASSERT_TRUE(runUntil([&] { return server.received == "one\r\ntwo\r\n"; }));
}

TEST_F(StreamTest, DrainFiresOnceAfterPeerReads) {
  Peer client;
  Peer server;
  attachPair(client, server);
  // The receiver does not read, so the kernel buffers fill and the rest waits
  // in the sender's queue.
  const std::string big = pattern(16 * 1024 * 1024);
  client.stream->write(std::string_view(big));
  EXPECT_TRUE(client.stream->aboveHighWatermark());
  runFor(200ms);
  EXPECT_TRUE(client.stream->aboveHighWatermark());
  EXPECT_EQ(client.drains, 0);

  server.stream->startReading();
  ASSERT_TRUE(runUntil([&] { return server.received.size() == big.size(); }, 30s));
  EXPECT_EQ(client.drains, 1);
  EXPECT_EQ(client.stream->pendingWriteBytes(), 0u);
  EXPECT_TRUE(server.received == big);
}

TEST_F(StreamTest, WriteAfterCloseIsHarmlessAndCloseIsReportedOnceFromTheLoop) {
  Peer client;
  Peer server;
  attachPair(client, server);
  server.stream->startReading();
  client.stream->close("done here");
  EXPECT_EQ(client.closeCount, 0) << "onClose must not run inside close()";
  EXPECT_TRUE(client.stream->closing());
  client.stream->write(std::string_view("ignored"));
  client.stream->write(std::string("ignored too"));
  client.stream->closeAfterFlush("again");
  client.stream->close("and again");
  client.stream->pauseReading();
  client.stream->resumeReading();
  EXPECT_EQ(client.stream->pendingWriteBytes(), 0u);
  ASSERT_TRUE(runUntil([&] { return client.closed() && server.closed(); }));
  runFor(50ms);
  EXPECT_EQ(client.closeCount, 1);
  EXPECT_EQ(client.reason, "done here");
  EXPECT_EQ(server.reason, "connection closed by peer");
  EXPECT_EQ(server.received, "");
}

TEST_F(StreamTest, CloseAfterFlushDeliversEverythingThenEof) {
  Peer client;
  Peer server;
  attachPair(client, server);
  server.stream->startReading();
  client.stream->startReading();
  const std::string body = pattern(3 * 1024 * 1024);
  server.onData = [&](Peer& p, std::string_view) {
    p.stream->write(std::string_view(body));
    p.stream->write(std::string_view("+OK bye\r\n"));
    p.stream->closeAfterFlush("QUIT");
  };
  client.stream->write(std::string_view("QUIT\r\n"));
  ASSERT_TRUE(runUntil([&] { return client.closed() && server.closed(); }, 20s));
  EXPECT_EQ(client.received.size(), body.size() + 9);
  EXPECT_TRUE(client.received == body + "+OK bye\r\n");
  EXPECT_EQ(server.reason, "QUIT");
  EXPECT_EQ(client.reason, "connection closed by peer");
}

TEST_F(StreamTest, CloseAfterFlushSurvivesUnreadPipelinedInput) {
  // The client pipelines commands after QUIT that the server never reads.
  // Closing with unread input sends a RST; the lingering close must still let
  // the "+OK bye" arrive.
  Peer client;
  Peer server;
  attachPair(client, server);
  server.stream->startReading();
  client.stream->startReading();
  server.onData = [](Peer& p, std::string_view data) {
    if (data.find("QUIT") == std::string_view::npos) return;
    p.stream->write(std::string_view("+OK bye\r\n"));
    p.stream->closeAfterFlush("QUIT");
  };
  client.stream->write(std::string_view("QUIT\r\n"));
  ASSERT_TRUE(runUntil([&] { return server.dataCalls > 0; }));
  client.stream->write(std::string(100000, 'x'));
  ASSERT_TRUE(runUntil([&] { return client.received.size() == 9; }));
  EXPECT_EQ(client.received, "+OK bye\r\n");
  client.stream->close("client done");
  ASSERT_TRUE(runUntil([&] { return server.closed(); }));
  EXPECT_EQ(server.reason, "QUIT");
}

TEST_F(StreamTest, CloseAfterFlushGivesUpAfterCloseTimeoutWhenPeerDoesNotRead) {
  Peer client;
  Peer server;
  Stream::Options options;
  options.closeTimeout = 200ms;
  attachPair(client, server, options);
  client.stream->write(std::string_view(pattern(16 * 1024 * 1024)));
  client.stream->closeAfterFlush("giving up");
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil([&] { return client.closed(); }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(client.reason, "giving up");
}

TEST_F(StreamTest, PeerEofAndResetAreReported) {
  // EOF
  {
    Peer client;
    Peer server;
    attachPair(client, server);
    server.stream->startReading();
    client.stream.reset();  // destroying a Stream closes the socket silently
    ASSERT_TRUE(runUntil([&] { return server.closed(); }));
    EXPECT_EQ(server.reason, "connection closed by peer");
    EXPECT_EQ(client.closeCount, 0);
  }
  // RST: a raw socket closed with SO_LINGER {1, 0}.
  Pair pair;
  Listener listener(&loop_, [&](UvHandle<uv_tcp_t> tcp) { pair.server = std::move(tcp); });
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", listener.port(), &addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_TRUE(runUntil([&] { return static_cast<bool>(pair.server); }));
  Peer server;
  server.attach(&loop_, std::move(pair.server));
  server.stream->startReading();
  ASSERT_EQ(::write(fd, "hello", 5), 5);
  ASSERT_TRUE(runUntil([&] { return server.received == "hello"; }));
  linger lin{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  ::close(fd);
  ASSERT_TRUE(runUntil([&] { return server.closed(); }));
  EXPECT_EQ(server.reason, "connection reset by peer");
}

TEST_F(StreamTest, WriteToResetPeerEndsTheStream) {
  Pair pair;
  Listener listener(&loop_, [&](UvHandle<uv_tcp_t> tcp) { pair.server = std::move(tcp); });
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", listener.port(), &addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_TRUE(runUntil([&] { return static_cast<bool>(pair.server); }));
  linger lin{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
  ::close(fd);
  Peer server;
  server.attach(&loop_, std::move(pair.server));
  // Not reading: the reset is discovered by writing.
  for (int i = 0; i < 50 && !server.stream->closing(); ++i) {
    server.stream->write(std::string_view(pattern(64 * 1024)));
    runFor(10ms);
  }
  ASSERT_TRUE(runUntil([&] { return server.closed(); }));
  EXPECT_TRUE(server.reason == "connection reset by peer" ||
              server.reason == "connection closed by peer (broken pipe)")
      << server.reason;
}

TEST_F(StreamTest, DestroyingTheStreamInsideCallbacksIsSafe) {
  // Inside onData, with a large write still in flight.
  {
    Peer client;
    Peer server;
    attachPair(client, server);
    server.stream->startReading();
    server.onData = [](Peer& p, std::string_view) {
      p.stream->write(std::string_view(pattern(8 * 1024 * 1024)));
      p.stream.reset();
    };
    client.stream->startReading();
    client.stream->write(std::string_view("go\r\n"));
    ASSERT_TRUE(runUntil([&] { return client.closed(); }));
    EXPECT_FALSE(server.stream);
    EXPECT_EQ(server.closeCount, 0);
  }
  // Inside onClose.
  {
    Peer client;
    Peer server;
    attachPair(client, server);
    server.stream->startReading();
    server.onClose = [](Peer& p) { p.stream.reset(); };
    client.stream->close("bye");
    ASSERT_TRUE(runUntil([&] { return server.closed(); }));
    EXPECT_FALSE(server.stream);
  }
  // Inside onDrain.
  {
    Peer client;
    Peer server;
    attachPair(client, server);
    client.onDrain = [](Peer& p) { p.stream.reset(); };
    client.stream->write(std::string_view(pattern(8 * 1024 * 1024)));
    server.stream->startReading();
    ASSERT_TRUE(runUntil([&] { return client.drains == 1; }, 20s));
    EXPECT_FALSE(client.stream);
  }
  // The view handed to onData stays readable after the Stream is destroyed
  // inside the callback.
  {
    Peer client;
    Peer server;
    attachPair(client, server);
    server.stream->startReading();
    std::string copy;
    server.onData = [&copy](Peer& p, std::string_view data) {
      p.stream.reset();
      copy.assign(data);
    };
    client.stream->write(std::string_view("still valid"));
    ASSERT_TRUE(runUntil([&] { return !copy.empty(); }));
    EXPECT_EQ(copy, "still valid");
  }
}

TEST_F(StreamTest, WriteAndRecycleKeepsOrderAndHandsBackBuffers) {
  Peer client;
  Peer server;
  attachPair(client, server);
  server.stream->startReading();
  std::string expected;
  std::string buffer;
  std::size_t swapped = 0;
  for (int round = 0; round < 200; ++round) {
    std::string chunk = pattern(1000 + round * 37).substr(round % 5);
    buffer.append(chunk);
    expected += chunk;
    const char* before = buffer.data();
    client.stream->writeAndRecycle(buffer);
    EXPECT_TRUE(buffer.empty());
    // A different storage means the stream took ours and gave one back: no copy.
    if (buffer.data() != before) ++swapped;
    if (round % 3 == 0) {
      // Copying writes in between must keep their place in the byte stream.
      std::string tail = "|" + std::to_string(round) + "|";
      client.stream->write(std::string_view(tail));
      expected += tail;
    }
    runFor(1ms);
  }
  ASSERT_TRUE(runUntil([&] { return server.received.size() == expected.size(); }));
  EXPECT_TRUE(server.received == expected);
  EXPECT_GT(swapped, 50u);
}

TEST_F(StreamTest, ReadBufferIsReusedAcrossReads) {
  Peer client;
  Peer server;
  Stream::Options small;
  small.readBufferSize = 4096;
  attachPair(client, server, {}, small);
  server.stream->startReading();
  std::vector<const char*> buffers;
  server.onData = [&](Peer&, std::string_view data) {
    EXPECT_LE(data.size(), 4096u);
    if (std::find(buffers.begin(), buffers.end(), data.data()) == buffers.end()) {
      buffers.push_back(data.data());
    }
  };
  std::vector<const char*> clientBuffers;
  client.stream->startReading();
  client.onData = [&](Peer&, std::string_view data) {
    if (std::find(clientBuffers.begin(), clientBuffers.end(), data.data()) == clientBuffers.end()) {
      clientBuffers.push_back(data.data());
    }
  };
  client.stream->write(std::string_view(pattern(256 * 1024)));
  server.stream->write(std::string_view(pattern(64 * 1024)));
  ASSERT_TRUE(runUntil(
      [&] { return server.received.size() == 256 * 1024 && client.received.size() == 64 * 1024; }));
  EXPECT_EQ(buffers.size(), 1u) << "one read buffer, reused across reads";
  // Idle sessions cost no read buffer: every Stream of a loop reads into the same one.
  EXPECT_EQ(clientBuffers, buffers);
}

// --------------------------------------------------------------- Connector

class ConnectorTest : public StreamTest {};

TEST_F(ConnectorTest, ConnectsToListeningPort) {
  bool accepted = false;
  UvHandle<uv_tcp_t> serverSide;
  Listener listener(&loop_, [&](UvHandle<uv_tcp_t> tcp) {
    accepted = true;
    serverSide = std::move(tcp);
  });
  Connector connector(&loop_);
  int calls = 0;
  UvHandle<uv_tcp_t> tcp;
  std::string error = "unset";
  connector.connect("localhost", listener.port(), 5s, [&](UvHandle<uv_tcp_t> t, std::string e) {
    ++calls;
    tcp = std::move(t);
    error = std::move(e);
  });
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(connector.busy());
  ASSERT_TRUE(runUntil([&] { return calls > 0 && accepted; }));
  EXPECT_EQ(error, "");
  ASSERT_TRUE(tcp);
  EXPECT_TRUE(tcp.initialised());
  EXPECT_FALSE(connector.busy());
  runFor(50ms);
  EXPECT_EQ(calls, 1);
}

TEST_F(ConnectorTest, ConnectsOverIpv6Loopback) {
  UvHandle<uv_tcp_t> serverSide;
  Listener listener(
      &loop_, [&](UvHandle<uv_tcp_t> tcp) { serverSide = std::move(tcp); }, "::1");
  if (listener.status() != 0)
    GTEST_SKIP() << "no IPv6 loopback: " << uv_strerror(listener.status());
  Connector connector(&loop_);
  std::string error = "unset";
  UvHandle<uv_tcp_t> tcp;
  connector.connect("[::1]", listener.port(), 5s, [&](UvHandle<uv_tcp_t> t, std::string e) {
    tcp = std::move(t);
    error = std::move(e);
  });
  ASSERT_TRUE(runUntil([&] { return error != "unset" && serverSide; }));
  EXPECT_EQ(error, "");
  Peer peer;
  peer.attach(&loop_, std::move(serverSide));
  EXPECT_TRUE(peer.stream->peerAddress().rfind("[::1]:", 0) == 0) << peer.stream->peerAddress();
}

TEST_F(ConnectorTest, DualStackListenerShowsIpv4ClientsAsIpv4) {
  UvHandle<uv_tcp_t> serverSide;
  Listener listener(
      &loop_, [&](UvHandle<uv_tcp_t> tcp) { serverSide = std::move(tcp); }, "::");
  if (listener.status() != 0) GTEST_SKIP() << "no IPv6: " << uv_strerror(listener.status());
  Connector connector(&loop_);
  std::string error = "unset";
  UvHandle<uv_tcp_t> tcp;
  connector.connect("127.0.0.1", listener.port(), 5s, [&](UvHandle<uv_tcp_t> t, std::string e) {
    tcp = std::move(t);
    error = std::move(e);
  });
  ASSERT_TRUE(runUntil([&] { return error != "unset" && serverSide; }));
  ASSERT_EQ(error, "");
  Peer accepted;
  accepted.attach(&loop_, std::move(serverSide));
  EXPECT_TRUE(accepted.stream->peerAddress().rfind("127.0.0.1:", 0) == 0)
      << accepted.stream->peerAddress();
  Peer connected;
  connected.attach(&loop_, std::move(tcp));
  EXPECT_EQ(connected.stream->peerAddress(), "127.0.0.1:" + std::to_string(listener.port()));
}

// A port that was just free: bind, read the number, close.
std::uint16_t closedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(ConnectorTest, RefusedPortGivesAnError) {
  Connector connector(&loop_);
  std::string error;
  bool gotTcp = true;
  const auto port = closedPort();
  connector.connect("127.0.0.1", port, 5s, [&](UvHandle<uv_tcp_t> t, std::string e) {
    gotTcp = static_cast<bool>(t);
    error = std::move(e);
  });
  ASSERT_TRUE(runUntil([&] { return !error.empty(); }));
  EXPECT_FALSE(gotTcp);
  EXPECT_EQ(error, "connect to 127.0.0.1:" + std::to_string(port) + " refused");
}

TEST_F(ConnectorTest, RefusedByNameListsTheAddressesTried) {
  Connector connector(&loop_);
  std::string error;
  const auto port = closedPort();
  connector.connect("localhost", port, 5s,
                    [&](UvHandle<uv_tcp_t>, std::string e) { error = std::move(e); });
  ASSERT_TRUE(runUntil([&] { return !error.empty(); }));
  EXPECT_EQ(error.rfind("connect to localhost:" + std::to_string(port) + " refused (tried ", 0), 0u)
      << error;
  EXPECT_NE(error.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << error;
}

TEST_F(ConnectorTest, UnresolvableHostGivesAnError) {
  Connector connector(&loop_);
  std::string error;
  connector.connect("no-such-host.invalid", 143, 10s,
                    [&](UvHandle<uv_tcp_t>, std::string e) { error = std::move(e); });
  ASSERT_TRUE(runUntil([&] { return !error.empty(); }, 15s));
  EXPECT_EQ(error.rfind("cannot resolve no-such-host.invalid: ", 0), 0u) << error;
}

TEST_F(ConnectorTest, EmptyHostFailsFromTheLoop) {
  Connector connector(&loop_);
  std::string error;
  connector.connect("", 143, 1s, [&](UvHandle<uv_tcp_t>, std::string e) { error = std::move(e); });
  EXPECT_EQ(error, "");
  ASSERT_TRUE(runUntil([&] { return !error.empty(); }));
  EXPECT_EQ(error, "cannot resolve an empty host name");
}

TEST_F(ConnectorTest, TimesOutWhenTheListenQueueIsFull) {
  // Linux drops SYNs while a listener's accept queue is full, so a connect to it
  // hangs in SYN retransmission: a reliable local stand-in for a black-holed
  // address.
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(lfd, 0), 0);
  socklen_t len = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  usleep(100 * 1000);

  Connector connector(&loop_);
  std::string error;
  const auto start = std::chrono::steady_clock::now();
  connector.connect("127.0.0.1", ntohs(addr.sin_port), 300ms,
                    [&](UvHandle<uv_tcp_t>, std::string e) { error = std::move(e); });
  ASSERT_TRUE(runUntil([&] { return !error.empty(); }, 5s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(error, "connect to 127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) +
                       " timed out after 300ms");
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 2s);
  for (int fd : fillers) ::close(fd);
  ::close(lfd);
}

TEST_F(ConnectorTest, CancelSuppressesTheCallback) {
  UvHandle<uv_tcp_t> serverSide;
  Listener listener(&loop_, [&](UvHandle<uv_tcp_t> tcp) { serverSide = std::move(tcp); });
  int calls = 0;
  {
    Connector connector(&loop_);
    connector.connect("127.0.0.1", listener.port(), 5s,
                      [&](UvHandle<uv_tcp_t>, std::string) { ++calls; });
    connector.cancel();
    EXPECT_FALSE(connector.busy());
    runFor(100ms);
    // Cancel during resolution of a name, then destroy.
    connector.connect("localhost", listener.port(), 5s,
                      [&](UvHandle<uv_tcp_t>, std::string) { ++calls; });
  }
  runFor(200ms);
  EXPECT_EQ(calls, 0);
}

TEST_F(ConnectorTest, CancelWhileConnecting) {
  // Hang the connect with a full listen queue, then cancel mid-connect.
  const int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", 0, &addr);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(lfd, 0), 0);
  socklen_t len = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(fd);
  }
  usleep(100 * 1000);
  int calls = 0;
  auto connector = std::make_unique<Connector>(&loop_);
  connector->connect("127.0.0.1", ntohs(addr.sin_port), 5s,
                     [&](UvHandle<uv_tcp_t>, std::string) { ++calls; });
  runFor(100ms);
  connector.reset();
  runFor(100ms);
  EXPECT_EQ(calls, 0);
  for (int fd : fillers) ::close(fd);
  ::close(lfd);
}

TEST_F(ConnectorTest, CallbackMayDestroyOrReuseTheConnector) {
  UvHandle<uv_tcp_t> serverSide;
  Listener listener(&loop_, [&](UvHandle<uv_tcp_t> tcp) { serverSide = std::move(tcp); });
  auto connector = std::make_unique<Connector>(&loop_);
  bool destroyed = false;
  connector->connect("127.0.0.1", listener.port(), 5s, [&](UvHandle<uv_tcp_t> tcp, std::string) {
    connector.reset();
    destroyed = true;
  });
  ASSERT_TRUE(runUntil([&] { return destroyed; }));

  Connector reused(&loop_);
  int calls = 0;
  std::string lastError = "unset";
  const auto refused = closedPort();
  reused.connect("127.0.0.1", refused, 5s, [&](UvHandle<uv_tcp_t>, std::string e) {
    ++calls;
    if (calls == 1) {
      reused.connect("127.0.0.1", listener.port(), 5s, [&](UvHandle<uv_tcp_t>, std::string e2) {
        ++calls;
        lastError = std::move(e2);
      });
    }
  });
  ASSERT_TRUE(runUntil([&] { return calls == 2; }));
  EXPECT_EQ(lastError, "");
}

TEST(UvHandleTest, UninitialisedHandleIsFreedWithoutTheLoop) {
  auto handle = UvHandle<uv_tcp_t>::allocate();
  EXPECT_TRUE(handle);
  EXPECT_FALSE(handle.initialised());
  UvHandle<uv_tcp_t> moved = std::move(handle);
  EXPECT_FALSE(handle);
  EXPECT_TRUE(moved);
  moved.reset();
  EXPECT_FALSE(moved);
}

TEST_F(StreamTest, TimerFiresOnceAndMayBeDestroyedInItsCallback) {
  auto timer = std::make_unique<Timer>(&loop_);
  int fired = 0;
  timer->start(10ms, [&] {
    ++fired;
    timer.reset();
  });
  EXPECT_TRUE(timer->active());
  ASSERT_TRUE(runUntil([&] { return fired == 1; }));
  runFor(50ms);
  EXPECT_EQ(fired, 1);

  Timer stopped(&loop_);
  stopped.start(10ms, [&] { ++fired; });
  stopped.stop();
  EXPECT_FALSE(stopped.active());
  runFor(50ms);
  EXPECT_EQ(fired, 1);
}

}  // namespace
}  // namespace popbridge::proxy
