#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

// A scripted IMAP server for faults a real Dovecot cannot be made to produce on demand: a
// connection cut or a BYE in the middle of a literal, a stall, a NO to STORE/MOVE/EXPUNGE, a
// UIDVALIDITY change, an answer about the wrong message. Use Dovecot wherever it can produce the
// behaviour; this peer speaks only the subset popbridge uses.
//
// It listens on a free 127.0.0.1 port (plaintext only) and serves every connection in its own
// thread. Each connection greets, then answers CAPABILITY, LOGIN, AUTHENTICATE PLAIN (with or
// without SASL-IR), SELECT/EXAMINE, the snapshot fetch (UID FETCH 1:* or FETCH n:* of UID,
// RFC822.SIZE and FLAGS), UID FETCH of one body (BODY[], BODY.PEEK[], BODY.PEEK[HEADER]),
// UID FETCH n (UID) (whether a message still exists), STATUS (UIDVALIDITY only), UID STORE,
// UID EXPUNGE, UID MOVE, UID COPY, NOOP (which reports messages a Substitute reaction expunged)
// and LOGOUT from the Script, and "BAD" to anything else. Synchronizing literals get a "+"
// continuation. Every command is recorded without its tag (LOGIN and AUTHENTICATE without their
// credentials), so tests can check exactly what popbridge sent.
namespace popbridge::test {

class ScriptedImapPeer {
 public:
  // Points in a conversation where the script can react.
  enum class Step {
    Greeting,
    Capability,
    Login,  // LOGIN and AUTHENTICATE
    Select,
    Snapshot,  // the fetch of UID/RFC822.SIZE/FLAGS
    Body,      // UID FETCH of one message's body
    Store,
    Expunge,
    Move,
    Copy,
    Logout,
    Noop,
  };

  struct Reaction {
    enum class Kind {
      Normal,           // answer as a healthy server would
      Reply,            // send the tagged reply `text` instead ("NO [SERVERBUG] Disk full")
      Stall,            // send nothing more, keep reading
      Close,            // close the connection without answering
      CloseMidLiteral,  // Body: send `literalBytes` of the literal, then close
      ByeMidLiteral,    // Body: send `literalBytes` of the literal, then "* BYE", then close
      StallMidLiteral,  // Body: send `literalBytes` of the literal, then nothing
      WrongMessage,     // Body: answer with the next message's UID and body, then tagged OK
      Vanished,         // Body: "* n EXPUNGE" and a tagged OK without data (as Dovecot does)
      // Body: the header of the literal, then ")" CRLF and the tagged OK inside it, then nothing
      // (GNU Mailutils imap4d when another session changed the maildir).
      BrokenLiteral,
      // Body: `text` instead of the message, tagged OK, and the message counts as expunged by
      // another client: the next NOOP reports its EXPUNGE (Courier IMAP's placeholder).
      Substitute,
    };
    Kind kind = Kind::Normal;
    std::string text;
    std::size_t literalBytes = 0;
    // Sent before the answer (without CRLF), e.g. "* OK [UIDVALIDITY 7] changed".
    std::vector<std::string> untaggedBefore;
    // The connections (1 = the first accepted) this reaction applies to; empty: all of them.
    std::vector<int> connections;
    // Body: the UIDs whose fetch this reaction applies to; empty: every body.
    std::vector<std::uint32_t> uids;

    static Reaction of(Kind kind) {
      Reaction reaction;
      reaction.kind = kind;
      return reaction;
    }
  };

  struct Message {
    std::uint32_t uid = 0;
    std::string bytes;
    std::string flags;  // inside the parentheses, e.g. "\\Seen"
    // RFC822.SIZE in the snapshot when it is not the true size (Exchange's estimates).
    std::optional<std::size_t> reportedSize;
    std::uint64_t modSeq = 1;  // RFC 7162: what CHANGEDSINCE compares
  };

  struct Script {
    std::string capabilities = "IMAP4rev1 LITERAL+ SASL-IR UIDPLUS MOVE AUTH=PLAIN";
    std::string user = "alice";
    std::string password;  // required: the only credentials accepted
    std::uint32_t uidValidity = 1700000000;
    // Non-zero: "SELECT folder (CONDSTORE)" reports it as HIGHESTMODSEQ, and a fetch with
    // "(CHANGEDSINCE m)" answers only messages whose modSeq is above m (put CONDSTORE in the
    // capabilities too).
    std::uint64_t highestModSeq = 0;
    std::vector<Message> messages;
    std::map<Step, Reaction> reactions;
  };

  explicit ScriptedImapPeer(Script script);
  // Stops accepting, shuts every connection down and joins the threads.
  ~ScriptedImapPeer();
  ScriptedImapPeer(const ScriptedImapPeer&) = delete;
  ScriptedImapPeer& operator=(const ScriptedImapPeer&) = delete;

  std::uint16_t port() const { return port_; }

  // Every command received so far, over all connections, without tags, e.g.
  // "UID STORE 2,4 +FLAGS.SILENT (\\Deleted)", "LOGIN alice", "AUTHENTICATE PLAIN".
  std::vector<std::string> commands() const;
  // The recorded commands that start with `prefix` (case-sensitive).
  std::vector<std::string> commandsStartingWith(std::string_view prefix) const;
  // The transcript as one string, one command per line, for failure messages.
  std::string transcript() const;

  int accepted() const;
  // Connections on which the peer (popbridge) closed or reset its side, or that the script
  // closed; a stalled connection counts once popbridge gives up on it.
  int closed() const;
  // Wait (bounded) until closed() >= n; returns false on timeout.
  bool waitForClosed(int n, int timeoutMs) const;
  // Wait (bounded) until a command starting with `prefix` was received.
  bool waitForCommand(std::string_view prefix, int timeoutMs) const;

  // Sends raw bytes on every open connection now (an unsolicited response).
  void push(std::string_view bytes);
  // What connections accepted from now on see: another client changed the mailbox.
  void setMailbox(std::vector<Message> messages, std::uint32_t uidValidity,
                  std::uint64_t highestModSeq);

 private:
  struct Connection;

  void acceptLoop();
  void serve(std::shared_ptr<Connection> connection);
  void converse(Connection& connection);
  void record(std::string command);
  void markClosed(Connection& connection);
  // `uid`: the message of a Body step.
  const Reaction& reactionFor(Step step, int connection, std::uint32_t uid = 0) const;

  Script script_;
  int listenFd_ = -1;
  int wakePipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread acceptThread_;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool stopping_ = false;
  std::vector<std::string> commands_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::vector<std::thread> threads_;
  int accepted_ = 0;
  int closed_ = 0;
};

const char* toString(ScriptedImapPeer::Step step);
const char* toString(ScriptedImapPeer::Reaction::Kind kind);
// For gtest's parameter printing.
inline void PrintTo(ScriptedImapPeer::Step step, std::ostream* os) {
  *os << toString(step);
}
inline void PrintTo(ScriptedImapPeer::Reaction::Kind kind, std::ostream* os) {
  *os << toString(kind);
}

}  // namespace popbridge::test
