#!/usr/bin/env bash
# Installs everything berth needs on a Debian 12 machine, as root. Safe to run again: it installs only
# what is missing. `--dev` adds the test tools (pytest, docker-py).
#   system: runc (execution driver), conmon (per-container monitor), procps (docker top), busybox-static (offline test
#           images), iptables (published ports), iproute2, skopeo (image archive interop tests), openssl
#           (throwaway certificates in the TLS tests)
#   python: a virtualenv in .venv with requirements.txt (and requirements-dev.txt with --dev)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(python3 python3-venv runc conmon busybox-static iptables iproute2 skopeo procps ca-certificates openssl)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

req=requirements.txt
[ "${1:-}" = "--dev" ] && req=requirements-dev.txt
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)-$(basename "$req" .txt)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/python)"
