#pragma once

// The POP3 server's only view of mail storage: RFC 1939's "maildrop".
//
// Every operation is asynchronous: the maildrop answers through
// MaildropEvents, possibly from inside the call. The snapshot taken at open()
// is frozen for the session, so message numbers never move (RFC 1939
// section 6). Indexes are 0-based (POP3 message number - 1).
//
// Nothing here knows how the mail is stored: bridge/imap_maildrop.h puts an
// IMAP mailbox behind it, tests put a vector of strings.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/pop3/reply.h"

namespace popbridge::protocol {

// A failure, in POP3 terms.
struct MaildropError {
  RespCode code = RespCode::None;
  std::string text;    // the -ERR text the client sees
  std::string reason;  // why the session ends, when it does (see onUpdateFailed)
};

class MaildropEvents {
 public:
  virtual ~MaildropEvents() = default;

  // open(): the snapshot is ready.
  virtual void onMaildropOpened() = 0;
  // open(): no maildrop. RespCode::Auth means the credentials were refused,
  // which the server answers only after its failed-login delay.
  virtual void onMaildropOpenFailed(const MaildropError& error) = 0;

  // fetch(): the message exists and its content follows.
  virtual void onMessageBegin() = 0;
  // Content in order, exactly the message's octets. Returns false once the
  // server needs no more (TOP's lines are out), so the maildrop can stop
  // reading early.
  virtual bool onMessageData(std::string_view data) = 0;
  // All requested content was delivered.
  virtual void onMessageEnd() = 0;
  // The fetch is over (after onMessageEnd); the maildrop takes new work.
  virtual void onFetchDone() = 0;
  // Before onMessageBegin only: the message cannot be read; the maildrop
  // takes new work.
  virtual void onMessageFailed(const MaildropError& error) = 0;
  // After onMessageBegin: the content stops short and cannot be completed.
  virtual void onMessageCut(std::string_view reason) = 0;

  // update(): the deletions were applied; `removed` counts them (0 when the
  // policy keeps messages). The storage is released.
  virtual void onUpdated(std::uint32_t removed) = 0;
  // update(): nothing certain was applied; error.reason ends the session.
  virtual void onUpdateFailed(const MaildropError& error) = 0;

  // The storage went away (connection lost, timeout) outside of a fetch's
  // content or an update's answer. Whatever was in progress is over.
  virtual void onMaildropLost(std::string_view reason) = 0;
};

class Maildrop {
 public:
  virtual ~Maildrop() = default;

  // Authenticates `user` and takes the snapshot. The password is not kept
  // beyond the login.
  virtual void open(std::string_view user, std::string_view password) = 0;

  // The snapshot, valid from onMaildropOpened until close().
  virtual std::size_t messageCount() const = 0;
  virtual std::uint64_t messageSize(std::size_t index) const = 0;
  virtual void appendUidl(std::string& out, std::size_t index) const = 0;

  // Streams message `index`: all of it, or (topLines set) its header, the
  // blank line and enough of the body for that many lines; the server cuts
  // the exact line count, the maildrop only avoids reading far beyond it.
  virtual void fetch(std::size_t index, std::optional<std::uint64_t> topLines) = 0;

  // A hint: the client is likely to ask for message `index` next (it RETRs in order). The
  // maildrop may start fetching it now; a fetch() of it is then answered from what came, and
  // any other request first finishes that work. Nothing is reported for the hint itself.
  virtual void readAhead(std::size_t index) { (void)index; }

  // RFC 1939 UPDATE: removes the messages at `indexes`, then releases the
  // storage.
  virtual void update(std::span<const std::size_t> indexes) = 0;

  // Releases the storage without applying anything.
  virtual void close() = 0;
};

}  // namespace popbridge::protocol
