#include "proxy/boringssl_check.h"

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <fstream>

namespace popbridge::proxy {

std::string tlsLibraryVersion() {
  return OpenSSL_version(OPENSSL_VERSION);
}

namespace {

std::string libsslFromMaps() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    const auto base = path.rfind('/');
    if (path.compare(base + 1, 6, "libssl") == 0) return path;
  }
  return {};
}

}  // namespace

std::string loadedLibsslPath() {
  Dl_info info{};
  // In a non-PIE binary &SSL_new can be a canonical PLT entry inside the
  // executable, so only trust dladdr when it names a libssl.
  if (dladdr(reinterpret_cast<void*>(&SSL_new), &info) != 0 && info.dli_fname != nullptr) {
    std::string path = info.dli_fname;
    if (path.find("libssl") != std::string::npos) return path;
  }
  return libsslFromMaps();
}

}  // namespace popbridge::proxy
