#!/usr/bin/env bash
# The project's test command (README): installs what is missing, then runs
# formatting and lint checks, every test (unit, simulation seeds and named
# scenarios, integration), in that order. Fails on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace --all-targets
echo "== all tests passed"
