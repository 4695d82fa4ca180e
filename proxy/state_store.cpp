#include "proxy/state_store.h"

#include <sqlite3.h>

#include <utility>

#include "protocol/state_record.h"
#include "proxy/redis_client.h"

namespace popbridge::proxy {
std::string StateStore::encodeEntry(const UidlEntry& entry) {
  return protocol::encodeUidlRecord(entry);
}

std::optional<StateStore::UidlEntry> StateStore::decodeEntry(UidKey key, std::string_view text) {
  return protocol::decodeUidlRecord(key, text);
}

std::string StateStore::encodeKey(UidKey key) {
  return protocol::encodeUidKey(key);
}

std::optional<StateStore::UidKey> StateStore::decodeKey(std::string_view text) {
  return protocol::decodeUidKey(text);
}

// --- SQLite ------------------------------------------------------------------------------------

namespace {

struct StatementDeleter {
  void operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

Statement prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) return nullptr;
  return Statement(raw);
}

void bindText(sqlite3_stmt* statement, int index, std::string_view text) {
  sqlite3_bind_text(statement, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

std::string columnText(sqlite3_stmt* statement, int index) {
  const auto* text = sqlite3_column_text(statement, index);
  return text ? std::string(reinterpret_cast<const char*>(text),
                            static_cast<std::size_t>(sqlite3_column_bytes(statement, index)))
              : std::string();
}

}  // namespace

std::unique_ptr<SqliteStateStore> SqliteStateStore::open(const std::string& path,
                                                         std::string& error) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
      nullptr);
  if (rc != SQLITE_OK) {
    error = "state store " + path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return nullptr;
  }
  std::unique_ptr<SqliteStateStore> store(new SqliteStateStore(db));
  sqlite3_busy_timeout(db, 2000);
  if (!store->run("PRAGMA journal_mode=WAL") || !store->run("PRAGMA synchronous=NORMAL") ||
      !store->run("CREATE TABLE IF NOT EXISTS uidl ("
                  " account TEXT NOT NULL, folder TEXT NOT NULL,"
                  " uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,"
                  " uidl TEXT NOT NULL, message_id TEXT NOT NULL, date TEXT NOT NULL,"
                  " size INTEGER NOT NULL, header_hash TEXT NOT NULL,"
                  " header_lines INTEGER NOT NULL DEFAULT 0,"
                  " PRIMARY KEY (account, folder, uidvalidity, uid)) WITHOUT ROWID")) {
    error = "state store " + path + ": " + sqlite3_errmsg(db);
    return nullptr;
  }
  // A file from before header_lines existed gets the column (0: no header line count).
  if (!store->hasColumn("uidl", "header_lines") &&
      !store->run("ALTER TABLE uidl ADD COLUMN header_lines INTEGER NOT NULL DEFAULT 0")) {
    error = "state store " + path + ": " + sqlite3_errmsg(db);
    return nullptr;
  }
  return store;
}

SqliteStateStore::~SqliteStateStore() {
  sqlite3_close_v2(db_);
}

bool SqliteStateStore::run(const char* sql) {
  return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

bool SqliteStateStore::hasColumn(const char* table, const char* column) {
  Statement statement = prepare(db_, ("PRAGMA table_info(" + std::string(table) + ")").c_str());
  if (!statement) return false;
  while (sqlite3_step(statement.get()) == SQLITE_ROW) {
    if (columnText(statement.get(), 1) == column) return true;
  }
  return false;
}

bool SqliteStateStore::fetch(const Mailbox& mailbox, const std::vector<UidKey>* keys,
                             std::vector<UidlEntry>& out) {
  // One prepared statement for all the keys: a session asks for every message of its mailbox.
  Statement statement = prepare(
      db_, keys ? "SELECT uidvalidity, uid, uidl, message_id, date, size, header_hash, header_lines"
                  " FROM uidl"
                  " WHERE account = ?1 AND folder = ?2 AND uidvalidity = ?3 AND uid = ?4"
                : "SELECT uidvalidity, uid, uidl, message_id, date, size, header_hash, header_lines"
                  " FROM uidl"
                  " WHERE account = ?1 AND folder = ?2 ORDER BY uidvalidity, uid");
  if (!statement) return false;
  auto run = [&]() {
    int rc;
    while ((rc = sqlite3_step(statement.get())) == SQLITE_ROW) {
      UidlEntry entry;
      entry.key.uidValidity = static_cast<std::uint32_t>(sqlite3_column_int64(statement.get(), 0));
      entry.key.uid = static_cast<std::uint32_t>(sqlite3_column_int64(statement.get(), 1));
      entry.uidl = columnText(statement.get(), 2);
      entry.messageId = columnText(statement.get(), 3);
      entry.date = columnText(statement.get(), 4);
      entry.size = static_cast<std::uint64_t>(sqlite3_column_int64(statement.get(), 5));
      entry.headerHash = columnText(statement.get(), 6);
      entry.headerLines = static_cast<std::uint32_t>(sqlite3_column_int64(statement.get(), 7));
      out.push_back(std::move(entry));
    }
    return rc == SQLITE_DONE;
  };
  bindText(statement.get(), 1, mailbox.account);
  bindText(statement.get(), 2, mailbox.folder);
  if (!keys) return run();
  for (const UidKey& key : *keys) {
    sqlite3_reset(statement.get());
    sqlite3_bind_int64(statement.get(), 3, key.uidValidity);
    sqlite3_bind_int64(statement.get(), 4, key.uid);
    if (!run()) return false;
  }
  return true;
}

bool SqliteStateStore::write(const Mailbox& mailbox, const std::vector<UidlEntry>* put,
                             const std::vector<UidKey>* erase) {
  if (!run("BEGIN IMMEDIATE")) return false;
  Statement statement =
      prepare(db_, put ? "INSERT OR REPLACE INTO uidl (account, folder, uidvalidity, uid, uidl,"
                         " message_id, date, size, header_hash, header_lines)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                       : "DELETE FROM uidl WHERE account = ?1 AND folder = ?2 AND uidvalidity = ?3"
                         " AND uid = ?4");
  bool ok = statement != nullptr;
  auto step = [&](UidKey key, const UidlEntry* entry) {
    sqlite3_reset(statement.get());
    bindText(statement.get(), 1, mailbox.account);
    bindText(statement.get(), 2, mailbox.folder);
    sqlite3_bind_int64(statement.get(), 3, key.uidValidity);
    sqlite3_bind_int64(statement.get(), 4, key.uid);
    if (entry) {
      bindText(statement.get(), 5, entry->uidl);
      bindText(statement.get(), 6, entry->messageId);
      bindText(statement.get(), 7, entry->date);
      sqlite3_bind_int64(statement.get(), 8, static_cast<sqlite3_int64>(entry->size));
      bindText(statement.get(), 9, entry->headerHash);
      sqlite3_bind_int64(statement.get(), 10, entry->headerLines);
    }
    return sqlite3_step(statement.get()) == SQLITE_DONE;
  };
  if (ok && put) {
    for (const UidlEntry& entry : *put) {
      if (!(ok = step(entry.key, &entry))) break;
    }
  }
  if (ok && erase) {
    for (UidKey key : *erase) {
      if (!(ok = step(key, nullptr))) break;
    }
  }
  statement.reset();
  if (ok && run("COMMIT")) return true;
  run("ROLLBACK");
  return false;
}

void SqliteStateStore::getUidls(const Mailbox& mailbox, std::vector<UidKey> keys,
                                EntriesCallback done) {
  std::vector<UidlEntry> found;
  bool ok = true;
  {
    std::lock_guard lock(mutex_);
    ok = fetch(mailbox, &keys, found);
  }
  if (!ok) found.clear();
  done(ok ? Status::Ok : Status::Unavailable, std::move(found));
}

void SqliteStateStore::loadUidls(const Mailbox& mailbox, EntriesCallback done) {
  std::vector<UidlEntry> found;
  bool ok;
  {
    std::lock_guard lock(mutex_);
    ok = fetch(mailbox, nullptr, found);
  }
  if (!ok) found.clear();
  done(ok ? Status::Ok : Status::Unavailable, std::move(found));
}

void SqliteStateStore::putUidls(const Mailbox& mailbox, std::vector<UidlEntry> entries,
                                DoneCallback done) {
  bool ok;
  {
    std::lock_guard lock(mutex_);
    ok = write(mailbox, &entries, nullptr);
  }
  done(ok ? Status::Ok : Status::Unavailable);
}

void SqliteStateStore::eraseUidls(const Mailbox& mailbox, std::vector<UidKey> keys,
                                  DoneCallback done) {
  bool ok;
  {
    std::lock_guard lock(mutex_);
    ok = write(mailbox, nullptr, &keys);
  }
  done(ok ? Status::Ok : Status::Unavailable);
}

// --- Redis -------------------------------------------------------------------------------------

std::string RedisStateStore::mapKey(const Mailbox& mailbox) const {
  return prefix_ + "uidl:" + std::to_string(mailbox.account.size()) + ":" + mailbox.account + ":" +
         mailbox.folder;
}

void RedisStateStore::getUidls(const Mailbox& mailbox, std::vector<UidKey> keys,
                               EntriesCallback done) {
  if (keys.empty()) {
    // Nothing to ask, but the answer still comes from the loop, as Redis' would.
    redis_.command({"PING"}, [done = std::move(done)](RedisReply) { done(Status::Ok, {}); });
    return;
  }
  std::vector<std::string> args{"HMGET", mapKey(mailbox)};
  args.reserve(keys.size() + 2);
  for (UidKey key : keys) args.push_back(encodeKey(key));
  redis_.command(std::move(args),
                 [keys = std::move(keys), done = std::move(done)](RedisReply reply) {
                   if (!reply.answered || reply.value.type != RedisValue::Type::Array ||
                       reply.value.elements.size() != keys.size()) {
                     return done(Status::Unavailable, {});
                   }
                   std::vector<UidlEntry> found;
                   for (std::size_t i = 0; i < keys.size(); ++i) {
                     const RedisValue& value = reply.value.elements[i];
                     if (value.type != RedisValue::Type::String) continue;
                     if (auto entry = decodeEntry(keys[i], value.text))
                       found.push_back(std::move(*entry));
                   }
                   done(Status::Ok, std::move(found));
                 });
}

void RedisStateStore::loadUidls(const Mailbox& mailbox, EntriesCallback done) {
  redis_.command({"HGETALL", mapKey(mailbox)}, [done = std::move(done)](RedisReply reply) {
    if (!reply.answered || reply.value.type != RedisValue::Type::Array) {
      return done(Status::Unavailable, {});
    }
    std::vector<UidlEntry> found;
    const auto& elements = reply.value.elements;
    for (std::size_t i = 0; i + 1 < elements.size(); i += 2) {
      auto key = decodeKey(elements[i].text);
      if (!key) continue;
      if (auto entry = decodeEntry(*key, elements[i + 1].text)) found.push_back(std::move(*entry));
    }
    done(Status::Ok, std::move(found));
  });
}

void RedisStateStore::putUidls(const Mailbox& mailbox, std::vector<UidlEntry> entries,
                               DoneCallback done) {
  if (entries.empty()) {
    redis_.command({"PING"}, [done = std::move(done)](RedisReply) { done(Status::Ok); });
    return;
  }
  // HSET with every field is one command: all or nothing.
  std::vector<std::string> args{"HSET", mapKey(mailbox)};
  args.reserve(2 + 2 * entries.size());
  for (const UidlEntry& entry : entries) {
    args.push_back(encodeKey(entry.key));
    args.push_back(encodeEntry(entry));
  }
  redis_.command(std::move(args), [done = std::move(done)](RedisReply reply) {
    done(reply.answered && !reply.value.isError() ? Status::Ok : Status::Unavailable);
  });
}

void RedisStateStore::eraseUidls(const Mailbox& mailbox, std::vector<UidKey> keys,
                                 DoneCallback done) {
  if (keys.empty()) {
    redis_.command({"PING"}, [done = std::move(done)](RedisReply) { done(Status::Ok); });
    return;
  }
  std::vector<std::string> args{"HDEL", mapKey(mailbox)};
  for (UidKey key : keys) args.push_back(encodeKey(key));
  redis_.command(std::move(args), [done = std::move(done)](RedisReply reply) {
    done(reply.answered && !reply.value.isError() ? Status::Ok : Status::Unavailable);
  });
}

}  // namespace popbridge::proxy
