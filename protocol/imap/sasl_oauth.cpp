#include <memory>

#include "protocol/imap/sasl.h"
#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

constexpr char kSep = '\x01';  // RFC 7628's kvsep, which XOAUTH2 shares

// Both mechanisms are client-first with one message ending in "auth=Bearer T^A^A", and both
// answer a server challenge (only ever the JSON error) with a fixed dummy response so the server
// can finish with its tagged NO (RFC 7628 3.2.3).
class SaslBearer : public SaslMechanism {
 public:
  SaslBearer(std::string_view user, std::string_view token, std::string dummyResponse)
      : user_(user), token_(token), dummy_(std::move(dummyResponse)) {}
  ~SaslBearer() override { SaslBearer::wipe(); }

  std::optional<std::string> initialResponse() override {
    std::string message;
    message.reserve(user_.size() + token_.size() + 64);
    appendHead(message);
    message.push_back(kSep);
    message.append("auth=Bearer ").append(token_);
    message.push_back(kSep);
    message.push_back(kSep);
    wipe();
    return message;
  }

  std::optional<std::string> respond(std::string_view challenge) override {
    if (answeredError_) return std::nullopt;  // nothing further is defined: cancel
    answeredError_ = true;
    // Server text bound for a log.
    detail_ = loggableText(challenge);
    return dummy_;
  }

  void wipe() override {
    secureWipe(user_);
    secureWipe(token_);
  }

  std::string failureDetail() const override { return detail_; }

 protected:
  // Everything before the first ^A.
  virtual void appendHead(std::string& message) const = 0;
  const std::string& user() const { return user_; }

 private:
  std::string user_;
  std::string token_;
  std::string dummy_;
  bool answeredError_ = false;
  std::string detail_;
};

class SaslXOAuth2 final : public SaslBearer {
 public:
  SaslXOAuth2(std::string_view user, std::string_view token) : SaslBearer(user, token, "") {}
  std::string_view name() const override { return "XOAUTH2"; }

 private:
  void appendHead(std::string& message) const override { message.append("user=").append(user()); }
};

// RFC 5801 saslname: ',' and '=' are escaped inside the GS2 header.
void appendSaslName(std::string& out, std::string_view name) {
  for (char c : name) {
    if (c == ',')
      out += "=2C";
    else if (c == '=')
      out += "=3D";
    else
      out.push_back(c);
  }
}

class SaslOAuthBearer final : public SaslBearer {
 public:
  SaslOAuthBearer(std::string_view user, std::string_view token, std::string_view host,
                  std::uint16_t port)
      : SaslBearer(user, token, std::string(1, kSep)), host_(host), port_(port) {}
  std::string_view name() const override { return "OAUTHBEARER"; }

 private:
  void appendHead(std::string& message) const override {
    message.append("n,");
    if (!user().empty()) {
      message.append("a=");
      appendSaslName(message, user());
    }
    message.push_back(',');
    if (!host_.empty()) message.append(1, kSep).append("host=").append(host_);
    if (port_ != 0) message.append(1, kSep).append("port=").append(std::to_string(port_));
  }

  std::string host_;
  std::uint16_t port_;
};

}  // namespace

std::unique_ptr<SaslMechanism> makeSaslXOAuth2(std::string_view user, std::string_view token) {
  return std::make_unique<SaslXOAuth2>(user, token);
}

std::unique_ptr<SaslMechanism> makeSaslOAuthBearer(std::string_view user, std::string_view token,
                                                   std::string_view host, std::uint16_t port) {
  return std::make_unique<SaslOAuthBearer>(user, token, host, port);
}

}  // namespace popbridge::protocol
