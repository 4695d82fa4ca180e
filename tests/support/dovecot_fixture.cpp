#include "tests/support/dovecot_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/test_clients.h"
#include "tests/support/token_endpoint.h"

namespace popbridge::test {
namespace {

namespace fs = std::filesystem;

constexpr auto kStartTimeout = std::chrono::seconds(20);
constexpr auto kStopGrace = std::chrono::seconds(5);
constexpr int kStartAttempts = 5;

std::string errnoText(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// Reserves `count` distinct ports by holding them all open until every one is chosen, so the
// kernel cannot hand out the same port twice.
std::vector<std::uint16_t> freeLoopbackPorts(std::size_t count) {
  std::vector<int> fds;
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < count; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      const std::string error = errnoText("cannot reserve a loopback port");
      if (fd >= 0) close(fd);
      for (const int reserved : fds) close(reserved);
      throw std::runtime_error(error);
    }
    fds.push_back(fd);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (const int fd : fds) close(fd);
  return ports;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void writeFile(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error(errnoText("cannot create " + path));
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!ok) throw std::runtime_error(errnoText("cannot write " + path));
}

std::string lastLines(const std::string& text, std::size_t lines) {
  if (lines == 0) return {};
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  std::size_t found = 0;
  while (pos > 0) {
    const auto newline = text.rfind('\n', pos - 1);
    if (newline == std::string::npos) return text;
    if (++found == lines) return text.substr(newline + 1);
    pos = newline;
  }
  return text;
}

std::string findDovecotBinary() {
  for (const char* candidate : {"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"}) {
    if (access(candidate, X_OK) == 0) return candidate;
  }
  throw std::runtime_error(
      "dovecot not found in /usr/sbin or /usr/local/sbin; install dovecot-imapd and "
      "dovecot-pop3d");
}

// Usernames go into paths (home=<dir>/home/%u) and the passwd-file, passwords into the
// passwd-file: keep both to what those formats carry safely.
void validateUser(const DovecotUser& user) {
  if (user.name.empty() || user.name.size() > 64) {
    throw std::invalid_argument("DovecotFixture: user name must have 1 to 64 characters");
  }
  for (const char c : user.name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == '@' || c == '+';
    if (!ok || user.name.front() == '.') {
      throw std::invalid_argument("DovecotFixture: user name '" + user.name +
                                  "' may only use letters, digits and . _ - @ + (no leading .)");
    }
  }
  for (const char c : user.password) {
    if (c == ':' || c == '\n' || c == '\r' || c == '\0') {
      throw std::invalid_argument("DovecotFixture: the password of '" + user.name +
                                  "' contains ':', CR, LF or NUL, which passwd-file cannot hold");
    }
  }
}

// The size Dovecot reports for a stored file: every LF without a CR before it is served as CRLF.
std::size_t servedSize(const std::string& stored) {
  std::size_t size = stored.size();
  for (std::size_t i = 0; i < stored.size(); ++i) {
    if (stored[i] == '\n' && (i == 0 || stored[i - 1] != '\r')) ++size;
  }
  return size;
}

bool folderNameOk(const std::string& folder) {
  if (folder.empty() || folder.front() == '.' || folder.back() == '.' ||
      folder.find("..") != std::string::npos) {
    return false;
  }
  for (const char c : folder) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-' || c == ' ';
    if (!ok) return false;
  }
  return true;
}

// True while a process of the group is alive. Zombies do not count: once the master is gone its
// children are reaped by init, which may take a while, but they hold no sockets or files.
bool groupHasLiveMembers(pid_t group) {
  if (kill(-group, 0) != 0) return false;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream statFile(entry.path() / "stat");
    std::string stat;
    std::getline(statFile, stat);
    // Fields after the parenthesised command: state ppid pgrp ...
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    char state = 0;
    long parent = 0;
    long processGroup = 0;
    if (fields >> state >> parent >> processGroup && processGroup == group && state != 'Z') {
      return true;
    }
  }
  return false;
}

// The explicit {PLAIN} prefix keeps a password that starts with "{" from being read as a scheme.
std::string passwdLine(const DovecotUser& user) {
  return user.name + ":{PLAIN}" + user.password + "::::::\n";
}

// Where the instance directory goes. Maildir seeding is one create, write, chown and rename per
// message, which costs 0.2-1 ms per file on a busy disk but 30 us on tmpfs, so /dev/shm is used
// when it is a tmpfs with room (container defaults of 64 MB are too small for big-message tests).
std::string scratchRoot() {
  if (const char* configured = std::getenv("POPBRIDGE_TEST_TMPDIR"); configured && *configured) {
    return configured;
  }
  struct statfs fsInfo {};
  struct statvfs space {};
  if (statfs("/dev/shm", &fsInfo) == 0 && fsInfo.f_type == TMPFS_MAGIC &&
      statvfs("/dev/shm", &space) == 0 &&
      static_cast<unsigned long long>(space.f_bavail) * space.f_frsize >= (1ULL << 30) &&
      access("/dev/shm", W_OK | X_OK) == 0) {
    return "/dev/shm";
  }
  return "/tmp";
}

}  // namespace

DovecotFixture& DovecotFixture::shared() {
  // A function-local static: started on first use, stopped by the exit-time destructor.
  static DovecotFixture instance;
  return instance;
}

DovecotFixture::DovecotFixture(Options options)
    : options_(std::move(options)), users_(options_.users) {
  for (std::size_t i = 0; i < users_.size(); ++i) {
    validateUser(users_[i]);
    for (std::size_t j = 0; j < i; ++j) {
      if (users_[j].name == users_[i].name) {
        throw std::invalid_argument("DovecotFixture: user '" + users_[i].name + "' given twice");
      }
    }
  }

  std::string pattern = scratchRoot() + "/popbridge-dovecot-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(errnoText("mkdtemp " + pattern));
  dir_ = pattern;

  try {
    // Dovecot's unprivileged processes (auth, login, mail) must traverse the directory.
    if (chmod(dir_.c_str(), 0755) != 0) throw std::runtime_error(errnoText("chmod " + dir_));

    if (geteuid() == 0) {
      // Dovecot refuses uid 0 for mail, so root runs store mail as nobody.
      const passwd* pw = getpwnam("nobody");
      const group* gr = getgrnam("nogroup");
      if (pw == nullptr || gr == nullptr) {
        throw std::runtime_error("DovecotFixture: user nobody or group nogroup is missing");
      }
      mailUid_ = pw->pw_uid;
      mailGid_ = gr->gr_gid;
      mailUser_ = "nobody";
      mailGroup_ = "nogroup";
    } else {
      const passwd* pw = getpwuid(geteuid());
      const group* gr = getgrgid(getegid());
      if (pw == nullptr || gr == nullptr) {
        throw std::runtime_error("DovecotFixture: the current uid/gid has no name");
      }
      mailUid_ = pw->pw_uid;
      mailGid_ = gr->gr_gid;
      mailUser_ = pw->pw_name;
      mailGroup_ = gr->gr_name;
    }

    pki_ = makeTestPki(dir_ + "/pki");
    prepareDirectory();
    if (options_.oauth2) writeOAuth2Files();
    seedTime_ = static_cast<long long>(std::time(nullptr));

    std::string lastFailure;
    for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
      const auto ports = freeLoopbackPorts(4);
      imapPort_ = ports[0];
      imapsPort_ = ports[1];
      pop3Port_ = ports[2];
      pop3sPort_ = ports[3];
      writeConfig();
      spawn();
      lastFailure = waitUntilReady();
      if (lastFailure.empty()) return;
      // Another process can take a port between our check and Dovecot's bind; pick new ones.
      if (lastFailure.find("Address already in use") == std::string::npos) break;
    }
    throw std::runtime_error("DovecotFixture: Dovecot did not start in " + dir_ + ": " +
                             lastFailure);
  } catch (...) {
    killAndReap();
    if (std::getenv("POPBRIDGE_KEEP_DOVECOT") == nullptr) {
      std::error_code ignored;
      fs::remove_all(dir_, ignored);
    }
    throw;
  }
}

DovecotFixture::~DovecotFixture() {
  try {
    stop();
  } catch (const std::exception& e) {
    std::cerr << "DovecotFixture: stopping Dovecot failed: " << e.what() << "\n";
  }
  if (std::getenv("POPBRIDGE_KEEP_DOVECOT") != nullptr) {
    std::cerr << "DovecotFixture: kept " << dir_ << " (POPBRIDGE_KEEP_DOVECOT is set)\n";
    return;
  }
  std::error_code error;
  fs::remove_all(dir_, error);
  if (error) {
    std::cerr << "DovecotFixture: cannot remove " << dir_ << ": " << error.message() << "\n";
  }
}

std::uint16_t DovecotFixture::pop3Port() const {
  if (!options_.enablePop3) throw std::logic_error("DovecotFixture: POP3 is not enabled");
  return pop3Port_;
}

std::uint16_t DovecotFixture::pop3sPort() const {
  if (!options_.enablePop3) throw std::logic_error("DovecotFixture: POP3 is not enabled");
  return pop3sPort_;
}

const DovecotUser& DovecotFixture::user(std::string_view name) const {
  for (const auto& candidate : users_) {
    if (candidate.name == name) return candidate;
  }
  throw std::out_of_range("DovecotFixture: no user '" + std::string(name) + "'");
}

void DovecotFixture::prepareDirectory() {
  for (const char* sub : {"/state", "/home", "/users.d"}) {
    if (mkdir((dir_ + sub).c_str(), 0755) != 0) throw std::runtime_error(errnoText("mkdir"));
  }
  for (const auto& user : users_) {
    writeUserFile(user);
    createMaildir(maildirPath(user.name));
  }
}

void DovecotFixture::writeUserFile(const DovecotUser& user) const {
  // One passwd-file per user (path users.d/%u): Dovecot re-checks a changed passwd-file at most
  // once a second, but reads a file it has not seen at once, so addUser() needs no waiting.
  // Readable by Dovecot's unprivileged auth process; these are throwaway test passwords.
  writeFile(dir_ + "/users.d/" + user.name, passwdLine(user), 0644);
}

void DovecotFixture::createMaildir(const std::string& path) const {
  // Create the home and each missing level, owned by the mail uid like Dovecot's own.
  const fs::path home = fs::path(dir_) / "home";
  std::vector<fs::path> levels;
  for (fs::path p = path; p != home && p.has_parent_path(); p = p.parent_path()) {
    levels.push_back(p);
  }
  levels.push_back(fs::path(path) / "cur");
  levels.push_back(fs::path(path) / "new");
  levels.push_back(fs::path(path) / "tmp");
  std::reverse(levels.begin(), levels.end() - 3);
  for (const auto& level : levels) {
    if (mkdir(level.c_str(), 0700) != 0) {
      if (errno == EEXIST) continue;
      throw std::runtime_error(errnoText("mkdir " + level.string()));
    }
    if (chown(level.c_str(), mailUid_, mailGid_) != 0 && geteuid() == 0) {
      throw std::runtime_error(errnoText("chown " + level.string()));
    }
  }
}

std::string DovecotFixture::maildirPath(const std::string& user, const std::string& folder) const {
  this->user(user);
  const std::string root = dir_ + "/home/" + user + "/Maildir";
  if (folder == "INBOX") return root;
  if (!folderNameOk(folder)) {
    throw std::invalid_argument("DovecotFixture: folder name '" + folder +
                                "' must be ASCII letters, digits, space, _ - and inner dots");
  }
  // Maildir++: folder "A.B" lives in Maildir/.A.B
  return root + "/." + folder;
}

DovecotUser DovecotFixture::addUser(const std::string& name, const std::string& password) {
  DovecotUser added{
      name, password.empty() ? name + "-Pass-" + std::to_string(users_.size() + 1) : password};
  validateUser(added);
  for (const auto& existing : users_) {
    if (existing.name == name) {
      throw std::invalid_argument("DovecotFixture: user '" + name + "' exists already");
    }
  }
  createMaildir(dir_ + "/home/" + name + "/Maildir");
  // Written to a temporary name and renamed, so Dovecot never reads half a line.
  const std::string from = dir_ + "/users.d/.new-" + name;
  const std::string to = dir_ + "/users.d/" + name;
  writeFile(from, passwdLine(added), 0644);
  if (rename(from.c_str(), to.c_str()) != 0) throw std::runtime_error(errnoText("rename " + to));
  users_.push_back(added);
  return added;
}

void DovecotFixture::writeConfig() const {
  const std::string& d = dir_;
  std::ostringstream conf;
  conf << "# Written by popbridge::test::DovecotFixture (tests/support/dovecot_fixture.cpp).\n"
       << "instance_name = " << fs::path(d).filename().string() << "\n"
       << "protocols = imap" << (options_.enablePop3 ? " pop3" : "") << "\n"
       << "listen = 127.0.0.1\n"
       << "base_dir = " << d << "/run\n"
       << "state_dir = " << d << "/state\n"
       << "log_path = " << d << "/dovecot.log\n"
       << "info_log_path = " << d << "/dovecot.log\n"
       << "debug_log_path = " << d << "/dovecot.log\n"
       << "log_timestamp = \"%Y-%m-%d %H:%M:%S \"\n"
       << "auth_verbose = yes\n"
       << "auth_verbose_passwords = no\n"
       << "auth_mechanisms = plain login" << (options_.oauth2 ? " xoauth2 oauthbearer" : "") << "\n"
       << "disable_plaintext_auth = no\n"
       // Dovecot waits 2 s before every failed login by default; tests of bad credentials need the
       // reply, not the wait.
       << "auth_failure_delay = 0\n"
       << "ssl = yes\n"
       << "ssl_cert = <" << pki_.serverCert << "\n"
       << "ssl_key = <" << pki_.serverKey << "\n"
       << "ssl_dh = </usr/share/dovecot/dh.pem\n"
       << "mail_location = maildir:~/Maildir\n"
       << "mail_uid = " << mailUser_ << "\n"
       << "mail_gid = " << mailGroup_ << "\n"
       << "first_valid_uid = 1\n"
       << "first_valid_gid = 1\n"
       // Test mail is disposable; fsync only slows APPEND down.
       << "mail_fsync = never\n"
       // Benchmarks open hundreds of sessions for one user from 127.0.0.1 (default limit: 10).
       << "mail_max_userip_connections = 10000\n"
       << "default_process_limit = 2000\n"
       << "default_client_limit = 10000\n"
       << "default_vsz_limit = 1G\n"
       << "passdb {\n"
       << "  driver = passwd-file\n"
       << "  args = scheme=PLAIN username_format=%u " << d << "/users.d/%u\n"
       << (options_.oauth2 ? "  mechanisms = plain login\n" : "") << "}\n";
  if (options_.oauth2) {
    conf << "passdb {\n"
         << "  driver = oauth2\n"
         << "  mechanisms = xoauth2 oauthbearer\n"
         << "  args = " << d << "/oauth2/dovecot-oauth2.conf.ext\n"
         << "}\n";
  }
  if (!options_.specialUse.empty()) {
    // The same namespace Dovecot makes when none is configured (maildir's '.' separator, empty
    // prefix), only with the folders named.
    conf << "namespace inbox {\n  inbox = yes\n";
    for (const auto& [folder, attribute] : options_.specialUse) {
      conf << "  mailbox \"" << folder << "\" {\n    special_use = " << attribute
           << "\n    auto = create\n  }\n";
    }
    conf << "}\n";
  }
  conf << "userdb {\n"
       << "  driver = passwd-file\n"
       << "  args = username_format=%u " << d << "/users.d/%u\n"
       << "  default_fields = home=" << d << "/home/%u\n"
       << "}\n";

  // High-performance login mode: long-lived login processes that each serve many connections,
  // started before the first client, instead of one process per connection.
  auto loginService = [&](const char* service, const char* plain, std::uint16_t plainPort,
                          const char* tls, std::uint16_t tlsPort) {
    conf << "service " << service << " {\n"
         << "  inet_listener " << plain << " {\n"
         << "    address = 127.0.0.1\n"
         << "    port = " << plainPort << "\n"
         << "  }\n"
         << "  inet_listener " << tls << " {\n"
         << "    address = 127.0.0.1\n"
         << "    port = " << tlsPort << "\n"
         << "    ssl = yes\n"
         << "  }\n"
         << "  service_count = 0\n"
         << "  process_min_avail = 2\n"
         << "  client_limit = 1000\n"
         << "  vsz_limit = 1G\n";
    if (geteuid() != 0) conf << "  chroot =\n";
    conf << "}\n";
  };
  loginService("imap-login", "imap", imapPort_, "imaps", imapsPort_);
  // One mail process per session, so the process limit is the session limit.
  conf << "service imap {\n  process_limit = 2000\n}\n";
  if (options_.enablePop3) {
    loginService("pop3-login", "pop3", pop3Port_, "pop3s", pop3sPort_);
    conf << "service pop3 {\n  process_limit = 2000\n}\n";
  }
  conf << "protocol imap {\n  mail_max_userip_connections = 10000\n}\n";
  if (options_.enablePop3) {
    conf << "protocol pop3 {\n  mail_max_userip_connections = 10000\n}\n";
  }
  conf << "service anvil {\n";
  if (!options_.authPenalty) {
    // The auth process (user dovecot, or the current user) cannot connect to a mode-0 socket,
    // and then runs without the penalty: Dovecot's documented switch. login_trusted_networks,
    // which its documentation says exempts an address, did not in 2.3.19.
    conf << "  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n";
  }
  if (geteuid() != 0) conf << "  chroot =\n";
  conf << "}\n";
  if (geteuid() != 0) {
    // Without root Dovecot cannot switch users: every process runs as the current user.
    conf << "default_internal_user = " << mailUser_ << "\n"
         << "default_internal_group = " << mailGroup_ << "\n"
         << "default_login_user = " << mailUser_ << "\n";
  }
  if (!options_.extraConfig.empty()) {
    conf << "# extraConfig\n" << options_.extraConfig << "\n";
  }
  writeFile(d + "/dovecot.conf", conf.str(), 0644);
}

std::string DovecotFixture::oauth2KeysDir() const {
  if (!options_.oauth2) throw std::logic_error("DovecotFixture: OAuth2 is not enabled");
  return dir_ + "/oauth2/keys/";
}

void DovecotFixture::writeOAuth2Files() const {
  const DovecotOAuth2Options& oauth2 = *options_.oauth2;
  // The auth process runs as user dovecot: every level needs o+x, the files o+r.
  const std::string base = dir_ + "/oauth2";
  for (const std::string& level : {base, base + "/keys"}) {
    if (mkdir(level.c_str(), 0755) != 0) throw std::runtime_error(errnoText("mkdir " + level));
    chmod(level.c_str(), 0755);
  }
  std::ostringstream ext;
  ext << "# Written by popbridge::test::DovecotFixture.\n"
      << "username_attribute = sub\n";
  if (oauth2.introspectionPost) {
    ext << "introspection_mode = post\n"
        << "introspection_url = " << oauth2.introspectionUrl << "\n"
        << "active_attribute = active\n"
        << "active_value = true\n";
    if (!oauth2.introspectionCaFile.empty()) {
      ext << "tls_ca_cert_file = " << oauth2.introspectionCaFile << "\n";
    }
  } else {
    ext << "introspection_mode = local\n"
        << "local_validation_key_dict = fs:posix:prefix=" << oauth2KeysDir() << "\n";
  }
  writeFile(base + "/dovecot-oauth2.conf.ext", ext.str(), 0644);
  if (oauth2.jwtSecret.empty()) return;

  // Dovecot's dict keys write '/' as %2f so that a name stays one path component.
  auto escape = [](const std::string& name) {
    std::string out;
    for (const char c : name) out += c == '/' ? std::string("%2f") : std::string(1, c);
    return out;
  };
  const std::string keyDir = oauth2KeysDir() + escape(oauth2.azp.empty() ? "default" : oauth2.azp);
  for (const std::string& level : {keyDir, keyDir + "/HS256"}) {
    if (mkdir(level.c_str(), 0755) != 0) throw std::runtime_error(errnoText("mkdir " + level));
    chmod(level.c_str(), 0755);
  }
  // The base64 of the secret without a newline: Dovecot decodes the whole file.
  writeFile(keyDir + "/HS256/" + escape(oauth2.keyId.empty() ? "default" : oauth2.keyId),
            base64Encode(oauth2.jwtSecret), 0644);
}

void DovecotFixture::spawn() {
  const std::string binary = findDovecotBinary();
  const std::string config = dir_ + "/dovecot.conf";
  const std::string stderrPath = dir_ + "/dovecot.stderr";
  std::vector<std::string> args = {binary, "-F", "-c", config};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(errnoText("fork"));
  if (pid == 0) {
    // Only async-signal-safe calls until exec: the test process may have other threads.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(stderrPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    // Inherited sockets (a proxy listener in the same test) would otherwise outlive their owner.
    close_range(3, ~0U, 0);
    execv(argv[0], argv.data());
    _exit(127);
  }
  setpgid(pid, pid);
  pid_ = pid;
}

std::string DovecotFixture::waitUntilReady() {
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      kill(-pid_, SIGKILL);  // children that the dying master left behind
      pid_ = -1;
      const std::string how = WIFEXITED(status)
                                  ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                  : "was killed by signal " + std::to_string(WTERMSIG(status));
      return "dovecot " + how + " during start-up\n" + startupDiagnostics();
    }
    try {
      TestConnection imap(imapPort_, 2000);
      const std::string greeting = imap.readLine("the IMAP greeting");
      if (greeting.rfind("* OK", 0) != 0) {
        killAndReap();
        return "port " + std::to_string(imapPort_) + " greeted with something else: " + greeting;
      }
      if (options_.enablePop3) {
        TestConnection pop3(pop3Port_, 2000);
        const std::string pop3Greeting = pop3.readLine("the POP3 greeting");
        if (pop3Greeting.rfind("+OK", 0) != 0) {
          killAndReap();
          return "POP3 port " + std::to_string(pop3Port_) + " greeted with " + pop3Greeting;
        }
      }
      return {};
    } catch (const std::runtime_error&) {
      // Not listening yet.
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string diagnostics = startupDiagnostics();
  killAndReap();
  return "no IMAP greeting on port " + std::to_string(imapPort_) + " within " +
         std::to_string(kStartTimeout.count()) + " s\n" + diagnostics;
}

std::string DovecotFixture::startupDiagnostics() const {
  std::string text;
  const std::string stderrText = readFile(dir_ + "/dovecot.stderr");
  if (!stderrText.empty()) text += "--- dovecot stderr ---\n" + lastLines(stderrText, 30);
  text += "--- " + logPath() + " (last lines) ---\n" + logTail(30);
  return text;
}

void DovecotFixture::killAndReap() {
  if (pid_ <= 0) return;
  const pid_t group = pid_;
  // The whole group at once: a master told alone waits about a second for its children, and
  // they take longer still to notice that it has gone.
  kill(-group, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kStopGrace;
  bool reaped = false;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t result = waitpid(pid_, nullptr, WNOHANG);
    if (result == pid_ || (result < 0 && errno == ECHILD)) {
      reaped = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!reaped) {
    kill(-group, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  // Login and mail processes that outlived the master would keep the ports and the directory.
  kill(-group, SIGKILL);
  pid_ = -1;
  const auto groupDeadline = std::chrono::steady_clock::now() + kStopGrace;
  while (groupHasLiveMembers(group) && std::chrono::steady_clock::now() < groupDeadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void DovecotFixture::stop() {
  if (pid_ <= 0) return;
  killAndReap();
  // Killed processes release their sockets a moment after the signal; callers that test
  // "upstream down" need the refusal to be certain.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<std::uint16_t> ports = {imapPort_, imapsPort_};
  if (options_.enablePop3) {
    ports.push_back(pop3Port_);
    ports.push_back(pop3sPort_);
  }
  for (const auto port : ports) {
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        TestConnection probe(port, 500);
      } catch (const std::runtime_error&) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

std::string DovecotFixture::logTail(std::size_t lines) const {
  return lastLines(readFile(logPath()), lines);
}

std::vector<std::string> DovecotFixture::loginRips(const std::string& user,
                                                   std::size_t atLeast) const {
  const std::string login = "Login: user=<" + user + ">";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::vector<std::string> rips;
    std::istringstream log(readFile(logPath()));
    std::string line;
    while (std::getline(log, line)) {
      std::size_t at = line.find("rip=");
      if (line.find(login) == std::string::npos || at == std::string::npos) continue;
      at += 4;
      rips.push_back(line.substr(at, line.find(',', at) - at));
    }
    if (rips.size() >= atLeast || std::chrono::steady_clock::now() >= deadline) return rips;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void DovecotFixture::seedMaildir(const std::string& user, const std::vector<std::string>& messages,
                                 const std::string& folder) {
  const std::string path = maildirPath(user, folder);
  if (folder != "INBOX") {
    createMaildir(path);
    const std::string marker = path + "/maildirfolder";
    if (access(marker.c_str(), F_OK) != 0) {
      writeFile(marker, "", 0600);
      if (chown(marker.c_str(), mailUid_, mailGid_) != 0 && geteuid() == 0) {
        throw std::runtime_error(errnoText("chown " + marker));
      }
    }
  }
  const std::string pid = std::to_string(getpid());
  for (const auto& message : messages) {
    // Dovecot numbers new files by the time in the name, then by the M (microseconds) field: one
    // time per fixture and a counter as M make the UIDs follow the order given. S= and W= carry the
    // stored and the served size, as Dovecot's own deliveries do, so listing needs no file reads.
    const std::string base = std::to_string(seedTime_) + ".M" + std::to_string(++seedCounter_) +
                             "P" + pid + ".popbridge";
    const std::string name = base + ",S=" + std::to_string(message.size()) +
                             ",W=" + std::to_string(servedSize(message)) + ":2,";
    const std::string tmpPath = path + "/tmp/" + base;
    const int fd = open(tmpPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error(errnoText("create " + tmpPath));
    std::size_t written = 0;
    while (written < message.size()) {
      const ssize_t n = write(fd, message.data() + written, message.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string error = errnoText("write " + tmpPath);
        close(fd);
        throw std::runtime_error(error);
      }
      written += static_cast<std::size_t>(n);
    }
    if (fchown(fd, mailUid_, mailGid_) != 0 && geteuid() == 0) {
      const std::string error = errnoText("chown " + tmpPath);
      close(fd);
      throw std::runtime_error(error);
    }
    close(fd);
    // tmp/ then rename, as the Maildir rules ask: a running Dovecot never sees a partial file.
    const std::string curPath = path + "/cur/" + name;
    if (rename(tmpPath.c_str(), curPath.c_str()) != 0) {
      throw std::runtime_error(errnoText("rename to " + curPath));
    }
  }
}

std::uint32_t DovecotFixture::appendMessage(const std::string& user, std::string_view bytes,
                                            std::string_view flags, const std::string& folder) {
  const DovecotUser account = this->user(user);
  ImapTestClient imap(imapPort_);
  imap.login(account.name, account.password);
  if (folder != "INBOX") imap.create(folder);
  const std::uint32_t uid = imap.append(folder, bytes, flags);
  imap.logout();
  return uid;
}

}  // namespace popbridge::test
