#!/usr/bin/env bash
# Creates target/sdk-venv with the official Python SDKs of Segment and RudderStack, pinned, for the
# end-to-end test `sdk` (tests/e2e/sdk.rs). Idempotent: an existing venv with both pins is kept.
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
  exit 0
fi

python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$segment" "$rudder"
echo "sdk venv ready: $venv"
