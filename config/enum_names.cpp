#include "config/enum_names.h"

#include <array>

namespace popbridge::config {
namespace {

constexpr std::array<EnumName<LogSeverity>, 4> kLogLevels{{{"error", LogSeverity::Error},
                                                           {"warn", LogSeverity::Warn},
                                                           {"info", LogSeverity::Info},
                                                           {"debug", LogSeverity::Debug}}};
constexpr std::array<EnumName<LogFormat>, 2> kLogFormats{
    {{"text", LogFormat::Text}, {"json", LogFormat::Json}}};
constexpr std::array<EnumName<ListenerTls>, 3> kListenerTls{{{"none", ListenerTls::None},
                                                             {"starttls", ListenerTls::StartTls},
                                                             {"implicit", ListenerTls::Implicit}}};
constexpr std::array<EnumName<UpstreamTls>, 3> kUpstreamTls{{{"implicit", UpstreamTls::Implicit},
                                                             {"starttls", UpstreamTls::StartTls},
                                                             {"none", UpstreamTls::None}}};
constexpr std::array<EnumName<TlsVersion>, 4> kTlsVersions{{{"1.0", TlsVersion::V1_0},
                                                            {"1.1", TlsVersion::V1_1},
                                                            {"1.2", TlsVersion::V1_2},
                                                            {"1.3", TlsVersion::V1_3}}};
constexpr std::array<EnumName<UpstreamLogin>, 3> kUpstreamLogins{{{"auto", UpstreamLogin::Auto},
                                                                  {"login", UpstreamLogin::Login},
                                                                  {"plain", UpstreamLogin::Plain}}};
constexpr std::array<EnumName<OAuthProvider>, 3> kOAuthProviders{
    {{"microsoft", OAuthProvider::Microsoft},
     {"google", OAuthProvider::Google},
     {"generic", OAuthProvider::Generic}}};
constexpr std::array<EnumName<OAuthGrant>, 3> kOAuthGrants{
    {{"refresh_token", OAuthGrant::RefreshToken},
     {"client_credentials", OAuthGrant::ClientCredentials},
     {"command", OAuthGrant::Command}}};
constexpr std::array<EnumName<BearerMechanism>, 3> kBearerMechanisms{
    {{"auto", BearerMechanism::Auto},
     {"xoauth2", BearerMechanism::XOAuth2},
     {"oauthbearer", BearerMechanism::OAuthBearer}}};

// protocol/ owns DeletePolicy's spelling; the table only fixes the order the messages use.
std::array<EnumName<DeletePolicy>, 5> makeDeletePolicies() {
  std::array<EnumName<DeletePolicy>, 5> names{};
  constexpr std::array<DeletePolicy, 5> kOrder{DeletePolicy::Flag, DeletePolicy::Expunge,
                                               DeletePolicy::Move, DeletePolicy::Seen,
                                               DeletePolicy::Keep};
  for (std::size_t i = 0; i < kOrder.size(); ++i) {
    names[i] = {protocol::toString(kOrder[i]), kOrder[i]};
  }
  return names;
}

template <class E>
std::string_view nameOf(E value) {
  for (const EnumName<E>& entry : enumNames<E>()) {
    if (entry.value == value) return entry.name;
  }
  return "?";
}

}  // namespace

template <>
std::span<const EnumName<LogSeverity>> enumNames() {
  return kLogLevels;
}
template <>
std::span<const EnumName<LogFormat>> enumNames() {
  return kLogFormats;
}
template <>
std::span<const EnumName<ListenerTls>> enumNames() {
  return kListenerTls;
}
template <>
std::span<const EnumName<UpstreamTls>> enumNames() {
  return kUpstreamTls;
}
template <>
std::span<const EnumName<DeletePolicy>> enumNames() {
  static const std::array<EnumName<DeletePolicy>, 5> kDeletePolicies = makeDeletePolicies();
  return kDeletePolicies;
}
template <>
std::span<const EnumName<TlsVersion>> enumNames() {
  return kTlsVersions;
}
template <>
std::span<const EnumName<UpstreamLogin>> enumNames() {
  return kUpstreamLogins;
}
template <>
std::span<const EnumName<OAuthProvider>> enumNames() {
  return kOAuthProviders;
}
template <>
std::span<const EnumName<OAuthGrant>> enumNames() {
  return kOAuthGrants;
}
template <>
std::span<const EnumName<BearerMechanism>> enumNames() {
  return kBearerMechanisms;
}

std::string_view toString(LogSeverity value) {
  return nameOf(value);
}
std::string_view toString(LogFormat value) {
  return nameOf(value);
}
std::string_view toString(ListenerTls value) {
  return nameOf(value);
}
std::string_view toString(UpstreamTls value) {
  return nameOf(value);
}
std::string_view toString(TlsVersion value) {
  return nameOf(value);
}
std::string_view toString(UpstreamLogin value) {
  return nameOf(value);
}
std::string_view toString(OAuthProvider value) {
  return nameOf(value);
}
std::string_view toString(OAuthGrant value) {
  return nameOf(value);
}
std::string_view toString(BearerMechanism value) {
  return nameOf(value);
}

}  // namespace popbridge::config
