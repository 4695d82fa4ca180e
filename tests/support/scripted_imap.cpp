#include "tests/support/scripted_imap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/base64.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <stdexcept>

namespace popbridge::test {
namespace {

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// The next word of `text` (up to a space), removed from it with the space.
std::string takeWord(std::string_view& text) {
  std::size_t end = text.find(' ');
  std::string word(text.substr(0, end));
  text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  return word;
}

// An IMAP astring (atom, quoted string or literal as reassembled by readCommand), removed from
// `text` together with one following space.
std::optional<std::string> takeAstring(std::string_view& text) {
  std::string value;
  if (!text.empty() && text.front() == '"') {
    std::size_t i = 1;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) ++i;
      value += text[i];
    }
    if (i >= text.size()) return std::nullopt;
    text.remove_prefix(i + 1);
  } else if (!text.empty() && text.front() == '{') {
    std::size_t close = text.find("}\r\n");
    if (close == std::string_view::npos) return std::nullopt;
    std::string digits(text.substr(1, close - 1));
    if (!digits.empty() && digits.back() == '+') digits.pop_back();
    std::size_t length = std::stoul(digits);
    text.remove_prefix(close + 3);
    if (text.size() < length) return std::nullopt;
    value = std::string(text.substr(0, length));
    text.remove_prefix(length);
  } else {
    value = takeWord(text);
    return value;
  }
  if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  return value;
}

std::optional<std::string> decodeBase64(std::string_view text) {
  std::size_t max = 0;
  if (!EVP_DecodedLength(&max, text.size())) return std::nullopt;
  std::string out(max, '\0');
  std::size_t length = 0;
  if (!EVP_DecodeBase64(reinterpret_cast<std::uint8_t*>(out.data()), &length, max,
                        reinterpret_cast<const std::uint8_t*>(text.data()), text.size())) {
    return std::nullopt;
  }
  out.resize(length);
  return out;
}

// "1:3,7" style sets of numbers; "*" stands for `star`.
bool inSet(std::string_view set, std::uint32_t value, std::uint32_t star) {
  auto number = [&](std::string_view text) -> std::uint32_t {
    return text == "*" ? star : static_cast<std::uint32_t>(std::stoul(std::string(text)));
  };
  while (!set.empty()) {
    std::size_t comma = set.find(',');
    std::string_view range = set.substr(0, comma);
    set.remove_prefix(comma == std::string_view::npos ? set.size() : comma + 1);
    std::size_t colon = range.find(':');
    std::uint32_t low = number(range.substr(0, colon));
    std::uint32_t high = colon == std::string_view::npos ? low : number(range.substr(colon + 1));
    if (low > high) std::swap(low, high);
    if (value >= low && value <= high) return true;
  }
  return false;
}

}  // namespace

struct ScriptedImapPeer::Connection {
  int fd = -1;
  std::mutex writeMutex;
  std::string input;
  bool closed = false;  // guarded by the peer's mutex_
  bool stalled = false;
  int number = 0;  // 1 = the first accepted
  // UIDs another client "expunged" (Substitute): not yet reported, and reported by a NOOP.
  std::set<std::uint32_t> expungedUnseen;
  std::set<std::uint32_t> expungedSeen;

  // The sequence number of `uid` in this connection's view, or 0 when it is not there.
  std::uint32_t sequenceOf(const std::vector<Message>& messages, std::uint32_t uid) const {
    std::uint32_t seq = 0;
    for (const Message& m : messages) {
      if (expungedSeen.count(m.uid) != 0) continue;
      ++seq;
      if (m.uid == uid) return seq;
    }
    return 0;
  }

  ~Connection() {
    if (fd >= 0) ::close(fd);
  }

  bool send(std::string_view bytes) {
    std::lock_guard lock(writeMutex);
    while (!bytes.empty()) {
      ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // False on EOF or error.
  bool fill() {
    char buffer[65536];
    for (;;) {
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      input.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
  }

  std::optional<std::string> readLine() {
    for (;;) {
      std::size_t end = input.find("\r\n");
      if (end != std::string::npos) {
        std::string line = input.substr(0, end);
        input.erase(0, end + 2);
        return line;
      }
      if (!fill()) return std::nullopt;
    }
  }

  std::optional<std::string> readExact(std::size_t length) {
    while (input.size() < length) {
      if (!fill()) return std::nullopt;
    }
    std::string data = input.substr(0, length);
    input.erase(0, length);
    return data;
  }

  // One command with its literals inlined as "{n}\r\n<bytes>"; a synchronizing literal gets
  // its "+" first (unless the connection is stalled).
  std::optional<std::string> readCommand() {
    std::string command;
    for (;;) {
      std::optional<std::string> line = readLine();
      if (!line) return std::nullopt;
      command += *line;
      if (line->empty() || line->back() != '}') return command;
      std::size_t open = line->rfind('{');
      if (open == std::string::npos) return command;
      std::string digits = line->substr(open + 1, line->size() - open - 2);
      bool nonSync = !digits.empty() && digits.back() == '+';
      if (nonSync) digits.pop_back();
      if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return command;
      if (!nonSync && !stalled && !send("+ Ready for literal data\r\n")) return std::nullopt;
      std::optional<std::string> data = readExact(std::stoul(digits));
      if (!data) return std::nullopt;
      command += "\r\n";
      command += *data;
    }
  }
};

ScriptedImapPeer::ScriptedImapPeer(Script script) : script_(std::move(script)) {
  std::signal(SIGPIPE, SIG_IGN);
  listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listenFd_ < 0) throw std::runtime_error("scripted IMAP peer: socket failed");
  int one = 1;
  ::setsockopt(listenFd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listenFd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(listenFd_, 64) != 0 ||
      ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(listenFd_);
    throw std::runtime_error(std::string("scripted IMAP peer: cannot listen: ") +
                             std::strerror(errno));
  }
  port_ = ntohs(address.sin_port);
  if (::pipe2(wakePipe_, O_CLOEXEC) != 0) {
    ::close(listenFd_);
    throw std::runtime_error("scripted IMAP peer: pipe failed");
  }
  acceptThread_ = std::thread([this] { acceptLoop(); });
}

ScriptedImapPeer::~ScriptedImapPeer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // Wakes every connection thread out of recv().
    for (auto& connection : connections_) ::shutdown(connection->fd, SHUT_RDWR);
  }
  char byte = 0;
  [[maybe_unused]] ssize_t n = ::write(wakePipe_[1], &byte, 1);
  acceptThread_.join();
  for (auto& thread : threads_) thread.join();
  ::close(listenFd_);
  ::close(wakePipe_[0]);
  ::close(wakePipe_[1]);
}

void ScriptedImapPeer::acceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listenFd_, POLLIN, 0}, {wakePipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    auto connection = std::make_shared<Connection>();
    connection->fd = fd;
    std::lock_guard lock(mutex_);
    if (stopping_) return;  // the Connection closes fd
    ++accepted_;
    connection->number = accepted_;
    connections_.push_back(connection);
    threads_.emplace_back([this, connection] { serve(connection); });
    changed_.notify_all();
  }
}

const ScriptedImapPeer::Reaction& ScriptedImapPeer::reactionFor(Step step, int connection,
                                                                std::uint32_t uid) const {
  static const Reaction kNormal;
  auto it = script_.reactions.find(step);
  if (it == script_.reactions.end()) return kNormal;
  const std::vector<int>& only = it->second.connections;
  if (!only.empty() && std::find(only.begin(), only.end(), connection) == only.end()) {
    return kNormal;
  }
  const std::vector<std::uint32_t>& uids = it->second.uids;
  if (!uids.empty() && std::find(uids.begin(), uids.end(), uid) == uids.end()) return kNormal;
  return it->second;
}

void ScriptedImapPeer::record(std::string command) {
  std::lock_guard lock(mutex_);
  commands_.push_back(std::move(command));
  changed_.notify_all();
}

void ScriptedImapPeer::markClosed(Connection& connection) {
  std::lock_guard lock(mutex_);
  if (connection.closed) return;
  connection.closed = true;
  ::shutdown(connection.fd, SHUT_RDWR);
  ++closed_;
  changed_.notify_all();
}

void ScriptedImapPeer::serve(std::shared_ptr<Connection> connection) {
  // A command the peer cannot parse must fail the test through the transcript, not terminate
  // the process from this thread.
  try {
    converse(*connection);
  } catch (const std::exception& error) {
    record(std::string("<scripted peer could not handle a command: ") + error.what() + ">");
  }
  markClosed(*connection);
}

void ScriptedImapPeer::setMailbox(std::vector<Message> messages, std::uint32_t uidValidity,
                                  std::uint64_t highestModSeq) {
  std::lock_guard lock(mutex_);
  script_.messages = std::move(messages);
  script_.uidValidity = uidValidity;
  script_.highestModSeq = highestModSeq;
}

void ScriptedImapPeer::converse(Connection& c) {
  std::vector<Message> mailbox;
  std::uint32_t uidValidity = 0;
  std::uint64_t highestModSeq = 0;
  {
    // setMailbox may change them meanwhile: later connections, and the next SELECT, see it.
    std::lock_guard lock(mutex_);
    mailbox = script_.messages;
    uidValidity = script_.uidValidity;
    highestModSeq = script_.highestModSeq;
  }
  const auto& messages = mailbox;
  auto caps = script_.capabilities;

  // Returns false when the connection is over (closed by the script or write failed).
  auto react = [&](Step step, const std::string& tag, const std::string& normal,
                   std::uint32_t uid = 0) -> bool {
    const Reaction& reaction = reactionFor(step, c.number, uid);
    for (const std::string& line : reaction.untaggedBefore) {
      if (!c.send(line + "\r\n")) return false;
    }
    switch (reaction.kind) {
      case Reaction::Kind::Reply:
        return c.send(step == Step::Greeting ? reaction.text + "\r\n"
                                             : tag + " " + reaction.text + "\r\n");
      case Reaction::Kind::Stall:
        c.stalled = true;
        return true;
      case Reaction::Kind::Close:
        return false;
      default:
        return c.send(normal);
    }
  };

  bool open = react(Step::Greeting, "*", "* OK [CAPABILITY " + caps + "] scripted peer ready.\r\n");
  while (open) {
    std::optional<std::string> command = c.readCommand();
    if (!command) break;
    std::string_view rest = *command;
    std::string tag = takeWord(rest);
    std::string verb = upper(takeWord(rest));
    if (verb == "UID") verb += " " + upper(takeWord(rest));
    if (c.stalled) {
      record(verb == "LOGIN" || verb == "AUTHENTICATE" ? verb : command->substr(tag.size() + 1));
      continue;
    }

    if (verb == "CAPABILITY") {
      record(verb);
      open = react(Step::Capability, tag,
                   "* CAPABILITY " + caps + "\r\n" + tag + " OK Capability completed.\r\n");
    } else if (verb == "LOGIN" || verb == "AUTHENTICATE") {
      std::optional<std::string> user, password;
      if (verb == "LOGIN") {
        user = takeAstring(rest);
        password = takeAstring(rest);
        record("LOGIN " + user.value_or("?"));
      } else {
        std::string mechanism = upper(takeWord(rest));
        record("AUTHENTICATE " + mechanism);
        std::string response(rest);
        if (response.empty()) {
          if (!c.send("+ \r\n")) break;
          std::optional<std::string> line = c.readLine();
          if (!line) break;
          response = *line;
        }
        if (std::optional<std::string> decoded = decodeBase64(response)) {
          std::size_t first = decoded->find('\0');
          std::size_t second = first == std::string::npos ? first : decoded->find('\0', first + 1);
          if (mechanism == "PLAIN" && second != std::string::npos) {
            user = decoded->substr(first + 1, second - first - 1);
            password = decoded->substr(second + 1);
          }
        }
      }
      bool ok = user == script_.user && password == script_.password;
      open = react(Step::Login, tag,
                   ok ? tag + " OK [CAPABILITY " + caps + "] Logged in\r\n"
                      : tag + " NO [AUTHENTICATIONFAILED] Authentication failed.\r\n");
    } else if (verb == "SELECT" || verb == "EXAMINE") {
      record(command->substr(tag.size() + 1));
      {
        // A (re-)SELECT shows the folder as it is now, as a real server's does: setMailbox
        // reaches a connection that stayed open (a pooled one) at its next SELECT.
        std::lock_guard lock(mutex_);
        mailbox = script_.messages;
        uidValidity = script_.uidValidity;
        highestModSeq = script_.highestModSeq;
      }
      std::uint32_t next = messages.empty() ? 1 : messages.back().uid + 1;
      open = react(Step::Select, tag,
                   "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* " +
                       std::to_string(messages.size()) + " EXISTS\r\n* 0 RECENT\r\n" +
                       "* OK [UIDVALIDITY " + std::to_string(uidValidity) +
                       "] UIDs valid\r\n* OK [UIDNEXT " + std::to_string(next) +
                       "] Predicted next UID\r\n" +
                       (highestModSeq != 0 && upper(rest).find("(CONDSTORE)") != std::string::npos
                            ? "* OK [HIGHESTMODSEQ " + std::to_string(highestModSeq) + "] ok\r\n"
                            : std::string()) +
                       tag + " OK [" + (verb == "SELECT" ? "READ-WRITE" : "READ-ONLY") +
                       "] Select completed.\r\n");
    } else if (verb == "UID FETCH" || verb == "FETCH") {
      record(command->substr(tag.size() + 1));
      std::string set = takeWord(rest);
      std::string items = upper(rest);
      bool snapshot = items.find("RFC822.SIZE") != std::string::npos;
      std::uint64_t changedSince = 0;
      if (std::size_t at = items.find("CHANGEDSINCE "); at != std::string::npos) {
        changedSince = std::stoull(items.substr(at + 13));
      }
      if (snapshot) {
        std::string reply;
        auto star = static_cast<std::uint32_t>(verb == "FETCH"    ? messages.size()
                                               : messages.empty() ? 0
                                                                  : messages.back().uid);
        for (std::size_t i = 0; i < messages.size(); ++i) {
          const Message& m = messages[i];
          std::uint32_t key = verb == "FETCH" ? static_cast<std::uint32_t>(i + 1) : m.uid;
          if (!inSet(set, key, star) || m.modSeq <= changedSince) continue;
          reply += "* " + std::to_string(i + 1) + " FETCH (UID " + std::to_string(m.uid) +
                   " RFC822.SIZE " + std::to_string(m.reportedSize.value_or(m.bytes.size())) +
                   " FLAGS (" + m.flags + "))\r\n";
        }
        open = react(Step::Snapshot, tag, reply + tag + " OK Fetch completed.\r\n");
        continue;
      }
      std::uint32_t uid = static_cast<std::uint32_t>(std::stoul(set));
      if (items == "(UID)") {
        // One UID (does it still exist?) or a range (which UIDs are present?).
        std::string reply;
        for (const Message& m : messages) {
          if (!inSet(set, m.uid, messages.back().uid)) continue;
          if (std::uint32_t seq = c.sequenceOf(messages, m.uid); seq != 0) {
            reply += "* " + std::to_string(seq) + " FETCH (UID " + std::to_string(m.uid) + ")\r\n";
          }
        }
        open = c.send(reply + tag + " OK Fetch completed.\r\n");
        continue;
      }
      // One body.
      std::size_t index = 0;
      while (index < messages.size() && messages[index].uid != uid) ++index;
      std::string section;
      std::size_t open_bracket = items.find('[');
      std::size_t close_bracket = items.find(']');
      if (open_bracket != std::string::npos && close_bracket != std::string::npos) {
        section = items.substr(open_bracket + 1, close_bracket - open_bracket - 1);
      }
      const Reaction& reaction = reactionFor(Step::Body, c.number, uid);
      using Kind = Reaction::Kind;
      if (reaction.kind == Kind::WrongMessage && index + 1 < messages.size()) ++index;
      if (index >= messages.size() || reaction.kind == Kind::Vanished) {
        std::string reply;
        if (index < messages.size()) reply = "* " + std::to_string(index + 1) + " EXPUNGE\r\n";
        for (const std::string& line : reaction.untaggedBefore) reply = line + "\r\n" + reply;
        open = c.send(reply + tag + " OK Fetch completed.\r\n");
        continue;
      }
      const Message& m = messages[index];
      std::string body = m.bytes;
      if (section == "HEADER") {
        std::size_t end = body.find("\r\n\r\n");
        if (end != std::string::npos) body.resize(end + 4);
      }
      std::string head = "* " + std::to_string(index + 1) + " FETCH (UID " + std::to_string(m.uid) +
                         " BODY[" + section + "] {" + std::to_string(body.size()) + "}\r\n";
      std::string tail = ")\r\n" + tag + " OK Fetch completed.\r\n";
      switch (reaction.kind) {
        case Kind::BrokenLiteral:
          open = c.send(head + tail);
          c.stalled = true;
          break;
        case Kind::Substitute:
          c.expungedUnseen.insert(m.uid);
          open = c.send("* " + std::to_string(index + 1) + " FETCH (UID " + std::to_string(m.uid) +
                        " BODY[" + section + "] {" + std::to_string(reaction.text.size()) +
                        "}\r\n" + reaction.text + tail);
          break;
        case Kind::CloseMidLiteral:
        case Kind::ByeMidLiteral:
        case Kind::StallMidLiteral: {
          for (const std::string& line : reaction.untaggedBefore)
            open = open && c.send(line + "\r\n");
          std::string partial = head + body.substr(0, reaction.literalBytes);
          if (reaction.kind == Kind::ByeMidLiteral)
            partial += "\r\n* BYE Server shutting down.\r\n";
          open = open && c.send(partial);
          if (reaction.kind == Kind::StallMidLiteral) {
            c.stalled = true;
          } else {
            open = false;
          }
          break;
        }
        default:
          open = react(Step::Body, tag, head + body + tail, uid);
          break;
      }
    } else if (verb == "UID SEARCH" && upper(rest).rfind("DELETED", 0) == 0) {
      // The one search popbridge sends: the \Deleted set, for a refresh without CONDSTORE.
      record(command->substr(tag.size() + 1));
      std::string reply = "* SEARCH";
      for (const Message& m : messages) {
        if (upper(m.flags).find("\\DELETED") != std::string::npos) {
          reply += " " + std::to_string(m.uid);
        }
      }
      open = c.send(reply + "\r\n" + tag + " OK Search completed.\r\n");
    } else if (verb == "STATUS") {
      // The folder's UIDVALIDITY as it is now (setMailbox may have changed it), as a real server
      // answers the check popbridge makes before QUIT deletes; the name goes back as it came.
      record(command->substr(tag.size() + 1));
      std::uint32_t current = 0;
      {
        std::lock_guard lock(mutex_);
        current = script_.uidValidity;
      }
      open = c.send("* STATUS " + std::string(rest.substr(0, rest.rfind(" ("))) + " (UIDVALIDITY " +
                    std::to_string(current) + ")\r\n" + tag + " OK Status completed.\r\n");
    } else if (verb == "UID STORE") {
      record(command->substr(tag.size() + 1));
      open = react(Step::Store, tag, tag + " OK Store completed.\r\n");
    } else if (verb == "UID EXPUNGE" || verb == "EXPUNGE") {
      record(command->substr(tag.size() + 1));
      open = react(Step::Expunge, tag, tag + " OK Expunge completed.\r\n");
    } else if (verb == "UID MOVE") {
      record(command->substr(tag.size() + 1));
      open = react(Step::Move, tag, tag + " OK Move completed.\r\n");
    } else if (verb == "UID COPY") {
      record(command->substr(tag.size() + 1));
      open = react(Step::Copy, tag, tag + " OK Copy completed.\r\n");
    } else if (verb == "NOOP") {
      record(verb);
      std::string reply;
      for (std::uint32_t uid : c.expungedUnseen) {
        reply += "* " + std::to_string(c.sequenceOf(messages, uid)) + " EXPUNGE\r\n";
        c.expungedSeen.insert(uid);
      }
      c.expungedUnseen.clear();
      open = react(Step::Noop, tag, reply + tag + " OK NOOP completed.\r\n");
    } else if (verb == "LOGOUT") {
      record(verb);
      open = react(Step::Logout, tag, "* BYE Logging out\r\n" + tag + " OK Logout completed.\r\n");
      if (open && reactionFor(Step::Logout, c.number).kind != Reaction::Kind::Stall) open = false;
    } else {
      record(command->substr(tag.size() + 1));
      open = c.send(tag + " BAD Command not supported by the scripted peer.\r\n");
    }
  }
}

std::vector<std::string> ScriptedImapPeer::commands() const {
  std::lock_guard lock(mutex_);
  return commands_;
}

std::vector<std::string> ScriptedImapPeer::commandsStartingWith(std::string_view prefix) const {
  std::vector<std::string> out;
  for (std::string& command : commands()) {
    if (command.rfind(prefix, 0) == 0) out.push_back(std::move(command));
  }
  return out;
}

std::string ScriptedImapPeer::transcript() const {
  std::string text;
  for (const std::string& command : commands()) text += "  C: " + command + "\n";
  return text;
}

int ScriptedImapPeer::accepted() const {
  std::lock_guard lock(mutex_);
  return accepted_;
}

int ScriptedImapPeer::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

bool ScriptedImapPeer::waitForClosed(int n, int timeoutMs) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeoutMs),
                           [&] { return closed_ >= n; });
}

bool ScriptedImapPeer::waitForCommand(std::string_view prefix, int timeoutMs) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeoutMs), [&] {
    return std::any_of(commands_.begin(), commands_.end(),
                       [&](const std::string& c) { return c.rfind(prefix, 0) == 0; });
  });
}

void ScriptedImapPeer::push(std::string_view bytes) {
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(mutex_);
    for (auto& connection : connections_) {
      if (!connection->closed) open.push_back(connection);
    }
  }
  for (auto& connection : open) connection->send(bytes);
}

const char* toString(ScriptedImapPeer::Step step) {
  using Step = ScriptedImapPeer::Step;
  switch (step) {
    case Step::Greeting:
      return "Greeting";
    case Step::Capability:
      return "Capability";
    case Step::Login:
      return "Login";
    case Step::Select:
      return "Select";
    case Step::Snapshot:
      return "Snapshot";
    case Step::Body:
      return "Body";
    case Step::Store:
      return "Store";
    case Step::Expunge:
      return "Expunge";
    case Step::Move:
      return "Move";
    case Step::Copy:
      return "Copy";
    case Step::Logout:
      return "Logout";
    case Step::Noop:
      return "Noop";
  }
  return "?";
}

const char* toString(ScriptedImapPeer::Reaction::Kind kind) {
  using Kind = ScriptedImapPeer::Reaction::Kind;
  switch (kind) {
    case Kind::Normal:
      return "Normal";
    case Kind::Reply:
      return "Reply";
    case Kind::Stall:
      return "Stall";
    case Kind::Close:
      return "Close";
    case Kind::CloseMidLiteral:
      return "CloseMidLiteral";
    case Kind::ByeMidLiteral:
      return "ByeMidLiteral";
    case Kind::StallMidLiteral:
      return "StallMidLiteral";
    case Kind::WrongMessage:
      return "WrongMessage";
    case Kind::Vanished:
      return "Vanished";
    case Kind::BrokenLiteral:
      return "BrokenLiteral";
    case Kind::Substitute:
      return "Substitute";
  }
  return "?";
}

}  // namespace popbridge::test
