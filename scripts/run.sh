#!/usr/bin/env bash
# The project's run command (README): installs what is missing, builds the
# servers in release mode, and starts a local cluster on 127.0.0.1 with all
# its data under one directory, then prints how to use it. It runs in the
# foreground; Ctrl-C (or SIGTERM) stops every process it started (exit
# status 130, or 143). Run it again on the same data directory and the
# cluster resumes where it was.
#
# The cluster is the shard controller group (three replicas) and replica
# groups of three replicas each (two by default), joined to the controller
# (docs/local-cluster.md).
#
# Usage: scripts/run.sh [--groups N] [DATA_DIR]   (N from 1 to 9, default 2;
# DATA_DIR default: data/local in the checkout; a relative DATA_DIR is taken
# from where the command is run)
# Ports: controller gRPC 7001-7003, HTTP (/metrics, /healthz, /readyz)
# 9001-9003; group G replica R gRPC 7000+100G+R, HTTP 9000+100G+R; set
# KV_RUN_BASE_PORT to move them all (7000 and 9000 are base and base+2000).
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

groups=2
if [[ "${1:-}" == "--groups" ]]; then
  groups="${2:-}"
  shift 2 || true
fi
if ! [[ "$groups" =~ ^[1-9]$ ]]; then
  echo "run: --groups takes a number from 1 to 9 (got '$groups')" >&2
  exit 2
fi
# The data directory, relative to where the command was run.
data_dir="$(cd "$caller_dir" && realpath -m "${1:-$root/data/local}")"
base="${KV_RUN_BASE_PORT:-7000}"
if ! [[ "$base" =~ ^[0-9]{1,5}$ ]] || ((base < 1024 || base + 2903 > 65535)); then
  echo "run: KV_RUN_BASE_PORT must be a number from 1024 to 62632 (got '$base')" >&2
  exit 2
fi
replicas=(1 2 3)

echo "== building shardctrler, shardkv and kvctl (release; the first build takes a while)"
cargo build --release --bin shardctrler --bin kvctl --bin shardkv
target_dir="$(cargo metadata --no-deps --format-version 1 |
  grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)"
bin="$target_dir/release"

grpc_address() { echo "127.0.0.1:$((base + $1))"; }
http_address() { echo "127.0.0.1:$((base + 2000 + $1))"; }
# Group $1's replica $2.
group_grpc() { grpc_address $((100 * $1 + $2)); }
group_http() { http_address $((100 * $1 + $2)); }
group_servers() {
  local servers="" id
  for id in "${replicas[@]}"; do servers+="${servers:+,}$(group_grpc "$1" "$id")"; done
  echo "$servers"
}

peers=""
ctrler=""
for id in "${replicas[@]}"; do
  peers+="${peers:+,}$id=$(grpc_address "$id")"
  ctrler+="${ctrler:+,}$(grpc_address "$id")"
done

mkdir -p "$data_dir/logs"
pids=()
names=()
# Says that the process at position $1 of `pids` exited, with its log's end.
report_exit() {
  local log="$data_dir/logs/${names[$1]}.log"
  echo "run: ${names[$1]} exited; the end of $log:" >&2
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
      echo "run: ${names[$index]} did not stop in time, killing it" >&2
      kill -KILL "${pids[$index]}" 2>/dev/null || true
    fi
    wait "${pids[$index]}" 2>/dev/null || true
  done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# A port already taken would make a replica exit at once; say which.
addresses=()
for id in "${replicas[@]}"; do
  addresses+=("$(grpc_address "$id")" "$(http_address "$id")")
  for gid in $(seq 1 "$groups"); do
    addresses+=("$(group_grpc "$gid" "$id")" "$(group_http "$gid" "$id")")
  done
done
for address in "${addresses[@]}"; do
  if (exec 3<>"/dev/tcp/${address%:*}/${address#*:}") 2>/dev/null; then
    echo "run: $address is already in use (another cluster running?)" >&2
    exit 1
  fi
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
  names+=("ctrler-$id")
done

# Waits until the server whose HTTP address is $1 is ready (knows a
# leader); a process that exits meanwhile is an error with its log shown.
wait_ready() {
  local deadline=$((SECONDS + 60)) index
  until curl -fs --noproxy '*' --max-time 2 "http://$1/readyz" >/dev/null 2>&1; do
    for index in "${!pids[@]}"; do
      if ! kill -0 "${pids[$index]}" 2>/dev/null; then
        report_exit "$index"
        exit 1
      fi
    done
    if ((SECONDS > deadline)); then
      echo "run: $2 elected no leader within 60 s; logs in $data_dir/logs" >&2
      exit 1
    fi
    sleep 0.2
  done
}
for id in "${replicas[@]}"; do
  wait_ready "$(http_address "$id")" "the controller group"
done

for gid in $(seq 1 "$groups"); do
  group_peers=""
  for id in "${replicas[@]}"; do
    group_peers+="${group_peers:+,}$id=$(group_grpc "$gid" "$id")"
  done
  for id in "${replicas[@]}"; do
    env -u KV_TICK_MS -u KV_SNAPSHOT_INTERVAL -u KV_COMPACT_INTERVAL -u KV_COMPACT_KEEP \
      -u KV_GID -u KV_CONFIG_POLL_MS \
      "$bin/shardkv" --gid "$gid" --id "$id" --listen "$(group_grpc "$gid" "$id")" \
      --http "$(group_http "$gid" "$id")" --peers "$group_peers" --ctrler "$ctrler" \
      --data-dir "$data_dir/group-$gid-$id" \
      >"$data_dir/logs/group-$gid-$id.log" 2>&1 &
    pids+=($!)
    names+=("group-$gid-$id")
  done
done
for gid in $(seq 1 "$groups"); do
  for id in "${replicas[@]}"; do
    wait_ready "$(group_http "$gid" "$id")" "group $gid"
  done
done

# Join every group the controller does not know yet (on a resumed cluster
# they all are: the refusal says so and changes nothing).
export KV_CTRLER="$ctrler"
for gid in $(seq 1 "$groups"); do
  if ! output="$("$bin/kvctl" --timeout 30 join "$gid=$(group_servers "$gid")" 2>&1)"; then
    if [[ "$output" != *"already"* ]]; then
      echo "run: joining group $gid failed: $output" >&2
      exit 1
    fi
  fi
done
# One write and read through the data path: the groups serve.
if ! "$bin/kvctl" --timeout 60 put run-check ok >/dev/null ||
  [[ "$("$bin/kvctl" --timeout 60 get run-check)" != "ok" ]]; then
  echo "run: the groups do not serve; logs in $data_dir/logs" >&2
  exit 1
fi

cat <<EOF

== local cluster running (data and logs under $data_dir)

Shard controller: 3 replicas at $ctrler
  metrics: curl -s http://$(http_address 1)/metrics | grep shardctrler_
Replica groups: $groups of 3 replicas (group 1 at $(group_servers 1))
  metrics: curl -s http://$(group_http 1 1)/metrics | grep -E 'shardkv_|raft_'

Try it (every flag is also an environment variable KV_<FLAG>):
  export KV_CTRLER=$ctrler
  $bin/kvctl put greeting hello
  $bin/kvctl append greeting ", world"
  $bin/kvctl get greeting
  $bin/kvctl query             # which group owns each shard; \`query 1\` for history
  $bin/kvctl move 0 1          # give shard 0 to group 1: its data moves
  $bin/kvctl status            # every replica: role, shards, moves under way
  $bin/kvctl config watch      # each new configuration as it commits

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
