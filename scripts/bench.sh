#!/usr/bin/env bash
# The one benchmark command: builds the release binaries, installs the Python
# reference into target/bench-venv (from PyPI) when missing, then runs
# scripts/bench.py, which regenerates BENCHMARKS.md and bench/throughput.svg.
# Takes about 15 minutes on 2 cores. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p chanmux-server -p chanmux-bench
if [[ ! -x target/bench-venv/bin/uvicorn ]]; then
  python3 -m venv target/bench-venv
  target/bench-venv/bin/pip install --quiet -r bench/reference/requirements.txt
fi
command -v redis-server >/dev/null || scripts/ensure-tools.sh
exec python3 scripts/bench.py "$@"
