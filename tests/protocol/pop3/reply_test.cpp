#include "protocol/pop3/reply.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {
namespace {

using namespace std::string_literals;

// A status reply must be exactly one line: CRLF at the end and nowhere else.
void expectSingleLine(const std::string& reply) {
  ASSERT_GE(reply.size(), 2u);
  EXPECT_EQ(reply.substr(reply.size() - 2), "\r\n");
  const std::string_view body(reply.data(), reply.size() - 2);
  EXPECT_EQ(body.find_first_of("\r\n\0"s), std::string_view::npos) << reply;
  EXPECT_LE(reply.size(), kMaxStatusLine);
}

struct StatusCase {
  std::string name;
  std::string got;
  std::string want;
};

TEST(Pop3Reply, StatusLinesExactBytes) {
  const std::vector<StatusCase> cases = {
      {"ok_empty", okReply(""), "+OK\r\n"},
      {"ok_text", okReply("2 320"), "+OK 2 320\r\n"},
      {"ok_greeting", okReply("popbridge ready <1.2@host>"), "+OK popbridge ready <1.2@host>\r\n"},
      {"err_empty", errReply(""), "-ERR\r\n"},
      {"err_text", errReply("There's no message 7."), "-ERR There's no message 7.\r\n"},
      {"err_auth", errReply("Authentication failed", RespCode::Auth),
       "-ERR [AUTH] Authentication failed\r\n"},
      {"err_sys_temp", errReply("Upstream unavailable", RespCode::SysTemp),
       "-ERR [SYS/TEMP] Upstream unavailable\r\n"},
      {"err_sys_perm", errReply("Mailbox is broken", RespCode::SysPerm),
       "-ERR [SYS/PERM] Mailbox is broken\r\n"},
      {"err_in_use", errReply("Mailbox locked", RespCode::InUse),
       "-ERR [IN-USE] Mailbox locked\r\n"},
      {"err_login_delay", errReply("Too soon", RespCode::LoginDelay),
       "-ERR [LOGIN-DELAY] Too soon\r\n"},
      {"err_code_without_text", errReply("", RespCode::SysTemp), "-ERR [SYS/TEMP]\r\n"},
      {"err_explicit_none", errReply("x", RespCode::None), "-ERR x\r\n"},
      {"crlf_injection_ok", okReply("fine\r\n-ERR forged"), "+OK fine  -ERR forged\r\n"},
      {"crlf_injection_err", errReply("a\r\n+OK forged", RespCode::Auth),
       "-ERR [AUTH] a  +OK forged\r\n"},
      {"lone_lf", okReply("a\nb"), "+OK a b\r\n"},
      {"lone_cr", okReply("a\rb"), "+OK a b\r\n"},
      {"nul", okReply("a\0b"s), "+OK a b\r\n"},
      {"trailing_crlf_in_text", okReply("done\r\n"), "+OK done  \r\n"},
  };
  for (const StatusCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(c.got, c.want);
    expectSingleLine(c.got);
  }
}

TEST(Pop3Reply, AppendAddsToExistingOutput) {
  std::string out = "+OK 1 2\r\n";
  appendOk(out, "");
  appendErr(out, "no", RespCode::InUse);
  appendOk(out, "yes");
  EXPECT_EQ(out, "+OK 1 2\r\n+OK\r\n-ERR [IN-USE] no\r\n+OK yes\r\n");
}

TEST(Pop3Reply, RespCodeNames) {
  EXPECT_EQ(respCodeName(RespCode::None), "");
  EXPECT_EQ(respCodeName(RespCode::Auth), "AUTH");
  EXPECT_EQ(respCodeName(RespCode::SysTemp), "SYS/TEMP");
  EXPECT_EQ(respCodeName(RespCode::SysPerm), "SYS/PERM");
  EXPECT_EQ(respCodeName(RespCode::InUse), "IN-USE");
  EXPECT_EQ(respCodeName(RespCode::LoginDelay), "LOGIN-DELAY");
}

TEST(Pop3Reply, StatusLineCappedAt512Octets) {
  // "+OK " + 506 + CRLF = 512: fits exactly.
  const std::string fits(506, 'x');
  EXPECT_EQ(okReply(fits), "+OK " + fits + "\r\n");
  EXPECT_EQ(okReply(fits).size(), 512u);

  const std::string reply = okReply(std::string(507, 'y'));
  EXPECT_EQ(reply, "+OK " + std::string(506, 'y') + "\r\n");

  const std::string huge = errReply(std::string(100000, 'z') + "\r\nforged", RespCode::LoginDelay);
  EXPECT_EQ(huge.size(), 512u);
  EXPECT_EQ(huge.rfind("-ERR [LOGIN-DELAY] zzz", 0), 0u);
  expectSingleLine(huge);

  // Injected line breaks past the cut are dropped with the rest.
  const std::string late = okReply(std::string(600, 'a') + "\r\n-ERR x");
  EXPECT_EQ(late.size(), 512u);
  expectSingleLine(late);
}

TEST(Pop3Reply, TruncationDoesNotSplitUtf8) {
  // 505 ASCII bytes and a two-byte character: the character would straddle
  // the cut, so it is dropped whole.
  const std::string text = std::string(505, 'a') + "\xc3\xa9" + "tail";
  const std::string reply = okReply(text);
  EXPECT_EQ(reply, "+OK " + std::string(505, 'a') + "\r\n");

  // A three-byte character ending exactly at the limit is kept.
  const std::string exact = std::string(503, 'a') + "\xe2\x82\xac" + "tail";
  EXPECT_EQ(okReply(exact), "+OK " + std::string(503, 'a') + "\xe2\x82\xac\r\n");

  // Not UTF-8 at all: long runs of continuation bytes are cut at the limit.
  const std::string junk(600, '\x80');
  EXPECT_EQ(okReply(junk).size(), 512u);
}

struct MultiLineCase {
  std::string name;
  std::string line;
  std::string want;
};

TEST(Pop3Reply, MultiLineExactBytes) {
  const std::vector<MultiLineCase> cases = {
      {"plain", "1 120", "1 120\r\n"},
      {"empty", "", "\r\n"},
      {"leading_dot", ".hidden", "..hidden\r\n"},
      {"lone_dot", ".", "..\r\n"},
      {"two_dots", "..", "...\r\n"},
      {"inner_dot", "a.b", "a.b\r\n"},
      {"trailing_crlf_stripped", "USER\r\n", "USER\r\n"},
      {"trailing_lf_stripped", "TOP\n", "TOP\r\n"},
      {"inner_crlf_neutralised", "a\r\n.\r\nb", "a  .  b\r\n"},
      {"inner_nul", "a\0b"s, "a b\r\n"},
      {"dot_after_stripping", ".\r\n", "..\r\n"},
  };
  for (const MultiLineCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::string out = "prefix";
    appendMultiLine(out, c.line);
    EXPECT_EQ(out, "prefix" + c.want);
  }
}

TEST(Pop3Reply, Terminator) {
  std::string out = "x\r\n";
  appendTerminator(out);
  EXPECT_EQ(out, "x\r\n.\r\n");
}

TEST(Pop3Reply, CapaReply) {
  const std::vector<std::string> capabilities = {
      "USER", "TOP", "UIDL", "SASL PLAIN LOGIN", "RESP-CODES", "PIPELINING"};
  EXPECT_EQ(capaReply(capabilities),
            "+OK Capability list follows\r\n"
            "USER\r\nTOP\r\nUIDL\r\nSASL PLAIN LOGIN\r\nRESP-CODES\r\nPIPELINING\r\n"
            ".\r\n");
  EXPECT_EQ(capaReply({}), "+OK Capability list follows\r\n.\r\n");
  // A capability can never end the list early.
  const std::vector<std::string> hostile = {"IMPLEMENTATION x\r\n.\r\n+OK"};
  EXPECT_EQ(capaReply(hostile), "+OK Capability list follows\r\nIMPLEMENTATION x  .  +OK\r\n.\r\n");
}

}  // namespace
}  // namespace popbridge::protocol
