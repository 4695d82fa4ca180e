#include "tests/support/popbridge_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A bare connect, so IPv6 listeners can be probed too.
bool portOpen(const std::string& host, std::uint16_t port) {
  sockaddr_storage address{};
  socklen_t length = 0;
  if (host.find(':') != std::string::npos) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr);
    length = sizeof *in6;
  } else {
    auto* in4 = reinterpret_cast<sockaddr_in*>(&address);
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    inet_pton(AF_INET, host.c_str(), &in4->sin_addr);
    length = sizeof *in4;
  }
  int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool open = ::connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0;
  ::close(fd);
  return open;
}

}  // namespace

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

  std::ostringstream toml;
  toml << "[server]\nlog_level = \"" << options.logLevel << "\"\nauth_failure_delay = \"200ms\"\n"
       << options.server << "\n";
  for (const Listener& listener : options.listeners) {
    std::uint16_t port = listener.port ? listener.port : freeLoopbackPort();
    ports_.push_back(port);
    std::string host =
        listener.host.find(':') != std::string::npos ? "[" + listener.host + "]" : listener.host;
    toml << "[[listener]]\naddress = \"" << host << ":" << port << "\"\ntls = \"" << listener.tls
         << "\"\nallow_plaintext_auth = " << (listener.allowPlaintextAuth ? "true" : "false")
         << "\nmin_tls_version = \"" << listener.minTlsVersion << "\"\n";
    if (listener.tls != "none") {
      toml << "certificate = \"" << dovecot.pki().serverCert << "\"\nprivate_key = \""
           << dovecot.pki().serverKey << "\"\n";
    }
  }
  toml << "\n[upstream]\nhost = \"127.0.0.1\"\nport = " << upstreamPort << "\ntls = \""
       << options.upstreamTls << "\"\nserver_name = \"" << options.serverName << "\"\nca_file = \""
       << caFile << "\"\nverify_certificate = " << (options.verifyCertificate ? "true" : "false")
       << "\nconnect_timeout = \"3s\"\n"
       << options.upstream << "\n\n[mailbox]\non_delete = \"" << options.onDelete << "\"\n"
       << options.mailbox << "\n"
       << options.extra << "\n";
  {
    std::ofstream out(configPath_);
    out << toml.str();
  }
  for (const auto& user : dovecot.users()) secrets_.push_back(user.password);

  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = ::open(logPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
    // Another build of popbridge can be measured against the same tests.
    const char* binary = std::getenv("PBTEST_POPBRIDGE_BINARY");
    execl(binary ? binary : POPBRIDGE_BINARY, "popbridge", "--config", configPath_.c_str(),
          nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    std::uint16_t port = ports_[i];
    while (!portOpen(options.listeners[i].host, port)) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("popbridge exited during startup:\n" + log() + "\nconfig:\n" +
                                 toml.str());
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("popbridge did not open port " + std::to_string(port) + ":\n" +
                                 log());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
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
  if (!std::getenv("PBTEST_KEEP_LOGS")) {
    std::remove(configPath_.c_str());
    std::remove(logPath_.c_str());
    ::rmdir(dir_.c_str());
  }
}

int PopbridgeProcess::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
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
