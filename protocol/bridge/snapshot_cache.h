#pragma once

// Incremental snapshots (RFC 7162 CONDSTORE): what a mailbox looked like at a known
// HIGHESTMODSEQ, so that the next session of the same mailbox asks the server only for what
// changed since, instead of listing every message again.
//
// The data and the decisions live here, sans I/O; the process-wide store shared by the workers
// is proxy/shared_snapshot_cache.h, and ImapMaildrop drives the refresh.
//
// Why this is safe: within one UIDVALIDITY, UIDs ascend and are never reused, and a message's
// RFC822.SIZE never changes (IMAP messages are immutable). Every append and every flag change
// gets a mod-sequence above the mailbox's HIGHESTMODSEQ at that time, so
// `UID FETCH 1:* (...) (CHANGEDSINCE m)` reports every message added or reflagged after m. Only
// expunges are not reported (that would take QRESYNC's VANISHED): they are found by counting. The
// cached set plus what CHANGEDSINCE reported is a superset of the messages present, so when its
// size equals EXISTS the two are equal; when it is larger, something was expunged and the present
// UIDs are listed (O(mailbox), only then).
//
// Without mod-sequences (no CONDSTORE, or NOMODSEQ) the same superset is had from
// `UID FETCH last+1:*` (messages above the cached ones; UIDs only grow), and the \Deleted flags,
// which another client may have changed on any message, from `UID SEARCH DELETED`, whose answer
// replaces every cached bit.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {

// One message as the cache knows it. \Deleted messages are kept (flagged) because another
// client may clear the flag again, and because a full listing counts them in EXISTS.
struct CachedMessage {
  std::uint64_t size = 0;  // RFC822.SIZE
  std::uint32_t uid = 0;
  bool deleted = false;  // carries \Deleted: not served, as in a full listing
  bool operator==(const CachedMessage&) const = default;
};

// A mailbox as it was at highestModSeq: every message present then, ascending by UID.
struct MailboxSnapshot {
  std::uint32_t uidValidity = 0;
  std::uint64_t highestModSeq = 0;  // 0: taken without mod-sequences
  std::uint32_t uidNext = 0;        // 0: the server did not say
  std::vector<CachedMessage> messages;
};
using SnapshotPtr = std::shared_ptr<const MailboxSnapshot>;

// Where snapshots are kept between sessions. Implementations are shared by threads, so a
// snapshot, once published, is never changed: a session reads one and publishes a new one.
class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  virtual SnapshotPtr find(const std::string& key) = 0;
  // A snapshot with more messages than maxMessages() is not kept (and drops the key's entry).
  virtual void publish(const std::string& key, SnapshotPtr snapshot) = 0;
  virtual void erase(const std::string& key) = 0;
  virtual std::size_t maxMessages() const = 0;
};

// How a session's snapshot was had, for the metrics.
enum class SnapshotCacheOutcome : std::uint8_t {
  Hit,          // served from the cache, refreshed by CHANGEDSINCE at most
  Miss,         // a full listing (no entry, no CONDSTORE, a limit, an inconsistency)
  Invalidated,  // the entry's UIDVALIDITY was no longer the folder's: dropped
};

// upstream (host:port), login, folder as sent: one cache entry per mailbox.
std::string snapshotKey(std::string_view upstream, std::string_view user, std::string_view folder);

// What SELECT (CONDSTORE) said.
struct SelectedState {
  std::uint32_t uidValidity = 0;
  std::uint32_t exists = 0;
  std::optional<std::uint64_t> highestModSeq;  // none: NOMODSEQ or not reported
  std::optional<std::uint32_t> uidNext;
};

enum class RefreshPlan : std::uint8_t {
  Full,         // no usable entry: list everything
  Invalidated,  // the entry belongs to another UIDVALIDITY: drop it, list everything
  Current,      // nothing changed: serve the entry as it is
  Changes,      // ask for the changes since the entry's HIGHESTMODSEQ
  // No mod-sequences now (no CONDSTORE, NOMODSEQ): ask for the UIDs above the entry's last, for
  // the \Deleted set (UID SEARCH DELETED), and for the UIDs present if the counts say so.
  NewSince,
};
RefreshPlan planRefresh(const MailboxSnapshot* cached, const SelectedState& now);

// A message a CHANGEDSINCE FETCH reported; what it did not carry is unset.
struct ReportedMessage {
  std::uint32_t uid = 0;
  std::optional<std::uint64_t> size;
  std::optional<bool> deleted;
};

// base plus the reported changes (any order, repeats: the last one wins). A message new to base
// needs its size and flags, else there is no answer (list everything instead).
std::optional<std::vector<CachedMessage>> applyChanges(std::span<const CachedMessage> base,
                                                       std::vector<ReportedMessage> reported);

// Sets each message's \Deleted bit from deleted, the UIDs UID SEARCH DELETED returned (any
// order, repeats allowed). False when deleted names a UID that messages lacks.
bool applyDeleted(std::vector<CachedMessage>& messages, std::vector<std::uint32_t> deleted);

// Keeps the messages whose UID is in present (any order, repeats allowed). False when present
// names a UID that messages lacks: the cache does not describe the mailbox (list everything).
bool keepPresent(std::vector<CachedMessage>& messages, std::vector<std::uint32_t> present);

// Sorts by UID; of repeated UIDs the last one wins.
void sortByUid(std::vector<CachedMessage>& messages);

// After this session's own QUIT: the marked UIDs are gone (removed) or carry \Deleted.
SnapshotPtr afterUpdate(const MailboxSnapshot& base, std::span<const std::uint32_t> marked,
                        bool removed);

}  // namespace popbridge::protocol
