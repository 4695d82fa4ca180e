#include "config/file_reading.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "config/message_text.h"

namespace popbridge::config {

bool checkReadable(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot read " + quote(path) + ": " + errnoText(errno);
    return false;
  }
  struct stat info {};
  const bool isDirectory = ::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode);
  ::close(fd);
  if (isDirectory) {
    error = "cannot read " + quote(path) + ": it is a directory";
    return false;
  }
  return true;
}

bool readSmallFile(const std::string& path, std::size_t limit, std::string& out,
                   std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot read " + quote(path) + ": " + errnoText(errno);
    return false;
  }
  out.clear();
  std::array<char, 8192> buffer;
  bool ok = true;
  while (true) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      error = "cannot read " + quote(path) + ": " + errnoText(errno);
      ok = false;
      break;
    }
    if (n == 0) break;
    out.append(buffer.data(), static_cast<std::size_t>(n));
    if (out.size() > limit) {
      error = quote(path) + " is larger than " + std::to_string(limit) + " bytes";
      ok = false;
      break;
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace popbridge::config
