#!/bin/sh
# Repackage Debian's containerd, runc and CNI plugins in the upstream release
# layouts, under <mirror>/<key>/v<version>/<file> (upstream's layout under one
# directory per key), and record each file's version and sha256 in
# <mirror>/versions.json.
set -eu
mirror=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download containerd runc containernetworking-plugins >/dev/null
for deb in *.deb; do dpkg-deb -x "$deb" root; done
version() { dpkg-deb -f "$1" Version | sed 's/^[0-9]*://; s/[~+].*//'; }
containerd=$(version containerd_*.deb)
runc=$(version runc_*.deb)
cni=$(version containernetworking-plugins_*.deb)
arch=$(dpkg --print-architecture)

mkdir -p "$mirror/containerd/v$containerd" "$mirror/runc/v$runc" "$mirror/cni_plugins/v$cni" stage/bin cni
cp root/usr/bin/containerd root/usr/bin/containerd-shim-runc-v2 root/usr/bin/ctr stage/bin/
tar -C stage -czf "$mirror/containerd/v$containerd/containerd-$containerd-linux-$arch.tar.gz" bin
cp root/usr/sbin/runc "$mirror/runc/v$runc/runc.$arch"
cp root/usr/lib/cni/* cni/
tar -C cni -czf "$mirror/cni_plugins/v$cni/cni-plugins-linux-$arch-v$cni.tgz" .

sum() { sha256sum "$1" | cut -d' ' -f1; }
cat > "$mirror/versions.json" <<JSON
{
  "containerd": {"version": "$containerd", "url": "unused", "dir": "v{version}", "sha256": {"$arch": "$(sum "$mirror/containerd/v$containerd/containerd-$containerd-linux-$arch.tar.gz")"}},
  "runc": {"version": "$runc", "url": "unused", "dir": "v{version}", "sha256": {"$arch": "$(sum "$mirror/runc/v$runc/runc.$arch")"}},
  "cni_plugins": {"version": "$cni", "url": "unused", "dir": "v{version}", "sha256": {"$arch": "$(sum "$mirror/cni_plugins/v$cni/cni-plugins-linux-$arch-v$cni.tgz")"}}
}
JSON
