#!/usr/bin/env bash
# Build the systemd Debian 12 image every podman molecule scenario runs on,
# offline: a debootstrap root file system from Debian's mirror, imported with
# `podman import` (no container registry is needed or reachable).
#
# Skips the build when an image built by this same script already exists
# (the image carries a hash of this file as a label). FORCE=1 rebuilds.
# DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR override the mirrors, which default
# to the ones this machine's apt uses.
set -euo pipefail

IMAGE=${IMAGE:-localhost/platform-debian12:latest}
SUITE=bookworm
here=$(cd "$(dirname "$0")" && pwd)
build_hash=$(sha256sum "$here/build-test-image.sh" | cut -c1-16)

if [[ ${FORCE:-0} != 1 ]] && podman image exists "$IMAGE" &&
  [[ $(podman image inspect --format '{{ index .Labels "platform.build-hash" }}' "$IMAGE") == "$build_hash" ]]; then
  exit 0
fi

apt_mirror() {  # first URI of the host's apt sources whose path ends in $1
  { grep -rhoE "(URIs:|deb)\s+https?://[^ ]+" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } |
    awk '{print $2}' | { grep -E "/$1/?$" || true; } | head -n1
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror debian)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-$(apt_mirror debian-security)}
security=${security:-http://deb.debian.org/debian-security}

start=$(date +%s)
rootfs=$(mktemp -d /var/tmp/platform-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "build-test-image: debootstrap $SUITE from $mirror (a few minutes)"
debootstrap --variant=minbase --merged-usr \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,procps,kmod,ca-certificates,gnupg,netbase,less \
  "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb $security $SUITE-security main
SOURCES
# No recommends, and no docs, to keep converges fast.
cat >"$rootfs/etc/apt/apt.conf.d/90platform-test" <<'APT'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/90platform-test" <<'DPKG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
DPKG
# Units that cannot work in a container, and would leave systemd "degraded".
for unit in systemd-remount-fs.service getty.target console-getty.service \
  systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
: >"$rootfs/etc/machine-id"  # a fresh id on each container's first boot
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb

tar -C "$rootfs" -c . | podman import --quiet \
  --change 'CMD ["/sbin/init"]' \
  --change 'ENV container=podman' \
  --change "LABEL platform.build-hash=$build_hash" \
  --change 'STOPSIGNAL SIGRTMIN+3' \
  - "$IMAGE" >/dev/null
echo "build-test-image: built $IMAGE in $(($(date +%s) - start)) s"
