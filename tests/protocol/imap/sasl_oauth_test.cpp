// The OAuth2 SASL messages byte for byte (RFC 7628 3.1 and Google's XOAUTH2
// description), and their error exchange (RFC 7628 3.2.3).

#include <gtest/gtest.h>

#include <string>

#include "protocol/imap/sasl.h"

namespace popbridge::protocol {
namespace {

TEST(SaslOAuthTest, Xoauth2Message) {
  auto mechanism = makeSaslXOAuth2("alice@example.com", "ya29.token");
  EXPECT_EQ(mechanism->name(), "XOAUTH2");
  EXPECT_EQ(mechanism->initialResponse(), std::string("user=alice@example.com\x01"
                                                      "auth=Bearer ya29.token\x01\x01"));
}

TEST(SaslOAuthTest, OauthbearerMessageWithHostAndPort) {
  auto mechanism = makeSaslOAuthBearer("alice@example.com", "tok", "imap.example.com", 993);
  EXPECT_EQ(mechanism->name(), "OAUTHBEARER");
  EXPECT_EQ(mechanism->initialResponse(), std::string("n,a=alice@example.com,\x01"
                                                      "host=imap.example.com\x01"
                                                      "port=993\x01"
                                                      "auth=Bearer tok\x01\x01"));
}

TEST(SaslOAuthTest, OauthbearerEscapesTheAuthzidAndLeavesOutWhatItLacks) {
  // RFC 5801 saslname: "," is =2C and "=" is =3D, or the GS2 header would split there.
  auto escaped = makeSaslOAuthBearer("a,b=c", "tok", "", 0);
  EXPECT_EQ(escaped->initialResponse(), std::string("n,a=a=2Cb=3Dc,\x01"
                                                    "auth=Bearer tok\x01\x01"));
  auto anonymous = makeSaslOAuthBearer("", "tok", "h", 143);
  EXPECT_EQ(anonymous->initialResponse(), std::string("n,,\x01"
                                                      "host=h\x01"
                                                      "port=143\x01"
                                                      "auth=Bearer tok\x01\x01"));
}

TEST(SaslOAuthTest, ErrorChallengeGetsTheDummyResponseThenACancel) {
  const std::string challenge = R"({"status":"401","schemes":"bearer","scope":"mail"})";
  auto xoauth2 = makeSaslXOAuth2("u", "t");
  (void)xoauth2->initialResponse();
  EXPECT_EQ(xoauth2->respond(challenge), std::string());
  EXPECT_EQ(xoauth2->failureDetail(), challenge);
  EXPECT_EQ(xoauth2->respond("again"), std::nullopt);

  auto bearer = makeSaslOAuthBearer("u", "t", "h", 1);
  (void)bearer->initialResponse();
  EXPECT_EQ(bearer->respond(R"({"status":"invalid_token"})"), std::string("\x01"));
  EXPECT_EQ(bearer->failureDetail(), R"({"status":"invalid_token"})");
  EXPECT_EQ(bearer->respond("again"), std::nullopt);
}

TEST(SaslOAuthTest, FailureDetailIsPrintableAndShort) {
  auto mechanism = makeSaslXOAuth2("u", "t");
  std::string challenge = "{\"status\":\"4\r\n01\"}" + std::string(1000, 'x');
  (void)mechanism->respond(challenge);
  std::string detail = mechanism->failureDetail();
  EXPECT_LE(detail.size(), 203u);
  EXPECT_EQ(detail.find_first_of("\r\n"), std::string::npos);
  EXPECT_EQ(detail.rfind("{\"status\":\"4??01\"}", 0), 0u) << detail;
}

TEST(SaslOAuthTest, TheTokenIsGoneOnceSentOrWiped) {
  auto mechanism = makeSaslXOAuth2("u", "secret-token");
  ASSERT_TRUE(mechanism->initialResponse());
  // The message was built once; the mechanism no longer holds the token.
  std::optional<std::string> again = mechanism->initialResponse();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->find("secret-token"), std::string::npos);
  auto wiped = makeSaslOAuthBearer("u", "secret-token", "h", 1);
  wiped->wipe();
  EXPECT_EQ(wiped->initialResponse()->find("secret-token"), std::string::npos);
}

}  // namespace
}  // namespace popbridge::protocol
