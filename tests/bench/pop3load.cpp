// pop3load: the load generator and Maildir seeder of the benchmark harness.
//
//   pop3load run --port P [--tls --ca FILE] --user U [--users N] --password PW
//                --workload poll|retr|top [--retr-max K] [--top-lines N] [--sessions S]
//                [--concurrency C] [--expect-messages M] [--timeout SECONDS] [--label NAME]
//                [--io-pid PID]
//   pop3load seed --maildir DIR --count N --size BYTES [--uid U --gid G] [--first-index I]
//   pop3load seed --maildir-list FILE ...   the same into every Maildir listed (one per line)
//   pop3load ports N      prints N distinct free loopback TCP ports
//   pop3load relay --listen-port P --target-port Q [--target-host H] --stats FILE
//                         a TCP relay from 127.0.0.1:P to H:Q that counts the IMAP commands the
//                         client side sends and the bytes each way, into FILE (imap_relay.h);
//                         runs until SIGTERM
//   pop3load uidlmap --count N --sqlite FILE --resp FILE
//                         writes a stable-UIDL map of N realistic entries into a new SQLite store
//                         and as RESP HSET commands (for redis-cli --pipe); prints its sizes
//
// `run` prints one machine-readable line for run.sh:
//   result label=... sessions=S ok=O failed=F retr=R bytes=B size_mismatch=M wall_s=...
//          mb_per_s=... sessions_per_s=... median_ms=... p95_ms=... max_ms=...
//          top=T top_bytes=... top_median_ms=... top_max_ms=... io_cmds=N io_bytes=...
//          io_failed=...
// and the reasons of failed sessions on stderr. Exit status 0 only when no session failed.
// Workload top: USER, PASS, TOP 1 N, QUIT; the reply must be a header, its blank line and exactly
// N body lines. top_median_ms is the time of the TOP command alone (sent to end of reply).
// --io-pid: /proc/PID/io rchar is read just before each TOP/RETR and just after its reply;
// io_bytes is the sum of the growths over io_cmds commands (use it with one session at a time).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tests/bench/imap_relay.h"
#include "tests/bench/pop3_load.h"
#include "tests/bench/uidl_map_size.h"

namespace {

using popbridge::bench::LoadOptions;
using popbridge::bench::LoadResult;
using popbridge::bench::Workload;

constexpr const char* kUsage =
    "usage: pop3load run --port P [--host H] [--tls] [--ca FILE] [--server-name NAME]\n"
    "                    --user U [--users N] --password PW --workload poll|retr|top\n"
    "                    [--retr-max K] [--top-lines N] [--sessions S] [--concurrency C]\n"
    "                    [--expect-messages M] [--timeout SECONDS] [--label NAME]\n"
    "                    [--io-pid PID]\n"
    "       pop3load seed --maildir DIR|--maildir-list FILE --count N --size BYTES\n"
    "                    [--uid U --gid G] [--first-index I]\n"
    "       pop3load ports N\n"
    "       pop3load relay --listen-port P --target-port Q [--target-host H] --stats FILE\n"
    "       pop3load uidlmap --count N --sqlite FILE --resp FILE\n";

struct Args {
  std::map<std::string, std::string> values;
  std::vector<std::string> flags;
  std::string error;

  bool has(const std::string& flag) const {
    return std::find(flags.begin(), flags.end(), flag) != flags.end();
  }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    const auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
  // Whole-string integers in [min, max]; sets error otherwise.
  long number(const std::string& key, long fallback, long min, long max) {
    const auto it = values.find(key);
    if (it == values.end()) return fallback;
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || errno != 0 || value < min || value > max) {
      if (error.empty()) {
        error = "--" + key + " must be a whole number from " + std::to_string(min) + " to " +
                std::to_string(max) + ", got '" + it->second + "'";
      }
      return fallback;
    }
    return value;
  }
};

Args parseArgs(int argc, char** argv, const std::vector<std::string>& booleans,
               const std::vector<std::string>& known) {
  Args args;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      args.error = "unexpected argument '" + arg + "'";
      break;
    }
    arg.erase(0, 2);
    if (std::find(booleans.begin(), booleans.end(), arg) != booleans.end()) {
      args.flags.push_back(arg);
      continue;
    }
    if (std::find(known.begin(), known.end(), arg) == known.end()) {
      args.error = "unknown option --" + arg;
      break;
    }
    if (i + 1 >= argc) {
      args.error = "--" + arg + " needs a value";
      break;
    }
    args.values[arg] = argv[++i];
  }
  return args;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * values.size()));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

int runCommand(int argc, char** argv) {
  Args args = parseArgs(
      argc, argv, {"tls"},
      {"host", "port", "ca", "server-name", "user", "users", "password", "workload", "retr-max",
       "top-lines", "sessions", "concurrency", "expect-messages", "timeout", "label", "io-pid"});
  LoadOptions options;
  options.host = args.get("host", options.host);
  options.port = static_cast<std::uint16_t>(args.number("port", 0, 1, 65535));
  options.tls = args.has("tls");
  options.caFile = args.get("ca");
  options.serverName = args.get("server-name", options.serverName);
  options.user = args.get("user");
  options.users = static_cast<int>(args.number("users", 0, 0, 1000000));
  options.password = args.get("password");
  options.retrMax = static_cast<int>(args.number("retr-max", 0, 0, 100000000));
  options.topLines = static_cast<int>(args.number("top-lines", 5, 0, 100000000));
  options.ioPid = args.number("io-pid", 0, 1, 1L << 30);
  options.sessions = static_cast<int>(args.number("sessions", 1, 1, 10000000));
  options.concurrency = static_cast<int>(args.number("concurrency", 1, 1, 100000));
  options.expectMessages = args.number("expect-messages", -1, 0, 100000000);
  options.timeoutSeconds = static_cast<int>(args.number("timeout", 900, 1, 86400));
  options.label = args.get("label", "run");
  const std::string workload = args.get("workload");
  if (workload == "poll") {
    options.workload = Workload::kPoll;
  } else if (workload == "retr") {
    options.workload = Workload::kRetr;
  } else if (workload == "top") {
    options.workload = Workload::kTop;
  } else if (args.error.empty()) {
    args.error = "--workload must be poll, retr or top";
  }
  if (args.error.empty() && (!args.values.count("port") || options.user.empty())) {
    args.error = "--port and --user are required";
  }
  if (!args.error.empty()) {
    std::cerr << "pop3load: " << args.error << "\n" << kUsage;
    return 2;
  }

  const LoadResult result = popbridge::bench::runLoad(options);
  const double wall = result.wallSeconds > 0 ? result.wallSeconds : 1e-9;
  for (std::size_t i = 0; i < result.failures.size() && i < 20; ++i) {
    std::cerr << "pop3load " << options.label << ": " << result.failures[i] << "\n";
  }
  if (result.failures.size() > 20) {
    std::cerr << "pop3load " << options.label << ": ... and " << result.failures.size() - 20
              << " more failed sessions\n";
  }
  if (result.ioFailures > 0) {
    std::cerr << "pop3load " << options.label << ": /proc/" << options.ioPid << "/io unreadable "
              << result.ioFailures << " times; io_bytes counts the other commands only\n";
  }
  using ull = unsigned long long;
  std::printf(
      "result label=%s sessions=%d ok=%d failed=%d retr=%llu bytes=%llu size_mismatch=%llu "
      "wall_s=%.4f mb_per_s=%.3f sessions_per_s=%.3f median_ms=%.3f p95_ms=%.3f max_ms=%.3f "
      "top=%llu top_bytes=%llu top_median_ms=%.3f top_max_ms=%.3f io_cmds=%llu io_bytes=%llu "
      "io_failed=%llu\n",
      options.label.c_str(), result.sessions, result.ok, result.failed,
      static_cast<ull>(result.retrCount), static_cast<ull>(result.retrBytes),
      static_cast<ull>(result.sizeMismatches), result.wallSeconds,
      static_cast<double>(result.retrBytes) / 1e6 / wall, result.ok / wall,
      percentile(result.sessionMs, 50), percentile(result.sessionMs, 95),
      percentile(result.sessionMs, 100), static_cast<ull>(result.topCount),
      static_cast<ull>(result.topBytes), percentile(result.topMs, 50),
      percentile(result.topMs, 100), static_cast<ull>(result.ioCommands),
      static_cast<ull>(result.ioBytes), static_cast<ull>(result.ioFailures));
  std::fflush(stdout);
  return result.failed == 0 && result.sizeMismatches == 0 ? 0 : 1;
}

int seedCommand(int argc, char** argv) {
  Args args = parseArgs(argc, argv, {},
                        {"maildir", "maildir-list", "count", "size", "uid", "gid", "first-index"});
  std::vector<std::string> dirs;
  if (args.values.count("maildir")) dirs.push_back(args.get("maildir"));
  if (args.values.count("maildir-list")) {
    // Many Maildirs in one process: W6 delivers to 1,000 of them between two rounds.
    std::ifstream list(args.get("maildir-list"));
    if (!list) args.error = "cannot read --maildir-list " + args.get("maildir-list");
    for (std::string line; std::getline(list, line);) {
      if (!line.empty()) dirs.push_back(line);
    }
  }
  const long count = args.number("count", 0, 1, 10000000);
  const long size = args.number("size", 0, 1, 1L << 34);
  const long uid = args.number("uid", -1, 0, 1L << 31);
  const long gid = args.number("gid", uid, 0, 1L << 31);
  const long first = args.number("first-index", 1, 0, 1L << 30);
  if (args.error.empty() &&
      (dirs.empty() || !args.values.count("count") || !args.values.count("size"))) {
    args.error = "--maildir (or --maildir-list), --count and --size are required";
  }
  if (!args.error.empty()) {
    std::cerr << "pop3load: " << args.error << "\n" << kUsage;
    return 2;
  }
  for (const std::string& dir : dirs) {
    const std::string error =
        popbridge::bench::seedMaildir(dir, static_cast<int>(count), static_cast<std::size_t>(size),
                                      uid, gid, static_cast<int>(first));
    if (!error.empty()) {
      std::cerr << "pop3load seed: " << error << "\n";
      return 1;
    }
  }
  return 0;
}

// Holds every socket open until all are bound, so the kernel cannot hand out a port twice.
int portsCommand(int argc, char** argv) {
  char* end = nullptr;
  const long count = argc == 3 ? std::strtol(argv[2], &end, 10) : 0;
  if (argc != 3 || *end != '\0' || count < 1 || count > 100) {
    std::cerr << "pop3load: ports needs a count from 1 to 100\n" << kUsage;
    return 2;
  }
  std::vector<int> fds;
  std::string line;
  int status = 0;
  for (long i = 0; i < count; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      std::cerr << "pop3load: cannot reserve a loopback port: " << std::strerror(errno) << "\n";
      if (fd >= 0) ::close(fd);
      status = 1;
      break;
    }
    fds.push_back(fd);
    line += (line.empty() ? "" : " ") + std::to_string(ntohs(addr.sin_port));
  }
  for (const int fd : fds) ::close(fd);
  if (status == 0) std::cout << line << "\n";
  return status;
}

int relayCommand(int argc, char** argv) {
  Args args = parseArgs(argc, argv, {}, {"listen-port", "target-port", "target-host", "stats"});
  popbridge::bench::RelayOptions options;
  options.listenPort = static_cast<std::uint16_t>(args.number("listen-port", 0, 1, 65535));
  options.targetPort = static_cast<std::uint16_t>(args.number("target-port", 0, 1, 65535));
  options.targetHost = args.get("target-host", options.targetHost);
  options.statsFile = args.get("stats");
  if (args.error.empty() &&
      (options.listenPort == 0 || options.targetPort == 0 || options.statsFile.empty())) {
    args.error = "--listen-port, --target-port and --stats are required";
  }
  if (!args.error.empty()) {
    std::cerr << "pop3load: " << args.error << "\n" << kUsage;
    return 2;
  }
  return popbridge::bench::runRelay(options);
}

// The UIDL map's size (issue 15): prints "uidlmap count=N key=K sqlite_db=B sqlite_wal=B
// sqlite_open=B entry_bytes=B field_bytes=B" for run.sh, which loads the RESP file into Redis.
int uidlMapCommand(int argc, char** argv) {
  Args args = parseArgs(argc, argv, {}, {"count", "sqlite", "resp"});
  popbridge::bench::UidlMapSample sample;
  sample.count = args.number("count", 0, 1, 10000000);
  sample.sqlitePath = args.get("sqlite");
  sample.respPath = args.get("resp");
  if (args.error.empty() &&
      (sample.count == 0 || sample.sqlitePath.empty() || sample.respPath.empty())) {
    args.error = "--count, --sqlite and --resp are required";
  }
  if (!args.error.empty()) {
    std::cerr << "pop3load: " << args.error << "\n" << kUsage;
    return 2;
  }
  popbridge::bench::UidlMapSizes sizes;
  const std::string error = popbridge::bench::writeUidlMapSample(sample, sizes);
  if (!error.empty()) {
    std::cerr << "pop3load uidlmap: " << error << "\n";
    return 1;
  }
  std::cout << "uidlmap count=" << sample.count << " key=" << sizes.redisKey
            << " sqlite_db=" << sizes.dbBytes << " sqlite_wal=" << sizes.walBytes
            << " sqlite_open=" << sizes.openDbBytes << " entry_bytes=" << sizes.entryBytes
            << " field_bytes=" << sizes.fieldBytes << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // libuv writes with writev(); a peer that resets must not kill the generator.
  ::signal(SIGPIPE, SIG_IGN);
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "run") return runCommand(argc, argv);
  if (command == "seed") return seedCommand(argc, argv);
  if (command == "ports") return portsCommand(argc, argv);
  if (command == "relay") return relayCommand(argc, argv);
  if (command == "uidlmap") return uidlMapCommand(argc, argv);
  std::cerr << kUsage;
  return 2;
}
