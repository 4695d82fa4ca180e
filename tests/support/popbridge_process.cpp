#include "tests/support/popbridge_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
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

bool portOpen(std::uint16_t port) {
  try {
    TestConnection connection(port, 200);
    return true;
  } catch (const std::exception&) {
    return false;
  }
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
    toml << "[[listener]]\naddress = \"127.0.0.1:" << port << "\"\ntls = \"" << listener.tls
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
    execl(POPBRIDGE_BINARY, "popbridge", "--config", configPath_.c_str(), nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (std::uint16_t port : ports_) {
    while (!portOpen(port)) {
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
