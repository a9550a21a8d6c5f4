"""The FUSE request reader (fs/fuse/fs_reader.c; docs/architecture.md,
"Reading FUSE requests"): threads that read every request from
/dev/fuse, answer the close of a file this mount has nothing pending for
and hand every other request to the loop.

Checked here on real mounts: the FLUSHes the threads answer are counted
and timed in the metrics with the loop's; a writer's close still waits
for its commit (its FLUSH goes to the loop) while readers' closes are
answered by the threads; every thread count from 1 to 16 serves a mixed
load; an orderly stop with a process still holding a file of the mount
ends (the threads are blocked in read() with no request coming: they
are cancelled)."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from cluster import metric as counter
from conftest import STOP_TIMEOUT_S


def metrics(node):
    with open(node.path(".cluster", "metrics")) as f:
        text = f.read()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(quorumfs_fuse_[a-z_]+)\{op="([a-z_]+)"(?:,le="[^"]*")?\} (\S+)$',
                     line)
        if m and "_bucket" not in m.group(1):
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def flushes(node):
    m = metrics(node)
    return (m.get(("quorumfs_fuse_requests_total", "flush"), 0),
            m.get(("quorumfs_fuse_request_duration_seconds_count", "flush"),
                  0))


def run_threads(target, n):
    """n threads of target(i), started together, joined."""
    ts = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def cat(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("threads", [1, 3])
def test_readers_closes_are_counted(make_node, threads):
    n = make_node().start(["--fuse-threads", str(threads)])
    p = n.path("k")
    with open(p, "wb") as f:
        f.write(b"value\n")
    assert cat(p) == b"value\n"
    before, before_timed = flushes(n)
    for _ in range(300):
        assert cat(p) == b"value\n"
    after, after_timed = flushes(n)
    # 300 closes, each one FLUSH (the metrics file's own read adds its own)
    assert after - before >= 300, (before, after)
    assert after - before < 400, (before, after)
    assert after_timed - before_timed >= 300, (before_timed, after_timed)


def test_writers_close_waits_for_its_commit_among_readers(make_node):
    """Readers loop on a file (their FLUSHes answered by the threads)
    while a writer writes another in parts: the writer's close returns
    after its commit (the revision has moved when close returns, and the
    status read after it shows the whole content committed), and the
    readers never see a torn value of their own file."""
    n = make_node().start(["--fuse-threads", "4"])
    with open(n.path("r"), "wb") as f:
        f.write(b"steady\n")
    stop = threading.Event()
    bad = []

    def reader():
        while not stop.is_set():
            v = cat(n.path("r"))
            if v != b"steady\n":
                bad.append(v)

    ts = [threading.Thread(target=reader) for _ in range(4)]
    for t in ts:
        t.start()
    try:
        for i in range(20):
            rev = n.revision()
            with open(n.path("w"), "wb") as f:
                for part in range(8):
                    f.write(b"%d-%d\n" % (i, part))
            # close returned: committed and applied here
            assert n.revision() > rev
            assert cat(n.path("w")) == b"".join(b"%d-%d\n" % (i, part)
                                                 for part in range(8))
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert bad == []


def test_busy_writers_hand_the_reading_to_the_loop_and_back(make_node):
    """32 writers at once pile requests up: the loop reads the session's
    fd itself (busy mode, no hop through a thread); once the load is one
    client again the threads answer the closes again. Every write is
    whole throughout."""
    n = make_node().start(["--fuse-threads", "2"])
    for w in range(32):
        os.mkdir(n.path("w%d" % w))
    switches0 = counter(n, "quorumfs_fuse_busy_switches_total")
    loop0 = counter(n, "quorumfs_fuse_loop_reads_total")
    errors = []

    def writer(w):
        try:
            for i in range(30):
                p = n.path("w%d" % w, "f%d" % (i % 3))
                with open(p, "wb") as f:
                    f.write(b"%d %d\n" % (w, i))
                if cat(p) != b"%d %d\n" % (w, i):
                    errors.append((p, cat(p)))
        except OSError as e:
            errors.append(e)

    run_threads(writer, 32)
    assert errors == []
    # the loop read requests itself during the load: it switched to busy
    # then, or was busy already (a slow build: the mkdirs above did it)
    assert counter(n, "quorumfs_fuse_loop_reads_total") > loop0
    assert counter(n, "quorumfs_fuse_busy_switches_total") >= \
        max(switches0, 1)
    # one client: after a few quiet wake-ups the threads read again
    with open(n.path("k"), "wb") as f:
        f.write(b"v\n")
    fast0 = counter(n, "quorumfs_fuse_thread_flushes_total")
    for _ in range(300):
        assert cat(n.path("k")) == b"v\n"
    got = counter(n, "quorumfs_fuse_thread_flushes_total") - fast0
    with open(n.path(".cluster", "metrics")) as f:
        text = f.read()
    assert got >= 200, text


READER_SRC = r'''
import sys, time
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    with open(sys.argv[1], "rb") as f:
        f.read()
'''


def test_busy_loop_hands_a_read_load_back(make_node):
    """Busy mode ends under a read load too: what keeps the loop reading
    is requests the threads would hand it, not the closes they answer
    themselves. Many readers whose FLUSHes the loop kept reading (each
    wake-up finding several) held it busy for as long as they read."""
    n = make_node().start(["--fuse-threads", "2"])
    with open(n.path("k"), "wb") as f:
        f.write(b"v\n")
    for w in range(32):
        os.mkdir(n.path("w%d" % w))
    switches0 = counter(n, "quorumfs_fuse_busy_switches_total")

    def writer(w):
        for i in range(20):
            with open(n.path("w%d" % w, "f"), "wb") as f:
                f.write(b"%d\n" % i)

    readers = [subprocess.Popen([sys.executable, "-c", READER_SRC,
                                 n.path("k"), "6"]) for _ in range(16)]
    try:
        time.sleep(0.5)
        run_threads(writer, 32)  # busy now, with the readers reading
        assert counter(n, "quorumfs_fuse_busy_switches_total") >= \
            max(switches0, 1)
        time.sleep(0.5)
        loop0 = counter(n, "quorumfs_fuse_loop_reads_total")
        fast0 = counter(n, "quorumfs_fuse_thread_flushes_total")
        time.sleep(1.5)
        loop = counter(n, "quorumfs_fuse_loop_reads_total") - loop0
        fast = counter(n, "quorumfs_fuse_thread_flushes_total") - fast0
    finally:
        for r in readers:
            assert r.wait(30) == 0
    print("while 16 readers read: %d closes answered by the threads, %d "
          "requests read by the loop" % (fast, loop))
    assert fast > 1000 and fast > 10 * loop, (fast, loop)


@pytest.mark.parametrize("threads", [1, 16])
def test_thread_counts_serve_a_mixed_load(make_node, threads):
    n = make_node().start(["--fuse-threads", str(threads)])
    errors = []

    def worker(w):
        try:
            d = n.path("d%d" % w)
            os.mkdir(d)
            for i in range(40):
                p = os.path.join(d, "f%d" % (i % 5))
                with open(p, "wb") as f:
                    f.write(b"%d %d\n" % (w, i))
                if cat(p) != b"%d %d\n" % (w, i):
                    errors.append((p, cat(p)))
                os.rename(p, p + ".x")
                os.rename(p + ".x", p)
                os.listdir(d)
        except OSError as e:
            errors.append(e)

    run_threads(worker, 8)
    assert errors == []
    assert sorted(os.listdir(n.path("d3"))) == ["f%d" % i for i in range(5)]


def test_stop_with_a_file_held_open(make_node):
    """SIGTERM while a process holds a file and a directory of the mount:
    the unmount is lazy and no request comes, yet the node exits 0."""
    n = make_node().start(["--fuse-threads", "3"])
    with open(n.path("held"), "wb") as f:
        f.write(b"x")
    f = open(n.path("held"), "rb")
    d = os.open(n.mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        t0 = time.monotonic()
        n.proc.send_signal(signal.SIGTERM)
        rc = n.proc.wait(STOP_TIMEOUT_S)
        assert rc == 0
        assert time.monotonic() - t0 < STOP_TIMEOUT_S
    finally:
        # the node is gone: the close's FLUSH finds no daemon (ENOTCONN)
        for close in (f.close, lambda: os.close(d)):
            try:
                close()
            except OSError:
                pass
    n.stop()
