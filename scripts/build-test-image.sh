#!/usr/bin/env bash
# Build the systemd Debian 12 image the podman molecule scenarios run on,
# offline: one mmdebstrap run from Debian's mirror (no container registry is
# needed or reachable) whose root file system, streamed as a tar, becomes the
# image with `podman import`. The image keeps Debian's package lists and the
# files of the packages the scenarios install in apt's own cache, so their
# installs download nothing apt already holds; nothing more is installed in
# it.
#
# mmdebstrap resolves with apt, downloads in parallel and unpacks everything
# in one dpkg run (what that saves over debootstrap: molecule/README.md).
#
# The image carries a hash of this script's commands (comments left out) as a
# label; it is rebuilt when they change, and after a week, to stay close to
# the mirror. FORCE=1 rebuilds.
# DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR override the mirrors, which default
# to the ones this machine's apt uses.
set -euo pipefail

IMAGE=${IMAGE:-localhost/platform-debian12-apt:latest}
SUITE=bookworm
here=$(cd "$(dirname "$0")" && pwd)
# What builds the image: this script less its comment lines, so that editing a
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

# What the system is: systemd as init, and what Ansible and the roles need
# before they install anything (python3 and python3-apt for the apt module).
system_packages=systemd,systemd-sysv,dbus,python3,python3-apt,iproute2,procps,kmod,ca-certificates,gnupg,netbase,less
# The package files kept in apt's cache: compute_packages and chrony
# (compute-podman), storage_host_packages (storage-podman) and multipath-tools
# (storage-podman's prepare.yml).
cached_packages=(conntrack socat ethtool ipset iptables curl ca-certificates tar chrony open-iscsi nfs-common multipath-tools)
# Units that cannot work in a container, and would leave systemd "degraded".
masked_units=(systemd-remount-fs.service getty.target console-getty.service
  systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service
  sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount)

current() {
  podman image exists "$IMAGE" &&
    [[ $(podman image inspect --format '{{ index .Labels "platform.build-hash" }}' "$IMAGE") == "$build_hash" ]] &&
    (($(date +%s) - $(podman image inspect --format '{{.Created.Unix}}' "$IMAGE") <= 7 * 86400))
}
if [[ ${FORCE:-0} != 1 ]] && current; then
  exit 0
fi

start=$(date +%s)
echo "build-test-image: mmdebstrap $SUITE from $mirror (about a minute)"
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
building=localhost/platform-debian12-apt:building-$$
# mmdebstrap's own output: shown (its last 30 lines) only when the build fails.
log=$(mktemp /var/tmp/platform-image.XXXXXX.log)
trap 'rm -f "$log"' EXIT
# The mirror lines become the image's /etc/apt/sources.list; --aptopt and
# --dpkgopt its apt and dpkg settings (no recommends, no docs: fast converges).
# The customize hooks run in the finished system: mask the units, empty apt's
# cache of the system's own packages and download the scenarios' packages into
# it. --skip=cleanup/apt keeps the lists and those files; mmdebstrap still
# empties /etc/machine-id (a fresh id on each container's first boot).
mmdebstrap --variant=minbase --include="$system_packages" \
  --aptopt='APT::Install-Recommends "false"' --aptopt='APT::Install-Suggests "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook="for unit in ${masked_units[*]}; do ln -sf /dev/null \"\$1/etc/systemd/system/\$unit\"; done" \
  --customize-hook='chroot "$1" apt-get clean' \
  --customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only ${cached_packages[*]}" \
  --skip=cleanup/apt \
  "$SUITE" - "deb $mirror $SUITE main" "deb $mirror $SUITE-updates main" "deb $security $SUITE-security main" 2>"$log" |
  podman import --quiet \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=podman' \
    --change "LABEL platform.build-hash=$build_hash" \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    - "$building" >/dev/null || { tail -n 30 "$log" >&2; podman image rm --ignore "$building" >/dev/null; exit 1; }
# Named only once whole: an interrupted build leaves no image that looks current.
podman tag "$building" "$IMAGE"
podman untag "$IMAGE" "$building"
# The previous build, unless a container still uses it.
[[ -z $old_id ]] || podman image rm "$old_id" >/dev/null 2>&1 || true
echo "build-test-image: built $IMAGE in $(($(date +%s) - start)) s"
