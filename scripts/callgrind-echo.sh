#!/usr/bin/env bash
# Instructions per echoed message in the demo server, counted by callgrind:
# repeatable whatever else the machine is doing, unlike CPU time, so small
# changes to the per-message path can be compared.
#
#   scripts/callgrind-echo.sh [SERVER_BINARY] [RUST_LOG] [server flags...]
#
# Defaults: target/profiling/chanmux-server (build it with
# `cargo build --profile profiling -p chanmux-server -p chanmux-bench`,
# which also has symbols for callgrind_annotate) and RUST_LOG=warn.
# Counts only the load phase (10 connections x 16 in flight x 64 B for 6 s,
# by target/profiling/chanmux-load): the counters are zeroed once the server
# listens and dumped before it stops. Prints one line and leaves the dump
# in target/callgrind/.
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-target/profiling/chanmux-server}
log=${2:-warn}
shift $(( $# < 2 ? $# : 2 ))
load=target/profiling/chanmux-load
[[ -x $load ]] || load=target/release/chanmux-load
command -v valgrind >/dev/null || { echo "callgrind-echo: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
mkdir -p target/callgrind
out=target/callgrind/echo.$$
RUST_LOG=$log valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$server" \
  --addr 127.0.0.1:0 --max-connections 0 --max-connections-per-ip 0 \
  --max-frame-rate 4000000000 "$@" >"$out.stdout" 2>"$out.stderr" &
server_pid=$!
trap 'kill -KILL $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do grep -q listening "$out.stdout" 2>/dev/null && break; sleep 0.2; done
grep -q listening "$out.stdout" || { echo "callgrind-echo: the server did not start" >&2; cat "$out.stderr" >&2; exit 1; }
addr=$(sed -n 's|^listening on http://||p' "$out.stdout" | head -n1)
sleep 1
callgrind_control --zero "$server_pid" >/dev/null
"$load" echo --url "ws://$addr/ws/" -c 10 -w 16 --payload 64 --duration 6 --warmup 0 >"$out.load" 2>/dev/null
callgrind_control --dump "$server_pid" >/dev/null
sleep 0.5
kill -INT "$server_pid"
wait "$server_pid" || true
trap - EXIT
messages=$(python3 -c "import json,sys; print(([json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')] or [{'messages': 0}])[-1]['messages'])" "$out.load")
(( messages > 0 )) || { echo "callgrind-echo: the load echoed nothing (see $out.load)" >&2; exit 1; }
dump=$(ls "$out".cg.* | head -n1)
instructions=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "$server RUST_LOG=$log $*: $messages messages, $instructions instructions, $(( instructions / messages )) per message ($dump)"
