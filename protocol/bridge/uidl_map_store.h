#pragma once

// The stable-UIDL map as the maildrop sees it: a store of UidlRecords per maildrop that
// outlives sessions and processes (proxy/state_store.h has the SQLite and Redis backends).
// Sans-I/O: the maildrop calls it and gets answers through callbacks.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/state_record.h"

namespace popbridge::protocol {

class UidlMapStore {
 public:
  struct Mailbox {
    std::string account;  // the upstream login, lower-cased (uidlMapMailbox)
    std::string folder;   // "INBOX" in that spelling whatever the configured case
  };
  enum class Status : std::uint8_t { Ok, Unavailable };
  using EntriesCallback = std::function<void(Status, std::vector<UidlRecord>)>;
  using DoneCallback = std::function<void(Status)>;

  virtual ~UidlMapStore() = default;
  // Every call answers through its callback exactly once: the embedded store before it
  // returns, Redis later from the loop (never inside the call). Unavailable: the store could not
  // be reached or failed; the caller goes on without it.

  // The entries stored under `keys` (those absent are left out).
  virtual void getUidls(const Mailbox& mailbox, std::vector<UidKey> keys, EntriesCallback done) = 0;
  // Every entry of the mailbox, of any UIDVALIDITY: what a changed UIDVALIDITY is matched
  // against.
  virtual void loadUidls(const Mailbox& mailbox, EntriesCallback done) = 0;
  // Inserts or replaces, all or nothing.
  virtual void putUidls(const Mailbox& mailbox, std::vector<UidlRecord> entries,
                        DoneCallback done) = 0;
  // Drops entries (messages gone for good, an old UIDVALIDITY once remapped).
  virtual void eraseUidls(const Mailbox& mailbox, std::vector<UidKey> keys, DoneCallback done) = 0;
};

// The map's key for an upstream login and folder, the same in sessions and in
// `popbridge uidl import`: logins compare ASCII-case-insensitively, and INBOX is
// case-insensitive (RFC 3501 5.1) while other folder names are not.
UidlMapStore::Mailbox uidlMapMailbox(std::string_view account, std::string_view folder);

}  // namespace popbridge::protocol
