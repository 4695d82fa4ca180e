#include "protocol/bridge/session.h"

namespace popbridge::protocol {
namespace {

ImapMaildropOptions maildropOptions(const SessionOptions& options) {
  ImapMaildropOptions result;
  result.client.startTls = options.upstreamStartTls;
  result.client.login = options.upstreamLogin;
  result.mailbox = options.mailbox;
  return result;
}

Pop3ServerOptions serverOptions(const SessionOptions& options) {
  Pop3ServerOptions result;
  result.tlsActive = options.tlsActive;
  result.stlsAvailable = options.stlsAvailable;
  result.allowPlaintextAuth = options.allowPlaintextAuth;
  result.maxBadCommands = options.maxBadCommands;
  return result;
}

}  // namespace

Pop3Session::Pop3Session(SessionOptions options, SessionSink& sink)
    : maildrop_(maildropOptions(options), sink, sink), server_(serverOptions(options), sink, maildrop_) {
  maildrop_.setEvents(server_);
}

}  // namespace popbridge::protocol
