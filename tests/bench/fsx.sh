#!/bin/bash
# tests/bench/fsx.sh - fsx (xfstests) against quorumfs: a single node and a
# follower of a 3-node cluster, every variant (issue 11, "POSIX where users
# meet it"; the figures are in docs/status.md).
#
#   tests/bench/fsx.sh --fsx PATH [--bin QUORUMFS] [--ops N] [--dir D]
#                      [--base-port P]
#
# fsx is not our code and not in the repo: build it as
# /work/shared/CONFORMANCE.md says and pass its path. Variants: default
# (mmap reads and writes), `-R -W` (no mmap), `-R -W -c 8` (close and
# reopen), `-R -W -y` (fsync after every write), each with -N N (default
# 10000) and again with `-l 1000000` (files up to ~1 MB, under the 1 MiB
# file size limit). The cluster's nodes listen on 127.0.0.1 ports P..P+2
# (default 17421). Prints one line per run (PASS/FAIL, seconds) and a
# total; a failing run's last log lines are shown. Only processes this
# script started are stopped; mounts are unmounted and D removed at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

fsx=""
bin=${QUORUMFS_BIN:-$here/../../build/fs/quorumfs}
ops=10000
dir=""
base_port=17421
while [ $# -gt 0 ]; do
    case "$1" in
    --fsx) fsx=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --ops) ops=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    *) echo "fsx.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$fsx" ] || [ ! -x "$fsx" ]; then
    echo "fsx.sh: --fsx must name a built fsx binary" >&2
    exit 2
fi

[ -n "$dir" ] || dir=$(mktemp -d /tmp/qfs-fsx-XXXXXX)
pids=()
mounts=()
cleanup() {
    stop_started
    rm -rf "$dir"
}
trap cleanup EXIT

wait_ready() {
    for _ in $(seq 1 200); do
        [ -n "$(cat "$1/.cluster/leader" 2>/dev/null || true)" ] && return 0
        sleep 0.1
    done
    return 1
}

# The single node.
mkdir -p "$dir/one/data" "$dir/one/mnt"
mounts+=("$dir/one/mnt")
"$bin" mount "$dir/one/mnt" --data-dir "$dir/one/data" -f \
    >"$dir/one.log" 2>&1 &
pids+=("$!")
wait_ready "$dir/one/mnt" || { tail -n 20 "$dir/one.log"; exit 1; }

# The cluster; fsx runs on a follower.
start_cluster3 "$dir" "$bin" "$base_port"

variants=("" "-R -W" "-R -W -c 8" "-R -W -y")
failed=0
total=0
for target in one "$follower"; do
    mnt="$dir/$target/mnt"
    where=$([ "$target" = one ] && echo "single node" || echo "follower $target")
    for len in "" "-l 1000000"; do
        for v in "${variants[@]}"; do
            total=$((total + 1))
            f="$mnt/fsx-$total"
            log="$dir/fsx-$total.log"
            start=$(date +%s.%N)
            # shellcheck disable=SC2086 # the variant's flags split on purpose
            if "$fsx" -q -N "$ops" -S "$total" $v $len "$f" >"$log" 2>&1; then
                res=PASS
            else
                res=FAIL
                failed=$((failed + 1))
            fi
            secs=$(echo "$(date +%s.%N) - $start" | bc)
            printf '%s  %-12s %-22s %6.1f s  (fsx -N %s -S %s %s %s)\n' \
                "$res" "$where" "${v:-default} ${len}" "$secs" "$ops" \
                "$total" "$v" "$len"
            if [ "$res" = FAIL ]; then
                tail -n 15 "$log" | sed 's/^/    /'
            fi
        done
    done
done
echo "fsx: $((total - failed)) of $total runs passed"
[ "$failed" -eq 0 ]
