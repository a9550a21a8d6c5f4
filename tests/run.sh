#!/usr/bin/env bash
# tests/run.sh - set up and run every test suite (README's test command).
#
# 1. installs what is missing (Debian 12 packages, as root),
# 2. checks the tree is clang-formatted, that no file outside store/
#    includes the store's internal header, and that fs/node/ includes no
#    header of fs/fuse/ or fs/cli/ and fs/fuse/ none of fs/cli/, and that
#    only fs/node/ logs through the node's internal node__log,
# 3. builds with -Dwerror=true, checks every C file is in a meson list and
#    runs every suite: unit, sim, fuzz (smoke runs of every target), e2e,
# 4. builds with clang + AddressSanitizer/UBSan, runs clang-tidy on it
#    (.clang-tidy), and runs unit, sim and eleven e2e files under the
#    sanitizers (any sanitizer report in a daemon fails the run),
# 5. builds the daemon with ThreadSanitizer and runs six e2e files.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

pkgs=(meson ninja-build pkg-config gcc clang clang-format clang-tidy
      clang-tools libclang-rt-14-dev
      libfuse3-dev fuse3 libuv1-dev liblz4-dev libxxhash-dev libssl-dev openssl
      libsystemd-dev systemd scdoc bash-completion
      python3
      python3-pytest nftables iproute2 psmisc procps rsync vim
      libmicrohttpd-dev prometheus)
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -e /dev/fuse ] || modprobe fuse || true

echo "== clang-format check"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null ||
                       find . -name '*.[ch]' -not -path './build*')
if [ ${#sources[@]} -gt 0 ]; then
    clang-format --dry-run --Werror "${sources[@]}"
fi

# The store's internals (store/*_internal.h) are its own: every other
# module, and every test, goes through its public headers (store.h,
# store_history.h, store_compact.h; docs/architecture.md, "Modules").
echo "== layering check: no file outside store/ includes store internals"
leaks=()
for f in "${sources[@]}"; do
    case "${f#./}" in store/*) continue ;; esac
    if grep -qE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]([^">]*/)?store_[a-z_]*internal\.h[">]' "$f"; then
        leaks+=("$f")
    fi
done
if [ ${#leaks[@]} -gt 0 ]; then
    echo "store internals included outside store/: ${leaks[*]}" >&2
    exit 1
fi

# fs/ is three libraries built in the order node -> fuse -> cli
# (docs/architecture.md, "Modules"): fs/node/ includes no header of fs/fuse/
# or fs/cli/, and fs/fuse/ none of fs/cli/. meson's include paths enforce it
# for the build; this catches a relative path ("../cli/ctl.h") too. Only
# quoted includes are ours (<linux/fs.h> is not fs/fuse/fs.h).
echo "== layering check: fs/node -> fs/fuse -> fs/cli"
fs_headers() { # DIR: its header names, as an alternation for grep -E
    git ls-files "fs/$1/*.h" | sed 's@.*/@@; s@\.@\\.@g' | paste -sd'|' -
}
fs_layer_check() { # LOWER HIGHER...: LOWER includes none of HIGHER's headers
    local lower=$1 higher names bad
    shift
    for higher in "$@"; do
        names=$(fs_headers "$higher")
        [ -n "$names" ] || continue
        bad=$(git ls-files "fs/$lower/*.[ch]" | xargs grep -nE \
            "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]*/)?($names)\"" \
            || true)
        if [ -n "$bad" ]; then
            echo "fs/$lower includes headers of fs/$higher:" >&2
            echo "$bad" >&2
            exit 1
        fi
    done
}
fs_layer_check node fuse cli
fs_layer_check fuse cli
# The log is the node's (its level and sink, struct node_log): fs/fuse
# writes through node_log (node.h), fs/cli through its own cli_log.h;
# neither through the node's internal node__log.
echo "== logging check: node__log only in fs/node"
if git ls-files 'fs/fuse/*.[ch]' 'fs/cli/*.[ch]' | xargs grep -n 'node__log'; then
    echo "node__log outside fs/node (fs/cli: cli_log.h; fs/fuse: node_log)" >&2
    exit 1
fi

build=${BUILD_DIR:-build}
echo "== build ($build, -Dwerror=true)"
if [ -d "$build" ]; then
    meson setup --reconfigure "$build" -Dwerror=true >/dev/null
else
    meson setup "$build" -Dwerror=true >/dev/null
fi
ninja -C "$build"
python3 tests/check_sources.py "$build"

echo "== tests: every suite"
meson test -C "$build" --print-errorlogs --num-processes 2

asan=${ASAN_BUILD_DIR:-build-asan}
echo "== build ($asan, clang, address+undefined sanitizers)"
if [ -d "$asan" ]; then
    CC=clang meson setup --reconfigure "$asan" -Dwerror=true \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
else
    CC=clang meson setup "$asan" -Dwerror=true \
        -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$asan"

echo "== clang-tidy ($asan/compile_commands.json)"
tests/tidy.sh "$asan"

echo "== tests under sanitizers: unit and sim"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C "$asan" --print-errorlogs --num-processes 2 \
    --suite unit --suite sim

# e2e against the ASan+UBSan daemon (QUORUMFS_BIN is the build's binary):
# ten files by name; not memory (its RSS bounds do not hold with ASan's
# shadow memory and quarantine: 317 MiB against 300), jepsen (2 minutes of
# CI time for paths the others cover; it runs in the plain build), nor c2c
# yet (newer than this list: not measured under ASan). The
# daemons write sanitizer reports to $san_logs: the test during which one
# appears fails (tests/e2e/conftest.py), and so does the run. Leak checking is off
# (daemons are killed with SIGKILL by design; docs/tooling.md).
echo "== e2e under sanitizers (eleven files: not memory, jepsen, c2c)"
san_logs=$(mktemp -d "${TMPDIR:-/tmp}/qfs-san.XXXXXX")
QUORUMFS_SANITIZER_LOGS=$san_logs \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:log_path=$san_logs/asan \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$san_logs/ubsan \
    meson test -C "$asan" --print-errorlogs --num-processes 1 \
    e2e-fs e2e-cluster e2e-snapshots e2e-repair e2e-reads e2e-stalls \
    e2e-disk e2e-outcomes e2e-posix e2e-metrics e2e-reader
if [ -n "$(ls -A "$san_logs")" ]; then
    cat "$san_logs"/* >&2
    echo "== FAIL: sanitizer reports from the e2e daemons ($san_logs)" >&2
    exit 1
fi
rm -rf "$san_logs"

# ThreadSanitizer: the daemon only (the loop, the I/O thread, the notifier
# and libuv's threads), against the e2e files where they meet most: the
# FUSE handlers with the notifier (fs, reads), a cluster with restarts and
# snapshot installs (cluster, snapshots), the --listen-metrics HTTP
# thread asking the loop (metrics), the FUSE reader threads with the
# loop (reader, and every file above). Every e2e file but memory and
# jepsen ran clean under TSan once (docs/tooling.md); the rest are left out
# for CI time (disk and outcomes take ~100 s each under TSan). The e2e tests
# would pass whatever TSan prints (it does not stop the daemon), so reports
# go to $tsan_logs: the test and the run fail.
tsan=${TSAN_BUILD_DIR:-build-tsan}
echo "== build ($tsan, clang, thread sanitizer: the daemon)"
if [ -d "$tsan" ]; then
    CC=clang meson setup --reconfigure "$tsan" -Dwerror=true \
        -Db_sanitize=thread -Db_lundef=false >/dev/null
else
    CC=clang meson setup "$tsan" -Dwerror=true \
        -Db_sanitize=thread -Db_lundef=false >/dev/null
fi
ninja -C "$tsan" fs/quorumfs
echo "== e2e under ThreadSanitizer: fs, cluster, snapshots, reads, metrics, reader"
tsan_logs=$(mktemp -d "${TMPDIR:-/tmp}/qfs-tsan.XXXXXX")
QUORUMFS_SANITIZER_LOGS=$tsan_logs TSAN_OPTIONS=log_path=$tsan_logs/tsan \
    meson test -C "$tsan" --no-rebuild --print-errorlogs --num-processes 1 \
    e2e-fs e2e-cluster e2e-snapshots e2e-reads e2e-metrics e2e-reader
if [ -n "$(ls -A "$tsan_logs")" ]; then
    cat "$tsan_logs"/* >&2
    echo "== FAIL: ThreadSanitizer reports from the e2e daemons ($tsan_logs)" >&2
    exit 1
fi
rm -rf "$tsan_logs"

echo "== all suites passed ($root)"
