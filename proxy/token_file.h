#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace popbridge::proxy {

// The refresh token of an [oauth2.NAME] identity, kept in refresh_token_file.

// Reads the token (one line, trailing CR/LF stripped, at most 16 KiB). False with `error` when
// the file is missing, unreadable or empty; the error names the file, never its content.
// A symlink is followed (Kubernetes Secret volumes are made of them).
bool readTokenFile(const std::string& path, std::string& token, std::string& error);

// What tells a changed file from the one read before, without reading it: `oauth login` or an
// admin's copy replaces it (new inode), an editor may rewrite it in place (size, mtime).
struct FileStamp {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t size = 0;
  std::int64_t mtimeNs = 0;
  bool operator==(const FileStamp&) const = default;
};
// nullopt when the file cannot be stat'ed (missing).
std::optional<FileStamp> stampTokenFile(const std::string& path);

// Replaces the file atomically: a temporary file in the same directory, mode 0600, written and
// fsynced, then renamed over the old one, and the directory fsynced. A crash leaves the old
// token or the new one, never a torn file. False with `error` on failure (the old file stays).
// Run as root (`sudo popbridge oauth login`), the new file keeps the owner of the old one, or
// takes the directory's, so that the service user can still read and replace it.
bool writeTokenFile(const std::string& path, const std::string& token, std::string& error);

}  // namespace popbridge::proxy
