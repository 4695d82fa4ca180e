#pragma once

// Debian installs OpenSSL 3's headers in /usr/include and BoringSSL's in
// /usr/include/android. A wrong include order compiles and links silently and
// then mixes struct layouts at run time, so every translation unit that touches
// <openssl/...> includes this header first and fails the build instead.
#include <openssl/base.h>

#ifndef OPENSSL_IS_BORINGSSL
#error "popbridge must be built against BoringSSL (android-libboringssl-dev), not OpenSSL"
#endif

#include <string>

namespace popbridge::proxy {

// Name of the TLS library as the library itself reports it at run time ("BoringSSL").
std::string tlsLibraryVersion();

// Path of the libssl that is actually mapped into this process, e.g.
// "/usr/lib/x86_64-linux-gnu/android/libssl.so.0". Empty if it cannot be found.
std::string loadedLibsslPath();

}  // namespace popbridge::proxy
