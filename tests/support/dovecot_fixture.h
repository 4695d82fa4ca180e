#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/test_tls.h"

// A private Dovecot instance for integration tests.
//
// Each fixture runs `dovecot -F -c <dir>/dovecot.conf` as a child process with its own base_dir,
// state_dir and log under a fresh popbridge-dovecot-XXXXXX directory (in $POPBRIDGE_TEST_TMPDIR,
// else /dev/shm when it is a roomy tmpfs, else /tmp), listening on free 127.0.0.1 ports only (a
// system Dovecot on 143/993 does not matter). Users live in passwd-files (<dir>/users.d/<name>)
// with PLAIN passwords; mail is Maildir under <dir>/home/<user>/Maildir. TLS uses a test PKI made
// for the instance (pki().caCert verifies it for the name "localhost" and 127.0.0.1). Failed
// logins are answered within half a second (auth_failure_delay = 0, see Options::authPenalty).
// Run as root, mail belongs to nobody:nogroup (Dovecot refuses uid 0); run as another user, every
// Dovecot process runs as that user.
//
// Sharing one instance in a test binary:
//   DovecotFixture& dovecot = DovecotFixture::shared();
// starts an instance with default options on first use and stops it when the process exits. Tests
// that share it should not stop() it and should use their own user (addUser()) or folder when they
// change mailboxes. ctest runs every gtest case in its own process, so there "shared" means "one
// per test case", which is also what keeps ctest -j safe.
//
// If the test process dies without running destructors, Dovecot gets SIGTERM through
// PR_SET_PDEATHSIG (tied to the thread that started it, so start fixtures on the main thread).
// Set POPBRIDGE_KEEP_DOVECOT=1 to keep the directory (config, log, mail) after the fixture ends.
namespace popbridge::test {

struct DovecotUser {
  std::string name;
  std::string password;
};

// Dovecot's oauth2 passdb, for XOAUTH2 and OAUTHBEARER next to the passwd-file passdb (which is
// then limited to PLAIN and LOGIN). Users still come from the passwd-file userdb, so a token's
// "sub" must name an existing user, and must equal the SASL user.
struct DovecotOAuth2Options {
  // Local JWT validation (introspection_mode = local): the HS256 key of the tokens, written as
  // oauth2KeysDir()/<azp>/HS256/<kid>. Empty writes no key: the test writes its own there, e.g.
  // with TokenEndpoint::writeDovecotKey(), before the first login (Dovecot caches keys).
  std::string jwtSecret;
  std::string keyId;  // empty: "default", which Dovecot uses for a JWT without "kid"
  std::string azp;    // empty: "default", which Dovecot uses for a JWT without "azp"
  // introspection_mode = post instead: Dovecot POSTs token=... to introspectionUrl and wants
  // {"active":true,"sub":"<user>"} back (TokenEndpoint's /introspect). For an https URL,
  // introspectionCaFile is the CA that verifies it.
  bool introspectionPost = false;
  std::string introspectionUrl;
  std::string introspectionCaFile;
};

// Outside the class only because a nested struct with default member initializers cannot be a
// defaulted constructor argument of its enclosing class; use it as DovecotFixture::Options.
struct DovecotOptions {
  std::vector<DovecotUser> users{
      {"alice", "alice-Secret-1"}, {"bob", "bob-Secret-2"}, {"carol", "carol-Secret-3"}};
  bool enablePop3 = true;   // Dovecot's own POP3 (for comparisons), plain + pop3s
  std::string extraConfig;  // appended verbatim to dovecot.conf (later settings win)
  // Dovecot's auth penalty delays every login from an address with recent failures, growing up
  // to 15 s (4 s seen after one failure). All tests come from 127.0.0.1, and
  // login_trusted_networks did not exempt it in 2.3.19, so it is off unless a test wants it.
  bool authPenalty = false;
  // Adds `auth_mechanisms = plain login xoauth2 oauthbearer` and an oauth2 passdb.
  std::optional<DovecotOAuth2Options> oauth2;
  // Folders of the inbox namespace that carry an RFC 6154 special-use attribute, created at
  // login: {"Papierkorb", "\\Trash"}. Empty: no namespace block, so Dovecot's implicit one
  // (no special-use folders at all).
  std::vector<std::pair<std::string, std::string>> specialUse{};
};

class DovecotFixture {
 public:
  using Options = DovecotOptions;

  // Starts Dovecot and waits until the IMAP port greets. Throws std::runtime_error with the log
  // tail when it cannot start.
  explicit DovecotFixture(Options options = {});
  // Stops Dovecot (SIGTERM to its process group, up to 5 s, then SIGKILL) and removes the
  // directory.
  ~DovecotFixture();
  DovecotFixture(const DovecotFixture&) = delete;
  DovecotFixture& operator=(const DovecotFixture&) = delete;

  // One instance per process with default options, started on first use.
  static DovecotFixture& shared();

  std::uint16_t imapPort() const { return imapPort_; }    // plain IMAP, STARTTLS offered
  std::uint16_t imapsPort() const { return imapsPort_; }  // implicit TLS IMAP
  std::uint16_t pop3Port() const;                         // throws unless enablePop3
  std::uint16_t pop3sPort() const;
  const TestPki& pki() const { return pki_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }  // the master process, or -1 once stopped
  bool running() const { return pid_ > 0; }

  const std::vector<DovecotUser>& users() const { return users_; }
  // Throws std::out_of_range for an unknown user.
  const DovecotUser& user(std::string_view name) const;
  // Adds a user; Dovecot accepts it at once, even while running. Invalidates references from
  // users() and user(). An empty password gets a generated one.
  DovecotUser addUser(const std::string& name, const std::string& password = "");

  // Writes the messages as Maildir files, byte for byte, owned by the mail uid. Dovecot gives
  // them UIDs in the order given, after any message already in the folder. A folder other than
  // INBOX is created as needed ("Archive" or "Archive.2024", '.' being the hierarchy separator).
  // Dovecot serves stored bytes with bare LF turned into CRLF: see dovecotServedBytes().
  void seedMaildir(const std::string& user, const std::vector<std::string>& messages,
                   const std::string& folder = "INBOX");
  // Appends over IMAP (creating the folder if needed) and returns the UID from APPENDUID. `flags`
  // is a space-separated flag list such as "\\Seen \\Flagged".
  std::uint32_t appendMessage(const std::string& user, std::string_view bytes,
                              std::string_view flags = "", const std::string& folder = "INBOX");
  // The Maildir directory of a user's folder.
  std::string maildirPath(const std::string& user, const std::string& folder = "INBOX") const;

  // Stops Dovecot now (to test "upstream down"); returns once its ports refuse connections.
  void stop();

  // Where local JWT validation looks for keys (<dir>/oauth2/keys, with a trailing '/'); throws
  // std::logic_error unless Options::oauth2 is set.
  std::string oauth2KeysDir() const;

  std::string logTail(std::size_t lines = 50) const;
  std::string logPath() const { return dir_ + "/dovecot.log"; }
  // The rip= of each of the log's "Login: user=<user>" lines, in order. Dovecot's log process
  // writes a line some time after the login, so this waits (up to 10 s) until there are at least
  // `atLeast` of them.
  std::vector<std::string> loginRips(const std::string& user, std::size_t atLeast) const;

 private:
  void prepareDirectory();
  void writeUserFile(const DovecotUser& user) const;
  void createMaildir(const std::string& path) const;
  void writeConfig() const;
  void writeOAuth2Files() const;
  void spawn();
  // Returns an empty string when Dovecot is ready, else why it is not (and it has been stopped).
  std::string waitUntilReady();
  void killAndReap();
  std::string startupDiagnostics() const;

  Options options_;
  std::vector<DovecotUser> users_;
  std::string dir_;
  TestPki pki_;
  uid_t mailUid_ = 0;
  gid_t mailGid_ = 0;
  std::string mailUser_;
  std::string mailGroup_;
  std::uint16_t imapPort_ = 0;
  std::uint16_t imapsPort_ = 0;
  std::uint16_t pop3Port_ = 0;
  std::uint16_t pop3sPort_ = 0;
  pid_t pid_ = -1;
  long long seedTime_ = 0;
  std::uint64_t seedCounter_ = 0;
};

}  // namespace popbridge::test
