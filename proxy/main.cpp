// popbridge: a POP3 front end for IMAP mailboxes.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/password.h"
#include "proxy/boringssl_check.h"
#include "proxy/check_upstream.h"
#include "proxy/log.h"
#include "proxy/oauth_login.h"
#include "proxy/server.h"
#include "proxy/tls_context.h"
#include "proxy/uidl_command.h"

extern char** environ;

namespace {

constexpr const char* kUsage =
    "Usage: popbridge --config FILE        run the proxy\n"
    "       popbridge --check-config FILE  validate FILE, print a summary; exit 0 when valid\n"
    "       popbridge hash-password        read a password on stdin, print its argon2id hash\n"
    "       popbridge oauth login NAME [--config FILE]\n"
    "                                      sign [oauth2.NAME] in (device code flow) and store\n"
    "                                      its refresh token; FILE defaults to\n"
    "                                      /etc/popbridge/popbridge.toml\n"
    "       popbridge check-upstream [--config FILE] [--user USER] [--password-file FILE]\n"
    "                                      check the upstream step by step: resolve, connect,\n"
    "                                      TLS, greeting, CAPABILITY (STARTTLS); with --user\n"
    "                                      also login, EXAMINE of the folder, LOGOUT. USER is an\n"
    "                                      [[account]] (its upstream credentials) or an upstream\n"
    "                                      login (password from FILE, the terminal or stdin).\n"
    "                                      Exit: 0 ok, 1 config invalid, 2 usage, 3 DNS,\n"
    "                                      4 connect, 5 TLS, 6 IMAP greeting/protocol,\n"
    "                                      7 login refused, 8 folder (EXAMINE) failed,\n"
    "                                      9 no OAuth2 access token\n"
    "       popbridge uidl import [--config FILE] [--folder NAME] [--replace] ACCOUNT FILE\n"
    "                                      store an old POP3 server's UIDLs (an import file)\n"
    "                                      for ACCOUNT, served once the first session matched\n"
    "                                      them; exit 0 ok, 1 failed or refused, 2 usage or file\n"
    "       popbridge uidl capture [--tls|--starttls] [--ca-file FILE] [--insecure-skip-verify]\n"
    "                       [--min-tls-version V] [--allow-plaintext]\n"
    "                       HOST:PORT USER --password-file FILE [--output FILE]\n"
    "                                      write the import file of USER's mailbox on an old\n"
    "                                      POP3 server (UIDL, LIST, TOP n 0)\n"
    "       popbridge --version\n"
    "       popbridge --help\n"
    "\n"
    "Environment overrides (POPBRIDGE_UPSTREAM_HOST and others) are listed in the README.\n";

popbridge::config::Environment readEnvironment() {
  popbridge::config::Environment env;
  for (char** entry = environ; entry && *entry; ++entry) {
    std::string_view item(*entry);
    auto eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = item.substr(0, eq);
    // The proxy variables curl honours, for the token endpoint of [oauth2.NAME].
    const bool proxyVariable =
        name == "https_proxy" || name == "HTTPS_PROXY" || name == "no_proxy" || name == "NO_PROXY";
    if (!proxyVariable && item.rfind("POPBRIDGE_", 0) != 0) continue;
    env.emplace(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
  }
  return env;
}

// Loads and reports; returns the config only when it is valid.
std::optional<popbridge::config::Config> load(const std::string& path) {
  auto result =
      popbridge::config::loadConfigFile(path, readEnvironment(), popbridge::proxy::checkCipherList);
  for (const auto& error : result.errors) std::cerr << "error: " << error.toString() << "\n";
  for (const auto& warning : result.warnings) std::cerr << "warning: " << warning << "\n";
  if (!result.ok()) {
    std::cerr << path << ": " << result.errors.size() << " error(s)\n";
    return std::nullopt;
  }
  return std::move(result.config);
}

int hashPassword() {
  std::string password;
  if (isatty(STDIN_FILENO)) std::cerr << "Password: " << std::flush;
  if (!std::getline(std::cin, password)) {
    std::cerr << "error: no password on stdin\n";
    return 2;
  }
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (password.empty()) {
    std::cerr << "error: empty password\n";
    return 2;
  }
  std::cout << popbridge::config::hashPassword(password) << "\n";
  std::fill(password.begin(), password.end(), '\0');
  return 0;
}

// popbridge oauth login NAME [--config FILE]
int oauthCommand(int argc, char** argv) {
  std::string configPath = "/etc/popbridge/popbridge.toml";
  std::vector<std::string> words;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      configPath = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      configPath = std::string(arg.substr(9));
    } else {
      words.emplace_back(arg);
    }
  }
  if (words.size() != 2 || words[0] != "login") {
    std::cerr << "Usage: popbridge oauth login NAME [--config FILE]\n";
    return 2;
  }
  auto config = load(configPath);
  if (!config) return 1;
  ::signal(SIGPIPE, SIG_IGN);
  return popbridge::proxy::runOAuthLogin(*config, words[1], std::cout, std::cerr);
}

// popbridge check-upstream [--config FILE] [--user USER] [--password-file FILE]
int checkUpstreamCommand(int argc, char** argv) {
  std::string configPath = "/etc/popbridge/popbridge.toml";
  popbridge::proxy::CheckUpstreamOptions options;
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    std::string* target = arg == "--config"          ? &configPath
                          : arg == "--user"          ? &options.user
                          : arg == "--password-file" ? &options.passwordFile
                                                     : nullptr;
    if (target != nullptr && i + 1 < argc) {
      *target = argv[++i];
      continue;
    }
    const auto eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    target = name == "--config"          ? &configPath
             : name == "--user"          ? &options.user
             : name == "--password-file" ? &options.passwordFile
                                         : nullptr;
    if (target != nullptr && eq != std::string_view::npos) {
      *target = std::string(arg.substr(eq + 1));
      continue;
    }
    std::cerr << "Usage: popbridge check-upstream [--config FILE] [--user USER] "
                 "[--password-file FILE]\n";
    return popbridge::proxy::kCheckUsage;
  }
  auto config = load(configPath);
  if (!config) return popbridge::proxy::kCheckConfigInvalid;
  ::signal(SIGPIPE, SIG_IGN);
  return popbridge::proxy::runCheckUpstream(*config, options, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "oauth") return oauthCommand(argc, argv);
  if (argc >= 2 && std::string_view(argv[1]) == "uidl") {
    return popbridge::proxy::runUidlCommand(argc, argv, load, std::cout, std::cerr);
  }
  if (argc >= 2 && std::string_view(argv[1]) == "check-upstream") {
    return checkUpstreamCommand(argc, argv);
  }
  std::string configPath;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--version") {
      std::cout << "popbridge " POPBRIDGE_VERSION " (" << popbridge::proxy::tlsLibraryVersion()
                << ")\n";
      return 0;
    }
    if (arg == "hash-password" && argc == 2) return hashPassword();
    if ((arg == "--config" || arg == "--check-config") && i + 1 < argc) {
      check = arg == "--check-config";
      configPath = argv[++i];
      continue;
    }
    if (arg.rfind("--config=", 0) == 0 || arg.rfind("--check-config=", 0) == 0) {
      check = arg.rfind("--check-config=", 0) == 0;
      configPath = std::string(arg.substr(arg.find('=') + 1));
      continue;
    }
    std::cerr << "popbridge: unknown or incomplete argument '" << arg << "'\n\n" << kUsage;
    return 2;
  }
  if (configPath.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  // From here a SIGINT/SIGTERM (or a SIGHUP, whose default action would end the process too)
  // waits until runServer() has its handlers (and before that, any listener): a supervisor that
  // stops or reloads popbridge while it starts gets a clean exit or a reload, never the default
  // action.
  if (!check) popbridge::proxy::blockShutdownSignals();
  auto config = load(configPath);
  if (!config) return 1;
  if (check) {
    std::cout << popbridge::config::summarize(*config);
    std::cout << configPath << ": OK\n";
    return 0;
  }
  ::signal(SIGPIPE, SIG_IGN);
  popbridge::proxy::initLogging(config->server.logLevel,
                                config->server.logFormat == popbridge::config::LogFormat::Json);
  popbridge::proxy::ServerHooks hooks;
  hooks.configPath = configPath;
  // SIGHUP: the same file and the same environment overrides as at startup.
  hooks.reloadConfig = [configPath, env = readEnvironment()] {
    return popbridge::config::loadConfigFile(configPath, env, popbridge::proxy::checkCipherList);
  };
  return popbridge::proxy::runServer(*config, std::move(hooks));
}
