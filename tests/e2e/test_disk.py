"""Damaged data dirs and kill -9 (issue 10, items 3 and 4).

Item 3: a db tail may be dropped at start only where the raft log still
holds what it held; otherwise the node refuses to start, names the file,
the offsets and what is lost, and modifies nothing. Every other
inconsistency between the db and the log stops the node too.

Item 4: after kill -9 (even one that leaves the process stuck in the kernel
with the mount alive), the node starts again at once on the same mountpoint
and data dir, and the tree holds every acknowledged write.
"""

import ctypes
import glob
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import tree  # noqa: F401  (same helpers as the other files)

N_WRITES = 300
START_FAIL_TIMEOUT_S = 30.0


def write_files(mnt, n, prefix="f"):
    """n acknowledged writes (close() returned): {name: content}."""
    want = {}
    for i in range(n):
        name = "%s%04d" % (prefix, i)
        data = ("value %d of %s\n" % (i, name)).encode()
        with open(os.path.join(mnt, name), "wb") as f:
            f.write(data)
        want[name] = data
    return want


def check_files(mnt, want):
    missing = []
    for name, data in want.items():
        try:
            with open(os.path.join(mnt, name), "rb") as f:
                got = f.read()
        except FileNotFoundError:
            missing.append(name)
            continue
        assert got == data, name
    assert missing == [], "%d acknowledged files lost: %s" % (
        len(missing), missing[:10])


def settle_and_kill(node):
    """Let the db frames reach the disk (sealed within 100 ms), then kill -9
    and unmount (the dead mount) so the next start is about the data dir."""
    time.sleep(0.6)
    node.kill9()


def db_path(node):
    return os.path.join(node.data_dir, "db")


def slurp(path):
    with open(path, "rb") as f:
        return f.read()


def zero_tail(path, nbytes):
    size = os.path.getsize(path)
    assert size > nbytes, "db of %d bytes" % size
    with open(path, "r+b") as f:
        f.seek(size - nbytes)
        f.write(b"\0" * nbytes)
        f.flush()
        os.fsync(f.fileno())


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x10]))
        f.flush()
        os.fsync(f.fileno())


def start_must_fail(node, args=()):
    """The node must refuse: exit non-zero, no mount. Returns its log."""
    node.start(args, wait=False)
    try:
        rc = node.proc.wait(START_FAIL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait()
        pytest.fail("the node started on an inconsistent data dir:\n"
                    + node.log()[-3000:])
    assert rc != 0
    assert not os.path.ismount(node.mnt)
    node.stop()
    return node.log()


def data_dir_files(node):
    out = {}
    for p in sorted(glob.glob(os.path.join(node.data_dir, "**"),
                              recursive=True)):
        if os.path.isfile(p) and not p.endswith(("LOCK", ".log")):
            out[p] = slurp(p)
    return out


# ---- item 3: the db tail rule ----

def test_zeroed_db_tail_within_the_log_is_replayed(make_node):
    node = make_node().start()
    want = write_files(node.mnt, N_WRITES)
    settle_and_kill(node)
    zero_tail(db_path(node), 4096)
    node.start()
    check_files(node.mnt, want)
    assert "dropped a torn tail" in node.log()
    assert "replays entries" in node.log()


def test_zeroed_db_tail_beyond_the_log_refuses(make_node):
    args = ["--snapshot-entries", "50"]
    node = make_node().start(args)
    write_files(node.mnt, N_WRITES)
    settle_and_kill(node)
    db = db_path(node)
    size = os.path.getsize(db)
    zero_tail(db, 4096)
    before = data_dir_files(node)
    log = start_must_fail(node, args)
    assert data_dir_files(node) == before, "a refused start modified files"
    line = [ln for ln in log.splitlines() if "Refusing to start" in ln]
    assert line, log[-3000:]
    line = line[-1]
    assert db in line
    assert ("..%d" % size) in line  # the byte offsets dropped
    assert "Lost: raft indexes" in line and "revisions" in line


def test_cluster_follower_with_a_db_tail_beyond_its_log_refuses(make_cluster):
    """In a cluster too: the follower does not serve a tree missing writes
    it applied (fetching a snapshot instead is not implemented: it refuses,
    names what is lost, and the others go on)."""
    import cluster as qc
    c = make_cluster(extra_args=["--snapshot-entries", "50"])
    ld = c.start()
    f = c.followers(ld)[0]
    want = write_files(ld.mnt, N_WRITES)
    time.sleep(1.0)
    c.kill9(f)
    db = db_path(f)
    zero_tail(db, 16384)  # far more than the 50 entries the log keeps
    before = data_dir_files(f)
    log = start_must_fail(f, c.args(f, "existing"))
    assert data_dir_files(f) == before
    assert "Refusing to start" in log and db in log, log[-3000:]
    qc.write_file(ld.path("after"), b"ok\n")  # the quorum goes on
    check_files(ld.mnt, want)


def test_bit_flip_in_last_db_frame_within_the_log_is_replayed(make_node):
    node = make_node().start()
    want = write_files(node.mnt, 50)
    settle_and_kill(node)
    db = db_path(node)
    flip(db, os.path.getsize(db) - 3)  # inside the last frame's payload
    node.start()
    check_files(node.mnt, want)
    assert "dropped a torn tail" in node.log()


def test_bit_flip_in_a_middle_db_frame_refuses(make_node):
    node = make_node().start()
    want = write_files(node.mnt, 20)
    time.sleep(0.6)  # one frame
    want.update(write_files(node.mnt, 20, prefix="g"))
    settle_and_kill(node)
    db = db_path(node)
    flip(db, 100)  # the first frame's payload: valid frames follow
    before = data_dir_files(node)
    log = start_must_fail(node)
    assert data_dir_files(node) == before
    assert "corrupt" in log and db in log


def log_segments(node):
    segs = sorted(glob.glob(os.path.join(node.data_dir, "log", "seg-*")))
    assert segs
    return segs


def used_bytes(path):
    """Bytes of a preallocated segment before its all-zero remainder."""
    data = slurp(path)
    return len(data.rstrip(b"\0"))


def test_bit_flip_in_a_log_segment_refuses(make_node):
    node = make_node().start()
    write_files(node.mnt, 100)
    settle_and_kill(node)
    seg = log_segments(node)[-1]
    flip(seg, used_bytes(seg) // 2)  # valid records follow
    before = data_dir_files(node)
    log = start_must_fail(node)
    assert data_dir_files(node) == before
    assert seg in log or "corrupt" in log


def last_entry_offset(seg):
    """Offset of the last ENTRY record of a segment (docs/format-log.md)."""
    data = slurp(seg)
    off, last = 0, None
    while off + 40 <= len(data) and data[off:off + 4] == b"QLOG":
        if data[off + 5] == 2:
            last = off
        off += 40 + int.from_bytes(data[off + 8:off + 12], "little")
    assert last is not None
    return last


def test_log_tail_lost_under_an_applied_db_refuses(make_node):
    """The db has applied the last entries but the log lost them (its last
    records cut off, as a lost write would leave it): a lone node must not
    start and hand out indexes the db has already applied."""
    node = make_node().start()
    write_files(node.mnt, 100)
    settle_and_kill(node)
    seg = log_segments(node)[-1]
    os.truncate(seg, last_entry_offset(seg))
    log = start_must_fail(node)
    assert ("the data dir is inconsistent" in log
            or "committed entries" in log), log[-3000:]
    assert "Refusing to start" in log


def start_or_refuse(node, args):
    """Start; True if it mounted, False if it refused (exit non-zero)."""
    node.start(args, wait=False)
    try:
        node.wait_ready(timeout=30)
        return True
    except RuntimeError:
        assert node.proc.poll() not in (None, 0), node.log()[-3000:]
        node.stop()
        return False


@pytest.mark.parametrize("target", ["db", "log"])
@pytest.mark.parametrize("compacted", [False, True])
def test_random_bit_flips_never_lose_an_acknowledged_write(make_node, target,
                                                            compacted):
    """A checker over many single-bit faults: each start either refuses or
    serves every acknowledged write."""
    import random
    import shutil
    args = ["--snapshot-entries", "20"] if compacted else []
    node = make_node().start(args)
    want = write_files(node.mnt, 40)
    time.sleep(0.3)
    want.update(write_files(node.mnt, 40, prefix="g"))
    settle_and_kill(node)
    pristine = node.data_dir + ".pristine"
    skip = shutil.ignore_patterns("ctl.sock")
    shutil.copytree(node.data_dir, pristine, ignore=skip)
    rng = random.Random(10 + (target == "log"))
    if target == "db":
        files = [(db_path(node), os.path.getsize(db_path(node)))]
    else:
        segs = log_segments(node)
        files = [(p, used_bytes(p)) for p in segs]
        files.append((os.path.join(node.data_dir, "log", "meta"), 8192))
    outcomes = {"refused": 0, "served": 0}
    for i in range(10):
        shutil.rmtree(node.data_dir)
        shutil.copytree(pristine, node.data_dir, ignore=skip)
        path, used = files[i % len(files)]
        off = rng.randrange(used)
        flip(path, off)
        if start_or_refuse(node, args):
            check_files(node.mnt, want)
            assert node.stop() == 0
            outcomes["served"] += 1
        else:
            outcomes["refused"] += 1
    print("\nflips in", target, "compacted" if compacted else "", outcomes)


# ---- item 4: kill -9 under a rename workload, restart at once ----

WORKERS = 4
RESTART_MAX_S = 15.0


LIBC = ctypes.CDLL(None, use_errno=True)


def open_inheritable(path):
    """open(O_WRONLY|O_CREAT|O_TRUNC) without O_CLOEXEC (Python's opens
    always set it). Every close() of a file on the mount sends a FLUSH,
    which waits while the killed node's connection is not aborted yet; the
    restarted node is what aborts it here (without the watchdog), so the
    process that starts it must not close the workers' descriptors: it
    inherits them (close_fds=False) instead of closing them in the child
    (close_fds) or at exec (O_CLOEXEC)."""
    fd = LIBC.open(path.encode(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                   0o644)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return fd


def start_inheriting(node):
    """node.start(wait=False), its child keeping our descriptors (see
    open_inheritable)."""
    node._log = open(node.log_path, "ab")
    node.proc = subprocess.Popen(node.cmd(node.extra_args),
                                 stdout=node._log, stderr=node._log,
                                 stdin=subprocess.DEVNULL, close_fds=False)


def rename_worker(mnt, tid, tag, acked, stop):
    """Create, write and rename files in the mount root; a name goes into
    acked only once its rename returned (the write and the rename are
    acknowledged). Errors end the worker (the node was killed)."""
    k = 0
    try:
        while not stop.is_set():
            tmp = os.path.join(mnt, "t%d-%d.tmp" % (tid, k))
            final = os.path.join(mnt, "t%d-%s-%d" % (tid, tag, k))
            data = ("worker %d round %d\n" % (tid, k)).encode() * 3
            fd = open_inheritable(tmp)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(tmp, final)
            acked[os.path.basename(final)] = data
            k += 1
    except OSError:
        pass


def mount_listed(mnt):
    """Is mnt in /proc/self/mountinfo (no stat: it may hang)?"""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == mnt for line in f)


def kill_under_load(node, tag, acked, load_s):
    stop = threading.Event()
    threads = [threading.Thread(target=rename_worker,
                                args=(node.mnt, t, tag, acked, stop),
                                daemon=True)
               for t in range(WORKERS)]
    for t in threads:
        t.start()
    time.sleep(load_s)
    old = node.proc
    old.send_signal(signal.SIGKILL)
    stop.set()
    return old, threads


@pytest.mark.parametrize("watchdog", [True, False])
def test_kill9_under_renames_restarts_at_once(make_node, watchdog):
    node = make_node()
    if not watchdog:
        os.environ["QFS_NO_WATCHDOG"] = "1"
    try:
        node.start()
        acked = {}
        restarts = []
        for rnd in range(4):
            old, threads = kill_under_load(node, "r%d" % rnd, acked,
                                           1.0 + 0.3 * rnd)
            snapshot = dict(acked)  # acknowledged before the kill returned
            t0 = time.monotonic()
            node.proc = None
            start_inheriting(node)
            node.wait_ready(timeout=60)
            restarts.append(time.monotonic() - t0)
            # the old process was freed: it exits (not a stuck zombie)
            old.wait(20)
            for t in threads:
                t.join(20)
                assert not t.is_alive(), "a client of the old mount hangs"
            check_files(node.mnt, snapshot)
        assert len(acked) > 0
        assert max(restarts) < RESTART_MAX_S, restarts
        print("restart seconds:", ["%.2f" % r for r in restarts])
    finally:
        os.environ.pop("QFS_NO_WATCHDOG", None)


def test_live_or_foreign_mount_is_never_aborted(make_node):
    """The start-up clean-up touches only a mount provably left by a dead
    node of this data dir: a live owner, or a LOCK naming another device,
    is refused and the mount is left alone."""
    node = make_node().start()
    write_files(node.mnt, 5)
    # a second start on the same mountpoint and data dir: a live owner
    other = subprocess.run(node.cmd(), capture_output=True, text=True,
                           timeout=60)
    assert other.returncode != 0
    assert "mounted by a running node" in other.stderr, other.stderr
    check_files(node.mnt, {"f0000": b"value 0 of f0000\n"})
    # killed, but LOCK names another device: not provably ours
    old = node.proc
    old.send_signal(signal.SIGKILL)
    old.wait(20)
    node.proc = None
    lock = os.path.join(node.data_dir, "LOCK")
    pid, line = slurp(lock).decode().splitlines()[:2]
    _, dev, mnt = line.split(" ", 2)
    maj, mino = dev.split(":")
    with open(lock, "w") as f:
        f.write("%s\nfuse %s:%d %s\n" % (pid, maj, int(mino) + 1000, mnt))
    r = subprocess.run(node.cmd(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "not ours, refusing to touch it" in r.stderr, r.stderr
    assert mount_listed(node.mnt)


def lock_device(node):
    """MAJ:MIN of the mount that the data dir's LOCK records."""
    return slurp(os.path.join(node.data_dir, "LOCK")).decode() \
        .splitlines()[1].split(" ")[1]


def watchdog_of(pid):
    """The pid of a node's watchdog (its child named quorumfs-wd)."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        if comm == "quorumfs-wd" and ppid == pid:
            return int(p)
    raise AssertionError("no watchdog found for pid %d" % pid)


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return True
    return st[st.rindex(")") + 2] == "Z"


def test_dead_nodes_watchdog_spares_the_next_mount(make_node):
    """A killed node's watchdog that runs late (stopped here) must not
    abort the connection of the node started after it on the same
    mountpoint, which the kernel usually gives the same device number
    (the lowest free one): the watchdog checks that LOCK still names the
    dead node. Without the check the new mount ends with ENOTCONN while
    its node runs (seen as a member whose status could not be read after
    a kill and restart in the member nemesis)."""
    node = make_node().start()
    write_files(node.mnt, 3)
    dev = lock_device(node)
    wd = watchdog_of(node.proc.pid)
    os.kill(wd, signal.SIGSTOP)
    try:
        node.kill9()  # its /dev/fuse closes; the dead mount is cleared
        node.start()
        if lock_device(node) != dev:
            pytest.skip("the new mount got another device (%s, was %s): "
                        "nothing to test" % (lock_device(node), dev))
    finally:
        os.kill(wd, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while not gone(wd) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(wd), "the dead node's watchdog did not exit"
    check_files(node.mnt, {"f0002": b"value 2 of f0002\n"})
    assert node.status()["name"] == node.name
    assert node.proc.poll() is None
    assert "another node's mount: left alone" in node.log(), node.log()[-2000:]
    write_files(node.mnt, 1, prefix="after")


def test_restart_never_clears_another_data_dirs_mount(make_node):
    """A node killed on a mountpoint that another data dir's node has
    mounted since (the dead mount cleared by hand) is refused at its
    restart, and the other node's mount is left alone, though the kernel
    usually gave it the dead mount's device number, which a's LOCK
    records: the mount's source names the pid that mounted it."""
    a = make_node("a").start()
    write_files(a.mnt, 2)
    dev = lock_device(a)
    a.kill9()  # and fusermount3 -uz: the mountpoint is free
    b = make_node("b")
    b.mnt = a.mnt
    b.start()
    write_files(b.mnt, 2, prefix="b")
    if lock_device(b) != dev:
        pytest.skip("b's mount got another device (%s, a's was %s): "
                    "nothing to test" % (lock_device(b), dev))
    r = subprocess.run(a.cmd(), capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "not ours, refusing to touch it" in r.stderr, r.stderr
    assert "(quorumfs:%d)" % b.proc.pid in r.stderr, r.stderr
    check_files(b.mnt, {"b0001": b"value 1 of b0001\n"})
    assert b.status()["name"] == "b"
