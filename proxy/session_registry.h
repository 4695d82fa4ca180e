#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace popbridge::proxy {

// Who has which upstream maildrop open: RFC 1939's exclusive-access lock ([mailbox] exclusive)
// and the per-account session cap (max_sessions_per_account), counted across every worker.
//
// An interface because a cluster of popbridge processes needs the counts in one place (Redis,
// later); LocalSessionRegistry keeps them in this process. A claim is asked for only once the
// login's credentials are proven, and given back when its session ends, so the counts are
// bounded by live, authenticated sessions (max_connections), never by what a client sends.
class SessionRegistry {
 public:
  // One maildrop: an upstream account and a folder of it.
  struct Maildrop {
    std::string account;  // the upstream login name
    std::string folder;
    bool exclusive = true;  // no other session may hold it meanwhile
  };
  enum class Verdict : std::uint8_t {
    Granted,
    MaildropInUse,  // another session holds the maildrop and one of the two wants it alone
    AccountFull,    // the account has max_sessions_per_account sessions already
  };
  using Holder = std::uint64_t;  // a session id: unique in the process

  virtual ~SessionRegistry() = default;
  // Granted: `holder` holds `maildrop` until release().
  virtual Verdict tryClaim(const Maildrop& maildrop, Holder holder) = 0;
  virtual void release(const Maildrop& maildrop, Holder holder) = 0;
  // Sessions holding a maildrop of `account` (the upstream pool counts its connections
  // against max_sessions_per_account with it); 0 when not known.
  virtual unsigned sessionsOf(std::string_view account) const {
    (void)account;
    return 0;
  }

  // The names the counts are kept under: ASCII letters of the account lower-cased (mail
  // servers compare logins that way, so "Alice" must not escape the lock of "alice"), and the
  // folder as configured except INBOX, which IMAP names in any case.
  static std::string accountKey(std::string_view account);
  static std::string folderKey(std::string_view folder);
};

std::string_view toString(SessionRegistry::Verdict verdict);

// The registry of one process, shared by its workers under a mutex.
class LocalSessionRegistry final : public SessionRegistry {
 public:
  explicit LocalSessionRegistry(unsigned maxPerAccount) : maxPerAccount_(maxPerAccount) {}

  Verdict tryClaim(const Maildrop& maildrop, Holder holder) override;
  void release(const Maildrop& maildrop, Holder holder) override;
  // A reload (SIGHUP): the cap for new claims; the claims held stay, even above a lower cap.
  void setMaxPerAccount(unsigned maxPerAccount);

  // Sessions holding a maildrop of `account`; accounts with any.
  unsigned sessionsOf(std::string_view account) const override;
  std::size_t accounts() const;

 private:
  struct Folder {
    std::map<Holder, bool> holders;  // -> exclusive
    unsigned exclusiveHolders = 0;
  };
  struct Account {
    unsigned sessions = 0;
    std::map<std::string, Folder> folders;
  };

  unsigned maxPerAccount_;  // 0: no limit; under mutex_
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Account> accounts_;
};

// A granted claim, given back when this is destroyed or reset, whatever ends the session.
class SessionClaim {
 public:
  SessionClaim() = default;
  SessionClaim(SessionRegistry& registry, SessionRegistry::Maildrop maildrop,
               SessionRegistry::Holder holder)
      : registry_(&registry), maildrop_(std::move(maildrop)), holder_(holder) {}
  ~SessionClaim() { reset(); }
  SessionClaim(SessionClaim&& other) noexcept { *this = std::move(other); }
  SessionClaim& operator=(SessionClaim&& other) noexcept;
  SessionClaim(const SessionClaim&) = delete;
  SessionClaim& operator=(const SessionClaim&) = delete;

  void reset() noexcept;
  explicit operator bool() const { return registry_ != nullptr; }
  const SessionRegistry::Maildrop& maildrop() const { return maildrop_; }

 private:
  SessionRegistry* registry_ = nullptr;
  SessionRegistry::Maildrop maildrop_;
  SessionRegistry::Holder holder_ = 0;
};

}  // namespace popbridge::proxy
