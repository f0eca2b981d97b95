#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each for a short time, from a temporary copy of its seeds
# (fuzz/seeds/<target>), so that CI catches a crash or a broken property. Called by CI from the
# repository root as `bash fuzz/run.sh`; FUZZ_SECONDS (default 20) is the time per target.
#
# cargo-fuzz needs nightly-only compiler flags (sanitizers, coverage); RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. A crashing input is kept under fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# cargo fuzz has no --locked: refuse a Cargo.lock that would have to change before building.
cargo fetch --locked --quiet
cargo fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mapfile -t targets < <(cargo fuzz list)
failed=0
for target in "${targets[@]}"; do
    corpus="$scratch/corpus/$target"
    log="$scratch/$target.log"
    mkdir -p "$corpus"
    if [[ -d "seeds/$target" ]]; then
        cp -R "seeds/$target/." "$corpus"
    fi
    if cargo fuzz run "$target" "$corpus" -- -max_total_time="$seconds" >"$log" 2>&1; then
        runs="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1 || true)"
        echo "fuzz $target: ok (${runs:-no summary}s, $(find "$corpus" -type f | wc -l) corpus inputs)"
    else
        echo "fuzz $target: FAILED; the fuzzer's report follows"
        tail -n 60 "$log"
        failed=1
    fi
done
exit "$failed"
