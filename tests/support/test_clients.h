#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

// Small blocking clients for tests. Every wait is bounded by poll() (30 s unless set otherwise),
// and every failure throws std::runtime_error saying what was expected and what arrived instead,
// so a hung or misbehaving server fails a test instead of hanging it. Passwords never appear in
// error messages: only the verb of the last command is quoted.

struct ssl_st;
struct ssl_ctx_st;

namespace popbridge::test {

inline constexpr int kDefaultTimeoutMs = 30000;

// A port on 127.0.0.1 that was free a moment ago (the kernel's choice for bind(0)). Another
// process may take it before the caller binds, so callers that can retry should.
std::uint16_t freeLoopbackPort();

// A TCP connection to 127.0.0.1 that can switch to TLS (BoringSSL) and reads lines or exact byte
// counts through one buffer, so large bodies are read without quadratic copying.
class TestConnection {
 public:
  // A sourceIp such as "127.0.0.2" binds the local end first (Linux takes any 127/8 source), so
  // the peer sees another client address.
  explicit TestConnection(std::uint16_t port, int timeoutMs = kDefaultTimeoutMs,
                          const std::string& sourceIp = "");
  ~TestConnection();
  TestConnection(const TestConnection&) = delete;
  TestConnection& operator=(const TestConnection&) = delete;
  TestConnection(TestConnection&& other) noexcept;
  TestConnection& operator=(TestConnection&& other) noexcept;

  std::uint16_t port() const { return port_; }
  void setTimeout(int timeoutMs) { timeoutMs_ = timeoutMs; }
  int timeout() const { return timeoutMs_; }

  // Runs a TLS handshake on the connection. With a CA file the chain and the name `serverName` are
  // verified and a failure throws with the reason; with an empty CA file anything is accepted.
  // Throws if unread plaintext is buffered, since that is data the peer sent before the switch.
  void startTls(const std::string& caFile, const std::string& serverName = "localhost");
  bool tlsActive() const { return ssl_ != nullptr; }
  std::string tlsVersion() const;  // e.g. "TLSv1.3"; empty without TLS

  void sendAll(std::string_view bytes);
  // One line including its line end (LF or CRLF, whichever the peer sent). `expecting` names what
  // the caller waits for, for the error message.
  std::string readLine(std::string_view expecting);
  std::string readExact(std::size_t count, std::string_view expecting);
  // True when EOF or a reset arrives within the timeout; data that arrives first is kept in the
  // buffer. False when the connection is still open at the deadline.
  bool closedByPeer(int timeoutMs);
  std::size_t bufferedBytes() const { return buffer_.size() - bufferPos_; }
  void close();

 private:
  struct SslDeleter {
    void operator()(ssl_st* ssl) const;
  };
  struct SslCtxDeleter {
    void operator()(ssl_ctx_st* ctx) const;
  };
  enum class Fill { kData, kEof, kTimeout };

  Fill fill(long long deadlineMs);
  [[noreturn]] void fail(std::string_view what, std::string_view expecting) const;
  void compactBuffer();

  std::uint16_t port_;
  int timeoutMs_;
  int fd_ = -1;
  std::unique_ptr<ssl_ctx_st, SslCtxDeleter> sslCtx_;
  std::unique_ptr<ssl_st, SslDeleter> ssl_;
  std::string buffer_;
  std::size_t bufferPos_ = 0;
  bool eof_ = false;
};

class Pop3TestClient {
 public:
  // Connects to 127.0.0.1:port and reads the greeting. With implicitTls the handshake comes first
  // (verified against caFile when it is not empty).
  Pop3TestClient(std::uint16_t port, bool implicitTls = false, const std::string& caFile = "",
                 const std::string& sourceIp = "");

  std::string greeting() const { return greeting_; }
  // Sends line + CRLF and returns the status line without its line end.
  std::string command(std::string_view line);
  // Sends line + CRLF, requires +OK, and returns the unstuffed body with the line ends as sent
  // (the terminating ".\r\n" removed). Throws when the status is not +OK.
  std::string multiLine(std::string_view line, std::string* statusLine = nullptr);
  // Reads a multi-line body whose status line was already read (for pipelining tests).
  std::string readMultiLineBody();
  // One line without its line end.
  std::string readLine();
  void sendRaw(std::string_view bytes);
  // After "+OK" to STLS: runs the handshake, verifying against caFile when it is not empty.
  void startTls(const std::string& caFile);
  bool closedByPeer(int timeoutMs = 5000);
  void close();

  void setTimeout(int timeoutMs) { connection_.setTimeout(timeoutMs); }
  TestConnection& connection() { return connection_; }

 private:
  TestConnection connection_;
  std::string greeting_;
  std::string lastVerb_;
};

// Checks results on the IMAP side. Plain IMAP on loopback unless implicitTls is set.
class ImapTestClient {
 public:
  explicit ImapTestClient(std::uint16_t port, bool implicitTls = false,
                          const std::string& caFile = "");

  std::string greeting() const { return greeting_; }
  // The CAPABILITY command's list, e.g. {"IMAP4rev1", "UIDPLUS", ...}.
  std::vector<std::string> capabilities();
  // STARTTLS, then the handshake (verified against caFile when it is not empty).
  void startTls(const std::string& caFile);

  void login(std::string_view user, std::string_view password);
  struct SelectInfo {
    std::uint32_t exists = 0;
    std::uint32_t uidValidity = 0;
    std::uint32_t uidNext = 0;
  };
  SelectInfo select(std::string_view mailbox = "INBOX");
  // UID SEARCH <criteria> (verbatim, e.g. "DELETED"), in the order the server lists them.
  std::vector<std::uint32_t> uids(std::string_view criteria = "ALL");
  std::string body(std::uint32_t uid);    // UID FETCH BODY.PEEK[], exact bytes
  std::uint64_t size(std::uint32_t uid);  // RFC822.SIZE
  std::vector<std::string> flags(std::uint32_t uid);
  void store(std::uint32_t uid, std::string_view flagOp);  // e.g. "+FLAGS (\\Deleted)"
  void expunge();
  void create(std::string_view mailbox);  // throws unless OK or [ALREADYEXISTS]
  // APPEND with a synchronizing literal; returns the UID from APPENDUID. `flags` is a
  // space-separated list such as "\\Seen \\Flagged" (may be empty).
  std::uint32_t append(std::string_view mailbox, std::string_view bytes,
                       std::string_view flags = "");
  // Raw responses up to and including the tagged one, without the final CRLF; a literal stays
  // inside its response as "{N}\r\n<bytes>". Throws on NO/BAD.
  std::vector<std::string> command(std::string_view commandWithoutTag);
  void logout();

  void setTimeout(int timeoutMs) { connection_.setTimeout(timeoutMs); }
  TestConnection& connection() { return connection_; }

 private:
  struct Response {
    std::vector<std::string> segments;  // text around the literals; one more than literals
    std::vector<std::string> literals;
    std::string raw() const;
  };
  std::vector<Response> run(std::string_view commandWithoutTag, std::string_view description,
                            bool allowNo = false);
  Response readResponse(std::string_view expecting);
  std::string nextTag();

  TestConnection connection_;
  std::string greeting_;
  unsigned tagCounter_ = 0;
};

// IMAP quoted string; throws for CR, LF or NUL, which need a literal.
std::string imapQuote(std::string_view text);

}  // namespace popbridge::test
