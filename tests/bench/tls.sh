#!/usr/bin/env bash
# tests/bench/tls.sh - what peer TLS costs (issue "Only members may
# speak", Performance): writes on a 3-node cluster with a shared secret
# (mutual TLS 1.3) side by side with the same cluster started with
# --peer-insecure, in one run.
#
#   tests/bench/tls.sh [--reps N] [--seconds S] [--out FILE]
#
# Each repetition (default 3) starts a fresh cluster per mode, the order
# of the modes alternating, and runs `loadgen write` on the leader's mount
# with 64 writers and then with 1 writer for S seconds (default 5). Prints
# one line per cell and, at the end, per mode the medians of 64-writer
# throughput and 1-writer p50, and the ratios TLS / clear (targets:
# throughput >= 0.85, p50 <= 1.15). FILE (optional) gets every loadgen
# line as JSON with its mode and repetition. Nodes listen on 127.0.0.1,
# random ports. Only processes this script started are stopped; mounts
# are unmounted and the temp dir removed at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$here/build}
reps=3
seconds=5
out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --reps) reps=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "tls.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
. "$here/tests/bench/common.sh"
bench_start tls
results=$work/results.jsonl
: >"$results"

cell() { # cell MODE REP: one fresh cluster, 64 writers then 1
    local mode=$1 rep=$2 dir=$work/$1-$2 args=() line threads
    mkdir -p "$dir"
    [ "$mode" = clear ] && args=(--peer-insecure)
    pids=()
    mounts=()
    start_cluster3 "$dir" "$bin" $((20000 + RANDOM % 30000)) \
        "${args[@]}" || { echo "tls.sh: no leader ($mode)" >&2; exit 1; }
    local mnt=$dir/$leader/mnt
    for threads in 64 1; do
        mkdir -p "$mnt/w$threads"
        line=$("$loadgen" write "$mnt/w$threads" -t "$threads" \
            -d "$seconds" -s 100 -k 16)
        echo "$mode rep $rep, $threads writers: $line"
        echo "{\"mode\":\"$mode\",\"rep\":$rep,\"line\":$line}" >>"$results"
    done
    stop_started
}

for rep in $(seq 1 "$reps"); do
    if [ $((rep % 2)) -eq 1 ]; then
        cell tls "$rep"; cell clear "$rep"
    else
        cell clear "$rep"; cell tls "$rep"
    fi
done
[ -n "$out" ] && cp "$results" "$out"

/usr/bin/python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(mode, threads, key):
    return statistics.median(r["line"][key] for r in rows
                             if r["mode"] == mode and
                             r["line"]["threads"] == threads)
tput = {m: med(m, 64, "ops_per_s") for m in ("tls", "clear")}
p50 = {m: med(m, 1, "p50_us") for m in ("tls", "clear")}
errs = sum(r["line"]["errors"] for r in rows)
for m in ("tls", "clear"):
    print("%-5s 64 writers: %8.0f writes/s (median)   1 writer: p50 %6d us"
          % (m, tput[m], p50[m]))
print("TLS / clear: throughput %.2f (target >= 0.85), 1-writer p50 %.2f "
      "(target <= 1.15); errors %d"
      % (tput["tls"] / tput["clear"], p50["tls"] / p50["clear"], errs))
EOF
