#!/usr/bin/env bash
# The one benchmark command: builds the release binaries, installs the Python
# reference into target/bench-venv (from PyPI) when missing, then runs
# scripts/bench.py, which regenerates BENCHMARKS.md and bench/throughput.svg.
# Takes about 20 minutes on 2 cores. Not part of the test suite.
# `scripts/bench.sh --only fanout` runs the fan-out section alone (~6 minutes)
# and rewrites only its block of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# Thousands of connections need as many descriptors in the servers and the
# load generator (children inherit the limit); raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ "$(ulimit -n)" != unlimited ]] && (( $(ulimit -n) < 20000 )); then
  echo "bench.sh: the idle runs need about 20,000 open files; this shell allows $(ulimit -n)" >&2
fi

cargo build --release --locked -p chanmux-server -p chanmux-bench
if [[ ! -x target/bench-venv/bin/uvicorn ]]; then
  python3 -m venv target/bench-venv || {
    echo "bench.sh: python3 -m venv failed; on Debian install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  }
  target/bench-venv/bin/pip install --quiet -r bench/reference/requirements.txt
fi
command -v redis-server >/dev/null || scripts/ensure-tools.sh
exec python3 scripts/bench.py "$@"
