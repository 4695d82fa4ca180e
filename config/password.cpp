#include "config/password.h"

#include <argon2.h>
#include <sys/random.h>

#include <array>
#include <cerrno>
#include <optional>

#include "protocol/text.h"

namespace popbridge::config {
namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kTagBytes = 32;

// libargon2's own lower bounds (validate_inputs in argon2/src/core.c).
constexpr std::size_t kMinSaltBytes = ARGON2_MIN_SALT_LENGTH;
constexpr std::size_t kMinTagBytes = ARGON2_MIN_OUTLEN;
// Far above anything a password tool writes; keeps a pasted blob from being decoded.
constexpr std::size_t kMaxEncodedLength = 512;

bool fillRandom(std::uint8_t* data, std::size_t size) {
  std::size_t filled = 0;
  while (filled < size) {
    const ssize_t n = ::getrandom(data + filled, size - filled, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    filled += static_cast<std::size_t>(n);
  }
  return true;
}

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Unpadded standard base64 as libargon2 writes it. Returns the decoded length, or nullopt when
// libargon2's decoder would refuse the text (bad characters, impossible length, stray bits).
std::optional<std::size_t> base64DecodedLength(std::string_view text) {
  unsigned accumulator = 0;
  unsigned bits = 0;
  std::size_t bytes = 0;
  for (char c : text) {
    const int value = base64Value(c);
    if (value < 0) return std::nullopt;
    accumulator = (accumulator << 6) | static_cast<unsigned>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      ++bytes;
      accumulator &= (1u << bits) - 1;
    }
  }
  if (bits > 4 || accumulator != 0) return std::nullopt;
  return bytes;
}

// libargon2 refuses leading zeros in its parameters, so "m=019456" must fail here too.
std::optional<std::uint32_t> parseParameter(std::string_view text) {
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  return protocol::parseUint32(text);
}

bool consume(std::string_view& text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix) return false;
  text.remove_prefix(prefix.size());
  return true;
}

// Reads digits up to (not including) `stop` or the end.
std::optional<std::uint32_t> consumeNumber(std::string_view& text, char stop) {
  const std::size_t end = text.find(stop);
  const std::string_view digits = text.substr(0, end);
  text.remove_prefix(digits.size());
  return parseParameter(digits);
}

struct ParsedHash {
  argon2_type type = Argon2_id;
};

std::optional<ParsedHash> parseHash(std::string_view encoded, std::string& error) {
  static constexpr std::string_view kShape =
      "expected an argon2 hash like \"$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>\" as printed "
      "by `popbridge hash-password`";
  if (encoded.size() > kMaxEncodedLength) {
    error = std::string(kShape) + ", got " + std::to_string(encoded.size()) + " characters";
    return std::nullopt;
  }
  ParsedHash parsed;
  std::string_view rest = encoded;
  if (consume(rest, "$argon2id$")) {
    parsed.type = Argon2_id;
  } else if (consume(rest, "$argon2i$")) {
    parsed.type = Argon2_i;
  } else if (consume(rest, "$argon2d$")) {
    parsed.type = Argon2_d;
  } else {
    error = std::string(kShape);
    return std::nullopt;
  }
  if (consume(rest, "v=")) {
    const auto version = consumeNumber(rest, '$');
    if (!version || (*version != ARGON2_VERSION_10 && *version != ARGON2_VERSION_13) ||
        !consume(rest, "$")) {
      error = std::string(kShape) + "; the version must be v=16 or v=19";
      return std::nullopt;
    }
  }
  std::optional<std::uint32_t> memory, time, lanes;
  if (consume(rest, "m=")) memory = consumeNumber(rest, ',');
  if (memory && consume(rest, ",t=")) time = consumeNumber(rest, ',');
  if (time && consume(rest, ",p=")) lanes = consumeNumber(rest, '$');
  if (!lanes || !consume(rest, "$")) {
    error = std::string(kShape) + "; the parameters must read m=<KiB>,t=<passes>,p=<lanes>";
    return std::nullopt;
  }
  if (*time < ARGON2_MIN_TIME || *lanes < ARGON2_MIN_LANES || *memory < 8 * *lanes) {
    error = "argon2 parameters below libargon2's minimum (t >= 1, p >= 1, m >= 8 * p)";
    return std::nullopt;
  }
  if (*memory > kMaxHashMemoryKiB || *time > kMaxHashTimeCost || *lanes > kMaxHashLanes) {
    error =
        "argon2 cost too high for a login path (limits: m <= " + std::to_string(kMaxHashMemoryKiB) +
        ", t <= " + std::to_string(kMaxHashTimeCost) + ", p <= " + std::to_string(kMaxHashLanes) +
        ")";
    return std::nullopt;
  }
  const std::size_t saltEnd = rest.find('$');
  if (saltEnd == std::string_view::npos) {
    error = std::string(kShape) + "; the salt and hash parts are missing";
    return std::nullopt;
  }
  const auto saltBytes = base64DecodedLength(rest.substr(0, saltEnd));
  const auto tagBytes = base64DecodedLength(rest.substr(saltEnd + 1));
  if (!saltBytes || !tagBytes) {
    error = std::string(kShape) + "; the salt and hash must be unpadded base64";
    return std::nullopt;
  }
  if (*saltBytes < kMinSaltBytes || *tagBytes < kMinTagBytes) {
    error = "argon2 salt or hash too short (at least " + std::to_string(kMinSaltBytes) + " and " +
            std::to_string(kMinTagBytes) + " bytes)";
    return std::nullopt;
  }
  return parsed;
}

}  // namespace

std::string hashPassword(std::string_view password, const PasswordHashCost& cost) {
  std::array<std::uint8_t, kSaltBytes> salt;
  if (!fillRandom(salt.data(), salt.size())) return {};
  std::string encoded(argon2_encodedlen(cost.timeCost, cost.memoryKiB, cost.lanes, kSaltBytes,
                                        kTagBytes, Argon2_id),
                      '\0');
  const int rc = argon2id_hash_encoded(cost.timeCost, cost.memoryKiB, cost.lanes, password.data(),
                                       password.size(), salt.data(), salt.size(), kTagBytes,
                                       encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return {};
  // argon2_encodedlen() counts the terminating NUL and is an upper bound.
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool verifyPassword(std::string_view encodedHash, std::string_view password) {
  std::string error;
  const auto parsed = parseHash(encodedHash, error);
  if (!parsed) return false;
  const std::string terminated(encodedHash);  // argon2_verify wants a C string
  return argon2_verify(terminated.c_str(), password.data(), password.size(), parsed->type) ==
         ARGON2_OK;
}

bool checkPasswordHash(std::string_view encodedHash, std::string& error) {
  return parseHash(encodedHash, error).has_value();
}

std::string_view dummyPasswordHash() {
  // Made once with hashPassword() from 32 random bytes that were then thrown away.
  return "$argon2id$v=19$m=19456,t=2,p=1$/wFgunALXD2M9Vd0cDVrQw$gQDkc57TrSxu5Ta4XW98tqq/"
         "aZWf0lWPBsIhMLcjA4w";
}

}  // namespace popbridge::config
