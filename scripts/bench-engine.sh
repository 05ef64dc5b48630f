#!/usr/bin/env bash
# Engine benchmarks (issue: durable job engine), each against a baseline
# measured in the same run:
#   overhead — N jobs through the real engine with echo (pre-flight, persist,
#              submit, two polls, complete; all durable in SQLite WAL) vs the
#              raw SQLite insert+update of one job row. Target p99 <= 1 ms,
#              >= 5,000 durable steps/s.
#   peer     — the same echo jobs, sequential and 8 concurrent, against Huey
#              3.5.4 (PyPI) with its SQLite storage in the same run
#              (scripts/bench/huey_echo.py; installed into $SCRATCH when
#              missing). Target: yard / huey >= 1.0 both ways.
#   inflight — 10,000 jobs in flight, one poll per job per second: RSS and CPU.
#              Targets RSS <= 200 MB, CPU <= 0.5 core. (echo polls in process,
#              not over loopback HTTP.)
#   download — a 1 GiB artifact over loopback into the store vs curl from the
#              same server. Targets >= 0.9x curl's throughput, RSS growth <= 32 MB.
# Usage: scripts/bench-engine.sh [release|debug] [jobs]
#        ONLY=peer scripts/bench-engine.sh ...   overhead and the Huey peer only
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-release}"
jobs="${2:-2000}"
export SCRATCH="${SCRATCH:-.build-bench}"
scripts/build.sh "$config" >/dev/null
bin="$(swift build -c "$config" --scratch-path "$SCRATCH" --show-bin-path)"
work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== overhead ($config, $jobs jobs)"
YARD_HOME="$work/h1" "$bin/yard" bench-engine --jobs "$jobs" --concurrency 8 | tee "$work/yard.txt"

echo "== peer: Huey 3.5.4, SQLite storage ($jobs tasks)"
huey_dir="$SCRATCH/huey-3.5.4"
if ! PYTHONPATH="$huey_dir" python3 -c 'import huey, sys; sys.exit(huey.__version__ != "3.5.4")' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$huey_dir" huey==3.5.4
fi
PYTHONPATH="$huey_dir" python3 scripts/bench/huey_echo.py "$work/huey.db" "$jobs" 8 | tee "$work/huey.txt"
# Both lines read "... p50 X ms  p99 Y ms  sequential S jobs/s  concurrent(8) C jobs/s".
awk 'FNR == 1 { for (i = 1; i <= NF; i++) { if ($i == "sequential") s[FILENAME] = $(i + 1); if ($i ~ /^concurrent/) c[FILENAME] = $(i + 1) } }
     END { y = ARGV[1]; h = ARGV[2]; printf "ratio (yard / huey) sequential %.2f concurrent %.2f\n", s[y] / s[h], c[y] / c[h] }' "$work/yard.txt" "$work/huey.txt"
[ "${ONLY:-}" = peer ] && exit 0

echo "== in flight"
YARD_HOME="$work/h2" "$bin/yard" bench-inflight --jobs "${INFLIGHT_JOBS:-10000}" --seconds 20

echo "== download (1 GiB over loopback)"
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl; }
mkdir -p "$work/www"
truncate -s 1G "$work/www/big.bin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
(cd "$work/www" && exec python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1) &
server_pid=$!
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
# Alternate the two clients, best of two each, so neither gains from going second.
curl_s=999; yard_s=999; rss_growth=0; size=0
for round in 1 2; do
  s=$(date +%s%N); curl -sf -o "$work/curl.bin" "http://127.0.0.1:$port/big.bin"; e=$(date +%s%N)
  rm -f "$work/curl.bin"
  curl_s=$(awk -v a="$s" -v b="$e" -v best="$curl_s" 'BEGIN { t = (b - a) / 1e9; print (t < best ? t : best) }')
  rm -rf "$work/h3"
  read -r t size growth < <(YARD_HOME="$work/h3" "$bin/yard" bench-download "http://127.0.0.1:$port/big.bin")
  yard_s=$(awk -v t="$t" -v best="$yard_s" 'BEGIN { print (t < best ? t : best) }')
  rss_growth=$(awk -v g="$growth" -v m="$rss_growth" 'BEGIN { print (g > m ? g : m) }')
done
awk -v c="$curl_s" -v y="$yard_s" -v n="$size" -v r="$rss_growth" 'BEGIN {
  printf "curl  %.2f s  %.0f MB/s (best of 2)\nyard  %.2f s  %.0f MB/s (best of 2)  peak RSS growth %.1f MB\nthroughput ratio (yard / curl) %.2fx\n", c, n / c / 1048576, y, n / y / 1048576, r, c / y
}'
