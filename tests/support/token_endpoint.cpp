#include "tests/support/token_endpoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/base64.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <utility>

namespace popbridge::test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr auto kIoTimeout = std::chrono::seconds(30);
constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
constexpr std::size_t kMaxBodyBytes = 1024 * 1024;
constexpr auto kPollSlack = std::chrono::milliseconds(25);
constexpr std::string_view kDeviceGrant = "urn:ietf:params:oauth:grant-type:device_code";

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

std::string sslErrorText() {
  char text[256] = "unknown error";
  if (const unsigned long code = ERR_get_error(); code != 0) {
    ERR_error_string_n(code, text, sizeof text);
  }
  return text;
}

std::string randomBytes(std::size_t count) {
  std::string bytes(count, '\0');
  RAND_bytes(reinterpret_cast<std::uint8_t*>(bytes.data()), count);
  return bytes;
}

std::string randomToken(std::string_view prefix) {
  return std::string(prefix) + base64UrlEncode(randomBytes(24));
}

// RFC 8628 6.1 suggests user codes from a consonant alphabet so they read unambiguously.
std::string randomUserCode() {
  static constexpr std::string_view kLetters = "BCDFGHJKLMNPQRSTVWXZ";
  const std::string bytes = randomBytes(8);
  std::string code;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4) code += '-';
    code += kLetters[static_cast<unsigned char>(bytes[i]) % kLetters.size()];
  }
  return code;
}

std::string jsonQuote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

// A flat JSON object written member by member, in the order added.
class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value) {
    return raw(key, jsonQuote(value));
  }
  JsonObject& add(std::string_view key, long long value) { return raw(key, std::to_string(value)); }
  JsonObject& addBool(std::string_view key, bool value) {
    return raw(key, value ? "true" : "false");
  }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  JsonObject& raw(std::string_view key, const std::string& value) {
    if (!body_.empty()) body_ += ',';
    body_ += jsonQuote(key) + ":" + value;
    return *this;
  }
  std::string body_;
};

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded (HTML's rules: '+' is a space, %XX a byte). Returns false for
// a malformed escape or a repeated name, which RFC 6749 3.1 forbids.
bool decodeForm(std::string_view body, std::map<std::string, std::string>& form) {
  auto decode = [](std::string_view text, std::string& out) {
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '+') {
        out += ' ';
      } else if (text[i] == '%') {
        if (i + 2 >= text.size()) return false;
        const int high = hexValue(text[i + 1]);
        const int low = hexValue(text[i + 2]);
        if (high < 0 || low < 0) return false;
        out += static_cast<char>(high * 16 + low);
        i += 2;
      } else {
        out += text[i];
      }
    }
    return true;
  };
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t end = body.find('&', start);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view pair = body.substr(start, end - start);
    if (!pair.empty()) {
      const std::size_t equals = pair.find('=');
      std::string name;
      std::string value;
      if (!decode(pair.substr(0, equals), name)) return false;
      if (equals != std::string_view::npos && !decode(pair.substr(equals + 1), value)) return false;
      if (!form.emplace(std::move(name), std::move(value)).second) return false;
    }
    start = end + 1;
  }
  return true;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return std::string(text.substr(first, last - first + 1));
}

std::string base64Decode(std::string_view text) {
  std::size_t length = 0;
  if (!EVP_DecodedLength(&length, text.size())) return {};
  std::string out(length, '\0');
  if (!EVP_DecodeBase64(reinterpret_cast<std::uint8_t*>(out.data()), &length, out.size(),
                        reinterpret_cast<const std::uint8_t*>(text.data()), text.size())) {
    return {};
  }
  out.resize(length);
  return out;
}

std::string base64UrlDecode(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (standard.size() % 4 != 0) standard += '=';
  return base64Decode(standard);
}

// Dovecot's dict keys escape '/' (and '%') so a name stays one path component.
std::string dictEscape(std::string_view name) {
  std::string out;
  for (const char c : name) {
    if (c == '/') {
      out += "%2f";
    } else if (c == '%') {
      out += "%25";
    } else {
      out += c;
    }
  }
  return out;
}

// The value of "key":<number> or "key":"string" in a flat JSON text this file wrote itself.
std::string flatJsonValue(const std::string& json, const std::string& key) {
  const std::string needle = jsonQuote(key) + ":";
  auto at = json.find(needle);
  if (at == std::string::npos) return {};
  at += needle.size();
  if (at < json.size() && json[at] == '"') {
    const auto end = json.find('"', at + 1);
    return end == std::string::npos ? std::string() : json.substr(at + 1, end - at - 1);
  }
  const auto end = json.find_first_of(",}", at);
  return json.substr(at, end - at);
}

long long unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* reason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    default:
      return "Status";
  }
}

// Closes a descriptor on every path out of serve().
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;

 private:
  int fd_;
};

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

}  // namespace

std::string base64Encode(std::string_view bytes) {
  std::size_t length = 0;
  EVP_EncodedLength(&length, bytes.size());
  std::string out(length, '\0');
  const std::size_t written =
      EVP_EncodeBlock(reinterpret_cast<std::uint8_t*>(out.data()),
                      reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  out.resize(written);
  return out;
}

std::string base64UrlEncode(std::string_view bytes) {
  std::string out = base64Encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string makeHs256Jwt(std::string_view headerJson, std::string_view claimsJson,
                         std::string_view secret) {
  const std::string signingInput = base64UrlEncode(headerJson) + "." + base64UrlEncode(claimsJson);
  std::uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned macLength = 0;
  if (HMAC(EVP_sha256(), secret.data(), secret.size(),
           reinterpret_cast<const std::uint8_t*>(signingInput.data()), signingInput.size(), mac,
           &macLength) == nullptr) {
    throw std::runtime_error("HMAC-SHA256 failed: " + sslErrorText());
  }
  return signingInput + "." +
         base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac), macLength));
}

void TokenEndpoint::SslCtxDeleter::operator()(ssl_ctx_st* ctx) const {
  SSL_CTX_free(ctx);
}

TokenEndpoint::TokenEndpoint(Options options) : options_(std::move(options)) {
  // A client that closes before its answer must not kill the test process through a write.
  std::signal(SIGPIPE, SIG_IGN);
  if (options_.jwtSecret.empty()) options_.jwtSecret = randomBytes(32);
  secrets_.push_back(options_.jwtSecret);
  try {
    if (options_.dir.empty()) {
      std::string pattern = "/tmp/popbridge-token-endpoint-XXXXXX";
      if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(errnoText("mkdtemp"));
      ownedDir_ = pattern;
      options_.dir = pattern;
    }
    pki_ = makeTestPki(options_.dir + "/token-endpoint-pki");

    sslCtx_.reset(SSL_CTX_new(TLS_server_method()));
    if (!sslCtx_ ||
        SSL_CTX_use_certificate_chain_file(sslCtx_.get(), pki_.serverCert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(sslCtx_.get(), pki_.serverKey.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("TokenEndpoint: TLS setup failed: " + sslErrorText());
    }
    SSL_CTX_set_min_proto_version(sslCtx_.get(), TLS1_2_VERSION);

    listenFd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listenFd_ < 0) throw std::runtime_error(errnoText("TokenEndpoint: socket"));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listenFd_, 64) != 0 ||
        getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      throw std::runtime_error(errnoText("TokenEndpoint: listen on 127.0.0.1"));
    }
    port_ = ntohs(addr.sin_port);
    stopFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stopFd_ < 0) throw std::runtime_error(errnoText("TokenEndpoint: eventfd"));
    acceptThread_ = std::thread([this] { acceptLoop(); });
  } catch (...) {
    if (listenFd_ >= 0) ::close(listenFd_);
    if (stopFd_ >= 0) ::close(stopFd_);
    if (!ownedDir_.empty()) {
      std::error_code ignored;
      fs::remove_all(ownedDir_, ignored);
    }
    throw;
  }
}

TokenEndpoint::~TokenEndpoint() {
  // The eventfd stays readable from here on, so every poll() in every thread returns.
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = write(stopFd_, &one, sizeof one);
  acceptThread_.join();
  std::vector<Worker> workers;
  {
    std::lock_guard lock(mutex_);
    workers.swap(workers_);
  }
  for (auto& worker : workers) worker.thread.join();
  ::close(listenFd_);
  ::close(stopFd_);
  if (!ownedDir_.empty()) {
    std::error_code ignored;
    fs::remove_all(ownedDir_, ignored);
  }
}

std::string TokenEndpoint::url(std::string_view path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

bool TokenEndpoint::waitReady(int fd, short events, Clock::time_point deadline) const {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd fds[2] = {{fd, events, 0}, {stopFd_, POLLIN, 0}};
    const int ready = poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || fds[1].revents != 0) return false;
    if (fds[0].revents != 0) return true;
  }
}

bool TokenEndpoint::sleepUnlessStopped(std::chrono::milliseconds delay) const {
  if (delay.count() <= 0) return true;
  pollfd stop = {stopFd_, POLLIN, 0};
  const auto deadline = Clock::now() + delay;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return true;
    const int ready = poll(&stop, 1, static_cast<int>(left.count()));
    if (ready > 0) return false;
  }
}

void TokenEndpoint::acceptLoop() {
  for (;;) {
    if (!waitReady(listenFd_, POLLIN, Clock::now() + std::chrono::hours(24 * 365))) return;
    const int fd = accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    auto done = std::make_shared<bool>(false);
    std::lock_guard lock(mutex_);
    // Threads of finished connections are joined here so a long test does not pile them up.
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (*it->done) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    workers_.push_back(Worker{std::thread([this, fd, done] {
                                serve(fd);
                                std::lock_guard doneLock(mutex_);
                                *done = true;
                              }),
                              done});
  }
}

void TokenEndpoint::serve(int fd) {
  FdGuard guard(fd);
  std::unique_ptr<SSL, SslDeleter> ssl(SSL_new(sslCtx_.get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd) != 1) return;
  auto deadline = Clock::now() + kIoTimeout;

  // Runs one SSL call to completion on the non-blocking socket; <= 0 means the connection failed.
  auto drive = [&](auto&& call) -> int {
    for (;;) {
      const int result = call();
      if (result > 0) return result;
      const int error = SSL_get_error(ssl.get(), result);
      if (error == SSL_ERROR_WANT_READ) {
        if (!waitReady(fd, POLLIN, deadline)) return -1;
      } else if (error == SSL_ERROR_WANT_WRITE) {
        if (!waitReady(fd, POLLOUT, deadline)) return -1;
      } else {
        return result;
      }
    }
  };
  if (drive([&] { return SSL_accept(ssl.get()); }) <= 0) return;

  std::string buffer;
  auto readMore = [&]() -> bool {
    char chunk[16384];
    const int n = drive([&] { return SSL_read(ssl.get(), chunk, sizeof chunk); });
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
    return true;
  };
  auto writeAll = [&](const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const int n = drive([&] {
        return SSL_write(ssl.get(), bytes.data() + sent, static_cast<int>(bytes.size() - sent));
      });
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  };
  auto answer = [&](const Response& response) {
    std::string head = "HTTP/1.1 " + std::to_string(response.status) + " " +
                       reason(response.status) + "\r\nContent-Type: " + response.contentType +
                       "\r\nContent-Length: " + std::to_string(response.body.size()) +
                       "\r\nCache-Control: no-store\r\nPragma: no-cache\r\nConnection: close\r\n" +
                       response.extraHeaders + "\r\n";
    if (writeAll(head + response.body)) SSL_shutdown(ssl.get());
  };
  auto refuse = [&](int status, std::string_view description) {
    answer(Response{
        status,
        JsonObject().add("error", "invalid_request").add("error_description", description).str()});
  };

  // The head: request line and header fields up to the empty line.
  std::size_t headEnd = std::string::npos;
  while ((headEnd = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > kMaxHeaderBytes) return refuse(413, "header too large");
    if (!readMore()) return;
  }
  const std::string head = buffer.substr(0, headEnd);
  buffer.erase(0, headEnd + 4);

  Request request;
  std::map<std::string, std::string> headers;  // lower-case names
  {
    const auto lineEnd = head.find("\r\n");
    const std::string requestLine = head.substr(0, lineEnd);
    const auto firstSpace = requestLine.find(' ');
    const auto secondSpace = requestLine.find(' ', firstSpace + 1);
    if (firstSpace == std::string::npos || secondSpace == std::string::npos ||
        requestLine.compare(secondSpace + 1, 5, "HTTP/") != 0) {
      return refuse(400, "malformed request line");
    }
    request.method = requestLine.substr(0, firstSpace);
    const std::string target = requestLine.substr(firstSpace + 1, secondSpace - firstSpace - 1);
    request.path = target.substr(0, target.find('?'));
    std::size_t pos = lineEnd == std::string::npos ? head.size() : lineEnd + 2;
    while (pos < head.size()) {
      auto end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      const std::string line = head.substr(pos, end - pos);
      const auto colon = line.find(':');
      if (colon == std::string::npos || colon == 0) return refuse(400, "malformed header field");
      headers[lower(line.substr(0, colon))] = trim(std::string_view(line).substr(colon + 1));
      pos = end + 2;
    }
  }
  if (auto it = headers.find("authorization"); it != headers.end()) {
    request.authorizationHeader = it->second;
  }
  if (headers.count("transfer-encoding") != 0) {
    return answer(Response{501, JsonObject().add("error", "chunked bodies not supported").str()});
  }
  std::size_t contentLength = 0;
  if (auto it = headers.find("content-length"); it != headers.end()) {
    char* end = nullptr;
    const unsigned long long value = std::strtoull(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0') return refuse(400, "bad Content-Length");
    if (value > kMaxBodyBytes) return refuse(413, "body too large");
    contentLength = static_cast<std::size_t>(value);
  } else if (request.method == "POST") {
    return refuse(411, "Content-Length required");
  }
  if (auto it = headers.find("expect");
      it != headers.end() && lower(it->second) == "100-continue") {
    if (!writeAll("HTTP/1.1 100 Continue\r\n\r\n")) return;
  }
  while (buffer.size() < contentLength) {
    if (!readMore()) return;
  }
  const std::string body = buffer.substr(0, contentLength);
  request.at = Clock::now();

  bool formOk = true;
  if (contentLength > 0) {
    const auto type = headers.find("content-type");
    const std::string mediaType =
        type == headers.end() ? "" : lower(trim(type->second.substr(0, type->second.find(';'))));
    // A body that does not decode is logged with an empty form.
    std::map<std::string, std::string> form;
    formOk = mediaType == "application/x-www-form-urlencoded" && decodeForm(body, form);
    if (formOk) request.form = std::move(form);
  }

  Fault fault = Fault::None;
  std::chrono::milliseconds delay{0};
  {
    std::lock_guard lock(mutex_);
    log_.push_back(request);
    fault = fault_;
    delay = responseDelay_;
  }
  if (!sleepUnlessStopped(delay)) return;
  switch (fault) {
    case Fault::None:
      break;
    case Fault::Status500:
      return answer(Response{500, JsonObject().add("error", "server_error").str()});
    case Fault::CloseEarly:
      // No close_notify either: what a crashed server looks like.
      return;
    case Fault::Stall:
      // Keep reading so a client that gives up and closes frees this thread; otherwise it waits
      // for the destructor.
      deadline = Clock::now() + std::chrono::hours(24);
      while (readMore()) buffer.clear();
      return;
  }
  if (!formOk) return refuse(400, "the body must be application/x-www-form-urlencoded");
  answer(route(request, headers));
}

TokenEndpoint::Response TokenEndpoint::route(const Request& request,
                                             const std::map<std::string, std::string>&) {
  if (request.path == "/device") {
    return Response{200, "<html><body>Enter the code shown on your device.</body></html>",
                    "text/html"};
  }
  const bool known =
      request.path == "/token" || request.path == "/devicecode" || request.path == "/introspect";
  if (!known) return Response{404, JsonObject().add("error", "not_found").str()};
  if (request.method != "POST") {
    return Response{405, JsonObject().add("error", "invalid_request").str(), "application/json",
                    "Allow: POST\r\n"};
  }
  if (request.path == "/token") return tokenGrant(request, request.form);
  if (request.path == "/devicecode") return deviceAuthorization(request.form);
  return introspect(request.form);
}

TokenEndpoint::Response TokenEndpoint::tokenGrant(const Request& request,
                                                  std::map<std::string, std::string> form) {
  auto error = [](int status, std::string_view code, std::string_view description) {
    return Response{status,
                    JsonObject().add("error", code).add("error_description", description).str()};
  };
  // HTTP Basic client authentication; its parts are form-encoded (RFC 6749 2.3.1).
  bool basic = false;
  if (lower(request.authorizationHeader.substr(0, 6)) == "basic ") {
    const std::string decoded = base64Decode(trim(request.authorizationHeader.substr(6)));
    const auto colon = decoded.find(':');
    std::map<std::string, std::string> id;
    std::map<std::string, std::string> secret;
    if (colon == std::string::npos || !decodeForm("a=" + decoded.substr(0, colon), id) ||
        !decodeForm("a=" + decoded.substr(colon + 1), secret)) {
      return error(401, "invalid_client", "malformed Basic credentials");
    }
    if (form.count("client_secret") != 0) {
      return error(400, "invalid_request", "two client authentication methods");
    }
    form["client_id"] = id["a"];
    form["client_secret"] = secret["a"];
    basic = true;
  }
  auto value = [&](const char* name) {
    const auto it = form.find(name);
    return it == form.end() ? std::string() : it->second;
  };
  const std::string grantType = value("grant_type");
  const std::string clientId = value("client_id");
  const std::string scope = value("scope");
  auto badClient = [&] {
    Response response = error(401, "invalid_client", "client authentication failed");
    if (basic) response.extraHeaders = "WWW-Authenticate: Basic realm=\"token\"\r\n";
    return response;
  };

  std::lock_guard lock(mutex_);
  if (grantType.empty()) return error(400, "invalid_request", "grant_type is missing");
  const bool known = grantType == "refresh_token" || grantType == "client_credentials" ||
                     grantType == kDeviceGrant;
  if (!known) return error(400, "unsupported_grant_type", "unsupported grant_type");
  if (clientId.empty()) return error(400, "invalid_request", "client_id is missing");
  const auto client = clients_.find(clientId);
  if (client != clients_.end() && client->second.secret != value("client_secret")) {
    return badClient();
  }

  if (grantType == "client_credentials") {
    if (client == clients_.end()) return badClient();
    return tokenResponseLocked(client->second.sub, "", scope);
  }

  if (grantType == "refresh_token") {
    const std::string token = value("refresh_token");
    if (token.empty()) return error(400, "invalid_request", "refresh_token is missing");
    const auto it = refreshTokens_.find(token);
    if (it == refreshTokens_.end()) return error(400, "invalid_grant", "unknown refresh token");
    if (it->second.revoked) return error(400, "invalid_grant", "the refresh token was revoked");
    const std::string sub = it->second.sub;
    std::string rotated;
    if (rotate_) {
      it->second.revoked = true;
      rotated = newRefreshTokenLocked(sub);
    }
    return tokenResponseLocked(sub, rotated, scope);
  }

  // The device code grant.
  const std::string code = value("device_code");
  if (code.empty()) return error(400, "invalid_request", "device_code is missing");
  const auto device = deviceCodes_.find(code);
  if (device == deviceCodes_.end() || device->second.clientId != clientId) {
    return error(400, "invalid_grant", "unknown device code");
  }
  DeviceCode& state = device->second;
  DevicePoll poll;
  poll.deviceCode = code;
  poll.at = request.at;
  poll.gap = std::chrono::duration_cast<std::chrono::milliseconds>(request.at - state.lastPoll);
  poll.requiredGap = std::chrono::duration_cast<std::chrono::milliseconds>(
      options_.deviceInterval + options_.slowDownIncrement * static_cast<long>(state.slowDowns));
  poll.early = poll.gap + kPollSlack < poll.requiredGap;
  const std::vector<std::string> plan =
      devicePlan_.empty() ? std::vector<std::string>{"authorization_pending"} : devicePlan_;
  poll.answer = plan[std::min(state.polls, plan.size() - 1)];
  ++state.polls;
  state.lastPoll = request.at;
  if (poll.answer == "slow_down") ++state.slowDowns;
  devicePolls_.push_back(poll);
  if (poll.answer != "ok") {
    return Response{400, JsonObject().add("error", poll.answer).str()};
  }
  return tokenResponseLocked(deviceSub_, newRefreshTokenLocked(deviceSub_),
                             scope.empty() ? state.scope : scope);
}

TokenEndpoint::Response TokenEndpoint::deviceAuthorization(
    const std::map<std::string, std::string>& form) {
  const auto clientId = form.find("client_id");
  if (clientId == form.end() || clientId->second.empty()) {
    return Response{400, JsonObject()
                             .add("error", "invalid_request")
                             .add("error_description", "client_id is missing")
                             .str()};
  }
  const auto scope = form.find("scope");
  std::lock_guard lock(mutex_);
  const std::string code = randomToken("dc.");
  secrets_.push_back(code);
  const auto now = Clock::now();
  deviceCodes_[code] =
      DeviceCode{clientId->second, scope == form.end() ? "" : scope->second, now, now, 0, 0};
  return Response{200, JsonObject()
                           .add("device_code", code)
                           .add("user_code", randomUserCode())
                           .add("verification_uri", url("/device"))
                           .add("expires_in", options_.deviceCodeLifetime.count())
                           .add("interval", options_.deviceInterval.count())
                           .str()};
}

TokenEndpoint::Response TokenEndpoint::introspect(const std::map<std::string, std::string>& form) {
  const Response inactive{200, JsonObject().addBool("active", false).str()};
  const auto token = form.find("token");
  if (token == form.end()) return inactive;
  const std::string& jwt = token->second;
  const auto lastDot = jwt.rfind('.');
  const auto firstDot = jwt.find('.');
  if (firstDot == std::string::npos || lastDot == firstDot) return inactive;
  const std::string signingInput = jwt.substr(0, lastDot);
  // Re-signing the header and claims as received must give the same token.
  const std::string header = base64UrlDecode(jwt.substr(0, firstDot));
  const std::string claims = base64UrlDecode(jwt.substr(firstDot + 1, lastDot - firstDot - 1));
  if (makeHs256Jwt(header, claims, options_.jwtSecret) != jwt) return inactive;
  const std::string exp = flatJsonValue(claims, "exp");
  if (exp.empty() || std::atoll(exp.c_str()) <= unixNow()) return inactive;
  return Response{200, JsonObject()
                           .addBool("active", true)
                           .add("sub", flatJsonValue(claims, "sub"))
                           .add("exp", std::atoll(exp.c_str()))
                           .str()};
}

std::string TokenEndpoint::issueJwt(std::string_view sub, std::chrono::seconds lifetime) const {
  std::lock_guard lock(mutex_);
  return issueJwtLocked(sub, lifetime);
}

std::string TokenEndpoint::issueJwtLocked(std::string_view sub,
                                          std::chrono::seconds lifetime) const {
  JsonObject header;
  header.add("alg", "HS256").add("typ", "JWT");
  if (!options_.keyId.empty()) header.add("kid", options_.keyId);
  const long long now = unixNow();
  JsonObject claims;
  claims.add("sub", sub)
      .add("iat", now)
      .add("exp", now + lifetime.count())
      .add("jti", std::to_string(port_) + "-" + std::to_string(++jtiCounter_) + "-" +
                      base64UrlEncode(randomBytes(6)));
  if (!options_.azp.empty()) claims.add("azp", options_.azp);
  std::string token = makeHs256Jwt(header.str(), claims.str(), options_.jwtSecret);
  secrets_.push_back(token);
  return token;
}

std::string TokenEndpoint::newRefreshTokenLocked(const std::string& sub) {
  std::string token = randomToken("rt.");
  refreshTokens_[token] = RefreshToken{sub, false};
  currentRefresh_[sub] = token;
  secrets_.push_back(token);
  return token;
}

TokenEndpoint::Response TokenEndpoint::tokenResponseLocked(const std::string& sub,
                                                           const std::string& refreshToken,
                                                           const std::string& scope) {
  lastAccessToken_ = issueJwtLocked(sub, options_.accessTokenLifetime);
  JsonObject body;
  body.add("token_type", "Bearer")
      .add("access_token", lastAccessToken_)
      .add("expires_in", options_.accessTokenLifetime.count());
  if (!refreshToken.empty()) body.add("refresh_token", refreshToken);
  if (!scope.empty()) body.add("scope", scope);
  return Response{200, body.str()};
}

void TokenEndpoint::writeDovecotKey(const std::string& keysDir) const {
  const std::string azp = dictEscape(options_.azp.empty() ? "default" : options_.azp);
  const std::string kid = dictEscape(options_.keyId.empty() ? "default" : options_.keyId);
  const fs::path dir = fs::path(keysDir) / azp / "HS256";
  fs::create_directories(dir);
  // create_directories honours the umask; Dovecot's auth process must still traverse them.
  for (const fs::path& level : {fs::path(keysDir), fs::path(keysDir) / azp, dir}) {
    chmod(level.c_str(), 0755);
  }
  const std::string path = (dir / kid).string();
  const std::string text = base64Encode(options_.jwtSecret);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(errnoText("cannot create " + path));
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  fchmod(fd, 0644);
  ::close(fd);
  if (!ok) throw std::runtime_error(errnoText("cannot write " + path));
}

void TokenEndpoint::addRefreshToken(const std::string& token, const std::string& sub) {
  std::lock_guard lock(mutex_);
  refreshTokens_[token] = RefreshToken{sub, false};
  currentRefresh_[sub] = token;
  secrets_.push_back(token);
}

void TokenEndpoint::setRotateRefreshTokens(bool rotate) {
  std::lock_guard lock(mutex_);
  rotate_ = rotate;
}

void TokenEndpoint::revokeRefreshToken(const std::string& token) {
  std::lock_guard lock(mutex_);
  if (auto it = refreshTokens_.find(token); it != refreshTokens_.end()) it->second.revoked = true;
}

std::string TokenEndpoint::currentRefreshToken(const std::string& sub) const {
  std::lock_guard lock(mutex_);
  const auto it = currentRefresh_.find(sub);
  if (it == currentRefresh_.end()) return {};
  const auto token = refreshTokens_.find(it->second);
  return token == refreshTokens_.end() || token->second.revoked ? std::string() : it->second;
}

void TokenEndpoint::addClient(const std::string& clientId, const std::string& secret,
                              const std::string& sub) {
  std::lock_guard lock(mutex_);
  clients_[clientId] = Client{secret, sub};
  secrets_.push_back(secret);
}

void TokenEndpoint::setDevicePlan(std::vector<std::string> answers, std::string sub) {
  if (answers.empty()) throw std::invalid_argument("TokenEndpoint: the device plan is empty");
  for (const auto& answer : answers) {
    if (answer != "authorization_pending" && answer != "slow_down" && answer != "expired_token" &&
        answer != "access_denied" && answer != "ok") {
      throw std::invalid_argument("TokenEndpoint: unknown device plan answer '" + answer + "'");
    }
  }
  std::lock_guard lock(mutex_);
  devicePlan_ = std::move(answers);
  deviceSub_ = std::move(sub);
}

std::vector<TokenEndpoint::DevicePoll> TokenEndpoint::devicePolls() const {
  std::lock_guard lock(mutex_);
  return devicePolls_;
}

void TokenEndpoint::setFault(Fault fault) {
  std::lock_guard lock(mutex_);
  fault_ = fault;
}

void TokenEndpoint::setResponseDelay(std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  responseDelay_ = delay;
}

std::vector<TokenEndpoint::Request> TokenEndpoint::requests() const {
  std::lock_guard lock(mutex_);
  return log_;
}

std::size_t TokenEndpoint::count(std::string_view grantType) const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(std::count_if(log_.begin(), log_.end(), [&](const Request& r) {
    const auto it = r.form.find("grant_type");
    return r.path == "/token" && it != r.form.end() && it->second == grantType;
  }));
}

void TokenEndpoint::resetLog() {
  std::lock_guard lock(mutex_);
  log_.clear();
  devicePolls_.clear();
}

std::string TokenEndpoint::lastAccessToken() const {
  std::lock_guard lock(mutex_);
  return lastAccessToken_;
}

std::vector<std::string> TokenEndpoint::allSecrets() const {
  std::lock_guard lock(mutex_);
  return secrets_;
}

}  // namespace popbridge::test
