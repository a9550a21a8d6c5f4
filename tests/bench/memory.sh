#!/bin/bash
# tests/bench/memory.sh - memory and disk of one node under a write-heavy
# workload through the mount (docs/benchmarks.md, "Memory").
#
# Starts a single-node quorumfs with default options (plus EXTRA args), runs
# fsx -l 1000000 against a file in the mount for SECONDS (default 600), or,
# when fsx is not found, a loop that rewrites 5 files of 1 MiB, and samples
# the node's VmRSS every second. Prints peak and final RSS, the db size, the
# data dir size, live keys, and the bound 300 MiB + 300 B per live key.
#
#   tests/bench/memory.sh [--seconds N] [--fsx PATH] [--bin QUORUMFS]
#                         [--dir D] [--workload fsx|writers|cluster]
#                         [-- EXTRA MOUNT ARGS...]
#
# --workload writers: 100 writers x 3 files of 1 MiB, adding a new 1 MiB
# file per round until the quota refuses (one node); --workload cluster:
# 3 nodes, 48 writers x 1 file of 1 MiB, a follower SIGSTOPped for 20 s.
# Both run tests/bench/memory.py and report VmHWM per node.
#
# fsx is not in the repo (not our code): build it as /work/shared/CONFORMANCE.md
# says, then pass --fsx or set FSX. Only processes this script started are
# stopped; the mount is unmounted and D removed at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

seconds=600
fsx=${FSX:-$(command -v fsx || true)}
bin=${QUORUMFS_BIN:-$here/../../build/fs/quorumfs}
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --fsx) fsx=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --workload) workload_name=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "memory.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
extra=("$@")

case "${workload_name:-fsx}" in
fsx) ;;
writers|cluster)
    exec /usr/bin/python3 "$here/memory.py" "$workload_name" --bin "$bin" \
        --seconds "$seconds" ${dir:+--dir "$dir"} -- "${extra[@]}" ;;
*) echo "memory.sh: unknown workload $workload_name" >&2; exit 2 ;;
esac

if [ -z "$dir" ]; then
    dir=$(mktemp -d /tmp/qfs-memory-XXXXXX)
fi
mkdir -p "$dir/data" "$dir/mnt"
pids=()
mounts=("$dir/mnt")
cleanup() {
    stop_started
    rm -rf "$dir"
}
trap cleanup EXIT

nice "$bin" mount "$dir/mnt" --data-dir "$dir/data" -f "${extra[@]}" \
    >"$dir/node.log" 2>&1 &
node=$!
pids+=("$node")
for _ in $(seq 1 100); do
    [ -e "$dir/mnt/.cluster/status" ] && break
    sleep 0.1
done
[ -e "$dir/mnt/.cluster/status" ] || { cat "$dir/node.log"; exit 1; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$node/status"; }
status_field() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$dir/mnt/.cluster/status" "$1"
}

if [ -n "$fsx" ] && [ -x "$fsx" ]; then
    workload="fsx -l 1000000 for ${seconds}s"
    ( cd "$dir/mnt" && exec nice "$fsx" -q -l 1000000 \
        -p 100000 fsx.file ) >"$dir/work.log" 2>&1 &
else
    workload="write loop: 5 files x 1 MiB, rewritten, for ${seconds}s"
    ( i=0
      head -c 1048576 /dev/urandom >"$dir/blob"
      while :; do
          cp "$dir/blob" "$dir/mnt/f$((i % 5))"
          i=$((i + 1))
      done ) >"$dir/work.log" 2>&1 &
fi
work=$!
pids=("$work" "${pids[@]}") # the workload stops before the node

peak=0
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
    if ! kill -0 "$work" 2>/dev/null; then
        echo "memory.sh: the workload exited early:" >&2
        tail -20 "$dir/work.log" >&2
        break
    fi
    r=$(rss_kib)
    [ "$r" -gt "$peak" ] && peak=$r
    sleep 1
done
kill -TERM "$work" 2>/dev/null || true
wait "$work" 2>/dev/null || true
sleep 1
final=$(rss_kib)
keys=$(status_field keys)
db=$(stat -c %s "$dir/data/db")
du_data=$(du -sb "$dir/data" | cut -f1)
bound=$((300 * 1024 * 1024 + 300 * keys))
echo "workload:      $workload"
echo "options:       defaults ${extra[*]:-}"
echo "peak RSS:      $((peak / 1024)) MiB"
echo "final RSS:     $((final / 1024)) MiB"
echo "db:            $((db / 1048576)) MiB"
echo "data dir:      $((du_data / 1048576)) MiB"
echo "live keys:     $keys"
echo "bound:         $((bound / 1048576)) MiB (300 MiB + 300 B/key): peak" \
    "$([ $((peak * 1024)) -le $bound ] && echo within || echo OVER)"
if grep -q "Operation\|failed\|short" "$dir/work.log"; then
    echo "workload errors (last lines of its log):"
    tail -5 "$dir/work.log"
fi
