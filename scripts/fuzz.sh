#!/usr/bin/env bash
# scripts/fuzz.sh TARGET [SECONDS] [libFuzzer flags…] — coverage-guided fuzzing
# of one target (manifest, pipeline, package, webhook) with libFuzzer, built
# with -sanitize=fuzzer in its own build folder (.build-fuzz). Findings land
# in .build-fuzz/findings/TARGET; the seed corpus is the repository's own
# manifests, presets and packages. CI runs the same targets in-process
# instead (FuzzTests, bounded budget); this is for long runs:
#
#   scripts/fuzz.sh pipeline 600
#   scripts/fuzz.sh manifest 60 -max_len=65536
#   scripts/fuzz.sh pipeline 0 .build-fuzz/findings/pipeline/crash-…   # replay one input
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/fuzz.sh manifest|pipeline|package|webhook [SECONDS] [libFuzzer flags]}"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
swift build -c debug --package-path Tests/Fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library 2>&1 | grep -E "error|warning: unre" || true
bin="$(swift build -c debug --package-path Tests/Fuzz --scratch-path .build-fuzz --show-bin-path)/yard-fuzz"
[ -x "$bin" ] || { echo "fuzz: the libFuzzer build failed (does this toolchain support -sanitize=fuzzer?)"; exit 1; }
corpus=".build-fuzz/corpus/$target" findings=".build-fuzz/findings/$target"
mkdir -p "$corpus" "$findings"
case "$target" in
  manifest) i=0; for f in Plugins/*/plugin.json; do cp "$f" "$corpus/seed-$i.json"; i=$((i + 1)); done ;;
  pipeline) cp Registry/presets/*.yaml "$corpus/" ;;
  package)  ls .build/debug/plugins >/dev/null 2>&1 && for d in .build/debug/plugins/c-minimal; do
              .build/debug/yard plugin pack --manifest "$d/plugin.json" --library "$d/$(sed -n 's/^ *"library": *"\([^"]*\)".*/\1/p' "$d/plugin.json")" --out "$corpus/seed.yardpkg" >/dev/null || true
            done ;;
  webhook)  printf '%s' '{"id":"evt_1","type":"billing.credit_grant.created","data":{"object":{"id":"credgr_1","customer":"cus_FUZZ","amount":{"type":"monetary","monetary":{"value":700,"currency":"usd"}}}}}' >"$corpus/grant.json" ;;
esac
export YARD_FUZZ_TARGET="$target"
if [ "$seconds" = "0" ]; then exec "$bin" "$@"; fi
exec "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -artifact_prefix="$findings/" "$@" "$corpus"
