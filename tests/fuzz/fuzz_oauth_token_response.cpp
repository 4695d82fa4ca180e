// Token endpoint answers are hostile input: any bytes, with any status, must give a grant with a
// usable token or a classified, printable error, never a crash or an allocation sized by input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/oauth/token_response.h"

namespace {

bool printable(std::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace popbridge::protocol;
  if (size == 0) return 0;
  // The first byte picks the status: 200, 400, 401, 429, 500 or 503.
  constexpr int kStatuses[] = {200, 400, 401, 429, 500, 503};
  const int status = kStatuses[data[0] % 6];
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  TokenResponse token = parseTokenResponse(status, body);
  if (token.grant) {
    if (status != 200 || token.grant->accessToken.empty() || !printable(token.grant->accessToken) ||
        token.grant->accessToken.find(' ') != std::string::npos ||
        token.grant->expiresIn.count() < 0) {
      std::abort();
    }
  } else if (!printable(token.error.toString()) || token.error.description.size() > 260) {
    std::abort();
  }

  DeviceAuthorizationResponse device = parseDeviceAuthorization(status, body);
  if (device.authorization) {
    if (device.authorization->deviceCode.empty() || device.authorization->interval.count() < 1 ||
        device.authorization->interval.count() > 60) {
      std::abort();
    }
  } else if (!printable(device.error.toString())) {
    std::abort();
  }

  (void)jwtExpiry(body);
  return 0;
}
