#!/usr/bin/env bash
# tests/bench/run.sh - quorumfs side by side with etcd, tmpfs and a null
# FUSE filesystem, in one interleaved run (a benchmark, not a test).
#
#   tests/bench/run.sh [--quick] [--out DIR] [--reps N] [--seconds S]
#                      [--clients "1 16 64"] [--workloads "write read"]
#                      [--no-install] [--nullfs-st]
#
# 1. Installs what is missing with apt-get (root): etcd-server, etcd-client,
#    wrk, python3-matplotlib, and the build dependencies.
# 2. Builds fs/quorumfs, tests/bench/{loadgen,nullfs} in $BUILD (default
#    ./build; created with meson setup if missing).
# 3. Starts, in a temp dir, with only 127.0.0.0/8 addresses:
#      tmpfs          a tmpfs mounted for this run (no FUSE at all)
#      nullfs         tests/bench/nullfs (in-memory FUSE, no replication;
#                     libfuse's multi-threaded loop, 10 threads)
#      nullfs-st      with --nullfs-st: the same, single-threaded loop
#      quorumfs-1     a single-node quorumfs
#      quorumfs-3L    a three-node quorumfs (127.0.0.1/.2/.3), load on the
#      quorumfs-3F    leader / on a follower (the same cluster)
#      etcd           Debian's etcd, 3 members on 127.0.0.1 (different
#                     ports), load on the leader through the v3 JSON gateway
# 4. Runs tests/bench/bench.py: every cell (system x workload x clients)
#    REPS times, interleaved round-robin; then writes OUT/results.json,
#    OUT/table.md, OUT/ops.png, OUT/p99.png and prints the table.
# Defaults: 3 repetitions, 5 s cells, 1/16/64 clients, 1,000 keys, 100-byte
# values, every workload (write read stat rename), OUT=bench-out. --quick:
# 1 repetition of 2 s cells (checks the harness, not the numbers).
# Cleanup on any exit: only the PIDs started here are stopped, every mount
# made here is unmounted, the temp dir is removed (node logs are kept in
# OUT/logs).
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$here/build}
out=bench-out
reps=3
seconds=5
clients="1 16 64"
workloads="write read stat rename"
install=1
nullfs_st=0
keys=1000
value_bytes=100
wait_max_s=60 # bound on every wait loop below
py=/usr/bin/python3 # Debian's python3, where python3-matplotlib lives

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) reps=1; seconds=2 ;;
    --out) out=$2; shift ;;
    --reps) reps=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --clients) clients=$2; shift ;;
    --workloads) workloads=$2; shift ;;
    --no-install) install=0 ;;
    --nullfs-st) nullfs_st=1 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "run.sh: $*" >&2; }

install_missing() {
    local pkgs=(etcd-server etcd-client wrk python3 python3-matplotlib
                meson ninja-build pkg-config gcc libfuse3-dev fuse3
                libuv1-dev liblz4-dev libxxhash-dev libssl-dev libsystemd-dev
                libmicrohttpd-dev)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        log "missing packages: ${missing[*]}; run as root or install them"
        exit 2
    fi
    log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
        >/dev/null
}

[ $install = 1 ] && install_missing
if [ "$(id -u)" != 0 ]; then
    log "needs root (mounts a tmpfs)"
    exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >/dev/null
fi
ninja -C "$build" fs/quorumfs tests/bench/loadgen tests/bench/nullfs >/dev/null
bin=$build/fs/quorumfs
loadgen=$build/tests/bench/loadgen
nullfs=$build/tests/bench/nullfs

work=$(mktemp -d /tmp/qfs-bench-run.XXXXXX)
base=$((20000 + RANDOM % 30000)) # quorumfs peers base..base+2
ebase=$((base + 10))             # etcd: client ebase+i, peer ebase+10+i
pids=()   # every process started here
mounts=() # every mount made here

. "$here/tests/bench/common.sh"
cleanup() {
    stop_started
    # Node logs (elections, errors) are kept next to the results.
    mkdir -p "$out/logs" && cp "$work"/*.log "$out/logs/" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# --- tmpfs ---
mkdir -p "$work/tmpfs"
mount -t tmpfs -o size=1g bench-tmpfs "$work/tmpfs"
mounts+=("$work/tmpfs")

# --- null FUSE ---
mkdir -p "$work/nullfs"
mounts+=("$work/nullfs")
"$nullfs" "$work/nullfs" 2>"$work/nullfs.log" &
nullfs_pid=$!
pids+=("$nullfs_pid")
wait_for nullfs "$nullfs_pid" mountpoint -q "$work/nullfs"

nullfs_st_json=""
if [ $nullfs_st = 1 ]; then
    mkdir -p "$work/nullfs-st"
    mounts+=("$work/nullfs-st")
    "$nullfs" "$work/nullfs-st" --single-thread 2>"$work/nullfs-st.log" &
    nullfs_st_pid=$!
    pids+=("$nullfs_st_pid")
    wait_for nullfs-st "$nullfs_st_pid" mountpoint -q "$work/nullfs-st"
    nullfs_st_json="{\"name\": \"nullfs-st\", \"kind\": \"fs\", \"dir\": \"$work/nullfs-st\", \"pids\": [$nullfs_st_pid]},"
fi

# --- quorumfs, one node ---
q1=$work/q1
mkdir -p "$q1/mnt" "$q1/data"
mounts+=("$q1/mnt")
"$bin" mount "$q1/mnt" --data-dir "$q1/data" -f 2>"$work/q1.log" &
q1_pid=$!
pids+=("$q1_pid")
wait_for quorumfs-1 "$q1_pid" has_status "$q1/mnt"

# --- quorumfs, three nodes ---
qaddrs=("127.0.0.1:$base" "127.0.0.2:$((base + 1))" "127.0.0.3:$((base + 2))")
qcluster="n1=${qaddrs[0]},n2=${qaddrs[1]},n3=${qaddrs[2]}"
q3_pids=()
for i in 0 1 2; do
    d=$work/q3-n$((i + 1))
    mkdir -p "$d/mnt" "$d/data"
    mounts+=("$d/mnt")
    "$bin" mount "$d/mnt" --name "n$((i + 1))" --data-dir "$d/data" \
        --listen-peer "${qaddrs[$i]}" --initial-cluster "$qcluster" \
        --peer-secret-file "$(peer_secret "$work")" \
        --initial-cluster-state new -f 2>"$work/q3-n$((i + 1)).log" &
    q3_pids+=($!)
    pids+=($!)
done
q3_leader() { # prints the leader's index once all three agree
    local i l ld=""
    for i in 0 1 2; do
        l=$(json_field "$work/q3-n$((i + 1))/mnt/.cluster/status" leader)
        [ -n "$l" ] || return 1
        [ -z "$ld" ] || [ "$l" = "$ld" ] || return 1
        ld=$l
    done
    echo $((${ld#n} - 1))
}
for i in 0 1 2; do
    wait_for "quorumfs-3 n$((i + 1))" "${q3_pids[$i]}" \
        has_status "$work/q3-n$((i + 1))/mnt"
done
wait_for "quorumfs-3 leader" "${q3_pids[0]}" q3_leader
ql=$(q3_leader)
qf=$(((ql + 1) % 3))
log "quorumfs-3: leader n$((ql + 1)), follower used n$((qf + 1))"

# --- etcd, three members ---
ecluster=""
for i in 0 1 2; do
    ecluster+="${ecluster:+,}e$((i + 1))=http://127.0.0.1:$((ebase + 10 + i))"
done
e_pids=()
for i in 0 1 2; do
    c=http://127.0.0.1:$((ebase + i))
    p=http://127.0.0.1:$((ebase + 10 + i))
    etcd --name "e$((i + 1))" --data-dir "$work/etcd-e$((i + 1))" \
        --listen-client-urls "$c" --advertise-client-urls "$c" \
        --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
        --initial-cluster "$ecluster" --initial-cluster-state new \
        --initial-cluster-token "bench-$$" \
        >"$work/etcd-e$((i + 1)).log" 2>&1 &
    e_pids+=($!)
    pids+=($!)
done
eps="http://127.0.0.1:$ebase,http://127.0.0.1:$((ebase + 1)),http://127.0.0.1:$((ebase + 2))"
wait_for etcd "${e_pids[0]}" env ETCDCTL_API=3 etcdctl --endpoints "$eps" \
    endpoint health
# The leader's client URL: the endpoint whose member id is the leader id.
eurl=$(ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint status -w json |
    $py -c 'import json,sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
        print(s["Endpoint"])')
[ -n "$eurl" ] || { log "no etcd leader"; exit 1; }
log "etcd: leader at $eurl"
# Every key holds the value the range script expects.
$py - "$eurl" "$keys" "$value_bytes" <<'EOF'
import base64, json, sys, urllib.request
url, keys, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
v = bytes(97 + i % 26 for i in range(size))
v = v[:-1] + b"\n" if size > 0 else v
for i in range(keys):
    body = json.dumps({"key": base64.b64encode(b"/bench/k%05d" % i).decode(),
                       "value": base64.b64encode(v).decode()}).encode()
    req = urllib.request.Request(url + "/v3/kv/put", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200, r.status
EOF

# --- the run ---
mkdir -p "$out"
$py - "$work/plan.json" <<EOF
import json, sys
q3 = [int(p) for p in "${q3_pids[*]}".split()]
plan = {
    "loadgen": "$loadgen", "lua_dir": "$here/tests/bench",
    "reps": $reps, "seconds": $seconds,
    "clients": [int(c) for c in "$clients".split()],
    "workloads": "$workloads".split(),
    "keys": $keys, "value_bytes": $value_bytes,
    "date": __import__("time").strftime("%Y-%m-%d %H:%M:%S %Z"),
    "systems": [
        {"name": "tmpfs", "kind": "fs", "dir": "$work/tmpfs", "pids": []},
        {"name": "nullfs", "kind": "fs", "dir": "$work/nullfs",
         "pids": [$nullfs_pid]},
        $nullfs_st_json
        {"name": "quorumfs-1", "kind": "fs", "dir": "$q1/mnt/bench",
         "pids": [$q1_pid]},
        {"name": "quorumfs-3L", "kind": "fs",
         "dir": "$work/q3-n$((ql + 1))/mnt/bench-3", "pids": q3,
         "status": "$work/q3-n$((ql + 1))/mnt/.cluster/status",
         "expect_role": "leader"},
        {"name": "quorumfs-3F", "kind": "fs",
         "dir": "$work/q3-n$((qf + 1))/mnt/bench-3", "pids": q3,
         "status": "$work/q3-n$((qf + 1))/mnt/.cluster/status",
         "expect_role": "follower", "same_dir_as": "quorumfs-3L"},
        {"name": "etcd", "kind": "etcd", "url": "$eurl",
         "pids": [int(p) for p in "${e_pids[*]}".split()]},
    ],
}
json.dump(plan, open(sys.argv[1], "w"), indent=1)
EOF
mkdir -p "$q1/mnt/bench" "$work/q3-n$((ql + 1))/mnt/bench-3"
cp "$work/plan.json" "$out/plan.json"
$py "$here/tests/bench/bench.py" run "$work/plan.json" "$out"
# The leader may have changed during the run (it would show as errors or a
# slower "leader" column): record who led at the end.
log "quorumfs-3 leader at the end: n$(( $(q3_leader || echo -1) + 1 ))" \
    "(n$((ql + 1)) at the start)"
$py "$here/tests/bench/bench.py" report "$out"
