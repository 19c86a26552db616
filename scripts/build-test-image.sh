#!/usr/bin/env bash
# Build the systemd Debian 12 images the podman molecule scenarios run on,
# offline: a debootstrap root file system from Debian's mirror, imported with
# `podman import` (no container registry is needed or reachable), and the
# image derived from it with Debian's package lists and the scenarios' .deb
# files in apt's cache.
#
# Skips the base build when an image built by this same script already exists
# (the image carries a hash of its commands, comments left out, as a label).
# FORCE=1 rebuilds.
# DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR override the mirrors, which default
# to the ones this machine's apt uses.
set -euo pipefail

IMAGE=${IMAGE:-localhost/platform-debian12:latest}
SUITE=bookworm
here=$(cd "$(dirname "$0")" && pwd)
# What builds the images: this script less its comment lines, so that editing a
# comment rebuilds nothing.
script_commands=$(grep -v '^[[:space:]]*#' "$here/build-test-image.sh")
build_hash=$(printf '%s\n' "$script_commands" | sha256sum | cut -c1-16)

apt_mirror() {  # first URI of the host's apt sources whose path ends in $1
  { grep -rhoE "(URIs:|deb)\s+https?://[^ ]+" /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true; } |
    awk '{print $2}' | { grep -E "/$1/?$" || true; } | head -n1
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror debian)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-$(apt_mirror debian-security)}
security=${security:-http://deb.debian.org/debian-security}

# The base image: skipped when an image built by this same script exists.
build_base() {
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
}

if [[ ${FORCE:-0} == 1 ]] || ! podman image exists "$IMAGE" ||
  [[ $(podman image inspect --format '{{ index .Labels "platform.build-hash" }}' "$IMAGE") != "$build_hash" ]]; then
  build_base
fi

# The image the podman scenarios run on: the test image with Debian's package
# lists and the .deb files the scenarios install already in apt's own cache,
# so their installs download nothing apt already holds. The roles' apt tasks
# update lists more than a day old (cache_valid_time), as on a server: then
# a package missing here, or at a newer version on the mirror, is downloaded
# as usual (nothing is installed, and apt checks every cached file against
# the lists). Rebuilt when the test image or this script changes, and after
# a week, to stay close to the mirror.
apt_image=localhost/platform-debian12-apt:latest
base_image=$IMAGE
# compute_packages and chrony (compute-podman), storage_host_packages
# (storage-podman) and multipath-tools (storage-podman's prepare.yml).
apt_packages=(conntrack socat ethtool ipset iptables curl ca-certificates tar chrony open-iscsi nfs-common multipath-tools)
base_id=$(podman image inspect --format '{{.Id}}' "$base_image")
recipe=$(printf '%s\n' "${apt_packages[@]}" "$script_commands" | sha256sum | cut -c1-16)
if ! podman image exists "$apt_image" ||
  [[ $(podman image inspect --format '{{ index .Labels "platform.base-id" }} {{ index .Labels "platform.recipe" }}' "$apt_image") != "$base_id $recipe" ]] ||
  (($(date +%s) - $(podman image inspect --format '{{.Created.Unix}}' "$apt_image") > 7 * 86400)); then
  echo "build-test-image: building $apt_image (package lists and ${#apt_packages[@]} packages' files from Debian's mirror)"
  builder=platform-apt-image-build-$$
  old_id=$(podman image inspect --format '{{.Id}}' "$apt_image" 2>/dev/null || true)
  podman rm --force --ignore "$builder" >/dev/null
  podman run --name "$builder" "$base_image" \
    sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only ${apt_packages[*]} >/dev/null"
  podman commit --quiet \
    --change 'CMD ["/sbin/init"]' \
    --change "LABEL platform.base-id=$base_id" \
    --change "LABEL platform.recipe=$recipe" \
    "$builder" "$apt_image" >/dev/null
  podman rm "$builder" >/dev/null
  # The previous build, unless a container still uses it.
  [[ -z $old_id ]] || podman image rm "$old_id" >/dev/null 2>&1 || true
fi
