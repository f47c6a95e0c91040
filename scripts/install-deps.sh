#!/usr/bin/env bash
# Installs the Debian packages Usher's tests use (needs root or sudo). Safe to run again.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
packages=(
  make ca-certificates
  openssl curl                   # real TLS clients in the webhook tests
  python3-aiosmtpd               # the real SMTP server of the mail tests
  oathtool zbar-tools            # real TOTP client and QR decoder of the MFA tests
  wrk                            # HTTP load generator of the auth benchmark
  nginx-light                    # the real ingress (auth_request) of the forward-auth tests
  chromium                       # the real browser of the page tests (driven by playwright-core)
  python3-venv                   # checkov's virtualenv (scripts/install-tools.sh)
  lua5.4                         # runs the Argo CD health checks of docs/gitops.md
  apache2-bin libapache2-mod-auth-openidc  # Apache with mod_auth_openidc (a certified OIDC relying party), run as a plain process, no service
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "all present: ${packages[*]}"
fi
