#!/usr/bin/env bash
# Benchmark of the plugin host (issue: plugin foundation), reported as ratios
# against a baseline measured in the same run:
#   list  — `yard plugin list --json` over 50 installed plugins (warm scan
#           cache), whole process; baseline: a C program that only dlopens
#           the same 50 libraries. Target ≤ 30 ms, and it must not load code.
#   load  — PluginLoader.load (manifest, ABI, sha256, ELF check, dlopen,
#           entry, descriptor) + one validate call, per plugin; baseline: the
#           C dlopen+dlsym loop per library. Target ≤ 5 ms per plugin.
# Usage: scripts/bench-plugins.sh [release|debug]   (default release)
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-release}"
export SCRATCH="${SCRATCH:-.build-bench}"
scripts/build.sh "$config" >/dev/null
bin="$(swift build -c "$config" --scratch-path "$SCRATCH" --show-bin-path)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
n=50
cc -O2 -o "$work/dlopen_baseline" scripts/bench/dlopen_baseline.c -ldl

# 50 distinct plugins for listing (ids differ; libraries are copies of echo).
mkdir -p "$work/list" "$work/load"
for i in $(seq -w 1 $n); do
  cp -r "$bin/plugins/echo" "$work/list/echo-$i"
  sed -i "s/\"id\" : \"echo\"/\"id\" : \"echo-$i\"/" "$work/list/echo-$i/plugin.json"
  cp -r "$bin/plugins/c-minimal" "$work/load/c-minimal-$i"
done
libs_list=("$work"/list/*/libSyEcho.so)
libs_load=("$work"/load/*/libSyCMinimal.so)

export YARD_HOME="$work/home"
"$bin/yard" plugin list --plugin-path "$work/list" --json >/dev/null   # warm the scan cache
rows=$("$bin/yard" plugin list --plugin-path "$work/list" --json | grep -c '"status" : "ok"')

runs=20
list_ms=() base_ms=() start_ms=()
for _ in $(seq $runs); do
  s=$(date +%s%N); "$bin/yard" --version >/dev/null; e=$(date +%s%N)
  start_ms+=("$(( (e - s) / 1000 ))")
  s=$(date +%s%N); "$bin/yard" plugin list --plugin-path "$work/list" --json >/dev/null; e=$(date +%s%N)
  list_ms+=("$(( (e - s) / 1000 ))")
  s=$(date +%s%N); "$work/dlopen_baseline" "${libs_list[@]}" >/dev/null; e=$(date +%s%N)
  base_ms+=("$(( (e - s) / 1000 ))")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]/1000}'; }
list_med=$(median "${list_ms[@]}")
base_med=$(median "${base_ms[@]}")
start_med=$(median "${start_ms[@]}")

# Load + validate: in-process, 50 distinct copies of the C plugin and of echo.
read -r load_total load_count load_p50 load_max < <("$bin/yard" plugin bench-load "$work/load")
read -r c_total c_count < <("$work/dlopen_baseline" "${libs_load[@]}")
mkdir -p "$work/load-swift"
for i in $(seq -w 1 $n); do cp -r "$bin/plugins/echo" "$work/load-swift/echo-$i"; done
read -r sw_total sw_count sw_p50 sw_max < <("$bin/yard" plugin bench-load "$work/load-swift")
read -r swc_total swc_count < <("$work/dlopen_baseline" "$work"/load-swift/*/libSyEcho.so)

awk -v n=$n -v rows="$rows" -v lm="$list_med" -v bm="$base_med" -v sm="$start_med" \
    -v lt="$load_total" -v lc="$load_count" -v lp="$load_p50" -v lx="$load_max" -v ct="$c_total" \
    -v st="$sw_total" -v sc="$sw_count" -v sp="$sw_p50" -v sx="$sw_max" -v swct="$swc_total" -v cfg="$config" 'BEGIN {
  printf "plugin host benchmark (%s build, %d plugins, median of 20 runs)\n", cfg, n
  printf "  list  yard plugin list --json (whole process): %7.2f ms  (%d ok rows)   target <= 30 ms\n", lm, rows
  printf "        baseline C dlopen loop, same 50 libs:    %7.2f ms   ratio %.2fx\n", bm, lm / bm
  printf "        baseline yard --version (process start): %7.2f ms   listing itself %.2f ms\n", sm, lm - sm
  printf "  load  C plugin, load+validate per plugin:       %7.3f ms  (p50 %.3f, max %.3f)   target <= 5 ms\n", lt / lc, lp, lx
  printf "        baseline C dlopen+dlsym per plugin:       %7.3f ms   ratio %.2fx\n", ct / lc, (lt / lc) / (ct / lc)
  printf "  load  Swift plugin (echo), per plugin:          %7.3f ms  (p50 %.3f, max %.3f)   target <= 5 ms\n", st / sc, sp, sx
  printf "        baseline C dlopen+dlsym per plugin:       %7.3f ms   ratio %.2fx\n", swct / sc, (st / sc) / (swct / sc)
}'
