#!/bin/sh
# smoke.sh SRCROOT [SECONDS] - build the codec fuzzer with clang's libFuzzer
# (independently of the compiler meson was configured with), seed it from
# tests/fuzz/corpus plus freshly generated valid encodings, and run it for
# ~20 s. Fails on any crash, sanitizer report, or a missing tool chain.
set -eu

root=${1:?usage: smoke.sh SRCROOT [SECONDS]}
secs=${2:-20}
clang=${CLANG:-clang}

if ! command -v "$clang" >/dev/null 2>&1; then
    echo "smoke.sh: FAIL: $clang not found (libFuzzer needs clang)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/qfs-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

srcs="$root/raft/codec.c $root/raft/conf.c $root/raft/errors.c"
cflags="-std=gnu11 -g -O1 -D_GNU_SOURCE -I$root/raft -Wall -Wextra -Werror"

# libFuzzer missing from the clang install is a failure, not a skip.
if ! "$clang" $cflags -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined \
        -o "$work/fuzz_codec" "$root/tests/fuzz/fuzz_codec.c" $srcs; then
    echo "smoke.sh: FAIL: cannot build the fuzzer (is libFuzzer installed?)" >&2
    exit 1
fi
"$clang" $cflags -o "$work/gen_corpus" "$root/tests/fuzz/gen_corpus.c" $srcs

mkdir -p "$work/corpus"
cp "$root"/tests/fuzz/corpus/* "$work/corpus/" 2>/dev/null || true
"$work/gen_corpus" "$work/corpus"

cd "$work"
# Crashes, leaks and sanitizer reports make libFuzzer exit non-zero.
"$work/fuzz_codec" -max_total_time="$secs" -max_len=8192 -timeout=10 \
    -rss_limit_mb=1024 -print_final_stats=1 "$work/corpus" 2>&1 |
    tee "$work/log" | grep -E '^(#[0-9]+[[:space:]]*(INITED|DONE)|stat::|==[0-9]+==ERROR|SUMMARY)' || true
status=0
grep -q 'Done [0-9]* runs' "$work/log" || status=1
if grep -qE '==[0-9]+==ERROR|deadly signal|SUMMARY:|Test unit written' "$work/log"; then
    status=1
fi
if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/log" >&2
    echo "smoke.sh: FAIL: the fuzzer found a problem" >&2
    exit 1
fi
echo "smoke.sh: OK"
