#!/usr/bin/env bash
# The project's run command (README): installs what is missing, builds the
# servers in release mode, and starts a local cluster on 127.0.0.1 with all
# its data under one directory, then prints how to use it. It runs in the
# foreground; Ctrl-C (or SIGTERM) stops every process it started (exit
# status 130, or 143). Run it again on the same data directory and the
# cluster resumes where it was.
#
# Today the cluster is the shard controller group (three replicas); the
# replica groups join it here once they exist (docs/local-cluster.md).
#
# Usage: scripts/run.sh [DATA_DIR]   (default: data/local in the checkout;
# a relative DATA_DIR is taken from where the command is run)
# Ports: controller gRPC 7001-7003, HTTP (/metrics, /healthz, /readyz)
# 9001-9003; set KV_RUN_BASE_PORT to move them (gRPC at base+1..3, HTTP at
# base+2001..2003).
set -euo pipefail
if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
  echo "run: needs bash 5.1 or later (this is $BASH_VERSION)" >&2
  exit 2
fi
caller_dir="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/setup.sh
cd "$root"

# The data directory, relative to where the command was run.
data_dir="$(cd "$caller_dir" && realpath -m "${1:-$root/data/local}")"
base="${KV_RUN_BASE_PORT:-7000}"
if ! [[ "$base" =~ ^[0-9]{1,5}$ ]] || ((base < 1024 || base + 2003 > 65535)); then
  echo "run: KV_RUN_BASE_PORT must be a number from 1024 to 63532 (got '$base')" >&2
  exit 2
fi
replicas=(1 2 3)

echo "== building shardctrler and kvctl (release; the first build takes a while)"
cargo build --release --bin shardctrler --bin kvctl
target_dir="$(cargo metadata --no-deps --format-version 1 |
  grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
bin="$target_dir/release"

grpc_address() { echo "127.0.0.1:$((base + $1))"; }
http_address() { echo "127.0.0.1:$((base + 2000 + $1))"; }

peers=""
ctrler=""
for id in "${replicas[@]}"; do
  peers+="${peers:+,}$id=$(grpc_address "$id")"
  ctrler+="${ctrler:+,}$(grpc_address "$id")"
done

mkdir -p "$data_dir/logs"
pids=()
# Says that the replica at position $1 of `pids` exited, with its log's end.
report_exit() {
  local log="$data_dir/logs/ctrler-${replicas[$1]}.log"
  echo "run: controller replica ${replicas[$1]} exited; the end of $log:" >&2
  tail -n 20 "$log" >&2
}
# Stops every process started here: on SIGTERM a server stops its node,
# closes its database and exits 0. One still running after 15 s is killed
# (SIGKILL loses nothing acknowledged) and named.
stop() {
  trap - INT TERM EXIT
  ((${#pids[@]})) || return 0
  echo
  echo "== stopping the local cluster"
  kill "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 15)) index
  for index in "${!pids[@]}"; do
    while kill -0 "${pids[$index]}" 2>/dev/null && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if kill -0 "${pids[$index]}" 2>/dev/null; then
      echo "run: controller replica ${replicas[$index]} did not stop in time, killing it" >&2
      kill -KILL "${pids[$index]}" 2>/dev/null || true
    fi
    wait "${pids[$index]}" 2>/dev/null || true
  done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# A port already taken would make a replica exit at once; say which.
for id in "${replicas[@]}"; do
  for address in "$(grpc_address "$id")" "$(http_address "$id")"; do
    if (exec 3<>"/dev/tcp/${address%:*}/${address#*:}") 2>/dev/null; then
      echo "run: $address is already in use (another cluster running?)" >&2
      exit 1
    fi
  done
done

# The servers read KV_* variables as flags: the user's own must not change
# the cluster (a stale KV_SHARDS would fix the shard count for good).
for id in "${replicas[@]}"; do
  env -u KV_SHARDS -u KV_TICK_MS -u KV_SNAPSHOT_INTERVAL -u KV_COMPACT_INTERVAL -u KV_COMPACT_KEEP \
    "$bin/shardctrler" --id "$id" --listen "$(grpc_address "$id")" \
    --http "$(http_address "$id")" --peers "$peers" \
    --data-dir "$data_dir/ctrler-$id" \
    >"$data_dir/logs/ctrler-$id.log" 2>&1 &
  pids+=($!)
done

# Ready once every replica knows a leader; a replica that exits is an
# error with its log shown.
deadline=$((SECONDS + 60))
for id in "${replicas[@]}"; do
  until curl -fs --noproxy '*' --max-time 2 "http://$(http_address "$id")/readyz" >/dev/null 2>&1; do
    for index in "${!pids[@]}"; do
      if ! kill -0 "${pids[$index]}" 2>/dev/null; then
        report_exit "$index"
        exit 1
      fi
    done
    if ((SECONDS > deadline)); then
      echo "run: the controller group elected no leader within 60 s; logs in $data_dir/logs" >&2
      exit 1
    fi
    sleep 0.2
  done
done

cat <<EOF

== local cluster running (data and logs under $data_dir)

Shard controller: 3 replicas at $ctrler
  metrics: curl -s http://$(http_address 1)/metrics | grep shardctrler_

Admin commands (every flag is also an environment variable KV_<FLAG>):
  export KV_CTRLER=$ctrler
  $bin/kvctl join 1=127.0.0.1:8101,127.0.0.1:8102 2=127.0.0.1:8201
  $bin/kvctl move 0 2
  $bin/kvctl query             # latest configuration; \`query 1\` for history
  $bin/kvctl config watch      # each new configuration as it commits

Replica groups (reads and writes) are not part of the cluster yet.
Ctrl-C stops the cluster; running this command again resumes it.
EOF

# Stay in the foreground until stopped or until a replica exits.
exited=""
wait -n -p exited "${pids[@]}" || true
for index in "${!pids[@]}"; do
  if [[ "${pids[$index]}" == "$exited" ]]; then
    report_exit "$index"
  fi
done
exit 1
