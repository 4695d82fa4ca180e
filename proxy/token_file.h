#pragma once

#include <string>

namespace popbridge::proxy {

// The refresh token of an [oauth2.NAME] identity, kept in refresh_token_file.

// Reads the token (one line, trailing CR/LF stripped, at most 16 KiB). False with `error` when
// the file is missing, unreadable or empty; the error names the file, never its content.
bool readTokenFile(const std::string& path, std::string& token, std::string& error);

// Replaces the file atomically: a temporary file in the same directory, mode 0600, written and
// fsynced, then renamed over the old one, and the directory fsynced. A crash leaves the old
// token or the new one, never a torn file. False with `error` on failure (the old file stays).
bool writeTokenFile(const std::string& path, const std::string& token, std::string& error);

}  // namespace popbridge::proxy
