#pragma once

// The spellings of every enum the config file uses. One table per enum serves the loader, the
// toString() overloads and the "expected one of ..." messages, so they can never disagree.

#include <span>
#include <string>
#include <string_view>

#include "config/config.h"

namespace popbridge::config {

template <class E>
struct EnumName {
  std::string_view name;
  E value;
};

// In the order the messages list them.
template <class E>
std::span<const EnumName<E>> enumNames();
template <>
std::span<const EnumName<LogSeverity>> enumNames();
template <>
std::span<const EnumName<LogFormat>> enumNames();
template <>
std::span<const EnumName<ListenerTls>> enumNames();
template <>
std::span<const EnumName<UpstreamTls>> enumNames();
template <>
std::span<const EnumName<DeletePolicy>> enumNames();
template <>
std::span<const EnumName<TlsVersion>> enumNames();
template <>
std::span<const EnumName<UpstreamLogin>> enumNames();
template <>
std::span<const EnumName<OAuthProvider>> enumNames();
template <>
std::span<const EnumName<OAuthGrant>> enumNames();
template <>
std::span<const EnumName<BearerMechanism>> enumNames();

// "one of none, starttls, implicit"
template <class E>
std::string oneOf() {
  std::string out = "one of ";
  bool first = true;
  for (const EnumName<E>& entry : enumNames<E>()) {
    if (!first) out += ", ";
    out += entry.name;
    first = false;
  }
  return out;
}

}  // namespace popbridge::config
