#include "proxy/readiness.h"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace popbridge::proxy {

UniqueFd::UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(std::exchange(other.fd_, -1));
  return *this;
}

void UniqueFd::reset(int fd) noexcept {
  int old = std::exchange(fd_, fd);
  if (old >= 0) ::close(old);
}

ReadinessNotifier ReadinessNotifier::fromEnvironment() {
  const char* name = std::getenv("NOTIFY_SOCKET");
  return ReadinessNotifier(name ? std::string_view(name) : std::string_view());
}

ReadinessNotifier::ReadinessNotifier(std::string_view socketName) : socketName_(socketName) {
  if (socketName.empty()) return;
  address_.sun_family = AF_UNIX;
  constexpr std::size_t kPathRoom = sizeof address_.sun_path;
  if (socketName.front() == '@') {
    // Abstract namespace: a leading NUL, then the name; the length says where it ends.
    if (socketName.size() > kPathRoom) {
      error_ = "NOTIFY_SOCKET " + socketName_ + ": too long for a socket address";
      return;
    }
    address_.sun_path[0] = '\0';
    std::memcpy(address_.sun_path + 1, socketName.data() + 1, socketName.size() - 1);
  } else if (socketName.front() == '/') {
    if (socketName.size() >= kPathRoom) {
      error_ = "NOTIFY_SOCKET " + socketName_ + ": too long for a socket address";
      return;
    }
    std::memcpy(address_.sun_path, socketName.data(), socketName.size());
  } else {
    error_ = "NOTIFY_SOCKET " + socketName_ + ": neither an absolute path nor '@' and a name";
    return;
  }
  // A path counts its terminating NUL (address_ was zeroed); an abstract name has none.
  const bool abstract = socketName.front() == '@';
  addressLength_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socketName.size() +
                                          (abstract ? 0 : 1));
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    error_ = "NOTIFY_SOCKET " + socketName_ + ": socket: " + std::strerror(errno);
    return;
  }
  // Opened once at startup, so a process out of descriptors can still say STOPPING=1.
  fd_ = std::move(fd);
}

int ReadinessNotifier::notify(std::string_view state) const noexcept {
  if (!fd_) return 0;
  for (;;) {
    ssize_t sent = ::sendto(fd_.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                            reinterpret_cast<const sockaddr*>(&address_), addressLength_);
    if (sent >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

}  // namespace popbridge::proxy
