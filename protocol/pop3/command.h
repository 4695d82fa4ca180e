#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// Every command a POP3 client can send (RFC 1939, 2449, 2595, 5034), plus the
// pseudo-command for a line received while a SASL exchange expects a response.
// Whether a verb is allowed in the current state is the session's decision;
// the parser only checks syntax.
enum class Pop3Verb : std::uint8_t {
  User,
  Pass,
  Apop,
  Auth,
  Capa,
  Stls,
  Stat,
  List,
  Uidl,
  Retr,
  Top,
  Dele,
  Rset,
  Noop,
  Quit,
  Last,
  SaslResponse,
};

// "USER", "PASS", ... and "SASL" for SaslResponse.
std::string_view verbName(Pop3Verb verb);

struct Pop3Command {
  Pop3Verb verb{};
  // USER: the name. PASS: the rest of the line after the single separator,
  // inner and trailing spaces kept (RFC 1939 allows spaces in passwords).
  // APOP: the name. AUTH: the mechanism, upper-cased; empty when AUTH has no
  // argument (the session then lists the mechanisms). SaslResponse: the whole
  // line without its line end.
  std::string arg;
  // APOP: the digest. AUTH: the initial response, verbatim ("=" is the empty
  // response, RFC 5034).
  std::string arg2;
  // LIST/UIDL: optional. RETR/TOP/DELE: always present and >= 1.
  std::optional<std::uint32_t> msn;
  // TOP's line count; may be huge (fetchmail sends TOP n 99999999).
  std::uint64_t lines = 0;

  friend bool operator==(const Pop3Command&, const Pop3Command&) = default;
};

}  // namespace popbridge::protocol
