#!/usr/bin/env bash
# Moves the test control plane to another Kubernetes release: rewrites go.mod with a `replace`
# line per staging module of that release (k8s.io/kubernetes is not meant to be imported: its
# own go.mod points them at ./staging/src with v0.0.0), then `go mod tidy` writes go.sum.
#
#   scripts/envtest/update.sh 1.37.2
set -euo pipefail
VERSION="${1:?usage: $0 KUBERNETES_VERSION (such as 1.37.2)}"
cd "$(dirname "$0")"
upstream="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
want_go="$(sed -n 's/^go //p' "$upstream")"
{
  echo "// The control plane Usher's tests run against: Kubernetes v$VERSION built from Go modules."
  echo "// Regenerate with scripts/envtest/update.sh VERSION."
  echo "module usher.dev/envtest"
  echo
  echo "go $want_go"
  echo
  echo "require k8s.io/kubernetes v$VERSION"
  echo
  echo "replace ("
  sed -n '/^replace (/,/^)/s/^[[:space:]]*\(k8s\.io\/[a-z-]*\) => \.\/staging.*/\1/p' "$upstream" |
    grep -v '^k8s.io/sample-' |
    while read -r module; do printf '\t%s => %s v0.%s\n' "$module" "$module" "${VERSION#1.}"; done
  echo ")"
} >go.mod
rm -f go.sum
go mod tidy
echo "go.mod now builds Kubernetes v$VERSION; run scripts/provision-envtest.sh" >&2
