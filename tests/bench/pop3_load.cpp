#include "tests/bench/pop3_load.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>

#include "proxy/connector.h"
#include "proxy/stream.h"
#include "proxy/tls_context.h"
#include "proxy/uv_handle.h"

namespace popbridge::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kConnectTimeout = std::chrono::milliseconds(30000);
// A reply line longer than this is a broken server, not a slow one (RFC 1939 allows 512).
constexpr std::size_t kMaxLine = 4096;

std::optional<std::uint64_t> parseNumber(std::string_view text) {
  std::uint64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

// Splits "a b c" on single spaces into at most `max` words.
std::vector<std::string_view> words(std::string_view line, std::size_t max) {
  std::vector<std::string_view> out;
  while (!line.empty() && out.size() < max) {
    const auto space = line.find(' ');
    if (out.size() + 1 == max || space == std::string_view::npos) {
      out.push_back(line);
      break;
    }
    out.push_back(line.substr(0, space));
    line.remove_prefix(space + 1);
  }
  return out;
}

class Runner;

// One POP3 session: a straight sequence of commands, one in flight at a time.
class Session {
 public:
  Session(Runner& runner, uv_loop_t* loop, int index);
  void start();
  // Ends an unfinished session as failed (run timeout).
  void abandon(const std::string& reason);
  bool finished() const { return finished_; }

 private:
  enum class Step { kGreeting, kUser, kPass, kStat, kUidl, kList, kRetr, kTop, kQuit };
  enum class Mode { kLine, kMultiLine, kRetrBody };

  void onConnected(proxy::UvHandle<uv_tcp_t> tcp, std::string error);
  void onData(std::string_view data);
  // Returns false when the session ended (the caller must stop touching the buffer).
  bool processBuffer();
  bool onStatusLine(std::string_view line);
  bool onMultiLine(std::string_view line);
  bool onMultiLineEnd();
  // A RETR body ended: checks its size and sends the next command. False when the session ended.
  bool finishRetr();
  // TOP's reply ended: checks its shape and sends QUIT. False when the session ended.
  bool finishTop();
  // Around each TOP or RETR: the command's start time and the server's rchar (LoadOptions::ioPid).
  void measureBefore();
  void measureAfter();
  void send(std::string_view command, Step step, Mode replyMode);
  void retrNext();
  void succeed();
  void fail(const std::string& reason);
  std::string stepName() const;

  Runner& runner_;
  uv_loop_t* loop_;
  int index_;
  std::string user_;
  proxy::Connector connector_;
  std::unique_ptr<proxy::Stream> stream_;
  std::string buffer_;
  Step step_ = Step::kGreeting;
  Mode mode_ = Mode::kLine;
  bool finished_ = false;
  Clock::time_point started_;
  std::uint64_t statCount_ = 0;
  std::uint64_t uidlLines_ = 0;
  std::vector<std::uint64_t> listSizes_;
  std::size_t retrIndex_ = 0;
  std::size_t retrTotal_ = 0;
  RetrBodyCounter body_;
  Clock::time_point commandStarted_;
  long long rcharBefore_ = -1;
  std::uint64_t topLines_ = 0;      // lines of the TOP reply so far
  std::uint64_t topBodyLines_ = 0;  // of which after the blank line that ends the header
  bool topInBody_ = false;
  std::uint64_t topOctets_ = 0;
};

class Runner {
 public:
  Runner(const LoadOptions& options, uv_loop_t* loop, SSL_CTX* tls)
      : options_(options), loop_(loop), tls_(tls), timeout_(loop) {}

  LoadResult run() {
    result_.sessions = options_.sessions;
    sessions_.reserve(static_cast<std::size_t>(options_.sessions));
    started_ = Clock::now();
    timeout_.start(std::chrono::seconds(options_.timeoutSeconds), [this] {
      for (auto& session : sessions_) {
        if (!session->finished()) {
          session->abandon("run timeout after " + std::to_string(options_.timeoutSeconds) + " s");
        }
      }
    });
    const int first = std::min(options_.concurrency, options_.sessions);
    for (int i = 0; i < first; ++i) startNext();
    if (first == 0) timeout_.stop();
    uv_run(loop_, UV_RUN_DEFAULT);
    return std::move(result_);
  }

  const LoadOptions& options() const { return options_; }
  SSL_CTX* tls() const { return tls_; }

  void sessionDone(bool ok, double ms, const std::string& failure) {
    if (ok) {
      ++result_.ok;
      result_.sessionMs.push_back(ms);
    } else {
      ++result_.failed;
      result_.failures.push_back(failure);
    }
    if (result_.ok + result_.failed == options_.sessions) {
      result_.wallSeconds = std::chrono::duration<double>(Clock::now() - started_).count();
      timeout_.stop();
      return;
    }
    if (static_cast<int>(sessions_.size()) < options_.sessions) startNext();
  }

  void countRetr(std::uint64_t octets, bool mismatch) {
    ++result_.retrCount;
    result_.retrBytes += octets;
    if (mismatch) ++result_.sizeMismatches;
  }

  void countTop(std::uint64_t octets, double ms) {
    ++result_.topCount;
    result_.topBytes += octets;
    result_.topMs.push_back(ms);
  }

  void countIo(long long before, long long after) {
    if (before < 0 || after < before) {
      ++result_.ioFailures;
      return;
    }
    ++result_.ioCommands;
    result_.ioBytes += static_cast<std::uint64_t>(after - before);
  }

 private:
  void startNext() {
    sessions_.push_back(
        std::make_unique<Session>(*this, loop_, static_cast<int>(sessions_.size())));
    sessions_.back()->start();
  }

  const LoadOptions& options_;
  uv_loop_t* loop_;
  SSL_CTX* tls_;
  proxy::Timer timeout_;
  LoadResult result_;
  Clock::time_point started_;
  std::vector<std::unique_ptr<Session>> sessions_;
};

Session::Session(Runner& runner, uv_loop_t* loop, int index)
    : runner_(runner), loop_(loop), index_(index), connector_(loop) {
  const auto& options = runner_.options();
  user_ = options.users > 0 ? options.user + std::to_string(index % options.users) : options.user;
}

void Session::start() {
  started_ = Clock::now();
  const auto& options = runner_.options();
  connector_.connect(options.host, options.port, kConnectTimeout,
                     [this](proxy::UvHandle<uv_tcp_t> tcp, std::string error) {
                       onConnected(std::move(tcp), std::move(error));
                     });
}

void Session::onConnected(proxy::UvHandle<uv_tcp_t> tcp, std::string error) {
  if (!error.empty()) {
    fail(error);
    return;
  }
  proxy::Stream::Callbacks callbacks;
  callbacks.onData = [this](std::string_view data) { onData(data); };
  callbacks.onClose = [this](std::string_view reason) {
    if (!finished_) fail("connection closed during " + stepName() + ": " + std::string(reason));
  };
  stream_ = std::make_unique<proxy::Stream>(loop_, std::move(tcp), proxy::Stream::Options{},
                                            std::move(callbacks));
  const auto& options = runner_.options();
  if (options.tls) {
    stream_->startTlsClient(runner_.tls(), options.serverName, !options.caFile.empty());
  }
  stream_->startReading();
}

void Session::onData(std::string_view data) {
  if (finished_) return;
  if (mode_ == Mode::kRetrBody && buffer_.empty()) {
    // The hot path of the big downloads: count straight from the read buffer, no copy.
    const std::size_t used = body_.consume(data);
    if (!body_.done()) return;
    data.remove_prefix(used);
    buffer_.assign(data);
    if (finishRetr()) processBuffer();
    return;
  }
  buffer_.append(data);
  processBuffer();
}

bool Session::processBuffer() {
  std::size_t pos = 0;
  bool alive = true;
  while (alive && pos < buffer_.size()) {
    if (mode_ == Mode::kRetrBody) {
      pos += body_.consume(std::string_view(buffer_).substr(pos));
      if (!body_.done()) break;
      buffer_.erase(0, pos);
      pos = 0;
      alive = finishRetr();
      continue;
    }
    const auto eol = buffer_.find('\n', pos);
    if (eol == std::string::npos) {
      if (buffer_.size() - pos > kMaxLine) {
        fail("reply line longer than " + std::to_string(kMaxLine) + " bytes during " + stepName());
        return false;
      }
      break;
    }
    std::string_view line(buffer_.data() + pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = eol + 1;
    if (mode_ == Mode::kLine) {
      // The line is copied: a handler may send the next command and clear the buffer.
      const std::string copy(line);
      const std::size_t keep = pos;
      buffer_.erase(0, keep);
      pos = 0;
      alive = onStatusLine(copy);
    } else {
      if (line == ".") {
        buffer_.erase(0, pos);
        pos = 0;
        alive = onMultiLineEnd();
      } else {
        if (!line.empty() && line.front() == '.') line.remove_prefix(1);
        alive = onMultiLine(line);
      }
    }
  }
  if (alive && pos > 0) buffer_.erase(0, pos);
  return alive;
}

void Session::measureBefore() {
  const long pid = runner_.options().ioPid;
  if (pid > 0) rcharBefore_ = readRchar(pid);
  commandStarted_ = Clock::now();
}

void Session::measureAfter() {
  const long pid = runner_.options().ioPid;
  if (pid > 0) runner_.countIo(rcharBefore_, readRchar(pid));
}

bool Session::finishRetr() {
  measureAfter();
  mode_ = Mode::kLine;
  const std::uint64_t listed = listSizes_[retrIndex_];
  runner_.countRetr(body_.octets(), body_.octets() != listed);
  if (body_.octets() != listed) {
    fail("RETR " + std::to_string(retrIndex_ + 1) + " gave " + std::to_string(body_.octets()) +
         " octets, LIST said " + std::to_string(listed));
    return false;
  }
  ++retrIndex_;
  retrNext();
  return !finished_;
}

bool Session::onStatusLine(std::string_view line) {
  if (line.rfind("+OK", 0) != 0) {
    fail(stepName() + " answered: " + std::string(line.substr(0, 200)));
    return false;
  }
  const auto& options = runner_.options();
  switch (step_) {
    case Step::kGreeting:
      send("USER " + user_, Step::kUser, Mode::kLine);
      return true;
    case Step::kUser:
      send("PASS " + options.password, Step::kPass, Mode::kLine);
      return true;
    case Step::kPass:
      if (options.workload == Workload::kPoll) {
        send("STAT", Step::kStat, Mode::kLine);
      } else if (options.workload == Workload::kTop) {
        measureBefore();
        send("TOP 1 " + std::to_string(options.topLines), Step::kTop, Mode::kLine);
      } else {
        send("LIST", Step::kList, Mode::kMultiLine);
      }
      return true;
    case Step::kStat: {
      const auto parts = words(line, 3);
      const auto count = parts.size() >= 2 ? parseNumber(parts[1]) : std::nullopt;
      if (!count) {
        fail("STAT reply without a count: " + std::string(line.substr(0, 200)));
        return false;
      }
      statCount_ = *count;
      if (options.expectMessages >= 0 &&
          statCount_ != static_cast<std::uint64_t>(options.expectMessages)) {
        fail("STAT reports " + std::to_string(statCount_) + " messages, expected " +
             std::to_string(options.expectMessages));
        return false;
      }
      send("UIDL", Step::kUidl, Mode::kMultiLine);
      return true;
    }
    case Step::kUidl:
    case Step::kList:
    case Step::kTop:
      mode_ = Mode::kMultiLine;
      return true;
    case Step::kRetr:
      body_.reset();
      mode_ = Mode::kRetrBody;
      return true;
    case Step::kQuit:
      succeed();
      return false;
  }
  return true;
}

bool Session::onMultiLine(std::string_view line) {
  if (step_ == Step::kTop) {
    ++topLines_;
    topOctets_ += line.size() + 2;
    if (topInBody_) {
      ++topBodyLines_;
    } else if (line.empty()) {
      topInBody_ = true;
    }
    return true;
  }
  const auto parts = words(line, 3);
  const auto number = parts.size() == 2 ? parseNumber(parts[0]) : std::nullopt;
  if (step_ == Step::kUidl) {
    ++uidlLines_;
    if (!number || *number != uidlLines_ || parts[1].empty() || parts[1].size() > 70) {
      fail("bad UIDL line " + std::to_string(uidlLines_) + ": " + std::string(line.substr(0, 200)));
      return false;
    }
    return true;
  }
  const auto size = parts.size() == 2 ? parseNumber(parts[1]) : std::nullopt;
  if (!number || !size || *number != listSizes_.size() + 1) {
    fail("bad LIST line: " + std::string(line.substr(0, 200)));
    return false;
  }
  listSizes_.push_back(*size);
  return true;
}

bool Session::onMultiLineEnd() {
  mode_ = Mode::kLine;
  const auto& options = runner_.options();
  if (step_ == Step::kTop) return finishTop();
  if (step_ == Step::kUidl) {
    if (uidlLines_ != statCount_) {
      fail("UIDL listed " + std::to_string(uidlLines_) + " messages, STAT " +
           std::to_string(statCount_));
      return false;
    }
    send("QUIT", Step::kQuit, Mode::kLine);
    return true;
  }
  if (options.expectMessages >= 0 &&
      listSizes_.size() != static_cast<std::size_t>(options.expectMessages)) {
    fail("LIST shows " + std::to_string(listSizes_.size()) + " messages, expected " +
         std::to_string(options.expectMessages));
    return false;
  }
  retrTotal_ = listSizes_.size();
  if (options.retrMax > 0) retrTotal_ = std::min(retrTotal_, std::size_t(options.retrMax));
  retrIndex_ = 0;
  retrNext();
  return !finished_;
}

bool Session::finishTop() {
  measureAfter();
  const double ms =
      std::chrono::duration<double, std::milli>(Clock::now() - commandStarted_).count();
  const auto wanted = static_cast<std::uint64_t>(runner_.options().topLines);
  // Bench messages have far more body lines than a TOP asks for: the reply holds exactly those.
  if (!topInBody_ || topBodyLines_ != wanted) {
    fail("TOP 1 " + std::to_string(wanted) + " gave " + std::to_string(topLines_) + " lines, " +
         (topInBody_ ? std::to_string(topBodyLines_) + " after the header"
                     : std::string("no blank line after the header")));
    return false;
  }
  runner_.countTop(topOctets_, ms);
  send("QUIT", Step::kQuit, Mode::kLine);
  return !finished_;
}

void Session::retrNext() {
  if (retrIndex_ < retrTotal_) {
    measureBefore();
    send("RETR " + std::to_string(retrIndex_ + 1), Step::kRetr, Mode::kLine);
  } else {
    send("QUIT", Step::kQuit, Mode::kLine);
  }
}

void Session::send(std::string_view command, Step step, Mode replyMode) {
  step_ = step;
  mode_ = replyMode == Mode::kMultiLine ? Mode::kLine : replyMode;  // status line first
  std::string line(command);
  line += "\r\n";
  stream_->write(std::move(line));
}

void Session::succeed() {
  finished_ = true;
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
  stream_.reset();
  runner_.sessionDone(true, ms, {});
}

void Session::fail(const std::string& reason) {
  if (finished_) return;
  finished_ = true;
  connector_.cancel();
  stream_.reset();
  runner_.sessionDone(false, 0,
                      "session " + std::to_string(index_) + " (" + user_ + "): " + reason);
}

void Session::abandon(const std::string& reason) {
  fail(reason + " during " + stepName());
}

std::string Session::stepName() const {
  switch (step_) {
    case Step::kGreeting:
      return stream_ ? "greeting" : "connect";
    case Step::kUser:
      return "USER";
    case Step::kPass:
      return "PASS";
    case Step::kStat:
      return "STAT";
    case Step::kUidl:
      return "UIDL";
    case Step::kList:
      return "LIST";
    case Step::kRetr:
      return "RETR " + std::to_string(retrIndex_ + 1);
    case Step::kTop:
      return "TOP 1 " + std::to_string(runner_.options().topLines);
    case Step::kQuit:
      return "QUIT";
  }
  return "?";
}

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

std::string writeAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errnoText("write " + path);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

std::size_t RetrBodyCounter::consume(std::string_view data) {
  const char* p = data.data();
  const std::size_t n = data.size();
  std::size_t i = 0;
  while (i < n && !done_) {
    if (dot_ == Dot::kDot) {
      if (p[i] == '\r') {
        dot_ = Dot::kDotCr;
        ++i;
        continue;
      }
      // A stuffed (or stray) leading dot is removed; the byte after it is line content.
      dot_ = Dot::kNone;
      lineStart_ = false;
      continue;
    }
    if (dot_ == Dot::kDotCr) {
      dot_ = Dot::kNone;
      if (p[i] == '\n') {
        ++i;
        done_ = true;
        break;
      }
      // ".\r" then something else: the dot goes, the CR is content.
      ++octets_;
      lineStart_ = false;
      continue;
    }
    if (lineStart_) {
      if (p[i] == '.') {
        dot_ = Dot::kDot;
        ++i;
        continue;
      }
      lineStart_ = false;
    }
    const void* newline = std::memchr(p + i, '\n', n - i);
    if (newline == nullptr) {
      octets_ += n - i;
      i = n;
    } else {
      const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(newline) - p) + 1;
      octets_ += end - i;
      i = end;
      lineStart_ = true;
    }
  }
  return i;
}

long long readRchar(long pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/io";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[512];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return -1;
  const std::string_view io(text, static_cast<std::size_t>(n));
  constexpr std::string_view kKey = "rchar: ";
  if (io.rfind(kKey, 0) != 0) return -1;  // the kernel prints rchar first
  const auto eol = io.find('\n');
  if (eol == std::string_view::npos) return -1;
  const auto value = parseNumber(io.substr(kKey.size(), eol - kKey.size()));
  return value ? static_cast<long long>(*value) : -1;
}

LoadResult runLoad(const LoadOptions& options) {
  std::unique_ptr<proxy::TlsClientContext> tls;
  if (options.tls) {
    std::string error;
    tls = proxy::TlsClientContext::create(options.caFile, !options.caFile.empty(),
                                          proxy::TlsMinVersion::V1_2, error);
    if (!tls) {
      LoadResult result;
      result.sessions = options.sessions;
      result.failed = options.sessions;
      result.failures.push_back("TLS context: " + error);
      return result;
    }
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  LoadResult result;
  {
    Runner runner(options, &loop, tls ? tls->get() : nullptr);
    result = runner.run();
  }
  // Let libuv free the handles the runner and its sessions closed.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return result;
}

std::string benchMessage(int index, std::size_t bytes) {
  std::string message =
      "From: Bench Sender <sender@bench.example>\r\n"
      "To: Bench Reader <reader@bench.example>\r\n"
      "Subject: benchmark message " +
      std::to_string(index) +
      "\r\n"
      "Message-ID: <" +
      std::to_string(index) +
      ".bench@bench.example>\r\n"
      "Date: Sun, 22 Nov 2026 00:00:00 +0000\r\n"
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=us-ascii\r\n"
      "\r\n";
  if (bytes < message.size() + 3) bytes = message.size() + 3;
  message.reserve(bytes);
  static constexpr std::string_view kText =
      "The quick brown fox jumps over the lazy dog while the benchmark counts octets "
      "and checks that nothing is lost or added on the way through the proxy.";
  std::size_t line = 0;
  while (message.size() < bytes) {
    const std::size_t remaining = bytes - message.size();
    std::size_t length = std::min<std::size_t>(78, remaining);
    // The last line must hold at least one character and CRLF.
    if (remaining - length > 0 && remaining - length < 3) length = remaining - 3;
    const std::size_t textLength = length - 2;
    // Every 25th line starts with a dot, which POP3 must stuff and the client unstuff.
    const bool dotted = ++line % 25 == 0 && textLength > 0;
    if (dotted) message += '.';
    const std::size_t offset = (line * 7 + static_cast<std::size_t>(index)) % 40;
    message.append(kText.substr(offset, textLength - (dotted ? 1 : 0)));
    message += "\r\n";
  }
  return message;
}

std::string seedMaildir(const std::string& dir, int count, std::size_t bytes, long uid, long gid,
                        int firstIndex) {
  for (const char* sub : {"", "/cur", "/new", "/tmp"}) {
    const std::string path = dir + sub;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return errnoText("mkdir " + path);
    if (uid >= 0 && ::chown(path.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0) {
      return errnoText("chown " + path);
    }
  }
  const long long now = static_cast<long long>(std::time(nullptr));
  const std::string pid = std::to_string(::getpid());
  for (int i = 0; i < count; ++i) {
    const int index = firstIndex + i;
    const std::string message = benchMessage(index, bytes);
    // Dovecot orders new files by time, then by the M field: the index keeps UIDs in order.
    // S= and W= (stored and served size, equal with CRLF) spare it reading files for LIST.
    const std::string base =
        std::to_string(now) + ".M" + std::to_string(index) + "P" + pid + ".bench";
    const std::string name = base + ",S=" + std::to_string(message.size()) +
                             ",W=" + std::to_string(message.size()) + ":2,";
    const std::string path = dir + "/cur/" + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return errnoText("create " + path);
    std::string error = writeAll(fd, message, path);
    if (error.empty() && uid >= 0 &&
        ::fchown(fd, static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0) {
      error = errnoText("chown " + path);
    }
    ::close(fd);
    if (!error.empty()) return error;
  }
  return {};
}

}  // namespace popbridge::bench
