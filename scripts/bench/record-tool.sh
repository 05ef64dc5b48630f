#!/usr/bin/env bash
# A stand-in for ffmpeg/ffprobe/espeak-ng on PATH during bench-pipeline.sh's
# capture run: copies the scratch folder's inputs, records the exact command
# (paths rewritten to the copy) and its stdin, then runs the real tool.
# The host gives children only PATH, HOME, TMPDIR and LANG, so the wrapper on
# PATH passes BENCH_TOOL, BENCH_REAL_PATH and BENCH_CAPTURE in itself.
set -u
name="$BENCH_TOOL"
real="$(PATH="$BENCH_REAL_PATH" command -v "$name")"
rep="$BENCH_CAPTURE/$(date +%s%N)-$$"
mkdir -p "$rep"
folder=""
scratch="(/[^[:space:]:=,']+)/(in|out|file)-"
for a in "$@"; do
  if [[ "$a" =~ $scratch ]]; then folder="${BASH_REMATCH[1]}"; break; fi
done
if [ -n "$folder" ]; then
  for f in "$folder"/in-* "$folder"/file-*; do [ -e "$f" ] && cp "$f" "$rep/"; done
fi
args=("$@")
if [ -n "$folder" ]; then
  args=()
  for a in "$@"; do args+=("${a//"$folder"/$rep}"); done
fi
printf '%s\0' "$name" "${args[@]}" > "$rep/cmd"
cat > "$rep/stdin"
exec "$real" "$@" < "$rep/stdin"
