#!/usr/bin/env bash
# reactor bench against an R3 cluster of three nats-server processes on
# loopback (task bench:cluster): builds nats-server from the module cache
# (the version go.mod requires), starts the three servers, each with its
# store in a temporary directory, waits until they are healthy, and runs
# ./reactor bench --url <the three> --replicas 3 --raw with the arguments
# given, so that reactor and bare nats.go run on the same cluster. The
# servers and their stores are removed afterwards. Runs ./reactor, from the
# repository's root.
set -euo pipefail
d=$(mktemp -d); pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$d"' EXIT
go build -o "$d/nats-server" github.com/nats-io/nats-server/v2
ports=($(python3 -c 'import socket
ss = [socket.socket() for _ in range(9)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'))
routes=$(printf '"nats://127.0.0.1:%s", ' "${ports[@]:3:3}")
urls=()
for i in 0 1 2; do
  mkdir -p "$d/store-$i"
  cat > "$d/server-$i.conf" <<CONF
server_name: "bench-$i"
listen: "127.0.0.1:${ports[$i]}"
http: "127.0.0.1:${ports[$((6 + i))]}"
jetstream { store_dir: "$d/store-$i" }
cluster { name: "bench", listen: "127.0.0.1:${ports[$((3 + i))]}", routes: [${routes%, }] }
CONF
  "$d/nats-server" -c "$d/server-$i.conf" >"$d/server-$i.log" 2>&1 & pids+=($!)
  urls+=("nats://127.0.0.1:${ports[$i]}")
done
for i in 0 1 2; do
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:${ports[$((6 + i))]}/healthz" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:${ports[$((6 + i))]}/healthz" >/dev/null || { echo "server $i not healthy:"; tail "$d/server-$i.log"; exit 1; }
done
url=$(IFS=,; echo "${urls[*]}")
./reactor bench --url "$url" --replicas 3 --raw "$@"
