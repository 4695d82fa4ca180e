#include "tests/support/messages.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace popbridge::test {
namespace {

constexpr std::array<const char*, 16> kWords = {
    "alpha", "bravo",  "charlie", "delta", "echo", "foxtrot",  "golf",  "hotel",
    "india", "juliet", "kilo",    "lima",  "mike", "november", "oscar", "papa"};

// A tiny LCG keeps bodies deterministic without pulling in <random>'s unspecified distributions.
struct Lcg {
  std::uint32_t state;
  std::uint32_t next() {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  }
};

// A fixed, locale-independent RFC 5322 date, moved forward by `minutes`.
std::string rfc5322Date(int minutes) {
  static constexpr std::array<const char*, 7> kDays = {"Mon", "Tue", "Wed", "Thu",
                                                       "Fri", "Sat", "Sun"};
  // 2024-01-01 was a Monday; stay inside January so month arithmetic is not needed.
  const int totalMinutes = minutes < 0 ? 0 : minutes % (31 * 24 * 60);
  const int day = totalMinutes / (24 * 60);
  const int hour = (totalMinutes / 60) % 24;
  const int minute = totalMinutes % 60;
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s, %02d Jan 2024 %02d:%02d:00 +0000", kDays[day % 7],
                day + 1, hour, minute);
  return buffer;
}

std::string headers(const std::string& id, const std::string& subject, int dateMinutes,
                    const std::string& extra = "") {
  return "From: Sender " + id + " <sender@example.org>\r\n" +
         "To: Recipient <rcpt@example.net>\r\n" + "Subject: " + subject + "\r\n" + "Message-ID: <" +
         id + "@popbridge.test>\r\n" + "Date: " + rfc5322Date(dateMinutes) + "\r\n" + extra;
}

// Text lines of up to 72 characters plus CRLF, filling exactly `bytes` bytes.
std::string textBody(std::uint32_t seed, std::size_t bytes) {
  Lcg rng{seed};
  std::string body;
  body.reserve(bytes);
  while (body.size() < bytes) {
    const std::size_t remaining = bytes - body.size();
    if (remaining <= 2) {
      body.append(remaining == 2 ? "\r\n" : "x");
      break;
    }
    std::string line;
    while (line.size() < 60) {
      if (!line.empty()) line += ' ';
      line += kWords[rng.next() % kWords.size()];
    }
    if (line.size() + 2 > remaining) line.resize(remaining - 2);
    body += line;
    body += "\r\n";
  }
  return body;
}

std::string base64Lines(const std::string& data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::string line;
  auto flushLine = [&] {
    out += line;
    out += "\r\n";
    line.clear();
  };
  for (std::size_t i = 0; i < data.size(); i += 3) {
    const std::uint32_t b0 = static_cast<unsigned char>(data[i]);
    const std::uint32_t b1 = i + 1 < data.size() ? static_cast<unsigned char>(data[i + 1]) : 0;
    const std::uint32_t b2 = i + 2 < data.size() ? static_cast<unsigned char>(data[i + 2]) : 0;
    const std::uint32_t triple = (b0 << 16) | (b1 << 8) | b2;
    line += kAlphabet[(triple >> 18) & 63];
    line += kAlphabet[(triple >> 12) & 63];
    line += i + 1 < data.size() ? kAlphabet[(triple >> 6) & 63] : '=';
    line += i + 2 < data.size() ? kAlphabet[triple & 63] : '=';
    if (line.size() == 76) flushLine();
  }
  if (!line.empty()) flushLine();
  return out;
}

}  // namespace

std::string simpleMessage(int index, std::size_t bodyBytes) {
  const std::string id = "msg" + std::to_string(index);
  return headers(id, "Test message " + std::to_string(index), index,
                 "Content-Type: text/plain; charset=us-ascii\r\n") +
         "\r\n" + textBody(static_cast<std::uint32_t>(index) * 2654435761u + 1u, bodyBytes);
}

std::string dotLinesMessage() {
  return headers("dots", "Lines that start with dots", 1) +
         "\r\n"
         "The next line is a single dot.\r\n"
         ".\r\n"
         "..\r\n"
         ".leading dot\r\n"
         "...\r\n"
         ". \r\n"
         "A line with a dot at the end.\r\n"
         ".\r\n"
         "The message goes on after the dot line.\r\n";
}

std::string bareLfMessage() {
  return "From: Sender <sender@example.org>\n"
         "To: Recipient <rcpt@example.net>\n"
         "Subject: Bare LF line ends\n"
         "Message-ID: <bare-lf@popbridge.test>\n"
         "Date: " +
         rfc5322Date(2) +
         "\n"
         "\n"
         "Every line of this message ends in a bare LF.\n"
         ".\n"
         ".dot line\n"
         "Last line.\n";
}

std::string eightBitMessage() {
  return headers("eight-bit",
                 "Gr\xc3\xbc\xc3\x9f"
                 "e aus K\xc3\xb6ln \xe2\x9c\x93",
                 3,
                 "X-Latin1: caf\xe9 cr\xe8me br\xfbl\xe9\x65\r\n"
                 "MIME-Version: 1.0\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n") +
         "\r\n"
         "UTF-8: \xc3\xa4\xc3\xb6\xc3\xbc \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\xa7\r\n"
         "Latin-1: \xe4\xf6\xfc \xa9 \xff\r\n"
         "High bytes at line start:\r\n"
         "\x80\x81\xfe\r\n";
}

std::string mimeAttachmentMessage(std::size_t attachmentBytes) {
  std::string payload(attachmentBytes, '\0');
  Lcg rng{0x5eed};
  for (auto& byte : payload) byte = static_cast<char>(rng.next() & 0xff);
  const std::string boundary = "=_popbridge_boundary_42";
  return headers("mime", "A message with an attachment", 4,
                 "MIME-Version: 1.0\r\n"
                 "Content-Type: multipart/mixed; boundary=\"" +
                     boundary + "\"\r\n") +
         "\r\n"
         "This is a multi-part message in MIME format.\r\n"
         "\r\n--" +
         boundary +
         "\r\n"
         "Content-Type: text/plain; charset=us-ascii\r\n"
         "\r\n"
         "See the attachment.\r\n"
         "\r\n--" +
         boundary +
         "\r\n"
         "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
         "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
         "Content-Transfer-Encoding: base64\r\n"
         "\r\n" +
         base64Lines(payload) + "\r\n--" + boundary + "--\r\n";
}

std::string bigMessage(std::size_t bytes) {
  std::string message = headers("big-" + std::to_string(bytes),
                                "A big message of " + std::to_string(bytes) + " bytes", 5) +
                        "\r\n";
  if (bytes < 512 || bytes < message.size() + 2) {
    throw std::invalid_argument("bigMessage: " + std::to_string(bytes) + " bytes is too small");
  }
  message.reserve(bytes);
  // 76 characters: a line number keeps every line distinct, so a dropped or repeated chunk shows.
  char line[80];
  for (std::size_t number = 0; message.size() < bytes; ++number) {
    std::snprintf(line, sizeof line, "%010zu ", number);
    std::string text = line;
    while (text.size() < 76) text += static_cast<char>('a' + (number + text.size()) % 26);
    const std::size_t remaining = bytes - message.size();
    if (text.size() + 2 > remaining) text.resize(remaining >= 2 ? remaining - 2 : 0);
    message += text;
    message += remaining >= 2 ? "\r\n" : "x";
  }
  return message;
}

std::string nulByteMessage() {
  using namespace std::string_literals;
  return headers("nul", "A NUL byte in the body", 6) + "\r\n" +
         "Before the NUL: [\0] after it.\r\n"s + "Next line.\r\n";
}

std::string noFinalNewlineMessage() {
  return headers("no-final-newline", "No line end after the last line", 7) +
         "\r\n"
         "First line.\r\n"
         "The last line has no CRLF";
}

std::string emptyBodyMessage() {
  return headers("empty-body", "Headers only", 8) + "\r\n";
}

std::string longLineMessage(std::size_t lineBytes) {
  std::string line;
  line.reserve(lineBytes);
  for (std::size_t i = 0; i < lineBytes; ++i) line += static_cast<char>('A' + i % 26);
  return headers("long-line", "One very long line", 9) + "\r\n" + line + "\r\nShort line.\r\n";
}

std::vector<NamedMessage> edgeCaseMessages() {
  return {
      {"simple", simpleMessage(1)},
      {"dot_lines", dotLinesMessage()},
      {"bare_lf", bareLfMessage()},
      {"eight_bit", eightBitMessage()},
      {"mime_attachment", mimeAttachmentMessage(3000)},
      {"nul_byte", nulByteMessage()},
      {"no_final_newline", noFinalNewlineMessage()},
      {"empty_body", emptyBodyMessage()},
      {"long_line", longLineMessage()},
  };
}

std::string dovecotServedBytes(const std::string& stored, DovecotView view) {
  std::string served;
  served.reserve(stored.size() + stored.size() / 32 + 2);
  for (std::size_t i = 0; i < stored.size(); ++i) {
    const char c = stored[i];
    if (c == '\n' && (i == 0 || stored[i - 1] != '\r')) {
      served += "\r\n";
    } else if (c == '\0' && view == DovecotView::kImapBody) {
      served += '\x80';
    } else {
      served += c;
    }
  }
  if (view == DovecotView::kPop3Retr && (served.empty() || served.back() != '\n')) {
    served += "\r\n";
  }
  return served;
}

}  // namespace popbridge::test
