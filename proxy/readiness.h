#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <string>
#include <string_view>

namespace popbridge::proxy {

// Owns one file descriptor and closes it when destroyed.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept;
  UniqueFd& operator=(UniqueFd&& other) noexcept;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Closes the descriptor held so far and takes `fd`.
  void reset(int fd = -1) noexcept;
  // Hands the descriptor over (e.g. to libuv); this one holds none any more.
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

// Tells a service manager (systemd Type=notify, or anything speaking the same protocol) how
// startup and shutdown go, as sd_notify(3) does: one AF_UNIX datagram such as "READY=1" or
// "STOPPING=1" to the socket named by $NOTIFY_SOCKET. A name starting with '@' is in the
// abstract namespace. Without a socket name every notify() does nothing.
class ReadinessNotifier {
 public:
  // Disabled: notify() does nothing.
  ReadinessNotifier() = default;
  // Reads $NOTIFY_SOCKET.
  static ReadinessNotifier fromEnvironment();
  // An explicit socket name; empty means disabled. An unusable name leaves the notifier
  // disabled, with the reason in error().
  explicit ReadinessNotifier(std::string_view socketName);

  ReadinessNotifier(ReadinessNotifier&&) noexcept = default;
  ReadinessNotifier& operator=(ReadinessNotifier&&) noexcept = default;

  bool enabled() const { return static_cast<bool>(fd_); }
  const std::string& socketName() const { return socketName_; }
  // Why a named socket cannot be used; empty when it can (or when none was named).
  const std::string& error() const { return error_; }

  // Sends `state` (newline-separated assignments, e.g. "READY=1") as one datagram without
  // blocking. Returns 0, or the errno of the failed send. Safe to call from libuv callbacks:
  // it neither throws nor allocates.
  int notify(std::string_view state) const noexcept;

 private:
  std::string socketName_;
  sockaddr_un address_{};
  socklen_t addressLength_ = 0;
  UniqueFd fd_;
  std::string error_;
};

}  // namespace popbridge::proxy
