# tests/bench/common.sh - sourced by the bench scripts (run.sh, perf.sh,
# memory.sh, pjdfstest.sh, fsx.sh, bulkcopy.sh, tls.sh, flood.sh); not run
# alone.
#
# bench_start NAME: builds quorumfs and loadgen in $build (set up first if
# needed), sets bin and loadgen to them, work to a new temp dir
# /tmp/qfs-bench-NAME.XXXXXX, empties pids and mounts, and traps EXIT to
# stop what was started (stop_started) and remove work.
#
# wait_for, has_status, json_field: waiting for a started system, reading
# a mount's /.cluster/status (below).
#
# stop_started: stops every process in the caller's `pids` array (SIGTERM,
# then SIGKILL after 5 s; only PIDs this script started are ever listed)
# and lazily unmounts every mountpoint in its `mounts` array that is still
# mounted. Callers call it from their EXIT trap, then remove their files.

stop_started() {
    local p m
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    for m in "${mounts[@]}"; do
        if mountpoint -q "$m" 2>/dev/null; then
            fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
                true
        fi
    done
}

# peer_secret DIR: makes DIR/peer.secret (mode 0600, 32 random bytes in
# base64) if missing and prints its path: the nodes' --peer-secret-file.
peer_secret() {
    local f=$1/peer.secret
    mkdir -p "$1"
    if [ ! -f "$f" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$f")
    fi
    echo "$f"
}

# start_cluster3 DIR BIN BASE_PORT [MOUNT ARGS...]: three nodes n1..n3 on
# 127.0.0.1 ports BASE_PORT..BASE_PORT+2, data dirs DIR/nX/data, mounts
# DIR/nX/mnt, logs DIR/nX.log, started in the foreground mode in the
# background (their PIDs and mounts go to the caller's `pids` and `mounts`
# arrays). Peers use a shared secret (TLS) unless the MOUNT ARGS say
# otherwise (--peer-insecure, certificates). Waits up to 20 s for a leader, then sets `leader` and
# `follower` (a node that is not the leader); returns 1 after printing
# the logs' tails if no leader came.
start_cluster3() {
    local dir=$1 bin=$2 base=$3 cluster="" i sec=()
    shift 3
    case " $* " in
    *" --peer-"*) ;;
    *) sec=(--peer-secret-file "$(peer_secret "$dir")") ;;
    esac
    for i in 1 2 3; do
        cluster+="${cluster:+,}n$i=127.0.0.1:$((base + i - 1))"
    done
    for i in 1 2 3; do
        mkdir -p "$dir/n$i/data" "$dir/n$i/mnt"
        mounts+=("$dir/n$i/mnt")
        "$bin" mount "$dir/n$i/mnt" --name "n$i" --data-dir "$dir/n$i/data" \
            --listen-peer "127.0.0.1:$((base + i - 1))" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            -f "${sec[@]}" "$@" >"$dir/n$i.log" 2>&1 &
        pids+=("$!")
    done
    leader=""
    for _ in $(seq 1 200); do
        leader=$(cat "$dir/n1/mnt/.cluster/leader" 2>/dev/null || true)
        [ -n "$leader" ] && break
        sleep 0.1
    done
    if [ -z "$leader" ]; then
        tail -n 20 "$dir"/n*.log
        return 1
    fi
    follower=n1
    [ "$leader" = n1 ] && follower=n2
    return 0
}

bench_start() {
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" >/dev/null
    fi
    ninja -C "$build" fs/quorumfs tests/bench/loadgen >/dev/null
    bin=$build/fs/quorumfs
    loadgen=$build/tests/bench/loadgen
    work=$(mktemp -d "/tmp/qfs-bench-$1.XXXXXX")
    pids=()
    mounts=()
    trap 'stop_started; rm -rf "$work"' EXIT
    trap 'exit 130' INT TERM
}

# wait_for WHAT PID CMD...: until CMD succeeds, while PID lives (at most
# $wait_max_s seconds; the caller's `log` reports, `work` holds the logs).
wait_for() {
    local what=$1 pid=$2 end=$((SECONDS + wait_max_s))
    shift 2
    while [ $SECONDS -lt $end ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$what exited while starting; logs in $work:"
            tail -n 5 "$work"/*.log >&2 || true
            exit 1
        fi
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    log "$what not ready after ${wait_max_s}s"
    exit 1
}

# FUSE's /.cluster files show size 0: read them, do not test -s.
has_status() { grep -q '"name"' "$1/.cluster/status"; }

json_field() { # json_field FILE FIELD
    ${py:-/usr/bin/python3} -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]
print("" if v is None else v)' "$1" "$2" 2>/dev/null
}
