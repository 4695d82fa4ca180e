#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bridge/uidl_map_store.h"
#include "protocol/state_record.h"

struct sqlite3;

namespace popbridge::proxy {

class RedisClient;

// What outlives a session: the persistent UIDL map of each maildrop, so that a UIDL stays the
// same across a UIDVALIDITY change (the UIDL matcher maps new UIDs to the UIDLs of the old
// ones by the match data kept here).
//
// Keyed by (account, mailbox) -> (UIDVALIDITY, UID) -> entry. Two backends: the embedded one
// (SqliteStateStore, one file, no server) and Redis (RedisStateStore, shared by the replicas).
// The calling convention is protocol::UidlMapStore's; callbacks run on the caller's loop.
class StateStore : public protocol::UidlMapStore {
 public:
  using UidKey = protocol::UidKey;
  // One message's UIDL and its match data (see protocol/state_record.h).
  using UidlEntry = protocol::UidlRecord;

  // An entry's stored form (Redis' hash values): protocol/state_record.h.
  static std::string encodeEntry(const UidlEntry& entry);
  static std::optional<UidlEntry> decodeEntry(UidKey key, std::string_view text);
  // "uidvalidity:uid", the Redis hash field.
  static std::string encodeKey(UidKey key);
  static std::optional<UidKey> decodeKey(std::string_view text);
};

// The embedded backend: one SQLite file, shared by every worker of the process under a mutex.
// Calls complete synchronously; they are short (an indexed lookup or one transaction), and the
// file is in WAL mode with synchronous=NORMAL, so a put does not wait for an fsync.
//
// SQLite rather than LMDB: one file that needs no map size chosen in advance, transactions and
// an index on (account, folder) for free, a schema that can grow a column, and a file an
// operator can read with the sqlite3 shell.
class SqliteStateStore final : public StateStore {
 public:
  // Opens or creates `path` (and its schema). nullptr with `error` set on failure.
  static std::unique_ptr<SqliteStateStore> open(const std::string& path, std::string& error);
  ~SqliteStateStore() override;

  void getUidls(const Mailbox& mailbox, std::vector<UidKey> keys, EntriesCallback done) override;
  void loadUidls(const Mailbox& mailbox, EntriesCallback done) override;
  void putUidls(const Mailbox& mailbox, std::vector<UidlEntry> entries, DoneCallback done) override;
  void eraseUidls(const Mailbox& mailbox, std::vector<UidKey> keys, DoneCallback done) override;

 private:
  explicit SqliteStateStore(sqlite3* db) : db_(db) {}
  bool run(const char* sql);
  bool hasColumn(const char* table, const char* column);
  bool fetch(const Mailbox& mailbox, const std::vector<UidKey>* keys, std::vector<UidlEntry>& out);
  bool write(const Mailbox& mailbox, const std::vector<UidlEntry>* put,
             const std::vector<UidKey>* erase);

  std::mutex mutex_;
  sqlite3* db_;
};

// The Redis backend: a hash per maildrop, "<prefix>uidl:<len>:<account>:<folder>", field
// encodeKey, value encodeEntry. One per loop, over that loop's RedisClient.
class RedisStateStore final : public StateStore {
 public:
  RedisStateStore(RedisClient& redis, std::string keyPrefix)
      : redis_(redis), prefix_(std::move(keyPrefix)) {}

  void getUidls(const Mailbox& mailbox, std::vector<UidKey> keys, EntriesCallback done) override;
  void loadUidls(const Mailbox& mailbox, EntriesCallback done) override;
  void putUidls(const Mailbox& mailbox, std::vector<UidlEntry> entries, DoneCallback done) override;
  void eraseUidls(const Mailbox& mailbox, std::vector<UidKey> keys, DoneCallback done) override;

  std::string mapKey(const Mailbox& mailbox) const;

 private:
  RedisClient& redis_;
  std::string prefix_;
};

}  // namespace popbridge::proxy
