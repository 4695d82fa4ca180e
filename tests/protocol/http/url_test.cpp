#include "protocol/http/url.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace popbridge::protocol {
namespace {

// "scheme|host|port|target|user|password" or "ERROR message".
std::string render(std::string_view url) {
  std::string error = "stale";
  const auto parsed = parseHttpUrl(url, error);
  if (!parsed) {
    EXPECT_FALSE(error.empty());
    return "ERROR " + error;
  }
  EXPECT_TRUE(error.empty());
  return parsed->scheme + "|" + parsed->host + "|" + std::to_string(parsed->port) + "|" +
         parsed->target + "|" + parsed->user + "|" + parsed->password;
}

struct Case {
  std::string url;
  std::string expected;
};

TEST(HttpUrl, Table) {
  const std::vector<Case> cases{
      // Accepted
      {"https://login.microsoftonline.com/common/oauth2/v2.0/token",
       "https|login.microsoftonline.com|443|/common/oauth2/v2.0/token||"},
      {"https://oauth2.googleapis.com/token", "https|oauth2.googleapis.com|443|/token||"},
      {"http://example.com", "http|example.com|80|/||"},
      {"HTTPS://Example.COM:8443/Path?Q=A", "https|example.com|8443|/Path?Q=A||"},
      {"http://example.com?x=1", "http|example.com|80|/?x=1||"},
      {"http://example.com/a#frag", "http|example.com|80|/a||"},
      {"http://example.com#frag", "http|example.com|80|/||"},
      {"http://example.com/a?b=c/d#e?f", "http|example.com|80|/a?b=c/d||"},
      {"http://example.com:/x", "http|example.com|80|/x||"},
      {"http://example.com:65535/", "http|example.com|65535|/||"},
      {"http://example.com:1", "http|example.com|1|/||"},
      {"http://127.0.0.1:3128", "http|127.0.0.1|3128|/||"},
      {"http://[::1]:3128", "http|::1|3128|/||"},
      {"https://[2001:DB8::1]/t", "https|2001:db8::1|443|/t||"},
      {"http://[::ffff:192.0.2.1]", "http|::ffff:192.0.2.1|80|/||"},
      {"http://user:pa%3Ass%40w%20rd@proxy.local:8080", "http|proxy.local|8080|/|user|pa:ss@w rd"},
      {"http://us%65r@proxy", "http|proxy|80|/|user|"},
      {"http://:secret@proxy", "http|proxy|80|/||secret"},
      {"http://a:b:c@proxy", "http|proxy|80|/|a|b:c"},
      {"http://my_host-1.example/", "http|my_host-1.example|80|/||"},
      {"http://example.com/%7Euser/a%2fb", "http|example.com|80|/%7Euser/a%2fb||"},
      {"http://example.com/a;b=c!$&'()*+,=:@", "http|example.com|80|/a;b=c!$&'()*+,=:@||"},
      // Scheme
      {"ftp://example.com/", "ERROR unsupported URL scheme 'ftp' (expected http or https)"},
      {"httpx://example.com/", "ERROR unsupported URL scheme 'httpx' (expected http or https)"},
      {"example.com", "ERROR URL 'example.com' has no scheme (expected http:// or https://)"},
      {"example.com:443", "ERROR unsupported URL scheme 'example.com' (expected http or https)"},
      {"://example.com", "ERROR URL '://example.com' has no scheme (expected http:// or https://)"},
      {"https:example.com", "ERROR URL 'https:example.com' has no host (expected https://host)"},
      {"https:/example.com", "ERROR URL 'https:/example.com' has no host (expected https://host)"},
      // Characters
      {"https://example.com/a b", "ERROR URL contains whitespace or a control byte"},
      {" https://example.com/", "ERROR URL contains whitespace or a control byte"},
      {"https://example.com/\r\nX: y", "ERROR URL contains whitespace or a control byte"},
      {std::string("https://example.com/\0", 21),
       "ERROR URL contains whitespace or a control byte"},
      {"https://example.com/\x7f", "ERROR URL contains whitespace or a control byte"},
      {"https://b\xC3\xBC"
       "cher.de/",
       "ERROR URL contains a non-ASCII byte; percent-encode it"},
      {"https://example.com/a|b", "ERROR URL contains '|', which must be percent-encoded"},
      {"https://example.com\\@evil.com/", "ERROR URL contains '\\', which must be percent-encoded"},
      {"https://example.com/%zz", "ERROR malformed percent-escape in URL path '/%zz'"},
      {"https://example.com/%4", "ERROR malformed percent-escape in URL path '/%4'"},
      {"https://example.com/?a=%", "ERROR malformed percent-escape in URL path '/?a=%'"},
      // Host
      {"https://", "ERROR URL 'https://' has no host"},
      {"https:///token", "ERROR URL 'https:///token' has no host"},
      {"https://:443/", "ERROR URL 'https://:443/' has no host"},
      {"https://user@/", "ERROR URL '...@/' has no host"},
      // User info holds passwords: an error never quotes it.
      {"https://id:Secr3t@:443/", "ERROR URL '...@:443/' has no host"},
      {"http:id:Secr3t@proxy:3128",
       "ERROR URL '...@proxy:3128' has no host (expected http://host)"},
      {"https://exa!mple.com/", "ERROR invalid URL host 'exa!mple.com'"},
      {"https://exa%2Emple.com/", "ERROR invalid URL host 'exa%2Emple.com'"},
      {"https://[::1/", "ERROR unterminated IPv6 literal in URL host '[::1'"},
      {"https://[]/", "ERROR invalid IPv6 literal '' in URL"},
      {"https://[192.0.2.1]/", "ERROR invalid IPv6 literal '192.0.2.1' in URL"},
      {"https://[fe80::1%25eth0]/", "ERROR invalid IPv6 literal 'fe80::1%25eth0' in URL"},
      {"https://[::1]x/", "ERROR unexpected 'x' after the IPv6 literal in URL"},
      {"https://::1/", "ERROR URL 'https://::1/' has no host"},
      // Port
      {"https://example.com:0/", "ERROR invalid URL port '0' (expected 1-65535)"},
      {"https://example.com:65536/", "ERROR invalid URL port '65536' (expected 1-65535)"},
      {"https://example.com:99999999999999999999999/",
       "ERROR invalid URL port '99999999999999999999999' (expected 1-65535)"},
      {"https://example.com:-1/", "ERROR invalid URL port '-1' (expected 1-65535)"},
      {"https://example.com:+443/", "ERROR invalid URL port '+443' (expected 1-65535)"},
      {"https://example.com:443:1/", "ERROR invalid URL port '443:1' (expected 1-65535)"},
      {"https://example.com:https/", "ERROR invalid URL port 'https' (expected 1-65535)"},
      {"https://[::1]:0/", "ERROR invalid URL port '0' (expected 1-65535)"},
      // User info
      {"http://a@b@proxy/", "ERROR URL user info contains '@', which must be percent-encoded"},
      {"http://a[b]@proxy/", "ERROR URL user info contains '[', which must be percent-encoded"},
      {"http://us%zzer@proxy/", "ERROR malformed percent-escape in URL user info"},
      {"http://user:pa%2@proxy/", "ERROR malformed percent-escape in URL user info"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(render(c.url), c.expected) << c.url;
  }
}

TEST(HttpUrl, ErrorsQuoteAtMostFortyBytes) {
  std::string error;
  EXPECT_FALSE(parseHttpUrl("gopher" + std::string(1000, 'x') + "://host/", error));
  EXPECT_LT(error.size(), 100u);
}

}  // namespace
}  // namespace popbridge::protocol
