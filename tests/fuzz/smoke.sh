#!/bin/sh
# smoke.sh SRCROOT [SECONDS] [TARGET...] - build the libFuzzer targets with
# clang (independently of the compiler meson was configured with), then for
# each target:
#   1. replay: run every input of tests/fuzz/corpus/TARGET (checked-in
#      seeds and the inputs of past findings) plus freshly generated seeds
#      once each;
#   2. fuzz for SECONDS (default 10) from those inputs, one process.
# Fails on any crash, oracle failure (abort), sanitizer report, leak,
# timeout, or a missing tool chain. A crashing input is saved as
# $FUZZ_ARTIFACTS/TARGET-crash-* (default: the current directory).
# Needs clang with libFuzzer, liblz4 and libxxhash (pkg-config).
# Targets (default: all): codec cmd db log snapfile; see fuzz_*.c.
# Long runs: docs/tooling.md.
set -eu

root=${1:?usage: smoke.sh SRCROOT [SECONDS] [TARGET...]}
secs=${2:-10}
[ $# -ge 2 ] && shift 2 || shift $#
targets=${*:-codec cmd db log snapfile}
clang=${CLANG:-clang}
artifacts=${FUZZ_ARTIFACTS:-$(pwd)}

if ! command -v "$clang" >/dev/null 2>&1; then
    echo "smoke.sh: FAIL: $clang not found (libFuzzer needs clang)" >&2
    exit 1
fi
for dep in liblz4 libxxhash; do
    if ! pkg-config --exists "$dep"; then
        echo "smoke.sh: FAIL: $dep not found" >&2
        exit 1
    fi
done

# FUZZ_WORKDIR keeps the binaries and corpora (for long runs: docs/tooling.md).
if [ -n "${FUZZ_WORKDIR:-}" ]; then
    work=$FUZZ_WORKDIR
    rm -rf "$work"
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/qfs-fuzz.XXXXXX")
    trap 'rm -rf "$work"' EXIT INT TERM
fi

# Every source the targets may need: the shared helpers, the raft core and
# disk log, the store and snapshot modules. Only the network layer is left
# out: raft/transport*.c (libuv) and raft/tls.c (OpenSSL, fuzzed upstream;
# its input reaches the frame decoder, which is fuzzed here). Globs, not lists: meson.build holds the exact lists; a file
# this misses fails the link below, loudly.
srcs=$(ls "$root"/raft/util/*.c "$root"/raft/*.c "$root"/store/*.c \
          "$root"/snapshot/*.c |
          grep -Ev '/raft/(transport[a-z_]*|tls)\.c$')
inc="-I$root/raft -I$root/raft/util -I$root/store -I$root/snapshot
     -I$root/tests/fuzz"
cflags="-std=gnu11 -g -O1 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $inc
        -Wall -Wextra -Werror -Wno-unused-parameter
        -Wno-gnu-zero-variadic-macro-arguments"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
libs="$(pkg-config --libs liblz4 libxxhash) -lpthread"

# Objects once, with coverage for libFuzzer; then one link per target.
# libFuzzer missing from the clang install is a failure, not a skip.
mkdir "$work/obj"
objs=""
for s in $srcs; do
    o="$work/obj/$(echo "${s#"$root"/}" | tr / _ | sed 's/\.c$//').o"
    "$clang" $cflags $san -fsanitize=fuzzer-no-link -c -o "$o" "$s"
    objs="$objs $o"
done
for t in $targets; do
    if ! "$clang" $cflags $san -fsanitize=fuzzer -o "$work/fuzz_$t" \
            "$root/tests/fuzz/fuzz_$t.c" $objs $libs; then
        echo "smoke.sh: FAIL: cannot build fuzz_$t (is libFuzzer installed?)" >&2
        exit 1
    fi
done
"$clang" $cflags -o "$work/gen_corpus" "$root/tests/fuzz/gen_corpus.c" \
    "$root/raft/codec.c" "$root/raft/conf.c" "$root/raft/errors.c"
"$clang" $cflags $san -o "$work/gen_seeds" "$root/tests/fuzz/gen_seeds.c" \
    $objs -fsanitize=fuzzer-no-link $libs

# run TARGET LOG ARGS...: libFuzzer, its exit status and its log judged.
run() {
    t=$1
    log=$2
    shift 2
    set +e
    "$work/fuzz_$t" -artifact_prefix="$artifacts/$t-" "$@" >"$log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -ne 0 ] ||
        grep -qE '==[0-9]+==ERROR|deadly signal|oracle failed|runtime error|Test unit written' "$log"; then
        tail -n 60 "$log" >&2
        echo "smoke.sh: FAIL: fuzz_$t (exit $rc): the input is named above (replay) or saved as $artifacts/$t-crash-* (fuzzing)" >&2
        exit 1
    fi
}

status=0
for t in $targets; do
    corpus="$work/corpus-$t"
    mkdir "$corpus"
    cp "$root/tests/fuzz/corpus/$t"/* "$corpus/" 2>/dev/null || true
    if [ "$t" = codec ]; then
        "$work/gen_corpus" "$corpus"
    else
        (cd "$work" && ./gen_seeds "$t" "$corpus")
    fi
    n=$(ls "$corpus" | wc -l)
    if [ "$n" -eq 0 ]; then
        echo "smoke.sh: FAIL: no seed inputs for $t" >&2
        exit 1
    fi
    # 1. replay: each input once (libFuzzer runs files given by name).
    run "$t" "$work/replay-$t.log" -timeout=10 -rss_limit_mb=2048 "$corpus"/*
    # 2. fuzz.
    run "$t" "$work/fuzz-$t.log" -max_total_time="$secs" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$corpus"
    grep -q 'Done [0-9]* runs' "$work/fuzz-$t.log" || status=1
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz-$t.log")
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/fuzz-$t.log" | tail -n 1)
    echo "smoke.sh: fuzz_$t: replayed $n inputs; ${runs:-?} runs in ${secs}s; $cov"
done
if [ "$status" -ne 0 ]; then
    echo "smoke.sh: FAIL: a fuzzer did not finish its run" >&2
    exit 1
fi
echo "smoke.sh: OK"
