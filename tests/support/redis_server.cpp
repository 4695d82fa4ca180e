#include "tests/support/redis_server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "tests/support/client_runner.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

namespace fs = std::filesystem;

std::string findRedisServer() {
  for (const char* path : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
    if (access(path, X_OK) == 0) return path;
  }
  throw std::runtime_error("redis-server is not installed (.ci/install-deps --test installs it)");
}

std::string readReply(TestConnection& connection) {
  std::string line = connection.readLine("a Redis reply");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.empty()) throw std::runtime_error("empty Redis reply line");
  const char kind = line[0];
  std::string rest = line.substr(1);
  switch (kind) {
    case '+':
    case '-':
    case ':':
      return rest;
    case '$': {
      const long length = std::stol(rest);
      if (length < 0) return "(nil)";
      std::string body = connection.readExact(static_cast<std::size_t>(length) + 2, "a bulk");
      return body.substr(0, static_cast<std::size_t>(length));
    }
    case '*': {
      const long count = std::stol(rest);
      std::string out;
      for (long i = 0; i < count; ++i) {
        if (i > 0) out += "\n";
        out += readReply(connection);
      }
      return out;
    }
    default:
      throw std::runtime_error("unexpected Redis reply: " + line);
  }
}

}  // namespace

bool RedisServer::supportsTls() {
  // Built without TLS, redis-server refuses --tls-port at start; built with it, it links libssl.
  CommandResult ldd = runCommand({"ldd", findRedisServer()});
  return ldd.output.find("libssl") != std::string::npos;
}

RedisServer::RedisServer(Options options) : options_(std::move(options)) {
  std::string pattern = fs::temp_directory_path().string() + "/popbridge-redis-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  if (options_.tls) pki_ = makeTestPki(dir_ + "/pki");
  // A port free when picked may be taken by another test's process before Redis binds it.
  for (int attempt = 1;; ++attempt) {
    port_ = freeLoopbackPort();
    try {
      start();
      return;
    } catch (const std::runtime_error& error) {
      if (attempt == 5 || std::string(error.what()).find("already in use") == std::string::npos) {
        throw;
      }
    }
  }
}

RedisServer::~RedisServer() {
  kill();
  if (std::getenv("PBTEST_KEEP_LOGS") == nullptr) {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
}

std::string RedisServer::url() const {
  return options_.tls ? "rediss://localhost:" + std::to_string(port_)
                      : "redis://127.0.0.1:" + std::to_string(port_);
}

void RedisServer::start() {
  if (pid_ > 0) return;
  std::vector<std::string> args = {findRedisServer(),  "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly",     "no",     "--dir",     dir_,     "--logfile",
                                   dir_ + "/redis.log"};
  if (options_.tls) {
    args.insert(args.end(), {"--port", "0", "--tls-port", std::to_string(port_), "--tls-cert-file",
                             pki_.serverCert, "--tls-key-file", pki_.serverKey,
                             "--tls-ca-cert-file", pki_.caCert, "--tls-auth-clients", "no"});
  } else {
    args.insert(args.end(), {"--port", std::to_string(port_)});
  }
  if (!options_.password.empty()) args.insert(args.end(), {"--requirepass", options_.password});
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    const int in = open("/dev/null", O_RDWR);
    if (in < 0) _exit(126);
    dup2(in, STDIN_FILENO);
    dup2(in, STDOUT_FILENO);
    close_range(3, ~0U, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited during start-up; log: " +
                               readWholeFile(dir_ + "/redis.log"));
    }
    try {
      if (command({"PING"}) == "PONG") return;
    } catch (const std::exception& error) {
      last = error.what();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill();
  throw std::runtime_error("redis-server did not answer PING: " + last);
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string RedisServer::command(const std::vector<std::string>& args) const {
  TestConnection connection(port_, 5000);
  if (options_.tls) connection.startTls(pki_.caCert, "localhost");
  auto encode = [](const std::vector<std::string>& words) {
    std::string out = "*" + std::to_string(words.size()) + "\r\n";
    for (const std::string& word : words) {
      out += "$" + std::to_string(word.size()) + "\r\n" + word + "\r\n";
    }
    return out;
  };
  if (!options_.password.empty()) {
    connection.sendAll(encode({"AUTH", options_.password}));
    const std::string answer = readReply(connection);
    if (answer != "OK") throw std::runtime_error("redis AUTH: " + answer);
  }
  connection.sendAll(encode(args));
  return readReply(connection);
}

}  // namespace popbridge::test
