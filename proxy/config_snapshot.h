#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/readiness.h"
#include "proxy/tls_context.h"

namespace popbridge::proxy {

// TLS contexts built from one configuration and shared read-only.
struct TlsContexts {
  std::vector<std::unique_ptr<TlsServerContext>> listeners;  // parallel to config.listeners
  std::unique_ptr<TlsClientContext> upstream;
};

// Null and an error when a certificate, key or CA file cannot be used.
std::unique_ptr<TlsContexts> buildTlsContexts(const config::Config& config, std::string& error);

// One configuration as loaded, with the TLS contexts built from its files: immutable once made,
// and shared. Every session holds the snapshot it started under for its whole life, so a reload
// (SIGHUP) changes what new sessions get and never what a running one has.
struct ConfigSnapshot {
  config::Config config;
  std::unique_ptr<const TlsContexts> tls;
  std::uint64_t generation = 1;  // 1 at startup, one more per successful reload
};

// Which listener a socket serves: the address, however it is spelt in the file.
std::string listenerKey(const config::ListenerConfig& listener);

// A bound, listening, non-blocking socket for `listener` (SO_REUSEPORT when several workers
// share the address), or an invalid fd and `error`.
UniqueFd bindListenerSocket(const config::ListenerConfig& listener, bool reusePort,
                            std::string& error);

// Everything a reload (SIGHUP) prepares away from the worker loops.
struct ReloadPlan {
  // Each line complete: "file:line:col: key: message" for the file's errors.
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
  std::shared_ptr<const ConfigSnapshot> snapshot;  // set when errors is empty
  // Per worker: sockets of the listeners new in this configuration, by listenerKey().
  std::vector<std::map<std::string, UniqueFd>> sockets;
  std::string changes;  // for the log line "configuration reloaded: ..."
};

// Checks `loaded` against what runs, builds its TLS contexts and binds its new listeners (one
// socket per worker). Settings that only a restart can change are handled here: server.workers
// and server.log_format keep their running values with a warning; changed [oauth2.NAME] tables
// refuse the reload (the token service and its cached tokens are built once).
ReloadPlan planReload(const ConfigSnapshot& running, config::LoadResult loaded, unsigned workers);

// What differs between two configurations, for the log: one phrase per changed setting, never a
// secret (password hashes and upstream passwords are only said to have changed).
std::string describeChanges(const config::Config& before, const config::Config& after);

}  // namespace popbridge::proxy
