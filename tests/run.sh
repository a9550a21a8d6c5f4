#!/usr/bin/env bash
# tests/run.sh - set up and run every test suite (README's test command).
#
# 1. installs what is missing (Debian 12 packages, as root),
# 2. checks the tree is clang-formatted and that no file outside store/
#    includes the store's internal header,
# 3. builds with -Dwerror=true and runs every suite: unit, sim, fuzz, e2e,
# 4. builds with clang + AddressSanitizer/UBSan and runs unit and sim again.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

pkgs=(meson ninja-build pkg-config gcc clang clang-format libclang-rt-14-dev
      libfuse3-dev fuse3 libuv1-dev liblz4-dev libxxhash-dev python3
      python3-pytest nftables iproute2 psmisc procps rsync)
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

build=${BUILD_DIR:-build}
echo "== build ($build, -Dwerror=true)"
if [ -d "$build" ]; then
    meson setup --reconfigure "$build" -Dwerror=true >/dev/null
else
    meson setup "$build" -Dwerror=true >/dev/null
fi
ninja -C "$build"

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
echo "== tests under sanitizers: unit and sim"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C "$asan" --print-errorlogs --num-processes 2 \
    --suite unit --suite sim

echo "== all suites passed ($root)"
