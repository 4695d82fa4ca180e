#include "protocol/imap/command.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "protocol/base64.h"

namespace popbridge::protocol {
namespace {

using Segments = std::vector<std::string>;

TEST(ImapCommandBuilder, SimpleCommandsHaveExactBytesAndSequentialTags) {
  ImapCommandBuilder b;
  ImapCommand c = b.capability();
  EXPECT_EQ(c.tag, "P1");
  EXPECT_EQ(c.segments, Segments{"P1 CAPABILITY\r\n"});
  EXPECT_FALSE(c.sensitive);
  EXPECT_EQ(b.starttls().segments, Segments{"P2 STARTTLS\r\n"});
  EXPECT_EQ(b.noop().segments, Segments{"P3 NOOP\r\n"});
  EXPECT_EQ(b.logout().segments, Segments{"P4 LOGOUT\r\n"});
}

TEST(ImapCommandBuilder, TagsAreUniquePerBuilderAndUseThePrefix) {
  ImapCommandBuilder b("px");
  std::set<std::string> tags;
  for (int i = 0; i < 1000; ++i) {
    ImapCommand c = b.noop();
    EXPECT_EQ(c.segments[0].substr(0, c.tag.size() + 1), c.tag + " ");
    EXPECT_TRUE(tags.insert(c.tag).second) << c.tag;
  }
  EXPECT_TRUE(tags.count("px1"));
  EXPECT_TRUE(tags.count("px1000"));
}

TEST(ImapCommandBuilder, LoginUsesAtomsWhenPossible) {
  ImapCommandBuilder b;
  ImapCommand c = b.login("joe", "s3cret]");
  EXPECT_EQ(c.segments, Segments{"P1 LOGIN joe s3cret]\r\n"});
  EXPECT_TRUE(c.sensitive);
}

TEST(ImapCommandBuilder, LoginQuotesSpecialsAndEscapes) {
  ImapCommandBuilder b;
  EXPECT_EQ(b.login("joe@example.com", "pa ss\"w\\d").segments,
            Segments{"P1 LOGIN joe@example.com \"pa ss\\\"w\\\\d\"\r\n"});
  EXPECT_EQ(b.login("", "(x)%*{1}").segments, Segments{"P2 LOGIN \"\" \"(x)%*{1}\"\r\n"});
}

TEST(ImapCommandBuilder, LoginUsesSynchronizingLiteralsForEightBitAndControls) {
  ImapCommandBuilder b;
  ImapCommand c = b.login("j\xc3\xb6rg", "a\r\nb");
  EXPECT_EQ(c.segments, (Segments{"P1 LOGIN {5}\r\n", "j\xc3\xb6rg {4}\r\n", "a\r\nb\r\n"}));
  c = b.login("joe", "tab\there");
  EXPECT_EQ(c.segments, (Segments{"P2 LOGIN joe {8}\r\n", "tab\there\r\n"}));
}

TEST(ImapCommandBuilder, LiteralPlusKeepsOneSegment) {
  ImapCommandBuilder b;
  b.setLiteralPlus(true);
  EXPECT_EQ(b.login("j\xc3\xb6rg", "p\xc3\xa4ss").segments,
            Segments{"P1 LOGIN {5+}\r\nj\xc3\xb6rg {5+}\r\np\xc3\xa4ss\r\n"});
  EXPECT_EQ(b.login("joe", "x").segments, Segments{"P2 LOGIN joe x\r\n"});
}

TEST(ImapCommandBuilder, AuthenticatePlainWithAndWithoutSaslIr) {
  ImapCommandBuilder b;
  ImapCommand c = b.authenticatePlain("joe", "s3cret pass");
  EXPECT_TRUE(c.sensitive);
  EXPECT_EQ(c.segments, (Segments{"P1 AUTHENTICATE PLAIN\r\n", "AGpvZQBzM2NyZXQgcGFzcw==\r\n"}));
  b.setSaslIr(true);
  c = b.authenticatePlain("user@example.com", "p\xc3\xa4ss");
  EXPECT_EQ(c.segments, Segments{"P2 AUTHENTICATE PLAIN AHVzZXJAZXhhbXBsZS5jb20AcMOkc3M=\r\n"});
  // LITERAL+ changes nothing here: SASL data is never a literal.
  b.setLiteralPlus(true);
  b.setSaslIr(false);
  EXPECT_EQ(b.authenticatePlain("joe", "s3cret pass").segments.size(), 2u);
}

TEST(ImapCommandBuilder, SelectAndExamineEncodeMailboxNames) {
  ImapCommandBuilder b;
  EXPECT_EQ(b.select("INBOX").segments, Segments{"P1 SELECT INBOX\r\n"});
  EXPECT_EQ(b.select("INBOX", true).segments, Segments{"P2 EXAMINE INBOX\r\n"});
  EXPECT_EQ(b.select("Entw\xc3\xbc"
                     "rfe")
                .segments,
            Segments{"P3 SELECT Entw&APw-rfe\r\n"});
  EXPECT_EQ(b.select("Sent Items").segments, Segments{"P4 SELECT \"Sent Items\"\r\n"});
  EXPECT_EQ(b.select("a/b]c").segments, Segments{"P5 SELECT a/b]c\r\n"});
  EXPECT_EQ(b.select("").segments, Segments{"P6 SELECT \"\"\r\n"});
  EXPECT_EQ(b.select("100%").segments, Segments{"P7 SELECT \"100%\"\r\n"});
  EXPECT_EQ(b.select("INBOX", false, true).segments, Segments{"P8 SELECT INBOX (CONDSTORE)\r\n"});
  EXPECT_EQ(b.select("a b", true, true).segments, Segments{"P9 EXAMINE \"a b\" (CONDSTORE)\r\n"});
}

TEST(ImapCommandBuilder, UidCommandsCopyVerbatimArguments) {
  ImapCommandBuilder b;
  EXPECT_EQ(b.uidSearch("UNDELETED").segments, Segments{"P1 UID SEARCH UNDELETED\r\n"});
  EXPECT_EQ(b.fetch("1:*", "(UID RFC822.SIZE FLAGS)").segments,
            Segments{"P2 FETCH 1:* (UID RFC822.SIZE FLAGS)\r\n"});
  EXPECT_EQ(b.uidFetch("7", "(BODY.PEEK[]<0.1024>)").segments,
            Segments{"P3 UID FETCH 7 (BODY.PEEK[]<0.1024>)\r\n"});
  EXPECT_EQ(b.uidStore("1:3,7", "+FLAGS.SILENT", "(\\Deleted)").segments,
            Segments{"P4 UID STORE 1:3,7 +FLAGS.SILENT (\\Deleted)\r\n"});
  EXPECT_EQ(b.uidExpunge("1:3,7").segments, Segments{"P5 UID EXPUNGE 1:3,7\r\n"});
  EXPECT_EQ(b.uidMove("4", "Trash").segments, Segments{"P6 UID MOVE 4 Trash\r\n"});
  EXPECT_EQ(b.uidCopy("4:5", "Gel\xc3\xb6scht").segments,
            Segments{"P7 UID COPY 4:5 Gel&APY-scht\r\n"});
  EXPECT_EQ(b.uidMove("9", "Deleted Items").segments,
            Segments{"P8 UID MOVE 9 \"Deleted Items\"\r\n"});
}

TEST(ImapCommandBuilder, ListQuotesReferenceAndPatternAndAddsTheSpecialUseOption) {
  ImapCommandBuilder b;
  EXPECT_EQ(b.list("", "*").segments, Segments{"P1 LIST \"\" \"*\"\r\n"});
  EXPECT_EQ(b.list("", "*", true).segments, Segments{"P2 LIST (SPECIAL-USE) \"\" \"*\"\r\n"});
  EXPECT_EQ(b.list("Archive/", "%").segments, Segments{"P3 LIST Archive/ \"%\"\r\n"});
}

// A name from a LIST response goes back byte for byte: its modified UTF-7 is not encoded again.
TEST(ImapCommandBuilder, MoveAndCopySendAWireNameUnchanged) {
  ImapCommandBuilder b;
  EXPECT_EQ(b.uidMove("4", "Entw&APw-rfe", MailboxForm::Wire).segments,
            Segments{"P1 UID MOVE 4 Entw&APw-rfe\r\n"});
  EXPECT_EQ(b.uidMove("4", "Entw&APw-rfe").segments, Segments{"P2 UID MOVE 4 Entw&-APw-rfe\r\n"});
  EXPECT_EQ(b.uidCopy("1:2", "[Gmail]/Trash", MailboxForm::Wire).segments,
            Segments{"P3 UID COPY 1:2 [Gmail]/Trash\r\n"});
  EXPECT_EQ(b.uidMove("5", "a \"b\"", MailboxForm::Wire).segments,
            Segments{"P4 UID MOVE 5 \"a \\\"b\\\"\"\r\n"});
  // UTF-8 (after UTF8=ACCEPT) or a line break in a name: a literal.
  EXPECT_EQ(b.uidMove("5", "\xd0\x9a\xd0\xbe", MailboxForm::Wire).segments,
            (Segments{"P5 UID MOVE 5 {4}\r\n", "\xd0\x9a\xd0\xbe\r\n"}));
  b.setLiteralPlus(true);
  EXPECT_EQ(b.uidCopy("5", "a\r\nb", MailboxForm::Wire).segments,
            Segments{"P6 UID COPY 5 {4+}\r\na\r\nb\r\n"});
}

TEST(ImapCommandBuilder, IdQuotesEveryStringAndUsesLiteralsWhenNeeded) {
  ImapCommandBuilder b;
  EXPECT_EQ(b.id({}).segments, Segments{"P1 ID NIL\r\n"});
  std::vector<std::pair<std::string, std::string>> fields{{"name", "popbridge"},
                                                          {"version", "0.1 \"beta\""}};
  EXPECT_EQ(b.id(fields).segments,
            Segments{"P2 ID (\"name\" \"popbridge\" \"version\" \"0.1 \\\"beta\\\"\")\r\n"});
  std::vector<std::pair<std::string, std::string>> utf8{{"os", "Debi\xc3\xa4n"}};
  EXPECT_EQ(b.id(utf8).segments, (Segments{"P3 ID (\"os\" {7}\r\n", "Debi\xc3\xa4n)\r\n"}));
  b.setLiteralPlus(true);
  EXPECT_EQ(b.id(utf8).segments, Segments{"P4 ID (\"os\" {7+}\r\nDebi\xc3\xa4n)\r\n"});
}

TEST(ImapCommandBuilder, EverySegmentButTheLastEndsWithALiteralHeader) {
  ImapCommandBuilder b;
  ImapCommand c = b.login("\xc3\xa4", "\xc3\xb6");
  ASSERT_EQ(c.segments.size(), 3u);
  EXPECT_EQ(c.segments[0], "P1 LOGIN {2}\r\n");
  EXPECT_EQ(c.segments[1], "\xc3\xa4 {2}\r\n");
  EXPECT_EQ(c.segments[2], "\xc3\xb6\r\n");
}

struct UidSetCase {
  std::vector<std::uint32_t> uids;
  std::string expected;
};

TEST(FormatUidSet, SortsDeduplicatesAndCompresses) {
  const std::vector<UidSetCase> cases{
      {{}, ""},
      {{5}, "5"},
      {{1, 2, 3}, "1:3"},
      {{9, 1, 3, 2, 10, 7, 3}, "1:3,7,9:10"},
      {{4, 4, 4}, "4"},
      {{1, 3, 5}, "1,3,5"},
      {{4294967295u, 4294967294u, 1}, "1,4294967294:4294967295"},
      {{2, 1}, "1:2"},
  };
  for (const auto& c : cases) EXPECT_EQ(formatUidSet(c.uids), c.expected);
}

struct MailboxCase {
  std::string utf8;
  std::string encoded;
};

TEST(EncodeMailboxName, ModifiedUtf7Vectors) {
  const std::vector<MailboxCase> cases{
      {"INBOX", "INBOX"},
      {"Entw\xc3\xbc"
       "rfe",
       "Entw&APw-rfe"},
      {"~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
       "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
      {"Tom & Jerry", "Tom &- Jerry"},
      {"&", "&-"},
      {"\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-"},
      {"a\xc3\xa4&", "a&AOQ-&-"},
      {"\xf0\x9f\x93\xa7 Mail", "&2D3c5w- Mail"},  // U+1F4E7: a surrogate pair
      {"tab\there", "tab&AAk-here"},
      {"", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(encodeMailboxName(c.utf8), c.encoded) << c.utf8;
}

TEST(EncodeMailboxName, InvalidUtf8BecomesReplacementCharacter) {
  EXPECT_FALSE(isValidUtf8("a\xff"));
  EXPECT_FALSE(isValidUtf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(isValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(isValidUtf8("\xe5\x8f"));      // truncated
  EXPECT_TRUE(isValidUtf8("Entw\xc3\xbcrfe"));
  EXPECT_EQ(encodeMailboxName("a\xff"), "a&,,0-");
}

// The SASL PLAIN encoding depends on protocol/base64.h; pin the RFC 4648 vectors here too.
TEST(ImapCommandBase64, Rfc4648Vectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64Encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode(std::string("\0\xff\xfe", 3)), "AP/+");
}

TEST(ImapSendable, NulCannotBeSent) {
  EXPECT_TRUE(isImapSendable("p\xc3\xa4ss word"));
  EXPECT_FALSE(isImapSendable(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace popbridge::protocol
