#!/usr/bin/env bash
# Peak RSS and time of `reactor run` draining a backlog (task bench:memory):
# N alerts (default 1,000,000, 256-byte summaries) are published while one
# worker holds the first alert, then that process is killed and, REST later
# (default 0; 130s is past the 2-minute duplicate window, whose ids the
# server keeps in memory), a fresh `reactor run` (print handler to
# /dev/null, 16 workers) drains the rest. Runs ./reactor, from the
# repository's root.
n=${1:-1000000}
rest=${2:-0}
set -euo pipefail
d=$(mktemp -d); pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$d"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=nats://127.0.0.1:$port
printf 'handlers:\n  - on: "alerts.>"\n    exec: {command: ["sleep", "3600"], timeout: 2h}\n' > "$d/hold.yaml"
printf 'handlers:\n  - on: "alerts.>"\n    print: true\n' > "$d/drain.yaml"
ready() { until grep -q 'reactor: ready' "$1" 2>/dev/null; do sleep 0.2; done; }
./reactor run --data-dir "$d/data" --listen 127.0.0.1:$port --workers 1 --ack-wait 2s --config "$d/hold.yaml" >/dev/null 2>"$d/hold.log" & pid=$!
ready "$d/hold.log"
pad=$(printf '%0200d' 0)
seq 1 $n | awk -v pad="$pad" '{printf "{\"name\":\"bench\",\"id\":\"mem-%d\",\"summary\":\"%s\"}\n", $1, pad}' \
  | ./reactor send --url "$url" --file - >/dev/null
kill -9 $pid; wait $pid 2>/dev/null || true; pid=
sleep $rest
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
handled() { curl -s "http://127.0.0.1:$mport/metrics" | awk '/^reactor_alerts_handled_total/ { n += $2 } END { printf "%d", n }'; }
start=$(date +%s.%N)
./reactor run --data-dir "$d/data" --listen 127.0.0.1:$port --workers 16 --config "$d/drain.yaml" --metrics 127.0.0.1:$mport >/dev/null 2>"$d/drain.log" & pid=$!
until [ "$(handled 2>/dev/null || echo 0)" -ge $n ]; do sleep 0.2; done
end=$(date +%s.%N)
grep VmHWM /proc/$pid/status
echo "drained $n alerts in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s (from the start of reactor run)"
kill $pid; wait || true; pid=
