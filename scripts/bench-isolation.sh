#!/usr/bin/env bash
# Benchmark of process isolation (issue: containment), reported as ratios
# against the same call in process, measured in the same run:
#   c-minimal poll   the ABI round trip alone (the plugin uses no host service)
#   echo poll        a Swift plugin whose poll reads the host's kv store
#   runpod poll      the RunPod adapter polling its stand-in on loopback: one
#                    sy.http GET per poll, as a real remote engine does
# Each is polled --calls times per mode and round through LoadedPlugin.perform
# (deadline, document check: what the engine does per call); rounds alternate
# which mode goes first. The runner is sandboxed as in production; a second
# run with --no-sandbox shows what the sandbox itself costs.
# Goal: runpod poll p50 <= 1.5x in process.
# Usage: scripts/bench-isolation.sh [release|debug] [calls] [rounds]   (default release 2000 3)
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-release}"
calls="${2:-2000}"
rounds="${3:-3}"
export SCRATCH="${SCRATCH:-.build-bench}"
scripts/build.sh "$config" >/dev/null
bin="$(swift build -c "$config" --scratch-path "$SCRATCH" --show-bin-path)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export YARD_HOME="$work/home"
export YARD_PLUGIN_PATH=""
echo "== sandboxed runner ($config build, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
"$bin/yard" plugin bench-calls --calls "$calls" --rounds "$rounds"
echo
echo "== runner without the sandbox (rlimits only)"
"$bin/yard" plugin bench-calls --calls "$calls" --rounds "$rounds" --no-sandbox
