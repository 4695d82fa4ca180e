#pragma once

// Upstream login mechanisms. To add a SASL mechanism: implement
// SaslMechanism in a file of its own next to this one, add a maker here, and
// let ImapClient's mechanism choice (client.cpp) pick it.

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

// The SASL mechanism that carries an OAuth2 access token.
//   Auto:        OAUTHBEARER when the server advertises it, else XOAUTH2.
//   XOAuth2:     Google's and Microsoft's XOAUTH2, even when not advertised.
//   OAuthBearer: RFC 7628 OAUTHBEARER, even when not advertised.
enum class BearerMechanism : std::uint8_t { Auto, XOAuth2, OAuthBearer };

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
  // What the server said about a failure, fit for a log (the OAuth2
  // mechanisms' error challenge: status and scope, never a credential);
  // empty when it said nothing.
  virtual std::string failureDetail() const { return {}; }
};

// RFC 4616 with an empty authorization identity.
std::unique_ptr<SaslMechanism> makeSaslPlain(std::string_view user, std::string_view password);

// XOAUTH2 as Google and Microsoft define it: "user=U^Aauth=Bearer T^A^A".
// The server's error challenge (a JSON object) is answered with an empty
// response, after which it sends the tagged NO.
std::unique_ptr<SaslMechanism> makeSaslXOAuth2(std::string_view user, std::string_view token);

// RFC 7628 OAUTHBEARER with the GS2 header "n,a=U," and the host and port
// the client connected to (RFC 7628 3.1). The error challenge is answered
// with a lone ^A (RFC 7628 3.2.3).
std::unique_ptr<SaslMechanism> makeSaslOAuthBearer(std::string_view user, std::string_view token,
                                                   std::string_view host, std::uint16_t port);

}  // namespace popbridge::protocol
