#!/usr/bin/env bash
# Engine overhead benchmark (issue: durable job engine). Runs N jobs through
# the real engine with the echo adapter — pre-flight, persist, submit, two
# polls, complete, all durable in SQLite (WAL) — and, in the same run, the
# raw SQLite insert+update of one job row as the baseline. Targets: p99 <= 1 ms
# of host overhead per step, >= 5,000 durable steps/s.
# Usage: scripts/bench-engine.sh [release|debug] [jobs]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-release}"
jobs="${2:-2000}"
export SCRATCH="${SCRATCH:-.build-bench}"
scripts/build.sh "$config" >/dev/null
bin="$(swift build -c "$config" --scratch-path "$SCRATCH" --show-bin-path)"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
YARD_HOME="$home" "$bin/yard" bench-engine --jobs "$jobs"
