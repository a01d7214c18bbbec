#!/usr/bin/env bash
# Makes the local base image kv-base:local, for machines that cannot pull
# debian:bookworm-slim: a root filesystem holding only what the given
# binaries need to run (the shared libraries ldd lists, the dynamic
# loader), /tmp, and /etc/passwd and /etc/group naming the unprivileged
# user kv (uid and gid 10001), imported with `docker import`.
#
# Usage: deploy/make-base-image.sh BINARY...
set -euo pipefail

if (($# == 0)); then
  echo "usage: $0 BINARY..." >&2
  exit 2
fi
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT

libraries=$(ldd "$@" | awk '/=> \// { print $3 } /^\t\/[^ ]*ld-linux/ { print $1 }' | sort -u)
for library in $libraries; do
  mkdir -p "$rootfs$(dirname "$library")"
  cp -L "$library" "$rootfs$library"
done
mkdir -p "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/nonexistent\nkv:x:10001:10001:kv:/data:/nonexistent\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nkv:x:10001:\n' >"$rootfs/etc/group"

tar -C "$rootfs" -c . | docker import \
  --message "kv base: the shared libraries of the kv binaries" - kv-base:local >/dev/null
echo "made kv-base:local ($(echo "$libraries" | wc -w) libraries)"
