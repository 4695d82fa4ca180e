// [oauth2.NAME] identities and the accounts bound to them.
#include <sys/stat.h>

#include "tests/config/config_fixture.h"

namespace popbridge::config::config_test {
namespace {

std::string oauthAccount(const std::string& user, const std::string& identity,
                         const std::string& extra = "") {
  return "[[account]]\nuser = \"" + user + "\"\npassword_hash = \"" + kHash + "\"\noauth2 = \"" +
         identity + "\"\n" + extra;
}

// A generic [oauth2.x] identity with this token_endpoint (none when empty), bound to account "a".
std::string genericIdentity(const std::string& endpoint) {
  return "[oauth2.x]\nclient_id = \"a\"\n" +
         (endpoint.empty() ? std::string() : "token_endpoint = \"" + endpoint + "\"\n") +
         "refresh_token_file = \"@DIR@/state/refresh\"\nuser = \"u\"\n" + oauthAccount("a", "x");
}

class OAuth2Config : public ConfigTest {
 protected:
  OAuth2Config() {
    dir_.write("client-secret", "s3cr3t\n");
    dir_.write("state/refresh", "rt-1\n");
    ::chmod((dir_.path() + "/state/refresh").c_str(), 0600);
  }
  static bool hasError(const LoadResult& result, const std::string& part) {
    for (const auto& error : result.errors) {
      if (error.toString().find(part) != std::string::npos) return true;
    }
    return false;
  }
  static bool hasWarning(const LoadResult& result, const std::string& part) {
    for (const auto& warning : result.warnings) {
      if (warning.find(part) != std::string::npos) return true;
    }
    return false;
  }
};

TEST_F(OAuth2Config, MicrosoftPresetFillsEndpointsScopeMechanismAndTrash) {
  auto result =
      load(kMinimal +
           "[oauth2.printers]\nprovider = \"microsoft\"\nclient_id = \"app\"\n"
           "refresh_token_file = \"@DIR@/state/refresh\"\nuser = \"printer@contoso.com\"\n" +
           oauthAccount("scanner", "printers") +
           oauthAccount("shared", "printers", "upstream_user = \"shared@contoso.com\"\n"));
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(errorsOf(result));
  const Config& config = *result.config;
  ASSERT_EQ(config.oauth2.size(), 1u);
  const OAuthIdentityConfig& identity = config.oauth2[0];
  EXPECT_EQ(identity.tenant, "organizations");
  EXPECT_EQ(identity.tokenEndpoint,
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/token");
  EXPECT_EQ(identity.deviceAuthorizationEndpoint,
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode");
  EXPECT_EQ(identity.scope, "https://outlook.office.com/IMAP.AccessAsUser.All offline_access");
  EXPECT_EQ(identity.mechanism, BearerMechanism::XOAuth2);
  EXPECT_EQ(identity.grant, OAuthGrant::RefreshToken);
  ASSERT_EQ(config.accounts.size(), 2u);
  EXPECT_EQ(config.accounts[0].upstreamUser, "printer@contoso.com");
  EXPECT_EQ(config.accounts[1].upstreamUser, "shared@contoso.com");
  EXPECT_EQ(config.accounts[0].mailbox.onDelete, DeletePolicy::Move);
  EXPECT_EQ(config.accounts[0].mailbox.moveTo, "\\Trash");
  EXPECT_TRUE(config.accounts[0].upstreamPassword.empty());
  EXPECT_TRUE(result.warnings.empty()) << ::testing::PrintToString(result.warnings);
}

TEST_F(OAuth2Config, AnExplicitDeletePolicyWinsOverThePreset) {
  auto result = load(kMinimal + "[mailbox]\non_delete = \"expunge\"\n" +
                     "[oauth2.g]\nprovider = \"google\"\nclient_id = \"app\"\n"
                     "client_secret_file = \"@DIR@/client-secret\"\n"
                     "refresh_token_file = \"@DIR@/state/refresh\"\nuser = \"me@gmail.com\"\n" +
                     oauthAccount("a", "g") + oauthAccount("b", "g", "on_delete = \"keep\"\n"));
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(errorsOf(result));
  const Config& config = *result.config;
  EXPECT_EQ(config.oauth2[0].tokenEndpoint, "https://oauth2.googleapis.com/token");
  EXPECT_EQ(config.oauth2[0].scope, "https://mail.google.com/");
  EXPECT_EQ(config.oauth2[0].mechanism, BearerMechanism::Auto);
  EXPECT_EQ(config.oauth2[0].clientSecret, "s3cr3t");
  EXPECT_EQ(config.accounts[0].mailbox.onDelete, DeletePolicy::Expunge);
  EXPECT_EQ(config.accounts[1].mailbox.onDelete, DeletePolicy::Keep);
}

TEST_F(OAuth2Config, ClientCredentials) {
  auto ok = load(kMinimal +
                 "[oauth2.app]\nprovider = \"microsoft\"\ngrant = \"client_credentials\"\n"
                 "tenant = \"contoso.onmicrosoft.com\"\nclient_id = \"app\"\n"
                 "client_secret_file = \"@DIR@/client-secret\"\n" +
                 oauthAccount("a", "app", "upstream_user = \"box@contoso.com\"\n"));
  ASSERT_TRUE(ok.ok()) << ::testing::PrintToString(errorsOf(ok));
  EXPECT_EQ(ok.config->oauth2[0].scope, "https://outlook.office365.com/.default");
  EXPECT_EQ(ok.config->oauth2[0].tokenEndpoint,
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");

  auto noTenant = load(kMinimal +
                       "[oauth2.app]\nprovider = \"microsoft\"\ngrant = \"client_credentials\"\n"
                       "client_id = \"app\"\nclient_secret_file = \"@DIR@/client-secret\"\n" +
                       oauthAccount("a", "app", "upstream_user = \"box@contoso.com\"\n"));
  EXPECT_TRUE(hasError(noTenant, "oauth2.app.tenant: required with grant = \"client_credentials\""))
      << ::testing::PrintToString(errorsOf(noTenant));

  auto noSecret = load(kMinimal +
                       "[oauth2.app]\nprovider = \"microsoft\"\ngrant = \"client_credentials\"\n"
                       "tenant = \"contoso.com\"\nclient_id = \"app\"\n" +
                       oauthAccount("a", "app", "upstream_user = \"box@contoso.com\"\n"));
  EXPECT_TRUE(hasError(noSecret, "client_secret_file: required"));

  auto google = load(kMinimal +
                     "[oauth2.g]\nprovider = \"google\"\ngrant = \"client_credentials\"\n"
                     "client_id = \"app\"\nclient_secret_file = \"@DIR@/client-secret\"\n" +
                     oauthAccount("a", "g", "upstream_user = \"x@example.com\"\n"));
  EXPECT_TRUE(hasError(google, "Google has no client-credentials grant"));
}

TEST_F(OAuth2Config, GenericNeedsAnHttpsEndpoint) {
  auto missing = load(kMinimal + genericIdentity(""));
  EXPECT_TRUE(hasError(missing, "token_endpoint: required with provider = \"generic\""));
  auto plain = load(kMinimal + genericIdentity("http://idp.example.com/token"));
  EXPECT_TRUE(hasError(plain, "must be an https:// URL"));
  auto loopback = load(kMinimal + genericIdentity("http://127.0.0.1:8080/token"));
  EXPECT_TRUE(loopback.ok()) << ::testing::PrintToString(errorsOf(loopback));
  // A generic identity keeps the file's delete policy (the default flag).
  EXPECT_EQ(loopback.config->accounts[0].mailbox.onDelete, DeletePolicy::Flag);
}

TEST_F(OAuth2Config, AccountErrors) {
  const std::string identity =
      "[oauth2.printers]\nprovider = \"microsoft\"\nclient_id = \"app\"\n"
      "refresh_token_file = \"@DIR@/state/refresh\"\n";
  auto unknown = load(kMinimal + identity + oauthAccount("a", "printer"));
  EXPECT_TRUE(hasError(unknown,
                       "account[0].oauth2: no [oauth2.printer] is defined (did you mean "
                       "\"printers\"?)"))
      << ::testing::PrintToString(errorsOf(unknown));
  auto noUser = load(kMinimal + identity + oauthAccount("a", "printers"));
  EXPECT_TRUE(
      hasError(noUser, "account[0].upstream_user: required: [oauth2.printers] has no user"));
  auto both =
      load(kMinimal + identity +
           oauthAccount("a", "printers",
                        "upstream_user = \"u\"\nupstream_password_file = \"@DIR@/secret\"\n"));
  EXPECT_TRUE(hasError(both, "logs in with an access token, not a password"));
  auto badName =
      load(kMinimal + "[oauth2.\"a b\"]\ngrant = \"command\"\ntoken_command = [\"get\"]\n");
  EXPECT_TRUE(hasError(badName, "the name must be 1-64 letters"));
}

TEST_F(OAuth2Config, TokenCommand) {
  auto inferred = load(kMinimal +
                       "[oauth2.c]\ntoken_command = [\"get-token\", \"--for\", \"x\"]\n"
                       "token_command_timeout = \"3s\"\nuser = \"u\"\n" +
                       oauthAccount("a", "c"));
  ASSERT_TRUE(inferred.ok()) << ::testing::PrintToString(errorsOf(inferred));
  EXPECT_EQ(inferred.config->oauth2[0].grant, OAuthGrant::Command);
  EXPECT_EQ(inferred.config->oauth2[0].tokenCommand,
            (std::vector<std::string>{"get-token", "--for", "x"}));
  EXPECT_EQ(inferred.config->oauth2[0].tokenCommandTimeout, std::chrono::seconds(3));
  auto notArray =
      load(kMinimal + "[oauth2.c]\ntoken_command = \"get-token --for x\"\nuser = \"u\"\n" +
           oauthAccount("a", "c"));
  EXPECT_TRUE(hasError(notArray, "token_command: expected an array of strings"));
  auto missingFile =
      load(kMinimal + "[oauth2.c]\ntoken_command = [\"@DIR@/nope\"]\nuser = \"u\"\n" +
           oauthAccount("a", "c"));
  EXPECT_TRUE(hasError(missingFile, "is not a file"));
  auto wrongGrant = load(kMinimal +
                         "[oauth2.c]\ngrant = \"refresh_token\"\nprovider = \"google\"\n"
                         "client_id = \"a\"\nrefresh_token_file = \"@DIR@/state/refresh\"\n"
                         "token_command = [\"x\"]\nuser = \"u\"\n" +
                         oauthAccount("a", "c"));
  EXPECT_TRUE(hasError(wrongGrant, "token_command: only used with grant = \"command\""));
}

TEST_F(OAuth2Config, RefreshTokenFile) {
  const std::string head =
      "[oauth2.p]\nprovider = \"microsoft\"\nclient_id = \"app\"\nuser = \"u\"\n";
  auto missing = load(kMinimal + head + "refresh_token_file = \"@DIR@/state/absent\"\n" +
                      oauthAccount("a", "p"));
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(hasWarning(missing, "does not exist yet: run `popbridge oauth login p`"));
  auto noDir = load(kMinimal + head + "refresh_token_file = \"@DIR@/nodir/refresh\"\n" +
                    oauthAccount("a", "p"));
  EXPECT_TRUE(hasError(noDir, "does not exist"));
  dir_.write("open-refresh", "rt\n");
  ::chmod((dir_.path() + "/open-refresh").c_str(), 0644);
  auto open = load(kMinimal + head + "refresh_token_file = \"@DIR@/open-refresh\"\n" +
                   oauthAccount("a", "p"));
  EXPECT_TRUE(hasWarning(open, "readable by other users"));
  auto absent = load(kMinimal + head + oauthAccount("a", "p"));
  EXPECT_TRUE(hasError(absent, "refresh_token_file: required with grant = \"refresh_token\""));
}

TEST_F(OAuth2Config, HttpsProxyFromTheFileOrTheEnvironment) {
  const std::string identity =
      "[oauth2.p]\nprovider = \"microsoft\"\nclient_id = \"app\"\nuser = \"u\"\n"
      "refresh_token_file = \"@DIR@/state/refresh\"\n";
  auto env = load(kMinimal + identity + oauthAccount("a", "p"),
                  {{"https_proxy", "http://proxy.corp:3128"}});
  ASSERT_TRUE(env.ok()) << ::testing::PrintToString(errorsOf(env));
  EXPECT_EQ(env.config->oauth2[0].httpsProxy, "http://proxy.corp:3128");
  auto noProxy = load(
      kMinimal + identity + oauthAccount("a", "p"),
      {{"HTTPS_PROXY", "http://proxy.corp:3128"}, {"no_proxy", "localhost, .microsoftonline.com"}});
  ASSERT_TRUE(noProxy.ok());
  EXPECT_EQ(noProxy.config->oauth2[0].httpsProxy, "");
  auto file = load(kMinimal + identity + "https_proxy = \"http://user:pw@10.0.0.1:8080\"\n" +
                       oauthAccount("a", "p"),
                   {{"https_proxy", "http://other:1"}});
  ASSERT_TRUE(file.ok());
  EXPECT_EQ(file.config->oauth2[0].httpsProxy, "http://user:pw@10.0.0.1:8080");
  auto tlsProxy = load(kMinimal + identity + "https_proxy = \"https://10.0.0.1:8443\"\n" +
                       oauthAccount("a", "p"));
  EXPECT_TRUE(hasError(tlsProxy, "expected an http://host:port proxy"));
  // As curl reads it: a value without a scheme is an http:// proxy.
  auto bare =
      load(kMinimal + identity + oauthAccount("a", "p"), {{"HTTPS_PROXY", "proxy.corp:3128"}});
  ASSERT_TRUE(bare.ok()) << ::testing::PrintToString(errorsOf(bare));
  EXPECT_EQ(bare.config->oauth2[0].httpsProxy, "http://proxy.corp:3128");
}

TEST_F(OAuth2Config, AnEndpointWithCredentialsIsRefusedWithoutEchoingThem) {
  for (const std::string url :
       {"https://id:Secr3tPw@idp.example.com/token", "http://id:Secr3tPw@idp.example.com/token",
        "ftp://id:Secr3tPw@x", "http:id:Secr3tPw@idp.example.com"}) {
    auto result = load(kMinimal + genericIdentity(url));
    EXPECT_FALSE(result.ok()) << url;
    for (const auto& error : result.errors) {
      EXPECT_EQ(error.toString().find("Secr3tPw"), std::string::npos) << error.toString();
    }
  }
}

TEST_F(OAuth2Config, AnUnusedIdentityIsWarnedAbout) {
  auto result = load(kMinimal + "[oauth2.spare]\ntoken_command = [\"x\"]\n");
  ASSERT_TRUE(result.ok()) << ::testing::PrintToString(errorsOf(result));
  EXPECT_TRUE(hasWarning(result, "no [[account]] uses this identity"));
}

}  // namespace
}  // namespace popbridge::config::config_test
