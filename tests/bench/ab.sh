#!/usr/bin/env bash
# tests/bench/ab.sh - quorumfs at two commits side by side, in one
# interleaved run (a benchmark, not a test): did a change move the figures?
#
#   tests/bench/ab.sh --before REV [--after REV] [--out DIR] [--reps N]
#                     [--seconds S] [--clients "1 16 64"]
#                     [--workloads "write read"]
#
# Builds each REV (default --after: the working tree's build, ./build) from
# `git archive` in a temp dir with meson's default options, starts for each
# a single node and a three-node cluster on 127.0.0.1 (peers in clear:
# --peer-insecure where the binary knows it, since older binaries have no
# peer TLS), and runs tests/bench/bench.py over the four systems
# (quorumfs-1-before, quorumfs-1-after, quorumfs-3L-before,
# quorumfs-3L-after: load on each cluster's leader, quorumfs-3F-before,
# quorumfs-3F-after: on one of its followers), interleaved round robin as
# tests/bench/run.sh does; --workloads picks the workloads (default all
# four). Writes DIR/table.md and results.json
# (DIR defaults to bench-ab). Each REV must be an ancestor-compatible
# quorumfs: `mount DIR --data-dir D -f` and the --listen-peer /
# --initial-cluster flags.
# Cleanup on any exit: only the PIDs started here are stopped, every mount
# made here is unmounted, the temp dir is removed (logs kept in DIR/logs).
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
before=""
after=""
out=bench-ab
reps=3
seconds=3
clients="1 16 64"
workloads="write read stat rename"
keys=1000
value_bytes=100
wait_max_s=60
py=/usr/bin/python3

while [ $# -gt 0 ]; do
    case "$1" in
    --before) before=$2; shift ;;
    --after) after=$2; shift ;;
    --out) out=$2; shift ;;
    --reps) reps=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --clients) clients=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "ab.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$before" ] || { echo "ab.sh: --before REV is required" >&2; exit 2; }
log() { echo "ab.sh: $*" >&2; }

build=${BUILD:-$here/build}
. "$here/tests/bench/common.sh"
bench_start ab
cleanup_ab() {
    stop_started
    mkdir -p "$out/logs" && cp "$work"/*.log "$out/logs/" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup_ab EXIT
trap 'exit 130' INT TERM

build_rev() { # build_rev REV DIR: prints the quorumfs binary of REV
    local rev=$1 dir=$2
    mkdir -p "$dir"
    git -C "$here" archive "$rev" | tar -x -C "$dir"
    meson setup "$dir/build" "$dir" >/dev/null
    ninja -C "$dir/build" fs/quorumfs >/dev/null
    echo "$dir/build/fs/quorumfs"
}

bin_before=$(build_rev "$before" "$work/src-before")
if [ -n "$after" ]; then
    bin_after=$(build_rev "$after" "$work/src-after")
else
    bin_after=$bin # bench_start built the working tree
    after="working tree ($(git -C "$here" rev-parse --short HEAD))"
fi
log "before: $before, after: $after"


# Both set globals (not printed: a command substitution's subshell would
# lose the pids and mounts the cleanup needs).
single() { # single TAG BIN: sets s_pid, s_dir
    local tag=$1 b=$2 d=$work/q1-$1
    mkdir -p "$d/mnt" "$d/data"
    mounts+=("$d/mnt")
    "$b" mount "$d/mnt" --data-dir "$d/data" -f 2>"$work/q1-$tag.log" &
    local pid=$!
    pids+=("$pid")
    wait_for "quorumfs-1-$tag" "$pid" has_status "$d/mnt"
    mkdir -p "$d/mnt/bench"
    s_pid=$pid
    s_dir=$d/mnt/bench
}

cluster() { # cluster TAG BIN BASE: sets c_pids (a,b,c), c_dir, c_status
    # (the leader's mount), c_fdir, c_fstatus (a follower's)
    local tag=$1 b=$2 base=$3 i sec=() cl="" ld="" l
    local help
    help=$("$b" mount --help 2>&1 || true) # not a pipe into grep -q: pipefail
    if [[ $help == *--peer-insecure* ]]; then
        sec=(--peer-insecure)
    fi
    for i in 1 2 3; do
        cl+="${cl:+,}n$i=127.0.0.1:$((base + i - 1))"
    done
    local cp=()
    for i in 1 2 3; do
        local d=$work/q3-$tag-n$i
        mkdir -p "$d/mnt" "$d/data"
        mounts+=("$d/mnt")
        "$b" mount "$d/mnt" --name "n$i" --data-dir "$d/data" \
            --listen-peer "127.0.0.1:$((base + i - 1))" \
            --initial-cluster "$cl" --initial-cluster-state new \
            "${sec[@]}" -f 2>"$work/q3-$tag-n$i.log" &
        cp+=("$!")
        pids+=("$!")
    done
    for i in 1 2 3; do
        wait_for "quorumfs-3-$tag n$i" "${cp[$((i - 1))]}" \
            has_status "$work/q3-$tag-n$i/mnt"
    done
    for _ in $(seq 1 $((wait_max_s * 10))); do
        l=$(json_field "$work/q3-$tag-n1/mnt/.cluster/status" leader || true)
        [ -n "$l" ] && ld=$l && break
        sleep 0.1
    done
    [ -n "$ld" ] || { log "quorumfs-3-$tag: no leader"; exit 1; }
    local d=$work/q3-$tag-$ld/mnt
    mkdir -p "$d/bench-3"
    c_pids=$(IFS=,; echo "${cp[*]}")
    c_dir=$d/bench-3
    c_status=$d/.cluster/status
    local f=n1
    [ "$ld" = n1 ] && f=n2
    c_fdir=$work/q3-$tag-$f/mnt/bench-3
    c_fstatus=$work/q3-$tag-$f/mnt/.cluster/status
}

single before "$bin_before"
p1b=$s_pid d1b=$s_dir
single after "$bin_after"
p1a=$s_pid d1a=$s_dir
base=$((20000 + RANDOM % 30000))
cluster before "$bin_before" "$base"
p3b=$c_pids d3b=$c_dir s3b=$c_status f3b=$c_fdir fs3b=$c_fstatus
cluster after "$bin_after" $((base + 3))
p3a=$c_pids d3a=$c_dir s3a=$c_status f3a=$c_fdir fs3a=$c_fstatus

mkdir -p "$out"
cat >"$work/plan.json" <<EOF
{"loadgen": "$loadgen", "lua_dir": "$here/tests/bench",
 "reps": $reps, "seconds": $seconds,
 "clients": [$(echo "$clients" | sed 's/ \+/, /g')],
 "workloads": [$(echo $workloads | sed 's/[^ ]\+/"&"/g; s/ \+/, /g')],
 "keys": $keys, "value_bytes": $value_bytes,
 "date": "$(date -u '+%Y-%m-%d %H:%M:%S UTC')",
 "before": "$before", "after": "$after",
 "systems": [
  {"name": "quorumfs-1-before", "kind": "fs", "dir": "$d1b", "pids": [$p1b]},
  {"name": "quorumfs-1-after", "kind": "fs", "dir": "$d1a", "pids": [$p1a]},
  {"name": "quorumfs-3L-before", "kind": "fs", "dir": "$d3b", "pids": [$p3b],
   "status": "$s3b", "expect_role": "leader"},
  {"name": "quorumfs-3L-after", "kind": "fs", "dir": "$d3a", "pids": [$p3a],
   "status": "$s3a", "expect_role": "leader"},
  {"name": "quorumfs-3F-before", "kind": "fs", "dir": "$f3b", "pids": [$p3b],
   "status": "$fs3b", "expect_role": "follower",
   "same_dir_as": "quorumfs-3L-before"},
  {"name": "quorumfs-3F-after", "kind": "fs", "dir": "$f3a", "pids": [$p3a],
   "status": "$fs3a", "expect_role": "follower",
   "same_dir_as": "quorumfs-3L-after"}
 ]}
EOF
cp "$work/plan.json" "$out/plan.json"
$py "$here/tests/bench/bench.py" run "$work/plan.json" "$out"
$py "$here/tests/bench/bench.py" report "$out"
