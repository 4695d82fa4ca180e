// ImapResponseParser under arbitrary server bytes. The first byte steers the run: it seeds the
// chunk sizes and picks the limits; the rest is what the server sends. The input is parsed
// whole, one byte at a time and in chunks derived from the data, and the three event sequences
// (body chunks merged) must be identical; parsed again behind a skipped junk response, it must
// give the same events after that response's Other. Each run also checks the parser's contract
// on every call; any violation aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/imap/parser.h"

namespace {

using popbridge::protocol::ImapEvent;
using popbridge::protocol::ImapResponseParser;
using Kind = ImapEvent::Kind;
using Status = ImapResponseParser::Status;

void require(bool condition) {
  if (!condition) std::abort();
}

void appendNumber(std::string& out, std::uint64_t n) {
  out += std::to_string(n);
  out += ' ';
}

// Everything an event carries, so that two runs can be compared exactly.
std::string render(const ImapEvent& ev) {
  std::string out;
  appendNumber(out, static_cast<std::uint64_t>(ev.kind));
  out += ev.tag + '|';
  appendNumber(out, static_cast<std::uint64_t>(ev.status));
  if (ev.code) out += "[" + ev.code->name + "|" + ev.code->text + "]";
  out += ev.text + '|';
  appendNumber(out, ev.number);
  for (const auto& w : ev.words) out += w + ',';
  out += '|';
  out += ev.mailbox + '|';
  if (ev.delimiter) out += *ev.delimiter;
  out += '|';
  if (ev.fetch.uid) appendNumber(out, *ev.fetch.uid);
  if (ev.fetch.rfc822Size) appendNumber(out, *ev.fetch.rfc822Size);
  if (ev.fetch.flags) {
    for (const auto& f : *ev.fetch.flags) out += f + ',';
  }
  if (ev.fetch.modseq) appendNumber(out, *ev.fetch.modseq);
  if (ev.fetch.emailId) out += "E" + *ev.fetch.emailId + ' ';
  if (ev.fetch.gmMsgId) appendNumber(out, *ev.fetch.gmMsgId);
  for (std::uint32_t n : ev.numbers) appendNumber(out, n);
  out += '|';
  for (const auto& [name, value] : ev.statusItems) {
    out += name + '=';
    appendNumber(out, value);
  }
  out += '|';
  out += ev.section + '|';
  if (ev.origin) appendNumber(out, *ev.origin);
  appendNumber(out, ev.literalSize);
  return out;
}

struct Limits {
  std::size_t maxLine;
  std::size_t maxInlineLiteral;
};

std::vector<std::string> run(std::string_view input, const std::vector<std::size_t>& chunks,
                             Limits limits) {
  ImapResponseParser parser(limits.maxLine, limits.maxInlineLiteral);
  ImapEvent ev;
  std::vector<std::string> out;
  bool inBody = false;
  bool inFetch = false;
  std::uint64_t bodyLeft = 0;
  std::size_t events = 0;
  std::size_t offset = 0;
  std::size_t chunkIndex = 0;
  for (;;) {
    std::size_t size = chunks.empty() ? input.size() : chunks[chunkIndex++ % chunks.size()];
    std::string_view piece = input.substr(offset, std::min(size, input.size() - offset));
    offset += piece.size();
    for (;;) {
      std::size_t consumed = static_cast<std::size_t>(-1);
      Status status = parser.parse(piece, consumed, ev);
      require(consumed <= piece.size());
      if (status == Status::Error) {
        require(!parser.error().empty());
        out.push_back("ERROR " + parser.error());
        std::size_t again = 0;
        require(parser.parse("* 1 EXISTS\r\n", again, ev) == Status::Error);
        return out;
      }
      if (status == Status::NeedMore) {
        require(consumed == piece.size());
        break;
      }
      // An event needs input behind it: the count is bounded by the bytes seen, which also
      // catches a parser that returns events forever without consuming.
      ++events;
      require(events <= 2 * (offset - piece.size() + consumed) + 2);
      // RFC 8474: an objectid is 1 to 255 characters.
      require(!ev.fetch.emailId || (!ev.fetch.emailId->empty() && ev.fetch.emailId->size() <= 255));
      switch (ev.kind) {
        case Kind::BodyBegin:
          require(!inBody);
          inBody = true;
          inFetch = true;
          bodyLeft = ev.literalSize;
          require(ev.number != 0);
          break;
        case Kind::BodyChunk:
          require(inBody && !ev.data.empty() && ev.data.size() <= bodyLeft);
          bodyLeft -= ev.data.size();
          break;
        case Kind::BodyEnd:
          require(inBody && bodyLeft == 0);
          inBody = false;
          break;
        case Kind::Search:
          // Each number takes two bytes of one line at least: bounded by the limit.
          require(ev.numbers.size() <= limits.maxLine / 2);
          [[fallthrough]];
        case Kind::MailboxStatus:
          // Each item ("A 1" and a separator) takes four bytes of one line at least.
          require(ev.statusItems.size() <= limits.maxLine / 4);
          [[fallthrough]];
        default:
          require(!inBody);
          // Nothing may come between a FETCH's bodies and its Fetch event.
          require(!inFetch || ev.kind == Kind::Fetch);
          inFetch = false;
          break;
      }
      if (ev.kind == Kind::BodyChunk) {
        std::string data(ev.data);
        if (!out.empty() && out.back().starts_with("DATA ")) {
          out.back() += data;
        } else {
          out.push_back("DATA " + data);
        }
      } else {
        out.push_back(render(ev));
      }
      piece.remove_prefix(consumed);
    }
    if (offset >= input.size()) break;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  // Small limits so the fuzzer reaches them; one setting in four is the default.
  static constexpr Limits kLimits[] = {{64 * 1024, 64 * 1024}, {256, 64}, {64, 1024}, {1024, 8}};
  const Limits limits = kLimits[control & 3];

  std::vector<std::size_t> chunks;
  std::uint32_t seed = control | (static_cast<std::uint32_t>(size) << 8);
  for (int i = 0; i < 16; ++i) {
    seed = seed * 1103515245u + 12345u;
    chunks.push_back(1 + ((seed >> 16) % 37));
  }

  const auto whole = run(input, {}, limits);
  require(run(input, {1}, limits) == whole);
  require(run(input, chunks, limits) == whole);

  // A skipped response must leave nothing behind: put in front of the input, it adds its one
  // Other event and changes nothing after it.
  static constexpr std::string_view kSkipped = "* 3 XFOO ((\"{2}\r\n)(\r\n";
  const auto prefixed = run(std::string(kSkipped) + std::string(input), {}, limits);
  require(prefixed.size() == whole.size() + 1);
  require(prefixed.front().starts_with(std::to_string(static_cast<int>(Kind::Other)) + " "));
  require(std::equal(whole.begin(), whole.end(), prefixed.begin() + 1));
  return 0;
}
