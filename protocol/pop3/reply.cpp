#include "protocol/pop3/reply.h"

namespace popbridge::protocol {

namespace {

constexpr std::string_view kCrlf = "\r\n";

bool breaksLine(char c) {
  return c == '\r' || c == '\n' || c == '\0';
}

// Appends text with line-breaking bytes replaced, cut to at most `room` bytes.
void appendSafeText(std::string& out, std::string_view text, std::size_t room) {
  if (text.size() > room) {
    std::size_t cut = room;
    // Step back over UTF-8 continuation bytes so a cut never leaves half a
    // character; a run longer than a character means it was not UTF-8.
    std::size_t back = 0;
    while (cut > 0 && back < 3 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) {
      --cut;
      ++back;
    }
    if ((static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) cut = room;
    text = text.substr(0, cut);
  }
  const std::size_t start = out.size();
  out.append(text);
  for (std::size_t i = start; i < out.size(); ++i) {
    if (breaksLine(out[i])) out[i] = ' ';
  }
}

void appendStatus(std::string& out, std::string_view status, std::string_view text, RespCode code) {
  const std::size_t lineStart = out.size();
  out.append(status);
  const std::string_view name = respCodeName(code);
  if (!name.empty()) {
    out.append(" [");
    out.append(name);
    out.push_back(']');
  }
  if (!text.empty()) {
    out.push_back(' ');
    const std::size_t used = out.size() - lineStart;
    appendSafeText(out, text, kMaxStatusLine - kCrlf.size() - used);
  }
  out.append(kCrlf);
}

}  // namespace

std::string_view respCodeName(RespCode code) {
  switch (code) {
    case RespCode::None:
      return {};
    case RespCode::Auth:
      return "AUTH";
    case RespCode::SysTemp:
      return "SYS/TEMP";
    case RespCode::SysPerm:
      return "SYS/PERM";
    case RespCode::InUse:
      return "IN-USE";
    case RespCode::LoginDelay:
      return "LOGIN-DELAY";
  }
  return {};
}

void appendOk(std::string& out, std::string_view text) {
  appendStatus(out, "+OK", text, RespCode::None);
}

void appendErr(std::string& out, std::string_view text, RespCode code) {
  appendStatus(out, "-ERR", text, code);
}

std::string okReply(std::string_view text) {
  std::string out;
  appendOk(out, text);
  return out;
}

std::string errReply(std::string_view text, RespCode code) {
  std::string out;
  appendErr(out, text, code);
  return out;
}

void appendMultiLine(std::string& out, std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (!line.empty() && line.front() == '.') out.push_back('.');
  appendSafeText(out, line, line.size());
  out.append(kCrlf);
}

void appendTerminator(std::string& out) {
  out.append(".\r\n");
}

std::string capaReply(std::span<const std::string> capabilities) {
  std::string out;
  appendOk(out, "Capability list follows");
  for (const std::string& capability : capabilities) appendMultiLine(out, capability);
  appendTerminator(out);
  return out;
}

}  // namespace popbridge::protocol
