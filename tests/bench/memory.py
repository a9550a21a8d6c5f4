#!/usr/bin/python3
"""tests/bench/memory.py - peak memory of quorumfs nodes under large-value
workloads through the mount (docs/benchmarks.md, "Memory"); driven by
tests/bench/memory.sh --workload writers|cluster, or run alone:

  memory.py writers --bin QUORUMFS [--seconds N] [--writers 100] [--dir D]
  memory.py cluster --bin QUORUMFS [--seconds N] [--writers 48] [--stop-s S]
  (after --: more mount arguments for every node)

writers: one node with default options; WRITERS threads each rewrite 3
files of 1 MiB (incompressible) in rounds and add one new 1 MiB file per
round until the quota refuses (ENOSPC), then only rewrite their 3 files,
for SECONDS.
cluster: three nodes with default options (127.0.0.1-3); WRITERS threads
(a third per mount) each rewrite one file of 1 MiB for SECONDS; a follower
is SIGSTOPped from SECONDS/4 for STOP_S seconds (it lags, then catches
up, by log or by a snapshot image).

Prints per node the peak RSS (VmHWM from /proc/PID/status, read before the
node stops), the db size, live keys and the bound 300 MiB + 300 B per live
key. Only processes this script started are stopped (by PID), and its
mounts are unmounted.
"""

import argparse
import errno
import os
import shutil
import sys
import tempfile
import threading
import time

MIB = 1 << 20


def vm_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:])
    finally:
        os.close(fd)


class Sampler(threading.Thread):
    """Samples VmRSS of the nodes every 0.5 s (VmHWM is the real peak)."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes = nodes
        self.stop = threading.Event()
        self.peak = {n.name: 0 for n in nodes}

    def run(self):
        while not self.stop.is_set():
            for n in self.nodes:
                try:
                    r = vm_kib(n.proc.pid, "VmRSS")
                except OSError:
                    continue
                self.peak[n.name] = max(self.peak[n.name], r)
            self.stop.wait(0.5)


def report(workload, nodes, sampler, errors):
    print("workload:      %s" % workload)
    for n in nodes:
        hwm = vm_kib(n.proc.pid, "VmHWM")
        st = {}
        try:
            st = n.status()
        except Exception:  # noqa: BLE001 (a node may be unreachable)
            pass
        keys = st.get("keys", 0)
        db = os.path.getsize(os.path.join(n.data_dir, "db"))
        bound = 300 * MIB + 300 * keys
        print("%-3s peak RSS (VmHWM) %5d MiB (sampled %d), db %5d MiB, "
              "live %4d MiB, keys %6d, bound %d MiB: %s" % (
                  n.name, hwm // 1024, sampler.peak[n.name] // 1024,
                  db // MIB, st.get("live_bytes", 0) // MIB, keys,
                  bound // MIB,
                  "within" if hwm * 1024 <= bound else "OVER"))
    for k, v in sorted(errors.items()):
        print("writes failed with %s: %d" % (k, v))


def writers(args, Node, root):
    n = Node(root, "n1")
    n.start(list(args.extra))
    stop = threading.Event()
    errors = {}
    lock = threading.Lock()

    def work(i):
        blob = bytearray(os.urandom(MIB))
        grow = True
        k = 0
        rnd = 0
        while not stop.is_set():
            names = ["w%d-%d" % (i, j) for j in range(3)]
            if grow:
                names.append("w%d-g%d" % (i, k))
            for name in names:
                blob[:8] = rnd.to_bytes(8, "little")
                try:
                    write_file(n.path(name), blob)
                except OSError as e:
                    with lock:
                        key = errno.errorcode.get(e.errno, str(e.errno))
                        errors[key] = errors.get(key, 0) + 1
                    if e.errno == errno.ENOSPC:
                        grow = False
                    else:
                        time.sleep(0.1)
                if stop.is_set():
                    return
            k += 1
            rnd += 1

    sampler = Sampler([n])
    sampler.start()
    ts = [threading.Thread(target=work, args=(i,), daemon=True)
          for i in range(args.writers)]
    for t in ts:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in ts:
        t.join(120)
    sampler.stop.set()
    report("%d writers x 3 files of 1 MiB (+1 new file per round until "
           "ENOSPC), %d s" % (args.writers, args.seconds), [n], sampler,
           errors)
    return [n]


def cluster(args, Cluster, root):
    c = Cluster(root, extra_args=list(args.extra), heartbeat_ms=100,
                election_ms=1000, proposal_timeout_ms=5000)
    c.start()
    stop = threading.Event()
    errors = {}
    lock = threading.Lock()

    def work(node, i):
        blob = bytearray(os.urandom(MIB))
        rnd = 0
        while not stop.is_set():
            blob[:8] = rnd.to_bytes(8, "little")
            try:
                write_file(node.path("c%d" % i), blob)
            except OSError as e:
                with lock:
                    key = errno.errorcode.get(e.errno, str(e.errno))
                    errors[key] = errors.get(key, 0) + 1
                time.sleep(0.1)
            rnd += 1

    sampler = Sampler(c.nodes)
    sampler.start()
    ts = [threading.Thread(target=work, args=(c.nodes[i % 3], i), daemon=True)
          for i in range(args.writers)]
    for t in ts:
        t.start()
    leader = c.leader()
    lag = c.followers(leader)[0]
    time.sleep(args.seconds / 4)
    c.sigstop(lag)
    print("SIGSTOP %s (leader %s) for %d s" % (lag.name, leader.name,
                                                args.stop_s))
    time.sleep(args.stop_s)
    c.sigcont(lag)
    rest = args.seconds - args.seconds / 4 - args.stop_s
    time.sleep(max(rest, 5))
    stop.set()
    for t in ts:
        t.join(120)
    try:
        c.wait_applied()
    except Exception as e:  # noqa: BLE001
        print("not converged: %s" % e)
    sampler.stop.set()
    report("3 nodes, %d writers (a third per mount) x 1 file of 1 MiB, "
           "%d s, follower %s stopped %d s" % (args.writers, args.seconds,
                                               lag.name, args.stop_s),
           c.nodes, sampler, errors)
    with open(leader.log_path, errors="replace") as f:
        log = f.read()
    print("leader log: %d 'sending snapshot', %d 'image released'" % (
        log.count("sending snapshot"), log.count("image released")))
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=("writers", "cluster"))
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--writers", type=int, default=0)
    ap.add_argument("--stop-s", type=int, default=20)
    ap.add_argument("--dir", default="")
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    args = ap.parse_args(argv)
    args.extra = extra
    if args.writers == 0:
        args.writers = 100 if args.workload == "writers" else 48
    os.environ["QUORUMFS_BIN"] = os.path.abspath(args.bin)
    sys.path.insert(0, os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "e2e"))
    import conftest  # noqa: E402 (reads QUORUMFS_BIN at import)
    import cluster as cl  # noqa: E402
    root = args.dir or tempfile.mkdtemp(prefix="qfs-memory-")
    made = None
    try:
        if args.workload == "writers":
            made = writers(args, conftest.Node, root)
        else:
            made = cluster(args, cl.Cluster, root)
    finally:
        if isinstance(made, list):
            for n in made:
                n.cleanup()
        elif made is not None:
            made.cleanup()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
