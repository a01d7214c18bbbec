#!/usr/bin/env bash
# The project's run command (README): installs what is missing, builds the
# servers in release mode, and starts a local cluster on 127.0.0.1 with all
# its data under one directory, then prints how to use it. It runs in the
# foreground; Ctrl-C (or SIGTERM) stops every process it started. Run it
# again on the same data directory and the cluster resumes where it was.
#
# Today the cluster is the shard controller group (three replicas); the
# replica groups join it here once they exist (docs/local-cluster.md).
#
# Usage: scripts/run.sh [DATA_DIR]   (default: ./data/local)
# Ports: controller gRPC 7001-7003, HTTP (/metrics, /healthz, /readyz)
# 9001-9003; set KV_RUN_BASE_PORT to move them (gRPC at base+1..3, HTTP at
# base+2001..2003).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

data_dir="${1:-data/local}"
base="${KV_RUN_BASE_PORT:-7000}"
target_dir="${CARGO_TARGET_DIR:-target}"
replicas=(1 2 3)

echo "== building shardctrler and kvctl (release; the first build takes a while)"
cargo build --release --bin shardctrler --bin kvctl
bin="$target_dir/release"

grpc_address() { echo "127.0.0.1:$((base + $1))"; }
http_address() { echo "127.0.0.1:$((base + 2000 + $1))"; }

peers=""
for id in "${replicas[@]}"; do
  peers+="${peers:+,}$id=$(grpc_address "$id")"
done
ctrler=""
for id in "${replicas[@]}"; do
  ctrler+="${ctrler:+,}$(grpc_address "$id")"
done

mkdir -p "$data_dir/logs"
pids=()
# Stops every process started here: on SIGTERM a server stops its node,
# closes its database and exits 0.
stop() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    echo
    echo "== stopping the local cluster"
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap 'stop; exit 0' INT TERM
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

for id in "${replicas[@]}"; do
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
  until curl -fs "http://$(http_address "$id")/readyz" >/dev/null 2>&1; do
    for index in "${!pids[@]}"; do
      if ! kill -0 "${pids[$index]}" 2>/dev/null; then
        log="$data_dir/logs/ctrler-${replicas[$index]}.log"
        echo "run: controller replica ${replicas[$index]} exited; the end of $log:" >&2
        tail -n 20 "$log" >&2
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
wait -n "${pids[@]}" || true
echo "run: a controller replica exited; logs in $data_dir/logs" >&2
exit 1
