#!/usr/bin/env bash
# tests/bench/flood.sh - writes while strangers flood the peer ports (issue
# "Only members may speak", Tested): a 3-node cluster with a shared secret;
# `loadgen write` with W writers on the leader for S seconds quiet, then
# again while 12 attacker threads (each from its own 127.0.1.x address)
# connect to every peer port as fast as they can, half sending a member's
# HELLO in the clear, half holding connections open until evicted.
#
#   tests/bench/flood.sh [--seconds S] [--writers W] [--reps N] [--nice K]
#
# Defaults: S 60, W 8, N 1 (each repetition: quiet, then flood, then the
# flood alone). Prints the loadgen lines, the CPU time the three nodes used
# in each phase (the attackers run on the same machine: on 2 cores they
# take CPU from the nodes and from loadgen), the leader's term before and
# after (a change means an election happened), the attackers' connection
# count, and p99 under flood / quiet (target <= 2). The attackers run at
# nice K (default 0; 19 approximates attackers on other hosts, which take
# no CPU from the nodes: their own rate then drops when the nodes are
# busy). Only processes this script started are stopped;
# mounts are unmounted and the temp dir removed at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$here/build}
seconds=60
writers=8
reps=1
attacker_nice=0
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift ;;
    --writers) writers=$2; shift ;;
    --reps) reps=$2; shift ;;
    --nice) attacker_nice=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "flood.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
. "$here/tests/bench/common.sh"
bench_start flood

base=$((20000 + RANDOM % 30000))
start_cluster3 "$work" "$bin" "$base" || { echo "flood.sh: no leader" >&2; exit 1; }
mnt=$work/$leader/mnt
status() { # status FIELD: from the leader's /.cluster/status
    /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$mnt/.cluster/status" "$1"
}
cluster_id=$(status cluster_id)

flood() { # flood SECONDS: prints the number of connections made
    nice -n "$attacker_nice" /usr/bin/python3 "$here/tests/e2e/peer_forge.py" \
        flood "$1" "$cluster_id" 1234 \
        "127.0.0.1:$base" "127.0.0.1:$((base + 1))" "127.0.0.1:$((base + 2))"
}

cpu_s() { # CPU seconds used so far by the three nodes
    local t=0 p
    for p in "${pids[@]}"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'
}

sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

results=$work/results.txt
: >"$results"
for rep in $(seq 1 "$reps"); do
    mkdir -p "$mnt/q$rep" "$mnt/f$rep"
    term0=$(status term)
    c0=$(cpu_s)
    quiet=$("$loadgen" write "$mnt/q$rep" -t "$writers" -d "$seconds" -s 100 -k 16)
    c1=$(cpu_s)
    echo "rep $rep quiet: $quiet (nodes' CPU: $(sub "$c1" "$c0") s)"
    flood "$seconds" >"$work/flood.count" &
    fpid=$!
    loud=$("$loadgen" write "$mnt/f$rep" -t "$writers" -d "$seconds" -s 100 -k 16)
    wait "$fpid"
    c2=$(cpu_s)
    echo "rep $rep flood: $loud (nodes' CPU: $(sub "$c2" "$c1") s;" \
        "attacker connections: $(cat "$work/flood.count"))"
    flood "$seconds" >"$work/flood.count"
    c3=$(cpu_s)
    echo "rep $rep flood alone, no writes: nodes' CPU $(sub "$c3" "$c2") s" \
        "for $(cat "$work/flood.count") attacker connections"
    echo "rep $rep term before $term0, after $(status term), leader $(status leader)"
    echo "$quiet" >>"$results"
    echo "$loud" >>"$results"
done
/usr/bin/python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
quiet, loud = rows[0::2], rows[1::2]
q = statistics.median(r["p99_us"] for r in quiet)
f = statistics.median(r["p99_us"] for r in loud)
e = sum(r["errors"] for r in rows)
print("p99 quiet %d us, under flood %d us: ratio %.2f (target <= 2); "
      "errors %d" % (q, f, f / q, e))
EOF
