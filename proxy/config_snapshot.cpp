#include "proxy/config_snapshot.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "proxy/log.h"

namespace popbridge::proxy {

std::unique_ptr<TlsContexts> buildTlsContexts(const config::Config& config, std::string& error) {
  auto contexts = std::make_unique<TlsContexts>();
  for (const auto& listener : config.listeners) {
    if (listener.tls == config::ListenerTls::None) {
      contexts->listeners.push_back(nullptr);
      continue;
    }
    auto context = TlsServerContext::create(listener.certificate, listener.privateKey,
                                            listener.minTlsVersion, error, listener.ciphers);
    if (!context) {
      error = "listener " + listener.address + ": " + error;
      return nullptr;
    }
    // What a client can negotiate is otherwise invisible until one fails to.
    logLine(LogLevel::Info, "listener " + listener.address + " accepts " + context->policy());
    contexts->listeners.push_back(std::move(context));
  }
  if (config.upstream.tls != config::UpstreamTls::None) {
    contexts->upstream =
        TlsClientContext::create(config.upstream.caFile, config.upstream.verifyCertificate,
                                 config.upstream.minTlsVersion, error);
    if (!contexts->upstream) {
      error = "upstream: " + error;
      return nullptr;
    }
  }
  return contexts;
}

std::string listenerKey(const config::ListenerConfig& listener) {
  // "::0" and "::" are one address: compare what the kernel would bind.
  unsigned char bytes[sizeof(in6_addr)] = {};
  char text[INET6_ADDRSTRLEN] = {};
  const bool v6 = listener.host.find(':') != std::string::npos;
  std::string host = listener.host;
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, listener.host.c_str(), bytes) == 1 &&
      ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, text, sizeof text) != nullptr) {
    host = text;
  }
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(listener.port);
}

UniqueFd bindListenerSocket(const config::ListenerConfig& lc, bool reusePort, std::string& error) {
  sockaddr_storage address{};
  bool v6 = lc.host.find(':') != std::string::npos;
  int rc = v6 ? uv_ip6_addr(lc.host.c_str(), lc.port, reinterpret_cast<sockaddr_in6*>(&address))
              : uv_ip4_addr(lc.host.c_str(), lc.port, reinterpret_cast<sockaddr_in*>(&address));
  if (rc != 0) {
    error = "listener " + lc.address + ": bad address";
    return UniqueFd();
  }
  // Our own socket, so SO_REUSEPORT can be set before bind (libuv 1.44 has no flag for it).
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    error = "listener " + lc.address + ": socket: " + std::strerror(errno);
    return UniqueFd();
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reusePort) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  // "[::]" and "0.0.0.0" may both be configured; keep the v6 socket v6-only.
  if (v6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t length = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    error = "listener " + lc.address + ": cannot bind: " + std::strerror(errno);
    return UniqueFd();
  }
  // listen() here too: it is where a clash with another SO_REUSEPORT socket shows, and a reload
  // must see every such failure before it changes anything.
  if (::listen(fd.get(), 511) != 0) {
    error = "listener " + lc.address + ": cannot listen: " + std::strerror(errno);
    return UniqueFd();
  }
  return fd;
}

namespace {

// "key=value" tokens of one --check-config summary line, by key. Values may be quoted (with
// spaces inside) or followed by a note in parentheses, e.g. "0 (unlimited)".
std::map<std::string, std::string> summaryTokens(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool quoted = false;
  int depth = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      word += c;
      if (c == '\\' && i + 1 < line.size()) {
        word += line[++i];
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (c == '"') quoted = true;
    if (c == '(') ++depth;
    if (c == ')' && depth > 0) --depth;
    if (c == ' ' && depth == 0) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
      continue;
    }
    word += c;
  }
  if (!word.empty()) words.push_back(std::move(word));
  std::map<std::string, std::string> tokens;
  std::string last;
  for (const std::string& w : words) {
    auto eq = w.find('=');
    if (eq == std::string::npos || w.front() == '"') {
      if (last.empty()) {
        tokens["address"] = w;  // "listener[0]: 0.0.0.0:110 ...", "upstream: host:993 ..."
      } else {
        tokens[last] += " " + w;
      }
      continue;
    }
    last = w.substr(0, eq);
    tokens[last] = w.substr(eq + 1);
  }
  return tokens;
}

// The summary's lines by their label ("server", "upstream", "mailbox", "listener[0]"...).
std::map<std::string, std::string> summaryLines(const config::Config& config) {
  std::map<std::string, std::string> lines;
  std::string all = config::summarize(config);
  std::size_t start = 0;
  while (start < all.size()) {
    std::size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    std::string_view line = std::string_view(all).substr(start, end - start);
    auto colon = line.find(": ");
    if (colon != std::string_view::npos) {
      lines[std::string(line.substr(0, colon))] = std::string(line.substr(colon + 2));
    }
    start = end + 1;
  }
  return lines;
}

void diffTokens(const std::string& section, std::string_view before, std::string_view after,
                std::vector<std::string>& out) {
  auto a = summaryTokens(before);
  auto b = summaryTokens(after);
  for (const auto& [key, value] : b) {
    auto it = a.find(key);
    if (it == a.end()) {
      out.push_back(section + "." + key + " = " + value);
    } else if (it->second != value) {
      out.push_back(section + "." + key + " " + it->second + " -> " + value);
    }
  }
  for (const auto& [key, value] : a) {
    if (!b.contains(key)) out.push_back(section + "." + key + " no longer set");
  }
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out += separator;
    out += part;
  }
  return out;
}

// The summary's line of one account (its mailbox settings among them).
std::string accountLine(const config::AccountConfig& account) {
  config::Config alone;
  alone.accounts.push_back(account);
  auto lines = summaryLines(alone);
  return lines["account[0]"];
}

}  // namespace

std::string describeChanges(const config::Config& before, const config::Config& after) {
  std::vector<std::string> changes;
  auto a = summaryLines(before);
  auto b = summaryLines(after);
  for (const char* section : {"server", "upstream", "mailbox"}) {
    diffTokens(section, a[section], b[section], changes);
  }

  std::map<std::string, const config::ListenerConfig*> oldListeners, newListeners;
  std::map<std::string, std::string> oldLines, newLines;
  for (std::size_t i = 0; i < before.listeners.size(); ++i) {
    oldListeners[listenerKey(before.listeners[i])] = &before.listeners[i];
    oldLines[listenerKey(before.listeners[i])] = a["listener[" + std::to_string(i) + "]"];
  }
  for (std::size_t i = 0; i < after.listeners.size(); ++i) {
    newListeners[listenerKey(after.listeners[i])] = &after.listeners[i];
    newLines[listenerKey(after.listeners[i])] = b["listener[" + std::to_string(i) + "]"];
  }
  std::vector<std::string> added, removed;
  for (const auto& [key, listener] : newListeners) {
    if (!oldListeners.contains(key)) {
      added.push_back(listener->address);
    } else {
      std::vector<std::string> listenerChanges;
      diffTokens("listener " + listener->address, oldLines[key], newLines[key], listenerChanges);
      std::erase_if(listenerChanges,
                    [](const std::string& c) { return c.find(".address ") != std::string::npos; });
      changes.insert(changes.end(), listenerChanges.begin(), listenerChanges.end());
    }
  }
  for (const auto& [key, listener] : oldListeners) {
    if (!newListeners.contains(key)) removed.push_back(listener->address);
  }
  if (!added.empty()) changes.push_back("listeners added: " + join(added, ", "));
  if (!removed.empty()) changes.push_back("listeners removed: " + join(removed, ", "));

  unsigned accountsAdded = 0, accountsRemoved = 0, accountsChanged = 0;
  for (const auto& account : after.accounts) {
    const config::AccountConfig* old = before.findAccount(account.user);
    if (old == nullptr) {
      ++accountsAdded;
    } else if (old->passwordHash != account.passwordHash ||
               old->upstreamUser != account.upstreamUser || old->oauth2 != account.oauth2 ||
               old->upstreamPasswordFile != account.upstreamPasswordFile ||
               old->upstreamPassword != account.upstreamPassword ||
               accountLine(*old) != accountLine(account)) {
      ++accountsChanged;
    }
  }
  for (const auto& account : before.accounts) {
    if (after.findAccount(account.user) == nullptr) ++accountsRemoved;
  }
  if (accountsAdded + accountsRemoved + accountsChanged > 0) {
    changes.push_back("accounts: " + std::to_string(accountsAdded) + " added, " +
                      std::to_string(accountsRemoved) + " removed, " +
                      std::to_string(accountsChanged) + " changed");
  }
  if (changes.empty()) return "no setting changed; certificate, key and CA files re-read";
  return join(changes, "; ") + "; certificate, key and CA files re-read";
}

ReloadPlan planReload(const ConfigSnapshot& running, config::LoadResult loaded, unsigned workers) {
  ReloadPlan plan;
  for (const auto& error : loaded.errors) plan.errors.push_back(error.toString());
  plan.warnings = std::move(loaded.warnings);
  if (!loaded.ok()) {
    if (plan.errors.empty()) plan.errors.push_back("the configuration could not be loaded");
    return plan;
  }
  config::Config next = std::move(*loaded.config);
  const config::Config& now = running.config;

  // Only a restart can change these; say so rather than pretend.
  if (next.server.workers != now.server.workers) {
    plan.warnings.push_back("server.workers: changed from " + std::to_string(now.server.workers) +
                            " to " + std::to_string(next.server.workers) +
                            ", which needs a restart; keeping " +
                            std::to_string(now.server.workers));
    next.server.workers = now.server.workers;
  }
  if (next.server.logFormat != now.server.logFormat) {
    plan.warnings.push_back(
        "server.log_format: changed to " + std::string(config::toString(next.server.logFormat)) +
        ", which needs a restart; keeping " + std::string(config::toString(now.server.logFormat)));
    next.server.logFormat = now.server.logFormat;
  }
  if (next.upstream.snapshotCacheMaxMessages != now.upstream.snapshotCacheMaxMessages) {
    // The cache is one for the process, sized at start; snapshot_cache itself may change.
    plan.warnings.push_back("upstream.snapshot_cache_max_messages: changed from " +
                            std::to_string(now.upstream.snapshotCacheMaxMessages) + " to " +
                            std::to_string(next.upstream.snapshotCacheMaxMessages) +
                            ", which needs a restart; keeping " +
                            std::to_string(now.upstream.snapshotCacheMaxMessages));
    next.upstream.snapshotCacheMaxMessages = now.upstream.snapshotCacheMaxMessages;
  }
  if (next.metrics.address != now.metrics.address ||
      next.metrics.maxConnections != now.metrics.maxConnections ||
      next.metrics.readyzCache != now.metrics.readyzCache ||
      next.metrics.healthzStale != now.metrics.healthzStale) {
    // The admin listener runs on a thread of its own, started once with these settings.
    plan.warnings.push_back(
        "metrics: the [metrics] table changed, which needs a restart; keeping " +
        (now.metrics.address.empty() ? std::string("it off") : "it on " + now.metrics.address));
    next.metrics = now.metrics;
  }
  if (next.state != now.state) {
    // Each worker holds its Redis connection (or the embedded store) for the process's life.
    plan.warnings.push_back(
        "state: the [state] table (or its password file) changed, which needs a restart; "
        "keeping the running one");
    next.state = now.state;
  }
  if (next.oauth2 != now.oauth2) {
    // The token service holds the identities, their TLS contexts and cached tokens; a half
    // switch would have accounts of the new file log in with tokens of the old one.
    plan.errors.push_back(
        "oauth2: the [oauth2.NAME] tables (or a client secret file) changed, which needs a "
        "restart: popbridge keeps its token service for the life of the process");
  }
  if (!next.upstream.verifyCertificate && next.upstream.tls != config::UpstreamTls::None &&
      now.upstream.verifyCertificate) {
    plan.warnings.push_back(
        "upstream certificate verification is OFF (verify_certificate = false)");
  }
  if (!plan.errors.empty()) return plan;

  std::string error;
  auto tls = buildTlsContexts(next, error);
  if (!tls) {
    plan.errors.push_back(error);
    return plan;
  }

  std::set<std::string> runningKeys;
  for (const auto& listener : now.listeners) runningKeys.insert(listenerKey(listener));
  plan.sockets.resize(workers);
  for (const auto& listener : next.listeners) {
    std::string key = listenerKey(listener);
    if (runningKeys.contains(key)) continue;
    for (unsigned w = 0; w < workers; ++w) {
      UniqueFd fd = bindListenerSocket(listener, workers > 1, error);
      if (!fd) {
        plan.errors.push_back(error);
        plan.sockets.clear();  // closes what was bound so far
        return plan;
      }
      plan.sockets[w].emplace(key, std::move(fd));
    }
  }

  plan.changes = describeChanges(now, next);
  auto snapshot = std::make_shared<ConfigSnapshot>();
  snapshot->config = std::move(next);
  snapshot->tls = std::move(tls);
  snapshot->generation = running.generation + 1;
  plan.snapshot = std::move(snapshot);
  return plan;
}

}  // namespace popbridge::proxy
