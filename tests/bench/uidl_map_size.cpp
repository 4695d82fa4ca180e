#include "tests/bench/uidl_map_size.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "protocol/uidl/map_record.h"
#include "protocol/uidl/sha256.h"
#include "proxy/state_store.h"

namespace popbridge::bench {
namespace {

using protocol::UidKey;
using protocol::UidlRecord;
using protocol::uidl::MatchFacts;
using protocol::uidl::Sha256;

std::uint64_t fileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

// Deterministic pseudo-random numbers: the same sample on every run.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// What a session stores for a message of a real mailbox: a Message-ID of about 40 characters as
// mail software makes them, a parsed Date ("@" and UTC seconds), a size of a few KB to a few
// hundred, the header hash in hex, and a 16-character UIDL (Dovecot's default %08Xu%08Xv).
UidlRecord sampleRecord(std::uint32_t uidValidity, std::uint32_t uid) {
  const std::uint64_t r = mix(uid);
  char messageId[64];
  std::snprintf(messageId, sizeof messageId, "%08X.%012llx.%04u@mx%02u.example.net",
                static_cast<unsigned>(1764700000U + uid * 37U),
                static_cast<unsigned long long>(r & 0xffffffffffffULL),
                static_cast<unsigned>((r >> 48) % 10000), static_cast<unsigned>((r >> 20) % 40));
  char uidl[32];
  std::snprintf(uidl, sizeof uidl, "%08X%08X", uid, uidValidity);
  MatchFacts facts;
  facts.messageId = messageId;
  facts.dateKey = "@" + std::to_string(1700000000ULL + uid * 613ULL + (r % 600));
  facts.size = 2000 + (r >> 8) % 200000;
  facts.headerHash = Sha256::of(std::string(messageId) + "|from|to|subject");
  facts.hasHeader = true;
  return protocol::uidl::toRecord(UidKey{uidValidity, uid}, uidl, facts);
}

void appendBulk(std::string& out, const std::string& text) {
  out += '$';
  out += std::to_string(text.size());
  out += "\r\n";
  out += text;
  out += "\r\n";
}

}  // namespace

std::string writeUidlMapSample(const UidlMapSample& sample, UidlMapSizes& sizes) {
  constexpr std::uint32_t kUidValidity = 1764700000;
  constexpr long kBatch = 1000;
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((sample.sqlitePath + suffix).c_str());
  std::string error;
  auto store = proxy::SqliteStateStore::open(sample.sqlitePath, error);
  if (!store) return error;
  std::ofstream resp(sample.respPath, std::ios::binary | std::ios::trunc);
  if (!resp) return "cannot write " + sample.respPath;
  const proxy::StateStore::Mailbox mailbox{sample.account, sample.folder};
  // RedisStateStore::mapKey's form, without a Redis connection.
  sizes.redisKey = sample.keyPrefix + "uidl:" + std::to_string(sample.account.size()) + ":" +
                   sample.account + ":" + sample.folder;
  bool failed = false;
  for (long first = 1; first <= sample.count; first += kBatch) {
    std::vector<UidlRecord> batch;
    const long last = std::min(sample.count, first + kBatch - 1);
    for (long uid = first; uid <= last; ++uid) {
      batch.push_back(sampleRecord(kUidValidity, static_cast<std::uint32_t>(uid)));
    }
    std::string command = "*" + std::to_string(2 + 2 * batch.size()) + "\r\n";
    appendBulk(command, "HSET");
    appendBulk(command, sizes.redisKey);
    for (const UidlRecord& record : batch) {
      const std::string field = proxy::StateStore::encodeKey(record.key);
      const std::string value = proxy::StateStore::encodeEntry(record);
      sizes.fieldBytes += field.size();
      sizes.entryBytes += value.size();
      appendBulk(command, field);
      appendBulk(command, value);
    }
    resp << command;
    store->putUidls(mailbox, std::move(batch), [&failed](proxy::StateStore::Status status) {
      if (status != proxy::StateStore::Status::Ok) failed = true;
    });
    if (failed) return "the SQLite store refused a put";
  }
  resp.close();
  if (!resp) return "cannot write " + sample.respPath;
  sizes.openDbBytes = fileSize(sample.sqlitePath) + fileSize(sample.sqlitePath + "-wal");
  // The last connection's close checkpoints the WAL into the file and removes it.
  store.reset();
  sizes.dbBytes = fileSize(sample.sqlitePath);
  sizes.walBytes = fileSize(sample.sqlitePath + "-wal");
  return {};
}

}  // namespace popbridge::bench
