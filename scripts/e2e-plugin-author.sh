#!/usr/bin/env bash
# What a third-party adapter author does, end to end, against this checkout:
# scaffold with `yard plugin new`, build, pack, create a key, sign, trust,
# install, list and pass the conformance kit. Fails on the first broken step.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
bin="$(swift build --show-bin-path)"
yard="$bin/yard"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export YARD_HOME="$work/home"

step() { printf '== %s\n' "$*"; }
step "plugin new"
(cd "$work" && "$yard" plugin new acme-images --sdk-path "$repo" >/dev/null)
step "the scaffold depends on the PluginAPI package alone"
grep -q "\.package(path: \"$repo/PluginAPI\")" "$work/acme-images/Package.swift"
step "swift build (resolves none of the host's dependencies)"
(cd "$work/acme-images" && swift build --scratch-path "$work/acme-build" 2>&1 | grep -E 'error|Build' )
lib="$work/acme-build/debug/libAcmeImagesAdapter.so"
test -f "$lib"
if [ -d "$work/acme-build/checkouts" ] && [ -n "$(ls -A "$work/acme-build/checkouts")" ]; then
  echo "the scaffold resolved packages: $(ls "$work/acme-build/checkouts")"; exit 1
fi
step "pack, keygen, sign"
"$yard" plugin pack --manifest "$work/acme-images/plugin.json" --library "$lib" --out "$work/acme-images.yardpkg" >/dev/null
"$yard" plugin keygen --publisher "Acme" --out "$work/keys" >/dev/null
"$yard" plugin sign "$work/acme-images.yardpkg" --key "$work/keys/acme.private.json" >/dev/null
step "install refuses the untrusted publisher"
if "$yard" plugin install "$work/acme-images.yardpkg" 2>"$work/err"; then echo "installed without trust"; exit 1; fi
grep -q PLUGIN_SIGNATURE_INVALID "$work/err"
step "trust, install, list, test"
"$yard" plugin trust "$work/keys/acme.public.json" >/dev/null
"$yard" plugin install "$work/acme-images.yardpkg"
"$yard" plugin list --json | grep -q '"acme-images"'
"$yard" plugin test acme-images
echo "e2e plugin author flow: ok"
