#include <memory>

#include "protocol/imap/sasl.h"
#include "protocol/text.h"

namespace popbridge::protocol {
namespace {

// RFC 4616: one client-first message "authzid NUL authcid NUL passwd"; the
// authorization identity stays empty so the server derives it from authcid.
class SaslPlain final : public SaslMechanism {
 public:
  SaslPlain(std::string_view user, std::string_view password) : user_(user), password_(password) {}
  ~SaslPlain() override { wipe(); }

  std::string_view name() const override { return "PLAIN"; }

  std::optional<std::string> initialResponse() override {
    std::string message;
    message.reserve(user_.size() + password_.size() + 2);
    message.push_back('\0');
    message.append(user_);
    message.push_back('\0');
    message.append(password_);
    wipe();
    return message;
  }

  // PLAIN has no second step: a further challenge is answered with a cancel.
  std::optional<std::string> respond(std::string_view) override { return std::nullopt; }

  void wipe() override {
    secureWipe(user_);
    secureWipe(password_);
  }

 private:
  std::string user_;
  std::string password_;
};

}  // namespace

std::unique_ptr<SaslMechanism> makeSaslPlain(std::string_view user, std::string_view password) {
  return std::make_unique<SaslPlain>(user, password);
}

}  // namespace popbridge::protocol
