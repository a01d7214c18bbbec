#!/usr/bin/env bash
# Our store against etcd on this machine, side by side (issue 20): installs
# etcd from Debian if it is missing, builds the release binaries, then runs
# `compare-etcd`, which starts each side fresh in turn (ours, etcd, etcd,
# ours, ...), drives both with the same kvbench workloads and prints the
# table of medians and ratios. Extra arguments go to compare-etcd
# (`--runs 5`, `--duration 20`, ...; `--help` lists them).
#
# Measure on a quiet machine: the servers and the load generator share its
# cores, so anything else running skews both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if ! command -v etcd >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "compare-etcd: installing etcd-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq etcd-server >/dev/null
  else
    echo "compare-etcd: etcd not found; install it (Debian: sudo apt-get install etcd-server)" >&2
    exit 1
  fi
fi

cargo build --release -p shardctrler -p shardkv -p raft-demo -p kv-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v load="$load" 'BEGIN { exit !(load > 0.5) }'; then
  echo "compare-etcd: the 1-minute load average is $load: something else is running and will skew the figures" >&2
fi
echo "compare-etcd: $(etcd --version | head -1); $(nproc) cores"
exec "$target_dir/release/compare-etcd" --etcd "$(command -v etcd)" "$@"
