// Pop3Parser under arbitrary input. The first byte steers the run: its bits
// pick the chunk sizes and when SASL mode is toggled; the rest is what the
// client sends. The same input is parsed three ways (whole, one byte at a
// time, in chunks derived from the data) and the results must be identical.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/pop3/parser.h"

namespace {

using popbridge::protocol::Pop3Command;
using popbridge::protocol::Pop3Parser;
using popbridge::protocol::Pop3Verb;
using Status = Pop3Parser::Status;

void require(bool condition) {
  if (!condition) std::abort();
}

struct Outcome {
  Status status;
  Pop3Command command;
  std::string error;
  bool lineTooLong;
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

void checkResult(const Pop3Parser::Result& result, bool saslLine) {
  if (result.status == Status::Command) {
    const Pop3Command& command = result.command;
    require(result.error.empty() && !result.lineTooLong);
    require((command.verb == Pop3Verb::SaslResponse) == saslLine);
    if (command.msn.has_value()) require(*command.msn >= 1);
    if (command.verb == Pop3Verb::Retr || command.verb == Pop3Verb::Top ||
        command.verb == Pop3Verb::Dele) {
      require(command.msn.has_value());
    }
    // PASS and AUTH lines carry secrets and may be long; USER and PASS keep a NUL so that the
    // session can refuse the credential with [AUTH] (a NUL anywhere else is a syntax error).
    const bool credentialLine = command.verb == Pop3Verb::Pass || command.verb == Pop3Verb::Auth;
    const bool nulAllowed = command.verb == Pop3Verb::User || command.verb == Pop3Verb::Pass;
    if (saslLine) {
      require(command.arg.size() < Pop3Parser::kMaxSaslLine);
    } else {
      require(command.arg.size() + command.arg2.size() <
              (credentialLine ? Pop3Parser::kMaxCredentialLine : Pop3Parser::kMaxCommandLine));
    }
    if (!nulAllowed) {
      require(command.arg.find('\0') == std::string::npos);
      require(command.arg2.find('\0') == std::string::npos);
    }
    return;
  }
  require(result.status == Status::Error);
  require(!result.error.empty() && result.error.size() <= 64);
  for (char c : result.error) require(c >= 0x20 && c <= 0x7e);
}

std::vector<Outcome> run(std::string_view input, std::uint8_t control,
                         const std::vector<std::size_t>& chunkSizes) {
  Pop3Parser parser;
  bool sasl = (control & 1) != 0;
  parser.expectSaslResponse(sasl);
  std::vector<Outcome> outcomes;
  std::size_t sizeIndex = 0;
  while (!input.empty()) {
    const std::size_t size = chunkSizes[sizeIndex++ % chunkSizes.size()];
    std::string_view chunk = input.substr(0, size);
    input.remove_prefix(chunk.size());
    while (!chunk.empty()) {
      std::size_t consumed = 0;
      Pop3Parser::Result result = parser.parse(chunk, consumed);
      require(consumed <= chunk.size());
      if (result.status == Status::NeedMore) {
        require(consumed == chunk.size());
        break;
      }
      require(consumed > 0);
      checkResult(result, sasl);
      // Like a session: SASL after "AUTH mech" without an initial response,
      // back to commands after one response; the control byte forces extra
      // flips so that both modes meet every kind of line.
      const Pop3Command& command = result.command;
      bool next = result.status == Status::Command && command.verb == Pop3Verb::Auth &&
                  !command.arg.empty() && command.arg2.empty();
      if (((control >> (1 + outcomes.size() % 7)) & 1) != 0) next = !next;
      sasl = next;
      parser.expectSaslResponse(sasl);
      outcomes.push_back(
          {result.status, std::move(result.command), std::move(result.error), result.lineTooLong});
      chunk.remove_prefix(consumed);
    }
  }
  return outcomes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  // Chunk sizes come from the input bytes themselves, so the fuzzer steers
  // where lines are cut.
  std::vector<std::size_t> derived;
  for (std::size_t i = 0; i < input.size() && derived.size() < 16; i += 7) {
    derived.push_back(1 + static_cast<std::uint8_t>(input[i]) % (control % 61 + 1));
  }
  if (derived.empty()) derived.push_back(1);

  const std::vector<Outcome> whole = run(input, control, {input.size() + 1});
  require(run(input, control, {1}) == whole);
  require(run(input, control, derived) == whole);
  return 0;
}
