#include "tests/support/popbridge_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "config/keys.h"
#include "tests/support/test_clients.h"

extern char** environ;

namespace popbridge::test {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Kills a child that will not be waited for by anyone else.
void killAndReap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

constexpr auto kStartupTimeout = std::chrono::seconds(15);
constexpr int kBindAttempts = 5;

// POPBRIDGE_TEST_FAST_PATHS=off (set by the ASan stage of .ci/test) runs every popbridge these
// tests start with the upstream session pool, the snapshot cache and RETR read-ahead off, so the
// suites also cover the plain path once per CI run. Read at start-up and removed from this
// process's environment: popbridge warns about POPBRIDGE_* variables it does not know, and
// every child (popbridge, check-upstream, oauth login) would inherit it.
bool takeFastPathsOff() {
  const char* value = std::getenv("POPBRIDGE_TEST_FAST_PATHS");
  const bool off = value != nullptr && std::string_view(value) == "off";
  ::unsetenv("POPBRIDGE_TEST_FAST_PATHS");
  return off;
}
const bool kFastPathsOff = takeFastPathsOff();

// Whether `lines` (TOML of one table) assigns `key` itself.
bool assignsKey(std::string_view lines, std::string_view key) {
  while (!lines.empty()) {
    const auto end = lines.find('\n');
    std::string_view line = lines.substr(0, end);
    line.remove_prefix(std::min(line.find_first_not_of(" \t"), line.size()));
    if (line.starts_with(key)) {
      line.remove_prefix(key.size());
      line.remove_prefix(std::min(line.find_first_not_of(" \t"), line.size()));
      if (line.starts_with('=')) return true;
    }
    if (end == std::string_view::npos) break;
    lines.remove_prefix(end + 1);
  }
  return false;
}

}  // namespace

std::string fastPathsOffLines(std::string_view upstream,
                              std::span<const std::string_view> knownKeys) {
  constexpr std::pair<std::string_view, std::string_view> kOff[] = {
      {"pool_idle", "\"0s\""}, {"snapshot_cache", "false"}, {"read_ahead", "false"}};
  std::string lines;
  for (const auto& [key, value] : kOff) {
    const bool known = std::find(knownKeys.begin(), knownKeys.end(), key) != knownKeys.end();
    if (known && !assignsKey(upstream, key)) {
      lines += std::string(key) + " = " + std::string(value) + "\n";
    }
  }
  return lines;
}

NotifySocket::NotifySocket(std::string name) : name_(std::move(name)) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (name_.empty() || name_.size() >= sizeof address.sun_path) {
    throw std::runtime_error("NotifySocket: unusable name '" + name_ + "'");
  }
  // '@' stands for the leading NUL of an abstract name, which has no terminating NUL.
  std::string raw = name_;
  if (raw.front() == '@') raw.front() = '\0';
  std::memcpy(address.sun_path, raw.data(), raw.size());
  auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + raw.size() +
                                       (raw.front() == '\0' ? 0 : 1));
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    const int error = errno;
    ::close(fd_);
    throw std::runtime_error("bind " + name_ + ": " + std::strerror(error));
  }
}

NotifySocket::~NotifySocket() {
  ::close(fd_);
  if (name_.front() != '@') ::unlink(name_.c_str());
}

std::optional<std::string> NotifySocket::receive(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
  char buffer[4096];
  const ssize_t got = ::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
  if (got < 0) return std::nullopt;
  return std::string(buffer, static_cast<std::size_t>(got));
}

bool hasAssignment(std::string_view datagram, std::string_view assignment) {
  while (!datagram.empty()) {
    const auto end = datagram.find('\n');
    if (datagram.substr(0, end) == assignment) return true;
    if (end == std::string_view::npos) break;
    datagram.remove_prefix(end + 1);
  }
  return false;
}

pid_t spawnPopbridge(const std::string& configPath, const std::string& logPath,
                     const std::vector<std::string>& environment, bool blockStopSignals) {
  // Everything the child needs is made before fork: the parent may have other threads.
  // Another build of popbridge can be measured against the same tests.
  const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY");
  const std::string binary = custom ? custom : POPBRIDGE_BINARY;
  std::vector<std::string> entries;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view item(*entry);
    const bool replaced = std::any_of(environment.begin(), environment.end(), [&](const auto& e) {
      const auto eq = e.find('=');
      return item.substr(0, item.find('=')) == std::string_view(e).substr(0, eq);
    });
    if (!replaced) entries.emplace_back(item);
  }
  entries.insert(entries.end(), environment.begin(), environment.end());
  std::vector<char*> envp;
  for (auto& entry : entries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::string arg0 = "popbridge", arg1 = "--config", arg2 = configPath;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  // Blocked across fork, so that a signal sent as soon as fork returns already finds the child
  // with the mask it is meant to have.
  sigset_t stopSignals, callerMask;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, &callerMask);

  const pid_t pid = fork();
  if (pid != 0) pthread_sigmask(SIG_SETMASK, &callerMask, nullptr);
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    // The mask survives exec; popbridge must unblock them itself once its handlers exist.
    if (!blockStopSignals) sigprocmask(SIG_SETMASK, &callerMask, nullptr);
    execve(binary.c_str(), argv, envp.data());
    _exit(127);
  }
  return pid;
}

PopbridgeProcess::PopbridgeProcess(const DovecotFixture& dovecot, Options options) {
  char pattern[] = "/tmp/popbridge-proc-XXXXXX";
  if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  configPath_ = dir_ + "/popbridge.toml";
  logPath_ = dir_ + "/popbridge.log";

  std::uint16_t upstreamPort = options.upstreamPort;
  if (upstreamPort == 0) {
    upstreamPort = options.upstreamTls == "implicit" ? dovecot.imapsPort() : dovecot.imapPort();
  }
  std::string caFile = options.caFile.empty() ? dovecot.pki().caCert : options.caFile;
  if (caFile == "system") caFile = "";

  // The listeners' ports are picked afresh on every attempt (see below).
  auto writeConfig = [&] {
    ports_.clear();
    std::ostringstream toml;
    toml << "[server]\nlog_level = \"" << options.logLevel << "\"\nauth_failure_delay = \"200ms\"\n"
         << options.server << "\n";
    if (options.server.find("shutdown_timeout") == std::string::npos) {
      toml << "shutdown_timeout = \"2s\"\n";
    }
    for (const Listener& listener : options.listeners) {
      std::uint16_t port = listener.port ? listener.port : freeLoopbackPort();
      ports_.push_back(port);
      std::string host =
          listener.host.find(':') != std::string::npos ? "[" + listener.host + "]" : listener.host;
      toml << "[[listener]]\naddress = \"" << host << ":" << port << "\"\ntls = \"" << listener.tls
           << "\"\nallow_plaintext_auth = " << (listener.allowPlaintextAuth ? "true" : "false")
           << "\nmin_tls_version = \"" << listener.minTlsVersion << "\"\n"
           << listener.extra << "\n";
      if (listener.tls != "none") {
        toml << "certificate = \""
             << (listener.certificate.empty() ? dovecot.pki().serverCert : listener.certificate)
             << "\"\nprivate_key = \""
             << (listener.privateKey.empty() ? dovecot.pki().serverKey : listener.privateKey)
             << "\"\n";
      }
    }
    toml << "\n[upstream]\nhost = \"127.0.0.1\"\nport = " << upstreamPort << "\ntls = \""
         << options.upstreamTls << "\"\nserver_name = \"" << options.serverName
         << "\"\nca_file = \"" << caFile
         << "\"\nverify_certificate = " << (options.verifyCertificate ? "true" : "false")
         << "\nconnect_timeout = \"3s\"\n"
         << options.upstream << "\n"
         << (kFastPathsOff ? fastPathsOffLines(options.upstream, config::kUpstreamKeys) : "")
         << "\n[mailbox]\non_delete = \"" << options.onDelete << "\"\n"
         << options.mailbox << "\n"
         << options.extra << "\n";
    {
      std::ofstream out(configPath_);
      out << toml.str();
    }
    return toml.str();
  };
  for (const auto& user : dovecot.users()) secrets_.push_back(user.password);

  notify_ = std::make_unique<NotifySocket>(options.notifySocket.empty() ? dir_ + "/notify.sock"
                                                                        : options.notifySocket);
  // A port that was free when picked can be taken by another test's process before popbridge
  // binds it (ctest runs tests side by side): then popbridge starts again on other ports.
  bool picked = false;
  for (const Listener& listener : options.listeners) picked = picked || listener.port == 0;
  for (int attempt = 1;; ++attempt) {
    const std::string config = writeConfig();
    if (start(config)) return;
    const std::string text = log();
    if (!picked || attempt == kBindAttempts ||
        text.find("Address already in use") == std::string::npos) {
      throw std::runtime_error("popbridge exited during startup:\n" + text + "\nconfig:\n" +
                               config);
    }
  }
}

bool PopbridgeProcess::start(const std::string& config) {
  pid_ = spawnPopbridge(configPath_, logPath_, {"NOTIFY_SOCKET=" + notify_->name()});
  // Ready means READY=1 on NOTIFY_SOCKET, which popbridge sends once all its listeners accept
  // and SIGTERM gets a clean shutdown. An open port alone means neither.
  const auto deadline = std::chrono::steady_clock::now() + kStartupTimeout;
  for (;;) {
    if (auto datagram = notify_->receive(std::chrono::milliseconds(20))) {
      notifications_.push_back(*datagram);
      if (hasAssignment(*datagram, "READY=1")) return true;
      continue;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      killAndReap(pid_);
      pid_ = -1;
      std::string hint;
      if (const char* custom = std::getenv("PBTEST_POPBRIDGE_BINARY")) {
        hint = std::string(" (PBTEST_POPBRIDGE_BINARY=") + custom +
               "; a build without readiness notification never sends it)";
      }
      throw std::runtime_error("popbridge sent no READY=1 to NOTIFY_SOCKET " + notify_->name() +
                               " within " + std::to_string(kStartupTimeout.count()) + " s" + hint +
                               ":\n" + log() + "\nconfig:\n" + config);
    }
  }
}

PopbridgeProcess::~PopbridgeProcess() {
  stop();
  // Every integration test doubles as a check that no password reaches the log.
  std::string text = log();
  for (const std::string& secret : secrets_) {
    EXPECT_EQ(text.find(secret), std::string::npos)
        << "a password appears in the popbridge log " << logPath_;
  }
  notify_.reset();  // removes the socket file
  if (!std::getenv("PBTEST_KEEP_LOGS")) {
    std::remove(configPath_.c_str());
    std::remove(logPath_.c_str());
    ::rmdir(dir_.c_str());
  }
}

int PopbridgeProcess::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  return waitForExit(std::chrono::seconds(15));
}

void PopbridgeProcess::signal(int signum) const {
  if (pid_ > 0) ::kill(pid_, signum);
}

int PopbridgeProcess::waitForExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  // Whatever popbridge said while shutting down (STOPPING=1) is queued by now.
  if (notify_) {
    while (auto datagram = notify_->receive(std::chrono::milliseconds(0))) {
      notifications_.push_back(*datagram);
    }
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string PopbridgeProcess::log() const {
  return readFile(logPath_);
}

double cpuSecondsOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 1; i <= 13 && fields >> field; ++i) {
    if (i == 12) utime = std::stoull(field);
    if (i == 13) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

MemoryUsage memoryOf(pid_t pid) {
  MemoryUsage usage;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) usage.rssKiB = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) usage.peakKiB = std::atol(line.c_str() + 6);
  }
  return usage;
}

}  // namespace popbridge::test
