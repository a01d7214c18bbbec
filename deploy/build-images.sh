#!/usr/bin/env bash
# Builds the kv image (kv:local) from binaries already built:
#   deploy/build-images.sh [BIN_DIR]
# BIN_DIR holds shardctrler, shardkv and kvctl (default: the release build,
# target/release; the tests pass the debug binaries their build made, so
# RocksDB is compiled once per profile). The binaries are copied without
# their debug information. Where debian:bookworm-slim is not present and
# cannot be pulled, the base is made locally (make-base-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=${1:-${CARGO_TARGET_DIR:-target}/release}
binaries=("$bin_dir/shardctrler" "$bin_dir/shardkv" "$bin_dir/kvctl")
for binary in "${binaries[@]}"; do
  [[ -x $binary ]] || {
    echo "build-images: $binary is missing; build it first:" >&2
    echo "  cargo build --release -p shardctrler -p shardkv -p client" >&2
    exit 1
  }
done

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/bin" "$context/data"
for binary in "${binaries[@]}"; do
  objcopy --strip-debug "$binary" "$context/bin/$(basename "$binary")"
done
cp deploy/Dockerfile "$context/Dockerfile"

base=debian:bookworm-slim
if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
  echo "build-images: $base cannot be pulled here; making a local base"
  deploy/make-base-image.sh "${binaries[@]}"
  base=kv-base:local
fi
docker build -q --build-arg BASE_IMAGE="$base" -t kv:local "$context" >/dev/null
echo "built kv:local on $base"
