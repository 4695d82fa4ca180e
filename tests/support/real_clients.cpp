#include "tests/support/real_clients.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace popbridge::test {
namespace {

constexpr int kClientTimeoutMs = 120000;

std::vector<Delivered> readMaildir(const std::string& maildir) {
  std::vector<Delivered> messages;
  for (const char* sub : {"/new", "/cur"}) {
    for (const auto& file : listFiles(maildir + sub)) {
      messages.push_back({readWholeFile(file), file, -1});
    }
  }
  return messages;
}

void makeMaildir(const std::string& path) {
  for (const char* sub : {"", "/cur", "/new", "/tmp"}) {
    const std::string dir = path + sub;
    if (mkdir(dir.c_str(), 0755) != 0) throw std::runtime_error("mkdir " + dir);
  }
}

}  // namespace

std::string transportName(Transport transport) {
  switch (transport) {
    case Transport::kPlain:
      return "plain";
    case Transport::kStls:
      return "stls";
    case Transport::kImplicit:
      return "implicit";
  }
  return "?";
}

std::string MailClient::newRunDir() {
  const std::string path = dir_.path() + "/run" + std::to_string(++runs_);
  makeMaildir(path);
  return path;
}

CommandResult MailClient::check(CommandResult result, std::initializer_list<int> okCodes) {
  lastOutput_ = result.describe();
  // PBTEST_CLIENT_OUTPUT=1 shows every client's own transcript, to see what it sent.
  if (std::getenv("PBTEST_CLIENT_OUTPUT")) std::cerr << lastOutput_ << "\n";
  if (result.timedOut ||
      std::find(okCodes.begin(), okCodes.end(), result.exitCode) == okCodes.end()) {
    throw std::runtime_error(name_ + " failed: " + result.describe());
  }
  return result;
}

namespace {

// fetchmail hands each message to an MDA (a script writing a file). It turns CRLF into LF for the
// MDA and prepends its Received header; `no rewrite` keeps it from touching addresses.
class Fetchmail : public MailClient {
 public:
  Fetchmail() : MailClient("fetchmail") {
    writeTextFile(dir_.path() + "/deliver.sh",
                  "#!/bin/sh\n"
                  "file=$(mktemp \"$POPBRIDGE_DELIVER_DIR/new/fetchmail.XXXXXXXX\") || exit 75\n"
                  "exec cat > \"$file\"\n",
                  0700);
  }
  // fetchmail 6.4.37 splits lines of more than about 8 KB and puts NUL bytes into them; it does
  // the same with Dovecot's own POP3 server.
  DeliveryRules rules() const override { return {true, {"Received"}, 8000}; }

  std::vector<Delivered> fetch(const Account& account, const FetchRun& run) override {
    const std::string out = newRunDir();
    std::string options = run.mode == Mode::kKeep ? "keep" : "nokeep";
    if (run.sizeLimit) options += " limit " + std::to_string(run.sizeLimit);
    options += " no rewrite";
    if (account.transport != Transport::kPlain) {
      // fetchmail matches only DNS names, not the certificate's IP address entry.
      options += " sslcertck sslcertfile \"" + account.caFile + "\" sslcommonname localhost";
      // STLS is opportunistic in fetchmail; sslproto makes it mandatory.
      options += account.transport == Transport::kImplicit ? " ssl" : " sslproto \"TLS1.2+\"";
    } else {
      // Since 6.4 fetchmail insists on STLS, advertised or not, unless told otherwise.
      options += " sslproto ''";
    }
    const std::string rc = dir_.path() + "/fetchmailrc";
    writeTextFile(rc,
                  "set no bouncemail\n"
                  "poll 127.0.0.1 port " +
                      std::to_string(account.port) + " proto pop3 uidl\n  user \"" + account.user +
                      "\" password \"" + account.password + "\"\n  options " + options +
                      "\n  mda \"" + dir_.path() + "/deliver.sh\"\n",
                  0600);
    CommandOptions command;
    command.env = {
        {"HOME", dir_.path()}, {"FETCHMAILHOME", dir_.path()}, {"POPBRIDGE_DELIVER_DIR", out}};
    command.timeoutMs = kClientTimeoutMs;
    // Exit 1 means "no new mail".
    check(runCommand({"fetchmail", "-f", rc, "--idfile", dir_.path() + "/idfile", "--pidfile",
                      dir_.path() + "/fetchmail.pid", "--nosyslog", "-v"},
                     command),
          {0, 1});
    return readMaildir(out);
  }
};

// getmail6 parses and re-serialises every message with Python's email package, writes LF line
// ends, and always puts Return-Path on top (Delivered-To and Received are switched off here).
// It has no STLS for POP3. Run as root, its Maildir destination must drop privileges (`user`).
class Getmail : public MailClient {
 public:
  Getmail() : MailClient("getmail") {
    // The delivery runs as nobody, which must reach the maildir through this directory.
    chmod(dir_.path().c_str(), 0755);
  }
  DeliveryRules rules() const override {
    return {true, {"Return-Path", "Delivered-To", "Received"}};
  }

  std::vector<Delivered> fetch(const Account& account, const FetchRun& run) override {
    if (account.transport == Transport::kStls) {
      throw std::logic_error("getmail6 has no STLS for POP3");
    }
    // getmail6 6.18 can deadlock in its own SIGCHLD handler once a delivery
    // child exits (ForkingBase._child_handler blocks on the condition lock
    // that _wait_for_child already holds; getmail6 issues #226 and #245), more
    // often on a loaded machine. Such a hang is the client's: it never sent
    // QUIT, so popbridge applied nothing, and the run is repeated from the
    // client state it started with. A hang of popbridge's would repeat.
    const std::map<std::string, std::string> state = readState();
    for (int attempt = 1;; ++attempt) {
      const std::string out = newRunDir();
      CommandResult result = runOnce(account, run, out);
      if (result.timedOut && attempt < kGetmailAttempts) {
        std::cerr << "getmail hung (attempt " << attempt << "), retrying from its earlier state\n";
        restoreState(state);
        continue;
      }
      check(std::move(result), {0});
      return readMaildir(out);
    }
  }

 private:
  // Three hung attempts stay inside ctest's 600 s limit.
  static constexpr int kGetmailAttempts = 3;

  CommandResult runOnce(const Account& account, const FetchRun& run, const std::string& out) {
    std::string destinationUser;
    if (geteuid() == 0) {
      const passwd* nobody = getpwnam("nobody");
      if (!nobody) throw std::runtime_error("no user nobody");
      for (const char* sub : {"", "/cur", "/new", "/tmp"}) {
        const std::string dir = out + sub;
        if (chown(dir.c_str(), nobody->pw_uid, nobody->pw_gid) != 0) {
          throw std::runtime_error("chown " + dir);
        }
      }
      destinationUser = "user = nobody\n";
    }
    std::string retriever =
        account.transport == Transport::kImplicit
            ? "type = SimplePOP3SSLRetriever\nca_certs = " + account.caFile + "\n"
            : "type = SimplePOP3Retriever\n";
    const std::string rc = dir_.path() + "/getmailrc";
    writeTextFile(rc,
                  "[retriever]\n" + retriever +
                      "server = 127.0.0.1\nport = " + std::to_string(account.port) +
                      "\nusername = " + account.user + "\npassword = " + account.password +
                      "\n\n[destination]\ntype = Maildir\npath = " + out + "/\n" + destinationUser +
                      "\n[options]\nverbose = 2\nread_all = false\ndelete = " +
                      (run.mode == Mode::kDelete ? "true" : "false") + "\nmax_message_size = " +
                      std::to_string(run.sizeLimit) + "\ndelivered_to = false\nreceived = false\n");
    CommandOptions command;
    command.env = {{"HOME", dir_.path()}};
    command.timeoutMs = kClientTimeoutMs;
    return runCommand({"getmail", "--rcfile", rc, "--getmaildir", dir_.path()}, command);
  }

  // getmail's memory of seen messages: the oldmail-* files in its getmaildir.
  std::map<std::string, std::string> readState() const {
    std::map<std::string, std::string> state;
    for (const auto& file : listFiles(dir_.path())) {
      if (file.find("/oldmail") != std::string::npos) state[file] = readWholeFile(file);
    }
    return state;
  }
  void restoreState(const std::map<std::string, std::string>& state) const {
    for (const auto& file : listFiles(dir_.path())) {
      if (file.find("/oldmail") != std::string::npos) std::remove(file.c_str());
    }
    for (const auto& [file, text] : state) writeTextFile(file, text);
  }
};

// mpop delivers to a maildir with LF line ends; its Received header is switched off.
class Mpop : public MailClient {
 public:
  Mpop() : MailClient("mpop") {
    writeTextFile(dir_.path() + "/mpoprc", "# empty: everything is on the command line\n");
  }
  DeliveryRules rules() const override { return {true, {"Received"}}; }

  std::vector<Delivered> fetch(const Account& account, const FetchRun& run) override {
    const std::string out = newRunDir();
    const std::string passwordFile = dir_.path() + "/password";
    writeTextFile(passwordFile, account.password);
    std::vector<std::string> argv = {
        "mpop", "-C", dir_.path() + "/mpoprc", "--host=127.0.0.1",
        "--port=" + std::to_string(account.port),
        // mpop refuses USER/PASS without TLS unless asked for it.
        account.transport == Transport::kPlain ? "--auth=user" : "--auth=on",
        "--user=" + account.user, "--passwordeval=cat " + passwordFile,
        "--uidls-file=" + dir_.path() + "/uidls", "--delivery=maildir," + out,
        "--received-header=off", "--only-new=on",
        std::string("--keep=") + (run.mode == Mode::kKeep ? "on" : "off"),
        "--skipsize=" + (run.sizeLimit ? std::to_string(run.sizeLimit) : std::string("off"))};
    if (account.transport == Transport::kPlain) {
      argv.push_back("--tls=off");
    } else {
      argv.push_back("--tls=on");
      argv.push_back("--tls-trust-file=" + account.caFile);
      argv.push_back(std::string("--tls-starttls=") +
                     (account.transport == Transport::kStls ? "on" : "off"));
    }
    CommandOptions command;
    command.env = {{"HOME", dir_.path()}};
    command.timeoutMs = kClientTimeoutMs;
    check(runCommand(argv, command), {0});
    return readMaildir(out);
  }
};

std::string readIfExists(const std::string& path) {
  try {
    return readWholeFile(path);
  } catch (const std::exception&) {
    return "";
  }
}

std::set<std::string> wordsOf(const std::string& text) {
  std::set<std::string> words;
  std::istringstream in(text);
  for (std::string word; in >> word;) words.insert(word);
  return words;
}

// "n value" lines of a LIST or UIDL listing.
std::map<int, std::string> numberedLines(const std::string& listing) {
  std::map<int, std::string> result;
  std::istringstream in(listing);
  int number = 0;
  std::string value;
  while (in >> number >> value) result[number] = value;
  return result;
}

// curl fetches one message per URL and keeps no state, so this driver does what a script around
// curl does: LIST and UIDL first, then RETR (and DELE) of the UIDLs not seen before, all in one
// curl run that reuses the connection. curl writes the message as received (CRLF, unstuffed).
class Curl : public MailClient {
 public:
  Curl() : MailClient("curl") {}
  DeliveryRules rules() const override { return {false, {}}; }

  std::vector<Delivered> fetch(const Account& account, const FetchRun& run) override {
    const std::string out = newRunDir();
    const std::string netrc = dir_.path() + "/netrc";
    writeTextFile(
        netrc, "machine 127.0.0.1 login " + account.user + " password " + account.password + "\n");
    const std::string base =
        std::string(account.transport == Transport::kImplicit ? "pop3s" : "pop3") +
        "://127.0.0.1:" + std::to_string(account.port) + "/";
    auto common = [&] {
      std::string options = "silent\nshow-error\nfail\nnetrc-file = \"" + netrc + "\"\n";
      if (account.transport != Transport::kPlain)
        options += "cacert = \"" + account.caFile + "\"\n";
      if (account.transport == Transport::kStls) options += "ssl-reqd\n";
      return options;
    };
    const std::string listFile = dir_.path() + "/list.txt";
    const std::string uidlFile = dir_.path() + "/uidl.txt";
    writeTextFile(dir_.path() + "/listing.curlrc",
                  common() + "url = \"" + base + "\"\noutput = \"" + listFile + "\"\nnext\n" +
                      common() + "request = UIDL\nurl = \"" + base + "\"\noutput = \"" + uidlFile +
                      "\"\n");
    runCurl({"curl", "-K", dir_.path() + "/listing.curlrc"});
    const auto sizes = numberedLines(readWholeFile(listFile));
    const auto uidls = numberedLines(readWholeFile(uidlFile));

    const std::string stateFile = dir_.path() + "/seen-uidls";
    std::set<std::string> seen = wordsOf(readIfExists(stateFile));
    std::string config;
    std::vector<std::pair<int, std::string>> fetched;
    for (const auto& [number, uidl] : uidls) {
      if (seen.count(uidl)) continue;
      if (run.sizeLimit && std::stoull(sizes.at(number)) > run.sizeLimit) continue;
      const std::string file = out + "/new/" + std::to_string(number) + "." + sizes.at(number);
      if (!config.empty()) config += "next\n";
      config +=
          common() + "url = \"" + base + std::to_string(number) + "\"\noutput = \"" + file + "\"\n";
      if (run.mode == Mode::kDelete) {
        // -X DELE with -I (no body): curl sends "DELE n" and expects a one-line answer.
        config += "next\n" + common() + "request = DELE\nhead\nurl = \"" + base +
                  std::to_string(number) + "\"\n";
      }
      fetched.emplace_back(number, uidl);
    }
    if (!config.empty()) {
      writeTextFile(dir_.path() + "/fetch.curlrc", config);
      runCurl({"curl", "-K", dir_.path() + "/fetch.curlrc"});
    }
    std::string state = readIfExists(stateFile);
    for (const auto& [number, uidl] : fetched) state += uidl + "\n";
    writeTextFile(stateFile, state);

    std::vector<Delivered> delivered;
    for (const auto& [number, uidl] : fetched) {
      const std::string file = out + "/new/" + std::to_string(number) + "." + sizes.at(number);
      delivered.push_back({readWholeFile(file), file, std::stoll(sizes.at(number))});
    }
    return delivered;
  }

 private:
  void runCurl(const std::vector<std::string>& argv) {
    CommandOptions command;
    command.timeoutMs = kClientTimeoutMs;
    check(runCommand(argv, command), {0});
  }
};

// Python's poplib, driven by a small script that behaves like a mail client: UIDL, RETR of what
// it has not seen, DELE in delete mode, QUIT, then it remembers the UIDLs. Lines are joined with
// CRLF again, so the bytes are the wire's after unstuffing.
constexpr const char* kPoplibScript = R"PY(
import os, poplib, ssl, sys

host, port, transport, cafile, user, mode, limit, state_path, out_dir = sys.argv[1:10]
limit = int(limit)
# poplib refuses lines over 2048 bytes; RFC 5322 allows 998 but real mail has longer ones.
poplib._MAXLINE = 1 << 20
password = os.environ["POPBRIDGE_TEST_PASSWORD"]
context = ssl.create_default_context(cafile=cafile) if transport != "plain" else None
if transport == "implicit":
    pop = poplib.POP3_SSL(host, int(port), context=context, timeout=60)
else:
    pop = poplib.POP3(host, int(port), timeout=60)
    if transport == "stls":
        pop.stls(context=context)
pop.user(user)
pop.pass_(password)
seen = set()
if os.path.exists(state_path):
    with open(state_path) as f:
        seen = set(f.read().split())
sizes = {}
for line in pop.list()[1]:
    number, size = line.split()
    sizes[int(number)] = int(size)
fetched = []
for line in pop.uidl()[1]:
    number, uidl = line.split()
    number, uidl = int(number), uidl.decode()
    if uidl in seen or (limit and sizes[number] > limit):
        continue
    lines = pop.retr(number)[1]
    with open(os.path.join(out_dir, "%d.%d" % (number, sizes[number])), "wb") as f:
        f.write(b"\r\n".join(lines) + b"\r\n")
    if mode == "delete":
        pop.dele(number)
    fetched.append(uidl)
pop.quit()
with open(state_path, "a") as f:
    for uidl in fetched:
        f.write(uidl + "\n")
)PY";

class Poplib : public MailClient {
 public:
  Poplib() : MailClient("poplib") { writeTextFile(dir_.path() + "/client.py", kPoplibScript); }
  DeliveryRules rules() const override { return {false, {}}; }

  std::vector<Delivered> fetch(const Account& account, const FetchRun& run) override {
    const std::string out = newRunDir();
    CommandOptions command;
    command.env = {{"POPBRIDGE_TEST_PASSWORD", account.password}};
    command.timeoutMs = kClientTimeoutMs;
    // /usr/bin/python3 is Debian's; a pyenv python3 may come first in PATH.
    check(runCommand({"/usr/bin/python3", dir_.path() + "/client.py", "127.0.0.1",
                      std::to_string(account.port), transportName(account.transport),
                      account.caFile, account.user, run.mode == Mode::kKeep ? "keep" : "delete",
                      std::to_string(run.sizeLimit), dir_.path() + "/seen-uidls", out + "/new"},
                     command),
          {0});
    std::vector<Delivered> delivered;
    for (const auto& file : listFiles(out + "/new")) {
      const std::string name = file.substr(file.rfind('/') + 1);
      delivered.push_back({readWholeFile(file), file, std::stoll(name.substr(name.find('.') + 1))});
    }
    return delivered;
  }
};

}  // namespace

std::unique_ptr<MailClient> makeClient(const std::string& name) {
  if (name == "fetchmail") return std::make_unique<Fetchmail>();
  if (name == "getmail") return std::make_unique<Getmail>();
  if (name == "mpop") return std::make_unique<Mpop>();
  if (name == "curl") return std::make_unique<Curl>();
  if (name == "poplib") return std::make_unique<Poplib>();
  throw std::invalid_argument("unknown client " + name);
}

}  // namespace popbridge::test
