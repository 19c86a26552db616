#!/bin/sh
# Repackage Debian's containerd, runc and CNI plugins in the upstream release
# layouts, under <mirror>/<key>/v<version>/<file> (upstream's layout under one
# directory per key), and record each file's version and sha256 in
# <mirror>/versions.json.
#
# Usage: build-mirror.sh <cache>. The mirror is built once per set of inputs,
# in <cache>/<digest>/, the digest being of this script, the architecture
# and the three packages' candidate versions (what `apt-get download` would
# fetch); a later run with the same inputs reuses it. Older mirrors in
# <cache> are removed. Prints the mirror's directory, and "built" on stderr
# when it had to build it.
set -eu
cache=$1
packages="containerd runc containernetworking-plugins"
arch=$(dpkg --print-architecture)
# shellcheck disable=SC2086
candidates=$(apt-cache show --no-all-versions $packages | sed -n 's/^\(Package\|Version\): //p' | paste -sd' ' -)
[ -n "$candidates" ] || { echo "build-mirror: apt knows none of $packages (run apt-get update)" >&2; exit 1; }
key=$(printf '%s\n%s\n' "$arch" "$candidates" | cat - "$0" | sha256sum | cut -c1-16)
mirror=$cache/$key
if [ -f "$mirror/versions.json" ]; then
  echo "$mirror"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"  # apt downloads as the _apt user
cd "$work"
# shellcheck disable=SC2086
apt-get download $packages >/dev/null
for deb in *.deb; do dpkg-deb -x "$deb" root; done
version() { dpkg-deb -f "$1" Version | sed 's/^[0-9]*://; s/[~+].*//'; }
containerd=$(version containerd_*.deb)
runc=$(version runc_*.deb)
cni=$(version containernetworking-plugins_*.deb)

out=$work/mirror
mkdir -p "$out/containerd/v$containerd" "$out/runc/v$runc" "$out/cni_plugins/v$cni" stage/bin cni
cp root/usr/bin/containerd root/usr/bin/containerd-shim-runc-v2 root/usr/bin/ctr stage/bin/
tar -C stage -czf "$out/containerd/v$containerd/containerd-$containerd-linux-$arch.tar.gz" bin
cp root/usr/sbin/runc "$out/runc/v$runc/runc.$arch"
cp root/usr/lib/cni/* cni/
tar -C cni -czf "$out/cni_plugins/v$cni/cni-plugins-linux-$arch-v$cni.tgz" .

sum() { sha256sum "$1" | cut -d' ' -f1; }
cat > "$out/versions.json" <<JSON
{
  "containerd": {"version": "$containerd", "url": "unused", "dir": "v{version}", "sha256": {"$arch": "$(sum "$out/containerd/v$containerd/containerd-$containerd-linux-$arch.tar.gz")"}},
  "runc": {"version": "$runc", "url": "unused", "dir": "v{version}", "sha256": {"$arch": "$(sum "$out/runc/v$runc/runc.$arch")"}},
  "cni_plugins": {"version": "$cni", "url": "unused", "dir": "v{version}", "sha256": {"$arch": "$(sum "$out/cni_plugins/v$cni/cni-plugins-linux-$arch-v$cni.tgz")"}}
}
JSON
chmod 0755 "$out"
# Whole or not at all: a run killed half way leaves only its .build directory.
mv -T "$out" "$mirror" 2>/dev/null || [ -f "$mirror/versions.json" ]
for old in "$cache"/*; do
  [ "$old" = "$mirror" ] || rm -rf "$old"
done
find "$cache" -maxdepth 1 -name ".build.*" -mmin +120 -exec rm -rf {} +
echo "built $mirror" >&2
echo "$mirror"
