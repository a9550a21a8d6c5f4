#!/usr/bin/env bash
# examples/local-cluster.sh up|down|status [DIR]
#
# A three-node quorumfs cluster on one machine: nodes n1, n2, n3 listen on
# 127.0.0.1:7001, 127.0.0.2:7002, 127.0.0.3:7003; data dirs DIR/nX/data,
# mounts DIR/nX/mnt (DIR defaults to /tmp/quorumfs-demo). Peers
# authenticate with a shared secret made once in DIR/peer.secret (mode
# 0600): mutual TLS 1.3, docs/security.md.
#   up      installs build dependencies if missing (Debian 12, as root),
#           builds, starts the three nodes, waits for a leader
#   status  prints each node's status
#   down    stops the nodes this script started (by the PIDs it recorded)
#           and unmounts
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}
dir=$(realpath -m "${2:-/tmp/quorumfs-demo}")
bin="$here/build/fs/quorumfs"
names=(n1 n2 n3)
addrs=(127.0.0.1:7001 127.0.0.2:7002 127.0.0.3:7003)
cluster="n1=${addrs[0]},n2=${addrs[1]},n3=${addrs[2]}"

install_and_build() {
    local pkgs=(meson ninja-build pkg-config gcc libfuse3-dev fuse3
                libuv1-dev liblz4-dev libxxhash-dev libssl-dev libsystemd-dev libmicrohttpd-dev)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            "${missing[@]}" >/dev/null
    fi
    if [ ! -d "$here/build" ]; then
        meson setup "$here/build" >/dev/null
    fi
    ninja -C "$here/build" fs/quorumfs >/dev/null
}

node_pid() { cat "$dir/$1/pid" 2>/dev/null || true; }

# Without a stat of the mountpoint: the mount of a node killed with -9 may
# hang until it is aborted (quorumfs mount does that itself at start).
mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
running() {
    local pid
    pid=$(head -n1 "$dir/$1/data/LOCK" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        grep -q quorumfs "/proc/$pid/cmdline" 2>/dev/null
}

up() {
    install_and_build
    mkdir -p "$dir"
    if [ ! -f "$dir/peer.secret" ]; then
        (umask 077 && head -c 32 /dev/urandom | base64 >"$dir/peer.secret")
    fi
    for i in 0 1 2; do
        local n=${names[$i]}
        mounted "$dir/$n/mnt" || mkdir -p "$dir/$n/mnt"
        mkdir -p "$dir/$n/data"
        if running "$n" && mounted "$dir/$n/mnt"; then
            echo "$n: already mounted at $dir/$n/mnt"
            continue
        fi
        # A mount left by a killed node: quorumfs aborts and unmounts it.
        local state=new
        [ -f "$dir/$n/data/identity" ] && state=existing
        "$bin" mount "$dir/$n/mnt" --name "$n" --data-dir "$dir/$n/data" \
            --listen-peer "${addrs[$i]}" --initial-cluster "$cluster" \
            --peer-secret-file "$dir/peer.secret" \
            --initial-cluster-state "$state" &
        launched[$i]=$!
    done
    for i in 0 1 2; do
        [ -n "${launched[$i]:-}" ] && wait "${launched[$i]}"
        local n=${names[$i]}
        # The daemon's pid (the launcher above exits once the mount is up).
        head -n1 "$dir/$n/data/LOCK" > "$dir/$n/pid"
    done
    echo -n "waiting for a leader"
    for _ in $(seq 1 100); do
        leader=$(cat "$dir/n1/mnt/.cluster/leader" 2>/dev/null || true)
        if [ -n "$leader" ]; then
            echo; echo "leader: $leader"
            for n in "${names[@]}"; do
                echo "$n: mount $dir/$n/mnt  data $dir/$n/data  pid $(node_pid "$n")"
            done
            return 0
        fi
        echo -n .
        sleep 0.2
    done
    echo; echo "no leader after 20 s; logs: $dir/nX/data/quorumfs.log" >&2
    return 1
}

down() {
    for n in "${names[@]}"; do
        local pid
        pid=$(node_pid "$n")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
                grep -q quorumfs "/proc/$pid/cmdline" 2>/dev/null; then
            kill -TERM "$pid"
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
        if mounted "$dir/$n/mnt"; then
            fusermount3 -uz "$dir/$n/mnt" 2>/dev/null ||
                umount -l "$dir/$n/mnt" || true
        fi
        rm -f "$dir/$n/pid"
        echo "$n: stopped"
    done
}

status() {
    for n in "${names[@]}"; do
        echo "== $n"
        "$bin" status --data-dir "$dir/$n/data" || true
    done
}

case "$cmd" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status [DIR]" >&2; exit 2 ;;
esac
