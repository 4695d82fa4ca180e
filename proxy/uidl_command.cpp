#include "proxy/uidl_command.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <ostream>
#include <utility>
#include <vector>

#include "config/enum_names.h"
#include "protocol/net_address.h"
#include "protocol/text.h"
#include "protocol/uidl/capture.h"
#include "protocol/uidl/import_file.h"
#include "protocol/uidl/map_record.h"
#include "proxy/connector.h"
#include "proxy/loop_state.h"
#include "proxy/redis_client.h"
#include "proxy/session_registry.h"
#include "proxy/state_store.h"
#include "proxy/stream.h"
#include "proxy/tls_context.h"
#include "proxy/uv_handle.h"

namespace popbridge::proxy {
namespace {

using protocol::loggableText;
using protocol::uidl::ImportParser;

constexpr const char* kDefaultConfigPath = "/etc/popbridge/popbridge.toml";
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxReplyLine = 8192;  // a POP3 status line before the capture starts

constexpr const char* kImportUsage =
    "Usage: popbridge uidl import [--config FILE] [--folder NAME] [--replace] ACCOUNT FILE\n";
constexpr const char* kCaptureUsage =
    "Usage: popbridge uidl capture [--tls|--starttls] [--ca-file FILE] [--insecure-skip-verify]\n"
    "                              [--min-tls-version 1.0|1.1|1.2|1.3] [--allow-plaintext]\n"
    "                              HOST:PORT USER --password-file FILE [--output FILE]\n";

// --- import ------------------------------------------------------------------------------------

// Every entry of the file, or false with "FILE: line N: ..." in `err`. Read in chunks: the
// parser holds one line at a time, the entries are what will be written anyway.
bool readImportFile(const std::string& path, std::vector<ImportParser::Entry>& entries,
                    std::ostream& err) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      err << "error: cannot read " << path << ": " << std::strerror(errno) << "\n";
      return false;
    }
    in = &file;
  }
  ImportParser parser;
  std::vector<char> buffer(kReadChunk);
  while (*in) {
    in->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const std::streamsize got = in->gcount();
    if (got <= 0) break;
    if (parser.feed(std::string_view(buffer.data(), static_cast<std::size_t>(got)), entries) ==
        ImportParser::Status::Error) {
      err << path << ": " << parser.error() << "\n";
      return false;
    }
  }
  if (in->bad()) {
    err << "error: reading " << path << " failed\n";
    return false;
  }
  if (parser.finish(entries) == ImportParser::Status::Error) {
    err << path << ": " << parser.error() << "\n";
    return false;
  }
  return true;
}

// Which maildrop ACCOUNT names: an [[account]]'s upstream login and folder, else the upstream
// login itself with [mailbox] folder. False with the reason in `err`.
bool resolveMailbox(const config::Config& config, const UidlImportOptions& options,
                    StateStore::Mailbox& mailbox, std::ostream& err) {
  std::string upstreamUser;
  std::string folder;
  if (const config::AccountConfig* account = config.findAccount(options.account)) {
    upstreamUser = account->upstreamUser;
    if (upstreamUser.empty() && !account->oauth2.empty()) {
      if (const auto* identity = config.findOAuthIdentity(account->oauth2)) {
        upstreamUser = identity->user;
      }
    }
    if (upstreamUser.empty()) {
      err << "error: [[account]] " << loggableText(options.account)
          << " has no upstream login to import for\n";
      return false;
    }
    folder = account->mailbox.folder;
    err << "account " << loggableText(options.account) << ": upstream login "
        << loggableText(upstreamUser) << "\n";
  } else {
    if (!config.accounts.empty()) {
      err << "note: " << loggableText(options.account)
          << " is not an [[account]]; importing for the upstream login "
          << loggableText(options.account) << " with [mailbox] folder\n";
    }
    upstreamUser = options.account;
    folder = config.mailbox.folder;
  }
  if (!options.folder.empty()) folder = options.folder;
  mailbox = protocol::uidlMapMailbox(upstreamUser, folder);
  return true;
}

// The store conversation: load (is the mailbox empty?), erase for --replace, put. Works the
// same whether the store answers at once (SQLite) or from the loop (Redis).
class ImportRun {
 public:
  ImportRun(StateStore& store, StateStore::Mailbox mailbox, std::vector<StateStore::UidlEntry> put,
            bool replace, std::function<void()> finished)
      : store_(store),
        mailbox_(std::move(mailbox)),
        put_(std::move(put)),
        replace_(replace),
        finished_(std::move(finished)) {}

  void start() {
    store_.loadUidls(
        mailbox_, [this](StateStore::Status status, std::vector<StateStore::UidlEntry> existing) {
          swallowExceptions([&] { loaded(status, std::move(existing)); });
        });
  }

  bool done() const { return done_; }
  // The mailbox had entries and --replace was not given.
  bool refused() const { return refused_; }
  // --replace erased the mailbox's entries (whatever happened next).
  bool erased() const { return erased_; }
  int exitCode() const { return exitCode_; }
  const std::string& problem() const { return problem_; }
  std::size_t existing() const { return existing_; }
  std::size_t existingImported() const { return existingImported_; }

 private:
  void loaded(StateStore::Status status, std::vector<StateStore::UidlEntry> existing) {
    if (status != StateStore::Status::Ok) return finish(kUidlFailed, "the state store failed");
    existing_ = existing.size();
    for (const auto& entry : existing) {
      if (entry.key.uidValidity == protocol::uidl::kImportUidValidity) ++existingImported_;
    }
    if (existing.empty()) return write();
    if (!replace_) {
      refused_ = true;
      return finish(kUidlFailed, {});
    }
    std::vector<StateStore::UidKey> keys;
    keys.reserve(existing.size());
    for (const auto& entry : existing) keys.push_back(entry.key);
    store_.eraseUidls(mailbox_, std::move(keys), [this](StateStore::Status erased) {
      swallowExceptions([&] {
        if (erased != StateStore::Status::Ok) {
          return finish(kUidlFailed, "the state store failed erasing the mailbox's entries");
        }
        erased_ = true;
        write();
      });
    });
  }

  void write() {
    store_.putUidls(mailbox_, std::move(put_), [this](StateStore::Status status) {
      swallowExceptions([&] {
        if (status != StateStore::Status::Ok) {
          return finish(kUidlFailed, "the state store failed writing the entries");
        }
        finish(kUidlOk, {});
      });
    });
  }

  void finish(int exitCode, std::string problem) {
    exitCode_ = exitCode;
    problem_ = std::move(problem);
    done_ = true;
    if (finished_) finished_();
  }

  StateStore& store_;
  StateStore::Mailbox mailbox_;
  std::vector<StateStore::UidlEntry> put_;
  bool replace_;
  std::function<void()> finished_;
  bool done_ = false;
  bool refused_ = false;
  bool erased_ = false;
  int exitCode_ = kUidlFailed;
  std::string problem_;
  std::size_t existing_ = 0;
  std::size_t existingImported_ = 0;
};

// --- capture -----------------------------------------------------------------------------------

// Where the import file goes: a FILE.partial renamed to FILE once the capture is complete
// (removed otherwise), or stdout, where a failed capture ends with a line the import refuses.
class CaptureOutput {
 public:
  CaptureOutput() = default;
  ~CaptureOutput() { abandon({}); }
  CaptureOutput(const CaptureOutput&) = delete;
  CaptureOutput& operator=(const CaptureOutput&) = delete;

  bool open(const std::string& path, std::string& problem) {
    path_ = path;
    if (path_.empty()) {
      file_ = stdout;
      return true;
    }
    partial_ = path_ + ".partial";
    // The headers are the mailbox owner's: readable by the operator only.
    const int fd = ::open(partial_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (file_ = ::fdopen(fd, "wb")) == nullptr) {
      problem = "cannot write " + partial_ + ": " + std::strerror(errno);
      if (fd >= 0) ::close(fd);
      return false;
    }
    return true;
  }

  bool write(std::string_view text) {
    if (file_ == nullptr || text.empty()) return file_ != nullptr;
    written_ = true;
    return std::fwrite(text.data(), 1, text.size(), file_) == text.size();
  }

  // False with `problem` when the file cannot be completed.
  bool commit(std::string& problem) {
    if (file_ == nullptr) return false;
    if (path_.empty()) {
      file_ = nullptr;
      if (std::fflush(stdout) != 0) {
        problem = std::string("writing stdout failed: ") + std::strerror(errno);
        return false;
      }
      return true;
    }
    const bool flushed = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
    const bool closed = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!flushed || !closed || ::rename(partial_.c_str(), path_.c_str()) != 0) {
      problem = "cannot write " + path_ + ": " + std::strerror(errno);
      ::unlink(partial_.c_str());
      return false;
    }
    return true;
  }

  void abandon(const std::string& reason) {
    if (file_ == nullptr) return;
    if (path_.empty()) {
      // Not a valid line of an import file between messages nor at its end: a capture that
      // broke off can never be imported as if it were the whole mailbox.
      if (written_) {
        std::fputs(("\ncapture-failed: " + loggableText(reason) + "\n").c_str(), stdout);
      }
      std::fflush(stdout);
    } else {
      std::fclose(file_);
      ::unlink(partial_.c_str());
    }
    file_ = nullptr;
  }

 private:
  std::string path_;
  std::string partial_;
  std::FILE* file_ = nullptr;
  bool written_ = false;
};

// One capture from connect to QUIT on a loop of its own.
class CaptureRun {
 public:
  CaptureRun(uv_loop_t* loop, const UidlCaptureOptions& options, const TlsClientContext* tls,
             std::string password, CaptureOutput& output, std::ostream& err)
      : loop_(loop),
        options_(options),
        tls_(tls),
        password_(std::move(password)),
        output_(output),
        err_(err),
        connector_(loop),
        timer_(loop),
        target_(protocol::formatHostPort(options.host, options.port)) {}
  ~CaptureRun() { protocol::secureWipe(password_); }
  CaptureRun(const CaptureRun&) = delete;
  CaptureRun& operator=(const CaptureRun&) = delete;

  void start() {
    arm(options_.connectTimeout, "connecting");
    connector_.connect(options_.host, options_.port, options_.connectTimeout,
                       [this](UvHandle<uv_tcp_t> tcp, std::string error) {
                         swallowExceptions([&] { connected(std::move(tcp), std::move(error)); });
                       });
  }

  bool done() const { return phase_ == Phase::Done; }
  int exitCode() const { return exitCode_; }
  std::size_t messages() const { return capture_.messages(); }

 private:
  enum class Phase : std::uint8_t {
    Connect,
    Tls,
    Greeting,
    Stls,
    StartTls,
    User,
    Pass,
    Capture,
    Quit,
    Done
  };

  void arm(std::chrono::milliseconds timeout, std::string what) {
    waitingFor_ = std::move(what);
    timer_.start(timeout, [this, timeout] {
      swallowExceptions([&] {
        if (phase_ == Phase::Quit) return succeed();  // the capture is complete already
        fail("no answer within " + config::formatDuration(timeout) + " while " + waitingFor_);
      });
    });
  }

  void connected(UvHandle<uv_tcp_t> tcp, std::string error) {
    if (!error.empty()) return fail(error);
    Stream::Options streamOptions;
    streamOptions.handshakeTimeout = options_.connectTimeout;
    Stream::Callbacks callbacks;
    callbacks.onData = [this](std::string_view data) { swallowExceptions([&] { onData(data); }); };
    callbacks.onDrain = [] {};
    callbacks.onTlsReady = [this] { swallowExceptions([&] { tlsReady(); }); };
    callbacks.onClose = [this](std::string_view reason) {
      swallowExceptions([&] { closed(reason); });
    };
    stream_ = std::make_unique<Stream>(loop_, std::move(tcp), streamOptions, std::move(callbacks));
    if (options_.tls == UidlCaptureOptions::Tls::Implicit) {
      phase_ = Phase::Tls;
      startTls();
    } else {
      phase_ = Phase::Greeting;
      arm(options_.replyTimeout, "waiting for the greeting");
    }
    stream_->startReading();
  }

  void startTls() {
    arm(options_.connectTimeout, "in the TLS handshake");
    stream_->startTlsClient(tls_->get(), std::string(protocol::withoutBrackets(options_.host)),
                            tls_->verify());
  }

  void tlsReady() {
    err_ << "TLS: " << stream_->tlsVersion() << " " << stream_->tlsCipher()
         << (tls_->verify() ? ", certificate verified for " + options_.host
                            : std::string(", certificate NOT verified"))
         << "\n";
    if (phase_ == Phase::Tls) {
      phase_ = Phase::Greeting;
      arm(options_.replyTimeout, "waiting for the greeting");
    } else {
      sendUser();
    }
  }

  void send(std::string_view command, std::string what) {
    arm(options_.replyTimeout, std::move(what));
    stream_->write(command);
  }

  void sendUser() {
    phase_ = Phase::User;
    send("USER " + options_.user + "\r\n", "waiting for the answer to USER");
  }

  void onData(std::string_view data) {
    if (phase_ == Phase::Capture) return feedCapture(data);
    while (!data.empty() && phase_ != Phase::Done) {
      const std::size_t newline = data.find('\n');
      const std::size_t take = newline == std::string_view::npos ? data.size() : newline + 1;
      if (line_.size() + take > kMaxReplyLine) {
        return fail("a reply line is longer than " + std::to_string(kMaxReplyLine) + " bytes");
      }
      line_.append(data.substr(0, take));
      data.remove_prefix(take);
      if (newline == std::string_view::npos) return;
      std::string line = std::exchange(line_, std::string());
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      if (!reply(line)) return;  // the rest of the chunk is not to be read (STLS)
      if (phase_ == Phase::Capture) return feedCapture(data);
    }
  }

  // One status line before the capture. False when the rest of the chunk must be dropped.
  bool reply(const std::string& line) {
    const bool ok = line.rfind("+OK", 0) == 0;
    const std::string shown = loggableText(line, 160);
    switch (phase_) {
      case Phase::Greeting:
        if (!ok) {
          fail("not a POP3 greeting: " + shown);
          return false;
        }
        if (options_.tls == UidlCaptureOptions::Tls::StartTls) {
          phase_ = Phase::Stls;
          send("STLS\r\n", "waiting for the answer to STLS");
          return true;
        }
        sendUser();
        return true;
      case Phase::Stls:
        if (!ok) {
          fail("the server refused STLS: " + shown);
          return false;
        }
        // RFC 2595: whatever followed the +OK in the clear may be injected; it is dropped.
        phase_ = Phase::StartTls;
        startTls();
        return false;
      case Phase::User:
        if (!ok) {
          fail("the server refused USER: " + shown);
          return false;
        }
        phase_ = Phase::Pass;
        arm(options_.replyTimeout, "waiting for the answer to PASS");
        {
          std::string command = "PASS " + password_ + "\r\n";
          stream_->write(command);
          protocol::secureWipe(command);
        }
        protocol::secureWipe(password_);
        return true;
      case Phase::Pass:
        if (!ok) {
          fail("the server refused the login: " + shown);
          return false;
        }
        err_ << "logged in to " << target_ << " as " << loggableText(options_.user) << "\n";
        phase_ = Phase::Capture;
        pump();
        return true;
      case Phase::Quit:
        // +OK or not: the capture is complete, and QUIT changes nothing on the old server.
        stream_->closeAfterFlush("capture done");
        return false;
      default:
        return false;
    }
  }

  void pump() {
    std::string command = capture_.takeCommand();
    if (!command.empty()) send(command, "waiting for the answer to " + command.substr(0, 4));
  }

  void feedCapture(std::string_view data) {
    if (data.empty()) return;
    arm(options_.replyTimeout, waitingFor_);
    const auto status = capture_.feed(data, chunk_);
    const bool written = output_.write(chunk_);
    chunk_.clear();
    if (!written)
      return fail(std::string("writing the import file failed: ") + std::strerror(errno));
    if (status == protocol::uidl::Capture::Status::Error) return fail(capture_.error());
    if (status == protocol::uidl::Capture::Status::Done) {
      std::string problem;
      if (!output_.commit(problem)) return fail(problem);
      committed_ = true;
      phase_ = Phase::Quit;
      send("QUIT\r\n", "waiting for the answer to QUIT");
      return;
    }
    pump();
  }

  void closed(std::string_view reason) {
    stream_.reset();
    if (phase_ == Phase::Done) return;
    if (phase_ == Phase::Quit) return succeed();
    fail("the connection closed: " + std::string(reason));
  }

  void succeed() {
    if (phase_ == Phase::Done) return;
    exitCode_ = kUidlOk;
    end();
  }

  void fail(const std::string& cause) {
    if (phase_ == Phase::Done) return;
    if (committed_) return succeed();
    err_ << "error: " << target_ << ": " << cause << "\n";
    output_.abandon(cause);
    exitCode_ = kUidlFailed;
    end();
  }

  void end() {
    phase_ = Phase::Done;
    timer_.stop();
    connector_.cancel();
    protocol::secureWipe(password_);
    uv_stop(loop_);
  }

  uv_loop_t* loop_;
  const UidlCaptureOptions& options_;
  const TlsClientContext* tls_;
  std::string password_;
  CaptureOutput& output_;
  std::ostream& err_;
  Connector connector_;
  Timer timer_;
  std::string target_;
  std::unique_ptr<Stream> stream_;
  protocol::uidl::Capture capture_;
  Phase phase_ = Phase::Connect;
  std::string waitingFor_;
  std::string line_;
  std::string chunk_;
  bool committed_ = false;
  int exitCode_ = kUidlFailed;
};

// The first line of `path`, line end stripped.
bool readPasswordFile(const std::string& path, std::string& password, std::ostream& err) {
  password.reserve(16 * 1024);
  std::ifstream file(path);
  if (!file) {
    err << "error: cannot read --password-file " << path << ": " << std::strerror(errno) << "\n";
    return false;
  }
  std::getline(file, password);
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) {
    err << "error: --password-file " << path << " holds no password on its first line\n";
    return false;
  }
  return true;
}

// "host:port", "[v6]:port".
bool parseHostPort(std::string_view text, std::string& host, std::uint16_t& port) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view name = text.substr(0, colon);
  if (name.front() == '[') {
    if (name.size() < 3 || name.back() != ']') return false;
    name = name.substr(1, name.size() - 2);
  } else if (name.find(':') != std::string_view::npos) {
    return false;  // an IPv6 literal needs brackets
  }
  const auto number = protocol::parseDecimal(text.substr(colon + 1), 65535);
  if (!number || *number == 0) return false;
  host = std::string(name);
  port = static_cast<std::uint16_t>(*number);
  return true;
}

// "--name value" or "--name=value": true when `arg` is `name` and a value was taken.
bool takeValue(std::string_view name, int argc, char** argv, int& i, std::string& value) {
  const std::string_view arg = argv[i];
  if (arg == name && i + 1 < argc) {
    value = argv[++i];
    return true;
  }
  if (arg.size() > name.size() && arg.substr(0, name.size()) == name && arg[name.size()] == '=') {
    value = std::string(arg.substr(name.size() + 1));
    return true;
  }
  return false;
}

int importCommand(
    int argc, char** argv,
    const std::function<std::optional<config::Config>(const std::string&)>& loadConfig,
    std::ostream& out, std::ostream& err) {
  std::string configPath = kDefaultConfigPath;
  UidlImportOptions options;
  std::vector<std::string> words;
  for (int i = 3; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out << kImportUsage;
      return kUidlOk;
    }
    if (takeValue("--config", argc, argv, i, configPath) ||
        takeValue("--folder", argc, argv, i, options.folder)) {
      continue;
    }
    if (arg == "--replace") {
      options.replace = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      err << "error: unknown or incomplete option " << loggableText(arg) << "\n" << kImportUsage;
      return kUidlUsage;
    } else {
      words.emplace_back(arg);
    }
  }
  if (words.size() != 2 || words[0].empty()) {
    err << kImportUsage;
    return kUidlUsage;
  }
  options.account = words[0];
  options.file = words[1];
  auto config = loadConfig(configPath);
  if (!config) return kUidlFailed;
  return runUidlImport(*config, options, out, err);
}

int captureCommand(int argc, char** argv, std::ostream& out, std::ostream& err) {
  UidlCaptureOptions options;
  std::vector<std::string> words;
  for (int i = 3; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out << kCaptureUsage;
      return kUidlOk;
    }
    std::string version;
    if (takeValue("--min-tls-version", argc, argv, i, version)) {
      bool known = false;
      for (const auto& entry : config::enumNames<config::TlsVersion>()) {
        if (entry.name == version) {
          options.minTlsVersion = entry.value;
          known = true;
        }
      }
      if (!known) {
        err << "error: --min-tls-version: " << loggableText(version) << " is not "
            << config::oneOf<config::TlsVersion>() << "\n";
        return kUidlUsage;
      }
      continue;
    }
    if (takeValue("--ca-file", argc, argv, i, options.caFile) ||
        takeValue("--password-file", argc, argv, i, options.passwordFile) ||
        takeValue("--output", argc, argv, i, options.output)) {
      continue;
    }
    if (arg == "--tls") {
      options.tls = UidlCaptureOptions::Tls::Implicit;
    } else if (arg == "--starttls") {
      options.tls = UidlCaptureOptions::Tls::StartTls;
    } else if (arg == "--insecure-skip-verify") {
      options.verify = false;
    } else if (arg == "--allow-plaintext") {
      options.allowPlaintext = true;
    } else if (arg.size() > 1 && arg[0] == '-') {
      err << "error: unknown or incomplete option " << loggableText(arg) << "\n" << kCaptureUsage;
      return kUidlUsage;
    } else {
      words.emplace_back(arg);
    }
  }
  if (words.size() != 2 || words[1].empty() || options.passwordFile.empty()) {
    err << kCaptureUsage;
    return kUidlUsage;
  }
  if (!parseHostPort(words[0], options.host, options.port)) {
    err << "error: " << loggableText(words[0])
        << " is not HOST:PORT (an IPv6 address in brackets: [::1]:995)\n";
    return kUidlUsage;
  }
  options.user = words[1];
  return runUidlCapture(options, err);
}

}  // namespace

int runUidlImport(const config::Config& config, const UidlImportOptions& options, std::ostream& out,
                  std::ostream& err) {
  const config::StateConfig& state = config.state;
  if (!state.redisEnabled() && state.path.empty()) {
    err << "error: the config has no [state] path or redis: there is no state store to import "
           "into (the stable UIDL map lives there)\n";
    return kUidlFailed;
  }
  std::vector<ImportParser::Entry> parsed;
  if (!readImportFile(options.file, parsed, err)) return kUidlUsage;

  StateStore::Mailbox mailbox;
  if (!resolveMailbox(config, options, mailbox, err)) return kUidlFailed;

  std::vector<StateStore::UidlEntry> entries;
  entries.reserve(parsed.size());
  std::uint32_t n = 0;
  for (ImportParser::Entry& entry : parsed) {
    entries.push_back(protocol::uidl::toRecord({protocol::uidl::kImportUidValidity, ++n},
                                               std::move(entry.uidl), entry.facts));
  }
  parsed.clear();
  parsed.shrink_to_fit();
  const std::size_t count = entries.size();

  uv_loop_t loop{};
  uv_loop_init(&loop);
  std::string openProblem;
  std::string redisProblem;  // before the client, which reports into it
  std::unique_ptr<SqliteStateStore> sqlite;
  std::unique_ptr<TlsClientContext> redisTls;
  std::unique_ptr<RedisClient> redis;
  std::unique_ptr<RedisStateStore> redisStore;
  StateStore* store = nullptr;
  if (state.redisEnabled()) {
    if (state.redisTls) {
      redisTls =
          TlsClientContext::create(state.redisCaFile, true, config::TlsVersion::V1_2, openProblem);
      if (!redisTls) openProblem = "state.redis_ca_file: " + openProblem;
    }
    if (openProblem.empty()) {
      redis = std::make_unique<RedisClient>(
          &loop, redisClientOptions(state, redisTls.get()),
          [&redisProblem](std::string_view problem) { redisProblem = problem; });
      redisStore = std::make_unique<RedisStateStore>(*redis, state.keyPrefix);
      store = redisStore.get();
    }
  } else {
    sqlite = SqliteStateStore::open(state.path, openProblem);
    store = sqlite.get();
  }

  int exitCode = kUidlFailed;
  if (store == nullptr) {
    err << "error: cannot open the state store: " << openProblem << "\n";
  } else {
    ImportRun run(*store, mailbox, std::move(entries), options.replace, [&loop] {
      // Not waiting for Redis' orderly QUIT: destroying the client closes the connection.
      uv_stop(&loop);
    });
    run.start();
    if (!run.done()) uv_run(&loop, UV_RUN_DEFAULT);
    const std::string where =
        loggableText(options.account) + " folder \"" + loggableText(mailbox.folder) + "\"";
    exitCode = run.done() ? run.exitCode() : kUidlFailed;
    if (!run.done()) {
      err << "error: the state store did not answer\n";
    } else if (exitCode == kUidlOk) {
      out << "imported " << count << " UIDLs for " << loggableText(options.account) << " folder "
          << loggableText(mailbox.folder) << "; the first session matches them against the mailbox"
          << std::endl;
    } else if (run.refused()) {
      err << "error: the state store already has " << run.existing() << " UIDL entries for "
          << where << " (" << run.existingImported()
          << " of an earlier import, waiting for the first session; "
          << run.existing() - run.existingImported()
          << " of the UIDLs served so far); nothing written. --replace erases them all and "
             "imports the file instead\n";
    } else {
      err << "error: " << run.problem() << " for " << where;
      if (!redisProblem.empty()) err << ": " << loggableText(redisProblem);
      err << (run.erased() ? "; its earlier entries were erased, the file's were not written: "
                             "run the import again\n"
                           : "; nothing written\n");
    }
  }
  redisStore.reset();
  redis.reset();
  // Handles closed by the destructors are freed in one more turn.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return exitCode;
}

int runUidlCapture(const UidlCaptureOptions& options, std::ostream& err) {
  if (options.tls == UidlCaptureOptions::Tls::None && !options.allowPlaintext) {
    err << "error: refusing to send USER/PASS over a connection without TLS; use --tls "
           "(POP3S, usually port 995) or --starttls, or --allow-plaintext when the network is "
           "trusted\n";
    return kUidlUsage;
  }
  if (options.user.find_first_of("\r\n") != std::string::npos) {
    err << "error: the user name holds a line break\n";
    return kUidlUsage;
  }
  std::string password;
  if (!readPasswordFile(options.passwordFile, password, err)) {
    protocol::secureWipe(password);
    return kUidlUsage;
  }
  std::unique_ptr<TlsClientContext> tls;
  if (options.tls != UidlCaptureOptions::Tls::None) {
    std::string problem;
    tls = TlsClientContext::create(options.caFile, options.verify, options.minTlsVersion, problem);
    if (!tls) {
      protocol::secureWipe(password);
      err << "error: --ca-file: " << problem << "\n";
      return kUidlUsage;
    }
    if (!options.verify) {
      err << "warning: --insecure-skip-verify: the server's certificate is not checked; anyone "
             "on the path can read the password\n";
    }
  }
  CaptureOutput output;
  std::string problem;
  if (!output.open(options.output, problem)) {
    protocol::secureWipe(password);
    err << "error: " << problem << "\n";
    return kUidlUsage;
  }

  uv_loop_t loop{};
  uv_loop_init(&loop);
  int exitCode = kUidlFailed;
  std::size_t messages = 0;
  {
    CaptureRun run(&loop, options, tls.get(), std::move(password), output, err);
    run.start();
    uv_run(&loop, UV_RUN_DEFAULT);
    if (run.done()) {
      exitCode = run.exitCode();
      messages = run.messages();
    } else {
      err << "error: the capture ended without a result\n";
      output.abandon("the capture ended without a result");
    }
  }
  protocol::secureWipe(password);
  // Handles closed by the destructors are freed in one more turn.
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (exitCode == kUidlOk) {
    err << "captured " << messages << " messages from "
        << protocol::formatHostPort(options.host, options.port)
        << (options.output.empty() ? std::string() : " into " + options.output) << "\n";
  }
  return exitCode;
}

int runUidlCommand(
    int argc, char** argv,
    const std::function<std::optional<config::Config>(const std::string&)>& loadConfig,
    std::ostream& out, std::ostream& err) {
  // Writes to a peer that reset the connection must fail, not kill the process.
  ::signal(SIGPIPE, SIG_IGN);
  const std::string_view verb = argc >= 3 ? std::string_view(argv[2]) : std::string_view();
  if (verb == "import") return importCommand(argc, argv, loadConfig, out, err);
  if (verb == "capture") return captureCommand(argc, argv, out, err);
  if (verb == "--help" || verb == "-h") {
    out << kImportUsage << kCaptureUsage;
    return kUidlOk;
  }
  err << kImportUsage << kCaptureUsage;
  return kUidlUsage;
}

}  // namespace popbridge::proxy
