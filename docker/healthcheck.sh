#!/bin/bash
# Container health probe. bash's /dev/tcp does the connect, so the slim image needs no nc or curl.
#
# Usage: popbridge-healthcheck [http://HOST:PORT/PATH | HOST:PORT]
#   http://HOST:PORT/PATH  GET PATH from popbridge's [metrics] listener; healthy on "200".
#                          The default, http://127.0.0.1:9110/healthz, is healthy while every
#                          worker loop of popbridge runs (the image's built-in config enables
#                          that listener). /readyz also asks the upstream IMAP server.
#   HOST:PORT              a POP3 greeting probe: healthy when a cleartext or STARTTLS listener
#                          answers "+OK" (IPv6 as [::1]:110). The upstream is not contacted.
# (An argument rather than a POPBRIDGE_* variable: popbridge warns about POPBRIDGE_* variables it
# does not know.)
set -u
if (($# > 1)); then
  echo "usage: popbridge-healthcheck [http://HOST:PORT/PATH | HOST:PORT]" >&2
  exit 2
fi
target=${1:-http://127.0.0.1:9110/healthz}
path=""
address=$target
if [[ $target == http://* ]]; then
  rest=${target#http://}
  address=${rest%%/*}
  path=/${rest#*/}
  [[ $rest == */* ]] || path=/
fi
host=${address%:*}
port=${address##*:}
host=${host#[}
host=${host%]}
if [[ -z $host || ! $port =~ ^[0-9]+$ ]]; then
  echo "healthcheck: expected HOST:PORT or http://HOST:PORT/PATH, got '$target'" >&2
  exit 1
fi
if ! exec 3<>"/dev/tcp/$host/$port"; then
  echo "healthcheck: cannot connect to $host:$port" >&2
  exit 1
fi
if [[ -n $path ]]; then
  printf 'GET %s HTTP/1.0\r\n\r\n' "$path" >&3
  status=""
  if ! IFS= read -r -t 4 status <&3; then
    echo "healthcheck: no answer from $target" >&2
    exit 1
  fi
  # The body says why (e.g. which worker is stuck); read what arrives within the timeout.
  body=""
  while IFS= read -r -t 4 line <&3; do
    [[ -z ${line%$'\r'} ]] && break
  done
  IFS= read -r -t 4 -d '' body <&3
  exec 3>&-
  if [[ $status != "HTTP/1."[01]" 200 "* ]]; then
    echo "healthcheck: $target: ${status%$'\r'}: ${body%$'\n'}" >&2
    exit 1
  fi
  exit 0
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
