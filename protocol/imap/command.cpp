#include "protocol/imap/command.h"

#include <algorithm>
#include <cassert>

#include "protocol/base64.h"
#include "protocol/imap/syntax.h"

namespace popbridge::protocol {
namespace {

// Modified UTF-7 uses ',' where base64 has '/'.
constexpr char kBase64Alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool isQuotable(std::string_view s) {
  // Only printable ASCII: TAB and 8-bit are legal in some quoted forms but not in all servers'
  // eyes, and a literal is always safe.
  return std::all_of(s.begin(), s.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c >= 0x20 && c < 0x7f;
  });
}

bool isAtom(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char ch) {
    return isAstringChar(static_cast<unsigned char>(ch));
  });
}

// Servers limit the length of a command line, before login more tightly than after (Dovecot to
// about 1 KB); a literal is the form meant for long strings (RFC 3501 4.3). Two quoted strings of
// this size with every character escaped still fit in a 1 KB line.
constexpr std::size_t kMaxQuotedString = 200;

// Accumulates segments; a synchronizing literal closes the current segment.
class Writer {
 public:
  Writer(std::string tag, std::string_view verb, bool literalPlus) : literalPlus_(literalPlus) {
    cur_.reserve(64);
    cur_.append(tag).append(" ").append(verb);
    cmd_.tag = std::move(tag);
  }

  Writer& sensitive() {
    cmd_.sensitive = true;
    return *this;
  }
  Writer& raw(std::string_view s) {
    assert(s.find_first_of("\r\n") == std::string_view::npos);
    cur_.append(s);
    return *this;
  }
  Writer& sp() {
    cur_.push_back(' ');
    return *this;
  }
  Writer& astring(std::string_view s) {
    if (isAtom(s) && s.size() <= kMaxQuotedString) {
      cur_.append(s);
      return *this;
    }
    return string(s);
  }
  Writer& string(std::string_view s) {
    if (isQuotable(s) && s.size() <= kMaxQuotedString) {
      cur_.push_back('"');
      for (char ch : s) {
        if (ch == '"' || ch == '\\') cur_.push_back('\\');
        cur_.push_back(ch);
      }
      cur_.push_back('"');
      return *this;
    }
    return literal(s);
  }
  Writer& literal(std::string_view s) {
    cur_.push_back('{');
    cur_.append(std::to_string(s.size()));
    if (literalPlus_) {
      cur_.append("+}\r\n");
    } else {
      cur_.append("}\r\n");
      cmd_.segments.push_back(std::move(cur_));
      cur_.clear();
    }
    cur_.append(s);
    return *this;
  }
  // Ends the current segment with CRLF without a literal (AUTHENTICATE without SASL-IR).
  Writer& breakLine() {
    cur_.append("\r\n");
    cmd_.segments.push_back(std::move(cur_));
    cur_.clear();
    return *this;
  }
  ImapCommand finish() {
    breakLine();
    return std::move(cmd_);
  }

 private:
  ImapCommand cmd_;
  bool literalPlus_;
  std::string cur_;
};

void initialResponse(Writer& w, std::string_view base64, bool saslIr) {
  if (saslIr && base64.size() <= kMaxInlineInitialResponse) {
    w.sp().raw(base64.empty() ? std::string_view("=") : base64);
  } else {
    // The server's first challenge is empty; the response is the line after it.
    w.breakLine().raw(base64);
  }
}

void appendUtf16Be(std::u16string& out, char32_t cp) {
  if (cp >= 0x10000) {
    cp -= 0x10000;
    out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
    out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
  } else {
    out.push_back(static_cast<char16_t>(cp));
  }
}

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i. Invalid or
// overlong sequences and surrogates yield U+FFFD and consume one byte.
char32_t decodeUtf8(std::string_view s, std::size_t& i, bool& valid) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  valid = true;
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  }
  if (len == 0 || i + len > s.size()) {
    valid = false;
    ++i;
    return 0xFFFD;
  }
  for (int k = 1; k < len; ++k) {
    unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) {
      valid = false;
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    valid = false;
    ++i;
    return 0xFFFD;
  }
  i += len;
  return cp;
}

void appendModifiedBase64(std::string& out, const std::u16string& units) {
  std::uint32_t acc = 0;
  int bits = 0;
  for (char16_t u : units) {
    for (int shift = 8; shift >= 0; shift -= 8) {
      acc = (acc << 8) | ((u >> shift) & 0xFF);
      bits += 8;
      while (bits >= 6) {
        bits -= 6;
        char c = kBase64Alphabet[(acc >> bits) & 0x3F];
        out.push_back(c == '/' ? ',' : c);
      }
    }
  }
  if (bits > 0) {
    char c = kBase64Alphabet[(acc << (6 - bits)) & 0x3F];
    out.push_back(c == '/' ? ',' : c);
  }
}

}  // namespace

ImapCommandBuilder::ImapCommandBuilder(std::string tagPrefix) : tagPrefix_(std::move(tagPrefix)) {
  // A tag is ASTRING-CHARs without '+'; the prefix is a constant of the caller's code.
  assert(isAtom(tagPrefix_) && tagPrefix_.find('+') == std::string::npos);
}

std::string ImapCommandBuilder::nextTag() {
  return tagPrefix_ + std::to_string(tagCounter_++);
}

ImapCommand ImapCommandBuilder::capability() {
  return Writer(nextTag(), "CAPABILITY", literalPlus_).finish();
}

ImapCommand ImapCommandBuilder::starttls() {
  return Writer(nextTag(), "STARTTLS", literalPlus_).finish();
}

ImapCommand ImapCommandBuilder::noop() {
  return Writer(nextTag(), "NOOP", literalPlus_).finish();
}

ImapCommand ImapCommandBuilder::logout() {
  return Writer(nextTag(), "LOGOUT", literalPlus_).finish();
}

ImapCommand ImapCommandBuilder::login(std::string_view user, std::string_view password) {
  Writer w(nextTag(), "LOGIN", literalPlus_);
  w.sensitive().sp().astring(user).sp().astring(password);
  return w.finish();
}

ImapCommand ImapCommandBuilder::authenticatePlain(std::string_view user,
                                                  std::string_view password) {
  std::string message;
  message.reserve(user.size() + password.size() + 2);
  message.push_back('\0');
  message.append(user);
  message.push_back('\0');
  message.append(password);

  Writer w(nextTag(), "AUTHENTICATE PLAIN", literalPlus_);
  w.sensitive();
  initialResponse(w, base64Encode(message), saslIr_);
  return w.finish();
}

ImapCommand ImapCommandBuilder::authenticate(
    std::string_view mechanism, std::optional<std::string_view> initialResponseBase64) {
  Writer w(nextTag(), "AUTHENTICATE", literalPlus_);
  w.sensitive().sp().raw(mechanism);
  if (initialResponseBase64) initialResponse(w, *initialResponseBase64, saslIr_);
  return w.finish();
}

ImapCommand ImapCommandBuilder::select(std::string_view mailboxUtf8, bool readOnly,
                                       bool condStore) {
  Writer w(nextTag(), readOnly ? "EXAMINE" : "SELECT", literalPlus_);
  w.sp().astring(encodeMailboxName(mailboxUtf8));
  if (condStore) w.sp().raw("(CONDSTORE)");
  return w.finish();
}

ImapCommand ImapCommandBuilder::status(std::string_view mailboxUtf8, std::string_view items) {
  Writer w(nextTag(), "STATUS", literalPlus_);
  w.sp().astring(encodeMailboxName(mailboxUtf8)).sp().raw(items);
  return w.finish();
}

ImapCommand ImapCommandBuilder::uidSearch(std::string_view criteria) {
  Writer w(nextTag(), "UID SEARCH", literalPlus_);
  w.sp().raw(criteria);
  return w.finish();
}

ImapCommand ImapCommandBuilder::fetch(std::string_view seqSet, std::string_view items) {
  Writer w(nextTag(), "FETCH", literalPlus_);
  w.sp().raw(seqSet).sp().raw(items);
  return w.finish();
}

ImapCommand ImapCommandBuilder::uidFetch(std::string_view uidSet, std::string_view items) {
  Writer w(nextTag(), "UID FETCH", literalPlus_);
  w.sp().raw(uidSet).sp().raw(items);
  return w.finish();
}

ImapCommand ImapCommandBuilder::uidStore(std::string_view uidSet, std::string_view op,
                                         std::string_view flagList) {
  Writer w(nextTag(), "UID STORE", literalPlus_);
  w.sp().raw(uidSet).sp().raw(op).sp().raw(flagList);
  return w.finish();
}

ImapCommand ImapCommandBuilder::uidExpunge(std::string_view uidSet) {
  Writer w(nextTag(), "UID EXPUNGE", literalPlus_);
  w.sp().raw(uidSet);
  return w.finish();
}

ImapCommand ImapCommandBuilder::uidMove(std::string_view uidSet, std::string_view mailbox,
                                        MailboxForm form) {
  return uidTransfer("UID MOVE", uidSet, mailbox, form);
}

ImapCommand ImapCommandBuilder::uidCopy(std::string_view uidSet, std::string_view mailbox,
                                        MailboxForm form) {
  return uidTransfer("UID COPY", uidSet, mailbox, form);
}

ImapCommand ImapCommandBuilder::uidTransfer(std::string_view verb, std::string_view uidSet,
                                            std::string_view mailbox, MailboxForm form) {
  Writer w(nextTag(), verb, literalPlus_);
  w.sp().raw(uidSet).sp();
  if (form == MailboxForm::Wire) {
    w.astring(mailbox);
  } else {
    w.astring(encodeMailboxName(mailbox));
  }
  return w.finish();
}

ImapCommand ImapCommandBuilder::list(std::string_view reference, std::string_view pattern,
                                     bool specialUseOnly) {
  Writer w(nextTag(), "LIST", literalPlus_);
  if (specialUseOnly) w.raw(" (SPECIAL-USE)");
  w.sp().astring(reference).sp().astring(pattern);
  return w.finish();
}

ImapCommand ImapCommandBuilder::id(std::span<const std::pair<std::string, std::string>> fields) {
  Writer w(nextTag(), "ID", literalPlus_);
  if (fields.empty()) {
    w.raw(" NIL");
    return w.finish();
  }
  w.raw(" (");
  bool firstField = true;
  for (const auto& [name, value] : fields) {
    if (!firstField) w.sp();
    firstField = false;
    w.string(name).sp().string(value);
  }
  w.raw(")");
  return w.finish();
}

std::string formatUidSet(std::span<const std::uint32_t> uids) {
  std::vector<std::uint32_t> sorted(uids.begin(), uids.end());
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string out;
  std::size_t i = 0;
  while (i < sorted.size()) {
    std::size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!out.empty()) out.push_back(',');
    out.append(std::to_string(sorted[i]));
    if (j > i) {
      out.push_back(':');
      out.append(std::to_string(sorted[j]));
    }
    i = j + 1;
  }
  return out;
}

bool isValidUtf8(std::string_view text) {
  std::size_t i = 0;
  bool valid = true;
  while (i < text.size()) {
    decodeUtf8(text, i, valid);
    if (!valid) return false;
  }
  return true;
}

std::string encodeMailboxName(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size() + 8);
  std::u16string pending;
  auto flush = [&] {
    if (pending.empty()) return;
    out.push_back('&');
    appendModifiedBase64(out, pending);
    out.push_back('-');
    pending.clear();
  };
  std::size_t i = 0;
  while (i < utf8.size()) {
    bool valid = true;
    char32_t cp = decodeUtf8(utf8, i, valid);
    if (cp >= 0x20 && cp <= 0x7e) {
      flush();
      if (cp == '&') {
        out.append("&-");
      } else {
        out.push_back(static_cast<char>(cp));
      }
    } else {
      appendUtf16Be(pending, cp);
    }
  }
  flush();
  return out;
}

}  // namespace popbridge::protocol
