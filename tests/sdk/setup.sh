#!/usr/bin/env bash
# Creates target/sdk-venv with the official Python SDKs of Segment and RudderStack, pinned, and
# tests/sdk/node/node_modules with their official Node SDKs (pinned in tests/sdk/node's
# package-lock.json; Debian's nodejs and npm are installed first when missing), for the
# end-to-end tests `sdk` (tests/e2e/sdk.rs). Idempotent: what is in place with the pins is kept.
#
#   bash tests/sdk/setup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${CARGO_TARGET_DIR:-target}/sdk-venv"
segment="segment-analytics-python==2.4.0"
rudder="rudder-sdk-python==2.1.9"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip freeze 2>/dev/null | grep -qx "$segment" \
  && "$venv/bin/python" -m pip freeze 2>/dev/null | grep -qx "$rudder"; then
  echo "sdk venv ready: $venv"
else
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$segment" "$rudder"
  echo "sdk venv ready: $venv"
fi

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
