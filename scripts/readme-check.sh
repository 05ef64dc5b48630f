#!/usr/bin/env bash
# The README as a test: every command in README.md's command blocks, run as
# written (after the small substitution table at the top of
# scripts/readme-check.py) in a fresh YARD_HOME against the stand-ins; fails
# on any command that errors or whose output differs from what the README
# shows. Needs a built yard (scripts/build.sh debug), ffmpeg and python3.
#
# It runs in a private network namespace when the kernel allows one (only
# loopback exists there), so a README command that would reach a real
# provider fails instead of leaving this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(swift build --show-bin-path)"
test -x "$bin/yard" && test -d "$bin/plugins" || { echo "build first: scripts/build.sh debug"; exit 1; }
for tool in python3 ffmpeg espeak-ng; do
  command -v "$tool" >/dev/null 2>&1 || { echo "readme-check needs $tool (sudo apt-get install -y $tool); .ci/run installs it"; exit 1; }
done
if [ "${READMECHECK_NETNS:-}" != "inside" ] && command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 \
   && unshare -rn true 2>/dev/null; then
  exec unshare -rn env READMECHECK_NETNS=inside bash -c 'ip link set lo up && exec python3 scripts/readme-check.py "$0"' "$bin"
fi
[ "${READMECHECK_NETNS:-}" = "inside" ] || echo "note: no network namespace available; relying on the substitution table to reach only loopback"
exec python3 scripts/readme-check.py "$bin"
