#pragma once

#include <cstdint>
#include <string>

namespace popbridge::bench {

// What `pop3load uidlmap` measures: the stable-UIDL map of one maildrop with `count` realistic
// entries, in the embedded store's SQLite file and as the Redis hash RedisStateStore writes.
struct UidlMapSample {
  long count = 0;
  std::string sqlitePath;  // a new file (its -wal and -shm beside it)
  std::string respPath;    // the HSET commands, for redis-cli --pipe
  std::string account = "device-0001234@mail.example.com";
  std::string folder = "INBOX";
  std::string keyPrefix = "popbridge:";
};
struct UidlMapSizes {
  std::uint64_t dbBytes = 0;      // after the store was closed (WAL checkpointed)
  std::uint64_t walBytes = 0;     // what is left of -wal after the close (0 when removed)
  std::uint64_t openDbBytes = 0;  // while open, after the last write: db + wal
  std::uint64_t entryBytes = 0;   // sum of the encoded entries (the Redis hash values)
  std::uint64_t fieldBytes = 0;   // sum of the hash fields ("uidvalidity:uid")
  std::string redisKey;
};

// Writes the entries through SqliteStateStore (in transactions of 1,000, as sessions would put a
// mailbox's new messages) and the same entries as RESP HSET commands of 1,000 fields each into
// respPath, under the key RedisStateStore::mapKey gives. Empty on success, else the error.
std::string writeUidlMapSample(const UidlMapSample& sample, UidlMapSizes& sizes);

}  // namespace popbridge::bench
