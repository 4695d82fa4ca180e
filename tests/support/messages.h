#pragma once

#include <cstddef>
#include <string>
#include <vector>

// Sample messages with the edge cases a POP3-to-IMAP bridge has to carry byte for byte. Every
// function is deterministic (same arguments, same bytes), so tests can rebuild the expected value
// instead of storing it. Line ends are CRLF unless the case is about something else.
namespace popbridge::test {

// From/To/Subject/Message-ID/Date headers and a body of exactly `bodyBytes` bytes (text lines
// ending in CRLF; only a 1-byte body has no line end). Messages differ by `index`.
std::string simpleMessage(int index, std::size_t bodyBytes = 200);

// Body lines ".", "..", ".leading dot", "...", ". " and a line that is just ".\r\n" in the middle
// of the body, which is what POP3 dot-stuffing must protect.
std::string dotLinesMessage();

// Every line ends in a bare LF (as written by some MDAs).
std::string bareLfMessage();

// Raw 8-bit bytes in headers and body: UTF-8 and Latin-1, no MIME encoding.
std::string eightBitMessage();

// multipart/mixed with a text part and a base64 attachment of `attachmentBytes` decoded bytes.
std::string mimeAttachmentMessage(std::size_t attachmentBytes);

// Exactly `bytes` bytes (at least 512): headers, then numbered CRLF lines of 76 characters.
std::string bigMessage(std::size_t bytes);

// A NUL byte in the body (Dovecot serves it as 0x80 in BODY[]; old Outlook hangs on NUL).
std::string nulByteMessage();

// The last body line has no line end, so a POP3 server must add CRLF before the terminator.
std::string noFinalNewlineMessage();

// Headers only: the blank separator line is the last thing in the message.
std::string emptyBodyMessage();

// One body line of `lineBytes` characters (plus CRLF), longer than RFC 5322's 998 limit.
std::string longLineMessage(std::size_t lineBytes = 5000);

struct NamedMessage {
  std::string name;
  std::string bytes;
};
// All edge cases above (small sizes), for table-driven tests.
std::vector<NamedMessage> edgeCaseMessages();

// What Dovecot 2.3.19 serves for a stored message (Maildir file or APPEND), as observed:
// - both protocols turn every LF that has no CR before it into CRLF; bare CR, "\r\r\n" and 8-bit
//   bytes pass unchanged; RFC822.SIZE and POP3 LIST count the served bytes;
// - IMAP BODY[] serves NUL as 0x80 (BINARY[] keeps it); POP3 RETR sends NUL unchanged;
// - POP3 RETR adds CRLF before the terminator when the message does not end in a line end (the
//   added CRLF is not counted in LIST); IMAP leaves such a message as it is.
// For kPop3Retr the result is what a client gets after unstuffing and removing ".\r\n".
enum class DovecotView { kImapBody, kPop3Retr };
std::string dovecotServedBytes(const std::string& stored,
                               DovecotView view = DovecotView::kImapBody);

}  // namespace popbridge::test
