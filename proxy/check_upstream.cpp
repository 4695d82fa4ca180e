#include "proxy/check_upstream.h"

#include <termios.h>
#include <unistd.h>
#include <uv.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <sstream>

#include "protocol/text.h"
#include "proxy/loop_mailbox.h"
#include "proxy/tls_context.h"
#include "proxy/token_service.h"
#include "proxy/upstream_probe.h"

namespace popbridge::proxy {
namespace {

int exitCodeOf(ProbeFailure failure) {
  switch (failure) {
    case ProbeFailure::None:
      return kCheckOk;
    case ProbeFailure::Token:
      return kCheckToken;
    case ProbeFailure::Dns:
      return kCheckDns;
    case ProbeFailure::Connect:
      return kCheckConnect;
    case ProbeFailure::Tls:
      return kCheckTls;
    case ProbeFailure::Protocol:
      return kCheckProtocol;
    case ProbeFailure::Login:
      return kCheckLogin;
    case ProbeFailure::Select:
      return kCheckSelect;
  }
  return kCheckProtocol;
}

void stripLineEnd(std::string& line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
}

// Echo off while the password is typed; restored however the read ends.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    active_ = tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

// The first line of `path`, or of the terminal (echo off), or of stdin. False with a message in
// `err` when there is none.
bool readPassword(const CheckUpstreamOptions& options, std::string& password, std::ostream& err) {
  // Room for any password up front, so that reading it leaves no reallocated copies behind.
  password.reserve(16 * 1024);
  if (!options.passwordFile.empty()) {
    std::ifstream file(options.passwordFile);
    if (!file) {
      err << "error: cannot read --password-file " << options.passwordFile << "\n";
      return false;
    }
    std::getline(file, password);
  } else if (isatty(STDIN_FILENO)) {
    std::cerr << "Upstream password for " << protocol::loggableText(options.user) << ": "
              << std::flush;
    {
      EchoOff echoOff(STDIN_FILENO);
      std::getline(std::cin, password);
    }
    std::cerr << "\n";
  } else {
    std::getline(std::cin, password);
  }
  stripLineEnd(password);
  if (password.empty()) {
    err << "error: no password (give --password-file, type it, or pipe it on stdin)\n";
    return false;
  }
  return true;
}

void printStep(const ProbeStepResult& step, std::ostream& out) {
  out << std::left << std::setw(11) << toString(step.step) << std::right << std::setw(6)
      << step.duration.count() << " ms  " << (step.ok ? "OK    " : "FAIL  ") << step.detail << "\n";
}

// A step that failed before the probe could start (a CA file, the token service).
int failBeforeProbe(ProbeStep step, const std::string& cause, int exitCode, std::ostream& out) {
  ProbeStepResult result;
  result.step = step;
  result.detail = cause;
  printStep(result, out);
  out << "FAIL at " << toString(step) << ": " << cause << std::endl;
  return exitCode;
}

}  // namespace

int runCheckUpstream(const config::Config& config, const CheckUpstreamOptions& options,
                     std::ostream& out, std::ostream& err) {
  const auto& upstream = config.upstream;
  std::optional<ProbeLogin> login;
  if (!options.user.empty()) {
    login.emplace();
    if (const config::AccountConfig* account = config.findAccount(options.user)) {
      if (!options.passwordFile.empty()) {
        err << "note: " << protocol::loggableText(options.user)
            << " is an [[account]]; its upstream credentials are used, not --password-file\n";
      }
      login->user = account->upstreamUser;
      login->oauth2 = account->oauth2;
      login->password = account->upstreamPassword;
      login->folder = account->mailbox.folder;
      out << "account " << protocol::loggableText(options.user) << ": upstream login "
          << protocol::loggableText(login->user)
          << (login->oauth2.empty() ? " with upstream_password_file"
                                    : " with [oauth2." + login->oauth2 + "]")
          << ", folder \"" << protocol::loggableText(login->folder) << "\"\n";
    } else {
      if (!config.accounts.empty()) {
        err << "note: " << protocol::loggableText(options.user)
            << " is not an [[account]] (popbridge refuses it at the POP3 login); checking it as "
               "an upstream login\n";
      }
      login->user = options.user;
      login->folder = config.mailbox.folder;
      if (!readPassword(options, login->password, err)) {
        protocol::secureWipe(login->password);
        return kCheckUsage;
      }
    }
  }

  std::unique_ptr<TlsClientContext> tls;
  if (upstream.tls != config::UpstreamTls::None) {
    std::string error;
    tls = TlsClientContext::create(upstream.caFile, upstream.verifyCertificate,
                                   upstream.minTlsVersion, error);
    if (!tls) {
      if (login) protocol::secureWipe(login->password);
      return failBeforeProbe(ProbeStep::Tls, error, kCheckTls, out);
    }
  }

  std::unique_ptr<TokenService> tokens;
  if (login && !login->oauth2.empty()) {
    tokens = std::make_unique<TokenService>(config);
    std::string error;
    if (!tokens->start(error)) return failBeforeProbe(ProbeStep::Token, error, kCheckToken, out);
  }

  uv_loop_t loop{};
  uv_loop_init(&loop);
  ProbeReport report;
  bool reported = false;
  {
    UpstreamProbe::TokenAccess access;
    if (tokens) {
      access.tokens = tokens.get();
      access.mailbox = LoopMailbox::create(&loop);
    }
    UpstreamProbe probe(&loop, config, tls.get(), access);
    probe.start(std::move(login), [&](ProbeReport result) {
      report = std::move(result);
      reported = true;
      // Not waiting for the connection's orderly close: destroying the probe closes it.
      uv_stop(&loop);
    });
    uv_run(&loop, UV_RUN_DEFAULT);
    if (access.mailbox) access.mailbox->close();
  }
  // Handles closed by the destructors are freed in one more turn.
  uv_run(&loop, UV_RUN_DEFAULT);
  if (tokens) tokens->stop();
  uv_loop_close(&loop);

  if (!reported) {
    out << "internal error: the probe ended without a report\n";
    return kCheckProtocol;
  }
  for (const ProbeStepResult& step : report.steps) printStep(step, out);
  out << report.summary() << std::endl;
  return exitCodeOf(report.failure);
}

}  // namespace popbridge::proxy
