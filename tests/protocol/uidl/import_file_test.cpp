#include "protocol/uidl/import_file.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace popbridge::protocol::uidl {
namespace {

const std::string kFile =
    "popbridge-uidl-import 1\n"
    "# captured from pop.old.example with TOP n 0\n"
    "\n"
    "message 1c3a.4f5e 1234\r\n"
    "Return-Path: <a@example.org>\r\n"
    "From: Alice <a@example.org>\r\n"
    "Subject: Hello\r\n"
    "Date: 1 Jan 2000 00:00:00 GMT\r\n"
    "Message-ID: <1@example.org>\r\n"
    "\r\n"
    ".\r\n"
    "message UID42-1096552920 99\n"
    "..Dotted: yes\n"
    "Message-ID: <2@x>\n"
    ".\n";

struct Outcome {
  bool ok = false;
  std::vector<ImportParser::Entry> entries;
  std::string error;
};

Outcome parseWhole(const std::string& file) {
  Outcome o;
  auto entries = parseImportFile(file, o.error);
  o.ok = entries.has_value();
  if (entries) o.entries = std::move(*entries);
  return o;
}

Outcome parseByteByByte(const std::string& file) {
  Outcome o;
  ImportParser parser;
  for (char c : file) {
    if (parser.feed(std::string_view(&c, 1), o.entries) == ImportParser::Status::Error) break;
  }
  o.ok = parser.finish(o.entries) != ImportParser::Status::Error;
  o.error = parser.error();
  return o;
}

TEST(ImportFile, ParsesMessagesWholeAndByteByByte) {
  for (const Outcome& o : {parseWhole(kFile), parseByteByByte(kFile)}) {
    ASSERT_TRUE(o.ok) << o.error;
    ASSERT_EQ(o.entries.size(), 2u);
    EXPECT_EQ(o.entries[0].uidl, "1c3a.4f5e");
    EXPECT_EQ(o.entries[0].line, 4u);
    EXPECT_EQ(o.entries[0].facts.size, 1234u);
    EXPECT_EQ(o.entries[0].facts.messageId, "1@example.org");
    EXPECT_EQ(o.entries[0].facts.dateKey, "@946684800");
    EXPECT_EQ(o.entries[0].facts.headerLines, 5u);
    EXPECT_TRUE(o.entries[0].facts.hasHeader);
    EXPECT_EQ(o.entries[1].uidl, "UID42-1096552920");
    EXPECT_EQ(o.entries[1].facts.messageId, "2@x");
    EXPECT_EQ(o.entries[1].facts.size, 99u);
    EXPECT_EQ(o.entries[1].line, 12u);
  }
}

TEST(ImportFile, TheTopBlockHashesLikeTheImapFieldsFetch) {
  // The same fields as the IMAP HEADER.FIELDS fetch returns them: same header hash.
  std::string error;
  const auto imap = parseHeaderFacts(
      "From: Alice <a@example.org>\r\nSubject: Hello\r\nDate: 1 Jan 2000 00:00:00 "
      "GMT\r\nMessage-ID: <1@example.org>\r\n\r\n",
      error);
  ASSERT_TRUE(imap.has_value());
  const Outcome o = parseWhole(kFile);
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.entries[0].facts.headerHash, imap->headerHash);
}

struct ErrorCase {
  std::string name;
  std::string file;
  std::string error;
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class ImportFileErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ImportFileErrors, SayWhereAndWhat) {
  for (const Outcome& o : {parseWhole(GetParam().file), parseByteByByte(GetParam().file)}) {
    EXPECT_FALSE(o.ok);
    EXPECT_EQ(o.error, GetParam().error);
  }
}

const std::string kMagic = "popbridge-uidl-import 1\n";

INSTANTIATE_TEST_SUITE_P(
    Table, ImportFileErrors,
    ::testing::Values(
        ErrorCase{"Empty", "", "line 1: empty file: expected \"popbridge-uidl-import 1\""},
        ErrorCase{"WrongMagic", "popbridge-uidl-import 2\n",
                  "line 1: expected \"popbridge-uidl-import 1\", found \"popbridge-uidl-import "
                  "2\""},
        ErrorCase{"BareListing", kMagic + "1 abc\n2 def\n",
                  "line 2: a bare UIDL listing (\"n uidl\") cannot be imported: without each "
                  "message's header the match would rest on its size alone; capture \"message "
                  "<uidl> <size>\" and the TOP n 0 block for each message"},
        ErrorCase{"NoSize", kMagic + "message abc\n",
                  "line 2: expected \"message <uidl> <size>\": the size is missing"},
        ErrorCase{"BadSize", kMagic + "message abc 12x\n",
                  "line 2: size \"12x\" is not a decimal number of octets"},
        ErrorCase{"UidlTooLong", kMagic + "message " + std::string(71, 'u') + " 1\n",
                  "line 2: \"" + std::string(71, 'u') +
                      "\" is not a UIDL (RFC 1939: 1-70 characters 0x21-0x7E)"},
        ErrorCase{"DuplicateUidl", kMagic + "message a 1\n.\nmessage a 2\n.\n",
                  "line 4: UIDL \"a\" was already given on line 2"},
        ErrorCase{"Unterminated", kMagic + "message a 1\nSubject: x\n",
                  "line 3: the file ends inside message \"a\" (line 2): its TOP block has no "
                  "final \".\""},
        ErrorCase{"Junk", kMagic + "hello\n",
                  "line 2: expected \"message <uidl> <size>\", found \"hello\""}));

TEST(ImportFile, LimitsAreErrors) {
  ImportParser::Limits limits;
  limits.maxLineLength = 40;
  limits.maxEntries = 1;
  {
    ImportParser parser(limits);
    std::vector<ImportParser::Entry> out;
    parser.feed(kMagic + "message a 1\nSubject: " + std::string(50, 'x') + "\n", out);
    EXPECT_EQ(parser.error(), "line 3: longer than 40 bytes");
  }
  {
    ImportParser parser(limits);
    std::vector<ImportParser::Entry> out;
    parser.feed(kMagic + "message a 1\n.\nmessage b 1\n.\n", out);
    EXPECT_EQ(parser.error(), "line 4: more than 1 messages");
    EXPECT_EQ(out.size(), 1u);
  }
}

}  // namespace
}  // namespace popbridge::protocol::uidl
