#!/usr/bin/env bash
# tests/bench/cluster.sh - three-node quorumfs cluster benchmark (not a test).
#
#   tests/bench/cluster.sh            (BUILD=DIR to use another build dir)
#
# Builds nothing: uses $BUILD/fs/quorumfs and $BUILD/tests/bench/loadgen
# (BUILD defaults to ./build). Starts n1..n3 on 127.0.0.1/.2/.3 (random port
# base) in a temp dir, then measures:
#   1. durable echo-style writes (loadgen write: open+write 100 B+close over
#      100 names per thread) with 1 and 64 writers, on the leader's mount and
#      on a follower's mount, DURATION seconds each;
#   2. failover: time from kill -9 of the leader to the first successful
#      write (close() returned 0) on a survivor, FAILOVER_RUNS times (the
#      killed node is restarted with --initial-cluster-state existing and
#      caught up between runs); reports the median.
# Prints a table, then one JSON line (last line of stdout).
# Environment: DURATION (s, default 5), FAILOVER_RUNS (default 5),
# HEARTBEAT_MS (default 100), ELECTION_MS (default 1000): the defaults are
# quorumfs's own.
# Cleanup (also on error or ^C): only the PIDs this script started are
# killed, every mount is lazily unmounted, the temp dir is removed.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$here/build}
bin=$build/fs/quorumfs
loadgen=$build/tests/bench/loadgen
duration=${DURATION:-5}
runs=${FAILOVER_RUNS:-5}
heartbeat_ms=${HEARTBEAT_MS:-100}
election_ms=${ELECTION_MS:-1000}
wait_max_s=60        # bound on every wait loop below
failover_max_s=60    # a failover slower than this counts as failed

for x in "$bin" "$loadgen"; do
    if [ ! -x "$x" ]; then
        echo "cluster.sh: $x missing; build first:" \
             "meson setup build && ninja -C build" >&2
        exit 2
    fi
done

work=$(mktemp -d /tmp/qfs-bench.XXXXXX)
secret=$work/peer.secret
(umask 077 && head -c 32 /dev/urandom | base64 >"$secret")
base=$((20000 + RANDOM % 30000))
names=(n1 n2 n3)
addrs=("127.0.0.1:$base" "127.0.0.2:$((base + 1))" "127.0.0.3:$((base + 2))")
cluster="n1=${addrs[0]},n2=${addrs[1]},n3=${addrs[2]}"
pids=("" "" "")

cleanup() {
    local i
    for i in 0 1 2; do
        if [ -n "${pids[$i]}" ] && kill -0 "${pids[$i]}" 2>/dev/null; then
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            wait "${pids[$i]}" 2>/dev/null || true
        fi
        fusermount3 -uz "$work/${names[$i]}/mnt" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }

mnt() { echo "$work/${names[$1]}/mnt"; }

# json_field FILE FIELD: prints FIELD of the JSON object in FILE.
json_field() {
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]
print("" if v is None else v)' "$1" "$2" 2>/dev/null
}

status_field() { json_field "$(mnt "$1")/.cluster/status" "$2"; }

start_node() { # start_node INDEX new|existing
    local i=$1 n=${names[$1]}
    mkdir -p "$work/$n/mnt" "$work/$n/data"
    "$bin" mount "$work/$n/mnt" --name "$n" --data-dir "$work/$n/data" \
        --listen-peer "${addrs[$i]}" --initial-cluster "$cluster" \
        --initial-cluster-state "$2" --heartbeat-ms "$heartbeat_ms" \
        --peer-secret-file "$secret" \
        --election-ms "$election_ms" -f 2>>"$work/$n.log" &
    pids[i]=$!
}

wait_mount() { # wait_mount INDEX
    local end=$((SECONDS + wait_max_s))
    while [ $SECONDS -lt $end ]; do
        if ! kill -0 "${pids[$1]}" 2>/dev/null; then
            echo "cluster.sh: ${names[$1]} exited; log:" >&2
            tail -20 "$work/${names[$1]}.log" >&2
            exit 1
        fi
        if mountpoint -q "$(mnt "$1")" &&
                [ -n "$(status_field "$1" name)" ]; then
            return 0
        fi
        sleep 0.05
    done
    echo "cluster.sh: ${names[$1]} not mounted after ${wait_max_s}s" >&2
    exit 1
}

# Prints the index of the leader once every live node names the same one
# and all live nodes have applied what it committed.
wait_leader() {
    local end=$((SECONDS + wait_max_s)) i ld
    while [ $SECONDS -lt $end ]; do
        ld=""
        local agree=1
        for i in 0 1 2; do
            kill -0 "${pids[$i]}" 2>/dev/null || continue
            local l
            l=$(status_field "$i" leader || true)
            if [ -z "$l" ] || { [ -n "$ld" ] && [ "$l" != "$ld" ]; }; then
                agree=0
                break
            fi
            ld=$l
        done
        if [ $agree = 1 ] && [ -n "$ld" ]; then
            local li=$((${ld#n} - 1))
            if kill -0 "${pids[$li]}" 2>/dev/null &&
                    [ "$(status_field "$li" role)" = leader ]; then
                local commit caught=1
                commit=$(status_field "$li" commit_index)
                for i in 0 1 2; do
                    kill -0 "${pids[$i]}" 2>/dev/null || continue
                    [ "$(status_field "$i" applied_index)" -ge "$commit" ] 2>/dev/null ||
                        caught=0
                done
                if [ $caught = 1 ]; then
                    echo "$li"
                    return 0
                fi
            fi
        fi
        sleep 0.05
    done
    echo "cluster.sh: no agreed leader after ${wait_max_s}s" >&2
    exit 1
}

run_load() { # run_load INDEX LABEL THREADS
    local d
    d="$(mnt "$1")/bench-$2"
    mkdir -p "$d"
    echo "  $2: ${names[$1]}, $3 writer(s), ${duration}s" >&2
    "$loadgen" write "$d" -t "$3" -d "$duration" -s 100 -k 100 \
        >"$work/load-$2.json"
}

# Kill -9 the leader, then time until a write on a survivor succeeds.
failover_once() { # failover_once RUN
    local ld surv t0 t1 f
    ld=$(wait_leader)
    surv=$(((ld + 1) % 3))
    f="$(mnt "$surv")/failover-$1"
    t0=$(now_ns)
    kill -KILL "${pids[$ld]}"
    wait "${pids[$ld]}" 2>/dev/null || true
    pids[ld]=""
    fusermount3 -uz "$(mnt "$ld")" 2>/dev/null || true
    local ok=0
    while [ $(($(now_ns) - t0)) -lt $((failover_max_s * 1000000000)) ]; do
        if (echo "run $1" >"$f") 2>/dev/null; then
            ok=1
            break
        fi
        sleep 0.01
    done
    t1=$(now_ns)
    if [ $ok = 1 ]; then
        echo "$(((t1 - t0) / 1000000))" >>"$work/failover-ms"
        echo "  run $1: killed ${names[$ld]}, first write on" \
             "${names[$surv]} after $(((t1 - t0) / 1000000)) ms" >&2
    else
        echo "fail" >>"$work/failover-ms"
        echo "  run $1: no successful write in ${failover_max_s}s" >&2
    fi
    start_node "$ld" existing
    wait_mount "$ld"
    wait_leader >/dev/null
}

echo "quorumfs cluster bench: $work, ports $base..$((base + 2))," \
     "heartbeat ${heartbeat_ms} ms, election ${election_ms} ms" >&2
for i in 0 1 2; do
    start_node "$i" new
done
for i in 0 1 2; do
    wait_mount "$i"
done
ld=$(wait_leader)
fo=$(((ld + 1) % 3))
echo "leader ${names[$ld]}, follower used: ${names[$fo]}" >&2

echo "writes:" >&2
run_load "$ld" leader-t1 1
run_load "$ld" leader-t64 64
run_load "$fo" follower-t1 1
run_load "$fo" follower-t64 64

echo "failover (kill -9 leader -> first successful write):" >&2
: >"$work/failover-ms"
for r in $(seq 1 "$runs"); do
    failover_once "$r"
done

python3 - "$work" "$duration" "$heartbeat_ms" "$election_ms" <<'EOF'
import json, os, sys
work, duration, hb, el = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = []
out = {"bench": "cluster", "nodes": 3, "seconds": duration,
       "heartbeat_ms": hb, "election_ms": el, "write": {}}
print("%-14s %8s %10s %8s %9s %9s %9s" % ("case", "threads", "ops/s",
      "errors", "p50 us", "p99 us", "p999 us"))
for label in ("leader-t1", "leader-t64", "follower-t1", "follower-t64"):
    with open(os.path.join(work, "load-%s.json" % label)) as f:
        r = json.loads(f.read().strip().splitlines()[-1])
    out["write"][label] = r
    print("%-14s %8d %10.1f %8d %9d %9d %9d" % (label, r["threads"],
          r["ops_per_s"], r["errors"], r["p50_us"], r["p99_us"],
          r["p999_us"]))
with open(os.path.join(work, "failover-ms")) as f:
    vals = [v.strip() for v in f if v.strip()]
ok = sorted(int(v) for v in vals if v != "fail")
med = ok[len(ok) // 2] if len(ok) == len(vals) and ok else None
out["failover_ms"] = {"runs": [None if v == "fail" else int(v) for v in vals],
                      "median": med}
print("failover ms (kill -9 leader -> first write on a survivor): runs %s,"
      " median %s" % (out["failover_ms"]["runs"], med))
print(json.dumps(out))
EOF
