#!/usr/bin/env bash
# Tail latency and throughput of mediagate's provider path under a load generator mediagate
# did not write (issue 18): wrk drives Runware `imageInference` tasks, each with a fresh
# taskUUID, at a model routed by `openai-images` to nginx serving a fixed OpenAI-images reply;
# the same wrk run straight at nginx is the baseline. Needs `wrk` and `nginx` (Debian: wrk,
# nginx-light) and a release build (`cargo build --release -p mediagate`).
#
#   crates/bench/wrk/run.sh [seconds per run, default 10] [data dir parent, default $TMPDIR or /tmp]
#
# Prints wrk's latency distribution for direct and gateway at c=1 and c=64, then checks that
# every 200 the gateway gave has its task row in the store.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
secs=${1:-10}
parent=${2:-${TMPDIR:-/tmp}}
bin=${BENCH_BIN:-$root/target/release/mediagate}
[ -x "$bin" ] || { echo "build first: cargo build --release -p mediagate" >&2; exit 1; }
work=$(mktemp -d "$parent/mediagate-wrk.XXXXXX")
nginx_port=${NGINX_PORT:-18081}
gw_port=${GATEWAY_PORT:-18800}
cleanup() {
  [ -n "${gw_pid:-}" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# nginx: one worker, no logs, the fixed reply for any request to the generations path.
mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location = /v1/images/generations {
      default_type application/json;
      return 200 '$(cat "$here/openai_reply.json")';
    }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work/nginx"

cat >"$work/mediagate.toml" <<CONF
[[providers.upstreams]]
name = "nginx-openai"
kind = "openai-images"
base_url = "http://127.0.0.1:$nginx_port"
timeout_ms = 10000

[[models]]
air = "bench:wrk-nginx@1"
task_type = "imageInference"
provider = "nginx-openai"
price_usd = "0.0001"
description = "benchmark: nginx serving a fixed OpenAI-images reply"
CONF
MEDIAGATE_BOOTSTRAP__INITIAL_CREDIT_USD=1000000 MEDIAGATE_LOG=${MEDIAGATE_LOG:-warn} \
  "$bin" --config "$work/mediagate.toml" --data-dir "$work/data" serve --listen "127.0.0.1:$gw_port" \
  2>"$work/server.log" &
gw_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
key=$(grep -Eo 'key_[0-9a-f]{128}' "$work/server.log" | head -1)
[ -n "$key" ] || { cat "$work/server.log" >&2; exit 1; }
export WRK_KEY=$key

scrape() { curl -s "http://127.0.0.1:$gw_port/metrics" >"$work/$1.metrics"; }
run() { # name url script conc
  echo "== $1 c=$4"
  [ "$1" = gateway ] && scrape before
  wrk -t1 -c"$4" -d"${secs}s" --latency -s "$here/$3" "$2" | tee "$work/last.txt" |
    sed -n '/Latency Distribution/,/Transfer/p;/gateway requests/p;/server-timing/p'
  grep -h "gateway requests" "$work/last.txt" >>"$work/gateway.txt" || true
  if [ "$1" = gateway ]; then
    scrape after
    echo "  share of tasks over 1/2/4 ms, by phase (mediagate's own histograms):"
    python3 "$here/phases.py" "$work/before.metrics" "$work/after.metrics"
  fi
}
# Warm both (connection pools, SQLite pages).
wrk -t1 -c8 -d2s -s "$here/direct.lua" "http://127.0.0.1:$nginx_port" >/dev/null
wrk -t1 -c8 -d2s -s "$here/image_inference.lua" "http://127.0.0.1:$gw_port" | grep "gateway requests" >"$work/gateway.txt"
for c in 1 64; do
  run direct "http://127.0.0.1:$nginx_port" direct.lua "$c"
  run gateway "http://127.0.0.1:$gw_port" image_inference.lua "$c"
done
rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from tasks').fetchone()[0])" "$work/data/mediagate.db")
ok=$(awk '{ok += $3 - $5} END {print ok}' "$work/gateway.txt")
echo "gateway 2xx replies (warm-up included): $ok; task rows in the store: $rows"
