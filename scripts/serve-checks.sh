#!/usr/bin/env bash
# `yard serve` from the outside: the page in headless Chromium
# (scripts/browser-check.py) and schemathesis against /openapi.json
# (scripts/api-fuzz.py). Needs a built yard (scripts/build.sh debug),
# chromium, chromium-driver, ffmpeg, espeak-ng and the Python packages
# selenium and schemathesis (.ci/run installs them all).
#
# Like scripts/readme-check.sh, it runs in a private network namespace when
# the kernel allows one (only loopback exists there).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(swift build --show-bin-path)"
test -x "$bin/yard" && test -d "$bin/plugins" || { echo "build first: scripts/build.sh debug"; exit 1; }
if [ "${SERVECHECK_NETNS:-}" != "inside" ] && command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 \
   && unshare -rn true 2>/dev/null; then
  exec unshare -rn env SERVECHECK_NETNS=inside bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
status=0
start=$SECONDS
python3 scripts/browser-check.py "$bin" || status=1
browser=$((SECONDS - start))
start=$SECONDS
python3 scripts/api-fuzz.py "$bin" || status=1
echo "serve-checks: browser ${browser} s, api-fuzz $((SECONDS - start)) s"
exit "$status"
