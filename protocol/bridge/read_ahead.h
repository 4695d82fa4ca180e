#pragma once

// What a fetch the client has not asked for yet told, kept until the client asks (RETR of
// that message) or asks for something else (see ImapMaildrop::readAhead).
//
// The read-ahead runs ImapMaildrop's own fetch code with this recording in place of the POP3
// server: every check a RETR makes (the broken-literal guard, the size-mismatch check with
// NOOP and UID FETCH (UID), an expunged UID) runs unchanged, and the POP3 server later hears
// exactly what it would have heard live, only later. Content is kept as raw message octets
// (before dot-stuffing); the owner stops reading the upstream once full().

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/pop3/maildrop.h"

namespace popbridge::protocol {

class ReadAheadRecording final : public MaildropEvents {
 public:
  // `over` runs when the fetch reports its end (done, failed or cut), from inside the
  // maildrop's last call for that fetch; `cut` tells a cut.
  explicit ReadAheadRecording(std::function<void(bool cut)> over) : over_(std::move(over)) {}

  // A new recording for message `index`; content up to `limit` octets before full().
  void start(std::size_t index, std::size_t limit);
  // Forgets everything (and the memory it held).
  void clear();
  // Keeps no more content; `over` still runs when the fetch ends.
  void discard();

  // Recording or over, and neither replayed nor cleared.
  bool active() const { return active_; }
  bool discarding() const { return active_ && discarding_; }
  // The fetch ended (the maildrop takes new work).
  bool over() const { return done_ || failure_.has_value(); }
  std::size_t index() const { return index_; }
  // Holds `limit` octets or more of a fetch still running: stop reading the upstream.
  bool full() const { return active_ && !discarding_ && !over() && body_.size() >= limit_; }

  // Delivers everything recorded to `to`, in order, and ends the recording first, so that
  // `to` may start the next fetch from inside.
  void replayTo(MaildropEvents& to);

  // MaildropEvents: only a fetch's events come here.
  void onMaildropOpened() override {}
  void onMaildropOpenFailed(const MaildropError&) override {}
  void onMessageBegin() override { begun_ = true; }
  bool onMessageData(std::string_view data) override;
  void onMessageEnd() override { ended_ = true; }
  void onFetchDone() override;
  void onMessageFailed(const MaildropError& error) override;
  void onMessageCut(std::string_view reason) override;
  void onUpdated(std::uint32_t) override {}
  void onUpdateFailed(const MaildropError&) override {}
  void onMaildropLost(std::string_view) override {}

 private:
  void reset();

  std::function<void(bool cut)> over_;
  bool active_ = false;
  bool discarding_ = false;
  std::size_t index_ = 0;
  std::size_t limit_ = 0;
  bool begun_ = false;
  bool ended_ = false;
  bool done_ = false;
  std::optional<MaildropError> failure_;
  std::string body_;
};

}  // namespace popbridge::protocol
