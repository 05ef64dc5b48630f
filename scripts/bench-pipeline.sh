#!/usr/bin/env bash
# Main-job benchmark: wall time of the local UGC/product clip pipeline
# (`yard run ugc-product-clip --no-cache`, fresh store: plan, six steps as
# durable jobs, the host's process service, harvest) against the sum of the
# raw ffmpeg/ffprobe/espeak-ng commands that same pipeline runs, replayed
# directly in the same invocation. Target: overhead ratio (yard / raw) <= 1.1.
# The commands are captured from a first, untimed run through stand-ins on
# PATH (scripts/bench/record-tool.sh) that record each exact command line and
# a copy of its inputs; timed runs use the real tools directly.
# Usage: scripts/bench-pipeline.sh [rounds]    QUALITY=low|standard|pro (default standard)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
quality="${QUALITY:-standard}"
for tool in ffmpeg ffprobe espeak-ng; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/demo.sh or apt-get install -y ffmpeg espeak-ng"; exit 1; }
done
scripts/build.sh debug >/dev/null
bin="$(swift build --show-bin-path)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
script="Meet Tide, the bottle that keeps water cold for a whole day. Refill it, take it anywhere."
now() { date +%s%N; }
run_yard() {
  YARD_HOME="$1" "$bin/yard" run ugc-product-clip --no-cache --quality "$quality" \
    --input product_image=@Registry/samples/product.png --input "script=$script" --json > "$1.json" \
    || { echo "yard run failed:"; cat "$1.json"; exit 1; }
}

mkdir -p "$work/shims" "$work/capture"
for tool in ffmpeg ffprobe espeak-ng; do
  printf '#!/bin/sh\nBENCH_TOOL=%s BENCH_REAL_PATH="%s" BENCH_CAPTURE="%s" exec "%s" "$@"\n' \
    "$tool" "$PATH" "$work/capture" "$PWD/scripts/bench/record-tool.sh" > "$work/shims/$tool"
  chmod +x "$work/shims/$tool"
done
PATH="$work/shims:$PATH" run_yard "$work/capture-home"
commands=$(find "$work/capture" -name cmd | wc -l)
echo "== UGC pipeline, quality $quality: $commands tool commands (debug build of yard)"

# Wall time is what the target is about; CPU time (user+sys of the whole
# process tree) is printed too because it barely moves when other work shares
# the machine. Rounds alternate which side goes first.
TIMEFORMAT='%R %U %S'
timed() { { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{ printf "%.0f %.0f\n", $1 * 1e9, ($2 + $3) * 1e9 }'; }
replay() {
  for dir in $(ls "$work/capture" | sort); do
    rm -f "$work/capture/$dir"/out-*
    mapfile -d '' cmd < "$work/capture/$dir/cmd"
    "${cmd[@]}" < "$work/capture/$dir/stdin" >/dev/null 2>&1 || { echo "replay of ${cmd[0]} failed" >&2; return 1; }
  done
}
yard_round() { run_yard "$work/home-$1"; }
best_yard=""; best_raw=""; best_yard_cpu=""; best_raw_cpu=""
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then
    read -r yard_ns yard_cpu < <(timed yard_round "$round"); read -r raw_ns raw_cpu < <(timed replay)
  else
    read -r raw_ns raw_cpu < <(timed replay); read -r yard_ns yard_cpu < <(timed yard_round "$round")
  fi
  grep -q '"state" : "succeeded"' "$work/home-$round.json" || { echo "round $round: the pipeline did not succeed"; exit 1; }
  awk -v y="$yard_ns" -v r="$raw_ns" -v yc="$yard_cpu" -v rc="$raw_cpu" -v n="$round" 'BEGIN {
    printf "round %d: wall yard %.2f s, raw %.2f s, ratio %.3f | cpu yard %.2f s, raw %.2f s, ratio %.3f\n", n, y/1e9, r/1e9, y/r, yc/1e9, rc/1e9, yc/rc }'
  if [ -z "$best_yard" ] || [ "$yard_ns" -lt "$best_yard" ]; then best_yard=$yard_ns; fi
  if [ -z "$best_raw" ] || [ "$raw_ns" -lt "$best_raw" ]; then best_raw=$raw_ns; fi
  if [ -z "$best_yard_cpu" ] || [ "$yard_cpu" -lt "$best_yard_cpu" ]; then best_yard_cpu=$yard_cpu; fi
  if [ -z "$best_raw_cpu" ] || [ "$raw_cpu" -lt "$best_raw_cpu" ]; then best_raw_cpu=$raw_cpu; fi
done
awk -v y="$best_yard" -v r="$best_raw" -v yc="$best_yard_cpu" -v rc="$best_raw_cpu" 'BEGIN {
  printf "best of rounds: wall yard %.2f s, raw %.2f s, overhead ratio %.3f (target <= 1.1: %s); cpu ratio %.3f\n", y/1e9, r/1e9, y/r, (y/r <= 1.1 ? "met" : "NOT met"), yc/rc
}'
