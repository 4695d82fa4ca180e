#include "tests/support/test_clients.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <utility>

#ifndef OPENSSL_IS_BORINGSSL
#error "the test clients must be built against BoringSSL (android-libboringssl-dev)"
#endif

namespace popbridge::test {
namespace {

long long nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A write to a peer that already closed must become an error return, not a dead test process.
void ignoreSigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

std::string drainSslErrors() {
  std::string text;
  while (const std::uint32_t code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    text += text.empty() ? "" : "; ";
    text += buffer;
  }
  return text.empty() ? "no TLS error queued" : text;
}

// Makes bytes readable in an error message: printable ASCII stays, the rest is escaped.
std::string printable(std::string_view bytes, std::size_t limit = 300) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > limit) out += "...";
  return out;
}

std::string stripLineEnd(std::string line) {
  if (!line.empty() && line.back() == '\n') line.pop_back();
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// Only the verb goes into error messages, so PASS and AUTH arguments never leak.
std::string verbOf(std::string_view line) {
  const auto end = line.find_first_of(" \r\n");
  return std::string(line.substr(0, end));
}

std::uint64_t parseNumber(const std::string& text, const std::string& context) {
  try {
    std::size_t used = 0;
    const auto value = std::stoull(text, &used);
    if (used != text.size()) throw std::invalid_argument("trailing characters");
    return value;
  } catch (const std::exception&) {
    throw std::runtime_error("expected a number in " + context + ", got '" + text + "'");
  }
}

}  // namespace

std::uint16_t freeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error(std::string("cannot find a free loopback port: ") +
                             std::strerror(error));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ---------------------------------------------------------------------------------------------
// TestConnection

void TestConnection::SslDeleter::operator()(ssl_st* ssl) const {
  SSL_free(ssl);
}
void TestConnection::SslCtxDeleter::operator()(ssl_ctx_st* ctx) const {
  SSL_CTX_free(ctx);
}

TestConnection::TestConnection(std::uint16_t port, int timeoutMs, const std::string& sourceIp)
    : port_(port), timeoutMs_(timeoutMs) {
  ignoreSigpipe();
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!sourceIp.empty()) {
    sockaddr_in source{};
    source.sin_family = AF_INET;
    if (inet_pton(AF_INET, sourceIp.c_str(), &source.sin_addr) != 1 ||
        bind(fd_, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
      const int error = errno;
      close();
      throw std::runtime_error("cannot bind to " + sourceIp + ": " + std::strerror(error));
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      const int error = errno;
      close();
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port) + ": " +
                               std::strerror(error));
    }
    pollfd pfd{fd_, POLLOUT, 0};
    const int ready = poll(&pfd, 1, timeoutMs_);
    int error = 0;
    socklen_t length = sizeof error;
    if (ready <= 0) {
      error = ready == 0 ? ETIMEDOUT : errno;
    } else if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
      error = errno;
    }
    if (error != 0) {
      close();
      throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port) + ": " +
                               std::strerror(error));
    }
  }
}

TestConnection::~TestConnection() {
  close();
}

TestConnection::TestConnection(TestConnection&& other) noexcept
    : port_(other.port_),
      timeoutMs_(other.timeoutMs_),
      fd_(std::exchange(other.fd_, -1)),
      sslCtx_(std::move(other.sslCtx_)),
      ssl_(std::move(other.ssl_)),
      buffer_(std::move(other.buffer_)),
      bufferPos_(std::exchange(other.bufferPos_, 0)),
      eof_(other.eof_) {}

TestConnection& TestConnection::operator=(TestConnection&& other) noexcept {
  if (this != &other) {
    close();
    port_ = other.port_;
    timeoutMs_ = other.timeoutMs_;
    fd_ = std::exchange(other.fd_, -1);
    sslCtx_ = std::move(other.sslCtx_);
    ssl_ = std::move(other.ssl_);
    buffer_ = std::move(other.buffer_);
    bufferPos_ = std::exchange(other.bufferPos_, 0);
    eof_ = other.eof_;
  }
  return *this;
}

void TestConnection::close() {
  ssl_.reset();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void TestConnection::fail(std::string_view what, std::string_view expecting) const {
  throw std::runtime_error("127.0.0.1:" + std::to_string(port_) + ": " + std::string(what) +
                           " while waiting for " + std::string(expecting) + "; unread bytes: \"" +
                           printable(std::string_view(buffer_).substr(bufferPos_)) + "\"");
}

void TestConnection::compactBuffer() {
  if (bufferPos_ == buffer_.size()) {
    buffer_.clear();
    bufferPos_ = 0;
  } else if (bufferPos_ > 65536 && bufferPos_ > buffer_.size() / 2) {
    buffer_.erase(0, bufferPos_);
    bufferPos_ = 0;
  }
}

TestConnection::Fill TestConnection::fill(long long deadlineMs) {
  if (fd_ < 0)
    throw std::runtime_error("connection to port " + std::to_string(port_) + " is closed");
  if (eof_) return Fill::kEof;
  compactBuffer();
  char chunk[65536];
  for (;;) {
    short waitFor = POLLIN;
    if (ssl_) {
      const int n = SSL_read(ssl_.get(), chunk, sizeof chunk);
      if (n > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return Fill::kData;
      }
      const int error = SSL_get_error(ssl_.get(), n);
      if (error == SSL_ERROR_WANT_WRITE) {
        waitFor = POLLOUT;
      } else if (error != SSL_ERROR_WANT_READ) {
        // close_notify, a bare TCP close and a reset all mean the peer is gone.
        if (error == SSL_ERROR_ZERO_RETURN ||
            (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
          eof_ = true;
          return Fill::kEof;
        }
        throw std::runtime_error("TLS read from port " + std::to_string(port_) +
                                 " failed: " + drainSslErrors());
      }
    } else {
      const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return Fill::kData;
      }
      if (n == 0 || errno == ECONNRESET) {
        eof_ = true;
        return Fill::kEof;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        throw std::runtime_error("read from port " + std::to_string(port_) +
                                 " failed: " + std::strerror(errno));
      }
    }
    const long long remaining = deadlineMs - nowMs();
    if (remaining <= 0) return Fill::kTimeout;
    pollfd pfd{fd_, waitFor, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(remaining));
    if (ready < 0 && errno != EINTR) {
      throw std::runtime_error(std::string("poll failed: ") + std::strerror(errno));
    }
  }
}

std::string TestConnection::readLine(std::string_view expecting) {
  const long long deadline = nowMs() + timeoutMs_;
  std::size_t searchFrom = bufferPos_;
  for (;;) {
    const auto newline = buffer_.find('\n', searchFrom);
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(bufferPos_, newline + 1 - bufferPos_);
      bufferPos_ = newline + 1;
      return line;
    }
    const std::size_t scanned = buffer_.size() - bufferPos_;
    switch (fill(deadline)) {
      case Fill::kData:
        // fill() may have moved the unread bytes to the front of the buffer.
        searchFrom = bufferPos_ + scanned;
        break;
      case Fill::kEof:
        fail("connection closed by peer", expecting);
      case Fill::kTimeout:
        fail("timed out after " + std::to_string(timeoutMs_) + " ms", expecting);
    }
  }
}

std::string TestConnection::readExact(std::size_t count, std::string_view expecting) {
  const long long deadline = nowMs() + timeoutMs_;
  while (buffer_.size() - bufferPos_ < count) {
    switch (fill(deadline)) {
      case Fill::kData:
        break;
      case Fill::kEof:
        fail("connection closed by peer after " + std::to_string(buffer_.size() - bufferPos_) +
                 " of " + std::to_string(count) + " bytes",
             expecting);
      case Fill::kTimeout:
        fail("timed out after " + std::to_string(timeoutMs_) + " ms with " +
                 std::to_string(buffer_.size() - bufferPos_) + " of " + std::to_string(count) +
                 " bytes",
             expecting);
    }
  }
  std::string bytes = buffer_.substr(bufferPos_, count);
  bufferPos_ += count;
  return bytes;
}

bool TestConnection::closedByPeer(int timeoutMs) {
  const long long deadline = nowMs() + timeoutMs;
  for (;;) {
    switch (fill(deadline)) {
      case Fill::kData:
        break;
      case Fill::kEof:
        return true;
      case Fill::kTimeout:
        return false;
    }
  }
}

void TestConnection::sendAll(std::string_view bytes) {
  if (fd_ < 0)
    throw std::runtime_error("connection to port " + std::to_string(port_) + " is closed");
  const long long deadline = nowMs() + timeoutMs_;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    short waitFor = POLLOUT;
    // Chunks keep a retried SSL_write identical to the failed one, as BoringSSL requires.
    const std::size_t chunk = std::min<std::size_t>(bytes.size() - sent, 16384);
    if (ssl_) {
      const int n = SSL_write(ssl_.get(), bytes.data() + sent, static_cast<int>(chunk));
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      const int error = SSL_get_error(ssl_.get(), n);
      if (error == SSL_ERROR_WANT_READ) {
        waitFor = POLLIN;
      } else if (error != SSL_ERROR_WANT_WRITE) {
        throw std::runtime_error("TLS write to port " + std::to_string(port_) + " failed after " +
                                 std::to_string(sent) + " bytes: " + drainSslErrors());
      }
    } else {
      const ssize_t n = send(fd_, bytes.data() + sent, chunk, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        throw std::runtime_error("write to port " + std::to_string(port_) + " failed after " +
                                 std::to_string(sent) + " bytes: " + std::strerror(errno));
      }
    }
    const long long remaining = deadline - nowMs();
    if (remaining <= 0) {
      throw std::runtime_error("timed out after " + std::to_string(timeoutMs_) +
                               " ms writing to port " + std::to_string(port_) + " (" +
                               std::to_string(sent) + " of " + std::to_string(bytes.size()) +
                               " bytes sent)");
    }
    pollfd pfd{fd_, waitFor, 0};
    poll(&pfd, 1, static_cast<int>(remaining));
  }
}

void TestConnection::startTls(const std::string& caFile, const std::string& serverName) {
  if (ssl_) throw std::runtime_error("TLS is already active");
  if (bufferedBytes() != 0) {
    fail("plaintext arrived before the TLS handshake", "the handshake");
  }
  sslCtx_.reset(SSL_CTX_new(TLS_method()));
  if (!sslCtx_) throw std::runtime_error("SSL_CTX_new: " + drainSslErrors());
  SSL_CTX_set_min_proto_version(sslCtx_.get(), TLS1_VERSION);
  if (!caFile.empty()) {
    if (SSL_CTX_load_verify_locations(sslCtx_.get(), caFile.c_str(), nullptr) != 1) {
      throw std::runtime_error("cannot load CA file " + caFile + ": " + drainSslErrors());
    }
    SSL_CTX_set_verify(sslCtx_.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(sslCtx_.get(), SSL_VERIFY_NONE, nullptr);
  }
  ssl_.reset(SSL_new(sslCtx_.get()));
  if (!ssl_) throw std::runtime_error("SSL_new: " + drainSslErrors());
  SSL_set_fd(ssl_.get(), fd_);
  in6_addr ignored;
  in_addr ignored4;
  const bool isIp = inet_pton(AF_INET, serverName.c_str(), &ignored4) == 1 ||
                    inet_pton(AF_INET6, serverName.c_str(), &ignored) == 1;
  if (!isIp) SSL_set_tlsext_host_name(ssl_.get(), serverName.c_str());
  if (!caFile.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    const int ok = isIp ? X509_VERIFY_PARAM_set1_ip_asc(param, serverName.c_str())
                        : X509_VERIFY_PARAM_set1_host(param, serverName.c_str(), serverName.size());
    if (ok != 1) throw std::runtime_error("cannot set the TLS name to check: " + serverName);
  }

  const long long deadline = nowMs() + timeoutMs_;
  for (;;) {
    const int result = SSL_connect(ssl_.get());
    if (result == 1) return;
    const int error = SSL_get_error(ssl_.get(), result);
    short waitFor = 0;
    if (error == SSL_ERROR_WANT_READ) {
      waitFor = POLLIN;
    } else if (error == SSL_ERROR_WANT_WRITE) {
      waitFor = POLLOUT;
    } else {
      const long verify = SSL_get_verify_result(ssl_.get());
      std::string reason = drainSslErrors();
      if (verify != X509_V_OK) {
        reason += "; certificate verification: ";
        reason += X509_verify_cert_error_string(verify);
      }
      ssl_.reset();
      throw std::runtime_error("TLS handshake with port " + std::to_string(port_) +
                               " failed: " + reason);
    }
    const long long remaining = deadline - nowMs();
    if (remaining <= 0) {
      ssl_.reset();
      throw std::runtime_error("TLS handshake with port " + std::to_string(port_) +
                               " timed out after " + std::to_string(timeoutMs_) + " ms");
    }
    pollfd pfd{fd_, waitFor, 0};
    poll(&pfd, 1, static_cast<int>(remaining));
  }
}

std::string TestConnection::tlsVersion() const {
  return ssl_ ? SSL_get_version(ssl_.get()) : std::string();
}

// ---------------------------------------------------------------------------------------------
// Pop3TestClient

Pop3TestClient::Pop3TestClient(std::uint16_t port, bool implicitTls, const std::string& caFile,
                               const std::string& sourceIp)
    : connection_(port, kDefaultTimeoutMs, sourceIp) {
  if (implicitTls) connection_.startTls(caFile);
  greeting_ = stripLineEnd(connection_.readLine("the POP3 greeting"));
}

std::string Pop3TestClient::command(std::string_view line) {
  lastVerb_ = verbOf(line);
  connection_.sendAll(std::string(line) + "\r\n");
  return stripLineEnd(connection_.readLine("the reply to " + lastVerb_));
}

std::string Pop3TestClient::multiLine(std::string_view line, std::string* statusLine) {
  const std::string status = command(line);
  if (statusLine != nullptr) *statusLine = status;
  if (status.rfind("+OK", 0) != 0) {
    throw std::runtime_error("POP3 " + lastVerb_ + " failed: " + status);
  }
  return readMultiLineBody();
}

std::string Pop3TestClient::readMultiLineBody() {
  const std::string expecting = "the multi-line body of " + (lastVerb_.empty() ? "?" : lastVerb_);
  std::string body;
  for (;;) {
    std::string line = connection_.readLine(expecting);
    if (line == ".\r\n") return body;
    if (!line.empty() && line[0] == '.') line.erase(0, 1);
    body += line;
  }
}

std::string Pop3TestClient::readLine() {
  return stripLineEnd(connection_.readLine("a POP3 line after " + lastVerb_));
}

void Pop3TestClient::sendRaw(std::string_view bytes) {
  lastVerb_ = "raw bytes";
  connection_.sendAll(bytes);
}

void Pop3TestClient::startTls(const std::string& caFile) {
  connection_.startTls(caFile);
}

bool Pop3TestClient::closedByPeer(int timeoutMs) {
  return connection_.closedByPeer(timeoutMs);
}

void Pop3TestClient::close() {
  connection_.close();
}

// ---------------------------------------------------------------------------------------------
// ImapTestClient

std::string imapQuote(std::string_view text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '\r' || c == '\n' || c == '\0') {
      throw std::invalid_argument("imapQuote: CR, LF and NUL need a literal");
    }
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string ImapTestClient::Response::raw() const {
  std::string text = segments.front();
  for (std::size_t i = 0; i < literals.size(); ++i) {
    text += "\r\n";
    text += literals[i];
    text += segments[i + 1];
  }
  return text;
}

ImapTestClient::ImapTestClient(std::uint16_t port, bool implicitTls, const std::string& caFile)
    : connection_(port) {
  if (implicitTls) connection_.startTls(caFile);
  greeting_ = stripLineEnd(connection_.readLine("the IMAP greeting"));
  if (greeting_.rfind("* OK", 0) != 0 && greeting_.rfind("* PREAUTH", 0) != 0) {
    throw std::runtime_error("unexpected IMAP greeting on port " + std::to_string(port) + ": " +
                             greeting_);
  }
}

std::string ImapTestClient::nextTag() {
  return "t" + std::to_string(++tagCounter_);
}

ImapTestClient::Response ImapTestClient::readResponse(std::string_view expecting) {
  static const std::regex literalAtEnd(R"(~?\{(\d+)\}$)");
  Response response;
  std::string segment = stripLineEnd(connection_.readLine(expecting));
  for (;;) {
    std::smatch match;
    if (!std::regex_search(segment, match, literalAtEnd)) break;
    const auto count = parseNumber(match[1].str(), "an IMAP literal length");
    response.segments.push_back(segment);
    response.literals.push_back(connection_.readExact(count, expecting));
    segment = stripLineEnd(connection_.readLine(expecting));
  }
  response.segments.push_back(segment);
  return response;
}

std::vector<ImapTestClient::Response> ImapTestClient::run(std::string_view commandWithoutTag,
                                                          std::string_view description,
                                                          bool allowNo) {
  const std::string tag = nextTag();
  connection_.sendAll(tag + " " + std::string(commandWithoutTag) + "\r\n");
  const std::string expecting = "the reply to IMAP " + std::string(description);
  std::vector<Response> responses;
  for (;;) {
    responses.push_back(readResponse(expecting));
    const std::string& first = responses.back().segments.front();
    if (first.rfind(tag + " ", 0) != 0) continue;
    const std::string status =
        first.substr(tag.size() + 1, first.find(' ', tag.size() + 1) - (tag.size() + 1));
    if (status == "OK" || (allowNo && status == "NO")) return responses;
    throw std::runtime_error("IMAP " + std::string(description) + " failed: " + first);
  }
}

std::vector<std::string> ImapTestClient::command(std::string_view commandWithoutTag) {
  std::vector<std::string> lines;
  for (const auto& response : run(commandWithoutTag, verbOf(commandWithoutTag))) {
    lines.push_back(response.raw());
  }
  return lines;
}

std::vector<std::string> ImapTestClient::capabilities() {
  std::vector<std::string> caps;
  for (const auto& response : run("CAPABILITY", "CAPABILITY")) {
    const std::string& line = response.segments.front();
    if (line.rfind("* CAPABILITY ", 0) != 0) continue;
    std::size_t pos = std::string("* CAPABILITY ").size();
    while (pos < line.size()) {
      const auto end = std::min(line.find(' ', pos), line.size());
      if (end > pos) caps.push_back(line.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  return caps;
}

void ImapTestClient::startTls(const std::string& caFile) {
  run("STARTTLS", "STARTTLS");
  connection_.startTls(caFile);
}

void ImapTestClient::login(std::string_view user, std::string_view password) {
  run("LOGIN " + imapQuote(user) + " " + imapQuote(password),
      "LOGIN (for " + std::string(user) + ")");
}

ImapTestClient::SelectInfo ImapTestClient::select(std::string_view mailbox) {
  static const std::regex exists(R"(^\* (\d+) EXISTS$)");
  static const std::regex validity(R"(\[UIDVALIDITY (\d+)\])");
  static const std::regex next(R"(\[UIDNEXT (\d+)\])");
  SelectInfo info;
  for (const auto& response : run("SELECT " + imapQuote(mailbox), "SELECT")) {
    const std::string& line = response.segments.front();
    std::smatch match;
    if (std::regex_search(line, match, exists)) {
      info.exists = static_cast<std::uint32_t>(parseNumber(match[1].str(), line));
    } else if (std::regex_search(line, match, validity)) {
      info.uidValidity = static_cast<std::uint32_t>(parseNumber(match[1].str(), line));
    } else if (std::regex_search(line, match, next)) {
      info.uidNext = static_cast<std::uint32_t>(parseNumber(match[1].str(), line));
    }
  }
  return info;
}

std::vector<std::uint32_t> ImapTestClient::uids(std::string_view criteria) {
  std::vector<std::uint32_t> result;
  for (const auto& response : run("UID SEARCH " + std::string(criteria), "UID SEARCH")) {
    const std::string& line = response.segments.front();
    if (line.rfind("* SEARCH", 0) != 0) continue;
    std::size_t pos = std::string("* SEARCH").size();
    while (pos < line.size()) {
      if (line[pos] == ' ') {
        ++pos;
        continue;
      }
      const auto end = std::min(line.find(' ', pos), line.size());
      result.push_back(
          static_cast<std::uint32_t>(parseNumber(line.substr(pos, end - pos), "UID SEARCH")));
      pos = end;
    }
  }
  return result;
}

namespace {

// True when an untagged FETCH response is about `uid` (other FETCHes may arrive unsolicited).
bool isFetchOfUid(const std::string& text, std::uint32_t uid) {
  static const std::regex fetchUid(R"(^\* \d+ FETCH \(.*\bUID (\d+)\b)");
  std::smatch match;
  return std::regex_search(text, match, fetchUid) && match[1].str() == std::to_string(uid);
}

std::string joinedText(const std::vector<std::string>& segments) {
  std::string text;
  for (const auto& segment : segments) text += segment;
  return text;
}

}  // namespace

std::string ImapTestClient::body(std::uint32_t uid) {
  static const std::regex bodyLiteral(R"(BODY\[\] ~?\{\d+\}$)");
  const auto responses =
      run("UID FETCH " + std::to_string(uid) + " (BODY.PEEK[])", "UID FETCH BODY.PEEK[]");
  for (const auto& response : responses) {
    if (!isFetchOfUid(joinedText(response.segments), uid)) continue;
    for (std::size_t i = 0; i < response.literals.size(); ++i) {
      if (std::regex_search(response.segments[i], bodyLiteral)) return response.literals[i];
    }
  }
  throw std::runtime_error("no BODY[] for UID " + std::to_string(uid) + " in the FETCH reply");
}

std::uint64_t ImapTestClient::size(std::uint32_t uid) {
  static const std::regex sizeItem(R"(RFC822\.SIZE (\d+))");
  for (const auto& response :
       run("UID FETCH " + std::to_string(uid) + " (RFC822.SIZE)", "UID FETCH RFC822.SIZE")) {
    const std::string& line = response.segments.front();
    std::smatch match;
    if (isFetchOfUid(line, uid) && std::regex_search(line, match, sizeItem)) {
      return parseNumber(match[1].str(), line);
    }
  }
  throw std::runtime_error("no RFC822.SIZE for UID " + std::to_string(uid) + " in the FETCH reply");
}

std::vector<std::string> ImapTestClient::flags(std::uint32_t uid) {
  static const std::regex flagsItem(R"(FLAGS \(([^)]*)\))");
  for (const auto& response :
       run("UID FETCH " + std::to_string(uid) + " (FLAGS)", "UID FETCH FLAGS")) {
    const std::string& line = response.segments.front();
    std::smatch match;
    if (!isFetchOfUid(line, uid) || !std::regex_search(line, match, flagsItem)) continue;
    std::vector<std::string> result;
    const std::string list = match[1].str();
    std::size_t pos = 0;
    while (pos < list.size()) {
      const auto end = std::min(list.find(' ', pos), list.size());
      if (end > pos) result.push_back(list.substr(pos, end - pos));
      pos = end + 1;
    }
    return result;
  }
  throw std::runtime_error("no FLAGS for UID " + std::to_string(uid) + " in the FETCH reply");
}

void ImapTestClient::store(std::uint32_t uid, std::string_view flagOp) {
  run("UID STORE " + std::to_string(uid) + " " + std::string(flagOp), "UID STORE");
}

void ImapTestClient::expunge() {
  run("EXPUNGE", "EXPUNGE");
}

void ImapTestClient::create(std::string_view mailbox) {
  const auto responses = run("CREATE " + imapQuote(mailbox), "CREATE", /*allowNo=*/true);
  const std::string& tagged = responses.back().segments.front();
  if (tagged.find(" NO ") != std::string::npos &&
      tagged.find("[ALREADYEXISTS]") == std::string::npos) {
    throw std::runtime_error("IMAP CREATE failed: " + tagged);
  }
}

std::uint32_t ImapTestClient::append(std::string_view mailbox, std::string_view bytes,
                                     std::string_view flags) {
  static const std::regex appendUid(R"(\[APPENDUID \d+ (\d+)\])");
  const std::string tag = nextTag();
  std::string line = tag + " APPEND " + imapQuote(mailbox);
  if (!flags.empty()) line += " (" + std::string(flags) + ")";
  line += " {" + std::to_string(bytes.size()) + "}\r\n";
  connection_.sendAll(line);
  for (;;) {
    const std::string reply = stripLineEnd(connection_.readLine("the APPEND continuation"));
    if (reply.rfind("+", 0) == 0) break;
    if (reply.rfind(tag + " ", 0) == 0) throw std::runtime_error("IMAP APPEND refused: " + reply);
  }
  connection_.sendAll(bytes);
  connection_.sendAll("\r\n");
  for (;;) {
    const Response response = readResponse("the reply to IMAP APPEND");
    const std::string& first = response.segments.front();
    if (first.rfind(tag + " ", 0) != 0) continue;
    if (first.rfind(tag + " OK", 0) != 0) throw std::runtime_error("IMAP APPEND failed: " + first);
    std::smatch match;
    if (!std::regex_search(first, match, appendUid)) {
      throw std::runtime_error("IMAP APPEND reply has no APPENDUID: " + first);
    }
    return static_cast<std::uint32_t>(parseNumber(match[1].str(), first));
  }
}

void ImapTestClient::logout() {
  run("LOGOUT", "LOGOUT");
  connection_.close();
}

}  // namespace popbridge::test
