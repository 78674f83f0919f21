#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, when missing:
# redis-server for the Redis layer's tests (they start their own servers on
# free loopback ports), redis-cli to make their test clusters, Debian's Chromium for the browser tests, nginx for
# the reverse-proxy test (it starts its own, on a free loopback port), and the e2e
# folder's npm packages (playwright-core only drives Chromium; it never
# downloads a browser). Safe to run again (npm ci reinstalls the e2e packages).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/sbin/nginx ]] || missing+=(nginx)
if ((${#missing[@]})); then
  echo "== installing ${missing[*]} (apt)"
  as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "ensure-tools: need root to install ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  # Through env, since sudo does not pass the environment on.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # The tests start their own servers on free ports: keep the packages'
  # services (nginx on port 80, redis on 6379) from starting at install,
  # where a port already in use would fail the install itself.
  no_start=/usr/sbin/policy-rc.d
  if [[ ! -e $no_start ]]; then
    "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $no_start && chmod +x $no_start"
    trap '"${as_root[@]}" rm -f '"$no_start" EXIT
  fi
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== npm ci (e2e)"
(cd e2e && npm ci --no-audit --no-fund --loglevel=error)
echo "== npm ci (clients/js: TypeScript and esbuild, for its build and size check)"
(cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
