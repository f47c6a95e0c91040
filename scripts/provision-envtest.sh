#!/usr/bin/env bash
# Puts etcd, kube-apiserver, kube-controller-manager and kubectl into a cached
# KUBEBUILDER_ASSETS folder (see ../shared/TESTING.md).
#
#   scripts/provision-envtest.sh            # prints the assets folder on its last line
#   KUBEBUILDER_ASSETS=$(scripts/provision-envtest.sh | tail -1)
#
# The binaries are the release's own commands, built with the machine's Go from the Go module
# in scripts/envtest/ (k8s.io/kubernetes with a `replace` per staging module, etcd at the version
# that release pins; go.mod and go.sum are committed, so the build is reproducible). The first
# run downloads the modules and builds for several minutes on 2 cores; later runs find
# ~/.cache/usher/envtest/<version>/ and return at once. Steps are announced on stderr as
# "==> [time] what" (`usher dev` turns them into its progress bar: 7 steps).
set -euo pipefail

MODULE="$(cd "$(dirname "$0")/envtest" && pwd)"
VERSION="$(sed -n 's/^[[:space:]]*\(require \)\{0,1\}k8s\.io\/kubernetes v\([0-9.]*\).*/\2/p' "$MODULE/go.mod")"
[ -n "$VERSION" ] || { echo "no k8s.io/kubernetes version in $MODULE/go.mod" >&2; exit 1; }
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

step "checking Go (Kubernetes $VERSION wants the Go of its go.mod)"
want="$(sed -n 's/^go //p' "$MODULE/go.mod")"
new_enough() { [ "$(printf '%s\n%s\n' "$want" "$1" | sort -V | head -n1)" = "$want" ]; }
# The go on PATH, else the usual install location (a non-login shell may not have it on PATH).
found=""
for candidate in "$(command -v go || true)" /usr/local/go/bin/go; do
  [ -n "$candidate" ] && [ -x "$candidate" ] || continue
  version="$("$candidate" env GOVERSION)"
  if new_enough "${version#go}"; then found="$candidate"; break; fi
  echo "skipping $candidate: ${version#go} is older than the $want Kubernetes $VERSION needs" >&2
done
if [ -z "$found" ]; then
  echo "Go $want or newer is needed to build the control plane: install it (https://go.dev/doc/install) and put it first on PATH, or point KUBEBUILDER_ASSETS at a folder holding etcd and kube-apiserver" >&2
  exit 1
fi
PATH="$(dirname "$found"):$PATH"
have="$(go env GOVERSION)"
have="${have#go}"
echo "go $have at $(command -v go)" >&2

# Never fetch another toolchain, never rewrite go.mod/go.sum: the committed module is the build.
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
cd "$MODULE"

step "downloading Go modules (k8s.io/kubernetes $VERSION and its dependencies)"
go mod download >&2

LDFLAGS="-s -w"
for kv in "gitVersion=v$VERSION" "gitMajor=${VERSION%%.*}" "gitMinor=$(echo "$VERSION" | cut -d. -f2)" \
  "gitTreeState=clean" "gitCommit=module-build"; do
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS="$LDFLAGS -X $pkg.${kv}"
  done
done

mkdir -p "$DEST.tmp"
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  step "building $b"
  go build -trimpath -ldflags "$LDFLAGS" -o "$DEST.tmp/$b" "./$b"
done

step "installing into $DEST"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
have_all
"$DEST/kube-apiserver" --version >&2
"$DEST/etcd" --version | sed -n 1p >&2
echo "$DEST"
