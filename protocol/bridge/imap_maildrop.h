#pragma once

// The maildrop over IMAP: the one place where POP3 meaning meets IMAP
// commands. It logs in through an ImapClient, opens the folder, takes the
// snapshot, streams messages by UID and applies the deletion policy at QUIT.
//
// Three numberings are kept apart:
//   msn    POP3 message number, 1..n, frozen at login (RFC 1939), the
//          server's business;
//   index  msn - 1, the position in the snapshot vectors;
//   uid    the IMAP UID, the only id ever sent upstream. UIDs are never
//          reused within a UIDVALIDITY, so a command on a UID another client
//          expunged touches nothing instead of touching the wrong message.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/bridge/mailbox_options.h"
#include "protocol/bridge/read_ahead.h"
#include "protocol/bridge/snapshot_cache.h"
#include "protocol/bridge/uidl_map_store.h"
#include "protocol/imap/client.h"
#include "protocol/log_severity.h"
#include "protocol/pop3/maildrop.h"
#include "protocol/uidl/match_facts.h"

namespace popbridge::protocol {

// What the local account layer (or pass-through) decided for a login.
struct UpstreamCredentials {
  std::string user;
  std::string password;
  std::optional<MailboxOptions> mailbox;  // per-account overrides
  // Set for an account bound to an OAuth2 identity: log in with accessToken
  // by this mechanism instead of the password.
  std::optional<BearerMechanism> bearer{};
  std::string accessToken{};
  std::string bearerHost{};  // the upstream as OAUTHBEARER names it
  std::uint16_t bearerPort = 0;
};

// May a login whose credentials are proven open its maildrop? The sink decides (RFC 1939's
// exclusive access, a per-account session cap, RFC 2449's LOGIN-DELAY): only a login that got
// this far may learn that another session holds the maildrop.
enum class MaildropClaim : std::uint8_t { Granted, InUse, LoginDelay };
struct MaildropClaimRequest {
  std::string_view account;  // the upstream login
  std::string_view folder;   // the folder the maildrop serves
  bool exclusive = true;     // MailboxOptions::exclusive
};

struct ImapMaildropOptions {
  ImapClientOptions client;
  MailboxOptions mailbox;
  // [upstream] read_ahead: the largest message (RFC822.SIZE) read ahead, and the most octets
  // of it held until the client asks; 0: no read-ahead.
  std::size_t readAheadLimit = 0;
  // Snapshots kept between sessions (see snapshot_cache.h); null: every session lists the whole
  // mailbox. snapshotScope names the upstream (host:port) in the cache keys.
  SnapshotStore* snapshotCache = nullptr;
  std::string snapshotScope;
  // The persistent UIDL map ([state]) that %{stable} falls back to when the server gives no
  // EMAILID or X-GM-MSGID; null: none (such messages get a UIDL that is stable only while the
  // UIDVALIDITY is).
  UidlMapStore* uidlMap = nullptr;
};

// The I/O the maildrop asks for, besides the IMAP client's.
class MaildropSink {
 public:
  virtual ~MaildropSink() = default;
  // Decide whether user/password may log in and with which upstream
  // credentials; answer with ImapMaildrop::onCredentials (now or later).
  virtual void resolveCredentials(std::string_view user, std::string_view password) = 0;
  // The upstream refused an access token: get a fresh one (the token source
  // knows which one was refused) and answer with onCredentials or
  // onCredentialsFailed. False when there is nothing to renew.
  virtual bool renewCredentials() { return false; }
  // The upstream accepted the login: may the session open `request.folder`? Answer with
  // ImapMaildrop::onMaildropClaimed (now or later). Nothing is selected before the answer;
  // a refusal logs out of the upstream and answers the client -ERR [IN-USE] or
  // [LOGIN-DELAY].
  virtual void claimMaildrop(const MaildropClaimRequest& request) = 0;
  // The session no longer uses the maildrop (QUIT applied or failed, the login failed, the
  // maildrop closed): called before the client hears of it, so that a device that QUITs and
  // logs in again at once is not refused [IN-USE] by its own last session. May be called when
  // nothing is claimed.
  virtual void releaseMaildrop() {}
  // QUIT is about to apply deletions: may it (a cluster's maildrop lease still held)? True goes
  // on at once; false: answer with ImapMaildrop::onUpdateConfirmed (later, never from inside).
  virtual bool confirmUpdate() { return true; }
  // Open the upstream connection (implicit TLS included); answer with
  // onUpstreamConnected or onUpstreamFailed.
  virtual void connectUpstream() = 0;
  virtual void closeUpstream() = 0;
  // An upstream connection pool (proxy/upstream_pool.h), asked before connecting: a connection
  // already logged in as `credentials` (the same identity and secret) may wait from an earlier
  // session. Make it the session's upstream and answer its client state; nullopt: connect.
  virtual std::optional<ImapResumeState> adoptPooledUpstream(
      const UpstreamCredentials& credentials) {
    (void)credentials;
    return std::nullopt;
  }
  // The session ended cleanly: the upstream is logged in, SELECTed and idle, with `unparsed`
  // already read after the last reply. True: the pool keeps it (it is no longer the session's);
  // false: log out as usual.
  virtual bool parkUpstream(const ImapResumeState& state, std::string_view unparsed) {
    (void)state;
    (void)unparsed;
    return false;
  }
  // An adopted connection failed its NOOP check; a fresh one is being opened.
  virtual void notePooledUpstreamStale() {}
  virtual void log(LogSeverity severity, std::string_view message) = 0;

  // Events for metrics, with nothing to answer; the defaults ignore them.
  // The upstream accepted the login: the snapshot (SELECT, listing) starts.
  virtual void noteUpstreamLoggedIn() {}
  // The folder's UIDVALIDITY changed while the session had it open.
  virtual void noteUidValidityChanged() {}
  // How the snapshot was had, when a snapshot cache is configured.
  virtual void noteSnapshotCache(SnapshotCacheOutcome outcome) { (void)outcome; }
  // The UIDL map could not be read or written; this session's QUIT deletes nothing.
  virtual void noteUidlMapUnavailable() {}
  // QUIT applied `policy` (the effective one, after fallbacks) to `count` messages.
  virtual void noteDeleted(DeletePolicy policy, std::uint32_t count) {
    (void)policy;
    (void)count;
  }
};

class ImapMaildrop final : public Maildrop, private ImapClientEvents {
 public:
  ImapMaildrop(ImapMaildropOptions options, MaildropSink& sink, ImapClientSink& clientSink);
  // Where the maildrop's answers go; set before open().
  void setEvents(MaildropEvents& events) { events_ = liveEvents_ = &events; }

  // Maildrop.
  void open(std::string_view user, std::string_view password) override;
  std::size_t messageCount() const override { return uids_.size(); }
  std::uint64_t messageSize(std::size_t index) const override { return sizes_[index]; }
  void appendUidl(std::string& out, std::size_t index) const override;
  void fetch(std::size_t index, std::optional<std::uint64_t> topLines) override;
  void readAhead(std::size_t index) override;
  void update(std::span<const std::size_t> indexes) override;
  void close() override;

  // Outcomes of the I/O it asked for.
  void onCredentials(std::optional<UpstreamCredentials> credentials);
  // The credentials could not be had (an OAuth2 token endpoint that refused
  // or failed): the device sees `code`; `reason` goes to the log.
  // RespCode::InUse and LoginDelay are refusals of a proven login (the sink's claim, made
  // before the upstream was asked).
  void onCredentialsFailed(RespCode code, std::string_view reason);
  void onMaildropClaimed(MaildropClaim claim);
  // The answer to MaildropSink::confirmUpdate: false applies nothing (-ERR [SYS/TEMP]).
  void onUpdateConfirmed(bool confirmed);
  void onUpstreamConnected();
  void onUpstreamFailed(std::string_view reason);
  void onUpstreamTlsReady() { client_.onTlsReady(); }
  void feedUpstream(std::string_view data) { client_.feed(data); }
  void onUpstreamClosed(std::string_view reason);
  void onUpstreamTimeout();

  // True while an upstream reply is awaited (the command timer runs).
  bool awaitingUpstream() const;
  // True until the upstream greeting arrived: that wait belongs to
  // connecting (connect_timeout), not to a command.
  bool awaitingGreeting() const;
  // A read-ahead holds its limit: stop reading the upstream until this turns false (the
  // client asked for the message, or for something else).
  bool readAheadFull() const { return readAhead_.full(); }

  // The first TEXT window of TOP n k (k > 0); later windows double, up to
  // kMaxTopWindow.
  static constexpr std::uint64_t kFirstTopWindow = 64 * 1024;
  static constexpr std::uint64_t kMaxTopWindow = 4 * 1024 * 1024;
  // A body of unexpected size waiting for the existence check is kept up to
  // this; a longer one is fetched again once the check passed.
  static constexpr std::size_t kMaxHeldBody = 64 * 1024;

 private:
  enum class Op : std::uint8_t {
    Idle,
    Resolving,
    Connecting,
    Reusing,  // a pooled connection was adopted; its NOOP check runs
    LoggingIn,
    Claiming,        // logged in; waiting for the sink's claimMaildrop answer
    FindMoveTarget,  // LIST for the folder with move_to's special-use attribute
    Select,
    Snapshot,
    Stable,  // the snapshot is taken; the message-id fields of uidl_format are being had
    Open,    // the snapshot is served; nothing in flight
    Fetch,
    Update,
    Closed,
  };
  // RETR and TOP 0 take one FETCH; TOP n k>0 takes the header, then TEXT
  // windows until the server has its lines.
  //
  // A body whose size differs from the snapshot's RFC822.SIZE may be a
  // server's substitute for a message another client expunged (Courier), or
  // the real message with an inexact size (Exchange): Noop and Exists confirm
  // the UID still exists before anything is sent.
  enum class FetchPhase : std::uint8_t { Whole, Header, TextWindow, Noop, Exists };
  // UIDVALIDITY is asked for first (STATUS), so that a change nobody announced deletes nothing.
  enum class UpdateStep : std::uint8_t { CheckUidValidity, Store, Expunge, Copy, Move };
  // Stable UIDLs: the server's ids (EMAILID, X-GM-MSGID), then the map's entries for the
  // current UIDVALIDITY, and only when some are missing: every entry, the missing messages'
  // facts, and the new entries written.
  enum class StablePhase : std::uint8_t { ServerIds, MapGet, MapLoad, Facts, MapPut };

  // ImapClientEvents.
  void onLoggedIn() override;
  void onLoginFailed(ImapLoginFailure failure) override;
  void onUntagged(const ImapEvent& event) override;
  void onBody(const ImapEvent& event) override;
  void onCompleted(const ImapEvent& tagged) override;
  void onBroken(std::string_view reason) override;

  void openFailed(const MaildropError& error);
  void startSession();  // the claim was granted: LIST for move_to, SELECT
  void findMoveTarget();
  void moveTargetListed(const ImapEvent& tagged);
  void sendSelect(bool condStore = true);
  void sendSnapshot();
  void sendFullListing();
  void sendDeletedSearch();
  void listPresentOrServe();
  void searched(const ImapEvent& event);
  void snapshotFetched(const ImapEvent& event);
  void snapshotCompleted();
  void enterOpen();
  void finishOpen();
  // Stable UIDLs (imap_maildrop_stable.cpp).
  void startStable();
  void stableServerIds(const ImapEvent& event);
  void startMapGet();
  void mapGot(UidlMapStore::Status status, std::vector<UidlRecord> entries);
  void mapLoaded(UidlMapStore::Status status, std::vector<UidlRecord> entries);
  void stableFactsBody(const ImapEvent& event);
  void stableFactsFetched(const ImapEvent& event);
  void stableCompleted(const ImapEvent& tagged);
  void assignFromMap();
  void mapPut(UidlMapStore::Status status);
  void stableDegraded(std::string_view reason);
  void finishStable();
  void forgetExpunged();
  bool uidlFromFields(std::string& out, std::size_t index, std::string_view stable) const;
  std::optional<std::size_t> indexOfUid(std::uint32_t uid) const;
  // A callback from the UIDL map still concerns this session in this phase.
  std::function<bool()> stableStillWaiting(StablePhase phase);
  void startFetch(std::size_t index, std::optional<std::uint64_t> topLines);
  void readAheadOver(bool cut);
  void runAfterReadAhead();
  void publishSnapshot();
  void updateCache();
  void sendFetch(std::string_view items);
  std::string_view retrItems() const;  // RETR's FETCH items: PEEK unless mark_seen_on_retr
  void fetchCompleted(const ImapEvent& tagged);
  void windowCompleted(const ImapEvent& tagged);
  void endMessage();
  void startHold(std::uint64_t literalSize);
  bool releaseHold();
  void brokenLiteral();
  void verifyStep(const ImapEvent& tagged);
  void applyUpdate();  // confirmed: plan the steps for effectivePolicy_ and start them
  void nextUpdateStep();
  void updateStepFailed(const ImapEvent& tagged);
  void statusChecked(const ImapEvent& event);
  void uidValidityChecked(const ImapEvent& tagged);
  // The folder's UIDVALIDITY is `now`, no longer the session's; returns the log line's text.
  std::string markUidValidityChanged(std::uint64_t now, std::string_view when);
  // QUIT applies nothing: the log says why and names the UIDs, the client gets -ERR [SYS/TEMP].
  void refuseUpdate(std::string_view why, std::string clientText, std::string reason);
  void refuseUidValidityChanged(std::string_view why);
  void upstreamBroken(std::string_view reason);
  void resetSnapshot();
  // Reusing failed (NOOP refused, BYE, EOF, timeout): drop that connection, open a fresh one.
  void reuseFailed(std::string_view reason);
  // Hands the idle connection to the sink's pool; false when it cannot or will not keep it.
  bool parkUpstream();

  ImapMaildropOptions options_;
  MaildropSink& sink_;
  MaildropEvents* events_ = nullptr;
  ImapClient client_;
  Op op_ = Op::Idle;
  UpstreamCredentials upstream_;  // the password only until it was sent
  bool bearerRetried_ = false;    // a refused token was renewed once this login

  // Snapshot.
  std::uint32_t exists_ = 0;
  std::uint64_t snapshotLimit_ = 0;  // FETCH responses accepted in the snapshot
  std::uint32_t uidValidity_ = 0;
  bool uidValidityChanged_ = false;
  std::vector<std::uint32_t> uids_;
  std::vector<std::uint64_t> sizes_;
  // How the snapshot is being had: a full listing, or a cached one refreshed by the changes
  // since its HIGHESTMODSEQ and, when the counts say something was expunged, the present UIDs.
  // Without mod-sequences: the messages above the cached ones (NewSince), then the \Deleted set
  // (Deleted), then, when the counts say so, the present UIDs.
  enum class SnapshotPhase : std::uint8_t { Full, Changes, Presence, NewSince, Deleted };
  SnapshotPhase snapshotPhase_ = SnapshotPhase::Full;
  std::vector<CachedMessage> listing_;         // every message, \Deleted ones too; until Open
  std::vector<ReportedMessage> reported_;      // Changes: what CHANGEDSINCE reported
  std::vector<std::uint32_t> present_;         // Presence: the UIDs listed
  std::vector<std::uint32_t> deletedUids_;     // Deleted: what UID SEARCH DELETED returned
  std::uint32_t newSinceUid_ = 0;              // NewSince: the highest cached UID
  bool searchSeen_ = false;                    // Deleted: a well-formed * SEARCH arrived
  bool searchUnusable_ = false;                // Deleted: malformed, or more UIDs than EXISTS
  std::optional<std::uint64_t> selectModSeq_;  // SELECT's HIGHESTMODSEQ
  std::optional<std::uint32_t> selectUidNext_;
  std::string cacheKey_;          // empty: the snapshot cache is not used this session
  bool publish_ = false;          // the snapshot covers the whole mailbox at selectModSeq_
  bool fromCache_ = false;        // served from the cache, for the log
  bool selectCondStore_ = false;  // the SELECT in flight asked for CONDSTORE

  // The fetch in progress.
  std::size_t fetchIndex_ = 0;
  bool fetchIsTop_ = false;
  FetchPhase phase_ = FetchPhase::Whole;
  bool bodySeen_ = false;          // this FETCH already delivered its body
  bool ignoringBody_ = false;      // a body that is not the one asked for
  bool emptyBodyPending_ = false;  // an empty literal whose meaning the tagged reply decides
  bool begun_ = false;             // onMessageBegin was sent
  bool ended_ = false;             // onMessageEnd was sent
  bool enough_ = false;            // the server needs no more content
  bool textEnded_ = false;         // the last window reached the end of the body
  std::uint64_t textOffset_ = 0;
  std::uint64_t window_ = 0;
  std::uint64_t windowReceived_ = 0;
  // Nothing of a body is released until its first bytes are in: a server
  // that breaks its literal sends its own ")" CRLF and our tag there.
  bool holding_ = false;
  std::size_t heldNeed_ = 0;
  std::string held_;  // at most kMaxHeldBody octets
  std::uint64_t literalSize_ = 0;
  bool sizeMismatch_ = false;  // this body must wait for the existence check
  bool verifying_ = false;     // the check is running; the body is held
  bool heldOverflow_ = false;  // the body did not fit: fetch it again if it exists
  bool uidConfirmed_ = false;  // the check saw the UID
  bool sizeAccepted_ = false;  // the UID exists: serve whatever size comes

  // Read-ahead. While one runs, events_ points at readAhead_ and liveEvents_ at the server.
  MaildropEvents* liveEvents_ = nullptr;
  ReadAheadRecording readAhead_{[this](bool cut) { readAheadOver(cut); }};
  // What the client asked for while a read-ahead it did not want was still running.
  enum class AfterReadAhead : std::uint8_t { Nothing, Fetch, Update };
  AfterReadAhead after_ = AfterReadAhead::Nothing;
  std::size_t afterIndex_ = 0;
  std::optional<std::uint64_t> afterTopLines_;
  std::vector<std::size_t> afterUpdate_;

  // UPDATE.
  DeletePolicy effectivePolicy_ = DeletePolicy::Flag;
  // Where Move puts messages: move_to itself, or the folder LIST named for its special-use
  // attribute, as the server spelled it (never the attribute).
  std::string moveTarget_;
  MailboxForm moveTargetForm_ = MailboxForm::Utf8;
  std::string updateSet_;  // the marked UIDs, as an IMAP set
  std::vector<std::uint32_t> updateUids_;
  std::uint32_t updateCount_ = 0;
  std::vector<UpdateStep> updateSteps_;
  std::size_t updateStep_ = 0;
  bool confirmingUpdate_ = false;                   // waiting for onUpdateConfirmed
  std::optional<std::uint64_t> statusUidValidity_;  // CheckUidValidity: what STATUS said

  // Stable UIDLs, when uidl_format uses %{emailid}, %{gmmsgid} or %{stable}.
  StablePhase stablePhase_ = StablePhase::ServerIds;
  std::vector<std::string> uidlTexts_;  // the served UIDLs, one per message, once Open
  std::vector<std::string> emailIds_;   // until Open: EMAILID per message ("" none)
  std::vector<std::optional<std::uint64_t>> gmMsgIds_;  // until Open
  std::vector<std::string> mapUidls_;    // until Open: the map's UIDL per message ("" none)
  std::vector<std::uint32_t> allUids_;   // until Open: every UID listed, \Deleted ones too
  std::vector<std::size_t> missing_;     // until Open: indexes the map has no entry for
  std::vector<uidl::MatchFacts> facts_;  // per missing_ entry
  std::vector<UidlRecord> stored_;       // MapLoad: every entry of the maildrop
  std::optional<uidl::HeaderFactsParser> factsParser_;
  bool factsBodySeen_ = false;
  bool candidates_ = false;   // MapLoad: entries of another UIDVALIDITY or an import exist
  bool listedWhole_ = false;  // the snapshot listed every message (no max_messages cut)
  // The map was wanted but could not be read or written: UIDLs may not be the ones the client
  // knows, so QUIT deletes nothing.
  bool mapDegraded_ = false;
  UidlMapStore::Mailbox mapMailbox_;
  // Bumped whenever a pending map callback stops being wanted; alive_ outlives no callback.
  std::uint64_t stableRequest_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace popbridge::protocol
