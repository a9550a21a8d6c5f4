#!/usr/bin/env bash
# tests/bench/perf.sh - where a quorumfs node spends its time under 64
# echo-style writers (a profiling aid, not a test).
#
#   tests/bench/perf.sh [--seconds S] [--clients N] [--out DIR]
#
# Starts a single node, then a three-node cluster (127.0.0.1/.2/.3), in a
# temp dir; on each, runs `loadgen write` with N clients (default 64) for S
# seconds (default 10) while `perf record -g` samples the node (the
# cluster's leader), and `perf stat`-style counts of context switches come
# from /proc. Writes DIR/perf-single.txt and DIR/perf-leader.txt (top
# symbols, self time, then call graphs) and DIR/perf-*.json (loadgen's
# line) and DIR/perf-*.data (for `perf report -i`). DIR defaults to
# bench-out. Needs perf (Debian: linux-perf). PERF_CALLGRAPH=dwarf gives
# user-space callers (the default build has no frame pointers).
# Only the processes started here are stopped (by PID); mounts are
# unmounted and the temp dir removed on any exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$here/build}
seconds=10
clients=64
out=bench-out
wait_max_s=60
py=/usr/bin/python3

while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift ;;
    --clients) clients=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "perf.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
command -v perf >/dev/null || { echo "perf.sh: needs perf" >&2; exit 2; }
. "$here/tests/bench/common.sh"
bench_start perf
base=$((20000 + RANDOM % 30000))

has_status() { grep -q '"name"' "$1/.cluster/status" 2>/dev/null; }
leader_of() {
    $py -c 'import json,sys; print(json.load(open(sys.argv[1]))["leader"] or "")' \
        "$1/.cluster/status" 2>/dev/null
}
wait_until() { # wait_until CMD...
    local end=$((SECONDS + wait_max_s))
    until "$@"; do
        [ $SECONDS -lt $end ] || { echo "perf.sh: timeout: $*" >&2; exit 1; }
        sleep 0.1
    done
}

profile() { # profile LABEL PID DIR
    local label=$1 pid=$2 dir=$3
    mkdir -p "$dir"
    "$loadgen" write "$dir" -t "$clients" -d 1 -s 100 -k 16 >/dev/null
    local cs0 cs1
    cs0=$(awk '/ctxt_switches/ {s += $2} END {print s}' /proc/"$pid"/task/*/status)
    perf record --call-graph "${PERF_CALLGRAPH:-fp}" -o "$work/$label.data" \
        -p "$pid" -- sleep "$seconds" \
        2>/dev/null &
    local perf_pid=$!
    "$loadgen" write "$dir" -t "$clients" -d "$seconds" -s 100 -k 16 \
        >"$out/perf-$label.json"
    wait "$perf_pid" || true
    cs1=$(awk '/ctxt_switches/ {s += $2} END {print s}' /proc/"$pid"/task/*/status)
    {
        echo "# $label: loadgen write, $clients clients, ${seconds}s"
        cat "$out/perf-$label.json"
        echo "# node context switches during the run: $((cs1 - cs0))"
        echo "# self time by symbol"
        # (head closes the pipe early: not an error under pipefail)
        perf report -i "$work/$label.data" --no-children --sort dso,symbol \
            --stdio -g none 2>/dev/null | grep -v '^$' | head -60 || true
        echo "# call graphs of the top self-time symbols (callers)"
        perf report -i "$work/$label.data" --no-children --sort symbol \
            --stdio -g caller,0.5,callee,function,percent \
            --percent-limit 3 2>/dev/null | grep -v '^$' | head -300 || true
    } >"$out/perf-$label.txt"
    cp "$work/$label.data" "$out/perf-$label.data"
    echo "perf.sh: $out/perf-$label.txt" >&2
}

mkdir -p "$out"
# Single node.
mkdir -p "$work/s/mnt" "$work/s/data"
mounts+=("$work/s/mnt")
"$bin" mount "$work/s/mnt" --data-dir "$work/s/data" -f 2>"$work/s.log" &
pids+=($!)
spid=$!
wait_until has_status "$work/s/mnt"
profile single "$spid" "$work/s/mnt/perf"
# Three nodes.
addrs=("127.0.0.1:$base" "127.0.0.2:$((base + 1))" "127.0.0.3:$((base + 2))")
cluster="n1=${addrs[0]},n2=${addrs[1]},n3=${addrs[2]}"
qp=()
for i in 0 1 2; do
    d=$work/n$((i + 1))
    mkdir -p "$d/mnt" "$d/data"
    mounts+=("$d/mnt")
    "$bin" mount "$d/mnt" --name "n$((i + 1))" --data-dir "$d/data" \
        --listen-peer "${addrs[$i]}" --initial-cluster "$cluster" -f \
        --peer-secret-file "$(peer_secret "$work")" \
        2>"$work/n$((i + 1)).log" &
    pids+=($!)
    qp+=($!)
done
for i in 1 2 3; do
    wait_until has_status "$work/n$i/mnt"
done
has_leader() { [ -n "$(leader_of "$work/n1/mnt")" ]; }
wait_until has_leader
ld=$(leader_of "$work/n1/mnt")
li=$((${ld#n} - 1))
profile leader "${qp[$li]}" "$work/$ld/mnt/perf"
