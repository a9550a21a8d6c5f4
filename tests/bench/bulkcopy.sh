#!/bin/bash
# tests/bench/bulkcopy.sh - `cp -a` of a generated /etc-like tree into a
# follower's mount of a 3-node cluster, side by side with the same copy
# onto ext4 followed by `sync` (issue 11, "Targets": bulk copy).
#
#   tests/bench/bulkcopy.sh [--bin QUORUMFS] [--reps N] [--dir D]
#                           [--base-port P] [--entries E]
#
# The tree (made once, deterministic): about E entries (default 1,300) in
# nested directories, files of 20 B to 64 KiB (about 3 MB in all) with
# modes 0644/0600/0755, symlinks, set mtimes. Each repetition (default 5)
# copies it with `cp -a` to a new name on ext4 (then `sync`) and on the
# follower's mount (close-to-commit: every close() returns after its
# commit on a quorum), alternating which goes first. Prints each time,
# the medians, their ratio, and the revisions one copy added to the
# cluster. D must be on ext4 (default: a temp dir under /var/tmp). Nodes
# listen on 127.0.0.1 ports P..P+2 (default 17431). Only processes this
# script started are stopped; mounts are unmounted and D removed at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

bin=${QUORUMFS_BIN:-$here/../../build/fs/quorumfs}
reps=5
dir=""
base_port=17431
entries=1300
while [ $# -gt 0 ]; do
    case "$1" in
    --bin) bin=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    --entries) entries=$2; shift 2 ;;
    *) echo "bulkcopy.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

[ -n "$dir" ] || dir=$(mktemp -d /var/tmp/qfs-bulk-XXXXXX)
pids=()
mounts=()
cleanup() {
    stop_started
    rm -rf "$dir"
}
trap cleanup EXIT

fstype=$(stat -f -c %T "$dir")
[ "$fstype" = ext2/ext3 ] || echo "bulkcopy.sh: note: $dir is $fstype, not ext4"

# The tree.
/usr/bin/python3 - "$dir/src" "$entries" <<'EOF'
import os, random, sys
root, want = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261206)
os.makedirs(root)
dirs = [root]
made = 0
total = 0
while made < want:
    parent = rng.choice(dirs[-40:]) if len(dirs) > 1 else root
    k = rng.random()
    name = "e%05d" % made
    path = os.path.join(parent, name)
    if k < 0.12 and len(dirs) < want // 8:
        os.mkdir(path, 0o755)
        dirs.append(path)
    elif k < 0.16:
        os.symlink("../" + name + ".target", path)
    else:
        size = min(int(rng.lognormvariate(7.0, 1.3)) + 20, 64 << 10)
        with open(path, "wb") as f:
            f.write(bytes(rng.getrandbits(8) for _ in range(size)))
        total += size
        os.chmod(path, rng.choice([0o644, 0o644, 0o600, 0o755]))
        t = 1700000000 + rng.randrange(10 ** 7)
        os.utime(path, (t, t))
    made += 1
print("tree: %d entries (%d dirs), %d bytes of files" % (made, len(dirs) - 1,
                                                          total))
EOF

start_cluster3 "$dir" "$bin" "$base_port"
mnt="$dir/$follower/mnt"
echo "leader $leader, copying into follower $follower"

revision() {
    /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["revision"])' \
        "$mnt/.cluster/status"
}
now() { date +%s.%N; }

mkdir -p "$dir/ext4"
ext4_times=()
qfs_times=()
revs=()
for r in $(seq 1 "$reps"); do
    for which in $( ((r % 2)) && echo "ext4 qfs" || echo "qfs ext4"); do
        sync
        if [ "$which" = ext4 ]; then
            t0=$(now)
            cp -a "$dir/src" "$dir/ext4/etc-$r"
            sync
            t1=$(now)
            ext4_times+=("$(echo "$t1 - $t0" | bc)")
        else
            before=$(revision)
            t0=$(now)
            cp -a "$dir/src" "$mnt/etc-$r"
            t1=$(now)
            qfs_times+=("$(echo "$t1 - $t0" | bc)")
            revs+=("$(($(revision) - before))")
        fi
    done
    # The copy is whole on the follower's mount (and so committed).
    diff -r --no-dereference "$dir/src" "$mnt/etc-$r" >/dev/null
    printf 'rep %d: ext4+sync %6.3f s, quorumfs follower %6.3f s, %d revisions\n' \
        "$r" "${ext4_times[-1]}" "${qfs_times[-1]}" "${revs[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
me=$(median "${ext4_times[@]}")
mq=$(median "${qfs_times[@]}")
printf 'median: ext4+sync %.3f s, quorumfs follower %.3f s, ratio %.1fx\n' \
    "$me" "$mq" "$(echo "$mq / $me" | bc -l)"
