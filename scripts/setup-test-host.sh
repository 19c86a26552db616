#!/usr/bin/env bash
# Prepare this machine to run the molecule podman scenarios and the alert
# tests, from nothing: podman with the runc runtime, debootstrap, promtool, nginx and
# the offline-built Debian 12 systemd image (scripts/build-test-image.sh).
# Idempotent and quiet once done.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup-test-host: run as root (it installs podman, runc and debootstrap with apt and runs privileged containers)" >&2
  exit 1
fi

packages=(podman runc debootstrap uidmap slirp4netns passt fuse-overlayfs iptables ca-certificates)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup-test-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# promtool (the alert tests) from Debian's prometheus package and nginx (the
# monitoring-ui login test) from Debian's nginx package: extracted, not
# installed, so no Prometheus or nginx service is set up on this machine.
extract() {  # package, path inside it, where it goes
  if ! "$3" -v >/dev/null 2>&1 && ! "$3" --version >/dev/null 2>&1; then
    echo "setup-test-host: extracting $2 from Debian's $1 package"
    work=$(mktemp -d)
    chmod 0755 "$work"  # apt fetches as the _apt user
    (cd "$work" && apt-get download -qq "$1" >/dev/null && dpkg-deb --fsys-tarfile "$1"_*.deb | tar -x ".$2")
    install -m 0755 "$work$2" "$3"
    rm -rf "$work"
  fi
}
extract prometheus /usr/bin/promtool /usr/local/bin/promtool
extract nginx /usr/sbin/nginx /usr/local/bin/nginx

# containers.conf: runc (crun fails on this kernel's cgroup layout), and no
# ulimit or pids defaults (the hard limits cannot be raised here).
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
python3 - "$conf" <<'PY'
import re
import sys
from pathlib import Path

path = Path(sys.argv[1])
old = path.read_text() if path.exists() else ""
wanted = {
    "containers": {"default_ulimits": "[]", "pids_limit": "0"},
    "engine": {"runtime": '"runc"'},
}
lines = old.splitlines()
for section, settings in wanted.items():
    header = next((i for i, line in enumerate(lines) if line.strip() == f"[{section}]"), None)
    if header is None:
        lines += ([""] if lines else []) + [f"[{section}]"]
        header = len(lines) - 1
    end = next((i for i in range(header + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines))
    for key, value in settings.items():
        found = next((i for i in range(header + 1, end) if re.match(rf"^\s*{key}\s*=", lines[i])), None)
        if found is None:
            lines.insert(header + 1, f"{key} = {value}")
            end += 1
        else:
            lines[found] = f"{key} = {value}"
new = "\n".join(lines) + "\n"
if new != old:
    path.write_text(new)
    print(f"setup-test-host: updated {path}")
PY

"$(dirname "$0")/build-test-image.sh"

# The image the podman scenarios run on: the test image with Debian's package
# lists and the .deb files the scenarios install already in apt's own cache,
# so their `apt-get update` fetches only what changed and their installs
# download nothing apt already holds (a package missing here, or at a newer
# version on the mirror, is downloaded as usual: nothing is installed, and
# apt checks every cached file against the fresh lists). Rebuilt when the
# test image or this script changes, and after a week, to stay close to
# the mirror.
apt_image=localhost/platform-debian12-apt:latest
base_image=localhost/platform-debian12:latest
# compute_packages and chrony (compute-podman), storage_host_packages
# (storage-podman) and multipath-tools (storage-podman's prepare.yml).
apt_packages=(conntrack socat ethtool ipset iptables curl ca-certificates tar chrony open-iscsi nfs-common multipath-tools)
base_id=$(podman image inspect --format '{{.Id}}' "$base_image")
recipe=$(printf '%s\n' "${apt_packages[@]}" | cat - "$0" | sha256sum | cut -c1-16)
if ! podman image exists "$apt_image" ||
  [[ $(podman image inspect --format '{{ index .Labels "platform.base-id" }} {{ index .Labels "platform.recipe" }}' "$apt_image") != "$base_id $recipe" ]] ||
  (($(date +%s) - $(podman image inspect --format '{{.Created.Unix}}' "$apt_image") > 7 * 86400)); then
  echo "setup-test-host: building $apt_image (package lists and ${#apt_packages[@]} packages' files from Debian's mirror)"
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
