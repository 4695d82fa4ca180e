#include "protocol/http/form.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace popbridge::protocol {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(FormEncode, Table) {
  const std::vector<std::pair<Fields, std::string>> cases{
      {{}, ""},
      {{{"", ""}}, "="},
      {{{"grant_type", "refresh_token"}}, "grant_type=refresh_token"},
      {{{"grant_type", "refresh_token"},
        {"refresh_token", "1//0g-AbC_d.e~f/g+h=i&j"},
        {"client_id", "123.apps.googleusercontent.com"}},
       "grant_type=refresh_token&refresh_token=1%2F%2F0g-AbC_d.e%7Ef%2Fg%2Bh%3Di%26j"
       "&client_id=123.apps.googleusercontent.com"},
      {{{"scope", "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}},
       "scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All+offline_access"},
      {{{"a b", "c d"}, {"e", ""}}, "a+b=c+d&e="},
      {{{"kept", "*-._"}, {"escaped", "~!'()"}}, "kept=*-._&escaped=%7E%21%27%28%29"},
      {{{"utf8", "\xC3\xBC\xE2\x82\xAC"}}, "utf8=%C3%BC%E2%82%AC"},
      {{{"ctl", std::string("\0\r\n\x7f\xff", 5)}}, "ctl=%00%0D%0A%7F%FF"},
      {{{"plus", "+"}, {"pct", "%"}}, "plus=%2B&pct=%25"},
  };
  for (const auto& [fields, expected] : cases) {
    EXPECT_EQ(formEncode(fields), expected);
  }
}

TEST(PercentEncode, Table) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"", ""},
      {"AZaz09-._~", "AZaz09-._~"},
      {" ", "%20"},
      {"*+/:@?#&=%", "%2A%2B%2F%3A%40%3F%23%26%3D%25"},
      {"user@example.com", "user%40example.com"},
      {"\xC3\xBC", "%C3%BC"},
      {std::string("\0\x1f\x7f\x80\xff", 5), "%00%1F%7F%80%FF"},
  };
  for (const auto& [text, expected] : cases) {
    EXPECT_EQ(percentEncode(text), expected) << text;
  }
}

}  // namespace
}  // namespace popbridge::protocol
