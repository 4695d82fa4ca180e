#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// Extended response codes: RFC 2449 ("[IN-USE]", "[LOGIN-DELAY]") and
// RFC 3206 ("[AUTH]", "[SYS/TEMP]", "[SYS/PERM]").
enum class RespCode : std::uint8_t { None, Auth, SysTemp, SysPerm, InUse, LoginDelay };

// "AUTH", "SYS/TEMP", ... without brackets; empty for None.
std::string_view respCodeName(RespCode code);

// RFC 2449: a status line is at most 512 octets including CRLF.
inline constexpr std::size_t kMaxStatusLine = 512;

// Status lines. Longer text is truncated to fit kMaxStatusLine (never inside
// a UTF-8 sequence), and CR, LF and NUL in the text become spaces, so one
// call always produces exactly one line whatever the text holds.
void appendOk(std::string& out, std::string_view text);  // "+OK text\r\n", "+OK\r\n" when empty
void appendErr(std::string& out, std::string_view text,
               RespCode code = RespCode::None);  // "-ERR [SYS/TEMP] text\r\n"
std::string okReply(std::string_view text);
std::string errReply(std::string_view text, RespCode code = RespCode::None);

// One line of a multi-line reply (CAPA, LIST, UIDL). A trailing line end is
// dropped and any other CR, LF or NUL becomes a space, so the line cannot end
// the reply early; a leading '.' is doubled (RFC 1939 byte-stuffing). Lines
// are not truncated: message bodies go through DotStuffer instead, and the
// other multi-line replies are built from short items.
void appendMultiLine(std::string& out, std::string_view line);
void appendTerminator(std::string& out);  // ".\r\n"

// "+OK Capability list follows\r\n", one line per capability, ".\r\n".
std::string capaReply(std::span<const std::string> capabilities);

}  // namespace popbridge::protocol
