#include <memory>

#include "protocol/imap/sasl.h"
#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

// The error challenge is server text: it goes to a log, so it is cut short
// and stripped of anything that could forge a log line.
constexpr std::size_t kMaxFailureDetail = 200;

std::string printable(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, kMaxFailureDetail)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7f ? c : '?');
  }
  if (text.size() > kMaxFailureDetail) out += "...";
  return out;
}

// Both mechanisms are client-first with one message, and both answer a
// server challenge (only ever the JSON error) with a fixed dummy response so
// the server can finish with its tagged NO (RFC 7628 3.2.3).
class SaslBearer : public SaslMechanism {
 public:
  explicit SaslBearer(char dummyResponse) : dummy_(dummyResponse) {}

  std::optional<std::string> initialResponse() override {
    std::string message = buildMessage();
    wipe();
    return message;
  }

  std::optional<std::string> respond(std::string_view challenge) override {
    if (answeredError_) return std::nullopt;  // nothing further is defined: cancel
    answeredError_ = true;
    detail_ = printable(challenge);
    std::string response;
    if (dummy_ != '\0') response.push_back(dummy_);
    return response;
  }

  std::string failureDetail() const override { return detail_; }

 protected:
  virtual std::string buildMessage() const = 0;

 private:
  char dummy_;
  bool answeredError_ = false;
  std::string detail_;
};

class SaslXOAuth2 final : public SaslBearer {
 public:
  SaslXOAuth2(std::string_view user, std::string_view token)
      : SaslBearer('\0'), user_(user), token_(token) {}
  ~SaslXOAuth2() override { wipe(); }
  std::string_view name() const override { return "XOAUTH2"; }
  void wipe() override {
    secureWipe(user_);
    secureWipe(token_);
  }

 private:
  std::string buildMessage() const override {
    std::string message;
    message.reserve(user_.size() + token_.size() + 24);
    message.append("user=").append(user_);
    message
        .append(
            "\x01"
            "auth=Bearer ")
        .append(token_);
    message.append("\x01\x01");
    return message;
  }

  std::string user_;
  std::string token_;
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
      : SaslBearer('\x01'), user_(user), token_(token), host_(host), port_(port) {}
  ~SaslOAuthBearer() override { wipe(); }
  std::string_view name() const override { return "OAUTHBEARER"; }
  void wipe() override {
    secureWipe(user_);
    secureWipe(token_);
  }

 private:
  std::string buildMessage() const override {
    std::string message;
    message.reserve(user_.size() + token_.size() + host_.size() + 48);
    message.append("n,");
    if (!user_.empty()) {
      message.append("a=");
      appendSaslName(message, user_);
    }
    message.push_back(',');
    if (!host_.empty())
      message
          .append(
              "\x01"
              "host=")
          .append(host_);
    if (port_ != 0)
      message
          .append(
              "\x01"
              "port=")
          .append(std::to_string(port_));
    message
        .append(
            "\x01"
            "auth=Bearer ")
        .append(token_);
    message.append("\x01\x01");
    return message;
  }

  std::string user_;
  std::string token_;
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
