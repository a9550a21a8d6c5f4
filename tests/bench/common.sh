# tests/bench/common.sh - sourced by run.sh and perf.sh (not run alone).
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
