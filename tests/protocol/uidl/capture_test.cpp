#include "protocol/uidl/capture.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "protocol/uidl/import_file.h"

namespace popbridge::protocol::uidl {
namespace {

// One reply per command, in the order the capture asks.
struct Script {
  std::vector<std::string> commands;
  std::vector<std::string> replies;
};

const Script kServer = {
    {"UIDL\r\n", "LIST\r\n", "TOP 1 0\r\n", "TOP 3 0\r\n"},
    {"+OK\r\n1 1c3a.4f5e\r\n3 UID42-1096552920\r\n.\r\n",
     "+OK 3 messages\r\n1 1234\r\n2 10\r\n3 99 extra\r\n.\r\n",
     "+OK\r\nFrom: Alice <a@example.org>\r\nDate: 1 Jan 2000 00:00:00 GMT\r\nMessage-ID: "
     "<1@x>\r\n\r\n.\r\n",
     "+OK\r\n..Dotted: yes\r\nMessage-ID: <2@x>\r\n\r\n.\r\n"}};

struct Result {
  Capture::Status status;
  std::string file;
  std::string error;
  std::vector<std::string> commands;
};

Result run(const Script& script, bool byteByByte) {
  Capture capture;
  Result r{Capture::Status::NeedMore, {}, {}, {}};
  for (const std::string& reply : script.replies) {
    r.commands.push_back(capture.takeCommand());
    EXPECT_EQ(capture.takeCommand(), "");  // each command once
    if (byteByByte) {
      for (char c : reply) r.status = capture.feed(std::string_view(&c, 1), r.file);
    } else {
      r.status = capture.feed(reply, r.file);
    }
    if (r.status != Capture::Status::NeedMore) break;
  }
  r.error = capture.error();
  return r;
}

TEST(Capture, WritesAnImportFileTheImportParserReads) {
  for (bool byteByByte : {false, true}) {
    const Result r = run(kServer, byteByByte);
    ASSERT_EQ(r.status, Capture::Status::Done) << r.error;
    EXPECT_EQ(r.commands, kServer.commands);
    EXPECT_EQ(r.file,
              "popbridge-uidl-import 1\n"
              "message 1c3a.4f5e 1234\n"
              "From: Alice <a@example.org>\nDate: 1 Jan 2000 00:00:00 GMT\nMessage-ID: "
              "<1@x>\n\n.\n"
              "message UID42-1096552920 99\n"
              "..Dotted: yes\nMessage-ID: <2@x>\n\n.\n");
    std::string error;
    const auto entries = parseImportFile(r.file, error);
    ASSERT_TRUE(entries.has_value()) << error;
    ASSERT_EQ(entries->size(), 2u);
    EXPECT_EQ((*entries)[0].facts.messageId, "1@x");
    EXPECT_EQ((*entries)[1].uidl, "UID42-1096552920");
    EXPECT_EQ((*entries)[1].facts.size, 99u);
  }
}

TEST(Capture, EmptyMailbox) {
  const Result r = run({{}, {"+OK\r\n.\r\n", "+OK\r\n.\r\n"}}, false);
  EXPECT_EQ(r.status, Capture::Status::Done);
  EXPECT_EQ(r.file, "popbridge-uidl-import 1\n");
}

struct ErrorCase {
  std::string name;
  std::vector<std::string> replies;
  std::string error;
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class CaptureErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(CaptureErrors, StopWithAReason) {
  for (bool byteByByte : {false, true}) {
    const Result r = run({{}, GetParam().replies}, byteByByte);
    EXPECT_EQ(r.status, Capture::Status::Error);
    EXPECT_EQ(r.error, GetParam().error);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, CaptureErrors,
    ::testing::Values(
        ErrorCase{"UidlRefused", {"-ERR no UIDL here\r\n"}, "UIDL was refused: -ERR no UIDL here"},
        ErrorCase{"BadUidl", {"+OK\r\n1 a\x01z\r\n.\r\n"}, "message 1 has no valid UIDL: \"a?z\""},
        ErrorCase{"NotNumbered", {"+OK\r\nx y\r\n.\r\n"}, "UIDL line is not \"n value\": x y"},
        ErrorCase{"Unordered",
                  {"+OK\r\n2 a\r\n1 b\r\n.\r\n"},
                  "UIDL listing is not in ascending message order at message 1"},
        ErrorCase{"NoSize",
                  {"+OK\r\n1 a\r\n2 b\r\n.\r\n", "+OK\r\n1 5\r\n.\r\n"},
                  "LIST gave no size for message 2"},
        ErrorCase{"TopRefused",
                  {"+OK\r\n1 a\r\n.\r\n", "+OK\r\n1 5\r\n.\r\n", "-ERR unknown command\r\n"},
                  "TOP n 0 was refused: -ERR unknown command"},
        ErrorCase{"LongLine",
                  {"+OK\r\n1 " + std::string(9000, 'a') + "\r\n"},
                  "a reply line is longer than 8192 bytes"}));

}  // namespace
}  // namespace popbridge::protocol::uidl
