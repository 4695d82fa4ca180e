#!/bin/bash
# Demo Dovecot entrypoint: on first start, make a demo CA and the certificates for Dovecot
# ("dovecot", the compose service name) and for popbridge ("localhost"), all in the shared /tls
# volume, and seed the sample mail; then run Dovecot in the foreground.
set -euo pipefail

if [[ ! -s /tls/ca.pem ]]; then
  echo "demo: making a demo CA and certificates in /tls"
  tmp=$(mktemp -d)
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=popbridge demo CA" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
  issue() {  # name, common name, subjectAltName
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" -keyout "$tmp/$1.key" \
      -out "$tmp/$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$3" >"$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
      -days 825 -extfile "$tmp/$1.ext" -out "$tmp/$1.pem" 2>/dev/null
  }
  issue dovecot dovecot "DNS:dovecot,DNS:localhost,IP:127.0.0.1"
  issue popbridge localhost "DNS:localhost,DNS:popbridge,IP:127.0.0.1"
  install -m 0644 "$tmp/ca.pem" /tls/ca.pem
  install -m 0644 "$tmp/dovecot.pem" /tls/dovecot.pem
  install -m 0600 "$tmp/dovecot.key" /tls/dovecot.key
  install -m 0644 "$tmp/popbridge.pem" /tls/cert.pem
  # popbridge's image runs as uid/gid 10110.
  install -m 0640 -o 0 -g 10110 "$tmp/popbridge.key" /tls/key.pem
  rm -rf "$tmp"
fi

for seed in /usr/share/popbridge-demo/mail/*/; do
  user=$(basename "$seed")
  maildir=/srv/mail/$user/Maildir
  [[ -d $maildir ]] && continue
  echo "demo: seeding mail for $user"
  mkdir -p "$maildir/cur" "$maildir/new" "$maildir/tmp"
  n=0
  for message in "$seed"*.eml; do
    n=$((n + 1))
    # LF line ends on disk: Dovecot serves them as CRLF and counts sizes that way.
    cp "$message" "$maildir/cur/$((1700000000 + n)).demo$n.popbridge:2,"
  done
done
chown -R vmail:vmail /srv/mail

exec dovecot -F
