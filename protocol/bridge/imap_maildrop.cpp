#include "protocol/bridge/imap_maildrop.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <utility>

#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

// Never trust a count from the wire to size memory: the vectors grow with
// what actually arrives beyond this.
constexpr std::uint32_t kMaxSnapshotReserve = 64 * 1024;
// The most messages one snapshot holds (12 octets each): a larger mailbox is
// served like max_messages, newest first, so a hostile or huge EXISTS
// cannot make a session's memory unbounded.
constexpr std::uint32_t kMaxSnapshotMessages = 4 * 1024 * 1024;
// FETCH responses beyond the expected count that are tolerated (repeats
// from unsolicited flag updates) before the server is deemed broken.
constexpr std::uint32_t kSnapshotSlack = 1024;
// The longest "* SEARCH" reply a refresh without mod-sequences risks, half the IMAP parser's
// 64 KiB line limit: past that the line would end the connection, so a mailbox whose cached
// \Deleted set would come near it is listed in full instead.
constexpr std::size_t kMaxSearchReply = 32 * 1024;

bool hasFlag(const std::vector<std::string>& flags, std::string_view flag) {
  return std::any_of(flags.begin(), flags.end(),
                     [&](const std::string& f) { return equalsIgnoreCase(f, flag); });
}

// RFC 5530: AUTHORIZATIONFAILED (the identity may not open this mailbox), PRIVACYREQUIRED and
// CONTACTADMIN are not cured by another token; no code at all (Microsoft 365) may be.
bool tokenMayBeAtFault(std::string_view code) {
  return code.empty() || code == "AUTHENTICATIONFAILED" || code == "EXPIRED";
}

MaildropError unavailable() {
  return {RespCode::SysTemp, "Upstream server unavailable, try again later.", {}};
}

MaildropError inUse() {
  return {RespCode::InUse, "Mailbox is in use by another session, try again later.", {}};
}

MaildropError tooSoon() {
  return {RespCode::LoginDelay, "Logged in too recently; wait before logging in again.", {}};
}

std::string_view stepName(std::uint8_t step) {
  constexpr std::string_view kNames[] = {"STATUS", "UID STORE", "UID EXPUNGE", "UID COPY",
                                         "UID MOVE"};
  return step < std::size(kNames) ? kNames[step] : std::string_view("update");
}

}  // namespace

ImapMaildrop::ImapMaildrop(ImapMaildropOptions options, MaildropSink& sink,
                           ImapClientSink& clientSink)
    : options_(std::move(options)), sink_(sink), client_(options_.client, clientSink, *this) {}

// --- Opening -------------------------------------------------------------------

void ImapMaildrop::open(std::string_view user, std::string_view password) {
  if (op_ != Op::Idle) return;
  op_ = Op::Resolving;
  bearerRetried_ = false;
  // The sink may answer synchronously; nothing may follow this call.
  sink_.resolveCredentials(user, password);
}

void ImapMaildrop::onCredentials(std::optional<UpstreamCredentials> credentials) {
  if (op_ != Op::Resolving) return;
  if (!credentials) {
    sink_.log(LogSeverity::Info, "login rejected by the local account table");
    openFailed({RespCode::Auth, "Authentication failed.", {}});
    return;
  }
  secureWipe(upstream_.password);
  secureWipe(upstream_.accessToken);
  upstream_ = std::move(*credentials);
  if (upstream_.mailbox) options_.mailbox = *upstream_.mailbox;
  op_ = Op::Connecting;
  // A pooled connection skips connect, TLS, greeting, CAPABILITY and the login; NOOP proves it
  // alive (its reply also brings whatever the server queued meanwhile), then the usual SELECT
  // takes a fresh snapshot. The secret stays until then: a failed check falls back to a login.
  if (std::optional<ImapResumeState> pooled = sink_.adoptPooledUpstream(upstream_)) {
    op_ = Op::Reusing;
    client_.adopt(*pooled);
    client_.send(client_.builder().noop());
    return;
  }
  sink_.connectUpstream();
}

void ImapMaildrop::reuseFailed(std::string_view reason) {
  sink_.log(LogSeverity::Info, std::string("pooled upstream connection unusable (")
                                   .append(reason)
                                   .append("); connecting afresh"));
  client_.close();
  sink_.closeUpstream();
  sink_.notePooledUpstreamStale();
  op_ = Op::Connecting;
  sink_.connectUpstream();
}

bool ImapMaildrop::parkUpstream() {
  // A UIDVALIDITY change makes the folder's state doubtful; the snapshot of the next session
  // would cope, but a connection in doubt is never kept.
  if (uidValidityChanged_) return false;
  std::optional<ImapResumeState> state = client_.resumeState();
  if (!state || !sink_.parkUpstream(*state, client_.unparsedInput())) return false;
  // No LOGOUT, no more input: the rest of the read went to the pool with the connection.
  client_.close();
  op_ = Op::Closed;
  return true;
}

void ImapMaildrop::onCredentialsFailed(RespCode code, std::string_view reason) {
  if (op_ != Op::Resolving) return;
  const bool refused = code == RespCode::InUse || code == RespCode::LoginDelay;
  sink_.log(code == RespCode::Auth ? LogSeverity::Warn
            : refused              ? LogSeverity::Info
                                   : LogSeverity::Error,
            std::string(refused ? "login refused: " : "no upstream credentials: ").append(reason));
  switch (code) {
    case RespCode::Auth:
      return openFailed({RespCode::Auth, "Authentication failed.", {}});
    case RespCode::InUse:
      return openFailed(inUse());
    case RespCode::LoginDelay:
      return openFailed(tooSoon());
    case RespCode::SysPerm:
      return openFailed({RespCode::SysPerm, "Upstream configuration error.", {}});
    default:
      return openFailed(unavailable());
  }
}

void ImapMaildrop::onUpstreamConnected() {
  if (op_ != Op::Connecting) return;
  op_ = Op::LoggingIn;
  if (upstream_.bearer) {
    client_.connected(BearerLogin{upstream_.user, upstream_.accessToken, *upstream_.bearer,
                                  upstream_.bearerHost, upstream_.bearerPort});
    secureWipe(upstream_.accessToken);
    return;
  }
  client_.connected(upstream_.user, upstream_.password);
  secureWipe(upstream_.password);
}

void ImapMaildrop::onUpstreamFailed(std::string_view reason) {
  if (op_ != Op::Connecting) return;
  sink_.log(LogSeverity::Warn, std::string("upstream unavailable: ").append(reason));
  openFailed(unavailable());
}

void ImapMaildrop::onLoginFailed(ImapLoginFailure failure) {
  switch (failure) {
    case ImapLoginFailure::Rejected:
      if (upstream_.bearer && !tokenMayBeAtFault(client_.lastLoginCode())) {
        sink_.log(LogSeverity::Warn, "upstream refused the login with [" + client_.lastLoginCode() +
                                         "]; a new access token would not change that");
      } else if (upstream_.bearer) {
        if (!bearerRetried_) {
          // A token can be revoked or lose its grant before it expires: one
          // fresh token gets one more try on a new connection.
          bearerRetried_ = true;
          client_.close();
          sink_.closeUpstream();
          op_ = Op::Resolving;
          sink_.log(LogSeverity::Warn,
                    "upstream refused the access token; renewing it and trying once more");
          if (sink_.renewCredentials()) return;
          op_ = Op::LoggingIn;
        } else {
          sink_.log(LogSeverity::Warn,
                    "upstream refused a freshly renewed access token too; check that the "
                    "identity may open mailbox " +
                        upstream_.user + " and that its scope grants IMAP access");
        }
      }
      return openFailed({RespCode::Auth, "Authentication failed.", {}});
    case ImapLoginFailure::InUse:
      return openFailed(inUse());
    case ImapLoginFailure::Unavailable:
      return openFailed(unavailable());
    case ImapLoginFailure::PreAuth:
      return openFailed({RespCode::SysPerm, "Upstream configuration error.", {}});
    case ImapLoginFailure::LoginDisabled:
      return openFailed({RespCode::SysPerm, "Upstream refuses the login on this connection.", {}});
    case ImapLoginFailure::NoMechanism:
      return openFailed({RespCode::SysPerm, "Upstream configuration error.", {}});
  }
}

void ImapMaildrop::openFailed(const MaildropError& error) {
  client_.close();
  secureWipe(upstream_.password);
  secureWipe(upstream_.accessToken);
  resetSnapshot();
  sink_.closeUpstream();
  sink_.releaseMaildrop();
  // A later login may open again.
  op_ = Op::Idle;
  events_->onMaildropOpenFailed(error);
}

void ImapMaildrop::resetSnapshot() {
  exists_ = 0;
  uidValidityChanged_ = false;
  ++stableRequest_;
  mapDegraded_ = false;
  uidlTexts_.clear();
  uids_.clear();
  sizes_.clear();
  listing_.clear();
  reported_.clear();
  present_.clear();
}

void ImapMaildrop::onLoggedIn() {
  // Only now is a pass-through login proven; nothing is selected before the sink agrees.
  op_ = Op::Claiming;
  // The sink may answer synchronously; nothing may follow this call.
  sink_.claimMaildrop({upstream_.user, options_.mailbox.folder, options_.mailbox.exclusive});
}

void ImapMaildrop::onMaildropClaimed(MaildropClaim claim) {
  if (op_ != Op::Claiming) return;
  switch (claim) {
    case MaildropClaim::Granted:
      return startSession();
    case MaildropClaim::InUse:
    case MaildropClaim::LoginDelay:
      // The login succeeded upstream: end it there politely before the connection goes.
      client_.logout();
      return openFailed(claim == MaildropClaim::InUse ? inUse() : tooSoon());
  }
}

void ImapMaildrop::startSession() {
  sink_.noteUpstreamLoggedIn();
  const ImapCapabilities& caps = client_.capabilities();
  effectivePolicy_ = options_.mailbox.onDelete;
  if (effectivePolicy_ == DeletePolicy::Expunge && !caps.uidPlus) {
    // Without UIDPLUS the only expunge is the bare one, which could remove
    // other clients' \Deleted messages: flag instead.
    sink_.log(LogSeverity::Warn,
              "upstream lacks UIDPLUS; on_delete=expunge falls back to flag for this session");
    effectivePolicy_ = DeletePolicy::Flag;
  }
  if (effectivePolicy_ == DeletePolicy::Move && !caps.move && !caps.uidPlus) {
    sink_.log(LogSeverity::Warn,
              "upstream lacks MOVE and UIDPLUS; on_delete=move copies and flags \\Deleted without "
              "expunging");
  }
  moveTarget_.clear();
  moveTargetForm_ = MailboxForm::Utf8;
  if (effectivePolicy_ == DeletePolicy::Move) {
    if (isSpecialUse(options_.mailbox.moveTo)) return findMoveTarget();
    moveTarget_ = options_.mailbox.moveTo;
  }
  sendSelect();
}

// A special-use move_to names no folder: LIST tells which one carries the attribute, before
// SELECT, so that the session never starts with a policy it cannot apply. With SPECIAL-USE the
// server lists only those folders; otherwise all of them, and RFC 6154 lets a server show the
// attributes in a plain LIST too. Only the first match is kept, so however long the list, it
// costs no memory.
void ImapMaildrop::findMoveTarget() {
  op_ = Op::FindMoveTarget;
  moveTargetForm_ = MailboxForm::Wire;
  client_.send(client_.builder().list("", "*", client_.capabilities().specialUse));
}

void ImapMaildrop::moveTargetListed(const ImapEvent& tagged) {
  const std::string& attribute = options_.mailbox.moveTo;
  std::string problem;
  if (tagged.status != ImapStatus::Ok) {
    problem = "LIST failed: " + codeSuffix(tagged);
  } else if (moveTarget_.empty()) {
    problem = "no folder has that attribute";
  } else if (moveTarget_ == encodeMailboxName(options_.mailbox.folder) ||
             (equalsIgnoreCase(moveTarget_, "INBOX") &&
              equalsIgnoreCase(options_.mailbox.folder, "INBOX"))) {
    problem = "it is the served folder itself, so moving would never remove a message";
  }
  if (problem.empty()) {
    sink_.log(LogSeverity::Info, "move_to " + attribute + " is folder \"" + moveTarget_ + "\"");
  } else {
    // Flagging keeps every DELE'd message where it was: nothing is lost, and nothing is
    // hard-deleted, because a folder is missing.
    sink_.log(LogSeverity::Warn, "move_to " + attribute + ": " + problem +
                                     "; on_delete=move falls back to flag for this session");
    effectivePolicy_ = DeletePolicy::Flag;
    moveTarget_.clear();
  }
  sendSelect();
}

void ImapMaildrop::sendSelect(bool condStore) {
  bool readOnly = effectivePolicy_ == DeletePolicy::Keep && !options_.mailbox.markSeenOnRetr;
  op_ = Op::Select;
  selectModSeq_.reset();
  selectUidNext_.reset();
  // HIGHESTMODSEQ is what makes a cached snapshot refreshable; RFC 7162 has the server report it
  // once the client asked for CONDSTORE, here on the SELECT itself.
  selectCondStore_ =
      condStore && options_.snapshotCache != nullptr && client_.capabilities().condStore;
  client_.send(client_.builder().select(options_.mailbox.folder, readOnly, selectCondStore_));
}

void ImapMaildrop::sendSnapshot() {
  uidlTexts_.clear();
  uids_.clear();
  sizes_.clear();
  listing_.clear();
  reported_.clear();
  present_.clear();
  deletedUids_.clear();
  cacheKey_.clear();
  publish_ = false;
  fromCache_ = false;
  snapshotPhase_ = SnapshotPhase::Full;
  if (exists_ == 0) {
    enterOpen();
    return;
  }
  std::uint32_t max = options_.mailbox.maxMessages;
  if ((max == 0 || max > kMaxSnapshotMessages) && exists_ > kMaxSnapshotMessages) {
    sink_.log(LogSeverity::Warn, "\"" + options_.mailbox.folder + "\" has " +
                                     std::to_string(exists_) + " messages; serving the newest " +
                                     std::to_string(kMaxSnapshotMessages));
    max = kMaxSnapshotMessages;
  }
  op_ = Op::Snapshot;
  SnapshotStore* cache = options_.snapshotCache;
  // A snapshot of only the newest max_messages describes no whole mailbox: not cached.
  if (cache != nullptr && (max == 0 || exists_ <= max)) {
    cacheKey_ = snapshotKey(options_.snapshotScope, upstream_.user, options_.mailbox.folder);
    SnapshotPtr entry = cache->find(cacheKey_);
    SelectedState now{uidValidity_, exists_, selectModSeq_, selectUidNext_};
    switch (planRefresh(entry.get(), now)) {
      case RefreshPlan::Current:
        sink_.noteSnapshotCache(SnapshotCacheOutcome::Hit);
        fromCache_ = true;
        listing_ = entry->messages;
        enterOpen();
        return;
      case RefreshPlan::Changes:
        snapshotPhase_ = SnapshotPhase::Changes;
        listing_ = entry->messages;
        snapshotLimit_ = std::uint64_t{exists_} + kSnapshotSlack;
        client_.send(client_.builder().uidFetch(
            "1:*",
            "(UID RFC822.SIZE FLAGS) (CHANGEDSINCE " + std::to_string(entry->highestModSeq) + ")"));
        return;
      case RefreshPlan::NewSince: {
        listing_ = entry->messages;
        newSinceUid_ = listing_.empty() ? 0 : listing_.back().uid;
        std::size_t deleted = static_cast<std::size_t>(std::count_if(
            listing_.begin(), listing_.end(), [](const CachedMessage& m) { return m.deleted; }));
        if (newSinceUid_ == std::numeric_limits<std::uint32_t>::max() ||
            deleted * (std::to_string(newSinceUid_).size() + 1) > kMaxSearchReply / 2) {
          listing_.clear();
          sink_.noteSnapshotCache(SnapshotCacheOutcome::Miss);
          break;
        }
        snapshotPhase_ = SnapshotPhase::NewSince;
        snapshotLimit_ = std::uint64_t{exists_} + kSnapshotSlack;
        // Without CHANGEDSINCE only new UIDs are asked for; the old ones' \Deleted flags, which
        // another client may have changed, come from UID SEARCH DELETED next.
        client_.send(client_.builder().uidFetch(std::to_string(newSinceUid_ + 1) + ":*",
                                                "(UID RFC822.SIZE FLAGS)"));
        return;
      }
      case RefreshPlan::Invalidated:
        sink_.log(LogSeverity::Info, "UIDVALIDITY of \"" + options_.mailbox.folder +
                                         "\" changed from " + std::to_string(entry->uidValidity) +
                                         " to " + std::to_string(uidValidity_) +
                                         "; the cached snapshot is dropped");
        cache->erase(cacheKey_);
        sink_.noteSnapshotCache(SnapshotCacheOutcome::Invalidated);
        break;
      case RefreshPlan::Full:
        sink_.noteSnapshotCache(SnapshotCacheOutcome::Miss);
        break;
    }
    publish_ = exists_ <= cache->maxMessages();
  }
  std::uint32_t expected = max != 0 && max < exists_ ? max : exists_;
  snapshotLimit_ = std::uint64_t{expected} + kSnapshotSlack;
  listing_.reserve(std::min(expected, kMaxSnapshotReserve));
  if (max != 0 && exists_ > max) {
    client_.send(client_.builder().fetch(std::to_string(exists_ - max + 1) + ":*",
                                         "(UID RFC822.SIZE FLAGS)"));
  } else {
    client_.send(client_.builder().uidFetch("1:*", "(RFC822.SIZE FLAGS)"));
  }
}

// The cached snapshot cannot be brought up to date after all (a reply it cannot explain): list
// everything, as without a cache.
void ImapMaildrop::sendFullListing() {
  sink_.noteSnapshotCache(SnapshotCacheOutcome::Miss);
  snapshotPhase_ = SnapshotPhase::Full;
  listing_.clear();
  reported_.clear();
  present_.clear();
  deletedUids_.clear();
  publish_ = exists_ <= options_.snapshotCache->maxMessages();
  snapshotLimit_ = std::uint64_t{exists_} + kSnapshotSlack;
  client_.send(client_.builder().uidFetch("1:*", "(RFC822.SIZE FLAGS)"));
}

void ImapMaildrop::snapshotFetched(const ImapEvent& event) {
  const FetchAttributes& fetch = event.fetch;
  if (!fetch.uid) {
    if (snapshotPhase_ == SnapshotPhase::Full) {
      sink_.log(LogSeverity::Warn, "snapshot FETCH without UID or RFC822.SIZE skipped");
    }
    return;  // an unsolicited flag update that names no UID says nothing usable
  }
  std::uint64_t received =
      snapshotPhase_ == SnapshotPhase::Full ? listing_.size()
      : snapshotPhase_ == SnapshotPhase::Changes || snapshotPhase_ == SnapshotPhase::NewSince
          ? reported_.size()
          : present_.size();
  if (received >= snapshotLimit_) {
    return upstreamBroken("the server sent more FETCH responses than it has messages (" +
                          std::to_string(exists_) + ")");
  }
  std::optional<bool> deleted;
  if (fetch.flags) deleted = hasFlag(*fetch.flags, "\\Deleted");
  switch (snapshotPhase_) {
    case SnapshotPhase::Full:
      if (!fetch.rfc822Size) {
        sink_.log(LogSeverity::Warn, "snapshot FETCH without UID or RFC822.SIZE skipped");
        return;
      }
      listing_.push_back({*fetch.rfc822Size, *fetch.uid, deleted.value_or(false)});
      return;
    case SnapshotPhase::Changes:
      reported_.push_back({*fetch.uid, fetch.rfc822Size, deleted});
      return;
    case SnapshotPhase::NewSince:
      // RFC 3501: "n:*" includes the highest message even below n; an old message's flags
      // come from the SEARCH, and unsolicited updates of them are not needed either.
      if (*fetch.uid <= newSinceUid_) return;
      reported_.push_back({*fetch.uid, fetch.rfc822Size, deleted});
      return;
    case SnapshotPhase::Deleted:
      return;  // unsolicited; the SEARCH answers for the flags
    case SnapshotPhase::Presence:
      // RFC 3501: "n:*" includes the highest message even below n; a UID above the range asked
      // for is no news about the cached messages.
      if (listing_.empty() || *fetch.uid > listing_.back().uid) return;
      present_.push_back(*fetch.uid);
      return;
  }
}

void ImapMaildrop::snapshotCompleted() {
  switch (snapshotPhase_) {
    case SnapshotPhase::Full:
      break;
    case SnapshotPhase::Changes:
    case SnapshotPhase::NewSince: {
      std::optional<std::vector<CachedMessage>> merged =
          applyChanges(listing_, std::move(reported_));
      reported_.clear();
      if (!merged || merged->size() < exists_) {
        sink_.log(LogSeverity::Warn, "the changes since the cached snapshot do not add up to " +
                                         std::to_string(exists_) +
                                         " messages; listing the whole mailbox");
        return sendFullListing();
      }
      listing_ = std::move(*merged);
      if (snapshotPhase_ == SnapshotPhase::NewSince) return sendDeletedSearch();
      return listPresentOrServe();
    }
    case SnapshotPhase::Deleted:
      if (!searchSeen_ || searchUnusable_ || !applyDeleted(listing_, std::move(deletedUids_))) {
        deletedUids_.clear();
        sink_.log(LogSeverity::Warn,
                  "UID SEARCH DELETED does not fit the cached snapshot; listing the whole mailbox");
        return sendFullListing();
      }
      deletedUids_.clear();
      return listPresentOrServe();
    case SnapshotPhase::Presence:
      if (!keepPresent(listing_, std::move(present_)) || listing_.size() != exists_) {
        present_.clear();
        sink_.log(LogSeverity::Warn, "the UIDs present do not match the cached snapshot of " +
                                         std::to_string(exists_) +
                                         " messages; listing the whole mailbox");
        return sendFullListing();
      }
      present_.clear();
      sink_.noteSnapshotCache(SnapshotCacheOutcome::Hit);
      fromCache_ = true;
      publish_ = true;
      break;
  }
  enterOpen();
}

// The refreshed listing is a superset of the messages present: equal when the counts agree.
void ImapMaildrop::listPresentOrServe() {
  if (listing_.size() > exists_) {
    // Something was expunged, and only QRESYNC would say what: list the UIDs present.
    snapshotPhase_ = SnapshotPhase::Presence;
    present_.reserve(std::min(exists_, kMaxSnapshotReserve));
    client_.send(client_.builder().uidFetch("1:" + std::to_string(listing_.back().uid), "(UID)"));
    return;
  }
  sink_.noteSnapshotCache(SnapshotCacheOutcome::Hit);
  fromCache_ = true;
  publish_ = true;
  enterOpen();
}

void ImapMaildrop::sendDeletedSearch() {
  snapshotPhase_ = SnapshotPhase::Deleted;
  deletedUids_.clear();
  searchSeen_ = false;
  searchUnusable_ = false;
  client_.send(client_.builder().uidSearch("DELETED"));
}

// The \Deleted set is kept only up to EXISTS UIDs (more cannot be right), so its memory is
// bounded by the mailbox the cache holds, not by what the server sends.
void ImapMaildrop::searched(const ImapEvent& event) {
  if (op_ != Op::Snapshot || snapshotPhase_ != SnapshotPhase::Deleted || searchUnusable_) return;
  if (event.kind != ImapEvent::Kind::Search) {
    searchUnusable_ = true;  // a SEARCH the parser could not read
    return;
  }
  searchSeen_ = true;
  if (event.numbers.size() > exists_ - std::min<std::size_t>(deletedUids_.size(), exists_)) {
    searchUnusable_ = true;
    std::vector<std::uint32_t>().swap(deletedUids_);
    return;
  }
  deletedUids_.insert(deletedUids_.end(), event.numbers.begin(), event.numbers.end());
}

void ImapMaildrop::publishSnapshot() {
  if (!publish_ || cacheKey_.empty()) return;
  auto snapshot = std::make_shared<MailboxSnapshot>();
  snapshot->uidValidity = uidValidity_;
  // SELECT's value, not a later one: whatever changed after the SELECT is reported again next
  // time, never missed.
  snapshot->highestModSeq = selectModSeq_.value_or(0);
  snapshot->uidNext = selectUidNext_.value_or(0);
  snapshot->messages = std::move(listing_);
  options_.snapshotCache->publish(cacheKey_, std::move(snapshot));
}

void ImapMaildrop::enterOpen() {
  // Servers answer in sequence order, which is UID order; sort anyway so the
  // numbering never depends on that, and drop repeats from unsolicited FETCHes.
  sortByUid(listing_);
  std::size_t served = static_cast<std::size_t>(std::count_if(
      listing_.begin(), listing_.end(), [](const CachedMessage& m) { return !m.deleted; }));
  uids_.reserve(served);
  sizes_.reserve(served);
  for (const CachedMessage& m : listing_) {
    if (m.deleted) continue;
    uids_.push_back(m.uid);
    sizes_.push_back(m.size);
  }
  const UidlFormat& format = options_.mailbox.uidl;
  listedWhole_ = listing_.size() >= exists_;
  if (format.usesStable() && options_.uidlMap != nullptr) {
    allUids_.clear();
    allUids_.reserve(listing_.size());
    for (const CachedMessage& m : listing_) allUids_.push_back(m.uid);
  }
  publishSnapshot();
  std::vector<CachedMessage>().swap(listing_);
  if (format.usesMessageIds()) return startStable();
  finishOpen();
}

void ImapMaildrop::finishOpen() {
  op_ = Op::Open;
  sink_.log(LogSeverity::Info, "logged in; " + std::to_string(uids_.size()) + " messages in \"" +
                                   options_.mailbox.folder + "\", UIDVALIDITY " +
                                   std::to_string(uidValidity_) +
                                   (fromCache_ ? " (snapshot cache)" : ""));
  events_->onMaildropOpened();
}

void ImapMaildrop::appendUidl(std::string& out, std::size_t index) const {
  if (!uidlTexts_.empty()) {
    out += uidlTexts_[index];
    return;
  }
  options_.mailbox.uidl.appendTo(out, uids_[index], uidValidity_);
}

// --- Untagged responses ------------------------------------------------------------

void ImapMaildrop::onUntagged(const ImapEvent& event) {
  switch (event.kind) {
    case ImapEvent::Kind::Status: {
      if (event.code && op_ == Op::Select) {
        if (event.code->name == "HIGHESTMODSEQ") {
          selectModSeq_ = parseDecimal(event.code->text);
          // RFC 7162: 0 is no mod-sequence; treat it as NOMODSEQ.
          if (selectModSeq_ == std::uint64_t{0}) selectModSeq_.reset();
        } else if (event.code->name == "NOMODSEQ") {
          selectModSeq_.reset();
        } else if (event.code->name == "UIDNEXT") {
          selectUidNext_ = parseUint32(event.code->text);
        }
      }
      if (!event.code || event.code->name != "UIDVALIDITY") return;
      std::optional<std::uint32_t> value = parseUint32(event.code->text);
      if (!value) return upstreamBroken("malformed UIDVALIDITY");
      if (op_ == Op::Select) {
        uidValidity_ = *value;
      } else if (op_ == Op::Snapshot || op_ == Op::Stable || op_ == Op::Open || op_ == Op::Fetch ||
                 op_ == Op::Update) {
        if (*value != uidValidity_) {
          sink_.log(LogSeverity::Error, markUidValidityChanged(*value, "during the session"));
        }
      }
      return;
    }
    case ImapEvent::Kind::Exists:
      // While the snapshot is taken too: a refreshed snapshot is checked against the count.
      if (op_ == Op::Select || op_ == Op::Snapshot) exists_ = event.number;
      return;
    case ImapEvent::Kind::Expunge:
      if (op_ == Op::Snapshot && exists_ > 0) --exists_;
      return;
    case ImapEvent::Kind::List:
      // The first usable match wins; a folder that cannot hold messages is no target, and no
      // IMAP string can carry a NUL back.
      if (op_ != Op::FindMoveTarget || !moveTarget_.empty() ||
          !hasFlag(event.words, options_.mailbox.moveTo) || hasFlag(event.words, "\\Noselect") ||
          hasFlag(event.words, "\\NonExistent") || event.mailbox.empty() ||
          !isImapSendable(event.mailbox)) {
        return;
      }
      moveTarget_ = event.mailbox;
      return;
    case ImapEvent::Kind::Fetch:
      if (op_ == Op::Fetch && verifying_ && phase_ == FetchPhase::Exists) {
        if (event.fetch.uid == uids_[fetchIndex_]) uidConfirmed_ = true;
        return;
      }
      if (op_ == Op::Snapshot) snapshotFetched(event);
      if (op_ == Op::Stable && stablePhase_ == StablePhase::ServerIds) stableServerIds(event);
      if (op_ == Op::Stable && stablePhase_ == StablePhase::Facts) stableFactsFetched(event);
      return;
    case ImapEvent::Kind::MailboxStatus:
      if (op_ == Op::Update && updateStep_ > 0 &&
          updateSteps_[updateStep_ - 1] == UpdateStep::CheckUidValidity) {
        statusChecked(event);
      }
      return;
    case ImapEvent::Kind::Search:
      searched(event);
      return;
    case ImapEvent::Kind::Other:
      if (event.text == "SEARCH") searched(event);
      return;
    default:
      return;
  }
}

// --- Fetching ------------------------------------------------------------------

void ImapMaildrop::fetch(std::size_t index, std::optional<std::uint64_t> topLines) {
  if (readAhead_.active()) {
    if (!topLines && index == readAhead_.index() && !uidValidityChanged_) {
      // The guess was right: what came so far goes to the client now, the rest live.
      events_ = liveEvents_;
      readAhead_.replayTo(*liveEvents_);
      return;
    }
    if (!readAhead_.over()) {
      // A wrong guess. One command at a time keeps every reply unambiguous: the read-ahead's
      // reply is read and dropped before this request goes upstream.
      after_ = AfterReadAhead::Fetch;
      afterIndex_ = index;
      afterTopLines_ = topLines;
      readAhead_.discard();
      return;
    }
    readAhead_.clear();
  }
  if (op_ != Op::Open || index >= uids_.size()) {
    // The server never asks out of turn; if it did, it must not wait forever.
    events_->onMessageFailed({RespCode::SysTemp, "Upstream connection lost, try again later.", {}});
    return;
  }
  if (uidValidityChanged_) {
    events_->onMessageFailed(
        {RespCode::SysTemp, "Mailbox changed on the server (UIDVALIDITY); log in again.", {}});
    return;
  }
  startFetch(index, topLines);
}

void ImapMaildrop::startFetch(std::size_t index, std::optional<std::uint64_t> topLines) {
  op_ = Op::Fetch;
  fetchIndex_ = index;
  fetchIsTop_ = topLines.has_value();
  begun_ = ended_ = enough_ = textEnded_ = false;
  sizeAccepted_ = false;
  textOffset_ = windowReceived_ = 0;
  window_ = kFirstTopWindow;
  if (!topLines) {
    phase_ = FetchPhase::Whole;
    sendFetch(retrItems());
  } else {
    // Header-only clients (neomutt indexing) and previewing scanners must not
    // pull whole attachments: the header first, then only as much text as
    // the lines need.
    phase_ = *topLines == 0 ? FetchPhase::Whole : FetchPhase::Header;
    sendFetch("(BODY.PEEK[HEADER])");
  }
}

// The fetch code runs unchanged for a read-ahead, with readAhead_ in place of the server: the
// size-mismatch check, the broken-literal guard and an expunged UID are handled as for a RETR,
// and the server hears the outcome when the client asks. Only one command is ever in flight,
// so the read-ahead goes out once the previous FETCH completed, while its body may still be on
// its way to the client: the upstream's round trip overlaps the client's.
void ImapMaildrop::readAhead(std::size_t index) {
  // BODY[] (mark_seen_on_retr) would set \Seen on a message the client may never ask for; a
  // message beyond the limit would cost too much for a wrong guess.
  if (options_.readAheadLimit == 0 || options_.mailbox.markSeenOnRetr || op_ != Op::Open ||
      uidValidityChanged_ || index >= uids_.size() || sizes_[index] > options_.readAheadLimit) {
    return;
  }
  if (readAhead_.active()) {
    if (readAhead_.index() == index) return;
    readAhead_.clear();
  }
  readAhead_.start(index, options_.readAheadLimit);
  events_ = &readAhead_;
  startFetch(index, std::nullopt);
}

void ImapMaildrop::readAheadOver(bool cut) {
  events_ = liveEvents_;
  if (cut && op_ != Op::Closed) {
    // The reply was left half read: the connection is of no further use. Nothing reached the
    // client; its RETR gets -ERR.
    client_.close();
    sink_.closeUpstream();
    op_ = Op::Closed;
  }
  if (!readAhead_.discarding()) return;
  readAhead_.clear();
  runAfterReadAhead();
}

void ImapMaildrop::runAfterReadAhead() {
  switch (std::exchange(after_, AfterReadAhead::Nothing)) {
    case AfterReadAhead::Fetch:
      fetch(afterIndex_, afterTopLines_);
      return;
    case AfterReadAhead::Update: {
      std::vector<std::size_t> indexes = std::move(afterUpdate_);
      afterUpdate_.clear();
      update(indexes);
      return;
    }
    case AfterReadAhead::Nothing:
      return;
  }
}

std::string_view ImapMaildrop::retrItems() const {
  return options_.mailbox.markSeenOnRetr ? "(BODY[])" : "(BODY.PEEK[])";
}

void ImapMaildrop::sendFetch(std::string_view items) {
  bodySeen_ = ignoringBody_ = emptyBodyPending_ = false;
  holding_ = sizeMismatch_ = verifying_ = heldOverflow_ = uidConfirmed_ = false;
  held_.clear();
  windowReceived_ = 0;
  client_.send(client_.builder().uidFetch(std::to_string(uids_[fetchIndex_]), items));
}

void ImapMaildrop::onBody(const ImapEvent& event) {
  if (op_ == Op::Stable && stablePhase_ == StablePhase::Facts) return stableFactsBody(event);
  if (op_ != Op::Fetch) return;  // unsolicited bodies are not ours to forward
  switch (event.kind) {
    case ImapEvent::Kind::BodyBegin: {
      std::uint32_t uid = uids_[fetchIndex_];
      bool wrongSection = (phase_ == FetchPhase::Header && event.section != "HEADER") ||
                          (phase_ == FetchPhase::TextWindow && event.section != "TEXT");
      if (bodySeen_ || wrongSection || (event.fetch.uid && *event.fetch.uid != uid)) {
        ignoringBody_ = true;
        return;
      }
      ignoringBody_ = false;
      bodySeen_ = true;
      if (phase_ == FetchPhase::TextWindow) {
        // Without an origin the server sent the whole text: nothing follows.
        if (!event.origin)
          textEnded_ = true;
        else if (*event.origin != textOffset_)
          return upstreamBroken("FETCH returned the wrong part of the message");
        startHold(event.literalSize);
        return;
      }
      if (event.literalSize == 0 && sizes_[fetchIndex_] != 0) {
        // Dovecot answers a FETCH of a message another session expunged with
        // an empty body and a tagged NO [EXPUNGEISSUED]; the tagged reply
        // decides between -ERR and an (odd) empty message.
        emptyBodyPending_ = true;
        return;
      }
      sizeMismatch_ = !fetchIsTop_ && event.literalSize != sizes_[fetchIndex_];
      if (sizeAccepted_) sizeMismatch_ = false;  // fetched again after the check
      startHold(event.literalSize);
      return;
    }
    case ImapEvent::Kind::BodyChunk: {
      if (ignoringBody_ || !bodySeen_ || emptyBodyPending_ || ended_) return;
      windowReceived_ += event.data.size();
      std::string_view data = event.data;
      if (holding_) {
        std::size_t take = std::min(heldNeed_ - held_.size(), data.size());
        held_.append(data.substr(0, take));
        data.remove_prefix(take);
        if (held_.size() < heldNeed_ || !releaseHold()) return;
      }
      if (verifying_) {
        std::size_t room = kMaxHeldBody - std::min(kMaxHeldBody, held_.size());
        if (data.size() > room) heldOverflow_ = true;
        held_.append(data.substr(0, room));
        return;
      }
      if (enough_ || data.empty()) return;
      if (!events_->onMessageData(data)) enough_ = true;
      return;
    }
    case ImapEvent::Kind::BodyEnd:
      if (ignoringBody_) {
        ignoringBody_ = false;
        return;
      }
      if (verifying_) return;  // the existence check decides
      // A whole message ends with its literal; TOP's parts end with the last
      // window (windowCompleted).
      if (phase_ == FetchPhase::Whole && begun_ && !ended_) endMessage();
      return;
    default:
      return;
  }
}

void ImapMaildrop::startHold(std::uint64_t literalSize) {
  literalSize_ = literalSize;
  held_.clear();
  holding_ = true;
  heldNeed_ = static_cast<std::size_t>(
      std::min<std::uint64_t>(literalSize, 3 + client_.pendingTag().size() + 1));
  if (heldNeed_ == 0) releaseHold();
}

// Returns false when the fetch is over (the literal was broken).
bool ImapMaildrop::releaseHold() {
  holding_ = false;
  const std::string& tag = client_.pendingTag();
  if (!tag.empty() && held_.size() == 3 + tag.size() + 1 && held_.starts_with(")\r\n") &&
      std::string_view(held_).substr(3, tag.size()) == tag && held_.back() == ' ') {
    // A real message cannot start with our own tag: the tag is ours, fresh
    // for this command, and unknown to whoever wrote the message.
    brokenLiteral();
    return false;
  }
  if (sizeMismatch_) {
    verifying_ = true;  // held_ (a few octets) grows up to kMaxHeldBody from here
    return true;
  }
  if (!begun_ && phase_ != FetchPhase::TextWindow) {
    begun_ = true;
    events_->onMessageBegin();
  }
  if (!held_.empty() && !enough_ && !events_->onMessageData(held_)) enough_ = true;
  held_.clear();
  return true;
}

void ImapMaildrop::brokenLiteral() {
  std::uint32_t uid = uids_[fetchIndex_];
  sink_.log(LogSeverity::Error,
            "UID " + std::to_string(uid) + ": the server announced a " +
                std::to_string(literalSize_) +
                "-octet body but sent its own end of the FETCH in it (a broken literal); "
                "dropping the upstream connection");
  bool cut = begun_;
  client_.close();
  sink_.closeUpstream();
  op_ = Op::Closed;
  held_.clear();
  if (cut) {
    events_->onMessageCut("upstream broke a FETCH literal");
  } else {
    events_->onMessageFailed(
        {RespCode::SysTemp, "Upstream server sent a broken reply, try again later.", {}});
  }
}

void ImapMaildrop::verifyStep(const ImapEvent& tagged) {
  std::uint32_t uid = uids_[fetchIndex_];
  auto gone = [&] {
    sink_.log(LogSeverity::Info,
              "UID " + std::to_string(uid) + " was expunged by another client; the server sent a " +
                  std::to_string(literalSize_) + "-octet substitute body instead of " +
                  std::to_string(sizes_[fetchIndex_]) + " octets");
    verifying_ = false;
    held_.clear();
    op_ = Op::Open;
    events_->onMessageFailed({RespCode::None, "Message was deleted by another client.", {}});
  };
  auto failed = [&] {
    // Nothing went out yet: an honest -ERR is still possible, and better than
    // a body the server itself did not vouch for, or a "deleted" it did not say.
    sink_.log(LogSeverity::Warn, "UID " + std::to_string(uid) + ": checking a body of " +
                                     std::to_string(literalSize_) + " octets (RFC822.SIZE " +
                                     std::to_string(sizes_[fetchIndex_]) +
                                     ") failed: " + codeSuffix(tagged));
    verifying_ = false;
    held_.clear();
    op_ = Op::Open;
    events_->onMessageFailed(
        {RespCode::SysTemp, "Upstream could not fetch the message, try again later.", {}});
  };
  switch (phase_) {
    case FetchPhase::Whole:
      if (tagged.code && tagged.code->name == "EXPUNGEISSUED") return gone();
      if (tagged.status != ImapStatus::Ok) return failed();
      phase_ = FetchPhase::Noop;
      client_.send(client_.builder().noop());  // brings the EXPUNGEs the server held back
      return;
    case FetchPhase::Noop:
      if (tagged.status != ImapStatus::Ok) return failed();
      phase_ = FetchPhase::Exists;
      uidConfirmed_ = false;
      client_.send(client_.builder().uidFetch(std::to_string(uid), "(UID)"));
      return;
    case FetchPhase::Exists:
      // Only a completed search that did not find the UID means it is gone.
      if (tagged.status != ImapStatus::Ok) return failed();
      if (!uidConfirmed_) return gone();
      sizeAccepted_ = true;
      verifying_ = false;
      sink_.log(LogSeverity::Warn,
                "UID " + std::to_string(uid) + ": body is " + std::to_string(literalSize_) +
                    " octets but RFC822.SIZE said " + std::to_string(sizes_[fetchIndex_]) +
                    (heldOverflow_ ? "; the message exists, fetching it again"
                                   : "; the message exists, serving it"));
      if (heldOverflow_) {
        phase_ = FetchPhase::Whole;
        sendFetch(retrItems());
        return;
      }
      begun_ = true;
      events_->onMessageBegin();
      if (!held_.empty()) events_->onMessageData(held_);
      held_.clear();
      endMessage();
      op_ = Op::Open;
      events_->onFetchDone();
      return;
    default:
      return;
  }
}

void ImapMaildrop::endMessage() {
  ended_ = true;
  events_->onMessageEnd();
}

void ImapMaildrop::onCompleted(const ImapEvent& tagged) {
  switch (op_) {
    case Op::Reusing:
      if (tagged.status != ImapStatus::Ok) {
        reuseFailed("NOOP answered " + codeSuffix(tagged));
        return;
      }
      sink_.log(LogSeverity::Debug, "reusing a pooled upstream connection");
      secureWipe(upstream_.password);
      secureWipe(upstream_.accessToken);
      onLoggedIn();
      return;
    case Op::FindMoveTarget:
      moveTargetListed(tagged);
      return;
    case Op::Select:
      if (tagged.status != ImapStatus::Ok && selectCondStore_) {
        // A server that advertises CONDSTORE but refuses the SELECT parameter still opens the
        // folder the plain way; that session goes without the cache.
        sink_.log(LogSeverity::Warn,
                  "SELECT (CONDSTORE) refused: " + codeSuffix(tagged) + "; selecting without it");
        sendSelect(false);
        return;
      }
      if (tagged.status != ImapStatus::Ok) {
        sink_.log(LogSeverity::Error,
                  "cannot open folder \"" + options_.mailbox.folder + "\": " + codeSuffix(tagged));
        openFailed({RespCode::SysPerm, "Cannot open the mailbox folder on the server.", {}});
        return;
      }
      sendSnapshot();
      return;
    case Op::Snapshot:
      if (tagged.status != ImapStatus::Ok &&
          (snapshotPhase_ == SnapshotPhase::NewSince || snapshotPhase_ == SnapshotPhase::Deleted)) {
        // A server that refuses the refresh may still list everything.
        sink_.log(LogSeverity::Warn, "refreshing the cached snapshot failed: " +
                                         codeSuffix(tagged) + "; listing the whole mailbox");
        return sendFullListing();
      }
      if (tagged.status != ImapStatus::Ok) {
        sink_.log(LogSeverity::Error, "listing the mailbox failed: " + codeSuffix(tagged));
        openFailed({RespCode::SysTemp, "Cannot list the mailbox, try again later.", {}});
        return;
      }
      snapshotCompleted();
      return;
    case Op::Stable:
      stableCompleted(tagged);
      return;
    case Op::Fetch:
      if (phase_ == FetchPhase::TextWindow) {
        windowCompleted(tagged);
      } else {
        fetchCompleted(tagged);
      }
      return;
    case Op::Update:
      if (updateStep_ > 0 && updateSteps_[updateStep_ - 1] == UpdateStep::CheckUidValidity) {
        uidValidityChecked(tagged);
        return;
      }
      if (tagged.status != ImapStatus::Ok) {
        updateStepFailed(tagged);
        return;
      }
      nextUpdateStep();
      return;
    default:
      upstreamBroken("unexpected tagged reply");
      return;
  }
}

void ImapMaildrop::fetchCompleted(const ImapEvent& tagged) {
  if (verifying_) return verifyStep(tagged);
  std::uint32_t uid = uids_[fetchIndex_];
  bool empty = emptyBodyPending_;
  emptyBodyPending_ = false;
  if (begun_ && phase_ == FetchPhase::Whole && !ended_) {
    // Cannot happen with a well-formed server; never leave a body half-sent.
    events_->onMessageCut("upstream ended a FETCH before the body was complete");
    return;
  }
  if (!begun_) {
    bool expunged = tagged.code && tagged.code->name == "EXPUNGEISSUED";
    if (tagged.status == ImapStatus::Ok && !empty && !bodySeen_) {
      // UID FETCH of an expunged UID answers OK with no data: the message is gone.
      expunged = true;
    }
    if (expunged) {
      sink_.log(LogSeverity::Info,
                "UID " + std::to_string(uid) + " was expunged by another client");
      op_ = Op::Open;
      events_->onMessageFailed({RespCode::None, "Message was deleted by another client.", {}});
      return;
    }
    if (tagged.status != ImapStatus::Ok) {
      sink_.log(LogSeverity::Warn,
                "UID FETCH " + std::to_string(uid) + " failed: " + codeSuffix(tagged));
      op_ = Op::Open;
      events_->onMessageFailed(
          {RespCode::SysTemp, "Upstream could not fetch the message, try again later.", {}});
      return;
    }
    // A truly empty body where RFC822.SIZE promised more: send what exists.
    if (!fetchIsTop_) {
      sink_.log(LogSeverity::Warn, "UID " + std::to_string(uid) +
                                       ": body is 0 octets but RFC822.SIZE said " +
                                       std::to_string(sizes_[fetchIndex_]));
    }
    begun_ = true;
    events_->onMessageBegin();
    endMessage();
  } else if (phase_ == FetchPhase::Header && !enough_) {
    // The header went out; the body lines come in windows of TEXT. A late NO
    // here is answered by the window's own reply.
    phase_ = FetchPhase::TextWindow;
    textOffset_ = 0;
    window_ = kFirstTopWindow;
    sendFetch("(BODY.PEEK[TEXT]<0." + std::to_string(window_) + ">)");
    return;
  } else if (!ended_) {
    endMessage();
  }
  op_ = Op::Open;
  events_->onFetchDone();
}

void ImapMaildrop::windowCompleted(const ImapEvent& tagged) {
  if (tagged.status != ImapStatus::Ok && !enough_) {
    // Lines are already out after "+OK": only a cut tells the client.
    sink_.log(LogSeverity::Warn, "UID FETCH " + std::to_string(uids_[fetchIndex_]) +
                                     " (TEXT) failed: " + codeSuffix(tagged));
    events_->onMessageCut("upstream could not fetch the rest of the message");
    return;
  }
  textOffset_ += windowReceived_;
  if (enough_ || textEnded_ || !bodySeen_ || windowReceived_ < window_) {
    endMessage();
    op_ = Op::Open;
    events_->onFetchDone();
    return;
  }
  window_ = std::min(window_ * 2, kMaxTopWindow);
  sendFetch("(BODY.PEEK[TEXT]<" + std::to_string(textOffset_) + "." + std::to_string(window_) +
            ">)");
}

// --- UPDATE --------------------------------------------------------------------

void ImapMaildrop::update(std::span<const std::size_t> indexes) {
  if (readAhead_.active()) {
    if (!readAhead_.over()) {
      // QUIT while a read-ahead runs: its reply is read and dropped first, so that no reply
      // of the UPDATE's commands can be confused with it.
      after_ = AfterReadAhead::Update;
      afterUpdate_.assign(indexes.begin(), indexes.end());
      readAhead_.discard();
      return;
    }
    readAhead_.clear();
  }
  if (op_ == Op::Closed && indexes.empty()) {
    // The upstream went away after the session was served, and nothing was
    // marked: there is nothing QUIT could fail to apply.
    sink_.releaseMaildrop();
    events_->onUpdated(0);
    return;
  }
  if (op_ != Op::Open || std::any_of(indexes.begin(), indexes.end(),
                                     [&](std::size_t i) { return i >= uids_.size(); })) {
    sink_.releaseMaildrop();
    events_->onUpdateFailed({RespCode::SysTemp,
                             "Upstream connection lost; deletions may not have been applied.",
                             "quit; the maildrop was not open"});
    return;
  }
  op_ = Op::Update;
  std::vector<std::uint32_t>& marked = updateUids_;
  marked.clear();
  marked.reserve(indexes.size());
  for (std::size_t index : indexes) marked.push_back(uids_[index]);
  updateSet_ = formatUidSet(marked);
  updateCount_ = static_cast<std::uint32_t>(indexes.size());
  updateSteps_.clear();
  updateStep_ = 0;
  if (!updateSet_.empty() && uidValidityChanged_) {
    return refuseUidValidityChanged("UIDVALIDITY changed during the session");
  }
  if (!updateSet_.empty() && effectivePolicy_ != DeletePolicy::Keep && mapDegraded_) {
    return refuseUpdate("QUIT: the UIDL map was unavailable this session",
                        "Message ids could not be confirmed; no messages were deleted.",
                        "quit; deletions refused: UIDL map unavailable");
  }
  if (!updateSet_.empty() && effectivePolicy_ != DeletePolicy::Keep) {
    confirmingUpdate_ = true;
    if (!sink_.confirmUpdate()) return;
    confirmingUpdate_ = false;
  }
  applyUpdate();
}

void ImapMaildrop::onUpdateConfirmed(bool confirmed) {
  if (op_ != Op::Update || !confirmingUpdate_) return;  // the upstream failed meanwhile
  confirmingUpdate_ = false;
  if (!confirmed) {
    return refuseUpdate("QUIT: exclusive access to the maildrop could not be confirmed",
                        "Cannot confirm exclusive access to the mailbox; no messages were deleted.",
                        "quit; deletions refused: maildrop lease not confirmed");
  }
  applyUpdate();
}

void ImapMaildrop::applyUpdate() {
  if (!updateSet_.empty()) {
    const ImapCapabilities& caps = client_.capabilities();
    switch (effectivePolicy_) {
      case DeletePolicy::Flag:
      case DeletePolicy::Seen:
        updateSteps_ = {UpdateStep::Store};
        break;
      case DeletePolicy::Expunge:
        updateSteps_ = {UpdateStep::Store, UpdateStep::Expunge};
        break;
      case DeletePolicy::Move:
        if (caps.move) {
          updateSteps_ = {UpdateStep::Move};
        } else if (caps.uidPlus) {
          updateSteps_ = {UpdateStep::Copy, UpdateStep::Store, UpdateStep::Expunge};
        } else {
          updateSteps_ = {UpdateStep::Copy, UpdateStep::Store};
        }
        break;
      case DeletePolicy::Keep:
        break;
    }
    // A UIDVALIDITY change nobody announced would make these UIDs other messages, or none.
    if (!updateSteps_.empty())
      updateSteps_.insert(updateSteps_.begin(), UpdateStep::CheckUidValidity);
  }
  statusUidValidity_.reset();
  nextUpdateStep();
}

void ImapMaildrop::statusChecked(const ImapEvent& event) {
  // Servers that compare names without case (Exchange) may echo another spelling.
  if (!equalsIgnoreCase(encodeMailboxName(options_.mailbox.folder), event.mailbox)) {
    return;  // about another mailbox
  }
  for (const auto& [name, value] : event.statusItems) {
    if (name == "UIDVALIDITY") statusUidValidity_ = value;
  }
}

// STATUS answered: go on when UIDVALIDITY is the session's, stop when it changed. A server that
// refuses STATUS on the selected mailbox (RFC 3501 discourages asking) or leaves the item out
// cannot say; the UIDs are still scoped to this UIDVALIDITY on a server that announces a change
// with the untagged OK [UIDVALIDITY] checked above, so the deletions go on. Such an announcement
// that came with STATUS's answer outweighs the answer: nothing has been changed yet.
void ImapMaildrop::uidValidityChecked(const ImapEvent& tagged) {
  if (uidValidityChanged_) {
    return refuseUidValidityChanged("UIDVALIDITY changed during the session");
  }
  if (tagged.status != ImapStatus::Ok || !statusUidValidity_) {
    sink_.log(LogSeverity::Warn,
              "QUIT: STATUS did not confirm UIDVALIDITY (" +
                  (tagged.status != ImapStatus::Ok ? codeSuffix(tagged) : std::string("no value")) +
                  "); applying deletions by UID");
    return nextUpdateStep();
  }
  if (*statusUidValidity_ == uidValidity_) return nextUpdateStep();
  refuseUidValidityChanged(markUidValidityChanged(*statusUidValidity_, "before QUIT"));
}

std::string ImapMaildrop::markUidValidityChanged(std::uint64_t now, std::string_view when) {
  if (!uidValidityChanged_) sink_.noteUidValidityChanged();
  uidValidityChanged_ = true;
  if (!cacheKey_.empty()) options_.snapshotCache->erase(cacheKey_);
  return "UIDVALIDITY changed from " + std::to_string(uidValidity_) + " to " + std::to_string(now) +
         " " + std::string(when);
}

void ImapMaildrop::refuseUidValidityChanged(std::string_view why) {
  refuseUpdate(why, "Mailbox changed on the server (UIDVALIDITY); no messages were deleted.",
               "quit; deletions aborted after a UIDVALIDITY change");
}

void ImapMaildrop::refuseUpdate(std::string_view why, std::string clientText, std::string reason) {
  sink_.log(LogSeverity::Error,
            std::string(why) + "; not applying deletions of UIDs " + updateSet_);
  client_.logout();
  sink_.releaseMaildrop();
  events_->onUpdateFailed({RespCode::SysTemp, std::move(clientText), std::move(reason)});
}

void ImapMaildrop::nextUpdateStep() {
  if (updateStep_ >= updateSteps_.size()) {
    std::uint32_t count = effectivePolicy_ == DeletePolicy::Keep ? 0 : updateCount_;
    if (count > 0) {
      sink_.log(LogSeverity::Info, "applied on_delete=" + std::string(toString(effectivePolicy_)) +
                                       " to UIDs " + updateSet_);
    }
    // The cache learns what this UPDATE did before the connection may be parked or logged out.
    if (count > 0) updateCache();
    // The claim goes first: a parked connection counts against the account's cap by itself.
    sink_.releaseMaildrop();
    if (!parkUpstream()) client_.logout();
    if (count > 0) sink_.noteDeleted(effectivePolicy_, count);
    if (count > 0) forgetExpunged();
    events_->onUpdated(count);
    return;
  }
  ImapCommandBuilder& builder = client_.builder();
  switch (updateSteps_[updateStep_++]) {
    case UpdateStep::CheckUidValidity:
      client_.send(builder.status(options_.mailbox.folder, "(UIDVALIDITY)"));
      return;
    case UpdateStep::Store:
      client_.send(
          builder.uidStore(updateSet_, "+FLAGS.SILENT",
                           effectivePolicy_ == DeletePolicy::Seen ? "(\\Seen)" : "(\\Deleted)"));
      return;
    case UpdateStep::Expunge:
      // Only our UIDs: a bare EXPUNGE would also remove whatever another
      // client had flagged \Deleted.
      client_.send(builder.uidExpunge(updateSet_));
      return;
    case UpdateStep::Copy:
      client_.send(builder.uidCopy(updateSet_, moveTarget_, moveTargetForm_));
      return;
    case UpdateStep::Move:
      client_.send(builder.uidMove(updateSet_, moveTarget_, moveTargetForm_));
      return;
  }
}

// The next session need not find out by counting what this one just did. A failed UPDATE
// changes nothing here: whatever it did is found by the next refresh.
void ImapMaildrop::updateCache() {
  if (cacheKey_.empty() || uidValidityChanged_ || updateUids_.empty()) return;
  SnapshotStore& cache = *options_.snapshotCache;
  SnapshotPtr entry = cache.find(cacheKey_);
  if (!entry || entry->uidValidity != uidValidity_) return;
  const ImapCapabilities& caps = client_.capabilities();
  switch (effectivePolicy_) {
    case DeletePolicy::Expunge:
      cache.publish(cacheKey_, afterUpdate(*entry, updateUids_, true));
      return;
    case DeletePolicy::Move:
      cache.publish(cacheKey_, afterUpdate(*entry, updateUids_, caps.move || caps.uidPlus));
      return;
    case DeletePolicy::Flag:
      cache.publish(cacheKey_, afterUpdate(*entry, updateUids_, false));
      return;
    case DeletePolicy::Seen:
    case DeletePolicy::Keep:
      return;
  }
}

void ImapMaildrop::updateStepFailed(const ImapEvent& tagged) {
  auto step = static_cast<std::uint8_t>(updateSteps_[updateStep_ - 1]);
  std::string applied = updateStep_ > 1 ? " (earlier steps succeeded)" : "";
  sink_.log(LogSeverity::Error, "QUIT: " + std::string(stepName(step)) +
                                    " failed: " + codeSuffix(tagged) +
                                    "; on_delete=" + std::string(toString(effectivePolicy_)) +
                                    " not applied to UIDs " + updateSet_ + applied);
  client_.logout();
  sink_.releaseMaildrop();
  events_->onUpdateFailed({RespCode::SysTemp,
                           "Deleting messages failed on the server; they were not removed.",
                           "quit; deletions failed upstream"});
}

// --- Endings -------------------------------------------------------------------

void ImapMaildrop::onBroken(std::string_view reason) {
  upstreamBroken(reason);
}

void ImapMaildrop::upstreamBroken(std::string_view reason) {
  if (op_ == Op::Idle || op_ == Op::Closed) return;
  std::string why(reason);
  if (readAhead_.active() && !readAhead_.over()) {
    // Nothing of a read-ahead reached the client, and nothing but the connection is lost. The
    // client hears of it at its next command that needs the upstream (-ERR [SYS/TEMP]; QUIT
    // applies nothing), as it would have had the connection failed then; a command already
    // waiting for the read-ahead to finish hears of it now.
    sink_.log(LogSeverity::Warn, why + " (during a read-ahead)");
    client_.close();
    sink_.closeUpstream();
    op_ = Op::Closed;
    events_ = liveEvents_;
    readAhead_.clear();
    runAfterReadAhead();
    return;
  }
  sink_.log(LogSeverity::Warn, why);
  client_.close();
  switch (op_) {
    case Op::Resolving:
      return;
    case Op::Reusing:
      return reuseFailed(why);
    case Op::Connecting:
    case Op::LoggingIn:
    case Op::Claiming:
    case Op::FindMoveTarget:
    case Op::Select:
    case Op::Snapshot:
    case Op::Stable:
      // A SEARCH reply beyond the line limit ends the connection: without the entry the next
      // session lists in full and caches the \Deleted set that keeps it from asking again.
      if (op_ == Op::Snapshot && snapshotPhase_ == SnapshotPhase::Deleted && !cacheKey_.empty()) {
        options_.snapshotCache->erase(cacheKey_);
      }
      openFailed(unavailable());
      return;
    case Op::Fetch:
      if (begun_ && !ended_) {
        // After "+OK" no "-ERR" can follow: the client must see a cut, not an end.
        op_ = Op::Closed;
        events_->onMessageCut("upstream failed during a message body: " + why);
        return;
      }
      break;
    case Op::Update:
      sink_.log(LogSeverity::Error, "upstream lost during QUIT; possibly unapplied UIDs: " +
                                        (updateSet_.empty() ? std::string("none") : updateSet_));
      break;
    default:
      break;
  }
  op_ = Op::Closed;
  events_->onMaildropLost(why);
}

void ImapMaildrop::onUpstreamClosed(std::string_view reason) {
  if (op_ == Op::Idle || op_ == Op::Closed) return;
  upstreamBroken(std::string("upstream closed: ").append(reason));
}

void ImapMaildrop::onUpstreamTimeout() {
  if (!awaitingUpstream()) return;
  upstreamBroken("upstream timed out");
}

bool ImapMaildrop::awaitingUpstream() const {
  if (op_ == Op::Connecting) return true;
  // A read-ahead nobody waits for runs no command timer: a client that is idle meanwhile
  // must not lose its session to a slow upstream (its idle timer still runs). The timer
  // starts when the client asks for anything that needs the upstream.
  if (readAhead_.active() && !readAhead_.over() && after_ == AfterReadAhead::Nothing) {
    return false;
  }
  if (op_ == Op::Idle || op_ == Op::Resolving || op_ == Op::Closed) return false;
  return client_.awaitingReply();
}

bool ImapMaildrop::awaitingGreeting() const {
  // The NOOP check of a pooled connection stands in for connecting: connect_timeout bounds it.
  return op_ == Op::Connecting || op_ == Op::Reusing ||
         (op_ == Op::LoggingIn && client_.awaitingGreeting());
}

void ImapMaildrop::close() {
  readAhead_.clear();
  events_ = liveEvents_;
  after_ = AfterReadAhead::Nothing;
  if (op_ == Op::Open) {
    // Served and idle (a hang-up or a timeout without QUIT): no DELE ever reaches the upstream
    // before UPDATE, so the connection is as clean as after a QUIT without DELE.
    sink_.releaseMaildrop();
    parkUpstream();
  }
  client_.close();
  secureWipe(upstream_.password);
  secureWipe(upstream_.accessToken);
  op_ = Op::Closed;
  sink_.closeUpstream();
  sink_.releaseMaildrop();
}

}  // namespace popbridge::protocol
