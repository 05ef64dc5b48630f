#!/usr/bin/env bash
# The first command of the README, the main job: on a fresh machine with no
# keys, install what the local engines need (ffmpeg, espeak-ng, gcc), build
# yard and the bundled plugins, plan and run the UGC/product clip preset on the
# sample product photo, and print where the 9:16 MP4 is. With FAL_KEY set the
# speech and the motion shot run on fal; with Kling's key pair
# (KLING_ACCESS_KEY and KLING_SECRET_KEY) the motion shot runs on Kling (first
# in its list, so it wins when both are set). A step whose remote engine is
# passed over (no key, offline) runs on the local engines; `yard plan` below
# says which engine each step gets and why (PresetMatrixTests runs every one).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (the local engines and the C reference plugin need them)…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/build.sh debug
bin="$(swift build --show-bin-path)"
export YARD_HOME="${YARD_HOME:-$PWD/.build/yard-home}"
out="${OUT:-$PWD/.build/demo}"
script="${SCRIPT:-Meet Tide, the bottle that keeps water cold for a whole day. Refill it, take it anywhere.}"
echo
"$bin/yard" plugin list
echo
"$bin/yard" plan ugc-product-clip --input product_image=@Registry/samples/product.png --input script="$script" || true
echo
"$bin/yard" run ugc-product-clip --input product_image=@Registry/samples/product.png --input script="$script" --output-dir "$out"
echo
if command -v ffprobe >/dev/null 2>&1 && [ -f "$out/video.mp4" ]; then
  ffprobe -v error -show_entries stream=codec_type,codec_name,width,height -show_entries format=duration -of compact=p=0 "$out/video.mp4"
fi
echo
echo "Your clip: $out/video.mp4 (speech: $out/speech.*)"
echo "yard is at $bin/yard (data in $YARD_HOME). Next: $bin/yard presets list; $bin/yard run --help"
