#pragma once

// The files a config names are read at load, so that a missing or unreadable one is a load
// error with its key path, not a failure at the first connection.

#include <cstddef>
#include <string>

namespace popbridge::config {

// Opens the file to prove it is readable now (and is not a directory). On failure `error` is
// the whole message, e.g. "cannot read \"x.pem\": No such file or directory".
bool checkReadable(const std::string& path, std::string& error);

// Reads a whole file of at most `limit` bytes into `out`; false with `error` set when it
// cannot, or when the file is larger.
bool readSmallFile(const std::string& path, std::size_t limit, std::string& out,
                   std::string& error);

}  // namespace popbridge::config
