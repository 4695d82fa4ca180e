#!/usr/bin/env bash
# Makes the debian:bookworm and debian:bookworm-slim base images that docker/Dockerfile builds
# FROM, without a registry: debootstrap a minbase Debian 12 root filesystem from the Debian
# mirror and `podman import` it. Where a registry is reachable, `docker build` simply pulls the
# official images instead and this script is not needed.
#
# Images that already exist are kept (`podman image exists`), so repeated runs on one machine
# cost nothing. --force rebuilds them.
#
# Usage: docker/build-base-image.sh [--force]
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), PODMAN (default podman).
# Needs root (debootstrap creates device nodes and chroots) and the debootstrap package.
set -euo pipefail

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
podman=${PODMAN:-podman}
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *)
    echo "usage: $0 [--force]" >&2
    exit 2
    ;;
esac

full=debian:bookworm
slim=debian:bookworm-slim
if ((!force)) && $podman image exists "$full" && $podman image exists "$slim"; then
  echo "build-base-image: $full and $slim already exist"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "build-base-image: debootstrap needs root; run it as root or with sudo" >&2
  exit 1
fi
command -v debootstrap >/dev/null || {
  echo "build-base-image: debootstrap is not installed (apt-get install debootstrap)" >&2
  exit 1
}

work=$(mktemp -d /tmp/popbridge-rootfs-XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
rootfs=$work/rootfs

echo "build-base-image: debootstrap --variant=minbase bookworm from $mirror"
started=$SECONDS
if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
  echo "build-base-image: debootstrap failed" >&2
  exit 1
fi
echo "build-base-image: debootstrap took $((SECONDS - started))s"

# Match the official images: the same suites in deb822 form, and apt settings that keep
# downloaded .deb files out of image layers.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
printf 'Acquire::GzipIndexes "true";\n' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
# No services may start while images install packages.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"

clean_rootfs() {
  rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/* \
    "$1"/var/log/* "$1"/tmp/* "$1"/var/tmp/* "$1"/debootstrap
  : >"$1/etc/hostname"
  : >"$1/etc/resolv.conf"
}
clean_rootfs "$rootfs"

import() {
  local dir=$1 tag=$2
  tar --numeric-owner --xattrs -C "$dir" -c . |
    $podman import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      - "$tag" >/dev/null
  echo "build-base-image: imported $tag ($(du -sh "$dir" | cut -f1))"
}
import "$rootfs" "$full"

# The slim variant drops documentation, man pages and translations, and tells dpkg to skip them
# in later installs too, as the official -slim images do.
find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/*
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
import "$rootfs" "$slim"
