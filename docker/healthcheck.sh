#!/bin/bash
# Container health probe: succeeds when popbridge answers a POP3 connection with "+OK".
# bash's /dev/tcp does the connect, so the slim image needs no nc or curl. It probes a cleartext
# or STARTTLS listener.
# Usage: popbridge-healthcheck [HOST:PORT]   (default 127.0.0.1:110; IPv6 as [::1]:110)
# The upstream IMAP server is not contacted. (An argument rather than a POPBRIDGE_* variable:
# popbridge warns about POPBRIDGE_* variables it does not know.)
set -u
if (($# > 1)); then
  echo "usage: popbridge-healthcheck [HOST:PORT]" >&2
  exit 2
fi
address=${1:-127.0.0.1:110}
host=${address%:*}
port=${address##*:}
host=${host#[}
host=${host%]}
if [[ -z $host || ! $port =~ ^[0-9]+$ ]]; then
  echo "healthcheck: expected HOST:PORT, got '$address'" >&2
  exit 1
fi
if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "healthcheck: cannot connect to $host:$port" >&2
  exit 1
fi
greeting=""
if ! IFS= read -r -t 4 greeting <&3; then
  echo "healthcheck: no greeting from $host:$port" >&2
  exit 1
fi
printf 'QUIT\r\n' >&3
exec 3>&-
if [[ $greeting != "+OK"* ]]; then
  echo "healthcheck: unexpected greeting from $host:$port: ${greeting%$'\r'}" >&2
  exit 1
fi
exit 0
