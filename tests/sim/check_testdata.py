#!/usr/bin/env python3
"""check_testdata.py DIR NAME... - the scenario files in DIR are exactly
NAME.txt for the names meson lists (tests/sim/meson.build), so a new file
that is not listed (and would never run) fails the sim suite."""
import os
import sys


def main():
    d, names = sys.argv[1], set(sys.argv[2:])
    files = {f[:-4] for f in os.listdir(d) if f.endswith(".txt")}
    status = 0
    for f in sorted(files - names):
        print("check_testdata: %s/%s.txt is not listed in meson.build" % (d, f))
        status = 1
    for f in sorted(names - files):
        print("check_testdata: %s is listed but %s/%s.txt is missing" %
              (f, d, f))
        status = 1
    if status == 0:
        print("check_testdata: %d scenario files, each listed" % len(files))
    return status


if __name__ == "__main__":
    sys.exit(main())
