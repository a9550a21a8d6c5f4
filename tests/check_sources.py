#!/usr/bin/env python3
"""check_sources.py BUILD_DIR - every tracked C file is compiled by meson,
and meson compiles no file that is not tracked.

The meson.build files list their sources explicitly (no globs, no
"if it exists" filters that would hide a misspelled or deleted name: such a
name fails `meson setup`). This checks the other direction: a .c file in
the tree that no target builds (forgotten in a list) fails here. The fuzz
targets are built by tests/fuzz/smoke.sh, not by meson.
"""
import json
import os
import subprocess
import sys

NOT_MESON = ("tests/fuzz/",)


def main():
    build = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(["meson", "introspect", build, "--targets"],
                         check=True, capture_output=True, text=True).stdout
    built = set()
    for t in json.loads(out):
        for group in t.get("target_sources", []):
            for s in group.get("sources", []):
                built.add(os.path.relpath(os.path.realpath(s), root))
    tracked = subprocess.run(["git", "-C", root, "ls-files", "*.c"],
                             check=True, capture_output=True,
                             text=True).stdout.split()
    tracked = {f for f in tracked if not f.startswith(NOT_MESON)}
    missing = sorted(tracked - built)
    extra = sorted(f for f in built - tracked
                   if f.endswith(".c") and not f.startswith(".."))
    for f in missing:
        print("check_sources: %s is tracked but no meson target builds it" % f)
    for f in extra:  # a new file not added yet: a reminder, not an error
        print("check_sources: warning: meson builds %s, which git does not "
              "track" % f)
    if missing:
        return 1
    print("check_sources: %d C files, each built by meson" % len(tracked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
