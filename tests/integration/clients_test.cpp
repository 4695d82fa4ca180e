// Real POP3 clients from Debian (fetchmail, getmail6, mpop, curl, Python's poplib) through the
// popbridge binary to a private Dovecot. Each client delivers into its own maildir or files; the
// delivered bytes are compared with what IMAP serves, after undoing exactly the changes each client
// is documented to make (CRLF to LF, a Received/Return-Path header on top). Results per client are
// summarised in tests/integration/COMPATIBILITY.md.

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/client_runner.h"
#include "tests/support/dovecot_fixture.h"
#include "tests/support/messages.h"
#include "tests/support/popbridge_process.h"
#include "tests/support/test_clients.h"

namespace popbridge::test {
namespace {

constexpr std::size_t kBigMessageBytes = 20 * 1024 * 1024;
constexpr int kClientTimeoutMs = 120000;

enum class Transport { kPlain, kStls, kImplicit };

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

struct Account {
  std::uint16_t port = 0;
  Transport transport = Transport::kPlain;
  std::string caFile;
  std::string user;
  std::string password;
};

enum class Mode { kKeep, kDelete };

// What one run of a client is asked to do.
struct FetchRun {
  Mode mode = Mode::kKeep;
  // Messages larger than this (by LIST) are skipped: neither downloaded nor deleted. 0: no limit.
  std::size_t sizeLimit = 0;
};

struct Delivered {
  std::string bytes;
  std::string file;
  // The size the client saw in LIST, when the driver can report it (curl, poplib); else -1.
  long long listedSize = -1;
};

// ---------------------------------------------------------------------------------------------
// Mailboxes

// At least 200 messages: every edge case of messages.h, text messages of many sizes, MIME
// messages with attachments up to 1 MB, and one 20 MB message.
std::vector<std::string> fullMailbox() {
  std::vector<std::string> messages;
  for (const auto& named : edgeCaseMessages()) messages.push_back(named.bytes);
  static constexpr std::size_t kTextSizes[] = {1, 2, 57, 200, 999, 4096, 20000, 65537};
  for (int i = 0; i < 176; ++i) {
    messages.push_back(simpleMessage(100 + i, kTextSizes[i % std::size(kTextSizes)]));
  }
  static constexpr std::size_t kAttachmentSizes[] = {0, 1, 100, 4000, 60000, 300000, 1000000};
  for (std::size_t size : kAttachmentSizes) messages.push_back(mimeAttachmentMessage(size));
  for (int i = 0; i < 3; ++i) {
    messages.push_back(dotLinesMessage());
    messages.push_back(bareLfMessage());
    messages.push_back(eightBitMessage());
  }
  messages.push_back(longLineMessage(20000));
  messages.push_back(bigMessage(kBigMessageBytes));
  return messages;
}

std::vector<std::string> smallMailbox() {
  std::vector<std::string> messages;
  for (const auto& named : edgeCaseMessages()) messages.push_back(named.bytes);
  messages.push_back(simpleMessage(50, 1));
  messages.push_back(mimeAttachmentMessage(200000));
  messages.push_back(bigMessage(300000));
  return messages;
}

// ---------------------------------------------------------------------------------------------
// Comparing what a client delivered with what IMAP serves

std::string crlfToLf(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;
    out += text[i];
  }
  return out;
}

// How a client legitimately changes a message on its way to disk.
struct DeliveryRules {
  bool lfLineEnds = false;                // writes LF where the wire had CRLF
  std::vector<std::string> addedHeaders;  // fields the client puts on top (names, any case)
  // A client bug: lines longer than this arrive mangled (0: none). Such a message must still
  // arrive exactly once, intact up to its first overlong line.
  std::size_t mangledLinesOver = 0;
};

// Where the first line longer than `limit` (without its line end) starts, or npos.
std::size_t firstLineOver(const std::string& text, std::size_t limit) {
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::size_t length = end - start;
    if (length > 0 && text[end - 1] == '\r') --length;
    if (length > limit) return start;
    start = end + 1;
  }
  return std::string::npos;
}

// POP3 ends every message with a line end (RFC 1939 needs it before the terminator), so a message
// stored without one arrives with CRLF added; then the client's own line-end convention applies.
std::string expectedDelivery(const std::string& imapBody, const DeliveryRules& rules) {
  std::string expected = imapBody;
  if (expected.empty() || expected.back() != '\n') expected += "\r\n";
  return rules.lfLineEnds ? crlfToLf(expected) : expected;
}

bool startsWithFieldName(const std::string& text, std::size_t pos, const std::string& name) {
  if (text.size() < pos + name.size() + 1 || text[pos + name.size()] != ':') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[pos + i])) !=
        std::tolower(static_cast<unsigned char>(name[i]))) {
      return false;
    }
  }
  return true;
}

// Removes the named fields (with their folded continuation lines) from the top of the message
// only; the same names further down belong to the original message and stay.
std::string stripAddedHeaders(const std::string& message, const std::vector<std::string>& names) {
  std::size_t pos = 0;
  for (;;) {
    bool matched = false;
    for (const auto& name : names) {
      if (startsWithFieldName(message, pos, name)) matched = true;
    }
    if (!matched) break;
    do {
      const std::size_t eol = message.find('\n', pos);
      pos = eol == std::string::npos ? message.size() : eol + 1;
    } while (pos < message.size() && (message[pos] == ' ' || message[pos] == '\t'));
  }
  return message.substr(pos);
}

std::string messageIdOf(const std::string& message) {
  const std::size_t at = message.find("Message-ID: ");
  if (at == std::string::npos) return "(no Message-ID)";
  const std::size_t end = message.find_first_of("\r\n", at);
  return message.substr(at + 12, end - at - 12);
}

std::string firstDifference(const std::string& got, const std::string& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  auto excerpt = [&](const std::string& s) {
    std::string part = s.substr(i < 40 ? 0 : i - 40, 80);
    std::string shown;
    for (char c : part) {
      if (c == '\r') {
        shown += "\\r";
      } else if (c == '\n') {
        shown += "\\n";
      } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
        shown += hex;
      } else {
        shown += c;
      }
    }
    return shown;
  };
  return "sizes " + std::to_string(got.size()) + " vs " + std::to_string(want.size()) +
         ", first difference at byte " + std::to_string(i) + ":\n  got:  " + excerpt(got) +
         "\n  want: " + excerpt(want);
}

// Every expected message is delivered exactly once, byte for byte after the rules; nothing else
// is delivered; listed sizes (when known) equal IMAP's.
void expectSameMessages(const std::vector<Delivered>& delivered,
                        const std::vector<std::string>& imapBodies, const DeliveryRules& rules,
                        const std::string& what) {
  std::multimap<std::string, std::size_t> pending;  // expected bytes -> index in imapBodies
  for (std::size_t i = 0; i < imapBodies.size(); ++i) {
    pending.emplace(expectedDelivery(imapBodies[i], rules), i);
  }
  std::size_t matched = 0;
  for (const auto& message : delivered) {
    const std::string got = stripAddedHeaders(message.bytes, rules.addedHeaders);
    auto it = pending.find(got);
    if (it == pending.end() && rules.mangledLinesOver) {
      for (auto candidate = pending.begin(); candidate != pending.end(); ++candidate) {
        const std::size_t cut = firstLineOver(candidate->first, rules.mangledLinesOver);
        if (cut != std::string::npos && got.compare(0, cut, candidate->first, 0, cut) == 0) {
          it = candidate;
          break;
        }
      }
    }
    if (it != pending.end()) {
      if (message.listedSize >= 0) {
        EXPECT_EQ(static_cast<std::size_t>(message.listedSize), imapBodies[it->second].size())
            << what << ": LIST size of " << message.file;
      }
      pending.erase(it);
      ++matched;
      continue;
    }
    // Not expected (or delivered twice): show how it differs from a message with its Message-ID.
    const std::string id = messageIdOf(got);
    std::string closest = "no expected message has this Message-ID (duplicate or foreign)";
    const std::string* best = nullptr;
    for (const auto& [bytes, index] : pending) {
      if (messageIdOf(bytes) != id) continue;
      auto distance = [&](const std::string& s) {
        return s.size() > got.size() ? s.size() - got.size() : got.size() - s.size();
      };
      if (!best || distance(bytes) < distance(*best)) best = &bytes;
    }
    if (best) closest = firstDifference(got, *best);
    ADD_FAILURE() << what << ": unexpected or changed message " << message.file << " " << id << "\n"
                  << closest;
  }
  for (const auto& [bytes, index] : pending) {
    ADD_FAILURE() << what << ": message " << index + 1 << " " << messageIdOf(bytes) << " ("
                  << imapBodies[index].size() << " bytes) was not delivered";
  }
  EXPECT_EQ(matched, imapBodies.size()) << what;
  EXPECT_EQ(delivered.size(), imapBodies.size()) << what;
}

// ---------------------------------------------------------------------------------------------
// The clients

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

class MailClient {
 public:
  explicit MailClient(const std::string& name) : name_(name), dir_("popbridge-" + name) {}
  virtual ~MailClient() = default;
  const std::string& name() const { return name_; }
  // Runs the client once: it fetches what it has not seen before (by its own UIDL memory) and, in
  // kDelete mode, deletes what it fetched. Returns what it delivered in this run. Throws with the
  // client's output when it fails.
  virtual std::vector<Delivered> fetch(const Account& account, const FetchRun& run) = 0;
  virtual DeliveryRules rules() const = 0;
  // Output of the last run, for diagnostics.
  const std::string& lastOutput() const { return lastOutput_; }

 protected:
  // A fresh maildir per run, so each run's deliveries are seen on their own.
  std::string newRunDir() {
    const std::string path = dir_.path() + "/run" + std::to_string(++runs_);
    makeMaildir(path);
    return path;
  }
  CommandResult check(CommandResult result, std::initializer_list<int> okCodes) {
    lastOutput_ = result.describe();
    // PBTEST_CLIENT_OUTPUT=1 shows every client's own transcript, to see what it sent.
    if (std::getenv("PBTEST_CLIENT_OUTPUT")) std::cerr << lastOutput_ << "\n";
    if (result.timedOut ||
        std::find(okCodes.begin(), okCodes.end(), result.exitCode) == okCodes.end()) {
      throw std::runtime_error(name_ + " failed: " + result.describe());
    }
    return result;
  }

  std::string name_;
  TempDir dir_;
  int runs_ = 0;
  std::string lastOutput_;
};

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
    const std::string out = newRunDir();
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
    check(runCommand({"getmail", "--rcfile", rc, "--getmaildir", dir_.path()}, command), {0});
    return readMaildir(out);
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

std::unique_ptr<MailClient> makeClient(const std::string& name) {
  if (name == "fetchmail") return std::make_unique<Fetchmail>();
  if (name == "getmail") return std::make_unique<Getmail>();
  if (name == "mpop") return std::make_unique<Mpop>();
  if (name == "curl") return std::make_unique<Curl>();
  if (name == "poplib") return std::make_unique<Poplib>();
  throw std::invalid_argument("unknown client " + name);
}

// ---------------------------------------------------------------------------------------------
// Fixture

class ClientTestBase : public ::testing::Test {
 protected:
  void seed(const std::vector<std::string>& messages) {
    dovecot_.seedMaildir("alice", messages);
    ImapTestClient imap = imapSession();
    uids_ = imap.uids();
    ASSERT_EQ(uids_.size(), messages.size());
    for (auto uid : uids_) bodies_.push_back(imap.body(uid));
  }

  ImapTestClient imapSession() {
    ImapTestClient imap(dovecot_.imapPort());
    imap.login("alice", dovecot_.user("alice").password);
    imap.select();
    return imap;
  }

  std::vector<std::uint32_t> search(const std::string& criteria) {
    ImapTestClient imap = imapSession();
    std::vector<std::uint32_t> result;
    for (const auto& line : imap.command("UID SEARCH " + criteria)) {
      if (line.rfind("* SEARCH", 0) != 0) continue;
      std::istringstream in(line.substr(8));
      for (std::uint32_t uid; in >> uid;) result.push_back(uid);
    }
    std::sort(result.begin(), result.end());
    return result;
  }

  std::unique_ptr<PopbridgeProcess> startProxy(Transport transport, const std::string& onDelete) {
    PopbridgeProcess::Options options;
    options.listeners[0].tls = transport == Transport::kPlain  ? "none"
                               : transport == Transport::kStls ? "starttls"
                                                               : "implicit";
    // Only the plain listener accepts cleartext logins, so a client that skipped STLS fails.
    options.listeners[0].allowPlaintextAuth = transport == Transport::kPlain;
    options.onDelete = onDelete;
    options.logLevel = "info";
    return std::make_unique<PopbridgeProcess>(dovecot_, options);
  }

  Account account(const PopbridgeProcess& proxy, Transport transport) {
    return {proxy.port(), transport, dovecot_.pki().caCert, "alice",
            dovecot_.user("alice").password};
  }

  DovecotFixture dovecot_;
  std::vector<std::uint32_t> uids_;
  std::vector<std::string> bodies_;
};

// ---------------------------------------------------------------------------------------------
// Keep mode, twice: everything arrives intact, then nothing is new (stable UIDLs), and the
// mailbox is untouched (no \Deleted, no \Seen).

struct DownloadCase {
  std::string client;
  Transport transport;
  bool full;  // the 200+ message mailbox with the 20 MB message, else the small one
};

void PrintTo(const DownloadCase& c, std::ostream* out) {
  *out << c.client << " over " << transportName(c.transport)
       << (c.full ? ", full mailbox" : ", small mailbox");
}

class ClientDownloadTest : public ClientTestBase,
                           public ::testing::WithParamInterface<DownloadCase> {};

TEST_P(ClientDownloadTest, KeepModeTwice) {
  const DownloadCase& c = GetParam();
  seed(c.full ? fullMailbox() : smallMailbox());
  auto proxy = startProxy(c.transport, "expunge");
  auto client = makeClient(c.client);
  const Account target = account(*proxy, c.transport);

  std::vector<Delivered> first;
  ASSERT_NO_THROW(first = client->fetch(target, {Mode::kKeep})) << proxy->log();
  expectSameMessages(first, bodies_, client->rules(), c.client + " first run");
  if (HasFailure()) std::cerr << client->lastOutput() << "\n";

  std::vector<Delivered> second;
  ASSERT_NO_THROW(second = client->fetch(target, {Mode::kKeep})) << proxy->log();
  EXPECT_TRUE(second.empty()) << c.client << " downloaded " << second.size() << " messages again:\n"
                              << client->lastOutput();

  EXPECT_EQ(search("ALL"), uids_);
  EXPECT_TRUE(search("DELETED").empty()) << "keep mode deleted something";
  EXPECT_TRUE(search("SEEN").empty()) << "downloads must not set \\Seen";
}

// ---------------------------------------------------------------------------------------------
// Delete mode with a size limit that makes the client skip the two largest messages: it
// downloads the others and only those leave INBOX, as on_delete says; the skipped ones stay
// unflagged. A message that arrives later is the only one the next run downloads and deletes.

constexpr std::size_t kDeleteSizeLimit = 250000;

struct DeleteCase {
  std::string client;
  Transport transport;
  std::string onDelete;  // flag | expunge
};

void PrintTo(const DeleteCase& c, std::ostream* out) {
  *out << c.client << " over " << transportName(c.transport) << ", on_delete=" << c.onDelete;
}

class ClientDeleteTest : public ClientTestBase, public ::testing::WithParamInterface<DeleteCase> {};

TEST_P(ClientDeleteTest, DeletesOnlyWhatItDownloaded) {
  const DeleteCase& c = GetParam();
  seed(smallMailbox());
  std::vector<std::uint32_t> skipped;
  std::vector<std::uint32_t> downloaded;
  std::vector<std::string> downloadedBodies;
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    if (bodies_[i].size() > kDeleteSizeLimit) {
      skipped.push_back(uids_[i]);
    } else {
      downloaded.push_back(uids_[i]);
      downloadedBodies.push_back(bodies_[i]);
    }
  }
  ASSERT_EQ(skipped.size(), 2u);
  auto proxy = startProxy(c.transport, c.onDelete);
  auto client = makeClient(c.client);
  const Account target = account(*proxy, c.transport);
  const FetchRun deleteRun{Mode::kDelete, kDeleteSizeLimit};

  std::vector<Delivered> first;
  ASSERT_NO_THROW(first = client->fetch(target, deleteRun)) << proxy->log();
  expectSameMessages(first, downloadedBodies, client->rules(), c.client + " first delete run");

  const std::uint32_t lateUid = dovecot_.appendMessage("alice", simpleMessage(900, 3000));
  const std::string lateBody = imapSession().body(lateUid);
  std::vector<Delivered> second;
  ASSERT_NO_THROW(second = client->fetch(target, deleteRun)) << proxy->log();
  expectSameMessages(second, {lateBody}, client->rules(), c.client + " second delete run");
  downloaded.push_back(lateUid);

  std::vector<std::uint32_t> all = search("ALL");
  std::vector<std::uint32_t> deleted = search("DELETED");
  auto contains = [](const std::vector<std::uint32_t>& set, std::uint32_t uid) {
    return std::binary_search(set.begin(), set.end(), uid);
  };
  for (auto uid : skipped) {
    EXPECT_TRUE(contains(all, uid)) << "skipped message " << uid << " was expunged";
    EXPECT_FALSE(contains(deleted, uid)) << "skipped message " << uid << " was flagged";
  }
  for (auto uid : downloaded) {
    if (c.onDelete == "flag") {
      EXPECT_TRUE(contains(all, uid)) << "on_delete=flag must not expunge " << uid;
      EXPECT_TRUE(contains(deleted, uid)) << "downloaded message " << uid << " not flagged";
    } else {
      EXPECT_FALSE(contains(all, uid)) << "on_delete=expunge left " << uid;
    }
  }
  EXPECT_EQ(all.size(), c.onDelete == "flag" ? uids_.size() + 1 : skipped.size());
  EXPECT_TRUE(search("SEEN").empty());

  // Deleted messages are gone from POP3's view and the large ones are still skipped.
  std::vector<Delivered> third;
  ASSERT_NO_THROW(third = client->fetch(target, deleteRun)) << proxy->log();
  EXPECT_TRUE(third.empty()) << client->lastOutput();
  EXPECT_EQ(search("ALL"), all);
}

std::string downloadName(const ::testing::TestParamInfo<DownloadCase>& info) {
  return info.param.client + "_" + transportName(info.param.transport) +
         (info.param.full ? "_full" : "_small");
}

INSTANTIATE_TEST_SUITE_P(clients, ClientDownloadTest,
                         ::testing::Values(DownloadCase{"fetchmail", Transport::kStls, true},
                                           DownloadCase{"fetchmail", Transport::kImplicit, false},
                                           DownloadCase{"fetchmail", Transport::kPlain, false},
                                           DownloadCase{"getmail", Transport::kImplicit, true},
                                           DownloadCase{"getmail", Transport::kPlain, false},
                                           DownloadCase{"mpop", Transport::kStls, true},
                                           DownloadCase{"mpop", Transport::kImplicit, false},
                                           DownloadCase{"mpop", Transport::kPlain, false},
                                           DownloadCase{"curl", Transport::kStls, true},
                                           DownloadCase{"curl", Transport::kImplicit, false},
                                           DownloadCase{"curl", Transport::kPlain, false},
                                           DownloadCase{"poplib", Transport::kStls, true},
                                           DownloadCase{"poplib", Transport::kImplicit, false},
                                           DownloadCase{"poplib", Transport::kPlain, false}),
                         downloadName);

std::string deleteName(const ::testing::TestParamInfo<DeleteCase>& info) {
  return info.param.client + "_" + transportName(info.param.transport) + "_" + info.param.onDelete;
}

INSTANTIATE_TEST_SUITE_P(clients, ClientDeleteTest,
                         ::testing::Values(DeleteCase{"fetchmail", Transport::kImplicit, "flag"},
                                           DeleteCase{"fetchmail", Transport::kStls, "expunge"},
                                           DeleteCase{"getmail", Transport::kImplicit, "flag"},
                                           DeleteCase{"getmail", Transport::kPlain, "expunge"},
                                           DeleteCase{"mpop", Transport::kImplicit, "flag"},
                                           DeleteCase{"mpop", Transport::kStls, "expunge"},
                                           DeleteCase{"curl", Transport::kImplicit, "flag"},
                                           DeleteCase{"curl", Transport::kStls, "expunge"},
                                           DeleteCase{"poplib", Transport::kImplicit, "flag"},
                                           DeleteCase{"poplib", Transport::kStls, "expunge"}),
                         deleteName);

}  // namespace
}  // namespace popbridge::test
