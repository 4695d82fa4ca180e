#!/usr/bin/env bash
# The container test: builds docker/Dockerfile with podman (no Docker daemon needed) and runs the
# image as a user would, in front of a private Dovecot on loopback:
#   1. --check-config passes on docker/popbridge.toml and on the compose configs;
#   2. a POP3 session through the container (STLS, USER/PASS, STAT, LIST, UIDL, RETR, DELE,
#      QUIT) gives the right bytes, and Dovecot then shows \Deleted on exactly the DELE'd message;
#      a second session over POP3S no longer lists it;
#   3. the process in the container is not root and holds no capability but NET_BIND_SERVICE;
#   4. the image's HEALTHCHECK succeeds, and fails when nothing listens;
#   5. the image's built-in config binds 110 and 995 as the unprivileged user on a bridge network.
# Base images are made once per machine by docker/build-base-image.sh; podman caches layers, so a
# rerun with unchanged sources takes well under a minute.
#
# Usage: tests/integration/container_test.sh   (as root; ctest runs it as container.podman)
# Environment: POPBRIDGE_CONTAINER_IMAGE (default localhost/popbridge:test).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
image=${POPBRIDGE_CONTAINER_IMAGE:-localhost/popbridge:test}
python=/usr/bin/python3
started=$SECONDS

say() { echo "container_test: $*"; }
fail() {
  echo "container_test: FAIL: $*" >&2
  exit 1
}
# The default runtime (crun) fails on cgroups in these sandboxes, and the sandbox cannot raise
# ulimits, so every podman call that creates a container says so.
limits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
pm() { podman --runtime runc "$@"; }

if [[ $(id -u) -ne 0 ]]; then
  fail "needs root (debootstrap for the base image, and rootful podman with host networking)"
fi

# --- tools ----------------------------------------------------------------------------------
missing=()
for p in podman buildah debootstrap runc; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in dovecot openssl "$python"; do
  command -v "$tool" >/dev/null || fail "$tool is missing (bash .ci/install-deps installs it)"
done

# One run at a time per machine: runs from several build trees share the image tag, the base
# images and the build cache.
exec 9>/tmp/popbridge-container-test.lock
if ! flock -w 900 9; then
  fail "another container test held /tmp/popbridge-container-test.lock for 15 minutes"
fi

# Under the lock, any container of ours still there is left over from a run that was killed
# (a ctest timeout sends SIGKILL, which no trap sees).
podman ps -a -q --filter 'name=^popbridge-test-' | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true

bash "$root/docker/build-base-image.sh"

# --- work dir and cleanup -------------------------------------------------------------------
work=$(mktemp -d /tmp/popbridge-container-XXXXXX)
chmod 755 "$work"
tag=$$-$RANDOM
containers=()
dovecot_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for c in "${containers[@]}"; do
    if ((status != 0)); then
      echo "--- podman logs $c" >&2
      podman logs "$c" 2>&1 | tail -n 40 >&2 || true
    fi
    podman rm -f -t 2 "$c" >/dev/null 2>&1 || true
  done
  if [[ -n $dovecot_pid ]]; then
    kill "$dovecot_pid" 2>/dev/null || true
    wait "$dovecot_pid" 2>/dev/null || true
  fi
  if ((status != 0)) && [[ -f $work/dovecot.log ]]; then
    echo "--- dovecot.log" >&2
    tail -n 20 "$work/dovecot.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the image ------------------------------------------------------------------------------
say "building $image"
build_log=$work/build.log
# --format docker keeps HEALTHCHECK, which the OCI image format has no field for. The build
# stage is tagged first: an untagged stage would be pruned below together with its cached
# package layer, and every run would then download the toolchain again.
for target in build runtime; do
  if [[ $target == build ]]; then
    args=(--target build -t localhost/popbridge:build-cache)
  else
    args=(-t "$image")
  fi
  if ! pm build --format docker --pull=never "${limits[@]}" "${args[@]}" \
    -f "$root/docker/Dockerfile" "$root" >>"$build_log" 2>&1; then
    tail -n 60 "$build_log" >&2
    fail "podman build ($target stage) failed"
  fi
done
# Older builds of these images are now dangling; drop them (and only them) so that disk use
# stays flat.
podman image prune -f --filter label=io.popbridge.stage >/dev/null 2>&1 || true
ccache_stats=$(grep -E "^ *(Hits|Misses):" "$build_log" | head -2 | tr -s ' ' | paste -sd ',' - || true)
say "image built ($((SECONDS - started))s so far; ccache, cumulative:${ccache_stats:- no stats})"

healthcheck_cmd=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$image")
[[ $healthcheck_cmd == *popbridge-healthcheck* ]] ||
  fail "the image has no HEALTHCHECK (got: $healthcheck_cmd)"
# Runtime stage hygiene: no toolchain, no apt lists left behind.
# shellcheck disable=SC2016  # expanded inside the container
if ! out=$(pm run --rm --network none "${limits[@]}" --entrypoint bash "$image" -c \
  'command -v g++ cc cmake && exit 1
   [ -z "$(find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial)" ]' \
  2>&1); then
  fail "the runtime image has build tools or apt lists: $out"
fi
user=$(podman image inspect --format '{{.Config.User}}' "$image")
[[ -n $user && $user != root && $user != 0* ]] || fail "the image's USER is '$user'"

# --- TLS: a test CA signs the upstream's and the listeners' certificates ----------------------
tls=$work/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=popbridge container test CA" \
  -keyout "$work/ca.key" -out "$tls/ca.pem" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/ext.cnf"
for name in server cert; do
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$work/$name.key" \
    -out "$work/$name.csr" 2>/dev/null
  openssl x509 -req -in "$work/$name.csr" -CA "$tls/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext.cnf" -out "$work/$name.pem" 2>/dev/null
done
# What a user mounts at /etc/popbridge/tls: the key readable by the image's group (10110) only.
cp "$work/cert.pem" "$tls/cert.pem"
cp "$work/cert.key" "$tls/key.pem"
chown root:10110 "$tls/key.pem"
chmod 0640 "$tls/key.pem"
chmod 0644 "$tls/cert.pem" "$tls/ca.pem"
chmod 0755 "$tls"

# --- a private Dovecot on loopback ------------------------------------------------------------
free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
imaps_port=$(free_port)
pop3_port=$(free_port)
pop3s_port=$(free_port)
mkdir -p "$work/run" "$work/home"
printf 'alice:{PLAIN}alice-secret-1::::::\nbob:{PLAIN}bob-secret-2::::::\n' >"$work/passwd"
cat >"$work/dovecot.conf" <<CONF
base_dir = $work/run
state_dir = $work/run
log_path = $work/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <$work/server.pem
ssl_key = <$work/server.key
ssl_dh = </usr/share/dovecot/dh.pem
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
default_login_user = nobody
default_internal_user = nobody
default_internal_group = nogroup
passdb {
  driver = passwd-file
  args = scheme=PLAIN $work/passwd
}
userdb {
  driver = passwd-file
  args = $work/passwd
  default_fields = home=$work/home/%u uid=nobody gid=nogroup
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
    ssl = yes
  }
}
CONF
maildir=$work/home/alice/Maildir
mkdir -p "$maildir/cur" "$maildir/new" "$maildir/tmp" "$work/expected"
for i in 1 2 3; do
  {
    printf 'From: Sender %s <sender%s@example.org>\r\n' "$i" "$i"
    printf 'To: alice@example.org\r\n'
    printf 'Subject: container test %s\r\n' "$i"
    printf 'Message-ID: <container-%s@example.org>\r\n\r\n' "$i"
    printf 'Body of message %s.\r\n' "$i"
    printf '.This line starts with a dot.\r\n'
    # Message 3 is large enough to cross several relay buffers.
    if ((i == 3)); then
      for n in $(seq 1 4000); do printf 'line %05d of a longer message body\r\n' "$n"; done
    fi
  } >"$work/expected/$i.eml"
  cp "$work/expected/$i.eml" "$maildir/cur/$((1700000000 + i)).container$i.localhost:2,"
done
chown -R nobody:nogroup "$work/home"
dovecot -F -c "$work/dovecot.conf" &
dovecot_pid=$!

wait_port() {
  local port=$1
  for _ in $(seq 150); do
    "$python" -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2).close()" \
      2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
wait_port "$imaps_port" || fail "dovecot did not open 127.0.0.1:$imaps_port"

# --- the configs a user mounts -----------------------------------------------------------------
mkdir -p "$work/etc" "$work/secrets"
cat >"$work/etc/popbridge.toml" <<CONF
# Mounted over the image's /etc/popbridge/popbridge.toml; paths are the container's.
[server]
auth_failure_delay = "1s"
log_level = "debug"

[[listener]]
address = "127.0.0.1:$pop3_port"
tls = "starttls"
certificate = "/etc/popbridge/tls/cert.pem"
private_key = "/etc/popbridge/tls/key.pem"

[[listener]]
address = "127.0.0.1:$pop3s_port"
tls = "implicit"
certificate = "/etc/popbridge/tls/cert.pem"
private_key = "/etc/popbridge/tls/key.pem"

[upstream]
host = "127.0.0.1"
port = $imaps_port
tls = "implicit"
ca_file = "/etc/popbridge/tls/ca.pem"
server_name = "localhost"

[mailbox]
on_delete = "flag"
CONF
chmod 0644 "$work/etc/popbridge.toml"
printf 'not-a-real-password\n' >"$work/secrets/imap_password"
chmod 0644 "$work/secrets/imap_password"

check_config() {
  local what=$1
  shift
  local out
  if ! out=$(pm run --rm --network none "${limits[@]}" -v "$tls:/etc/popbridge/tls:ro" "$@" \
    2>&1); then
    echo "$out" >&2
    fail "--check-config failed for $what"
  fi
  grep -q ': OK$' <<<"$out" || fail "--check-config printed no OK for $what: $out"
  say "--check-config OK: $what"
}
check_config "docker/popbridge.toml (built into the image)" \
  "$image" --check-config /etc/popbridge/popbridge.toml
# compose.yaml runs the built-in config with these overrides (see its environment: block).
check_config "docker/compose.yaml (built-in config + its environment)" \
  -e POPBRIDGE_UPSTREAM_HOST=dovecot -e POPBRIDGE_UPSTREAM_CA_FILE=/etc/popbridge/tls/ca.pem \
  "$image" --check-config /etc/popbridge/popbridge.toml
check_config "docker/popbridge.provider.toml (compose.provider.yaml)" \
  -v "$root/docker/popbridge.provider.toml:/etc/popbridge/popbridge.toml:ro" \
  -v "$work/secrets/imap_password:/run/secrets/imap_password:ro" \
  "$image" --check-config /etc/popbridge/popbridge.toml
check_config "docker/popbridge.scale.toml (compose.scale.yaml)" \
  -v "$root/docker/popbridge.scale.toml:/etc/popbridge/popbridge.toml:ro" \
  "$image" --check-config /etc/popbridge/popbridge.toml
# The OAuth2 examples: their refresh tokens do not exist yet, which is a warning, not an error.
check_config "docker/m365/popbridge.toml" \
  -v "$root/docker/m365/popbridge.toml:/etc/popbridge/popbridge.toml:ro" \
  "$image" --check-config /etc/popbridge/popbridge.toml
check_config "docker/gmail/popbridge.toml" \
  -v "$root/docker/gmail/popbridge.toml:/etc/popbridge/popbridge.toml:ro" \
  -v "$work/secrets/imap_password:/run/secrets/google_client_secret:ro" \
  "$image" --check-config /etc/popbridge/popbridge.toml
check_config "the test's own config" -v "$work/etc/popbridge.toml:/etc/popbridge/popbridge.toml:ro" \
  "$image" --check-config /etc/popbridge/popbridge.toml
# And a broken one must be refused, with the location of the problem.
printf '[server]\nworkers = "many"\n' >"$work/bad.toml"
chmod 0644 "$work/bad.toml"
if out=$(pm run --rm --network none "${limits[@]}" -v "$work/bad.toml:/etc/popbridge/popbridge.toml:ro" \
  "$image" --check-config /etc/popbridge/popbridge.toml 2>&1); then
  fail "--check-config accepted a bad config: $out"
fi
grep -q 'popbridge.toml:2:.*server.workers' <<<"$out" || fail "unexpected error for a bad config: $out"

# --- the proxy in a container, host network, in front of Dovecot ----------------------------
main=popbridge-test-$tag
containers+=("$main")
# (podman may say on stderr that it has no systemd for the health timer: harmless, the test runs
# the check itself.) The listeners are not on 110 here, so the health command gets the address, as a user with
# other ports would give it.
pm run -d --name "$main" --network host "${limits[@]}" --health-interval disable \
  --health-cmd "[\"/usr/local/bin/popbridge-healthcheck\", \"127.0.0.1:$pop3_port\"]" \
  -v "$work/etc/popbridge.toml:/etc/popbridge/popbridge.toml:ro" \
  -v "$tls:/etc/popbridge/tls:ro" \
  "$image" >/dev/null 2>"$work/run-main.log" || { cat "$work/run-main.log" >&2; fail "podman run failed"; }
wait_port "$pop3_port" || fail "popbridge in the container did not open 127.0.0.1:$pop3_port"
wait_port "$pop3s_port" || fail "popbridge in the container did not open 127.0.0.1:$pop3s_port"
say "container $main is listening on $pop3_port (STARTTLS) and $pop3s_port (POP3S)"

# Not root: PID 1 of the container is popbridge itself, and its uids and capabilities tell.
status=$(podman exec "$main" cat /proc/1/status)
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' <<<"$status")
[[ $uids == "10110 10110 10110 10110" ]] || fail "popbridge runs with uids '$uids', expected 10110"
comm=$(podman exec "$main" cat /proc/1/comm)
[[ $comm == popbridge ]] || fail "PID 1 is '$comm', not popbridge"
capeff=$(awk '/^CapEff:/ {print $2}' <<<"$status")
[[ $capeff == 0000000000000400 ]] ||
  fail "popbridge's effective capabilities are $capeff, expected only NET_BIND_SERVICE (0x400)"
say "PID 1 is popbridge with uid 10110 and only CAP_NET_BIND_SERVICE"

# The HEALTHCHECK, run the way the engine runs it (the image's own command, unchanged, is run
# against the built-in config further down).
if ! out=$(podman healthcheck run "$main" 2>&1); then
  fail "podman healthcheck run failed: $out"
fi
say "HEALTHCHECK: ${out:-healthy}"
# The probe can fail: nothing listens on port 1.
if podman exec "$main" /usr/local/bin/popbridge-healthcheck 127.0.0.1:1 2>/dev/null; then
  fail "the health probe succeeded against a closed port"
fi

# A POP3 session through the container with Python's poplib, then the IMAP side with imaplib.
"$python" - "$pop3_port" "$pop3s_port" "$imaps_port" "$tls/ca.pem" "$work/expected" <<'PY'
import imaplib, poplib, ssl, sys

pop3_port, pop3s_port, imaps_port = (int(p) for p in sys.argv[1:4])
ca, expected_dir = sys.argv[4], sys.argv[5]
expected = [open(f"{expected_dir}/{i}.eml", "rb").read() for i in (1, 2, 3)]
tls = ssl.create_default_context(cafile=ca)

def check(cond, what):
    if not cond:
        sys.exit(f"container_test: FAIL: {what}")

pop = poplib.POP3("127.0.0.1", pop3_port, timeout=30)
check(pop.getwelcome().startswith(b"+OK"), f"greeting {pop.getwelcome()!r}")
pop.stls(context=tls)
pop.user("alice")
pop.pass_("alice-secret-1")
count, size = pop.stat()
check(count == 3, f"STAT count {count}")
check(size == sum(len(m) for m in expected), f"STAT size {size}")
_, listing, _ = pop.list()
sizes = [int(line.split()[1]) for line in listing]
check(sizes == [len(m) for m in expected], f"LIST sizes {sizes}")
_, uidls, _ = pop.uidl()
check(len({line.split()[1] for line in uidls}) == 3, f"UIDL {uidls}")
for n in (1, 3):
    _, lines, octets = pop.retr(n)
    body = b"".join(line + b"\r\n" for line in lines)
    check(body == expected[n - 1], f"RETR {n} differs ({len(body)} vs {len(expected[n - 1])})")
pop.dele(2)
check(pop.stat()[0] == 2, "STAT after DELE")
check(pop.quit().startswith(b"+OK"), "QUIT")

# The other listener (implicit TLS): message 2 is gone from the maildrop.
pop = poplib.POP3_SSL("127.0.0.1", pop3s_port, context=tls, timeout=30)
pop.user("alice")
pop.pass_("alice-secret-1")
count, _ = pop.stat()
check(count == 2, f"POP3S STAT after the delete: {count}")
_, lines, _ = pop.retr(2)
check(b"".join(l + b"\r\n" for l in lines) == expected[2], "POP3S RETR 2 is message 3")
pop.quit()

# A wrong password is refused with [AUTH].
pop = poplib.POP3_SSL("127.0.0.1", pop3s_port, context=tls, timeout=30)
pop.user("alice")
try:
    pop.pass_("wrong-password")
    check(False, "a wrong password was accepted")
except poplib.error_proto as e:
    check(b"[AUTH]" in e.args[0], f"wrong password reply {e.args[0]!r}")
pop.close()

imap = imaplib.IMAP4_SSL("127.0.0.1", imaps_port, ssl_context=ssl.create_default_context(cafile=ca))
imap.login("alice", "alice-secret-1")
imap.select("INBOX", readonly=True)
typ, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
check(typ == "OK", f"IMAP FETCH {typ}")
flags = {}
for item in data:
    if isinstance(item, tuple):
        meta, header = item
        subject = header.decode().strip().split(": ", 1)[1]
        flags[subject] = meta.decode()
check(len(flags) == 3, f"IMAP sees {len(flags)} messages")
for i in (1, 2, 3):
    f = flags[f"container test {i}"]
    check(("\\Deleted" in f) == (i == 2), f"message {i} flags {f}")
    check("\\Seen" not in f, f"message {i} was marked seen: {f}")
imap.logout()
print("container_test: POP3 session through the container OK; IMAP shows \\Deleted on message 2 only")
PY

logs=$(podman logs "$main" 2>&1)
if grep -q -e alice-secret-1 -e wrong-password <<<"$logs"; then
  fail "a password appears in the container log"
fi

# --- the built-in config on a bridge network: 110 and 995 as uid 10110 ----------------------
bridge=popbridge-test-bridge-$tag
containers+=("$bridge")
pm run -d --name "$bridge" "${limits[@]}" --health-interval disable \
  -e POPBRIDGE_UPSTREAM_HOST=imap.invalid -v "$tls:/etc/popbridge/tls:ro" "$image" >/dev/null \
  2>"$work/run-bridge.log" || { cat "$work/run-bridge.log" >&2; fail "podman run failed"; }
ok=0
for _ in $(seq 50); do
  if podman healthcheck run "$bridge" >/dev/null 2>&1; then
    ok=1
    break
  fi
  [[ $(podman inspect --format '{{.State.Running}}' "$bridge") == true ]] || break
  sleep 0.2
done
((ok)) || fail "the image's default config did not serve on 110 in a bridge network"
podman exec "$bridge" bash -c 'exec 3<>/dev/tcp/127.0.0.1/995' ||
  fail "nothing listens on 995 with the image's default config"
say "built-in config: POP3 on 110 and 995 as uid 10110 (bridge network), HEALTHCHECK healthy"

say "all checks passed in $((SECONDS - started))s"
