#!/usr/bin/env bash
# Prepare this machine to run the molecule podman scenarios, from nothing:
# podman with the runc runtime, debootstrap, and the offline-built Debian 12
# systemd image (scripts/build-test-image.sh). Idempotent and quiet once done.
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

# containers.conf: runc (crun fails on this kernel's cgroup layout), and no
# ulimit or pids defaults (the hard limits cannot be raised here).
conf=/etc/containers/containers.conf
mkdir -p /etc/containers
python3 - "$conf" <<'PY'
import re
import sys
from pathlib import Path

path = Path(sys.argv[1])
text = path.read_text() if path.exists() else ""
wanted = {
    "containers": {"default_ulimits": "[]", "pids_limit": "0"},
    "engine": {"runtime": '"runc"'},
}
for section, settings in wanted.items():
    if not re.search(rf"^\[{section}\]\s*$", text, re.M):
        text = text.rstrip("\n") + ("\n\n" if text else "") + f"[{section}]\n"
    for key, value in settings.items():
        line = f"{key} = {value}"
        # Replace the key inside its section if it is there, else add it under the header.
        block = re.search(rf"(^\[{section}\]\s*$)(.*?)(?=^\[|\Z)", text, re.M | re.S)
        body = block.group(2)
        if re.search(rf"^\s*{key}\s*=.*$", body, re.M):
            body = re.sub(rf"^\s*{key}\s*=.*$", line, body, count=1, flags=re.M)
        else:
            body = "\n" + line + body if not body.startswith("\n") else "\n" + line + body
        text = text[: block.start(2)] + body + text[block.end(2):]
new = text if text.endswith("\n") else text + "\n"
if not path.exists() or path.read_text() != new:
    path.write_text(new)
    print(f"setup-test-host: updated {path}")
PY

"$(dirname "$0")/build-test-image.sh"
