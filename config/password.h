#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace popbridge::config {

// Local account passwords are stored as libargon2 encoded strings:
//   $argon2id$v=19$m=19456,t=2,p=1$<salt base64>$<hash base64>
//
// Cost: argon2id with t=2 passes over m=19 MiB, one lane: the OWASP password storage cheat
// sheet's baseline for argon2id. It verifies in roughly 20-40 ms on one core of current
// hardware, well under 100 ms, so a burst of logins from printers stays cheap while an offline
// guess still costs 19 MiB of memory traffic. Verification is CPU-bound and blocking: callers in
// an event loop run it on a worker thread.
struct PasswordHashCost {
  std::uint32_t timeCost = 2;
  std::uint32_t memoryKiB = 19 * 1024;
  std::uint32_t lanes = 1;
};

// Limits for hashes found in a config. Verifying a hash runs its own cost parameters, so a hash
// with m=4 GiB would turn every login into a memory exhaustion; these bound that.
inline constexpr std::uint32_t kMaxHashMemoryKiB = 256 * 1024;
inline constexpr std::uint32_t kMaxHashTimeCost = 16;
inline constexpr std::uint32_t kMaxHashLanes = 16;

// argon2id with a fresh 16-byte salt from getrandom(2) and a 32-byte tag. Returns an empty
// string only if the kernel gives no randomness or memory runs out; callers must check.
std::string hashPassword(std::string_view password, const PasswordHashCost& cost = {});

// Constant-time comparison (argon2_verify). False for a wrong password and for any hash that
// checkPasswordHash() rejects, including ones with excessive cost parameters.
bool verifyPassword(std::string_view encodedHash, std::string_view password);

// Checks the syntax and cost limits of an encoded hash without running argon2, so loading a
// config with many accounts stays fast. On failure `error` says what is wrong, never the hash.
bool checkPasswordHash(std::string_view encodedHash, std::string& error);

// A valid hash of a random, forgotten password with the default cost. Verifying a login for an
// unknown user against it takes as long as for a known user, so response times do not reveal
// which user names exist.
std::string_view dummyPasswordHash();

}  // namespace popbridge::config
