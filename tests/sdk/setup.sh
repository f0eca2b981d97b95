#!/usr/bin/env bash
# Creates target/sdk-venv with the official Python SDKs of Segment and RudderStack, pinned, for the
# end-to-end test `sdk` (tests/e2e/sdk.rs), and the OpenAPI validator and schemathesis, pinned, for
# the end-to-end test `openapi` (tests/e2e/openapi.rs). Idempotent: an existing venv with every pin
# is kept.
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
  if [ "$missing" = 0 ]; then
    echo "sdk venv ready: $venv"
    exit 0
  fi
fi

python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
echo "sdk venv ready: $venv"
