#!/usr/bin/env bash
# Puts etcd, kube-apiserver, kube-controller-manager and kubectl into a cached
# KUBEBUILDER_ASSETS folder on a Debian bookworm machine (see ../shared/TESTING.md).
#
#   scripts/provision-envtest.sh            # prints the assets folder on its last line
#   KUBEBUILDER_ASSETS=$(scripts/provision-envtest.sh | tail -1)
#
# The first run builds Kubernetes 1.20.2 from Debian's source package (about 5-8 minutes on
# 2 cores); later runs find the cache and return in a second. Needs root for apt-get.
set -euo pipefail

VERSION=1.20.2
DEST="${USHER_ENVTEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/usher/envtest/$VERSION}"
BINS=(etcd kube-apiserver kube-controller-manager kubectl)

have_all() {
  for b in "${BINS[@]}"; do [ -x "$DEST/$b" ] || return 1; done
}

if have_all; then
  echo "envtest assets cached in $DEST" >&2
  echo "$DEST"
  exit 0
fi

step() { printf '\n==> [%s] %s\n' "$(date +%T)" "$*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

step "installing build dependencies (etcd-server golang-go rsync jq reflect2)"
# apt refuses two entries for one URI with different Signed-By values, so the deb-src entry
# copies the style of the machine's own Debian entry (deb822 with Signed-By, or one-line).
if ! grep -rqs 'deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # The first Signed-By, by sed alone: a pipe into head can end the run with SIGPIPE (pipefail).
    keyring=$(sed -n '/^Signed-By: */{s///p;q}' /etc/apt/sources.list.d/debian.sources)
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n%s\n' \
      "${keyring:+Signed-By: $keyring}" | $SUDO tee /etc/apt/sources.list.d/usher-bookworm-src.sources >/dev/null
  else
    echo 'deb-src http://deb.debian.org/debian bookworm main' | $SUDO tee /etc/apt/sources.list.d/usher-bookworm-src.list >/dev/null
  fi
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  etcd-server golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev >/dev/null

WORK="$(mktemp -d "${TMPDIR:-/tmp}/usher-envtest-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

step "fetching Debian's kubernetes source package into $WORK"
apt-get source --download-only kubernetes >/dev/null 2>&1 || apt-get source --download-only kubernetes
dpkg-source --no-check -x kubernetes_*.dsc src >/dev/null
cd src

step "replacing vendored modern-go/reflect2 1.0.1 (crashes on Go >= 1.18) with Debian's 1.0.2"
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
rm -f vendor/github.com/modern-go/reflect2/go.mod

step "building kube-apiserver kube-controller-manager kubectl (GOPATH mode, several minutes)"
mkdir -p .go/src/k8s.io
ln -s ../../.. .go/src/k8s.io/kubernetes
cd .go/src/k8s.io/kubernetes
env GOPATH="$WORK/src/.go" GO111MODULE=off GOFLAGS= CGO_ENABLED=0 GOCACHE="$WORK/gocache" \
  KUBE_GIT_VERSION="v$VERSION" KUBE_GIT_TREE_STATE=clean \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl" >&2

step "installing into $DEST"
mkdir -p "$DEST.tmp"
for b in kube-apiserver kube-controller-manager kubectl; do
  install -m 0755 "_output/bin/$b" "$DEST.tmp/$b"
done
install -m 0755 /usr/bin/etcd "$DEST.tmp/etcd"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
have_all
step "done"
echo "$DEST"
