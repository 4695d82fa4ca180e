#include "protocol/oauth/token_response.h"

#include <gtest/gtest.h>

namespace popbridge::protocol {
namespace {

struct GrantCase {
  const char* name;
  int status;
  const char* body;
  bool ok;
  TokenErrorKind kind;  // when !ok
  const char* code;     // when !ok
  std::int64_t expiresIn;
  const char* refreshToken;
};

const GrantCase kGrantCases[] = {
    {"Plain",
     200,
     R"({"token_type":"Bearer","access_token":"eyJ.a.b","expires_in":3599,"refresh_token":"r2"})",
     true,
     {},
     "",
     3599,
     "r2"},
    {"LowercaseTypeAndQuotedExpiry",
     200,
     R"({"token_type":"bearer","access_token":"t","expires_in":"3600"})",
     true,
     {},
     "",
     3600,
     ""},
    {"MissingTypeIsBearer", 200, R"({"access_token":"t"})", true, {}, "", 0, ""},
    {"NegativeExpiryIsZero", 200, R"({"access_token":"t","expires_in":-5})", true, {}, "", 0, ""},
    {"HugeExpiryIsCapped",
     200,
     R"({"access_token":"t","expires_in":1e30})",
     true,
     {},
     "",
     366LL * 24 * 3600,
     ""},
    {"MacTokenRefused", 200, R"({"token_type":"mac","access_token":"t"})", false,
     TokenErrorKind::Configuration, "bad response", 0, ""},
    {"EmptyToken", 200, R"({"token_type":"Bearer","access_token":""})", false,
     TokenErrorKind::Temporary, "bad response", 0, ""},
    {"TokenWithSpace", 200, R"({"access_token":"a b"})", false, TokenErrorKind::Temporary,
     "bad response", 0, ""},
    {"TokenWithControl", 200, R"({"access_token":"a\u0001b"})", false, TokenErrorKind::Temporary,
     "bad response", 0, ""},
    {"NotJson", 200, "<html>", false, TokenErrorKind::Temporary, "bad response", 0, ""},
    {"JsonArray", 200, "[1]", false, TokenErrorKind::Temporary, "bad response", 0, ""},
    {"InvalidGrant", 400, R"({"error":"invalid_grant","error_description":"AADSTS70008: expired"})",
     false, TokenErrorKind::InvalidGrant, "invalid_grant", 0, ""},
    {"InvalidClient", 401, R"({"error":"invalid_client"})", false, TokenErrorKind::Configuration,
     "invalid_client", 0, ""},
    {"Pending", 400, R"({"error":"authorization_pending"})", false, TokenErrorKind::Pending,
     "authorization_pending", 0, ""},
    {"SlowDown", 400, R"({"error":"slow_down"})", false, TokenErrorKind::SlowDown, "slow_down", 0,
     ""},
    {"Expired", 400, R"({"error":"expired_token"})", false, TokenErrorKind::ExpiredToken,
     "expired_token", 0, ""},
    {"Denied", 400, R"({"error":"access_denied"})", false, TokenErrorKind::AccessDenied,
     "access_denied", 0, ""},
    {"DeclinedMicrosoft", 400, R"({"error":"authorization_declined"})", false,
     TokenErrorKind::AccessDenied, "authorization_declined", 0, ""},
    {"ServerErrorCode", 400, R"({"error":"temporarily_unavailable"})", false,
     TokenErrorKind::Temporary, "temporarily_unavailable", 0, ""},
    {"ErrorIn200", 200, R"({"error":"invalid_grant","access_token":"t"})", false,
     TokenErrorKind::InvalidGrant, "invalid_grant", 0, ""},
    {"Status500Html", 500, "<h1>oops</h1>", false, TokenErrorKind::Temporary, "HTTP 500", 0, ""},
    {"Status503WithOAuthConfigError", 503, R"({"error":"invalid_request"})", false,
     TokenErrorKind::Temporary, "invalid_request", 0, ""},
    {"Status429", 429, "", false, TokenErrorKind::Temporary, "HTTP 429", 0, ""},
    {"Status404", 404, "Not Found", false, TokenErrorKind::Configuration, "HTTP 404", 0, ""},
    {"TooDeep", 200, "[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]", false,
     TokenErrorKind::Temporary, "bad response", 0, ""},
    {"DeepInsideStringIsFine",
     200,
     R"({"access_token":"t","scope":"[[[[[[[[[[[[[[[[[[[[[["})",
     true,
     {},
     "",
     0,
     ""},
};

class GrantTable : public ::testing::TestWithParam<GrantCase> {};

TEST_P(GrantTable, Parses) {
  const GrantCase& c = GetParam();
  TokenResponse response = parseTokenResponse(c.status, c.body);
  ASSERT_EQ(response.grant.has_value(), c.ok) << response.error.toString();
  if (c.ok) {
    EXPECT_EQ(response.grant->expiresIn.count(), c.expiresIn);
    EXPECT_EQ(response.grant->refreshToken, c.refreshToken);
    EXPECT_FALSE(response.grant->accessToken.empty());
  } else {
    EXPECT_EQ(response.error.kind, c.kind);
    EXPECT_EQ(response.error.code, c.code);
  }
}

INSTANTIATE_TEST_SUITE_P(TokenResponse, GrantTable, ::testing::ValuesIn(kGrantCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(TokenResponseTest, ErrorTextIsPrintableAndShort) {
  // A JSON escape, so the decoded text holds a real newline.
  std::string description = "xxx\\n" + std::string(5000, 'x');
  TokenResponse response = parseTokenResponse(
      400, R"({"error":"invalid_grant","error_description":")" + description + R"("})");
  ASSERT_FALSE(response.grant);
  EXPECT_LE(response.error.description.size(), 210u);
  EXPECT_EQ(response.error.description.find('\n'), std::string::npos);
  EXPECT_EQ(response.error.toString().rfind("invalid_grant (xxx?", 0), 0u);
}

TEST(TokenResponseTest, ErrorNeverEchoesTheTokens) {
  TokenResponse response =
      parseTokenResponse(200, R"({"token_type":"pop","access_token":"SECRET"})");
  ASSERT_FALSE(response.grant);
  EXPECT_EQ(response.error.toString().find("SECRET"), std::string::npos);
}

TEST(DeviceAuthorizationTest, ParsesRfc8628AndGoogleSpelling) {
  auto microsoft = parseDeviceAuthorization(
      200,
      R"({"device_code":"DC","user_code":"ABCD-EFGH","verification_uri":"https://microsoft.com/devicelogin","expires_in":900,"interval":5})");
  ASSERT_TRUE(microsoft.authorization) << microsoft.error.toString();
  EXPECT_EQ(microsoft.authorization->deviceCode, "DC");
  EXPECT_EQ(microsoft.authorization->userCode, "ABCD-EFGH");
  EXPECT_EQ(microsoft.authorization->expiresIn.count(), 900);
  EXPECT_EQ(microsoft.authorization->interval.count(), 5);

  auto google = parseDeviceAuthorization(
      200,
      R"({"device_code":"DC","user_code":"X","verification_url":"https://www.google.com/device","expires_in":1800})");
  ASSERT_TRUE(google.authorization);
  EXPECT_EQ(google.authorization->verificationUri, "https://www.google.com/device");
  EXPECT_EQ(google.authorization->interval.count(), 5);  // RFC 8628 default

  auto fast = parseDeviceAuthorization(
      200, R"({"device_code":"DC","user_code":"X","verification_uri":"u","interval":0})");
  ASSERT_TRUE(fast.authorization);
  EXPECT_EQ(fast.authorization->interval.count(), 1);
}

TEST(DeviceAuthorizationTest, Errors) {
  EXPECT_EQ(parseDeviceAuthorization(400, R"({"error":"invalid_client"})").error.kind,
            TokenErrorKind::Configuration);
  EXPECT_EQ(parseDeviceAuthorization(502, "").error.kind, TokenErrorKind::Temporary);
  auto missing = parseDeviceAuthorization(200, R"({"device_code":"DC"})");
  EXPECT_FALSE(missing.authorization);
  EXPECT_EQ(missing.error.code, "bad response");
}

}  // namespace
}  // namespace popbridge::protocol
