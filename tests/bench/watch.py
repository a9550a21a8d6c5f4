#!/usr/bin/env python3
"""tests/bench/watch.py - `quorumfs watch` on a 3-node cluster (a benchmark,
not a test: it prints figures; docs/operations.md, "Watch").

1. Latency: a writer on n1 updates one file at a time (open, write,
   close: one committed change each); a watcher on n2 reads the control
   socket's stream. Commit-to-delivery = the time the line reaches the
   watcher minus the time close() returned on n1 (the change committed
   and applied there), both CLOCK_MONOTONIC; p50/p99/max. Negative when
   n2 delivers before n1's close() returns.
2. Fan-out: W `quorumfs watch` processes on n2 while writers on n1 make M
   changes; every watcher must see each of the M changes exactly once, in
   revision order (none missed, none duplicated, none out of order).

Usage: tests/bench/watch.py [--build DIR] [--changes M] [--watchers W]
                            [--latency-samples N] [--port-base P]
The issue's target scale: --watchers 100 --changes 100000.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

NAMES = ("n1", "n2", "n3")


def start_cluster(binary, root, port_base):
    initial = ",".join("%s=127.0.0.1:%d" % (n, port_base + i)
                       for i, n in enumerate(NAMES))
    procs = {}
    for i, n in enumerate(NAMES):
        for d in ("data", "mnt"):
            os.makedirs(os.path.join(root, n, d))
        log = open(os.path.join(root, n + ".log"), "ab")
        procs[n] = subprocess.Popen(
            [binary, "mount", os.path.join(root, n, "mnt"), "-f",
             "--data-dir", os.path.join(root, n, "data"), "--name", n,
             "--listen-peer", "127.0.0.1:%d" % (port_base + i),
             "--initial-cluster", initial, "--peer-insecure",
             "--watch-events", "1000000"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    for n in NAMES:
        st = os.path.join(root, n, "mnt", ".cluster", "status")
        while not os.path.exists(st):
            if time.monotonic() > deadline:
                sys.exit("bench: %s did not mount" % n)
            time.sleep(0.1)
    # A leader, and the tree writable.
    while True:
        try:
            os.mkdir(os.path.join(root, "n1", "mnt", "bench"))
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("bench: no leader")
            time.sleep(0.2)
    return procs


def stop_cluster(root, procs):
    for n, p in procs.items():
        subprocess.run(["fusermount3", "-u", os.path.join(root, n, "mnt")],
                       stderr=subprocess.DEVNULL)
    for p in procs.values():
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def socket_watch(data_dir, prefix):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(data_dir, "ctl.sock"))
    s.sendall(("watch\t0\t%s\n" % prefix).encode())
    f = s.makefile("rb")
    line = f.readline()
    assert line.startswith(b"ok watching"), line
    return s, f


def latency_reader(data_dir, n, out_q, ready):
    """Process: stamp each of n lines as it arrives."""
    s, f = socket_watch(data_dir, "/bench/lat")
    ready.set()
    got = {}
    while len(got) < n:
        line = f.readline()
        t = time.monotonic()
        if not line:
            break
        rev, op, path = line.decode().rstrip("\n").split("\t")[:3]
        if op == "write":
            got[path] = t
    out_q.put(got)


def bench_latency(root, samples):
    mnt1 = os.path.join(root, "n1", "mnt")
    os.mkdir(os.path.join(mnt1, "bench", "lat"))
    paths = [os.path.join(mnt1, "bench", "lat", "f%d" % i)
             for i in range(samples)]
    for p in paths:  # created first: the timed change is one write
        open(p, "w").close()
    q = multiprocessing.Queue()
    ready = multiprocessing.Event()
    reader = multiprocessing.Process(
        target=latency_reader,
        args=(os.path.join(root, "n2", "data"), samples, q, ready))
    reader.start()
    ready.wait(10)
    sent, began = {}, {}
    for i, p in enumerate(paths):
        began["/bench/lat/f%d" % i] = time.monotonic()
        fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, b"value %d\n" % i)
        os.close(fd)
        sent["/bench/lat/f%d" % i] = time.monotonic()
        time.sleep(0.002)  # one change at a time: latency, not queueing
    got = q.get(timeout=60)
    reader.join(10)
    lat = sorted((got[k] - sent[k]) * 1000 for k in sent if k in got)
    whole = sorted((got[k] - began[k]) * 1000 for k in sent if k in got)
    missing = len(sent) - len(lat)

    def pct(v, p):
        return v[min(len(v) - 1, int(p * len(v)))]
    with open(os.path.join(root, "n1", "mnt", ".cluster", "status")) as f:
        role = json.load(f).get("role", "?")
    print("latency, n1 (%s) close() returned -> n2 watcher got the line "
          "(%d changes, %d missing): p50 %.3f ms, p99 %.3f ms, max %.3f ms"
          % (role, len(lat), missing, pct(lat, 0.50), pct(lat, 0.99),
             lat[-1]))
    print("latency, n1 open() -> n2 watcher got the line (the write's "
          "commit included): p50 %.3f ms, p99 %.3f ms, max %.3f ms"
          % (pct(whole, 0.50), pct(whole, 0.99), whole[-1]))
    return missing == 0


def bench_fanout(binary, root, watchers, changes):
    n2data = os.path.join(root, "n2", "data")
    mnt1 = os.path.join(root, "n1", "mnt")
    os.mkdir(os.path.join(mnt1, "bench", "fan"))
    outs, procs = [], []
    for i in range(watchers):
        out = os.path.join(root, "w%d.out" % i)
        outs.append(out)
        procs.append(subprocess.Popen(
            [binary, "watch", "/bench/fan", "--data-dir", n2data],
            stdout=open(out, "wb"), stderr=subprocess.STDOUT))
    time.sleep(1.0)
    files = 64
    for k in range(files):
        open(os.path.join(mnt1, "bench", "fan", "f%d" % k), "w").close()
    writers = 4
    t0 = time.monotonic()

    def write(w):
        for i in range(w, changes, writers):
            p = os.path.join(mnt1, "bench", "fan", "f%d" % (i % files))
            fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, b"%d\n" % i)
            os.close(fd)
    ts = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wrote_s = time.monotonic() - t0
    want = files + changes  # the creates, then one write per change
    deadline = time.monotonic() + 60 + changes / 1000

    def lines(out):
        with open(out, "rb") as f:
            return f.read().splitlines()
    while time.monotonic() < deadline:
        if all(len(lines(o)) >= want for o in outs):
            break
        time.sleep(0.5)
    delivered_s = time.monotonic() - t0
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(10)
    bad = 0
    ref = None
    for o in outs:
        ls = lines(o)
        revs = [int(l.split(b" ")[0]) for l in ls]
        writes = sum(1 for l in ls if l.split(b" ")[1] == b"write")
        ok = (len(ls) == want and writes == changes and
              all(a < b for a, b in zip(revs, revs[1:])))
        if ref is None:
            ref = ls
        ok = ok and ls == ref
        if not ok:
            bad += 1
            print("  watcher %s: %d lines (want %d), %d writes, in order: %s"
                  % (o, len(ls), want, writes,
                     all(a < b for a, b in zip(revs, revs[1:]))))
    print("fan-out: %d watchers x %d changes (+%d creates): written in "
          "%.1f s (%.0f/s), all delivered after %.1f s; watchers with a "
          "missing, duplicated or out-of-order change: %d"
          % (watchers, changes, files, wrote_s, changes / wrote_s,
             delivered_s, bad))
    return bad == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--changes", type=int, default=100000)
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--latency-samples", type=int, default=2000)
    ap.add_argument("--port-base", type=int, default=27150)
    a = ap.parse_args()
    binary = os.path.abspath(os.path.join(a.build, "fs", "quorumfs"))
    root = tempfile.mkdtemp(prefix="qfs-bench-watch.")
    procs = {}
    try:
        procs = start_cluster(binary, root, a.port_base)
        ok = bench_latency(root, a.latency_samples)
        ok = bench_fanout(binary, root, a.watchers, a.changes) and ok
    finally:
        stop_cluster(root, procs)
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
