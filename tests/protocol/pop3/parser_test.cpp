#include "protocol/pop3/parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace popbridge::protocol {
namespace {

using namespace std::string_literals;
using Status = Pop3Parser::Status;

// How the harness drives SASL mode, mimicking the session.
enum class Sasl {
  Off,
  Always,
  // On after "AUTH mech" without an initial response, off after the next
  // line, as a session running a one-step mechanism would.
  AfterAuth,
};

struct Expected {
  Status status = Status::Command;
  Pop3Verb verb{};
  std::string arg;
  std::string arg2;
  std::optional<std::uint32_t> msn;
  std::uint64_t lines = 0;
  std::string error;
  bool lineTooLong = false;
};

Expected cmd(Pop3Verb verb, std::string arg = {}, std::string arg2 = {}) {
  Expected e;
  e.verb = verb;
  e.arg = std::move(arg);
  e.arg2 = std::move(arg2);
  return e;
}

Expected msnCmd(Pop3Verb verb, std::uint32_t msn, std::uint64_t lines = 0) {
  Expected e;
  e.verb = verb;
  e.msn = msn;
  e.lines = lines;
  return e;
}

Expected err(std::string text) {
  Expected e;
  e.status = Status::Error;
  e.error = std::move(text);
  return e;
}

Expected tooLong(std::string text = "Command line too long") {
  Expected e = err(std::move(text));
  e.lineTooLong = true;
  return e;
}

struct Case {
  std::string name;
  std::string input;
  std::vector<Expected> expected;
  Sasl sasl = Sasl::Off;
};

// Readable ctest names instead of the bytes of the parameter.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

std::string repeat(char c, std::size_t n) {
  return std::string(n, c);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      // USER
      {"user", "USER bob\r\n", {cmd(Pop3Verb::User, "bob")}},
      {"user_lower_verb_keeps_arg_case", "user Bob\r\n", {cmd(Pop3Verb::User, "Bob")}},
      {"user_mixed_case_verb",
       "uSeR bob@example.org\r\n",
       {cmd(Pop3Verb::User, "bob@example.org")}},
      {"user_many_spaces", "USER    bob   \r\n", {cmd(Pop3Verb::User, "bob")}},
      {"user_tab_separator", "USER\tbob\t\r\n", {cmd(Pop3Verb::User, "bob")}},
      {"user_leading_blanks", "  \tUSER bob\r\n", {cmd(Pop3Verb::User, "bob")}},
      {"user_bare_lf", "USER bob\n", {cmd(Pop3Verb::User, "bob")}},
      {"user_missing", "USER\r\n", {err("Missing user name")}},
      {"user_missing_with_space", "USER \r\n", {err("Missing user name")}},
      {"user_two_words", "USER bob smith\r\n", {err("Too many arguments")}},
      {"user_high_bytes_kept", "USER b\xc3\xb6\x62\r\n", {cmd(Pop3Verb::User, "b\xc3\xb6\x62")}},
      // PASS
      {"pass", "PASS secret\r\n", {cmd(Pop3Verb::Pass, "secret")}},
      {"pass_lower", "pass secret\r\n", {cmd(Pop3Verb::Pass, "secret")}},
      {"pass_inner_spaces_kept",
       "PASS my  secret pw \r\n",
       {cmd(Pop3Verb::Pass, "my  secret pw ")}},
      {"pass_only_one_separator_dropped", "PASS  lead\r\n", {cmd(Pop3Verb::Pass, " lead")}},
      {"pass_tab_separator", "PASS\tx y\r\n", {cmd(Pop3Verb::Pass, "x y")}},
      {"pass_bare_lf", "PASS a b\n", {cmd(Pop3Verb::Pass, "a b")}},
      {"pass_missing", "PASS\r\n", {err("Missing password")}},
      {"pass_empty", "PASS \r\n", {err("Missing password")}},
      {"pass_bare_cr", "PASS se\rcret\r\n", {err("Bare CR in command line")}},
      // The session refuses credentials with NUL with [AUTH] (server_test.cpp).
      {"pass_nul_kept", "PASS se\0cret\r\n"s, {cmd(Pop3Verb::Pass, "se\0cret"s)}},
      // APOP
      {"apop",
       "APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
       {cmd(Pop3Verb::Apop, "mrose", "c4c9334bac560ecc979e58001b3e22fb")}},
      {"apop_missing_all", "APOP\r\n", {err("Missing user name")}},
      {"apop_missing_digest", "apop mrose\r\n", {err("Missing digest")}},
      {"apop_three_words", "APOP a b c\r\n", {err("Too many arguments")}},
      // AUTH
      {"auth_no_mechanism", "AUTH\r\n", {cmd(Pop3Verb::Auth)}},
      {"auth_mechanism_uppercased", "auth plain\r\n", {cmd(Pop3Verb::Auth, "PLAIN")}},
      {"auth_initial_response_verbatim",
       "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n",
       {cmd(Pop3Verb::Auth, "PLAIN", "AGJvYgBzZWNyZXQ=")}},
      {"auth_empty_initial_response", "AUTH login =\r\n", {cmd(Pop3Verb::Auth, "LOGIN", "=")}},
      {"auth_too_many", "AUTH PLAIN a b\r\n", {err("Too many arguments")}},
      // Verbs without arguments
      {"capa", "CAPA\r\n", {cmd(Pop3Verb::Capa)}},
      {"stls", "stls\r\n", {cmd(Pop3Verb::Stls)}},
      {"stat", "Stat\r\n", {cmd(Pop3Verb::Stat)}},
      {"rset", "RSET\r\n", {cmd(Pop3Verb::Rset)}},
      {"noop", "NOOP\r\n", {cmd(Pop3Verb::Noop)}},
      {"quit", "QUIT\r\n", {cmd(Pop3Verb::Quit)}},
      {"last", "LAST\r\n", {cmd(Pop3Verb::Last)}},
      {"noop_trailing_blanks", "NOOP  \t \r\n", {cmd(Pop3Verb::Noop)}},
      {"stat_with_argument", "STAT 1\r\n", {err("Too many arguments")}},
      {"quit_with_noise", "QUIT now\r\n", {err("Too many arguments")}},
      {"capa_with_argument", "CAPA x\r\n", {err("Too many arguments")}},
      // LIST / UIDL
      {"list_all", "LIST\r\n", {cmd(Pop3Verb::List)}},
      {"list_one", "LIST 3\r\n", {msnCmd(Pop3Verb::List, 3)}},
      {"list_leading_zeros", "list 007\r\n", {msnCmd(Pop3Verb::List, 7)}},
      {"list_max", "LIST 4294967295\r\n", {msnCmd(Pop3Verb::List, 4294967295u)}},
      {"list_overflow", "LIST 4294967296\r\n", {err("Message number too large")}},
      {"list_huge", "LIST 99999999999999999999999999\r\n", {err("Message number too large")}},
      {"list_zero", "LIST 0\r\n", {err("Message numbers start at 1")}},
      {"list_non_numeric", "LIST x\r\n", {err("Invalid message number")}},
      {"list_negative", "LIST -1\r\n", {err("Invalid message number")}},
      {"list_plus", "LIST +1\r\n", {err("Invalid message number")}},
      {"list_hex", "LIST 0x10\r\n", {err("Invalid message number")}},
      {"list_noise", "LIST 1 2\r\n", {err("Too many arguments")}},
      {"uidl_all", "UIDL\r\n", {cmd(Pop3Verb::Uidl)}},
      {"uidl_one", "uidl 12\r\n", {msnCmd(Pop3Verb::Uidl, 12)}},
      {"uidl_bad", "UIDL 1a\r\n", {err("Invalid message number")}},
      {"uidl_zero", "UIDL 00\r\n", {err("Message numbers start at 1")}},
      // RETR / DELE
      {"retr", "RETR 1\r\n", {msnCmd(Pop3Verb::Retr, 1)}},
      {"retr_lower_bare_lf", "retr 42\n", {msnCmd(Pop3Verb::Retr, 42)}},
      {"retr_missing", "RETR\r\n", {err("Missing message number")}},
      {"retr_zero", "RETR 0\r\n", {err("Message numbers start at 1")}},
      {"retr_invalid", "RETR one\r\n", {err("Invalid message number")}},
      {"retr_overflow", "RETR 4294967296\r\n", {err("Message number too large")}},
      {"retr_noise", "RETR 1 2\r\n", {err("Too many arguments")}},
      {"dele", "DELE 2\r\n", {msnCmd(Pop3Verb::Dele, 2)}},
      {"dele_missing", "DELE \r\n", {err("Missing message number")}},
      {"dele_zero", "dele 0\r\n", {err("Message numbers start at 1")}},
      // TOP
      {"top", "TOP 1 10\r\n", {msnCmd(Pop3Verb::Top, 1, 10)}},
      {"top_zero_lines", "top 3 0\r\n", {msnCmd(Pop3Verb::Top, 3, 0)}},
      {"top_fetchmail", "TOP 2 99999999\r\n", {msnCmd(Pop3Verb::Top, 2, 99999999)}},
      {"top_max_lines",
       "TOP 1 18446744073709551615\r\n",
       {msnCmd(Pop3Verb::Top, 1, 18446744073709551615u)}},
      {"top_lines_overflow", "TOP 1 18446744073709551616\r\n", {err("Line count too large")}},
      {"top_lines_huge", "TOP 1 999999999999999999999\r\n", {err("Line count too large")}},
      {"top_lines_invalid", "TOP 1 x\r\n", {err("Invalid line count")}},
      {"top_lines_missing", "TOP 1\r\n", {err("Missing line count")}},
      {"top_missing", "TOP\r\n", {err("Missing message number")}},
      {"top_msn_zero", "TOP 0 5\r\n", {err("Message numbers start at 1")}},
      {"top_msn_invalid", "TOP x 5\r\n", {err("Invalid message number")}},
      {"top_msn_overflow", "TOP 4294967296 5\r\n", {err("Message number too large")}},
      {"top_noise", "TOP 1 2 3\r\n", {err("Too many arguments")}},
      // Unknown verbs and empty lines
      {"unknown", "FOO\r\n", {err("Unknown command: FOO")}},
      {"unknown_keeps_case", "xtnd XMIT\r\n", {err("Unknown command: xtnd")}},
      {"unknown_short", "US\r\n", {err("Unknown command: US")}},
      {"unknown_prefix_of_verb", "USERS bob\r\n", {err("Unknown command: USERS")}},
      {"unknown_tops", "TOPS 1 2\r\n", {err("Unknown command: TOPS")}},
      {"unknown_truncated_echo",
       "ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n",
       {err("Unknown command: ABCDEFGHIJKLMNOPQ...")}},
      {"unknown_twenty_chars_not_cut",
       "ABCDEFGHIJKLMNOPQRST\r\n",
       {err("Unknown command: ABCDEFGHIJKLMNOPQRST")}},
      {"unknown_glued_password", "PASSsecret\r\n", {err("Unknown command: PASS...")}},
      {"unknown_glued_auth", "authPLAIN x\r\n", {err("Unknown command: auth...")}},
      {"unknown_sanitised",
       "\x01\xff"
       "X\x7f\r\n",
       {err("Unknown command: ??X?")}},
      {"unknown_http", "GET / HTTP/1.1\r\n", {err("Unknown command: GET")}},
      {"empty_crlf", "\r\n", {err("Empty command line")}},
      {"empty_lf", "\n", {err("Empty command line")}},
      {"blank_line", "  \t \r\n", {err("Empty command line")}},
      // CR and NUL
      {"bare_cr_in_argument", "USER b\rob\r\n", {err("Bare CR in command line")}},
      {"double_cr", "USER bob\r\r\n", {err("Bare CR in command line")}},
      {"bare_cr_at_start", "\rNOOP\r\n", {err("Bare CR in command line")}},
      {"bare_cr_in_verb", "NO\rOP\r\n", {err("Unknown command: NO")}},
      {"bare_cr_does_not_end_line",
       "NOOP\rQUIT\r\nSTAT\r\n",
       {err("Bare CR in command line"), cmd(Pop3Verb::Stat)}},
      {"nul_in_user_kept", "USER b\0ob\r\n"s, {cmd(Pop3Verb::User, "b\0ob"s)}},
      {"nul_in_argument", "LIST 1\0\r\n"s, {err("NUL byte in command line")}},
      {"nul_in_apop_user", "APOP b\0ob d\r\n"s, {err("NUL byte in command line")}},
      {"nul_alone", "\0\r\n"s, {err("NUL byte in command line")}},
      {"nul_in_verb", "NO\0OP\r\n"s, {err("NUL byte in command line")}},
      {"nul_after_verb", "NOOP \0\r\n"s, {err("NUL byte in command line")}},
      {"first_error_wins", "FOO \0\r\n"s, {err("Unknown command: FOO")}},
      // Pipelining
      {"pipelined",
       "USER a\r\nPASS b c\r\nSTAT\r\nLIST\r\nRETR 1\r\nTOP 1 0\r\nQUIT\r\n",
       {cmd(Pop3Verb::User, "a"), cmd(Pop3Verb::Pass, "b c"), cmd(Pop3Verb::Stat),
        cmd(Pop3Verb::List), msnCmd(Pop3Verb::Retr, 1), msnCmd(Pop3Verb::Top, 1, 0),
        cmd(Pop3Verb::Quit)}},
      {"pipelined_mixed_line_ends_and_errors",
       "FOO\r\nNOOP\nRETR 0\r\n\r\nDELE 9\n",
       {err("Unknown command: FOO"), cmd(Pop3Verb::Noop), err("Message numbers start at 1"),
        err("Empty command line"), msnCmd(Pop3Verb::Dele, 9)}},
      {"partial_last_line_waits", "NOOP\r\nQUI", {cmd(Pop3Verb::Noop)}},
      {"partial_cr_waits", "NOOP\r", {}},
      // Line limit: 255 octets including the line end (RFC 2449).
      {"limit_exact_crlf",
       "USER " + repeat('a', 248) + "\r\n",
       {cmd(Pop3Verb::User, repeat('a', 248))}},
      {"limit_exact_lf",
       "USER " + repeat('a', 249) + "\n",
       {cmd(Pop3Verb::User, repeat('a', 249))}},
      {"limit_exceeded_by_lf_keeps_next_line",
       "USER " + repeat('a', 249) + "\r\nNOOP\r\n",
       {tooLong(), cmd(Pop3Verb::Noop)}},
      {"limit_exceeded_by_one_byte",
       "USER " + repeat('a', 251) + "\r\nNOOP\r\n",
       {tooLong(), cmd(Pop3Verb::Noop)}},
      {"too_long_then_good_command",
       repeat('X', 300) + "\r\nRETR 2\r\n",
       {tooLong(), msnCmd(Pop3Verb::Retr, 2)}},
      // PASS and AUTH lines carry long secrets (OAuth2 tokens): kMaxCredentialLine.
      {"pass_4k", "PASS " + repeat('s', 4096) + "\r\n", {cmd(Pop3Verb::Pass, repeat('s', 4096))}},
      {"pass_limit_exact",
       "PASS " + repeat('s', 16384 - 7) + "\r\n",
       {cmd(Pop3Verb::Pass, repeat('s', 16384 - 7))}},
      {"auth_long_initial_response",
       "AUTH PLAIN " + repeat('Q', 2000) + "\r\n",
       {cmd(Pop3Verb::Auth, "PLAIN", repeat('Q', 2000))}},
      {"too_long_password_not_echoed",
       "PASS " + repeat('s', 16384 - 6) + "\r\nQUIT\r\n",
       {tooLong(), cmd(Pop3Verb::Quit)}},
      {"long_line_only_for_pass_and_auth",
       "APOP " + repeat('s', 300) + "\r\nQUIT\r\n",
       {tooLong(), cmd(Pop3Verb::Quit)}},
      {"passx_is_no_pass", "PASSX" + repeat('s', 300) + "\r\nQUIT\r\n", {tooLong(), cmd(Pop3Verb::Quit)}},
      {"too_long_after_error",
       "FOO " + repeat('x', 300) + "\nNOOP\n",
       {tooLong(), cmd(Pop3Verb::Noop)}},
      {"too_long_with_bare_cr_inside",
       repeat('Y', 256) + "\r\r\rNOOP\r\nNOOP\r\n",
       {tooLong(), cmd(Pop3Verb::Noop)}},
      {"megabyte_without_lf",
       repeat('G', 1 << 20) + "\nNOOP\r\n",
       {tooLong(), cmd(Pop3Verb::Noop)}},
      {"megabyte_of_crs",
       repeat('\r', 1 << 20) + "\nUSER x\r\n",
       {tooLong(), cmd(Pop3Verb::User, "x")}},
      // SASL responses
      {"sasl_line",
       "dGVzdAB0ZXN0AHRlc3Q=\r\n",
       {cmd(Pop3Verb::SaslResponse, "dGVzdAB0ZXN0AHRlc3Q=")},
       Sasl::Always},
      {"sasl_cancel", "*\r\n", {cmd(Pop3Verb::SaslResponse, "*")}, Sasl::Always},
      {"sasl_empty_line", "\r\n", {cmd(Pop3Verb::SaslResponse, "")}, Sasl::Always},
      {"sasl_verbatim_blanks", " a\tb  \n", {cmd(Pop3Verb::SaslResponse, " a\tb  ")}, Sasl::Always},
      {"sasl_looks_like_command", "QUIT\r\n", {cmd(Pop3Verb::SaslResponse, "QUIT")}, Sasl::Always},
      {"sasl_nul", "ab\0cd\r\n"s, {err("NUL byte in command line")}, Sasl::Always},
      {"sasl_bare_cr", "ab\rcd\r\n", {err("Bare CR in command line")}, Sasl::Always},
      {"sasl_limit_exact",
       repeat('A', 16382) + "\r\n",
       {cmd(Pop3Verb::SaslResponse, repeat('A', 16382))},
       Sasl::Always},
      {"sasl_limit_exceeded",
       repeat('A', 16383) + "\r\n*\r\n",
       {tooLong("SASL response too long"), cmd(Pop3Verb::SaslResponse, "*")},
       Sasl::Always},
      {"sasl_after_auth_pipelined",
       "AUTH PLAIN\r\nAGJvYgBzZWNyZXQ=\r\nSTAT\r\n",
       {cmd(Pop3Verb::Auth, "PLAIN"), cmd(Pop3Verb::SaslResponse, "AGJvYgBzZWNyZXQ="),
        cmd(Pop3Verb::Stat)},
       Sasl::AfterAuth},
      {"sasl_long_response_after_auth",
       "AUTH PLAIN\r\n" + repeat('Q', 1000) + "\r\nNOOP\r\n",
       {cmd(Pop3Verb::Auth, "PLAIN"), cmd(Pop3Verb::SaslResponse, repeat('Q', 1000)),
        cmd(Pop3Verb::Noop)},
       Sasl::AfterAuth},
      {"auth_with_initial_response_stays_in_command_mode",
       "AUTH PLAIN =\r\nQUIT\r\n",
       {cmd(Pop3Verb::Auth, "PLAIN", "="), cmd(Pop3Verb::Quit)},
       Sasl::AfterAuth},
  };
  return table;
}

bool isPrintableAscii(std::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Feeds the chunks as a session would: parse, act on the result, and call
// again with the rest of the chunk.
std::vector<Pop3Parser::Result> run(const Case& c, const std::vector<std::string_view>& chunks) {
  Pop3Parser parser;
  if (c.sasl == Sasl::Always) parser.expectSaslResponse(true);
  std::vector<Pop3Parser::Result> results;
  for (std::string_view chunk : chunks) {
    while (!chunk.empty()) {
      std::size_t consumed = chunk.size() + 1;
      Pop3Parser::Result result = parser.parse(chunk, consumed);
      EXPECT_LE(consumed, chunk.size());
      if (consumed > chunk.size()) return results;
      if (result.status == Status::NeedMore) {
        EXPECT_EQ(consumed, chunk.size());
        break;
      }
      EXPECT_GT(consumed, 0u);
      if (consumed == 0) return results;
      if (c.sasl == Sasl::AfterAuth) {
        const Pop3Command& command = result.command;
        if (result.status == Status::Command && command.verb == Pop3Verb::Auth &&
            !command.arg.empty() && command.arg2.empty()) {
          parser.expectSaslResponse(true);
        } else {
          parser.expectSaslResponse(false);
        }
      }
      results.push_back(std::move(result));
      chunk.remove_prefix(consumed);
    }
  }
  return results;
}

void check(const Case& c, const std::vector<Pop3Parser::Result>& results) {
  ASSERT_EQ(results.size(), c.expected.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    SCOPED_TRACE("result " + std::to_string(i));
    const Pop3Parser::Result& got = results[i];
    const Expected& want = c.expected[i];
    EXPECT_EQ(got.status, want.status);
    EXPECT_EQ(got.error, want.error);
    EXPECT_EQ(got.lineTooLong, want.lineTooLong);
    if (want.status == Status::Command) {
      EXPECT_EQ(verbName(got.command.verb), verbName(want.verb));
      EXPECT_EQ(got.command.arg, want.arg);
      EXPECT_EQ(got.command.arg2, want.arg2);
      EXPECT_EQ(got.command.msn, want.msn);
      EXPECT_EQ(got.command.lines, want.lines);
    } else {
      EXPECT_TRUE(isPrintableAscii(got.error)) << got.error;
      EXPECT_LE(got.error.size(), 64u);
    }
  }
}

class Pop3ParserTable : public testing::TestWithParam<Case> {};

TEST_P(Pop3ParserTable, Whole) {
  const Case& c = GetParam();
  check(c, run(c, {c.input}));
}

TEST_P(Pop3ParserTable, ByteByByte) {
  const Case& c = GetParam();
  std::vector<std::string_view> chunks;
  const std::string_view input = c.input;
  for (std::size_t i = 0; i < input.size(); ++i) chunks.push_back(input.substr(i, 1));
  check(c, run(c, chunks));
}

TEST_P(Pop3ParserTable, RandomSplits) {
  const Case& c = GetParam();
  std::mt19937 rng(12345);
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::vector<std::string_view> chunks;
    std::string_view rest = c.input;
    while (!rest.empty()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(1, 7)(rng);
      chunks.push_back(rest.substr(0, n));
      rest.remove_prefix(chunks.back().size());
    }
    check(c, run(c, chunks));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Pop3ParserTable, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(Pop3Parser, ErrorsNeverEchoPasswords) {
  for (const std::string& input :
       {"APOP u hunter2\0x\r\n"s, "PASS hunter2\rx\r\n"s, "PASS\thunter2\r\r\n"s,
        "PASShunter2 x\r\n"s, "AUTH PLAIN hunter2 x\r\n"s, "AUTH PLAIN hunter2\0\r\n"s,
        "PASS hunter2" + std::string(Pop3Parser::kMaxCredentialLine, ' ') + "\r\n"}) {
    Pop3Parser parser;
    std::size_t consumed = 0;
    Pop3Parser::Result result = parser.parse(input, consumed);
    ASSERT_EQ(result.status, Status::Error) << result.error;
    EXPECT_EQ(result.error.find("hunter"), std::string::npos) << result.error;
  }
}

TEST(Pop3Parser, NeedMoreKeepsPartialLine) {
  Pop3Parser parser;
  std::size_t consumed = 0;
  EXPECT_EQ(parser.parse("RET", consumed).status, Status::NeedMore);
  EXPECT_EQ(consumed, 3u);
  EXPECT_EQ(parser.parse("R 1", consumed).status, Status::NeedMore);
  EXPECT_EQ(consumed, 3u);
  EXPECT_EQ(parser.parse("", consumed).status, Status::NeedMore);
  EXPECT_EQ(consumed, 0u);
  Pop3Parser::Result result = parser.parse("7\r\nNOOP\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(consumed, 3u);
  EXPECT_EQ(result.command.verb, Pop3Verb::Retr);
  EXPECT_EQ(result.command.msn, 17u);
}

TEST(Pop3Parser, TooLongIsReportedBeforeTheLineEnds) {
  Pop3Parser parser;
  const std::string garbage(1000, 'z');
  std::size_t consumed = 0;
  Pop3Parser::Result result = parser.parse(garbage, consumed);
  ASSERT_EQ(result.status, Status::Error);
  EXPECT_TRUE(result.lineTooLong);
  EXPECT_EQ(consumed, Pop3Parser::kMaxCommandLine + 1);
  // The rest of the line, however long, is dropped without another error.
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(parser.parse(garbage, consumed).status, Status::NeedMore);
    EXPECT_EQ(consumed, garbage.size());
  }
  result = parser.parse("zz\r\nQUIT\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::Quit);
  EXPECT_EQ(consumed, 10u);
}

TEST(Pop3Parser, ResetDropsPartialLine) {
  Pop3Parser parser;
  std::size_t consumed = 0;
  EXPECT_EQ(parser.parse("USER evil", consumed).status, Status::NeedMore);
  parser.reset();
  Pop3Parser::Result result = parser.parse("NOOP\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::Noop);
}

TEST(Pop3Parser, ResetEndsDiscardOfTooLongLine) {
  Pop3Parser parser;
  std::size_t consumed = 0;
  EXPECT_TRUE(parser.parse(std::string(300, 'x'), consumed).lineTooLong);
  parser.reset();
  Pop3Parser::Result result = parser.parse("CAPA\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::Capa);
}

TEST(Pop3Parser, ResetDropsPendingErrorAndBareCr) {
  Pop3Parser parser;
  std::size_t consumed = 0;
  EXPECT_EQ(parser.parse("FOO\r", consumed).status, Status::NeedMore);
  parser.reset();
  Pop3Parser::Result result = parser.parse("STAT\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::Stat);
}

TEST(Pop3Parser, ResetKeepsSaslMode) {
  Pop3Parser parser;
  parser.expectSaslResponse(true);
  std::size_t consumed = 0;
  EXPECT_EQ(parser.parse("abc", consumed).status, Status::NeedMore);
  parser.reset();
  Pop3Parser::Result result = parser.parse("*\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::SaslResponse);
  EXPECT_EQ(result.command.arg, "*");
}

TEST(Pop3Parser, StlsLeavesRestForCallerToDrop) {
  // RFC 2595: the session drops what follows STLS in the same chunk.
  Pop3Parser parser;
  const std::string_view input = "STLS\r\nUSER injected\r\n";
  std::size_t consumed = 0;
  Pop3Parser::Result result = parser.parse(input, consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::Stls);
  EXPECT_EQ(consumed, 6u);
}

TEST(Pop3Parser, SaslModeSwitchAppliesFromNextLine) {
  Pop3Parser parser;
  std::size_t consumed = 0;
  EXPECT_EQ(parser.parse("NO", consumed).status, Status::NeedMore);
  parser.expectSaslResponse(true);
  Pop3Parser::Result result = parser.parse("OP\r\nNOOP\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::Noop);
  result = parser.parse("NOOP\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::SaslResponse);
  EXPECT_EQ(result.command.arg, "NOOP");
  parser.expectSaslResponse(false);
  result = parser.parse("NOOP\r\n", consumed);
  ASSERT_EQ(result.status, Status::Command);
  EXPECT_EQ(result.command.verb, Pop3Verb::Noop);
}

TEST(Pop3Parser, VerbNames) {
  const std::vector<std::pair<Pop3Verb, std::string_view>> names = {
      {Pop3Verb::User, "USER"}, {Pop3Verb::Pass, "PASS"},         {Pop3Verb::Apop, "APOP"},
      {Pop3Verb::Auth, "AUTH"}, {Pop3Verb::Capa, "CAPA"},         {Pop3Verb::Stls, "STLS"},
      {Pop3Verb::Stat, "STAT"}, {Pop3Verb::List, "LIST"},         {Pop3Verb::Uidl, "UIDL"},
      {Pop3Verb::Retr, "RETR"}, {Pop3Verb::Top, "TOP"},           {Pop3Verb::Dele, "DELE"},
      {Pop3Verb::Rset, "RSET"}, {Pop3Verb::Noop, "NOOP"},         {Pop3Verb::Quit, "QUIT"},
      {Pop3Verb::Last, "LAST"}, {Pop3Verb::SaslResponse, "SASL"},
  };
  for (const auto& [verb, name] : names) EXPECT_EQ(verbName(verb), name);
}

}  // namespace
}  // namespace popbridge::protocol
