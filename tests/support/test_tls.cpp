#include "tests/support/test_tls.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace popbridge::test {
namespace {

// Runs argv[0] (looked up in PATH) with stdout and stderr captured; throws with the output when it
// fails, because a bare "exit status 1" from openssl says nothing.
void runOrThrow(const std::vector<std::string>& args) {
  int pipeFds[2];
  if (pipe2(pipeFds, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe2 failed: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipeFds[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);

  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  pid_t pid = -1;
  const int spawnError = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipeFds[1]);
  if (spawnError != 0) {
    close(pipeFds[0]);
    throw std::runtime_error("cannot run " + args[0] + ": " + std::strerror(spawnError));
  }

  std::string output;
  char chunk[4096];
  for (;;) {
    const ssize_t n = read(pipeFds[0], chunk, sizeof chunk);
    if (n > 0) {
      output.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipeFds[0]);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string command;
    for (const auto& arg : args) command += (command.empty() ? "" : " ") + arg;
    throw std::runtime_error("command failed (status " + std::to_string(status) + "): " + command +
                             "\n" + output);
  }
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

// One `openssl req -x509` per certificate: the key, and the certificate signed by the CA (or by
// itself), come from a config file that names exactly the extensions wanted, so the defaults of
// the system openssl.cnf (such as CA:TRUE from v3_ca) cannot creep in.
void makeCertificate(const std::string& base, const std::string& commonName,
                     const std::string& extensions, const std::vector<std::string>& keyArgs,
                     const TestPki* issuer, const std::string& serial) {
  writeFile(base + ".cnf",
            "[req]\n"
            "distinguished_name = dn\n"
            "x509_extensions = ext\n"
            "prompt = no\n"
            "[dn]\n"
            "CN = " +
                commonName +
                "\n"
                "[ext]\n" +
                extensions);
  std::vector<std::string> args = {"openssl",     "req",         "-x509",   "-config",
                                   base + ".cnf", "-nodes",      "-keyout", base + ".key",
                                   "-out",        base + ".pem", "-days",   "30",
                                   "-sha256",     "-set_serial", serial};
  args.insert(args.end(), keyArgs.begin(), keyArgs.end());
  if (issuer != nullptr) {
    args.insert(args.end(), {"-CA", issuer->caCert, "-CAkey", issuer->caKey});
  }
  runOrThrow(args);
}

const std::vector<std::string> kEcKey = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"};

std::string leafExtensions(const std::string& subjectAltName) {
  return "basicConstraints = critical, CA:FALSE\n"
         "keyUsage = critical, digitalSignature, keyEncipherment\n"
         "extendedKeyUsage = serverAuth\n"
         "subjectKeyIdentifier = hash\n"
         "authorityKeyIdentifier = keyid\n"
         "subjectAltName = " +
         subjectAltName + "\n";
}

}  // namespace

TestPki makeTestPki(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir + ": " + ec.message());

  TestPki pki;
  pki.dir = dir;
  pki.caCert = dir + "/ca.pem";
  pki.caKey = dir + "/ca.key";
  pki.serverCert = dir + "/server.pem";
  pki.serverKey = dir + "/server.key";
  pki.wrongNameCert = dir + "/wrong-name.pem";
  pki.wrongNameKey = dir + "/wrong-name.key";

  makeCertificate(dir + "/ca", "popbridge test CA",
                  "basicConstraints = critical, CA:TRUE\n"
                  "keyUsage = critical, keyCertSign, cRLSign\n"
                  "subjectKeyIdentifier = hash\n",
                  kEcKey, nullptr, "1");
  makeCertificate(dir + "/server", "localhost", leafExtensions("DNS:localhost, IP:127.0.0.1"),
                  {"-newkey", "rsa:2048"}, &pki, "2");
  makeCertificate(dir + "/wrong-name", "wrong.example", leafExtensions("DNS:wrong.example"), kEcKey,
                  &pki, "3");

  // Only the owner needs the keys: Dovecot reads them in its config process, which runs as whoever
  // started it.
  for (const auto* key : {&pki.caKey, &pki.serverKey, &pki.wrongNameKey}) {
    std::filesystem::permissions(
        *key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  return pki;
}

}  // namespace popbridge::test
