#include "protocol/bridge/session.h"

#include <string>

namespace popbridge::protocol {
namespace {

ImapMaildropOptions maildropOptions(const SessionOptions& options) {
  ImapMaildropOptions result;
  result.client.startTls = options.upstreamStartTls;
  result.client.login = options.upstreamLogin;
  result.client.tagPrefix = options.upstreamTagPrefix;
  if (options.forwardClient) {
    // RFC 2971 names no fields for this; these are the ones Dovecot (from
    // login_trusted_networks) and others that follow it take.
    const ClientEndpoints& e = *options.forwardClient;
    result.client.id = {{"x-originating-ip", e.clientIp},
                        {"x-originating-port", std::to_string(e.clientPort)},
                        {"x-connected-ip", e.localIp},
                        {"x-connected-port", std::to_string(e.localPort)}};
  }
  result.mailbox = options.mailbox;
  result.readAheadLimit = options.readAheadLimit;
  result.snapshotCache = options.snapshotCache;
  result.snapshotScope = options.snapshotScope;
  result.uidlMap = options.uidlMap;
  return result;
}

Pop3ServerOptions serverOptions(const SessionOptions& options) {
  Pop3ServerOptions result;
  result.tlsActive = options.tlsActive;
  result.stlsAvailable = options.stlsAvailable;
  result.allowPlaintextAuth = options.allowPlaintextAuth;
  result.maxBadCommands = options.maxBadCommands;
  result.loginDelaySeconds = options.loginDelaySeconds;
  return result;
}

}  // namespace

Pop3Session::Pop3Session(SessionOptions options, SessionSink& sink)
    : maildrop_(maildropOptions(options), sink, sink),
      server_(serverOptions(options), sink, maildrop_) {
  maildrop_.setEvents(server_);
}

}  // namespace popbridge::protocol
