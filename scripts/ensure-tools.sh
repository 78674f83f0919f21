#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, when missing:
# redis-server for the Redis layer's tests (they start their own servers on
# free loopback ports), Debian's Chromium for the browser tests, and the e2e
# folder's npm packages (playwright-core only drives Chromium; it never
# downloads a browser). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if ((${#missing[@]})); then
  echo "== installing ${missing[*]} (apt)"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== npm ci (e2e)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
