#!/usr/bin/env bash
# The package test: builds the Debian package from a build tree (cpack -G DEB into a temporary
# directory), installs it with dpkg into a throwaway root, and checks what systemd and an admin
# would rely on:
#   1. dpkg-deb -I names the runtime libraries' packages in Depends, DEBIAN/conffiles lists the
#      config, and the version is the project's;
#   2. the unit lands where systemd reads package units; the binary its ExecStart runs and the
#      config it passes are installed there; its User= is created and StateDirectory= matches
#      where the documented refresh_token_file lives;
#   3. the installed binary finds every library as installed (RUNPATH to BoringSSL's android
#      directory; no LD_LIBRARY_PATH), each from a package in Depends, runs --version and passes
#      --check-config on the installed config;
#   4. systemd-analyze verify accepts the unit, and its offline security exposure stays at most
#      1.6 (so no sandboxing line is lost unnoticed);
#   5. the installed binary with the shipped config, started as the unit starts it (not root,
#      CAP_NET_BIND_SERVICE only, $NOTIFY_SOCKET), binds a port below 1024, sends READY=1,
#      greets with +OK, and stops on SIGTERM with STOPPING=1 and exit 0;
#   6. the postinst (run chrootless, with DPKG_ROOT) creates the popbridge user and a 0700
#      /var/lib/popbridge it owns; removing the package keeps the edited conffile.
# Needs root (exits 77, a skip, otherwise); no network; about 15 s, mostly cpack stripping the
# binary and running dpkg-shlibdeps.
#
# Usage: tests/package/package_test.sh BUILD_DIR   (ctest runs it as package.deb)
set -euo pipefail
build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

say() { echo "package_test: $*"; }
fail() {
  echo "package_test: FAIL: $*" >&2
  exit 1
}
if [[ $(id -u) -ne 0 ]]; then
  # dpkg puts conffiles in place only when it configures, and the postinst chowns.
  say "SKIP: needs root (configures the package into a throwaway root)"
  exit 77
fi
for tool in cpack dpkg dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || fail "$tool is missing (bash .ci/install-deps --test installs it)"
done

work=$(mktemp -d /tmp/popbridge-package-XXXXXX)
trap 'rm -rf "$work"' EXIT

# --- build the package ------------------------------------------------------------------------
# -B keeps cpack's staging tree in the temporary directory, so parallel runs do not collide.
cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack -G DEB failed"; }
debs=("$work"/out/popbridge_*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "expected one popbridge_*.deb, got: ${debs[*]}"
deb=${debs[0]}
say "built $(basename "$deb")"

info=$(dpkg-deb -I "$deb")
field() { sed -n "s/^ $1: //p" <<<"$info"; }
project_version=$(sed -n 's/^project(popbridge VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[[ $(field Version) == "$project_version-1" ]] ||
  fail "package version $(field Version), project version $project_version"
depends=$(field Depends)
# The package names in Depends, one a line, without versions or alternatives' bars.
depends_names=$(sed 's/([^)]*)//g; s/[,|]/\n/g' <<<"$depends" | tr -d ' ' | grep -v '^$')
depends_on() { grep -Fqx -- "$1" <<<"$depends_names"; }
for pkg in android-libboringssl libuv1 libtomlplusplus3 libargon2-1 libfmt9 libc6; do
  depends_on "$pkg" || fail "Depends lacks $pkg: $depends"
done
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/popbridge/popbridge.toml "$work/control/conffiles" ||
  fail "DEBIAN/conffiles does not list /etc/popbridge/popbridge.toml"
for script in postinst prerm postrm; do
  [[ -x $work/control/$script ]] || fail "DEBIAN/$script is missing or not executable"
  sh -n "$work/control/$script" || fail "DEBIAN/$script has a syntax error"
done
say "Depends: $depends"

# --- install into a throwaway root ------------------------------------------------------------
dest=$work/root
mkdir -p "$dest/var/lib/dpkg/info" "$dest/var/lib/dpkg/updates" "$dest/var/lib/dpkg/triggers" \
  "$dest/etc"
: >"$dest/var/lib/dpkg/status"
dpkg_root=(dpkg --root="$dest" --force-depends --force-not-root --no-triggers
  --log="$work/dpkg.log")
# The root has no shell to chroot into: maintainer scripts run chrootless, with DPKG_ROOT set,
# and must touch nothing outside it.
"${dpkg_root[@]}" --force-script-chrootless --install "$deb" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; fail "dpkg --install into $dest failed"; }
"${dpkg_root[@]}" -L popbridge >"$work/files.txt"

unit=/lib/systemd/system/popbridge.service
[[ -f $dest$unit ]] || fail "the unit is not at $unit"
grep -qx "$unit" "$work/files.txt" || fail "dpkg does not list $unit as the package's"
execstart=$(sed -n 's/^ExecStart=//p' "$dest$unit")
read -r -a argv <<<"$execstart"
binary=${argv[0]}
[[ $binary == /* && -f $dest$binary && -x $dest$binary ]] ||
  fail "ExecStart's $binary is not an executable file in the package"
config=""
for ((i = 1; i < ${#argv[@]}; ++i)); do
  [[ ${argv[i]} == --config ]] && config=${argv[i + 1]:-}
done
[[ -n $config && -f $dest$config ]] || fail "ExecStart's --config '$config' is not installed"
status_conffiles=$(sed -n '/^Conffiles:/,/^[A-Z]/p' "$dest/var/lib/dpkg/status")
grep -q " $config " <<<"$status_conffiles" || fail "dpkg did not register $config as a conffile"
user=$(sed -n 's/^User=//p' "$dest$unit")
state=$(sed -n 's/^StateDirectory=//p' "$dest$unit")
sysusers=$(grep -v '^#' "$dest/usr/lib/sysusers.d/popbridge.conf")
[[ $(awk '{print $1, $2}' <<<"$sysusers") == "u $user" ]] ||
  fail "sysusers.d does not create the unit's User=$user: $sysusers"
token_file=$(sed -n 's/^refresh_token_file = "\(.*\)"/\1/p' "$root/config/popbridge.example.toml")
[[ $(dirname "$token_file") == "/var/lib/$state" ]] ||
  fail "the example's refresh_token_file $token_file is outside StateDirectory /var/lib/$state"
for doc in README.md config/README.md config/popbridge.example.toml copyright; do
  [[ -s $dest/usr/share/doc/popbridge/$doc ]] || fail "/usr/share/doc/popbridge/$doc is missing"
done
say "unit, binary, config and docs are where the unit expects them"

# --- the installed binary, as the real system would load it -----------------------------------
installed=$dest$binary
ldd_out=$(env -u LD_LIBRARY_PATH ldd "$installed")
if grep -q "not found" <<<"$ldd_out"; then
  echo "$ldd_out"
  fail "the installed binary does not find all its libraries"
fi
grep -q "libssl.so.0 => /usr/lib/x86_64-linux-gnu/android/libssl.so.0" <<<"$ldd_out" ||
  fail "BoringSSL is not loaded from the android directory: $ldd_out"
# Each library the binary loads comes from a package the .deb depends on.
while read -r lib; do
  owner=$(dpkg -S "$lib" 2>/dev/null | head -n1 | cut -d: -f1) ||
    owner=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -n1 | cut -d: -f1) || true
  [[ -n $owner ]] || continue # the dynamic loader and vdso belong to libc6, named above
  # A dependency may name a virtual package the library's package provides
  # (libspdlog1.10-fmt9).
  names=$(dpkg-query -W -f='${Package}, ${Provides}' "$owner" | sed 's/ ([^)]*)//g')
  found=0
  for name in ${names//,/ }; do
    if depends_on "$name"; then found=1; fi
  done
  ((found)) || fail "$lib is from $owner ($names), none of which is in Depends"
done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$ldd_out")
version=$(env -u LD_LIBRARY_PATH "$installed" --version)
[[ $version == "popbridge $project_version "* ]] || fail "--version says '$version'"
env -u LD_LIBRARY_PATH "$installed" --check-config "$dest$config" >"$work/check.log" 2>&1 ||
  { cat "$work/check.log"; fail "--check-config rejects the installed $config"; }
say "installed binary: $version; --check-config OK on $config"

# --- systemd's view of the unit ---------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  # verify checks that ExecStart's binary is executable on this machine: point it at the
  # installed one (the only change to the unit).
  mkdir -p "$work/verify"
  sed "s|$binary|$installed|g" "$dest$unit" >"$work/verify/popbridge.service"
  systemd-analyze verify "$work/verify/popbridge.service" >"$work/verify.log" 2>&1 ||
    { cat "$work/verify.log"; fail "systemd-analyze verify rejects the unit"; }
  # Exposure is on a 0..100 scale here (the report shows it divided by 10).
  if ! systemd-analyze security --offline=yes --root="$dest" --threshold=16 popbridge.service \
    >"$work/security.log" 2>&1; then
    grep -E "✗|Overall" "$work/security.log" || cat "$work/security.log"
    fail "the unit's sandboxing weakened (exposure above 1.6)"
  fi
  say "systemd-analyze verify OK; $(grep -o 'Overall exposure level.*' "$work/security.log")"
else
  say "systemd-analyze not installed: unit verification skipped"
fi

# --- the service as the unit starts it ------------------------------------------------------------
# Not root, holding only CAP_NET_BIND_SERVICE (ambient, as the unit's AmbientCapabilities= gives
# it), with $NOTIFY_SOCKET: the shipped config binds a port below 1024 on loopback (a free one
# rather than 110, which may be taken here), READY=1 arrives, the greeting is +OK, and SIGTERM
# gives STOPPING=1 and exit 0. The popbridge user exists only in the throwaway root, so nobody
# stands in for it.
chmod 755 "$work"
port=$(/usr/bin/python3 -c '
import socket
for p in range(1023, 600, -1):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        pass
    finally:
        s.close()')
[[ -n $port ]] || fail "no free port below 1024 on 127.0.0.1"
sed "s/^address = \"127.0.0.1:110\"/address = \"127.0.0.1:$port\"/" "$dest$config" >"$work/run.toml"
grep -q "127.0.0.1:$port" "$work/run.toml" || fail "the shipped config has no 127.0.0.1:110 listener"
chmod 644 "$work/run.toml"
/usr/bin/python3 - "$work" "$port" "$installed" <<'PY' || fail "the service did not start and stop as under systemd"
import os, signal, socket, subprocess, sys
work, port, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(os.path.join(work, "notify"))
os.chmod(os.path.join(work, "notify"), 0o777)
notify.settimeout(15)
env = {"NOTIFY_SOCKET": os.path.join(work, "notify"), "PATH": "/usr/bin:/bin"}
cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
       "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
       "--bounding-set=-all,+net_bind_service", "--no-new-privs",
       binary, "--config", os.path.join(work, "run.toml")]
log = open(os.path.join(work, "service.log"), "wb")
proc = subprocess.Popen(cmd, env=env, stderr=log, stdout=log)
def fail(why):
    proc.kill()
    proc.wait()
    sys.stdout.write(open(os.path.join(work, "service.log")).read())
    sys.exit("package_test: " + why)
def expect(state):
    try:
        while True:
            msg = notify.recv(4096).decode()
            if state in msg.split("\n"):
                return
    except socket.timeout:
        fail(f"no {state} on NOTIFY_SOCKET")
expect("READY=1")
with socket.create_connection(("127.0.0.1", port), 5) as c:
    greeting = c.recv(512)
    if not greeting.startswith(b"+OK"):
        fail(f"greeting {greeting!r}")
status = open(f"/proc/{proc.pid}/status").read()
fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
uid = fields["Uid"].split()[1]
if uid != str(65534) or int(fields["CapEff"], 16) != 1 << 10:
    fail(f"runs as uid {uid} with CapEff {fields['CapEff']}, not as nobody with NET_BIND_SERVICE")
proc.send_signal(signal.SIGTERM)
expect("STOPPING=1")
if proc.wait(15) != 0:
    fail(f"exit {proc.returncode} after SIGTERM")
print(f"package_test: as uid {uid} with CAP_NET_BIND_SERVICE only: bound 127.0.0.1:{port}, "
      "READY=1, +OK greeting, SIGTERM -> STOPPING=1, exit 0")
PY

# --- maintainer scripts -----------------------------------------------------------------------
entry=$(grep "^$user:" "$dest/etc/passwd") || fail "postinst did not create user $user"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
((uid > 0 && uid < 1000)) || fail "$user has uid $uid, not a system uid"
[[ $home == "/var/lib/$state" && $shell == /usr/sbin/nologin ]] ||
  fail "$user has home $home and shell $shell"
[[ $(stat -c '%a %u:%g' "$dest/var/lib/$state") == "700 $uid:$gid" ]] ||
  fail "/var/lib/$state is $(stat -c '%a %u:%g' "$dest/var/lib/$state"), expected 700 $uid:$gid"
say "postinst: user $user ($uid:$gid), /var/lib/$state 0700"
echo "# edited by the admin" >>"$dest$config"
"${dpkg_root[@]}" --force-script-chrootless --remove popbridge >"$work/remove.log" 2>&1 ||
  { cat "$work/remove.log"; fail "dpkg --remove failed"; }
[[ ! -e $dest$binary && ! -e $dest$unit ]] || fail "dpkg --remove left the binary or the unit"
grep -q "edited by the admin" "$dest$config" || fail "dpkg --remove lost the edited conffile"
say "remove: binary and unit gone, edited $config kept"
say "PASS"
