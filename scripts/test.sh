#!/usr/bin/env bash
# The whole test suite: build yard and the bundled plugins, run the plugin
# author's end-to-end flow, then every XCTest. This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh debug
swift build --build-tests 2>&1 | grep -E 'error|warning: unre|Compiling .*Tests|Build' || true
test "${PIPESTATUS[0]}" -eq 0
scripts/e2e-plugin-author.sh
swift test --skip-build 2>&1 | grep -vE "^Test Case '.*' started" 
exit "${PIPESTATUS[0]}"
