#!/bin/sh
# tidy.sh BUILD_DIR - clang-tidy (checks and reasons: .clang-tidy) over every
# C file of the product (raft, store, snapshot, fs) with BUILD_DIR's
# compile_commands.json (a clang build). Any report fails: the tree starts
# clean, and a suppression is a NOLINT comment that says why.
set -eu
build=${1:?usage: tidy.sh BUILD_DIR}
cd "$(dirname "$0")/.."
files=$(git ls-files 'raft/*.c' 'store/*.c' 'snapshot/*.c' 'fs/*.c')
# run-clang-tidy prints each file's report; -quiet drops the banners.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
run-clang-tidy -quiet -j 2 -p "$build" $files >"$out" 2>&1 || status=$?
if [ "$status" -ne 0 ] || grep -qE '(warning|error):' "$out"; then
    grep -E '(warning|error):' -A3 "$out" | head -n 200 >&2
    echo "tidy.sh: FAIL: clang-tidy reports (see .clang-tidy)" >&2
    exit 1
fi
echo "tidy.sh: OK: $(echo "$files" | wc -w) files clean"
