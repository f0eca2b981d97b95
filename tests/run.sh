#!/usr/bin/env bash
# The whole test suite (the README's test command; .ci/run calls it):
# 1. what the tests need beyond the toolchain (tests/setup.sh: chromium, PostgreSQL, the SDKs);
# 2. every crate's tests and the end-to-end tests, with the store in memory or embedded, and
#    the PostgreSQL store's own tests on throwaway clusters they start themselves;
# 3. the engine's and the server's suites once more with every engine's store in PostgreSQL
#    (a new schema per engine on one throwaway cluster, tests/postgres.sh), so that both kinds
#    of store pass the same tests. The end-to-end suite is not repeated over PostgreSQL (it
#    would double the run); its PostgreSQL tests are in tests/e2e/store_engine.rs and P1.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
cargo test --workspace --locked

env=$(bash tests/postgres.sh start)
eval "$env"
trap 'bash tests/postgres.sh stop "$CUSTODIA_TEST_PG_DIR"' EXIT
echo "tests/run.sh: the engine's and the server's suites with the store in PostgreSQL"
# The test binaries cargo just built, run again: `cargo test -p ...` would select fewer packages,
# unify other features and rebuild half the workspace.
binaries=$(cargo test --workspace --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    target = message.get("target", {})
    if (message.get("reason") == "compiler-artifact" and message.get("executable")
            and message["profile"]["test"] and target.get("kind") == ["lib"]
            and target.get("name") in ("custodia_engine", "custodia_server")):
        print(message["manifest_path"].rsplit("/", 1)[0] + " " + message["executable"])
')
if [ "$(echo "$binaries" | grep -c .)" != 2 ]; then
  echo "tests/run.sh: expected the engine's and the server's test binaries, found: $binaries" >&2
  exit 1
fi
# Each from its package's directory, as cargo runs it.
while read -r package binary; do
  (cd "$package" && "$binary")
done <<<"$binaries"
