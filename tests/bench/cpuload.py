#!/usr/bin/env python3
"""tests/bench/cpuload.py - leadership under CPU overload (a measurement, not a test).

    tests/bench/cpuload.py [--seconds 600] [--cpu 8] [--build DIR]

Starts a three-node cluster on 127.0.0.1/.2/.3 (random port base) in a temp
dir, runs one writer per mount (open+write+close of a small file in a loop,
each write timed) and `stress-ng --cpu N` next to it for SECONDS, and samples
every node's /.cluster/status every 50 ms. Reports:
  - leaderless periods: spans in which no node reported itself leader of the
    highest term seen, the longest, and how many exceed 2 election timeouts;
  - leader changes, and for each whether the old leader asked for it
    (leadership transfer) or lost it (check-quorum, a higher term);
  - writes: count, errors by errno, the slowest;
  - the log lines that explain lost leaderships (check-quorum, timeouts).
Prints a table and one JSON line (last line of stdout). Exit 0 always unless
setup fails: the figures are for people to read.

Cleanup (also on error or ^C): only the processes this script started are
killed, every mount is lazily unmounted, the temp dir is removed.
"""
import argparse
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAMES = ["n1", "n2", "n3"]
SAMPLE_S = 0.05
READY_S = 60


def read_status(mnt):
    try:
        with open(os.path.join(mnt, ".cluster", "status")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Writer(threading.Thread):
    def __init__(self, mnt, tag):
        super().__init__(daemon=True)
        self.mnt, self.tag = mnt, tag
        self.stop = threading.Event()
        self.count = 0
        self.errors = {}
        self.slowest = 0.0

    def run(self):
        i = 0
        while not self.stop.is_set():
            path = os.path.join(self.mnt, "w-%s-%d" % (self.tag, i % 50))
            t0 = time.monotonic()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                             0o644)
                try:
                    os.write(fd, b"%s %d\n" % (self.tag.encode(), i))
                finally:
                    os.close(fd)
                self.count += 1
            except OSError as e:
                name = errno.errorcode.get(e.errno, str(e.errno))
                self.errors[name] = self.errors.get(name, 0) + 1
                time.sleep(0.05)
            self.slowest = max(self.slowest, time.monotonic() - t0)
            i += 1
            time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--cpu", type=int, default=8)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--election-ms", type=int, default=1000)
    ap.add_argument("--heartbeat-ms", type=int, default=100)
    args = ap.parse_args()

    binary = os.path.join(args.build, "fs", "quorumfs")
    if not os.access(binary, os.X_OK):
        sys.exit("cpuload.py: %s missing: build first" % binary)
    if shutil.which("stress-ng") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "stress-ng"],
                       check=True, stdout=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="qfs-cpuload.")
    secret = os.path.join(work, "peer.secret")
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        f.write(os.urandom(32).hex().encode() + b"\n")
    base = 20000 + random.randrange(30000)
    addrs = {n: "127.0.0.%d:%d" % (i + 1, base + i)
             for i, n in enumerate(NAMES)}
    cluster = ",".join("%s=%s" % (n, addrs[n]) for n in NAMES)
    procs, mnts, stress = {}, {}, None
    writers = []

    def cleanup():
        for w in writers:
            w.stop.set()
        if stress is not None and stress.poll() is None:
            os.killpg(stress.pid, signal.SIGKILL)
            stress.wait()
        for n, p in procs.items():
            if p.poll() is None:
                p.kill()
                p.wait()
            subprocess.run(["fusermount3", "-uz", mnts[n]],
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)

    try:
        for n in NAMES:
            d = os.path.join(work, n)
            mnts[n] = os.path.join(d, "mnt")
            os.makedirs(mnts[n])
            procs[n] = subprocess.Popen(
                [binary, "mount", mnts[n], "-f", "--name", n,
                 "--data-dir", os.path.join(d, "data"),
                 "--listen-peer", addrs[n], "--initial-cluster", cluster,
                 "--peer-secret-file", secret,
                 "--election-ms", str(args.election_ms),
                 "--heartbeat-ms", str(args.heartbeat_ms)],
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(d, "log"), "w"))
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            st = [read_status(mnts[n]) for n in NAMES]
            if all(s is not None for s in st) and any(
                    s["role"] == "leader" for s in st):
                break
            time.sleep(0.2)
        else:
            sys.exit("cpuload.py: no leader after %ds" % READY_S)
        writers = [Writer(mnts[n], n) for n in NAMES]
        for w in writers:
            w.start()
        stress = subprocess.Popen(
            ["stress-ng", "--cpu", str(args.cpu), "--timeout",
             "%ds" % int(args.seconds)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        samples = []  # (t, {name: (role, term, leader)})
        t_end = time.monotonic() + args.seconds
        load_max = 0.0
        while time.monotonic() < t_end:
            t = time.monotonic()
            row = {}
            for n in NAMES:
                s = read_status(mnts[n])
                if s is not None:
                    row[n] = (s.get("role"), s.get("term"), s.get("leader"))
            samples.append((t, row))
            load_max = max(load_max, os.getloadavg()[0])
            time.sleep(SAMPLE_S)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(30)

        # Leaderless spans: no node says it leads the highest term seen.
        spans, start, leaders = [], None, []
        for t, row in samples:
            top = max((v[1] for v in row.values() if v[1] is not None),
                      default=None)
            lead = [n for n, v in row.items()
                    if v[0] == "leader" and v[1] == top]
            if lead:
                if start is not None:
                    spans.append(t - start)
                    start = None
                if not leaders or leaders[-1][1:] != (lead[0], top):
                    leaders.append((t, lead[0], top))
            elif start is None:
                start = t
        if start is not None:
            spans.append(samples[-1][0] - start)
        logs = {}
        for n in NAMES:
            with open(os.path.join(work, n, "log"), errors="replace") as f:
                text = f.read()
            logs[n] = [ln for ln in text.splitlines()
                       if any(k in ln for k in (
                           "check-quorum", "timed out", "became leader", "term ",
                           "steps down", "transfer", "campaign", "prevote"))]
        limit = 2 * args.election_ms / 1000.0
        result = {
            "seconds": args.seconds, "cpu_hogs": args.cpu,
            "load_max": round(load_max, 1),
            "samples": len(samples),
            "leaderless_spans": len(spans),
            "leaderless_longest_s": round(max(spans, default=0.0), 3),
            "leaderless_over_2_election_timeouts": sum(
                1 for s in spans if s > limit),
            "leader_changes": max(len(leaders) - 1, 0),
            "leaders": [(round(t - samples[0][0], 2), n, term)
                        for t, n, term in leaders],
            "writes": sum(w.count for w in writers),
            "write_errors": {k: sum(w.errors.get(k, 0) for w in writers)
                             for w0 in writers for k in w0.errors},
            "write_slowest_s": round(max(w.slowest for w in writers), 3),
        }
        print("quorumfs under CPU overload: %ds, stress-ng --cpu %d, "
              "load max %.1f" % (args.seconds, args.cpu, load_max))
        for k in ("leaderless_spans", "leaderless_longest_s",
                  "leaderless_over_2_election_timeouts", "leader_changes",
                  "writes", "write_errors", "write_slowest_s"):
            print("  %-38s %s" % (k, result[k]))
        for n in NAMES:
            for ln in logs[n][-15:]:
                print("  %s: %s" % (n, ln[:160]))
        print(json.dumps(result))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
