#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>

#include "config/config.h"

namespace popbridge::proxy {

// `popbridge uidl import` and `popbridge uidl capture`: moving devices from an old POP3 server to
// popbridge without changing the UIDLs they know (issue 15). `capture` asks the old server for
// each message's UIDL, LIST size and TOP n 0 block and writes an import file
// (protocol/uidl/import_file.h); `import` stores those messages in the state store under
// UIDVALIDITY 0 (protocol/uidl/map_record.h), where the first POP3 session of the mailbox
// matches them against its messages.
//
// Exit codes, for scripts:
inline constexpr int kUidlOk = 0;
inline constexpr int kUidlFailed = 1;  // config invalid, no [state], store failure, mailbox
                                       // already imported, server or connection failure
inline constexpr int kUidlUsage = 2;   // bad arguments; a file that cannot be read or parsed

struct UidlImportOptions {
  // A local [[account]] (its upstream login and folder are used), else the upstream login.
  std::string account;
  std::string file;    // the import file
  std::string folder;  // empty: the account's folder, else [mailbox] folder
  bool replace = false;
};

// Parses the file (nothing is written when it has an error), resolves the mailbox, opens the
// store of config.state (Redis over a libuv loop of its own, or the SQLite file) and writes every
// entry in one putUidls. Refuses a mailbox that already has entries unless `replace`, which
// erases them first. The result line goes to `out`, problems to `err`.
int runUidlImport(const config::Config& config, const UidlImportOptions& options, std::ostream& out,
                  std::ostream& err);

struct UidlCaptureOptions {
  enum class Tls : std::uint8_t { None, Implicit, StartTls };
  std::string host;
  std::uint16_t port = 0;
  Tls tls = Tls::None;
  std::string caFile;  // empty: the system bundle
  bool verify = true;
  // Old servers being retired may predate TLS 1.2; --min-tls-version lets them in, knowingly.
  config::TlsVersion minTlsVersion = config::TlsVersion::V1_2;
  bool allowPlaintext = false;  // USER/PASS over a connection without TLS
  std::string user;
  std::string passwordFile;                         // its first line is the password
  std::string output;                               // empty: stdout
  std::chrono::milliseconds connectTimeout{30000};  // resolve, connect and each TLS handshake
  std::chrono::milliseconds replyTimeout{60000};    // silence while a reply is awaited
};

// Logs in to the old POP3 server (USER/PASS), runs protocol::uidl::Capture, QUITs. The file is
// written to `options.output` only once the capture is complete (a partial file is removed); on
// stdout a failed capture ends with a line the import parser refuses. Progress and problems go
// to `err`. The password is never printed and is wiped after use.
int runUidlCapture(const UidlCaptureOptions& options, std::ostream& err);

// `popbridge uidl ...` from main: argv[1] is "uidl". `loadConfig` loads and reports a config
// file (main's, with the environment overrides), nullopt when it is invalid.
int runUidlCommand(
    int argc, char** argv,
    const std::function<std::optional<config::Config>(const std::string&)>& loadConfig,
    std::ostream& out, std::ostream& err);

}  // namespace popbridge::proxy
