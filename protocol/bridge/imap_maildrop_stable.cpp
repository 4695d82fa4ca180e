// Stable UIDLs for ImapMaildrop: the uidl_format fields %{emailid}, %{gmmsgid} and %{stable}
// (uidl/stable_id.h has the rules, stable_uidls.h the map's part). Between the snapshot and Open.

#include <algorithm>
#include <unordered_set>
#include <utility>

#include "protocol/bridge/imap_maildrop.h"
#include "protocol/bridge/stable_uidls.h"
#include "protocol/uidl/stable_id.h"

namespace popbridge::protocol {
namespace {

// A UID set longer than this goes as "first:last" instead: a command line stays well inside
// every server's limit (Dovecot's is 64 KiB), and replies for UIDs not asked about are ignored.
constexpr std::size_t kMaxUidSetLength = 4000;
// Messages a session fetches header facts for when there is nothing to match them against
// (about 300 KB of header fields).
constexpr std::size_t kMaxFirstSightFacts = 2000;

std::string uidSetFor(std::span<const std::uint32_t> sortedUids) {
  std::string set = formatUidSet(sortedUids);
  if (set.size() <= kMaxUidSetLength) return set;
  return std::to_string(sortedUids.front()) + ":" + std::to_string(sortedUids.back());
}

const UidlFormat& seedFormat() {
  static const UidlFormat seed = defaultUidlFormat();
  return seed;
}

}  // namespace

std::optional<std::size_t> ImapMaildrop::indexOfUid(std::uint32_t uid) const {
  auto it = std::lower_bound(uids_.begin(), uids_.end(), uid);
  if (it == uids_.end() || *it != uid) return std::nullopt;
  return static_cast<std::size_t>(it - uids_.begin());
}

std::function<bool()> ImapMaildrop::stableStillWaiting(StablePhase phase) {
  std::weak_ptr<bool> alive = alive_;
  const std::uint64_t request = ++stableRequest_;
  return [this, alive, request, phase] {
    return !alive.expired() && op_ == Op::Stable && stablePhase_ == phase &&
           stableRequest_ == request;
  };
}

void ImapMaildrop::startStable() {
  const UidlFormat& format = options_.mailbox.uidl;
  const ImapCapabilities& caps = client_.capabilities();
  op_ = Op::Stable;
  mapDegraded_ = false;
  uidlTexts_.clear();
  emailIds_.assign(uids_.size(), {});
  gmMsgIds_.assign(uids_.size(), std::nullopt);
  mapUidls_.assign(uids_.size(), {});
  mapMailbox_ = uidlMapMailbox(upstream_.user, options_.mailbox.folder);
  const bool wantEmailId = caps.objectId && (format.usesEmailId() || format.usesStable());
  const bool wantGmMsgId = caps.gmExt1 && (format.usesGmMsgId() || format.usesStable());
  if (format.usesEmailId() && !caps.objectId) {
    sink_.log(LogSeverity::Warn,
              "uidl_format uses %{emailid}, but the server does not offer "
              "OBJECTID (RFC 8474); serving %08Xu%08Xv UIDLs");
  }
  if (format.usesGmMsgId() && !caps.gmExt1) {
    sink_.log(LogSeverity::Warn,
              "uidl_format uses %{gmmsgid}, but the server is not Gmail "
              "(X-GM-EXT-1); serving %08Xu%08Xv UIDLs");
  }
  if (uids_.empty() || (!wantEmailId && !wantGmMsgId)) return startMapGet();
  stablePhase_ = StablePhase::ServerIds;
  std::string items = "(UID";
  if (wantEmailId) items += " EMAILID";
  if (wantGmMsgId) items += " X-GM-MSGID";
  items += ")";
  client_.send(client_.builder().uidFetch(uidSetFor(uids_), items));
}

void ImapMaildrop::stableServerIds(const ImapEvent& event) {
  if (!event.fetch.uid) return;
  std::optional<std::size_t> index = indexOfUid(*event.fetch.uid);
  if (!index) return;  // a \Deleted message or one beyond the snapshot
  if (event.fetch.emailId) emailIds_[*index] = *event.fetch.emailId;
  if (event.fetch.gmMsgId) gmMsgIds_[*index] = event.fetch.gmMsgId;
}

void ImapMaildrop::startMapGet() {
  missing_.clear();
  if (!options_.mailbox.uidl.usesStable()) return finishStable();
  std::vector<UidKey> keys;
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    uidl::MessageIds ids;
    if (!emailIds_[i].empty()) ids.emailId = emailIds_[i];
    ids.gmMsgId = gmMsgIds_[i];
    if (uidl::stableSource(ids) != uidl::StableSource::Map) continue;
    missing_.push_back(i);
    keys.push_back({uidValidity_, uids_[i]});
  }
  if (keys.empty()) return finishStable();
  if (options_.uidlMap == nullptr) {
    // Nothing to keep a map in ([state] unset): the seed UIDLs, stable while UIDVALIDITY is.
    missing_.clear();
    return finishStable();
  }
  stablePhase_ = StablePhase::MapGet;
  auto wanted = stableStillWaiting(StablePhase::MapGet);
  options_.uidlMap->getUidls(
      mapMailbox_, std::move(keys),
      [this, wanted](UidlMapStore::Status status, std::vector<UidlRecord> entries) {
        if (wanted()) mapGot(status, std::move(entries));
      });
}

void ImapMaildrop::mapGot(UidlMapStore::Status status, std::vector<UidlRecord> entries) {
  if (status != UidlMapStore::Status::Ok) {
    return stableDegraded("the UIDL map could not be read");
  }
  for (UidlRecord& entry : entries) {
    if (entry.key.uidValidity != uidValidity_ || !uidl::isValidUidl(entry.uidl)) continue;
    if (std::optional<std::size_t> index = indexOfUid(entry.key.uid)) {
      mapUidls_[*index] = std::move(entry.uidl);
    }
  }
  std::erase_if(missing_, [&](std::size_t i) { return !mapUidls_[i].empty(); });
  if (missing_.empty()) return finishStable();
  stablePhase_ = StablePhase::MapLoad;
  auto wanted = stableStillWaiting(StablePhase::MapLoad);
  options_.uidlMap->loadUidls(
      mapMailbox_, [this, wanted](UidlMapStore::Status status, std::vector<UidlRecord> entries) {
        if (wanted()) mapLoaded(status, std::move(entries));
      });
}

void ImapMaildrop::mapLoaded(UidlMapStore::Status status, std::vector<UidlRecord> entries) {
  if (status != UidlMapStore::Status::Ok) {
    return stableDegraded("the UIDL map could not be read");
  }
  stored_ = std::move(entries);
  std::erase_if(stored_, [](const UidlRecord& r) { return !uidl::isValidUidl(r.uidl); });
  candidates_ = std::any_of(stored_.begin(), stored_.end(),
                            [&](const UidlRecord& r) { return r.key.uidValidity != uidValidity_; });
  if (!candidates_ && missing_.size() > kMaxFirstSightFacts) {
    // Nothing to match against: each message's UIDL is the seed whatever the others get, so a
    // large mailbox seen for the first time is mapped over several sessions instead of one
    // that might outlast the client's patience. The rest are served the same seed meanwhile.
    sink_.log(LogSeverity::Info, "UIDL map: " + std::to_string(missing_.size()) +
                                     " messages are new to it; mapping " +
                                     std::to_string(kMaxFirstSightFacts) + " this session");
    missing_.resize(kMaxFirstSightFacts);
  }
  // The new entries need their facts whether or not anything is matched now: they are what a
  // later UIDVALIDITY change is matched against.
  stablePhase_ = StablePhase::Facts;
  facts_.assign(missing_.size(), {});
  factsParser_.reset();
  factsBodySeen_ = false;
  std::vector<std::uint32_t> uids;
  uids.reserve(missing_.size());
  for (std::size_t i : missing_) uids.push_back(uids_[i]);
  client_.send(client_.builder().uidFetch(
      uidSetFor(uids), "(UID RFC822.SIZE " + std::string(uidl::kMatchFieldsFetch) + ")"));
}

void ImapMaildrop::stableFactsBody(const ImapEvent& event) {
  switch (event.kind) {
    case ImapEvent::Kind::BodyBegin:
      factsParser_.emplace();
      factsBodySeen_ = event.section.starts_with("HEADER.FIELDS");
      return;
    case ImapEvent::Kind::BodyChunk: {
      if (!factsBodySeen_ || !factsParser_) return;
      std::string_view data = event.data;
      while (!data.empty()) {
        std::size_t consumed = 0;
        if (factsParser_->feed(data, consumed) != uidl::HeaderFactsParser::Status::NeedMore) {
          return;  // Done (the rest is past the header) or Error (the facts stay unusable)
        }
        data.remove_prefix(consumed);
        if (consumed == 0) return;
      }
      return;
    }
    case ImapEvent::Kind::BodyEnd:
      if (factsBodySeen_ && factsParser_) factsParser_->finish();
      return;
    default:
      return;
  }
}

void ImapMaildrop::stableFactsFetched(const ImapEvent& event) {
  const bool haveBody = factsBodySeen_ && factsParser_;
  factsBodySeen_ = false;
  if (!haveBody || !event.fetch.uid) return;
  std::optional<std::size_t> index = indexOfUid(*event.fetch.uid);
  if (!index) return;
  auto slot = std::lower_bound(missing_.begin(), missing_.end(), *index);
  if (slot == missing_.end() || *slot != *index) return;
  uidl::MatchFacts& facts = facts_[static_cast<std::size_t>(slot - missing_.begin())];
  // Error leaves hasHeader false: such a message never matches and gets a new UIDL.
  if (factsParser_->finish() == uidl::HeaderFactsParser::Status::Done)
    facts = factsParser_->facts();
  facts.size = event.fetch.rfc822Size.value_or(sizes_[*index]);
  factsParser_.reset();
}

void ImapMaildrop::stableCompleted(const ImapEvent& tagged) {
  if (stablePhase_ == StablePhase::ServerIds) {
    if (tagged.status != ImapStatus::Ok) {
      // Serving other UIDLs for one session would make keep-mode devices download everything
      // again: the client tries later instead.
      sink_.log(LogSeverity::Error,
                "fetching message ids (EMAILID, X-GM-MSGID) failed: " + codeSuffix(tagged));
      client_.logout();
      return openFailed({RespCode::SysTemp, "Cannot read message ids, try again later.", {}});
    }
    return startMapGet();
  }
  if (stablePhase_ != StablePhase::Facts) return upstreamBroken("unexpected tagged reply");
  if (tagged.status != ImapStatus::Ok) {
    if (candidates_) {
      // A message without facts cannot be matched; given a new UIDL now it would keep it.
      return stableDegraded("fetching the header facts of new messages failed: " +
                            codeSuffix(tagged));
    }
    // First sight: what arrived is mapped; the rest get the seed now and are tried again later.
    sink_.log(LogSeverity::Warn, "fetching the header facts of new messages failed: " +
                                     codeSuffix(tagged) + "; mapping those that came");
    std::vector<std::size_t> kept;
    std::vector<uidl::MatchFacts> keptFacts;
    for (std::size_t j = 0; j < missing_.size(); ++j) {
      if (!facts_[j].hasHeader) continue;
      kept.push_back(missing_[j]);
      keptFacts.push_back(std::move(facts_[j]));
    }
    missing_ = std::move(kept);
    facts_ = std::move(keptFacts);
    if (missing_.empty()) {
      std::vector<UidlRecord>().swap(stored_);
      return finishStable();
    }
  }
  assignFromMap();
}

void ImapMaildrop::assignFromMap() {
  if (uidValidityChanged_) {
    // The facts may belong to the new numbering: none of it goes into the map.
    return stableDegraded("UIDVALIDITY changed while the session opened");
  }
  std::vector<std::uint32_t> missingUids;
  missingUids.reserve(missing_.size());
  for (std::size_t i : missing_) missingUids.push_back(uids_[i]);
  MapAssignment assignment = assignMapUidls(uidValidity_, missingUids, facts_, stored_, allUids_,
                                            listedWhole_, seedFormat());
  for (std::size_t j = 0; j < missing_.size(); ++j) {
    mapUidls_[missing_[j]] = std::move(assignment.uidls[j]);
  }
  if (assignment.earlier + assignment.imports > 0) {
    const uidl::MatchSummary& e = assignment.exact;
    const uidl::MatchSummary& m = assignment.imported;
    sink_.log(LogSeverity::Info,
              "stable UIDLs for UIDVALIDITY " + std::to_string(uidValidity_) + ": " +
                  std::to_string(e.matched + m.matched) + " of " + std::to_string(missing_.size()) +
                  " new messages keep an earlier UIDL (" + std::to_string(e.matched) +
                  " of an earlier UIDVALIDITY, " + std::to_string(m.matched) + " imported); " +
                  std::to_string(e.ambiguous + m.ambiguous) +
                  " ambiguous and the rest unmatched get new UIDLs");
  }
  std::vector<UidlRecord>().swap(stored_);
  std::vector<uidl::MatchFacts>().swap(facts_);
  std::vector<UidKey> erases = std::move(assignment.erases);
  stablePhase_ = StablePhase::MapPut;
  auto wanted = stableStillWaiting(StablePhase::MapPut);
  UidlMapStore* store = options_.uidlMap;
  UidlMapStore::Mailbox mailbox = mapMailbox_;
  store->putUidls(mapMailbox_, std::move(assignment.puts),
                  [this, wanted, store, mailbox,
                   erases = std::move(erases)](UidlMapStore::Status status) mutable {
                    // Only once the new entries are kept may the old ones go: a failed put
                    // leaves everything for the next session to match again.
                    if (status == UidlMapStore::Status::Ok && !erases.empty()) {
                      store->eraseUidls(mailbox, std::move(erases), [](UidlMapStore::Status) {});
                    }
                    if (wanted()) mapPut(status);
                  });
}

void ImapMaildrop::mapPut(UidlMapStore::Status status) {
  if (status != UidlMapStore::Status::Ok) {
    // The UIDLs are computed and served, but the next session may compute others.
    mapDegraded_ = true;
    sink_.noteUidlMapUnavailable();
    sink_.log(LogSeverity::Warn,
              "the UIDL map could not be written; this session's QUIT deletes nothing");
  }
  finishStable();
}

void ImapMaildrop::stableDegraded(std::string_view reason) {
  mapDegraded_ = true;
  sink_.noteUidlMapUnavailable();
  sink_.log(LogSeverity::Warn, std::string(reason) +
                                   "; serving %08Xu%08Xv UIDLs for the messages it would give, "
                                   "and this session's QUIT deletes nothing");
  stored_.clear();
  facts_.clear();
  factsParser_.reset();
  finishStable();
}

bool ImapMaildrop::uidlFromFields(std::string& out, std::size_t index,
                                  std::string_view stable) const {
  UidlFormat::Fields fields;
  fields.uid = uids_[index];
  fields.uidValidity = uidValidity_;
  if (!emailIds_[index].empty()) fields.emailId = emailIds_[index];
  fields.gmMsgId = gmMsgIds_[index];
  if (!stable.empty()) fields.stable = stable;
  return options_.mailbox.uidl.appendTo(out, fields);
}

void ImapMaildrop::finishStable() {
  ++stableRequest_;
  uidlTexts_.resize(uids_.size());
  for (std::size_t i = 0; i < uids_.size(); ++i) {
    uidl::MessageIds ids;
    if (!emailIds_[i].empty()) ids.emailId = emailIds_[i];
    ids.gmMsgId = gmMsgIds_[i];
    std::optional<std::string> stable = uidl::stableIdFromServer(ids);
    if (!stable) {
      stable = mapUidls_[i].empty() ? seedFormat().format(uids_[i], uidValidity_)
                                    : std::move(mapUidls_[i]);
    }
    if (!uidlFromFields(uidlTexts_[i], i, *stable)) {
      // A field the server did not give (%{emailid} without OBJECTID): the seed format, as
      // UidlFormat::appendTo(uid, uidValidity) documents.
      seedFormat().appendTo(uidlTexts_[i], uids_[i], uidValidity_);
    }
  }
  // RFC 1939: one UIDL per message. Server ids can repeat (RFC 8474 keeps EMAILID on COPY, into
  // the same folder too): the first message by UID keeps the id, a later one gets its map or
  // seed UIDL, which is just as stable.
  std::unordered_set<std::string_view> seen;
  seen.reserve(uidlTexts_.size());
  for (std::size_t i = 0; i < uidlTexts_.size(); ++i) {
    if (seen.insert(uidlTexts_[i]).second) continue;
    std::string fallback = seedFormat().format(uids_[i], uidValidity_);
    if (seen.contains(fallback)) {
      fallback = uidl::newMapUidl(seedFormat(), uids_[i], uidValidity_,
                                  [&](std::string_view u) { return seen.contains(u); });
    }
    sink_.log(LogSeverity::Warn, "UID " + std::to_string(uids_[i]) + " has the UIDL \"" +
                                     uidlTexts_[i] + "\" of an earlier message; serving \"" +
                                     fallback + "\"");
    uidlTexts_[i] = std::move(fallback);
    seen.insert(uidlTexts_[i]);
  }
  std::vector<std::string>().swap(emailIds_);
  std::vector<std::optional<std::uint64_t>>().swap(gmMsgIds_);
  std::vector<std::string>().swap(mapUidls_);
  std::vector<std::uint32_t>().swap(allUids_);
  std::vector<std::size_t>().swap(missing_);
  finishOpen();
}

// The UIDs an expunging QUIT removed need no entry any more.
void ImapMaildrop::forgetExpunged() {
  if (options_.uidlMap == nullptr || !options_.mailbox.uidl.usesStable() || mapDegraded_ ||
      updateUids_.empty()) {
    return;
  }
  const ImapCapabilities& caps = client_.capabilities();
  const bool expunged = effectivePolicy_ == DeletePolicy::Expunge ||
                        (effectivePolicy_ == DeletePolicy::Move && (caps.move || caps.uidPlus));
  if (!expunged) return;
  std::vector<UidKey> keys;
  keys.reserve(updateUids_.size());
  for (std::uint32_t uid : updateUids_) keys.push_back({uidValidity_, uid});
  options_.uidlMap->eraseUidls(mapMailbox_, std::move(keys), [](UidlMapStore::Status) {});
}

}  // namespace popbridge::protocol
