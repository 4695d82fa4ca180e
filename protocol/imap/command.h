#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace popbridge::protocol {

// A SASL initial response longer than this (in base64) is not put on the AUTHENTICATE line even
// with SASL-IR: it goes on a line of its own after the server's "+", where servers take long
// responses (OAuth2 tokens) that their command line limit would refuse.
inline constexpr std::size_t kMaxInlineInitialResponse = 768;

// A command ready to send. Every segment except the last ends with a synchronizing literal
// header "{n}\r\n" (or, for AUTHENTICATE without SASL-IR, with the command line itself): the
// sender must wait for a "+" continuation before sending the next segment. segments[0] starts
// with the tag; the last segment ends with CRLF.
struct ImapCommand {
  std::string tag;
  std::vector<std::string> segments;
  // Set when the segments carry a password or SASL credentials. Such a command must never be
  // logged verbatim; log `tag` and the verb instead.
  bool sensitive = false;
};

// How a mailbox argument is given: UTF-8, which the builder encodes in modified UTF-7, or the
// name exactly as the server spelled it in a LIST response, which goes back unchanged (only
// quoted, or sent as a literal, as its bytes require).
enum class MailboxForm : std::uint8_t { Utf8, Wire };

// Builds IMAP4rev1 / IMAP4rev2 client commands (RFC 3501, RFC 9051). Arguments that are strings
// on the wire (user, password, mailbox, ID fields) are encoded as atom, quoted string or literal,
// whichever is the simplest that can carry them; strings over 200 octets always as literals.
// Arguments documented as "verbatim" (sets, search criteria, fetch items, store operations) are
// protocol syntax chosen by the caller and are copied as they are; they must not contain CR or LF.
class ImapCommandBuilder {
 public:
  explicit ImapCommandBuilder(std::string tagPrefix = "P");

  // RFC 7888: literals become "{n+}\r\n" and are sent inline, so every command is one segment.
  void setLiteralPlus(bool on) { literalPlus_ = on; }
  // RFC 4959: the initial SASL response goes on the AUTHENTICATE line.
  void setSaslIr(bool on) { saslIr_ = on; }
  // The number the next tag gets; a pooled connection carries it into its next session so that
  // no tag repeats on one connection.
  std::uint64_t nextTagNumber() const { return tagCounter_; }
  void setNextTagNumber(std::uint64_t number) { tagCounter_ = number; }
  const std::string& tagPrefix() const { return tagPrefix_; }
  bool literalPlus() const { return literalPlus_; }
  bool saslIr() const { return saslIr_; }

  ImapCommand capability();
  ImapCommand starttls();
  ImapCommand noop();
  ImapCommand logout();
  ImapCommand login(std::string_view user, std::string_view password);
  // SASL PLAIN (RFC 4616) with an empty authorization identity. With SASL-IR one segment
  // "tag AUTHENTICATE PLAIN <b64>\r\n"; without it, or when the response is longer than
  // kMaxInlineInitialResponse, two segments, "tag AUTHENTICATE PLAIN\r\n" and "<b64>\r\n", the
  // second to be sent after the server's "+".
  ImapCommand authenticatePlain(std::string_view user, std::string_view password);
  // "tag AUTHENTICATE <mechanism>", with SASL-IR (RFC 4959) followed by the initial response:
  // base64, or "=" when it is empty. An initial response longer than kMaxInlineInitialResponse,
  // or one given without SASL-IR, is a second segment, sent after the server's "+". Later
  // responses are lines of their own, which the client sends as each "+" challenge arrives.
  ImapCommand authenticate(std::string_view mechanism,
                           std::optional<std::string_view> initialResponseBase64);
  // EXAMINE when readOnly. The name is UTF-8 and is sent in modified UTF-7. condStore adds
  // RFC 7162's "(CONDSTORE)" parameter, which makes the server report HIGHESTMODSEQ.
  ImapCommand select(std::string_view mailboxUtf8, bool readOnly = false, bool condStore = false);
  // STATUS (RFC 3501 6.3.10); items verbatim, e.g. "(UIDVALIDITY)".
  ImapCommand status(std::string_view mailboxUtf8, std::string_view items);
  ImapCommand uidSearch(std::string_view criteria);                       // criteria verbatim
  ImapCommand fetch(std::string_view seqSet, std::string_view items);     // both verbatim
  ImapCommand uidFetch(std::string_view uidSet, std::string_view items);  // both verbatim
  // op e.g. "+FLAGS.SILENT", flagList e.g. "(\\Deleted)"; all verbatim.
  ImapCommand uidStore(std::string_view uidSet, std::string_view op, std::string_view flagList);
  ImapCommand uidExpunge(std::string_view uidSet);
  ImapCommand uidMove(std::string_view uidSet, std::string_view mailbox,
                      MailboxForm form = MailboxForm::Utf8);
  ImapCommand uidCopy(std::string_view uidSet, std::string_view mailbox,
                      MailboxForm form = MailboxForm::Utf8);
  // LIST (RFC 3501 6.3.8); reference and pattern go as they are (a pattern's wildcards are its
  // own syntax). specialUseOnly adds RFC 6154's selection option, "LIST (SPECIAL-USE) ...": only
  // the special-use mailboxes, with their attributes; for servers advertising SPECIAL-USE.
  ImapCommand list(std::string_view reference, std::string_view pattern,
                   bool specialUseOnly = false);
  // RFC 2971; no fields -> "ID NIL".
  ImapCommand id(std::span<const std::pair<std::string, std::string>> fields);

 private:
  std::string nextTag();
  ImapCommand uidTransfer(std::string_view verb, std::string_view uidSet, std::string_view mailbox,
                          MailboxForm form);
  std::string tagPrefix_;
  std::uint64_t tagCounter_ = 1;
  bool literalPlus_ = false;
  bool saslIr_ = false;
};

// Sorted, de-duplicated, compressed UID set: {9, 1, 3, 2, 10, 7, 3} -> "1:3,7,9:10". Empty -> "".
std::string formatUidSet(std::span<const std::uint32_t> uids);

// RFC 3501 5.1.3 modified UTF-7: printable ASCII except '&' stays as is, '&' becomes "&-", any
// other character becomes "&<modified base64 of UTF-16BE>-". Invalid UTF-8 sequences are
// encoded as U+FFFD, so the result is always a valid name (callers should validate UTF-8 earlier
// to report such names; see isValidUtf8).
std::string encodeMailboxName(std::string_view utf8);

bool isValidUtf8(std::string_view text);

// No IMAP string form (RFC 3501 literals exclude NUL) and no SASL PLAIN message can carry a NUL
// byte. The builder sends such a string anyway, and the server refuses it; callers that want a
// local error check this first.
inline bool isImapSendable(std::string_view text) {
  return text.find('\0') == std::string_view::npos;
}

}  // namespace popbridge::protocol
