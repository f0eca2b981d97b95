#!/usr/bin/env bash
# What the test suite needs beyond the Rust toolchain, installed when missing (idempotent; the
# README's test command and .ci/run both call it):
# - Debian's chromium, for the privacy center's browser tests (tests/e2e/privacy_center.rs);
# - Debian's postgresql (server programs and pgcrypto), for the PostgreSQL store's tests and the
#   benchmark baseline's test: each starts a throwaway cluster of its own (custodia-pgcluster),
#   so no server is started here;
# - a Python venv with the pinned Segment and RudderStack SDKs, openapi-spec-validator and
#   schemathesis, and the Node SDKs (Node and npm from Debian when missing; tests/sdk/setup.sh),
#   for tests/e2e/sdk.rs and tests/e2e/openapi.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup.sh: the browser tests need Debian's chromium (apt-get install chromium); run this as root on Debian, or install it yourself" >&2
    exit 1
  fi
  echo "tests/setup.sh: installing chromium for the browser tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/setup.sh: the PostgreSQL store's tests need Debian's postgresql (apt-get install postgresql); run this as root on Debian, or install it yourself" >&2
    exit 1
  fi
  echo "tests/setup.sh: installing postgresql for the PostgreSQL store's tests"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi

bash tests/sdk/setup.sh
