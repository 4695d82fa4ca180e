#include "protocol/bridge/read_ahead.h"

#include <utility>

namespace popbridge::protocol {

void ReadAheadRecording::start(std::size_t index, std::size_t limit) {
  reset();
  active_ = true;
  index_ = index;
  limit_ = limit;
}

void ReadAheadRecording::reset() {
  active_ = discarding_ = begun_ = ended_ = done_ = false;
  failure_.reset();
  body_.clear();
}

void ReadAheadRecording::clear() {
  reset();
  std::string().swap(body_);
}

void ReadAheadRecording::discard() {
  discarding_ = true;
  std::string().swap(body_);
}

bool ReadAheadRecording::onMessageData(std::string_view data) {
  // The owner pauses upstream reads once full(): what arrives beyond the limit is at most the
  // rest of the read that was being parsed.
  if (!discarding_) body_.append(data);
  return true;
}

void ReadAheadRecording::onFetchDone() {
  done_ = true;
  over_(false);
}

void ReadAheadRecording::onMessageFailed(const MaildropError& error) {
  failure_ = error;
  over_(false);
}

void ReadAheadRecording::onMessageCut(std::string_view) {
  // Nothing reached the client yet: its RETR can still get an honest -ERR instead of a cut.
  failure_ = MaildropError{RespCode::SysTemp, "Upstream connection lost, try again later.", {}};
  body_.clear();
  over_(true);
}

void ReadAheadRecording::replayTo(MaildropEvents& to) {
  const bool begun = begun_;
  const bool ended = ended_;
  const bool done = done_;
  std::optional<MaildropError> failure = std::move(failure_);
  std::string body = std::move(body_);
  reset();
  if (failure) {
    to.onMessageFailed(*failure);
    return;
  }
  if (begun) to.onMessageBegin();
  if (!body.empty()) to.onMessageData(body);
  if (ended) to.onMessageEnd();
  if (done) to.onFetchDone();
}

}  // namespace popbridge::protocol
