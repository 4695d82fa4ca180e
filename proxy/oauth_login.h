#pragma once

#include <iosfwd>
#include <string>

#include "config/config.h"

namespace popbridge::proxy {

// `popbridge oauth login NAME`: the device authorization grant (RFC 8628) for [oauth2.NAME],
// run once by an admin. Prints where to sign in and the code, polls the token endpoint
// (authorization_pending: keep going; slow_down: 5 s more between polls; expired_token and
// access_denied: give up), and stores the refresh token in refresh_token_file (mode 0600).
// Instructions go to `out`, problems to `err`. Returns the exit code: 0 when the token is
// stored, 1 when the login failed, 2 when the identity cannot use this flow.
int runOAuthLogin(const config::Config& config, const std::string& name, std::ostream& out,
                  std::ostream& err);

}  // namespace popbridge::proxy
