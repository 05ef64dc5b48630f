#!/usr/bin/env bash
# The whole test suite: build yard and the bundled plugins, run the plugin
# author's end-to-end flow and the README check (scripts/readme-check.sh),
# then every XCTest. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh debug
swift build --build-tests 2>&1 | grep -E 'error|warning: unre|Compiling .*Tests|Build' || true
test "${PIPESTATUS[0]}" -eq 0
scripts/e2e-plugin-author.sh
# A short soak: SIGKILL the host 5 times mid-pipeline; fails on any lost run,
# duplicate submission, double charge or duplicate usage event.
SKIP_BUILD=1 scripts/soak.sh "${SOAK_KILLS:-5}"
# Every command the README shows, run against the stand-ins (a few minutes).
readme=0
scripts/readme-check.sh || readme=$?
# yard serve from the outside: the page in headless Chromium, and schemathesis against /openapi.json (about a minute each).
serve=0
scripts/serve-checks.sh || serve=$?
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# The suites are XCTest; skip the empty Swift Testing pass so the last word is XCTest's.
set +e
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log" | grep -vE "^Test Case '.*' started"
status=${PIPESTATUS[0]}
set -e
# "Executed N tests, with [K tests skipped and ]M failures": the last one is the whole run's.
summary="$(grep -E "Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" "$log" | tail -1)"
executed="$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<<"$summary")"
# XCTest's "failures" counts failed assertions; the tests that failed are counted here.
failures="$(grep -cE "^Test Case '.*' failed \(" "$log" || true)"
skipped="$(grep -oE "[0-9]+ tests? skipped" <<<"$summary" | grep -oE "^[0-9]+" || echo 0)"
if [ -z "$summary" ]; then echo "no XCTest summary found"; exit 1; fi
if [ "$readme" -ne 0 ]; then echo "scripts/readme-check.sh failed: a README command does not work as written (see its report above)"; fi
if [ "$serve" -ne 0 ]; then echo "scripts/serve-checks.sh failed: the page in Chromium or schemathesis against the API (see its report above)"; fi
echo "$((executed - failures - skipped)) passed, $failures failed, $skipped skipped"
if [ "$status" -ne 0 ]; then exit "$status"; fi
# A skipped test is a test that did not run: each names what it needs (.ci/run installs all of it).
if [ "$skipped" -ne 0 ]; then grep -E "^Test Case '.*' skipped|: Test skipped" "$log" | head -20; echo "$skipped tests skipped: install what they name, then run again"; exit 1; fi
[ "$readme" -eq 0 ] || exit "$readme"
exit "$serve"
