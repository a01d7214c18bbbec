#!/usr/bin/env bash
# A/B benchmark of the Raft group: builds `raft-node` and `raft-bench` of
# BASE (a git revision) and of the working tree, then runs `raft-bench` of
# each in turn, ROUNDS times, in one invocation, so both see the same
# machine. Each round prints the median lines of both builds.
#
#   ./scripts/bench-ab.sh d77c600 3
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/bench-ab.sh BASE_REVISION [ROUNDS]}
rounds=${2:-3}
source scripts/setup.sh
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$base" >/dev/null
build() { # dir out
  # Both trees share the target dir (RocksDB is built once); their own
  # crates have the same names, so clean them to force a rebuild.
  # One package per call: a revision from before `raft-demo` has none.
  for package in raft proto raft-demo; do
    cargo clean --release -p "$package" --manifest-path "$1/Cargo.toml" >/dev/null 2>&1 || true
  done
  (cd "$1" && CARGO_TARGET_DIR="$target" cargo build --release --bin raft-node --bin raft-bench)
  mkdir -p "$2" && cp "$target/release/raft-node" "$target/release/raft-bench" "$2/"
}
build "$work/base" "$work/bin-base"
build "$PWD" "$work/bin-new"
for round in $(seq 1 "$rounds"); do
  for variant in base new; do
    echo "== round $round: $variant"
    "$work/bin-$variant/raft-bench" --seconds 10 --runs 3 --proposers 1,64 | grep -E 'median'
  done
done
