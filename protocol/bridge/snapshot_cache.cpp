#include "protocol/bridge/snapshot_cache.h"

#include <algorithm>

namespace popbridge::protocol {

std::string snapshotKey(std::string_view upstream, std::string_view user, std::string_view folder) {
  // NUL cannot occur in any of them (no IMAP string carries it), so the key is unambiguous.
  std::string key;
  key.reserve(upstream.size() + user.size() + folder.size() + 2);
  key.append(upstream).push_back('\0');
  key.append(user).push_back('\0');
  key.append(folder);
  return key;
}

RefreshPlan planRefresh(const MailboxSnapshot* cached, const SelectedState& now) {
  if (cached == nullptr) return RefreshPlan::Full;
  if (cached->uidValidity != now.uidValidity) return RefreshPlan::Invalidated;
  if (!now.highestModSeq) return RefreshPlan::NewSince;
  // An entry taken without mod-sequences has no point to ask CHANGEDSINCE from.
  if (cached->highestModSeq == 0) return RefreshPlan::Full;
  // A HIGHESTMODSEQ that went down means the server lost its mod-sequences (RFC 7162 3.1.2.1
  // forbids that within a UIDVALIDITY): trust nothing from before.
  if (*now.highestModSeq < cached->highestModSeq) return RefreshPlan::Full;
  bool sameNext = !now.uidNext || cached->uidNext == 0 || *now.uidNext == cached->uidNext;
  if (*now.highestModSeq == cached->highestModSeq && now.exists == cached->messages.size() &&
      sameNext) {
    return RefreshPlan::Current;
  }
  return RefreshPlan::Changes;
}

void sortByUid(std::vector<CachedMessage>& messages) {
  auto byUid = [](const CachedMessage& a, const CachedMessage& b) { return a.uid < b.uid; };
  if (std::is_sorted(messages.begin(), messages.end(), byUid) &&
      std::adjacent_find(messages.begin(), messages.end(), [](const auto& a, const auto& b) {
        return a.uid == b.uid;
      }) == messages.end()) {
    return;
  }
  std::stable_sort(messages.begin(), messages.end(), byUid);
  // Of repeats keep the last: a later FETCH (an unsolicited flag update) is the newer news.
  std::vector<CachedMessage> unique;
  unique.reserve(messages.size());
  for (const CachedMessage& m : messages) {
    if (!unique.empty() && unique.back().uid == m.uid) {
      unique.back() = m;
    } else {
      unique.push_back(m);
    }
  }
  messages = std::move(unique);
}

std::optional<std::vector<CachedMessage>> applyChanges(std::span<const CachedMessage> base,
                                                       std::vector<ReportedMessage> reported) {
  std::stable_sort(
      reported.begin(), reported.end(),
      [](const ReportedMessage& a, const ReportedMessage& b) { return a.uid < b.uid; });
  std::vector<CachedMessage> out;
  out.reserve(base.size() + reported.size());
  auto b = base.begin();
  for (auto r = reported.begin(); r != reported.end();) {
    // Fold repeats of one UID into one report; later values win.
    ReportedMessage merged = *r;
    for (++r; r != reported.end() && r->uid == merged.uid; ++r) {
      if (r->size) merged.size = r->size;
      if (r->deleted) merged.deleted = r->deleted;
    }
    while (b != base.end() && b->uid < merged.uid) out.push_back(*b++);
    if (b != base.end() && b->uid == merged.uid) {
      CachedMessage m = *b++;
      // The size of a message never changes; the cached one is what the listing said.
      if (merged.deleted) m.deleted = *merged.deleted;
      out.push_back(m);
      continue;
    }
    if (!merged.size || !merged.deleted) return std::nullopt;
    out.push_back({*merged.size, merged.uid, *merged.deleted});
  }
  out.insert(out.end(), b, base.end());
  return out;
}

bool applyDeleted(std::vector<CachedMessage>& messages, std::vector<std::uint32_t> deleted) {
  std::sort(deleted.begin(), deleted.end());
  deleted.erase(std::unique(deleted.begin(), deleted.end()), deleted.end());
  auto d = deleted.begin();
  for (CachedMessage& m : messages) {
    if (d != deleted.end() && *d < m.uid) return false;
    m.deleted = d != deleted.end() && *d == m.uid;
    if (m.deleted) ++d;
  }
  return d == deleted.end();
}

bool keepPresent(std::vector<CachedMessage>& messages, std::vector<std::uint32_t> present) {
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  std::size_t kept = 0;
  auto p = present.begin();
  for (const CachedMessage& m : messages) {
    if (p != present.end() && *p < m.uid) return false;
    if (p != present.end() && *p == m.uid) {
      messages[kept++] = m;
      ++p;
    }
  }
  if (p != present.end()) return false;
  messages.resize(kept);
  return true;
}

SnapshotPtr afterUpdate(const MailboxSnapshot& base, std::span<const std::uint32_t> marked,
                        bool removed) {
  std::vector<std::uint32_t> sorted(marked.begin(), marked.end());
  std::sort(sorted.begin(), sorted.end());
  auto next = std::make_shared<MailboxSnapshot>();
  next->uidValidity = base.uidValidity;
  next->highestModSeq = base.highestModSeq;
  next->uidNext = base.uidNext;
  next->messages.reserve(base.messages.size());
  for (const CachedMessage& m : base.messages) {
    bool hit = std::binary_search(sorted.begin(), sorted.end(), m.uid);
    if (hit && removed) continue;
    next->messages.push_back(m);
    if (hit) next->messages.back().deleted = true;
  }
  return next;
}

}  // namespace popbridge::protocol
