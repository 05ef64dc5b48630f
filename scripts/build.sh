#!/usr/bin/env bash
# Builds yard and the first-party plugins, then stages each plugin (library +
# plugin.json with its sha256 filled in) into BIN/plugins/<id>/, where yard
# finds bundled plugins. Usage: scripts/build.sh [debug|release]
# SCRATCH=DIR builds in another folder (the benchmarks use .build-bench, so a
# release build never blocks the debug one).
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-${CONFIG:-debug}}"
scratch=(); [ -n "${SCRATCH:-}" ] && scratch=(--scratch-path "$SCRATCH")
swift build -c "$config" "${scratch[@]}" 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Wrapping|Write|Merging|Linking|Applying)' || true
test "${PIPESTATUS[0]}" -eq 0 || exit 1
bin="$(swift build -c "$config" "${scratch[@]}" --show-bin-path)"
rm -rf "$bin/plugins"
for manifest in Plugins/*/plugin.json; do
  dir="$(dirname "$manifest")"
  id="$(basename "$dir")"
  library="$(sed -n 's/^ *"library": *"\([^"]*\)".*/\1/p' "$manifest")"
  "$bin/yard" plugin pack --manifest "$manifest" --library "$bin/$library" --out "$bin/plugins/$id" --unpacked >/dev/null
done
echo "yard: $bin/yard (bundled plugins in $bin/plugins)"
