#!/usr/bin/env bash
# The first command of the README: build everything, then show the plugin host
# at work on the embedded defaults (no keys, no network): list the bundled
# plugins, run the conformance kit on the Swift and the C reference plugin,
# and run a durable job end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cc >/dev/null 2>&1; then
  echo "installing gcc (needed for the C reference plugin's tests)…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc
fi
scripts/build.sh debug
bin="$(swift build --show-bin-path)"
export YARD_HOME="${YARD_HOME:-$PWD/.build/yard-home}"
echo
"$bin/yard" plugin list
echo
"$bin/yard" plugin test echo
echo
"$bin/yard" plugin test c-minimal
echo
"$bin/yard" run debug.echo --engine echo --input text="hello from switchyard" --input polls=3
echo
"$bin/yard" jobs list --limit 5
echo
echo "yard is at $bin/yard (data in $YARD_HOME). Try: $bin/yard plugin --help"
