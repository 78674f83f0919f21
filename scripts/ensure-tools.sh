#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, when missing:
# Debian's Chromium for the browser tests, and the e2e folder's npm packages
# (playwright-core only drives it; it never downloads a browser). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x /usr/bin/chromium ]]; then
  echo "== installing chromium (apt)"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium >/dev/null
fi

echo "== npm ci (e2e)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
