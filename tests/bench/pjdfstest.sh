#!/bin/bash
# tests/bench/pjdfstest.sh - pjdfstest on a follower of a 3-node cluster
# (issue 11, "POSIX where users meet it"; docs/status.md has the figures).
#
#   tests/bench/pjdfstest.sh --src PJDFSTEST_DIR [--bin QUORUMFS]
#                            [--dir D] [--base-port P] [--only GROUP]
#
# pjdfstest is not our code and not in the repo: build it as
# /work/shared/CONFORMANCE.md says (autoreconf -ifs && ./configure && make
# in its source dir) and pass that dir. The script starts three nodes on
# 127.0.0.1 ports P, P+1, P+2 (default 17401) with `-o allow_other` (the
# suite switches to other uids), picks a follower, runs every test file
# (or one GROUP, e.g. mkfifo) with prove in a fresh directory of that
# follower's mount, and prints the assertion totals and each failing test
# file with its failed assertion numbers. Only processes this script
# started are stopped; the mounts are unmounted and D removed at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

src=""
bin=${QUORUMFS_BIN:-$here/../../build/fs/quorumfs}
dir=""
base_port=17401
only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --src) src=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "pjdfstest.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "$src" ] || [ ! -x "$src/pjdfstest" ]; then
    echo "pjdfstest.sh: --src must name a built pjdfstest source dir" >&2
    exit 2
fi
src=$(realpath "$src")
command -v prove >/dev/null || { echo "pjdfstest.sh: prove (perl) missing" >&2; exit 2; }

[ -n "$dir" ] || dir=$(mktemp -d /tmp/qfs-pjd-XXXXXX)
pids=()
mounts=()
cleanup() {
    stop_started
    rm -rf "$dir"
}
trap cleanup EXIT

start_cluster3 "$dir" "$bin" "$base_port" -o allow_other
echo "leader $leader, running pjdfstest on follower $follower"

work="$dir/$follower/mnt/pjd"
mkdir "$work"
chmod 0777 "$work"
tests="$src/tests"
[ -n "$only" ] && tests="$src/tests/$only"
out="$dir/prove.out"
(cd "$work" && prove -r "$tests" >"$out" 2>&1) || true

# prove's report: per failing file "PATH (Wstat: .. Tests: N Failed: K)"
# and its failed assertion numbers; the totals line "Files=F, Tests=T".
python3 - "$out" <<'EOF'
import re, sys
text = open(sys.argv[1], errors="replace").read()
fails = []
for m in re.finditer(r"^(\S+\.t)\s+\(Wstat: \d+ Tests: (\d+) Failed: (\d+)\)\n\s+Failed tests?:\s+([^\n]*(?:\n\s{2,}[0-9][^\n]*)*)", text, re.M):
    fails.append((m.group(1), int(m.group(2)), int(m.group(3)), " ".join(m.group(4).split())))
m = re.search(r"^Files=(\d+), Tests=(\d+)", text, re.M)
if not m:
    print(text[-3000:])
    sys.exit("pjdfstest.sh: no prove summary")
tests = int(m.group(2))
failed = sum(f[2] for f in fails)
for path, n, k, which in fails:
    print(f"FAIL {path.split('/tests/')[-1]}: {k} of {n}: {which}")
print(f"pjdfstest: {tests - failed} of {tests} assertions passed, {failed} failed "
      f"in {len(fails)} files")
EOF
