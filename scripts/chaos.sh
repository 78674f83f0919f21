#!/usr/bin/env bash
# The chaos run of the safety issue: the release demo server (with --stats)
# under `chanmux-load chaos` for CHAOS_DURATION seconds (default 600), on
# loopback only; writes bench/chaos-report.md (bench/chaos-report-mmap.md
# with CHAOS_MALLOC=mmap), which scripts/bench.py puts in BENCHMARKS.md. Exits non-zero if any check failed (lost or unexpected
# results, no prompt echo, RSS not back near its start, anything left in
# the server's stats).
#
#   CHAOS_DURATION=600 CHAOS_SEED=20261130 scripts/chaos.sh
#
# CHAOS_MALLOC=mmap runs the server with glibc's mmap threshold fixed at
# 128 KiB (MALLOC_MMAP_THRESHOLD_=131072), so freed large buffers go back to
# the system: see the report's note on RSS.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${CHAOS_DURATION:-600}
seed=${CHAOS_SEED:-20261130}
cargo build --release --locked -q -p chanmux-server -p chanmux-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

env_args=()
report=bench/chaos-report.md
if [[ ${CHAOS_MALLOC:-} == mmap ]]; then
  env_args=(MALLOC_MMAP_THRESHOLD_=131072)
  report=bench/chaos-report-mmap.md
fi
out=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$out"' EXIT
env "${env_args[@]}" RUST_LOG=warn target/release/chanmux-server --addr 127.0.0.1:0 --stats \
  >"$out/server.out" 2>"$out/server.err" &
server=$!
for _ in $(seq 50); do grep -q listening "$out/server.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's#^listening on http://##p' "$out/server.out")
[[ -n $addr ]] || { echo "chaos: the server did not start" >&2; cat "$out/server.err" >&2; exit 1; }

command=(target/release/chanmux-load chaos --url "ws://$addr/ws/" --duration "$duration"
  --seed "$seed" --server-pid "$server" --stats-url "http://$addr/stats")
status=0
"${command[@]}" >"$out/chaos.json" 2>"$out/chaos.txt" || status=$?
cat "$out/chaos.txt" "$out/chaos.json"

{
  echo "## Chaos run$( [[ -n ${env_args[*]} ]] && echo ", glibc returning large buffers" )"
  echo
  echo "\`scripts/chaos.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')$( [[ -n ${env_args[*]} ]] && echo " with \`${env_args[*]}\`" ):"
  echo "the release demo server with its default limits (plus \`--stats\`), and"
  echo "\`${command[*]}\`"
  echo "(32 actors, each picking misbehaving scenarios at random, for $duration s; exit status $status)."
  echo
  echo '```'
  cat "$out/chaos.txt"
  echo '```'
  echo
  echo "Server log lines at warn or above during the run: $(wc -l <"$out/server.err")."
} > "$report"
echo "== wrote $report (exit status $status)"
exit "$status"
