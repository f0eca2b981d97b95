#!/usr/bin/env bash
# Creates target/sdk-venv with the official Python SDKs of Segment and RudderStack, pinned, with the
# OpenAPI validator and schemathesis, pinned, for the end-to-end tests `sdk` and `openapi`
# (tests/e2e/sdk.rs, tests/e2e/openapi.rs); and tests/sdk/node/node_modules with the official Node
# SDKs (pinned in tests/sdk/node's package-lock.json; Debian's nodejs and npm are installed first
# when missing). Idempotent: what is in place with the pins is kept.
#
#   bash tests/sdk/setup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${CARGO_TARGET_DIR:-target}/sdk-venv"
segment="segment-analytics-python==2.4.0"
rudder="rudder-sdk-python==2.1.9"
validator="openapi-spec-validator==0.7.1"
schemathesis="schemathesis==3.39.16"
# Pinned too: schemathesis 3.39 allows any hypothesis 6.x, but hypothesis-jsonschema breaks on
# later ones ("'many' object has no attribute 'more'").
hypothesis="hypothesis==6.129.0"
pins=("$segment" "$rudder" "$validator" "$schemathesis" "$hypothesis")

if [ -x "$venv/bin/python" ]; then
  installed="$("$venv/bin/python" -m pip freeze 2>/dev/null)"
  missing=0
  for pin in "${pins[@]}"; do
    grep -qx "$pin" <<<"$installed" || missing=1
  done
else
  missing=1
fi
if [ "$missing" = 1 ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
fi
echo "sdk venv ready: $venv"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq nodejs npm || { $sudo apt-get update -qq && $sudo apt-get install -y -qq nodejs npm; }
fi
node_dir="tests/sdk/node"
# `npm ci` installs exactly the lock file; it is skipped when that lock file was installed already.
stamp="$node_dir/node_modules/.installed-lock.json"
if ! cmp -s "$node_dir/package-lock.json" "$stamp" 2>/dev/null; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$node_dir/package-lock.json" "$stamp"
fi
echo "sdk node modules ready: $node_dir/node_modules"
