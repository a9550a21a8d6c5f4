#!/usr/bin/env bash
# tests/bench/scale.sh - scale figures of a single quorumfs node (a
# benchmark, not a test).
#
#   tests/bench/scale.sh [--files N] [--dirs D] [--big B] [--out DIR]
#
# In a temp dir, on one node (no cluster options):
#   1. mounts an empty node and reads its VmRSS;
#   2. creates N files of 100 bytes over D directories (default 100,000 over
#      1,000; tests/bench/mkfiles, 32 threads), then B files in one
#      directory /big (default min(N, 100,000)), and reads VmRSS again;
#   3. resident memory per key = (VmRSS after - VmRSS before - live value
#      bytes) / keys (VmRSS is read at once: a db rewrite still running
#      then counts; VmHWM, the peak while creating, is reported too); db
#      file size against the raw value and key bytes;
#   4. stops the node (SIGTERM), times the restart to a ready mount
#      (`quorumfs mount` returns once the mount is ready), VmRSS again;
#   5. times `ls -l /big | wc -l` (cold kernel cache, then warm) and
#      `find MNT | wc -l` (cold).
# Prints a table and writes OUT/scale-N.json (OUT defaults to bench-out).
# Builds nothing it does not need: fs/quorumfs, tests/bench/mkfiles in
# $BUILD (default ./build). Only the node started here is stopped (by PID);
# its mount is unmounted and the temp dir removed on any exit.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$here/build}
files=100000
dirs=1000
big=""
out=bench-out
threads=32
value_bytes=100
wait_max_s=600 # bound on every wait below (a restart with 1M keys included)
py=/usr/bin/python3

while [ $# -gt 0 ]; do
    case "$1" in
    --files) files=$2; shift ;;
    --dirs) dirs=$2; shift ;;
    --big) big=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "scale.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$big" ] || big=$((files < 100000 ? files : 100000))

log() { echo "scale.sh: $*" >&2; }

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" >/dev/null
fi
ninja -C "$build" fs/quorumfs tests/bench/mkfiles >/dev/null
bin=$build/fs/quorumfs
mkfiles=$build/tests/bench/mkfiles

work=$(mktemp -d /tmp/qfs-bench-scale.XXXXXX)
mnt=$work/mnt
data=$work/data
mkdir -p "$mnt" "$data"
pid=""

cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
            grep -q quorumfs "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if mountpoint -q "$mnt" 2>/dev/null; then
        fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_s() { date +%s.%N; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$pid/status"; }
status_field() {
    $py -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$mnt/.cluster/status" "$1"
}

# Starts the node daemonized; `quorumfs mount` returns once it is ready.
# Sets start_s (seconds it took) and pid (from the data dir's LOCK file).
start_node() {
    local t0 t1
    t0=$(now_s)
    timeout "$wait_max_s" "$bin" mount "$mnt" --data-dir "$data"
    t1=$(now_s)
    pid=$(head -n1 "$data/LOCK")
    grep -q quorumfs "/proc/$pid/cmdline"
    start_s=$($py -c "print('%.3f' % ($t1 - $t0))")
}

stop_node() {
    kill -TERM "$pid"
    local end=$((SECONDS + wait_max_s))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "node $pid did not stop"
        exit 1
    fi
    pid=""
    if mountpoint -q "$mnt"; then
        fusermount3 -u "$mnt"
    fi
}

timed() { # timed CMD...: runs CMD (a shell string), prints "SECONDS OUTPUT"
    local t0 t1 o
    t0=$(now_s)
    o=$(bash -c "$1")
    t1=$(now_s)
    $py -c "print('%.3f' % ($t1 - $t0))"
    echo "$o"
}

log "work dir $work, $files files over $dirs dirs + $big in /big"
start_node
start_first=$start_s
rss0=$(rss_kb)
log "mounted in ${start_first}s, VmRSS ${rss0} kB"

log "creating $files files over $dirs directories ($threads threads)"
mk1=$("$mkfiles" "$mnt" -n "$files" -D "$dirs" -t "$threads" -s "$value_bytes")
log "$mk1"
mkdir "$mnt/big"
log "creating $big files in /big"
mk2=$("$mkfiles" "$mnt/big" -n "$big" -D 0 -t 16 -s "$value_bytes")
log "$mk2"
rss1=$(rss_kb)
hwm1=$(hwm_kb) # peak: includes transient work (db rewrites)
keys=$(status_field keys)
live=$(status_field live_bytes)
stop_t0=$(now_s)
stop_node
stop_s=$($py -c "print('%.3f' % ($(now_s) - $stop_t0))")
db_bytes=$(stat -c %s "$data/db")
log_bytes=$(du -sb "$data/log" | cut -f1)
start_node
restart_s=$start_s
rss2=$(rss_kb)
log "restart to a ready mount: ${restart_s}s, VmRSS ${rss2} kB"

mapfile -t ls_cold < <(timed "ls -l '$mnt/big' | wc -l")
mapfile -t ls_warm < <(timed "ls -l '$mnt/big' | wc -l")
mapfile -t find_cold < <(timed "find '$mnt' | wc -l")
rss3=$(rss_kb)

mkdir -p "$out"
$py - "$out/scale-$files.json" <<EOF
import json, sys
files, dirs, big, vb = $files, $dirs, $big, $value_bytes
keys, live = $keys, $live
rss0, rss1, rss2, rss3 = $rss0 * 1024, $rss1 * 1024, $rss2 * 1024, $rss3 * 1024
hwm1 = $hwm1 * 1024
# Raw bytes: the values, and the keys (absolute paths) of files and dirs.
key_bytes = sum(len("/d%04d/f%08d" % (i % dirs, i)) for i in range(files))
key_bytes += sum(len("/big/f%08d" % i) for i in range(big))
key_bytes += sum(len("/d%04d" % d) for d in range(dirs)) + len("/big")
r = {
    "files": files, "dirs": dirs, "big_dir_files": big, "value_bytes": vb,
    "keys": keys, "live_bytes": live, "raw_key_bytes": key_bytes,
    "create": json.loads('''$mk1'''), "create_big": json.loads('''$mk2'''),
    "rss_empty": rss0, "rss_after_create": rss1, "rss_after_restart": rss2,
    "rss_after_listing": rss3, "rss_peak_during_create": hwm1,
    "rss_per_key_after_create": (rss1 - rss0 - live) / keys,
    "rss_per_key_after_restart": (rss2 - rss0 - live) / keys,
    "db_bytes": $db_bytes, "raft_log_bytes": $log_bytes,
    "db_over_raw_values": $db_bytes / live,
    "db_over_raw_keys_and_values": $db_bytes / (live + key_bytes),
    "stop_s": $stop_s, "first_mount_s": $start_first,
    "restart_to_ready_s": $restart_s,
    "ls_l_big_cold_s": ${ls_cold[0]}, "ls_l_big_lines": ${ls_cold[1]},
    "ls_l_big_warm_s": ${ls_warm[0]},
    "find_cold_s": ${find_cold[0]}, "find_lines": ${find_cold[1]},
}
json.dump(r, open(sys.argv[1], "w"), indent=1)
print("| figure | value |")
print("|---|---:|")
rows = [
    ("files over %d dirs + files in /big" % dirs, "%d + %d" % (files, big)),
    ("keys (status)", keys),
    ("create rate, files/s (%d threads)" % $threads,
     r["create"]["files_per_s"]),
    ("create rate in one dir, files/s (16 threads)",
     r["create_big"]["files_per_s"]),
    ("VmRSS empty / after create / after restart, MiB",
     "%.1f / %.1f / %.1f" % (rss0 / 2**20, rss1 / 2**20, rss2 / 2**20)),
    ("resident bytes per key beyond values (after create)",
     "%.0f" % r["rss_per_key_after_create"]),
    ("resident bytes per key beyond values (after restart)",
     "%.0f" % r["rss_per_key_after_restart"]),
    ("peak VmRSS while creating (VmHWM), MiB", "%.1f" % (hwm1 / 2**20)),
    ("db file, MiB", "%.1f" % ($db_bytes / 2**20)),
    ("raw values / raw keys+values, MiB",
     "%.1f / %.1f" % (live / 2**20, (live + key_bytes) / 2**20)),
    ("db ÷ raw values; db ÷ raw keys+values",
     "%.2f; %.2f" % (r["db_over_raw_values"],
                     r["db_over_raw_keys_and_values"])),
    ("raft log dir, MiB", "%.1f" % ($log_bytes / 2**20)),
    ("stop (SIGTERM to exit), s", "%.2f" % $stop_s),
    ("restart to a ready mount, s", "%.2f" % $restart_s),
    ("ls -l of /big (%d entries), cold / warm, s" % big,
     "%.2f / %.2f" % (r["ls_l_big_cold_s"], r["ls_l_big_warm_s"])),
    ("find MNT | wc -l, cold, s (lines)",
     "%.2f (%d)" % (r["find_cold_s"], r["find_lines"])),
]
for k, v in rows:
    print("| %s | %s |" % (k, v))
EOF
