#!/usr/bin/env bash
# Redis Cluster by hand, as a new user would try it (issue 12's "Done when"):
# starts a three-master, three-replica Redis Cluster on loopback ports (Debian's
# redis-server in cluster mode), two demo servers on it (--redis-cluster),
# checks they deliver each other's room messages, stops the master that
# serves the room's group, waits for its replica to take over, and checks
# delivery again with the same two server processes. Cleans up after itself;
# every wait is bounded.
#
#   scripts/cluster-check.sh [SERVER_BINARY]   (default target/release/chanmux-server)
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-target/release/chanmux-server}
[[ -x $server ]] || { echo "cluster-check: build $server first (cargo build --release -p chanmux-server)" >&2; exit 2; }
command -v redis-cli >/dev/null || scripts/ensure-tools.sh
dir=$(mktemp -d)
pids=()
cleanup() { kill -KILL "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

# Ports below 55535 leave room for each node's bus port (port + 10000).
ports=($(python3 - <<'PY'
import random, socket
chosen = []
while len(chosen) < 6:
    p = random.randint(20000, 45000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        chosen.append(p)
    except OSError:
        pass
print(*chosen)
PY
))
for port in "${ports[@]}"; do
  # Validity factor 0: a replica takes over however long its link was down
  # (the default refuses a replica whose data may be too old).
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-node-timeout 1000 \
    --cluster-replica-validity-factor 0 \
    --cluster-config-file "$dir/nodes-$port.conf" --dir "$dir" --appendonly no --save '' \
    >"$dir/redis-$port.log" 2>&1 &
  pids+=($!)
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
echo "== cluster on ports ${ports[*]}"
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") --cluster-replicas 1 --cluster-yes >"$dir/create.log"
cluster_ok() {
  for _ in $(seq 1 300); do
    local all=1
    for port in "$@"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || all=0
    done
    (( all )) && return 0
    sleep 0.1
  done
  echo "cluster-check: the cluster did not reach cluster_state:ok in 30 s" >&2; return 1
}
cluster_ok "${ports[@]}"
# A replica can take over only once it has synced with its master.
for port in "${ports[@]}"; do
  for _ in $(seq 1 300); do
    info=$(redis-cli -p "$port" info replication)
    grep -q 'role:master' <<<"$info" && break
    grep -q 'master_link_status:up' <<<"$info" && break
    sleep 0.1
  done
done

seeds=$(printf 'redis://127.0.0.1:%s,' "${ports[@]:0:3}"); seeds=${seeds%,}
addrs=()
for n in 1 2; do
  RUST_LOG=warn "$server" --addr 127.0.0.1:0 --redis-cluster "$seeds" >"$dir/server-$n.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q 'listening on' "$dir/server-$n.log" && break; sleep 0.1; done
  addrs+=($(grep -o 'listening on http://[0-9.:]*' "$dir/server-$n.log" | sed 's|.*http://||'))
done
server_pids=("${pids[@]: -2}")
echo "== demo servers at ${addrs[*]} (pids ${server_pids[*]})"
# The same two clients check before and after the failover, subscribed throughout.
node --experimental-websocket --no-warnings scripts/cluster-rooms.mjs "${addrs[@]}" x "$dir/failed-over" \
  >"$dir/rooms.log" 2>&1 &
rooms=$!
for _ in $(seq 1 100); do grep -q waiting "$dir/rooms.log" && break; sleep 0.1; done
cat "$dir/rooms.log"
grep -q FAIL "$dir/rooms.log" && exit 1

# The port of the live master serving SLOT, as node PORT sees the cluster.
master_of_slot() {
  redis-cli -p "$1" cluster nodes | awk -v slot="$2" '
    $3 ~ /master/ && $3 !~ /fail/ { for (i = 9; i <= NF; i++) { split($i, r, "-");
      if (slot >= r[1] && slot <= (r[2] == "" ? r[1] : r[2])) { split($2, a, "[:@]"); print a[2] } } }'
}
slot=$(redis-cli -p "${ports[0]}" cluster keyslot chanmux:g:room.x)
master=$(master_of_slot "${ports[0]}" "$slot")
echo "== stopping the master of slot $slot (chanmux:g:room.x): port $master"
for i in "${!ports[@]}"; do [[ ${ports[$i]} == "$master" ]] && kill -KILL "${pids[$i]}"; done
alive=()
for port in "${ports[@]}"; do [[ $port != "$master" ]] && alive+=("$port"); done
# The replica is promoted once the master has been unreachable for the node timeout.
for _ in $(seq 1 300); do
  owner=$(master_of_slot "${alive[0]}" "$slot")
  [[ -n $owner && $owner != "$master" ]] && break
  sleep 0.1
done
[[ -n ${owner:-} && $owner != "$master" ]] || {
  echo "cluster-check: no replica took over slot $slot in 30 s" >&2
  redis-cli -p "${alive[0]}" cluster nodes >&2
  exit 1
}
cluster_ok "${alive[@]}"
echo "== its replica on port $owner took over; same servers, same clients, delivery again"
for pid in "${server_pids[@]}"; do kill -0 "$pid" || { echo "cluster-check: server $pid died" >&2; exit 1; }; done
touch "$dir/failed-over"
status=0; wait "$rooms" || status=$?
sed -n '/same clients/,$p' "$dir/rooms.log"
(( status == 0 )) || exit 1
echo "== servers still the same processes: ${server_pids[*]}"
for pid in "${server_pids[@]}"; do kill -0 "$pid"; done
