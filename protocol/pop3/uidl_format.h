#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {

// Turns an IMAP (UID, UIDVALIDITY) pair into a POP3 UIDL string, using a Dovecot-compatible
// template so that users moving from a Dovecot POP3 server keep their UIDLs (and their clients
// do not download everything again). Dovecot's default is "%08Xu%08Xv": 8 hex digits of the UID
// followed by 8 of the UIDVALIDITY, 16 characters in all. Dovecot's %X writes lower-case hex
// (its var_expand uses "%llx"), and so does ours: an integration test compares our UIDLs with
// Dovecot's own POP3 server on the same mailbox.
//
// Template syntax:
//   any byte 0x21..0x7E except '%'   copied as is
//   %%                               a literal '%'
//   %[0][width][X|x|d](u|v)          u = UID, v = UIDVALIDITY; X or x lower-case hex,
//                                    d or nothing decimal; 0 pads with zeros to width
// A width without the 0 flag would pad with spaces, which RFC 1939 forbids, so it is an error.
//
// Fields that survive a UIDVALIDITY change (issue 15; their values come from the caller):
//   %{emailid}                       the RFC 8474 EMAILID of the message
//   %[0][width][X|x|d]{gmmsgid}      Gmail's X-GM-MSGID (64 bits)
//   %{stable}                        the stable id: EMAILID where the server offers OBJECTID,
//                                    else X-GM-MSGID on Gmail, else the persistent map's UIDL
//                                    (protocol/uidl/stable_id.h chooses)
// A template holds at most one of the two text fields (%{emailid}, %{stable}); it gets what the
// rest of the template leaves of the 70 characters, at least kMinTextBudget. A value that does
// not fit there, or has a byte outside 0x21..0x7E, is written as "~" and 26 base32 characters of
// its SHA-256 (RFC 8474 ids never contain '~'), so every output stays a valid UIDL.
//
// parse() proves once that every possible output is 1..70 characters of 0x21..0x7E (RFC 1939
// section 7), so format() never has to check.
class UidlFormat {
 public:
  static constexpr std::size_t kMaxLength = 70;
  static constexpr std::string_view kDovecotDefault = "%08Xu%08Xv";
  // "~" + 26 base32 characters: 130 bits of SHA-256.
  static constexpr std::size_t kMinTextBudget = 27;

  // What a template may use besides the UID and UIDVALIDITY. Views are read during the call
  // only.
  struct Fields {
    std::uint32_t uid = 0;
    std::uint32_t uidValidity = 0;
    std::optional<std::string_view> emailId;
    std::optional<std::uint64_t> gmMsgId;
    std::optional<std::string_view> stable;
  };

  // Returns nullopt and a one-line reason in `error` when the template is not usable. The
  // template must contain %u: a UIDL without the UID would not be unique.
  static std::optional<UidlFormat> parse(std::string_view spec, std::string& error);

  std::string format(std::uint32_t uid, std::uint32_t uidValidity) const;
  // Appends without an intermediate string: UIDL listings run over 100,000 messages.
  // A template that uses message-id fields (usesMessageIds()) gets no values for them here, so
  // its whole output is then Dovecot's default "%08Xu%08Xv", which is also what the stable-UIDL
  // map gives a message at first sight.
  void appendTo(std::string& out, std::uint32_t uid, std::uint32_t uidValidity) const;

  // Appends the UIDL and returns true, or appends nothing and returns false when the template
  // uses a field that `fields` leaves empty (an empty text counts as missing).
  bool appendTo(std::string& out, const Fields& fields) const;
  std::optional<std::string> format(const Fields& fields) const;

  // The longest output any (uid, uidValidity) pair can produce; at most kMaxLength.
  std::size_t maxLength() const { return maxLength_; }
  // True when the template contains %v. Without it, UIDLs can repeat after a UIDVALIDITY change.
  bool usesUidValidity() const { return usesUidValidity_; }
  // True when the template uses %{emailid}, %{gmmsgid} or %{stable}.
  bool usesMessageIds() const { return usesEmailId_ || usesGmMsgId_ || usesStable_; }
  bool usesEmailId() const { return usesEmailId_; }
  bool usesGmMsgId() const { return usesGmMsgId_; }
  bool usesStable() const { return usesStable_; }
  const std::string& spec() const { return spec_; }

 private:
  enum class Field : std::uint8_t { Literal, Uid, UidValidity, EmailId, GmMsgId, Stable };
  enum class Radix : std::uint8_t { Decimal, Hex };
  struct Piece {
    Field field = Field::Literal;
    Radix radix = Radix::Decimal;
    std::uint8_t width = 0;  // zero padding; only ever with the 0 flag
    std::uint8_t literalOffset = 0;
    std::uint8_t literalLength = 0;
  };

  UidlFormat() = default;

  std::string spec_;
  std::string literals_;  // all literal text, referenced by Piece offsets
  std::vector<Piece> pieces_;
  std::size_t maxLength_ = 0;
  std::size_t textBudget_ = 0;  // room for the one text field, when there is one
  bool usesUidValidity_ = false;
  bool usesEmailId_ = false;
  bool usesGmMsgId_ = false;
  bool usesStable_ = false;
};

}  // namespace popbridge::protocol
