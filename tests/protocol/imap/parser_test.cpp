#include "protocol/imap/parser.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

namespace popbridge::protocol {
namespace {

using Kind = ImapEvent::Kind;
using Lines = std::vector<std::string>;

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string renderFetch(const FetchAttributes& f) {
  std::string out;
  if (f.uid) out += " UID=" + std::to_string(*f.uid);
  if (f.rfc822Size) out += " SIZE=" + std::to_string(*f.rfc822Size);
  if (f.flags) out += " FLAGS=(" + join(*f.flags, " ") + ")";
  if (f.modseq) out += " MODSEQ=" + std::to_string(*f.modseq);
  if (f.emailId) out += " EMAILID=" + *f.emailId;
  if (f.gmMsgId) out += " GMMSGID=" + std::to_string(*f.gmMsgId);
  return out;
}

std::string renderText(const ImapEvent& ev) {
  std::string out;
  if (ev.code) {
    out += " [" + ev.code->name;
    if (!ev.code->text.empty()) out += " " + ev.code->text;
    out += "]";
  }
  if (!ev.text.empty()) out += " " + escape(ev.text);
  if (!ev.words.empty()) out += " words=" + join(ev.words, ",");
  return out;
}

// One canonical line per event, so a case is a list of short strings.
std::string render(const ImapEvent& ev) {
  std::string status(imapStatusName(ev.status));
  switch (ev.kind) {
    case Kind::Tagged:
      return "TAGGED " + ev.tag + " " + status + renderText(ev);
    case Kind::Status:
      return "STATUS " + status + renderText(ev);
    case Kind::Continuation:
      return "CONT" + renderText(ev);
    case Kind::Capability:
      return "CAPABILITY " + join(ev.words, " ");
    case Kind::Exists:
      return "EXISTS " + std::to_string(ev.number);
    case Kind::Recent:
      return "RECENT " + std::to_string(ev.number);
    case Kind::Expunge:
      return "EXPUNGE " + std::to_string(ev.number);
    case Kind::Flags:
      return "FLAGS " + join(ev.words, " ");
    case Kind::Fetch:
      return "FETCH " + std::to_string(ev.number) + renderFetch(ev.fetch);
    case Kind::BodyBegin:
      return "BODY " + std::to_string(ev.number) + " [" + ev.section + "]" +
             (ev.origin ? "<" + std::to_string(*ev.origin) + ">" : "") + " " +
             std::to_string(ev.literalSize) + renderFetch(ev.fetch);
    case Kind::BodyChunk:
      return "DATA " + escape(ev.data);
    case Kind::BodyEnd:
      return "END " + std::to_string(ev.number);
    case Kind::List:
      return "LIST (" + join(ev.words, " ") + ") " +
             (ev.delimiter ? "'" + std::string(1, *ev.delimiter) + "'" : "NIL") + " <" +
             escape(ev.mailbox) + ">";
    case Kind::Search: {
      std::string out = "SEARCH";
      for (std::uint32_t n : ev.numbers) out += " " + std::to_string(n);
      return out;
    }
    case Kind::MailboxStatus: {
      std::string out = "MAILBOXSTATUS <" + escape(ev.mailbox) + ">";
      for (const auto& [name, value] : ev.statusItems)
        out += " " + name + "=" + std::to_string(value);
      return out;
    }
    case Kind::Other:
      return "OTHER " + (ev.number ? std::to_string(ev.number) + " " : "") + ev.text;
  }
  return "?";
}

struct Limits {
  std::size_t maxLine = 64 * 1024;
  std::size_t maxInlineLiteral = 64 * 1024;
};

// Feeds input in pieces of chunkSize bytes, the way a socket would deliver it, checking the
// contract on every call. Adjacent DATA events are merged so that any split compares equal.
Lines feed(std::string_view input, std::size_t chunkSize, Limits limits = {}) {
  ImapResponseParser parser(limits.maxLine, limits.maxInlineLiteral);
  ImapEvent ev;
  Lines out;
  std::uint64_t bodyLeft = 0;
  std::size_t offset = 0;
  do {
    std::string_view piece = input.substr(offset, std::min(chunkSize, input.size() - offset));
    offset += piece.size();
    for (;;) {
      std::size_t consumed = 12345;
      auto status = parser.parse(piece, consumed, ev);
      EXPECT_LE(consumed, piece.size());
      if (status == ImapResponseParser::Status::Error) {
        out.push_back("ERROR " + parser.error());
        const bool staysDead = parser.parse("x", consumed, ev) == ImapResponseParser::Status::Error;
        EXPECT_TRUE(staysDead);
        return out;
      }
      if (status == ImapResponseParser::Status::NeedMore) {
        EXPECT_EQ(consumed, piece.size());
        break;
      }
      if (ev.kind == Kind::BodyChunk) {
        // Literal chunks point into the input; quoted bodies into the parser.
        EXPECT_FALSE(ev.data.empty());
        EXPECT_LE(ev.data.size(), bodyLeft);
        bodyLeft -= ev.data.size();
      }
      if (ev.kind == Kind::BodyBegin) bodyLeft = ev.literalSize;
      if (ev.kind == Kind::BodyEnd) {
        EXPECT_EQ(bodyLeft, 0u);
      }
      std::string line = render(ev);
      if (ev.kind == Kind::BodyChunk && !out.empty() && out.back().starts_with("DATA ")) {
        out.back() += line.substr(5);
      } else {
        out.push_back(std::move(line));
      }
      piece.remove_prefix(consumed);
    }
  } while (offset < input.size());
  return out;
}

struct Case {
  const char* name;
  std::string input;
  Lines expected;
  Limits limits{};
};

std::string lit(std::string_view s) {
  return "{" + std::to_string(s.size()) + "}\r\n" + std::string(s);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> kCases{
      {"greeting with CAPABILITY code",
       "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
       "AUTH=PLAIN] Dovecot (Debian) ready.\r\n",
       {"STATUS OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
        "STARTTLS AUTH=PLAIN] Dovecot (Debian) ready. "
        "words=IMAP4REV1,SASL-IR,LOGIN-REFERRALS,ID,ENABLE,IDLE,LITERAL+,STARTTLS,AUTH=PLAIN"}},
      {"PREAUTH and plain greeting",
       "* PREAUTH [CAPABILITY IMAP4rev2] Logged in as joe\r\n* OK IMAP4 ready\r\n",
       {"STATUS PREAUTH [CAPABILITY IMAP4rev2] Logged in as joe words=IMAP4REV2",
        "STATUS OK IMAP4 ready"}},
      {"BYE with and without text",
       "* BYE Server shutting down\r\n* BYE\r\n* bye [UNAVAILABLE] later\r\n",
       {"STATUS BYE Server shutting down", "STATUS BYE", "STATUS BYE [UNAVAILABLE] later"}},
      {"BYE text in a literal",
       "* BYE " + lit("going\r\naway") + "\r\n",
       {"STATUS BYE going\\r\\naway"}},
      {"CAPABILITY response",
       "* CAPABILITY IMAP4rev1 literal+ UIDPLUS  MOVE \r\n",
       {"CAPABILITY IMAP4REV1 LITERAL+ UIDPLUS MOVE"}},
      {"tagged with RFC 5530 codes",
       "a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
       "a2 NO [UNAVAILABLE] Temporary authentication failure\r\n"
       "a3 NO [LIMIT] Too many connections\r\n"
       "a4 NO [INUSE] Mailbox in use\r\n"
       "a5 BAD Error in IMAP command: Unknown command\r\n",
       {"TAGGED a1 NO [AUTHENTICATIONFAILED] Authentication failed.",
        "TAGGED a2 NO [UNAVAILABLE] Temporary authentication failure",
        "TAGGED a3 NO [LIMIT] Too many connections", "TAGGED a4 NO [INUSE] Mailbox in use",
        "TAGGED a5 BAD Error in IMAP command: Unknown command"}},
      {"tagged without code or text, lower case",
       "a6 OK\r\nP7 ok [read-write] Select completed.\r\nx.1 OK [READ-ONLY]\r\nt OK[ALERT] hi\r\n",
       {"TAGGED a6 OK", "TAGGED P7 OK [READ-WRITE] Select completed.", "TAGGED x.1 OK [READ-ONLY]",
        "TAGGED t OK [ALERT] hi"}},
      {"status text that only looks like a code",
       "* OK [unterminated code\r\n* NO [] empty\r\n* OK [BADCHARSET (\"a]b\")] no\r\n",
       {"STATUS OK [unterminated code", "STATUS NO [] empty",
        "STATUS OK [BADCHARSET (\"a]b\")] no"}},
      {"Dovecot SELECT",
       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded)\r\n"
       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded \\*)] "
       "Flags permitted.\r\n"
       "* 3 EXISTS\r\n"
       "* 0 RECENT\r\n"
       "* OK [UNSEEN 2] First unseen.\r\n"
       "* OK [UIDVALIDITY 1700000000] UIDs valid\r\n"
       "* OK [UIDNEXT 4] Predicted next UID\r\n"
       "* OK [HIGHESTMODSEQ 12] Highest\r\n"
       "P2 OK [READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs).\r\n",
       {"FLAGS \\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded",
        "STATUS OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded "
        "\\*)] Flags permitted.",
        "EXISTS 3", "RECENT 0", "STATUS OK [UNSEEN 2] First unseen.",
        "STATUS OK [UIDVALIDITY 1700000000] UIDs valid", "STATUS OK [UIDNEXT 4] Predicted next UID",
        "STATUS OK [HIGHESTMODSEQ 12] Highest",
        "TAGGED P2 OK [READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs)."}},
      // Responses popbridge never asks for are skipped whatever they hold, and the next
      // response parses as usual.
      // SEARCH (RFC 3501 7.2.5) is read when it is a plain list of numbers; anything else in it
      // (RFC 7162's MODSEQ, a zero, a literal) makes it Other, never a partial list.
      {"SEARCH is read; ESEARCH and VANISHED are skipped",
       "* SEARCH 2 3 7\r\n* SEARCH\r\n* search 2 5 6 (MODSEQ 917162500)\r\n"
       "* ESEARCH (TAG \"P3\") UID ALL 1:3,5,9:7\r\n"
       "* ESEARCH (TAG \"P4\") UID COUNT 3 MIN 1 MAX 5\r\n"
       "* VANISHED (EARLIER) 1:3,7\r\n* VANISHED 10\r\n"
       "P5 OK done\r\n",
       {"SEARCH 2 3 7", "SEARCH", "OTHER SEARCH", "OTHER ESEARCH", "OTHER ESEARCH",
        "OTHER VANISHED", "OTHER VANISHED", "TAGGED P5 OK done"}},
      {"SEARCH edge cases",
       "* SEARCH \r\n* SEARCH 4294967295  1\r\n* Search 12\n* SEARCH 0\r\n"
       "* SEARCH 4294967296\r\n* SEARCH 3 {2}\r\n45\r\n* SEARCH 3,4\r\n* SEARCH 3 4)\r\n"
       "* SEARCH 007\r\n* SEARCHX 1\r\nP6 OK done\r\n",
       {"SEARCH", "SEARCH 4294967295 1", "SEARCH 12", "OTHER SEARCH", "OTHER SEARCH",
        "OTHER SEARCH", "OTHER SEARCH", "OTHER SEARCH", "SEARCH 7", "OTHER SEARCHX",
        "TAGGED P6 OK done"}},
      {"a SEARCH as long as the line limit",
       "* SEARCH 1 2 3 4 5 6 7 8 9 10 11 12\r\n* SEARCH 1 2 3 4 5 6 7 8 9 10 11 12 13 14\r\n",
       {"SEARCH 1 2 3 4 5 6 7 8 9 10 11 12", "ERROR response line longer than 40 bytes"},
       {40, 16}},
      {"hostile sets are skipped without expansion",
       "* ESEARCH UID ALL 1:*\r\n* VANISHED 1:4294967295\r\n"
       "* VANISHED (EARLIER) 1:4294967295,1:4294967295\r\n* ESEARCH ALL 4294967296:1\r\n"
       "* SEARCH 99999999999999999999999\r\na1 OK [CLOSED] done\r\n",
       {"OTHER ESEARCH", "OTHER VANISHED", "OTHER VANISHED", "OTHER ESEARCH", "OTHER SEARCH",
        "TAGGED a1 OK [CLOSED] done"}},
      {"malformed ESEARCH, VANISHED and SEARCH are skipped",
       "* ESEARCH (TAG \"unterminated\r\n* ESEARCH (TAG P3 UID\r\n* ESEARCH ((((\r\n"
       "* ESEARCH \\ \"a\\b\" ]]\r\n* VANISHED\r\n* VANISHED (EARLIER\r\n* VANISHED x:y\r\n"
       "* SEARCH (MODSEQ\r\n* SEARCH 1 two 3\r\n* SEARCH \x01\xff\r\n"
       "a2 NO [TRYCREATE] no\r\n",
       {"OTHER ESEARCH", "OTHER ESEARCH", "OTHER ESEARCH", "OTHER ESEARCH", "OTHER VANISHED",
        "OTHER VANISHED", "OTHER VANISHED", "OTHER SEARCH", "OTHER SEARCH", "OTHER SEARCH",
        "TAGGED a2 NO [TRYCREATE] no"}},
      {"literals in skipped responses are counted off",
       "* ESEARCH (TAG " + lit("P3") + ") UID ALL " + lit("1:*") + "\r\n* VANISHED " +
           lit("(EARLIER) 1:*)\r\n{9}\r\n") + "\r\n* 1 EXISTS\r\n",
       {"OTHER ESEARCH", "OTHER VANISHED", "EXISTS 1"}},
      {"odd untagged responses are skipped",
       "* 3 XFOO garbage ((\r\n* XBAR ) \"\r\n* 3\r\n* 3 \r\n* 7 (x\r\n*\r\n* \r\n"
       "* (weird\r\n* [x] y\r\n*XFOO\r\n* OKAY fine\r\n* 3 OK\r\n* capabilityx y\r\n"
       "* 99999999999999999999 XFOO\r\n* 4294967296 RECENT\r\n* 2 RECENT junk\r\n"
       "* 2 RECENT {1}\r\nx\r\n* 1 recent\r\n* STATUS x (MESSAGES 1\r\n"
       "* LIST (((\\Noselect \")\" x\r\n* ID (\"a\\\"\" \"b)\r\n"
       "t1 OK still here\r\n",
       {"OTHER 3 XFOO",
        "OTHER XBAR",
        "OTHER 3 ",
        "OTHER 3 ",
        "OTHER 7 ",
        "OTHER ",
        "OTHER ",
        "OTHER ",
        "OTHER ",
        "OTHER XFOO",
        "OTHER OKAY",
        "OTHER 3 OK",
        "OTHER CAPABILITYX",
        "OTHER XFOO",
        "OTHER RECENT",
        "OTHER 2 RECENT",
        "OTHER 2 RECENT",
        "RECENT 1",
        "OTHER STATUS",
        "OTHER LIST",
        "OTHER ID",
        "TAGGED t1 OK still here"}},
      {"a large literal in a skipped response costs nothing",
       "* LIST () \"/\" " + lit(std::string(17, 'm')) + "\r\n* ESEARCH " +
           lit(std::string(300, 'e')) + " MIN 1\r\na OK\r\n",
       {"OTHER LIST", "OTHER ESEARCH", "TAGGED a OK"},
       {64, 16}},
      {"FETCH attributes in any order",
       "* 1 FETCH (UID 101 RFC822.SIZE 2345 FLAGS (\\Seen $Label))\r\n"
       "* 2 FETCH (FLAGS () RFC822.SIZE 10 UID 102 MODSEQ (12345))\r\n"
       "* 3 fetch (uid 7 rfc822.size 18446744073709551615)\r\n"
       "* 4 FETCH ()\r\n",
       {"FETCH 1 UID=101 SIZE=2345 FLAGS=(\\Seen $Label)",
        "FETCH 2 UID=102 SIZE=10 FLAGS=() MODSEQ=12345", "FETCH 3 UID=7 SIZE=18446744073709551615",
        "FETCH 4"}},
      {"FETCH body literal after UID",
       "* 1 FETCH (UID 5 BODY[] " + lit("Hello\r\nWorld") + ")\r\n",
       {"BODY 1 [] 12 UID=5", "DATA Hello\\r\\nWorld", "END 1", "FETCH 1 UID=5"}},
      {"FETCH body literal before UID",
       "* 2 FETCH (BODY[] " + lit("hello") + " UID 6 FLAGS (\\Seen))\r\n",
       {"BODY 2 [] 5", "DATA hello", "END 2", "FETCH 2 UID=6 FLAGS=(\\Seen)"}},
      {"FETCH BODY[HEADER] and BODY[TEXT]<0>",
       "* 1 FETCH (UID 5 BODY[HEADER] " + lit("Subject: x\r\n\r\n") + " BODY[TEXT]<0> " +
           lit("abcd") + ")\r\n",
       {"BODY 1 [HEADER] 14 UID=5", "DATA Subject: x\\r\\n\\r\\n", "END 1",
        "BODY 1 [TEXT]<0> 4 UID=5", "DATA abcd", "END 1", "FETCH 1 UID=5"}},
      {"FETCH RFC822 forms and section case",
       "* 1 FETCH (RFC822.HEADER " + lit("H") + " RFC822.TEXT " + lit("T") + " RFC822 " + lit("A") +
           " body[header.fields (from to)] " + lit("F") + ")\r\n",
       {"BODY 1 [HEADER] 1", "DATA H", "END 1", "BODY 1 [TEXT] 1", "DATA T", "END 1", "BODY 1 [] 1",
        "DATA A", "END 1", "BODY 1 [HEADER.FIELDS (FROM TO)] 1", "DATA F", "END 1", "FETCH 1"}},
      {"FETCH NIL body",
       "* 1 FETCH (BODY[] NIL UID 5)\r\n",
       {"BODY 1 [] 0", "END 1", "FETCH 1 UID=5"}},
      {"FETCH quoted body with escapes",
       "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] \"a \\\"q\\\" \\\\ b\" UID 5)\r\n",
       {"BODY 1 [HEADER.FIELDS (SUBJECT)] 9", "DATA a \"q\" \\ b", "END 1", "FETCH 1 UID=5"}},
      {"FETCH empty literal and empty string",
       "* 1 FETCH (BODY[] {0}\r\n UID 5 BODY[TEXT] \"\")\r\n",
       {"BODY 1 [] 0", "END 1", "BODY 1 [TEXT] 0 UID=5", "END 1", "FETCH 1 UID=5"}},
      {"FETCH BINARY with literal8",
       std::string("* 1 FETCH (UID 3 BINARY[1.2] ~{3}\r\nx\0y)\r\n", 41),
       {"BODY 1 [1.2] 3 UID=3", std::string("DATA x\0y", 8), "END 1", "FETCH 1 UID=3"}},
      {"FETCH body at the end of the list",
       "* 9 FETCH (BODY[]<1024> " + lit("tail") + ")\r\n",
       {"BODY 9 []<1024> 4", "DATA tail", "END 9", "FETCH 9"}},
      {"FETCH BODYSTRUCTURE nested lists are skipped",
       "* 1 FETCH (UID 5 BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL "
       "\"7bit\" 3 1 NIL NIL NIL NIL)(\"text\" \"html\" NIL NIL NIL \"7bit\" 5 1 NIL NIL NIL "
       "NIL) \"alternative\" (\"boundary\" \"x)(\") NIL NIL NIL) RFC822.SIZE 99 BODY (\"text\" "
       "\"plain\" NIL NIL NIL \"7bit\" 3 1))\r\n",
       {"FETCH 1 UID=5 SIZE=99"}},
      {"FETCH literals inside ENVELOPE are skipped",
       "* 1 FETCH (ENVELOPE (\"Mon, 1 Jan 2024 00:00:00 +0000\" " + lit("Subj\r\nect") + " ((" +
           lit("N\xc3\xa4me") +
           " NIL \"a\" \"b\")) NIL NIL NIL NIL NIL NIL \"<id@x>\") "
           "UID 9)\r\n",
       {"FETCH 1 UID=9"}},
      {"FETCH unknown items are skipped, EMAILID and X-GM-MSGID read",
       "* 1 FETCH (INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" X-GM-MSGID 1278455344230334865 "
       "X-GM-LABELS (\\Inbox \\Sent \"a b\" foo) EMAILID (M6d99ac3275bb4e) THREADID NIL "
       "X-GM-THRID 1266894439832287888 THREADID (T64b478a75b7ea9) BINARY.SIZE[1] 42 PREVIEW " +
           lit("preview") + " UID 4)\r\n",
       {"FETCH 1 UID=4 EMAILID=M6d99ac3275bb4e GMMSGID=1278455344230334865"}},
      // RFC 8474 EMAILID and Gmail's X-GM-MSGID identify a message across folders and UIDVALIDITY
      // changes, so they are read strictly, like UID.
      {"FETCH EMAILID and X-GM-MSGID with UID, size and a header literal",
       "* 12 FETCH (UID 3001 EMAILID (M_a-9Z) RFC822.SIZE 4242 X-GM-MSGID 1 "
       "BODY[HEADER.FIELDS (MESSAGE-ID)] " +
           lit("Message-ID: <a@b>\r\n\r\n") +
           ")\r\n* 13 fetch (body[header.fields (message-id)] {0}\r\n emailid ( x ) "
           "x-gm-msgid 18446744073709551615 uid 3002)\r\n",
       {"BODY 12 [HEADER.FIELDS (MESSAGE-ID)] 21 UID=3001 SIZE=4242 EMAILID=M_a-9Z GMMSGID=1",
        "DATA Message-ID: <a@b>\\r\\n\\r\\n", "END 12",
        "FETCH 12 UID=3001 SIZE=4242 EMAILID=M_a-9Z GMMSGID=1",
        "BODY 13 [HEADER.FIELDS (MESSAGE-ID)] 0", "END 13",
        "FETCH 13 UID=3002 EMAILID=x GMMSGID=18446744073709551615"}},
      {"FETCH EMAILID of the maximum length",
       "* 1 FETCH (EMAILID (" + std::string(255, 'e') + "))\r\n",
       {"FETCH 1 EMAILID=" + std::string(255, 'e')}},
      {"FETCH THREADID is skipped in both forms",
       "* 1 FETCH (THREADID NIL UID 1)\r\n* 2 FETCH (THREADID (T1) UID 2)\r\n",
       {"FETCH 1 UID=1", "FETCH 2 UID=2"}},
      {"continuations",
       "+ Ready for literal data\r\n+\r\n+ \r\n+ dGVzdA==\r\n+ [ALERT] careful\r\n",
       {"CONT Ready for literal data", "CONT", "CONT", "CONT dGVzdA==", "CONT [ALERT] careful"}},
      {"unsolicited EXPUNGE and EXISTS between FETCH responses",
       "* 1 FETCH (UID 1 RFC822.SIZE 10)\r\n* 3 EXPUNGE\r\n* 5 EXISTS\r\n"
       "* 2 FETCH (UID 2 BODY[] " +
           lit("ab") + ")\r\n* 4 RECENT\r\nP9 OK Fetch completed.\r\n",
       {"FETCH 1 UID=1 SIZE=10", "EXPUNGE 3", "EXISTS 5", "BODY 2 [] 2 UID=2", "DATA ab", "END 2",
        "FETCH 2 UID=2", "RECENT 4", "TAGGED P9 OK Fetch completed."}},
      {"other responses, one with a literal",
       "* LIST (\\HasNoChildren) \"/\" " + lit("Entw\xc3\xbcrfe") +
           "\r\n* ID (\"name\" \"Dovecot\")\r\n* ENABLED QRESYNC\r\n* 5 XFOO bar\r\n"
           "* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n",
       {"LIST (\\HasNoChildren) '/' <Entw\xc3\xbcrfe>", "OTHER ID", "OTHER ENABLED", "OTHER 5 XFOO",
        "MAILBOXSTATUS <blurdybloop> MESSAGES=231 UIDNEXT=44292"}},
      // STATUS (RFC 3501 7.2.4, RFC 9051 7.3.4): the name in any string form, as sent, like LIST.
      {"STATUS with atom, quoted and literal names",
       "* STATUS INBOX (MESSAGES 3 UIDNEXT 44 UIDVALIDITY 1700000000 UNSEEN 0 DELETED 1 SIZE "
       "18446744073709551615 HIGHESTMODSEQ 917162500)\r\n"
       "* status \"[Gmail]/Sent Mail\" (uidvalidity 7)\r\n"
       "* STATUS \"a \\\"q\\\" \\\\ b\" (MESSAGES 1)\r\n"
       "* STATUS " +
           lit("Entw&APw-rfe") + " (UIDNEXT 5 MESSAGES 2)\r\n* STATUS " + lit("\xd0\x90\r\n") +
           " ()\r\n"
           "P4 OK Status completed\r\n",
       {"MAILBOXSTATUS <INBOX> MESSAGES=3 UIDNEXT=44 UIDVALIDITY=1700000000 UNSEEN=0 DELETED=1 "
        "SIZE=18446744073709551615 HIGHESTMODSEQ=917162500",
        "MAILBOXSTATUS <[Gmail]/Sent Mail> UIDVALIDITY=7",
        "MAILBOXSTATUS <a \"q\" \\ b> MESSAGES=1",
        "MAILBOXSTATUS <Entw&APw-rfe> UIDNEXT=5 MESSAGES=2", "MAILBOXSTATUS <\xd0\x90\\r\\n>",
        "TAGGED P4 OK Status completed"}},
      {"STATUS with an empty list, an empty name and odd spacing",
       "* STATUS INBOX ()\r\n* STATUS \"\" ( MESSAGES  1 )  \r\n* STATUS  x  (MESSAGES 1)\r\n",
       {"MAILBOXSTATUS <INBOX>", "MAILBOXSTATUS <> MESSAGES=1", "MAILBOXSTATUS <x> MESSAGES=1"}},
      // RFC 7889 allows "APPENDLIMIT NIL"; any value that is not a number makes the whole
      // response Other, never a partial list.
      {"malformed STATUS responses are skipped",
       "* STATUS INBOX (MESSAGES 1 APPENDLIMIT NIL)\r\n* STATUS INBOX (MESSAGES x)\r\n"
       "* STATUS INBOX (UIDNEXT 18446744073709551616)\r\n* STATUS INBOX (MESSAGES -1)\r\n"
       "* STATUS INBOX (MESSAGES)\r\n* STATUS INBOX (MESSAGES 1\r\n* STATUS INBOX MESSAGES 1\r\n"
       "* STATUS INBOX\r\n* STATUS\r\n* STATUS INBOX(MESSAGES 1)\r\n* STATUS INBOX (MESSAGES1)\r\n"
       "* STATUS INBOX (MESSAGES 1)x\r\n* STATUS INBOX (MESSAGES 1) junk\r\n"
       "* STATUS INBOX (MESSAGES 1x)\r\n* STATUS INBOX (MESSAGES \"1\")\r\n"
       "* STATUS INBOX (MESSAGES " +
           lit("1") + ")\r\n* STATUS \"x\" " + lit("y") + " (MESSAGES 1)\r\n* STATUS " + lit("x") +
           "(MESSAGES 1)\r\n* STATUS \"unterminated (MESSAGES 1)\r\n* 2 STATUS x (MESSAGES 1)\r\n"
           "* STATUS INBOX ((MESSAGES 1))\r\nt1 OK still here\r\n",
       {"OTHER STATUS", "OTHER STATUS",           "OTHER STATUS", "OTHER STATUS", "OTHER STATUS",
        "OTHER STATUS", "OTHER STATUS",           "OTHER STATUS", "OTHER STATUS", "OTHER STATUS",
        "OTHER STATUS", "OTHER STATUS",           "OTHER STATUS", "OTHER STATUS", "OTHER STATUS",
        "OTHER STATUS", "OTHER STATUS",           "OTHER STATUS", "OTHER STATUS", "OTHER 2 STATUS",
        "OTHER STATUS", "TAGGED t1 OK still here"}},
      {"STATUS name literal beyond the inline limit is skipped unread",
       "* STATUS " + lit(std::string(17, 'm')) + " (MESSAGES 1)\r\n* STATUS " +
           lit(std::string(16, 'n')) + " (MESSAGES 2)\r\n",
       {"OTHER STATUS", "MAILBOXSTATUS <nnnnnnnnnnnnnnnn> MESSAGES=2"},
       {64, 16}},
      {"a STATUS as long as the line limit",
       "* STATUS x (A 1 B 2 C 3 D 4 E 5 F 6 G 7)\r\n* STATUS x (A 1 B 2 C 3 D 4 E 5 F 6 G 7 H "
       "8)\r\n",
       {"MAILBOXSTATUS <x> A=1 B=2 C=3 D=4 E=5 F=6 G=7",
        "ERROR response line longer than 42 bytes"},
       {42, 16}},
      // LIST (RFC 3501 7.2.2, RFC 5258, RFC 6154): the name as sent, in any string form.
      {"LIST with special-use attributes, name as atom, quoted string and literal",
       "* LIST (\\HasNoChildren \\Trash) \"/\" Trash\r\n"
       "* LIST (\\HasChildren) \".\" \"INBOX\"\r\n"
       "* list () \"/\" \"[Gmail]/Sent Mail\"\r\n"
       "* LIST (\\Junk) \"/\" \"a \\\"q\\\" \\\\ b\"\r\n"
       "* LIST (\\Drafts \\HasNoChildren) \"/\" " +
           lit("Entw&APw-rfe") + "\r\n* LIST (\\Archive) NIL " + lit("\xd0\x90\r\n") +
           "\r\n"
           "P3 OK List completed\r\n",
       {"LIST (\\HasNoChildren \\Trash) '/' <Trash>", "LIST (\\HasChildren) '.' <INBOX>",
        "LIST () '/' <[Gmail]/Sent Mail>", "LIST (\\Junk) '/' <a \"q\" \\ b>",
        "LIST (\\Drafts \\HasNoChildren) '/' <Entw&APw-rfe>",
        "LIST (\\Archive) NIL <\xd0\x90\\r\\n>", "TAGGED P3 OK List completed"}},
      {"LIST delimiters: escaped quote, backslash, nil",
       "* LIST () \"\\\\\" a\r\n* LIST () \"\\\"\" b\r\n* LIST () nil c\r\n",
       {"LIST () '\\' <a>", "LIST () '\"' <b>", "LIST () NIL <c>"}},
      {"LIST extended data is skipped, literals included",
       "* LIST (\\Subscribed) \"/\" \"Foo\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
       "* LIST (\\NonExistent) \"/\" " +
           lit("Bar") + " (\"OLDNAME\" (" + lit("Old\r\nName") + "))\r\n* 1 EXISTS\r\n",
       {"LIST (\\Subscribed) '/' <Foo>", "LIST (\\NonExistent) '/' <Bar>", "EXISTS 1"}},
      {"LIST with an empty name and odd spacing",
       "* LIST () \"/\" \"\"\r\n* LIST  ( \\Trash )  \"/\"  Bin  \r\n",
       {"LIST () '/' <>", "LIST (\\Trash) '/' <Bin>"}},
      // Malformed LIST responses are skipped like any unknown response, never fatal.
      {"malformed LIST responses are skipped",
       "* LIST\r\n* LIST \\Trash \"/\" x\r\n* LIST (\\Trash \"/\" x\r\n* LIST (\\Trash)\r\n"
       "* LIST (\\Trash) \"//\" x\r\n* LIST (\\Trash) \"/\r\n* LIST (\\Trash) XX x\r\n"
       "* LIST (\\Trash) \"/\"\r\n* LIST (\\Trash) \"/\" \r\n* LIST (\\Trash) \"/\" \"x\r\n"
       "* LIST (\\Trash) \"/\" x\"y\"\r\n* LIST (\\Trash) \"/\"" +
           lit("x") + "\r\n* LIST (\\Trash) \"/\" " + lit("x") + "y\r\n* LIST (\\Trash) \"/\" " +
           lit("x") + lit("y") +
           "\r\n* LIST (\\) \"/\" x\r\n* 2 LIST () \"/\" x\r\n"
           "t1 OK still here\r\n",
       {"OTHER LIST", "OTHER LIST", "OTHER LIST", "OTHER LIST", "OTHER LIST", "OTHER LIST",
        "OTHER LIST", "OTHER LIST", "OTHER LIST", "OTHER LIST", "OTHER LIST", "OTHER LIST",
        "OTHER LIST", "OTHER LIST", "OTHER LIST", "OTHER 2 LIST", "TAGGED t1 OK still here"}},
      {"LIST name literal beyond the inline limit is skipped unread",
       "* LIST (\\Trash) \"/\" " + lit(std::string(17, 'm')) + "\r\n* LIST (\\Trash) \"/\" " +
           lit(std::string(16, 'n')) + "\r\n",
       {"OTHER LIST", "LIST (\\Trash) '/' <nnnnnnnnnnnnnnnn>"},
       {64, 16}},
      {"error: LIST line beyond the line limit",
       "* LIST (\\Trash) \"/\" \"" + std::string(80, 'x') + "\"\r\n",
       {"ERROR response line longer than 64 bytes"},
       {64, 16}},
      {"bare LF line ends and blank lines",
       "* 2 EXISTS\n\r\n\n* 1 FETCH (BODY[] {2}\nab UID 3)\na1 OK done\n",
       {"EXISTS 2", "BODY 1 [] 2", "DATA ab", "END 1", "FETCH 1 UID=3", "TAGGED a1 OK done"}},
      {"text keeps 8-bit and odd braces",
       "* OK caf\xc3\xa9 {not a literal}\r\n* OK {}\r\n",
       {"STATUS OK caf\xc3\xa9 {not a literal}", "STATUS OK {}"}},

      // Errors: events before the error are delivered, then the parser is dead.
      {"error: garbage at start",
       "* 1 EXISTS\r\n(foo)\r\n",
       {"EXISTS 1", "ERROR expected '*', '+' or a tag at offset 0 of the response, found '('"}},
      {"error: unknown tagged status",
       "a1 FOO bar\r\n",
       {"ERROR expected OK, NO or BAD after the tag at offset 3 of the response, found 'F'"}},
      {"error: missing SP after star",
       "*OK\r\n",
       {"ERROR expected SP after '*' at offset 1 of the response, found 'O'"}},
      {"error: bad literal size",
       "* 1 FETCH (BODY[] {12a}\r\nhello)\r\n",
       {"ERROR expected a body value (NIL, a string or a literal) at offset 18 of the response, "
        "found '{'"}},
      {"error: literal size overflow",
       "* 1 FETCH (BODY[] {99999999999999999999}\r\n",
       {"ERROR literal size {99999999999999999999} at offset 18 of the response is too large"}},
      {"error: UID overflow",
       "* 1 FETCH (UID 4294967296)\r\n",
       {"ERROR a UID out of range at offset 15 of the response, found '4'"}},
      {"error: UID zero",
       "* 1 FETCH (UID 0)\r\n",
       {"ERROR expected a non-zero UID at offset 15 of the response, found '0'"}},
      {"error: size overflow",
       "* 1 FETCH (RFC822.SIZE 18446744073709551616)\r\n",
       {"ERROR an RFC822.SIZE out of range at offset 23 of the response, found '1'"}},
      {"error: message number overflow",
       "* 4294967296 EXISTS\r\n",
       {"ERROR a message number out of range at offset 2 of the response, found '4'"}},
      {"error: FETCH of message 0",
       "* 0 FETCH (UID 1)\r\n",
       {"ERROR expected a non-zero message number at offset 2 of the response, found '0'"}},
      {"error: line too long",
       "* OK " + std::string(100, 'x') + "\r\n",
       {"ERROR response line longer than 64 bytes"},
       {64, 64}},
      {"error: line limit counts all lines of one response",
       "* 1 FETCH (UID 1 BODY[] " + lit(std::string(200, 'b')) + " " + std::string(40, ' ') +
           ")\r\n",
       {"BODY 1 [] 200 UID=1", "DATA " + std::string(200, 'b'), "END 1",
        "ERROR response line longer than 64 bytes"},
       {64, 64}},
      {"error: non-body literal too big",
       "* 1 FETCH (ENVELOPE (" + lit(std::string(17, 's')) + ") UID 1)\r\n",
       {"ERROR literal of 17 bytes in a FETCH item exceeds the limit of 16 bytes for non-body "
        "data"},
       {1024, 16}},
      {"error: literal in status text too big",
       "* BYE " + lit(std::string(17, 't')) + "\r\n",
       {"ERROR literal of 17 bytes in response text exceeds the limit of 16 bytes"},
       {1024, 16}},
      {"error: unterminated FETCH list",
       "* 1 FETCH (UID 5\r\n",
       {"ERROR expected ')' closing the FETCH list at offset 16 of the response, found end of "
        "line"}},
      {"error: junk after FETCH list",
       "* 1 FETCH (UID 5) junk\r\n",
       {"ERROR expected end of line after the FETCH list at offset 18 of the response, found 'j'"}},
      {"error: missing delimiter after a literal body",
       "* 1 FETCH (BODY[] " + lit("ab") + "UID 5)\r\n",
       {"BODY 1 [] 2", "DATA ab", "END 1",
        "ERROR expected SP or ')' after a FETCH item at offset 25 of the response, found 'U'"}},
      {"error: unterminated quoted body",
       "* 1 FETCH (BODY[] \"abc)\r\n",
       {"ERROR expected '\"' closing the quoted string at offset 23 of the response, found end "
        "of line"}},
      {"error: bad escape in quoted string",
       "* 1 FETCH (INTERNALDATE \"a\\b\")\r\n",
       {"ERROR expected '\"' or '\\' after '\\' in a quoted string at offset 27 of the response, "
        "found 'b'"}},
      {"error: unterminated nested list",
       "* 1 FETCH (BODYSTRUCTURE (\"text\" (a b)\r\n",
       {"ERROR expected ')' closing a list in a FETCH item at offset 38 of the response, found "
        "end of line"}},
      {"error: literal where UID expected",
       "* 1 FETCH (UID {1}\r\n5)\r\n",
       {"ERROR expected a UID at offset 15 of the response, found a literal"}},
      {"error: literal in a CAPABILITY response",
       "* CAPABILITY IMAP4rev1 {3}\r\nfoo\r\n",
       {"ERROR expected no literal in a CAPABILITY response at offset 23 of the response, found "
        "a literal"}},
      {"error: EXISTS with trailing junk",
       "* 3 EXISTS now\r\n",
       {"ERROR expected end of line after EXISTS at offset 11 of the response, found 'n'"}},
      {"error: literal size overflow in a skipped response",
       "* XFOO {99999999999999999999}\r\n",
       {"ERROR literal size {99999999999999999999} at offset 7 of the response is too large"}},
      {"error: line too long in a skipped response",
       "* XFOO " + std::string(100, 'x') + "\r\n",
       {"ERROR response line longer than 64 bytes"},
       {64, 64}},
      {"error: EXPUNGE of message 0",
       "* 0 EXPUNGE\r\n",
       {"ERROR expected a non-zero message number at offset 2 of the response, found '0'"}},
      {"error: EXISTS without SP after the number",
       "* 3EXISTS\r\n",
       {"ERROR expected SP after the message number at offset 3 of the response, found 'E'"}},
      {"error: EXPUNGE number overflow",
       "* 99999999999999999999 EXPUNGE\r\n",
       {"ERROR a message number out of range at offset 2 of the response, found '9'"}},
      {"error: unterminated FLAGS list",
       "* FLAGS (\\Seen\r\n",
       {"ERROR expected ')' closing the FLAGS list at offset 14 of the response, found end of "
        "line"}},
      {"error: literal in a FLAGS response",
       "* FLAGS {3}\r\n()\r\n",
       {"ERROR expected no literal in a FLAGS response at offset 8 of the response, found a "
        "literal"}},
      {"error: untagged status without SP",
       "* OK(x)\r\n",
       {"ERROR expected SP after the status at offset 4 of the response, found '('"}},
      {"error: tagged response after skipped junk is still strict",
       "* ESEARCH UID ALL 1:*\r\na1 OKAY\r\n",
       {"OTHER ESEARCH",
        "ERROR expected OK, NO or BAD after the tag at offset 3 of the response, found 'O'"}},
      {"error: EMAILID objectid too long",
       "* 1 FETCH (EMAILID (" + std::string(256, 'e') + "))\r\n",
       {"ERROR an EMAILID objectid longer than 255 characters at offset 20 of the response, found "
        "'e'"}},
      {"error: EMAILID empty",
       "* 1 FETCH (EMAILID ())\r\n",
       {"ERROR expected an EMAILID objectid at offset 20 of the response, found ')'"}},
      {"error: EMAILID with a character outside objectid",
       "* 1 FETCH (EMAILID (M1.2))\r\n",
       {"ERROR expected ')' closing the EMAILID value at offset 22 of the response, found '.'"}},
      {"error: EMAILID quoted",
       "* 1 FETCH (EMAILID (\"M1\"))\r\n",
       {"ERROR expected an EMAILID objectid at offset 20 of the response, found '\"'"}},
      {"error: EMAILID without parentheses",
       "* 1 FETCH (EMAILID M1)\r\n",
       {"ERROR expected '(' opening the EMAILID value at offset 19 of the response, found 'M'"}},
      {"error: EMAILID unclosed",
       "* 1 FETCH (EMAILID (M1 UID 2)\r\n",
       {"ERROR expected ')' closing the EMAILID value at offset 23 of the response, found 'U'"}},
      {"error: EMAILID NIL",
       "* 1 FETCH (EMAILID NIL)\r\n",
       {"ERROR expected '(' opening the EMAILID value at offset 19 of the response, found 'N'"}},
      {"error: EMAILID in a literal",
       "* 1 FETCH (EMAILID " + lit("(M1)") + ")\r\n",
       {"ERROR expected '(' opening the EMAILID value at offset 19 of the response, found a "
        "literal"}},
      {"error: X-GM-MSGID overflow",
       "* 1 FETCH (X-GM-MSGID 18446744073709551616)\r\n",
       {"ERROR an X-GM-MSGID out of range at offset 22 of the response, found '1'"}},
      {"error: X-GM-MSGID quoted",
       "* 1 FETCH (X-GM-MSGID \"123\")\r\n",
       {"ERROR expected an X-GM-MSGID at offset 22 of the response, found '\"'"}},
      {"error: X-GM-MSGID NIL",
       "* 1 FETCH (X-GM-MSGID NIL)\r\n",
       {"ERROR expected an X-GM-MSGID at offset 22 of the response, found 'N'"}},
      {"error: X-GM-MSGID with junk after the number",
       "* 1 FETCH (X-GM-MSGID 12x)\r\n",
       {"ERROR expected SP or ')' after a FETCH item at offset 24 of the response, found 'x'"}},
      {"error: position counts earlier segments",
       "* 1 FETCH (BODY[] " + lit("abc") + " UID x)\r\n",
       {"BODY 1 [] 3", "DATA abc", "END 1",
        "ERROR expected a UID at offset 31 of the response, found 'x'"}},
  };
  return kCases;
}

class ImapParserTable : public ::testing::TestWithParam<std::size_t> {};

TEST_P(ImapParserTable, WholeInput) {
  const Case& c = cases()[GetParam()];
  EXPECT_EQ(feed(c.input, c.input.size(), c.limits), c.expected) << c.name;
}

TEST_P(ImapParserTable, OneByteAtATime) {
  const Case& c = cases()[GetParam()];
  EXPECT_EQ(feed(c.input, 1, c.limits), c.expected) << c.name;
}

TEST_P(ImapParserTable, OddChunkSizes) {
  const Case& c = cases()[GetParam()];
  for (std::size_t chunk : {2, 3, 7, 13}) {
    EXPECT_EQ(feed(c.input, chunk, c.limits), c.expected) << c.name << " chunk " << chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ImapParserTable, ::testing::Range<std::size_t>(0, cases().size()),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           std::string name;
                           for (char ch : std::string(cases()[info.param].name)) {
                             name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           }
                           return std::to_string(info.param) + "_" + name;
                         });

TEST(ImapParser, SeveralResponsesInOneChunkComeOutOneCallEach) {
  ImapResponseParser parser;
  ImapEvent ev;
  std::string_view input = "* 1 EXISTS\r\n* 2 EXISTS\r\na OK\r\n";
  std::size_t consumed = 0;
  ASSERT_EQ(parser.parse(input, consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(consumed, 12u);
  EXPECT_EQ(ev.number, 1u);
  input.remove_prefix(consumed);
  ASSERT_EQ(parser.parse(input, consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.number, 2u);
  input.remove_prefix(consumed);
  ASSERT_EQ(parser.parse(input, consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.kind, Kind::Tagged);
  EXPECT_EQ(consumed, input.size());
  EXPECT_EQ(parser.parse("", consumed, ev), ImapResponseParser::Status::NeedMore);
  EXPECT_EQ(consumed, 0u);
}

TEST(ImapParser, BodyChunksPointIntoTheInputWithoutCopying) {
  ImapResponseParser parser;
  ImapEvent ev;
  std::string input = "* 1 FETCH (UID 7 BODY[] {10}\r\n0123456789)\r\n";
  std::string_view rest = input;
  std::size_t consumed = 0;
  ASSERT_EQ(parser.parse(rest, consumed, ev), ImapResponseParser::Status::Event);
  ASSERT_EQ(ev.kind, Kind::BodyBegin);
  EXPECT_EQ(ev.literalSize, 10u);
  ASSERT_TRUE(ev.fetch.uid);
  rest.remove_prefix(consumed);
  ASSERT_EQ(parser.parse(rest, consumed, ev), ImapResponseParser::Status::Event);
  ASSERT_EQ(ev.kind, Kind::BodyChunk);
  EXPECT_EQ(ev.data.data(), input.data() + input.find("0123"));
  EXPECT_EQ(ev.data.size(), 10u);
}

TEST(ImapParser, HugeLiteralCostsOneEventPerInputChunk) {
  // 50 MB body fed as 64 KiB reads: every read is one chunk event that points into that read.
  constexpr std::uint64_t kSize = 50ull * 1000 * 1000;
  constexpr std::size_t kRead = 64 * 1024;
  ImapResponseParser parser(1024, 1024);
  ImapEvent ev;
  std::size_t consumed = 0;
  std::string head = "* 1 FETCH (BODY[] {" + std::to_string(kSize) + "}\r\n";
  ASSERT_EQ(parser.parse(head, consumed, ev), ImapResponseParser::Status::Event);
  ASSERT_EQ(ev.kind, Kind::BodyBegin);
  EXPECT_EQ(ev.literalSize, kSize);
  ASSERT_EQ(parser.parse({}, consumed, ev), ImapResponseParser::Status::NeedMore);

  std::string read(kRead, 'x');
  std::uint64_t left = kSize;
  std::size_t events = 0;
  while (left > 0) {
    std::string_view piece(read.data(),
                           static_cast<std::size_t>(std::min<std::uint64_t>(left, kRead)));
    ASSERT_EQ(parser.parse(piece, consumed, ev), ImapResponseParser::Status::Event);
    ASSERT_EQ(ev.kind, Kind::BodyChunk);
    ASSERT_EQ(ev.data.data(), read.data());
    ASSERT_EQ(ev.data.size(), piece.size());
    ASSERT_EQ(consumed, piece.size());
    left -= piece.size();
    ++events;
  }
  EXPECT_EQ(events, (kSize + kRead - 1) / kRead);
  std::string_view tail = ")\r\n";
  ASSERT_EQ(parser.parse(tail, consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.kind, Kind::BodyEnd);
  EXPECT_EQ(consumed, 0u);
  ASSERT_EQ(parser.parse(tail, consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.kind, Kind::Fetch);
}

TEST(ImapParser, ErrorIsFinalUntilReset) {
  ImapResponseParser parser;
  ImapEvent ev;
  std::size_t consumed = 0;
  ASSERT_EQ(parser.parse("(\r\n", consumed, ev), ImapResponseParser::Status::Error);
  std::string message = parser.error();
  EXPECT_FALSE(message.empty());
  EXPECT_EQ(parser.parse("* 1 EXISTS\r\n", consumed, ev), ImapResponseParser::Status::Error);
  EXPECT_EQ(parser.error(), message);
  parser.reset();
  EXPECT_TRUE(parser.error().empty());
  ASSERT_EQ(parser.parse("* 1 EXISTS\r\n", consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.kind, Kind::Exists);
}

TEST(ImapParser, ResetDiscardsPartialInput) {
  // After STARTTLS nothing received in the clear may leak into the TLS session.
  ImapResponseParser parser;
  ImapEvent ev;
  std::size_t consumed = 0;
  ASSERT_EQ(parser.parse("* 1 FETCH (BODY[] {5}\r\nab", consumed, ev),
            ImapResponseParser::Status::Event);
  ASSERT_EQ(parser.parse("ab", consumed, ev), ImapResponseParser::Status::Event);
  parser.reset();
  ASSERT_EQ(parser.parse("a1 OK done\r\n", consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.kind, Kind::Tagged);
  EXPECT_EQ(ev.tag, "a1");
}

TEST(ImapParser, EventIsClearedBetweenCalls) {
  ImapResponseParser parser;
  ImapEvent ev;
  std::size_t consumed = 0;
  ASSERT_EQ(parser.parse("* OK [CAPABILITY IMAP4rev1] hi\r\n", consumed, ev),
            ImapResponseParser::Status::Event);
  EXPECT_FALSE(ev.words.empty());
  ASSERT_EQ(parser.parse("* 4 EXISTS\r\n", consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_TRUE(ev.words.empty());
  EXPECT_FALSE(ev.code);
  EXPECT_TRUE(ev.text.empty());
  // A continuation carries no status; it must not inherit the previous response's.
  ASSERT_EQ(parser.parse("a1 NO [AUTHENTICATIONFAILED] no\r\n", consumed, ev),
            ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.status, ImapStatus::No);
  ASSERT_EQ(parser.parse("+ \r\n", consumed, ev), ImapResponseParser::Status::Event);
  EXPECT_EQ(ev.kind, Kind::Continuation);
  EXPECT_EQ(ev.status, ImapStatus::Ok);
}

}  // namespace
}  // namespace popbridge::protocol
