#pragma once

// Upstream login mechanisms. To add a SASL mechanism (XOAUTH2, OAUTHBEARER):
// implement SaslMechanism in a file of its own next to this one, add a
// maker here, and let ImapClient's mechanism choice (client.cpp) pick it.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace popbridge::protocol {

// How the IMAP client proves the user's identity upstream.
//   Auto:  AUTHENTICATE PLAIN when the server advertises AUTH=PLAIN, else LOGIN.
//   Login: the LOGIN command (RFC 3501 6.2.3), which is not SASL.
//   Plain: AUTHENTICATE PLAIN (RFC 4616) even when not advertised.
enum class UpstreamLogin : std::uint8_t { Auto, Login, Plain };

// One SASL exchange (RFC 4422) from the client side. Responses and challenges
// are raw bytes; the IMAP client does the base64 framing of RFC 3501 6.2.2.
class SaslMechanism {
 public:
  virtual ~SaslMechanism() = default;
  // The name sent in AUTHENTICATE and matched against AUTH=<name>.
  virtual std::string_view name() const = 0;
  // The initial response for client-first mechanisms (sent inline with
  // SASL-IR, else after the server's first empty challenge); nullopt when the
  // server speaks first.
  virtual std::optional<std::string> initialResponse() = 0;
  // The answer to a server challenge; nullopt cancels the exchange ("*").
  virtual std::optional<std::string> respond(std::string_view challenge) = 0;
  // Credentials are overwritten as soon as they were used.
  virtual void wipe() = 0;
};

// RFC 4616 with an empty authorization identity.
std::unique_ptr<SaslMechanism> makeSaslPlain(std::string_view user, std::string_view password);

}  // namespace popbridge::protocol
