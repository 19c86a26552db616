#!/usr/bin/env bash
# Prepare this machine to run the molecule podman scenarios and the alert
# tests, from nothing: podman with the runc runtime, mmdebstrap, promtool, nginx and
# the offline-built Debian 12 systemd image (scripts/build-test-image.sh).
# Idempotent and quiet once done.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup-test-host: run as root (it installs podman, runc and mmdebstrap with apt and runs privileged containers)" >&2
  exit 1
fi

packages=(podman runc mmdebstrap uidmap slirp4netns passt fuse-overlayfs iptables ca-certificates)
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

# The image the podman scenarios run on (scripts/build-test-image.sh). With
# --no-images it is left to the first scenario that needs it
# (tests/test_molecule.py builds it then, under a lock): `make test` does
# that, so that its build overlaps the tests that need no container.
if [[ ${1:-} != --no-images ]]; then
  "$(dirname "$0")/build-test-image.sh"
fi
