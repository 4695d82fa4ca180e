#include "proxy/token_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "protocol/text.h"

namespace popbridge::proxy {
namespace {

constexpr std::size_t kMaxTokenFile = 16 * 1024;

std::string describeErrno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

bool readTokenFile(const std::string& path, std::string& token, std::string& error) {
  token.clear();
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    error = describeErrno("cannot open", path);
    return false;
  }
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      protocol::secureWipe(token);
      error = describeErrno("cannot read", path);
      return false;
    }
    if (n == 0) break;
    token.append(buffer, static_cast<std::size_t>(n));
    if (token.size() > kMaxTokenFile) {
      protocol::secureWipe(token);
      token.clear();
      error = path + " is larger than 16 KiB: not a refresh token";
      return false;
    }
  }
  std::memset(buffer, 0, sizeof buffer);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  bool printable =
      std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (token.empty() || !printable) {
    protocol::secureWipe(token);
    token.clear();
    error = path + (printable ? " is empty" : " holds more than one printable line");
    return false;
  }
  return true;
}

std::optional<FileStamp> stampTokenFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  FileStamp stamp;
  stamp.device = static_cast<std::uint64_t>(st.st_dev);
  stamp.inode = static_cast<std::uint64_t>(st.st_ino);
  stamp.size = static_cast<std::int64_t>(st.st_size);
  stamp.mtimeNs = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return stamp;
}

bool writeTokenFile(const std::string& path, const std::string& token, std::string& error) {
  const std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::string temp = (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (fd.get() < 0) {
    error = describeErrno("cannot create a temporary file in", dir.string());
    return false;
  }
  auto removeTemp = [&] { ::unlink(temp.c_str()); };
  if (::fchmod(fd.get(), 0600) != 0) {
    error = describeErrno("cannot chmod", temp);
    removeTemp();
    return false;
  }
  if (::geteuid() == 0) {
    struct stat owner {};
    if (::stat(path.c_str(), &owner) == 0 || ::stat(dir.c_str(), &owner) == 0) {
      if (::fchown(fd.get(), owner.st_uid, owner.st_gid) != 0) {
        error = describeErrno("cannot chown", temp);
        removeTemp();
        return false;
      }
    }
  }
  std::string content = token + "\n";
  std::size_t written = 0;
  while (written < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = describeErrno("cannot write", temp);
      protocol::secureWipe(content);
      removeTemp();
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  protocol::secureWipe(content);
  if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    error = describeErrno("cannot flush", temp);
    removeTemp();
    return false;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    error = describeErrno("cannot rename the new token over", path);
    removeTemp();
    return false;
  }
  // The rename itself is durable only once the directory is.
  Fd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd.get() >= 0) ::fsync(dirFd.get());
  return true;
}

}  // namespace popbridge::proxy
