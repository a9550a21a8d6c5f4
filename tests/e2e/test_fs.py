"""End-to-end tests of one quorumfs mount with ordinary tools.

Each test gets its own data dir and mountpoint (conftest.py) and asserts
behaviour through the real kernel FUSE path.
"""

import ctypes
import errno
import hashlib
import os
import random
import stat
import subprocess
import threading
import time

import pytest

from conftest import QUORUMFS_BIN, peer_security_args, tree as snapshot_tree


def sh(cmd, cwd=None, check=True):
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True,
                       text=True, executable="/bin/bash")
    if check and r.returncode != 0:
        raise AssertionError("%r failed (%d): %s%s"
                             % (cmd, r.returncode, r.stdout, r.stderr))
    return r


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def write(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)


# ---------------------------------------------------------------- basics

def test_echo_cat_append(node):
    f = node.path("f")
    sh("echo hello > %s" % f)
    assert sh("cat %s" % f).stdout == "hello\n"
    sh("echo world >> %s" % f)
    assert read(f) == "hello\nworld\n"
    # partial overwrite keeps the rest
    with open(f, "r+") as h:
        h.seek(1)
        h.write("E")
    assert read(f) == "hEllo\nworld\n"
    # shorter content over longer: the tail is gone
    sh("echo v > %s" % f)
    assert read(f) == "v\n"
    assert os.stat(f).st_size == 2


def test_one_proposal_per_echo(node):
    f = node.path("k")
    sh("echo first > %s" % f)
    rev = node.revision()
    sh("echo second > %s" % f)
    assert node.revision() == rev + 1
    assert read(f) == "second\n"
    # python open/write/close of an existing file: also exactly one
    rev = node.revision()
    write(f, "third")
    assert node.revision() == rev + 1
    # several write() calls in one open: one pending update, readable on
    # this mount at once (here by cat, another process, whose close
    # commits nothing), committed as one entry at this close
    # (docs/consistency.md)
    rev = node.revision()
    with open(f, "w") as h:
        for i in range(50):
            h.write("line %d\n" % i)
            h.flush()
            assert sh("cat %s" % f).stdout.count("\n") == i + 1
            assert node.revision() == rev
    assert node.revision() == rev + 1
    assert read(f).count("\n") == 50
    # a read-only open and cat change nothing
    rev = node.revision()
    read(f)
    sh("cat %s > /dev/null" % f)
    assert node.revision() == rev


def test_buffered_writers_commit_once(node, tmp_path):
    """st_blksize is 1 MiB: Python's buffered file and cp write a file up
    to that size in one write(), so one entry (no partial state exists)."""
    f = node.path("py.conf")
    write(f, "x")
    assert os.stat(f).st_blksize == 1 << 20
    rev = node.revision()
    with open(f, "w") as h:
        for i in range(2000):
            h.write("key%d = value%d\n" % (i, i))
    assert node.revision() == rev + 1
    assert read(f).count("\n") == 2000
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(600 * 1024))
    dst = node.path("copied.bin")
    write(dst, "old")
    rev = node.revision()
    sh("cp %s %s" % (src, dst))
    assert node.revision() == rev + 1
    assert read(dst, "rb") == src.read_bytes()


def test_truncating_open_without_write(node):
    f = node.path("t")
    write(f, "content")
    rev = node.revision()
    sh(": > %s" % f)
    # this mount sees the truncation at once; it is committed when no write
    # follows it within FS_SETTLE_MS (200 ms), as one proposal
    assert os.stat(f).st_size == 0
    assert read(f) == ""
    deadline = time.monotonic() + 5
    while node.revision() != rev + 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert node.revision() == rev + 1
    assert read(f) == ""
    # a truncation still waiting for its write is committed by a clean
    # unmount, not lost
    write(f, "again")
    sh(": > %s" % f)
    rc = node.unmount_clean()
    assert rc == 0, node.log()
    node.start()
    assert read(f) == ""


def test_read_your_writes_and_fsync(node):
    f = node.path("ryw")
    fd = os.open(f, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        rev = node.revision()
        os.write(fd, b"abcdef")  # pending until fsync or close
        assert node.revision() == rev
        assert os.pread(fd, 6, 0) == b"abcdef"
        assert os.fstat(fd).st_size == 6
        os.fsync(fd)  # one entry
        assert node.revision() == rev + 1
        os.fsync(fd)  # nothing new: no proposal
        assert node.revision() == rev + 1
        # a truncation no write followed is committed by fsync()
        os.ftruncate(fd, 0)
        assert os.fstat(fd).st_size == 0
        assert node.revision() == rev + 1
        os.fsync(fd)
        assert node.revision() == rev + 2
        assert sh("cat %s" % f).stdout == ""
    finally:
        os.close(fd)  # nothing pending: nothing more
    assert node.revision() == rev + 2


def test_cp_a_tree_and_diff(node, tmp_path):
    rnd = random.Random(1234)
    src = tmp_path / "src"
    src.mkdir()
    n_files = 0
    for d in range(12):
        dd = src / ("dir%02d" % d) / ("sub%d" % (d % 3))
        dd.mkdir(parents=True)
        os.chmod(dd, rnd.choice([0o755, 0o750, 0o700]))
        for i in range(25):
            p = dd / ("file%03d.txt" % i)
            p.write_bytes(os.urandom(rnd.randrange(0, 5000)))
            os.chmod(p, rnd.choice([0o644, 0o600, 0o755, 0o444]))
            n_files += 1
        os.symlink("file000.txt", dd / "link")
        os.symlink("../../dir00", dd / "uplink")
    (src / "empty_dir").mkdir()
    (src / "empty_file").write_bytes(b"")
    assert n_files >= 300
    sh("cp -a %s %s" % (src, node.path("dst")))
    sh("diff -r --no-dereference %s %s" % (src, node.path("dst")))
    want = snapshot_tree(str(src))
    got = snapshot_tree(node.path("dst"))
    assert got == want
    # cp -a keeps mtimes
    s1 = os.stat(src / "dir01" / "sub1" / "file003.txt")
    s2 = os.stat(node.path("dst", "dir01", "sub1", "file003.txt"))
    assert int(s1.st_mtime) == int(s2.st_mtime)
    assert sh("find %s -type f | wc -l" % node.path("dst")).stdout.strip() \
        == str(n_files + 1)
    assert sh("find %s -type l | wc -l" % node.path("dst")).stdout.strip() \
        == "24"


def test_mv_files_and_dirs(node):
    m = node.mnt
    sh("mkdir -p a/b/c && echo x > a/b/c/f && echo y > g", cwd=m)
    sh("mv g a/b/g2", cwd=m)
    assert not os.path.exists(node.path("g"))
    assert read(node.path("a/b/g2")) == "y\n"
    sh("mv a/b z", cwd=m)
    assert read(node.path("z/c/f")) == "x\n"
    assert read(node.path("z/g2")) == "y\n"
    assert not os.path.exists(node.path("a/b"))
    # over an existing file: replaced atomically
    sh("echo old > o && echo new > n && mv n o", cwd=m)
    assert read(node.path("o")) == "new\n"
    assert not os.path.exists(node.path("n"))
    # a directory into its own subtree is refused
    r = sh("mv z z/c/inside", cwd=m, check=False)
    assert r.returncode != 0
    assert read(node.path("z/c/f")) == "x\n"
    # ls sees what is there
    assert sorted(os.listdir(m)) == [".cluster", ".snapshots", "a", "o", "z"]


libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def renameat2(a, b, flags):
    rv = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    return 0 if rv == 0 else ctypes.get_errno()


def test_rename_noreplace_exchange(node):
    a, b = node.path("a"), node.path("b")
    write(a, "A")
    write(b, "B")
    assert renameat2(a, b, RENAME_NOREPLACE) == errno.EEXIST
    assert read(a) == "A" and read(b) == "B"
    assert renameat2(a, b, RENAME_EXCHANGE) == 0
    assert read(a) == "B" and read(b) == "A"
    assert renameat2(a, node.path("c"), RENAME_NOREPLACE) == 0
    assert read(node.path("c")) == "B"
    assert not os.path.exists(a)


def test_sed_find_rm_mkdir(node):
    m = node.mnt
    write(node.path("conf"), "port=1\nhost=a\nport=2\n")
    sh("sed -i 's/port=/PORT=/' conf", cwd=m)
    assert read(node.path("conf")) == "PORT=1\nhost=a\nPORT=2\n"
    sh("mkdir -p x/y/z x/w && touch x/y/z/1 x/y/2 x/w/3", cwd=m)
    found = sorted(sh("find x", cwd=m).stdout.split())
    assert found == ["x", "x/w", "x/w/3", "x/y", "x/y/2", "x/y/z",
                     "x/y/z/1"]
    assert sh("find . -name 2", cwd=m).stdout.split() == ["./x/y/2"]
    r = sh("rmdir x/y", cwd=m, check=False)
    assert r.returncode != 0 and "not empty" in r.stderr.lower()
    sh("rm -r x", cwd=m)
    assert not os.path.exists(node.path("x"))
    assert sorted(os.listdir(m)) == [".cluster", ".snapshots", "conf"]


def test_chmod_chown_touch(node):
    f = node.path("m")
    write(f, "data")
    os.chmod(f, 0o640)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o640
    os.chown(f, 1234, 5678)
    st = os.stat(f)
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    sh("touch -d '2001-02-03 04:05:06 UTC' %s" % f)
    assert int(os.stat(f).st_mtime) == 981173106
    os.utime(f, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(f)
    assert st.st_mtime_ns == 2_000_000_456
    assert st.st_atime_ns == 1_000_000_123
    assert read(f) == "data"
    os.mkdir(node.path("d"), 0o700)
    assert stat.S_IMODE(os.stat(node.path("d")).st_mode) == 0o700
    os.chmod(node.path("d"), 0o1777)
    assert stat.S_IMODE(os.stat(node.path("d")).st_mode) == 0o1777


def test_symlink_readlink(node):
    m = node.mnt
    write(node.path("target"), "T")
    sh("ln -s target l1 && ln -s /nonexistent/abs l2", cwd=m)
    assert os.readlink(node.path("l1")) == "target"
    assert sh("readlink l2", cwd=m).stdout == "/nonexistent/abs\n"
    assert read(node.path("l1")) == "T"
    assert os.path.islink(node.path("l2"))
    assert os.lstat(node.path("l2")).st_size == len("/nonexistent/abs")
    os.unlink(node.path("l1"))
    assert read(node.path("target")) == "T"


def test_truncate(node):
    f = node.path("tr")
    write(f, "0123456789")
    sh("truncate -s 4 %s" % f)
    assert read(f) == "0123"
    sh("truncate -s 8 %s" % f)
    assert read(f, "rb") == b"0123\0\0\0\0"
    with open(f, "r+b") as h:
        h.truncate(2)
    assert read(f, "rb") == b"01"
    # ftruncate on a handle with buffered writes resizes the buffer too
    with open(f, "r+b") as h:
        h.write(b"abcdef")
        h.flush()
        os.ftruncate(h.fileno(), 3)
        assert os.pread(h.fileno(), 10, 0) == b"abc"
    assert read(f, "rb") == b"abc"


def test_atomic_write_never_partial(node):
    f = node.path("atomic.json")
    versions = {}
    for i in range(40):
        body = ("%04d:" % i + "x" * (i * 37 % 3000)).encode()
        versions[hashlib.sha256(body).hexdigest()] = i
        if i == 0:
            with open(f, "wb") as h:
                h.write(body)
    stop = threading.Event()
    bad = []
    seen = set()

    def reader():
        while not stop.is_set():
            try:
                data = read(f, "rb")
            except OSError as e:  # ENOENT/ESTALE would be a bug too
                bad.append(repr(e))
                continue
            h = hashlib.sha256(data).hexdigest()
            if h not in versions:
                bad.append(data[:40])
            else:
                seen.add(versions[h])

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(1, 40):
            body = ("%04d:" % i + "x" * (i * 37 % 3000)).encode()
            tmp = node.path(".atomic.json.tmp%d" % i)
            with open(tmp, "wb") as h:
                h.write(body)
                h.flush()
                os.fsync(h.fileno())
            os.replace(tmp, f)
            time.sleep(0.01)  # let the reader interleave
    finally:
        stop.set()
        t.join()
    assert bad == []
    assert versions[hashlib.sha256(read(f, "rb")).hexdigest()] == 39
    assert len(seen) >= 2
    assert sorted(os.listdir(node.mnt)) == [".cluster", ".snapshots",
                                            "atomic.json"]


def test_appenders_keep_every_line(node):
    """Writes to one file from one mount are applied one after the other,
    each on the content the previous one produced (fs_write.c)."""
    f = node.path("shared.log")
    write(f, "")
    errors = []

    def appender(t):
        try:
            fd = os.open(f, os.O_WRONLY | os.O_APPEND)
            try:
                for i in range(40):
                    line = ("t%02d line %03d " % (t, i)).ljust(63, "x") + "\n"
                    assert os.write(fd, line.encode()) == len(line)
            finally:
                os.close(fd)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=appender, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = read(f).splitlines()
    assert len(lines) == 8 * 40
    assert len(set(lines)) == 8 * 40
    assert all(len(x) == 63 for x in lines)
    for t in range(8):  # each appender's lines in its own order
        mine = [x for x in lines if x.startswith("t%02d " % t)]
        assert mine == sorted(mine)


def test_open_file_outlives_rename_over_and_unlink(node):
    """A process that opened a file reads it as it was, after the name was
    renamed over or unlinked (pages it had not read come from history)."""
    f = node.path("held.conf")
    old = "".join("old line %04d\n" % i for i in range(800))  # > 1 page
    write(f, old)
    h = open(f, "rb")  # opened, nothing read yet: no pages cached
    try:
        tmp = node.path(".held.conf.tmp")
        write(tmp, "new\n")
        os.replace(tmp, f)
        assert read(f) == "new\n"
        assert h.read() == old.encode()
        assert os.fstat(h.fileno()).st_size == len(old)
    finally:
        h.close()
    g = node.path("gone.conf")
    write(g, old)
    h = open(g, "rb")
    try:
        os.unlink(g)
        assert not os.path.exists(g)
        assert h.read() == old.encode()
    finally:
        h.close()


def test_random_ops_match_a_local_filesystem(node, tmp_path):
    """A seeded random mix of the write path's operations (truncating
    writes, appends, writes at offsets, several writes per open, truncate
    to any size, truncation with no write, renames, unlinks) gives the same
    files on the mount as on a local file system, step by step and after a
    clean remount."""
    ref = tmp_path / "ref"
    ref.mkdir()
    rng = random.Random(20261126)
    names = ["k%d" % i for i in range(8)]

    def both(fn):
        errs = []
        for root in (node.mnt, str(ref)):
            try:
                fn(root)
                errs.append(None)
            except OSError as e:
                errs.append(e.errno)
        return errs

    def data():
        return bytes(rng.randrange(32, 127)
                     for _ in range(rng.choice([0, 1, 7, 100, 4095, 4097,
                                                9000])))

    for step in range(300):
        name = rng.choice(names)
        op = rng.randrange(9)
        d, off, size = data(), rng.randrange(0, 10000), rng.randrange(0, 9000)
        if op == 0:  # echo-style
            def fn(root):
                with open(os.path.join(root, name), "wb") as h:
                    h.write(d)
        elif op == 1:  # append
            def fn(root):
                with open(os.path.join(root, name), "ab") as h:
                    h.write(d)
        elif op == 2:  # write at an offset of an existing file
            def fn(root):
                fd = os.open(os.path.join(root, name), os.O_WRONLY)
                try:
                    os.pwrite(fd, d, off)
                finally:
                    os.close(fd)
        elif op == 3:  # several writes in one open
            def fn(root):
                fd = os.open(os.path.join(root, name),
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    for i in range(3):
                        os.write(fd, d[i::3])
                finally:
                    os.close(fd)
        elif op == 4:  # truncate(2) to any size
            def fn(root):
                os.truncate(os.path.join(root, name), size)
        elif op == 5:  # truncation with no write (: > f)
            def fn(root):
                os.close(os.open(os.path.join(root, name),
                                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                 0o644))
        elif op == 6:  # ftruncate, then write
            def fn(root):
                fd = os.open(os.path.join(root, name), os.O_RDWR)
                try:
                    os.ftruncate(fd, size)
                    os.pwrite(fd, d, off % (size + 1))
                finally:
                    os.close(fd)
        elif op == 7:  # rename over another name
            other = rng.choice(names)

            def fn(root):
                os.rename(os.path.join(root, name), os.path.join(root, other))
        else:  # unlink
            def fn(root):
                os.unlink(os.path.join(root, name))
        errs = both(fn)
        assert errs[0] == errs[1], (step, op, name, errs)
        for n in names:
            p = os.path.join(node.mnt, n)
            q = os.path.join(str(ref), n)
            assert os.path.exists(p) == os.path.exists(q), (step, op, n)
            if os.path.exists(q):
                with open(q, "rb") as h:
                    want = h.read()
                assert read(p, "rb") == want, (step, op, n)
                assert os.stat(p).st_size == len(want), (step, op, n)

    want = {n: (ref / n).read_bytes() for n in names if (ref / n).exists()}
    rc = node.unmount_clean()
    assert rc == 0, node.log()
    node.start()
    got = {n: read(node.path(n), "rb") for n in names
           if os.path.exists(node.path(n))}
    assert got == want


def test_64_threads_write_and_read_back(node):
    errors = []
    n_threads, n_files = 64, 8

    def work(t):
        try:
            d = node.path("t%02d" % t)
            os.mkdir(d)
            for i in range(n_files):
                write(os.path.join(d, "f%d" % i), "thread %d file %d\n" % (t, i)
                      * (i + 1))
            for i in range(n_files):
                got = read(os.path.join(d, "f%d" % i))
                if got != "thread %d file %d\n" % (t, i) * (i + 1):
                    errors.append((t, i, got[:40]))
        except Exception as e:  # noqa: BLE001 - report every failure
            errors.append((t, repr(e)))

    threads = [threading.Thread(target=work, args=(t,))
               for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # and all of it again, from a fresh walk
    for t in range(n_threads):
        names = sorted(os.listdir(node.path("t%02d" % t)))
        assert names == ["f%d" % i for i in range(n_files)]


def test_racing_exclusive_creators(node):
    n_threads, rounds = 16, 10
    for r in range(rounds):
        lock = node.path("lock%d" % r)
        winners, losers, other = [], [], []
        barrier = threading.Barrier(n_threads)

        def racer(i):
            barrier.wait()
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                losers.append(i)
                return
            except OSError as e:
                other.append((i, e))
                return
            os.write(fd, b"owner %d" % i)
            os.close(fd)
            winners.append(i)

        ts = [threading.Thread(target=racer, args=(i,))
              for i in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert other == []
        assert len(winners) == 1, (r, winners)
        assert len(losers) == n_threads - 1
        assert read(lock) == "owner %d" % winners[0]


# ------------------------------------------------------------ durability

def make_files(root, n, seed):
    rnd = random.Random(seed)
    want = {}
    for i in range(n):
        sub = os.path.join(root, "d%d" % (i % 5))
        os.makedirs(sub, exist_ok=True)
        p = os.path.join(sub, "f%03d" % i)
        data = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 3000)))
        with open(p, "wb") as f:
            f.write(data)
        want[os.path.relpath(p, root)] = data
    return want


def check_files(root, want):
    for rel, data in want.items():
        with open(os.path.join(root, rel), "rb") as f:
            assert f.read() == data, rel


def test_durable_after_kill9(node):
    want = make_files(node.mnt, 120, 1)
    os.symlink("d0/f000", node.path("sl"))
    os.mkdir(node.path("emptydir"), 0o710)
    rev = node.revision()
    node.kill9()
    assert not os.path.ismount(node.mnt)
    node.start()
    check_files(node.mnt, want)
    assert os.readlink(node.path("sl")) == "d0/f000"
    assert stat.S_IMODE(os.stat(node.path("emptydir")).st_mode) == 0o710
    assert node.revision() == rev
    # and it keeps working after recovery
    write(node.path("after"), "ok")
    assert read(node.path("after")) == "ok"


def _log_end(seg):
    """Offset after the last record of a raft log segment
    (docs/format-log.md: 40-byte header with the data length at 8)."""
    with open(seg, "rb") as f:
        data = f.read()
    off = 0
    while data[off:off + 4] == b"QLOG":
        off += 40 + int.from_bytes(data[off + 8:off + 12], "little")
    return off


def test_torn_tails_recovered_with_a_log_line(node):
    want = make_files(node.mnt, 40, 3)
    rev = node.revision()
    assert node.stop() == 0  # clean: every frame is in the db file
    # A torn frame at the end of the db file, a torn record at the end of
    # the last log segment (right after its last record: the rest of a
    # preallocated segment is zeros).
    db = os.path.join(node.data_dir, "db")
    with open(db, "ab") as f:
        f.write(b"QFDB" + bytes(range(40)))
    logdir = os.path.join(node.data_dir, "log")
    seg = os.path.join(logdir, sorted(n for n in os.listdir(logdir)
                                      if n.startswith("seg-"))[-1])
    end = _log_end(seg)
    with open(seg, "r+b") as f:
        f.seek(end)
        f.write(b"QLOG\x01\x02" + b"\xab" * 20)
    node.start()
    log = node.log()
    assert "dropped a torn tail of 44 bytes" in log, log
    assert "torn tail: truncating 26 bytes" in log, log
    check_files(node.mnt, want)
    assert node.revision() == rev
    write(node.path("after"), "ok")
    assert node.stop() == 0
    node.start()
    assert read(node.path("after")) == "ok"
    check_files(node.mnt, want)


def test_durable_after_clean_unmount(node):
    want = make_files(node.mnt, 60, 2)
    rc = node.unmount_clean()
    assert rc == 0, node.log()
    node.start()
    check_files(node.mnt, want)
    # new writes after a restart work and survive the next one
    write(node.path("after"), "ok")
    sh("echo more >> %s" % node.path("after"))
    rc = node.stop()
    assert rc == 0, node.log()
    node.start()
    check_files(node.mnt, want)
    assert read(node.path("after")) == "okmore\n"


# ------------------------------------------------------------- bad input

def test_efbig(make_node):
    n = make_node().start(["--file-size-max", "4096"])
    f = n.path("big")
    write(f, "a" * 4000)
    rev = n.revision()
    fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    try:
        # The kernel may cut a write that starts inside an uncached page at
        # that page's end (a short write, pending); what would pass the
        # limit fails with EFBIG and discards the whole update.
        data = b"b" * 200
        with pytest.raises(OSError) as e:
            while data:
                data = data[os.write(fd, data):]
        assert e.value.errno == errno.EFBIG
    finally:
        # close() reports the discarded update again
        with pytest.raises(OSError) as e:
            os.close(fd)
        assert e.value.errno == errno.EFBIG
    assert read(f) == "a" * 4000
    assert n.revision() == rev
    # exactly the limit is fine
    write(f, "c" * 4096)
    assert os.stat(f).st_size == 4096
    with pytest.raises(OSError) as e:
        os.truncate(f, 5000)
    assert e.value.errno == errno.EFBIG
    assert read(f) == "c" * 4096


def test_enametoolong(node):
    long_name = "n" * 256
    with pytest.raises(OSError) as e:
        open(node.path(long_name), "w").close()
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:
        os.mkdir(node.path(long_name))
    assert e.value.errno == errno.ENAMETOOLONG
    ok = "n" * 255
    write(node.path(ok), "fine")
    assert read(node.path(ok)) == "fine"
    assert sorted(os.listdir(node.mnt)) == [".cluster", ".snapshots", ok]


def test_reserved_names(node):
    m = node.mnt
    before = snapshot_tree(m)
    rev = node.revision()

    def err(fn, *a):
        with pytest.raises(OSError) as e:
            fn(*a)
        return e.value.errno

    assert err(os.mkdir, node.path(".cluster")) == errno.EEXIST
    assert err(os.mkdir, node.path(".snapshots")) == errno.EEXIST
    assert err(os.rmdir, node.path(".cluster")) == errno.EPERM
    assert err(os.rmdir, node.path(".snapshots")) == errno.EPERM
    os.mkdir(node.path("x"))
    assert err(os.rename, node.path("x"), node.path(".snapshots")) \
        == errno.EPERM
    assert err(os.rename, node.path(".cluster"), node.path("y")) \
        == errno.EPERM
    os.rmdir(node.path("x"))
    # inside: read-only
    assert err(open, node.path(".cluster/status"), "w") == errno.EROFS
    assert err(open, node.path(".cluster/new"), "w") == errno.EROFS
    # inside .snapshots, a view is read-only (mkdir there makes snapshots:
    # tests/e2e/test_snapshots.py)
    assert err(open, node.path(".snapshots/new"), "w") == errno.EROFS
    assert err(os.unlink, node.path(".cluster/leader")) == errno.EROFS
    assert err(os.chmod, node.path(".cluster/leader"), 0o777) == errno.EROFS
    # a name that merely looks similar is fine elsewhere
    os.mkdir(node.path("x"))
    os.mkdir(node.path("x", ".cluster"))
    os.rmdir(node.path("x", ".cluster"))
    os.rmdir(node.path("x"))
    assert snapshot_tree(m) == before
    assert sorted(os.listdir(node.path(".cluster"))) == \
        ["leader", "members", "metrics", "status"]
    assert os.listdir(node.path(".snapshots")) == []
    # the refused operations proposed nothing (6 mkdir/rmdir on x do)
    assert node.revision() == rev + 6


def test_hard_link_of_directory_refused(node):
    # Files have hard links (tests/e2e/test_links.py); directories not.
    os.mkdir(node.path("d"))
    with pytest.raises(OSError) as e:
        os.link(node.path("d"), node.path("b"))
    assert e.value.errno == errno.EPERM
    assert sorted(os.listdir(node.mnt)) == [".cluster", ".snapshots", "d"]
    # (FIFOs, sockets and devices are entries: tests/e2e/test_posix.py)


def test_cluster_files(node):
    st = node.status()
    for key in ("name", "id", "role", "term", "leader", "commit_index",
                "applied_index", "revision", "quorum", "members"):
        assert key in st, key
    assert st["role"] == "leader"
    assert st["name"] == "default"
    assert st["leader"] == "default"
    assert "default" in read(node.path(".cluster/members"))
    assert read(node.path(".cluster/leader")).strip() == "default"
    # fresh content on every open
    write(node.path("bump"), "1")
    r0 = node.status()["revision"]
    write(node.path("bump"), "2")
    assert node.status()["revision"] == r0 + 1


def run_bin(args, timeout=20):
    return subprocess.run([QUORUMFS_BIN] + args, capture_output=True,
                          text=True, timeout=timeout)


def test_mount_missing_dir(make_node, tmp_path):
    n = make_node()
    missing = str(tmp_path / "does-not-exist")
    r = run_bin(["mount", missing, "--data-dir", n.data_dir])
    assert r.returncode != 0
    assert "does-not-exist" in r.stderr or "No such file" in r.stderr, \
        r.stderr
    assert not os.path.exists(missing)


def test_mount_nonempty_dir(make_node, tmp_path):
    n = make_node()
    d = tmp_path / "full"
    d.mkdir()
    (d / "keep").write_text("mine")
    r = run_bin(["mount", str(d), "--data-dir", n.data_dir])
    assert r.returncode != 0
    assert r.stderr.strip() != ""
    assert not os.path.ismount(str(d))
    assert os.listdir(str(d)) == ["keep"]
    assert (d / "keep").read_text() == "mine"


def test_second_node_same_data_dir(node, tmp_path):
    write(node.path("k"), "v")
    other = tmp_path / "other-mnt"
    other.mkdir()
    r = run_bin(["mount", str(other), "--data-dir", node.data_dir, "-f"])
    assert r.returncode != 0
    assert ("lock" in r.stderr.lower() or "in use" in r.stderr.lower()
            or "busy" in r.stderr.lower()), r.stderr
    assert not os.path.ismount(str(other))
    assert read(node.path("k")) == "v"
    assert sorted(os.listdir(node.mnt)) == [".cluster", ".snapshots", "k"]


def test_wrong_node_or_cluster_refused(node, tmp_path):
    """A data dir is bound to its node name and cluster: starting it as
    another node, with another --initial-cluster, or with a name that is not
    a member fails at once with a clear message and changes nothing."""
    write(node.path("k"), "v")
    assert node.stop() == 0
    other = tmp_path / "other-mnt"
    other.mkdir()
    cluster = "n1=127.0.0.1:17001,n2=127.0.0.2:17002,n3=127.0.0.3:17003"
    cases = [
        (["--name", "intruder"], "belongs to node 'default', not 'intruder'"),
        (["--name", "default", "--listen-peer", "127.0.0.1:17009",
          "--initial-cluster", "default=127.0.0.1:17009," + cluster],
         "--initial-cluster names other members than data dir"),
        (["--name", "n4", "--listen-peer", "127.0.0.4:17004",
          "--initial-cluster", cluster], "is not in --initial-cluster"),
    ]
    for args, message in cases:
        r = run_bin(["mount", str(other), "--data-dir", node.data_dir, "-f"]
                    + peer_security_args(args))
        assert r.returncode != 0, args
        assert message in r.stderr, (args, r.stderr)
        assert not os.path.ismount(str(other))
    node.start()
    assert read(node.path("k")) == "v"


def test_statfs(node):
    sv = os.statvfs(node.mnt)
    assert sv.f_namemax == 255
    assert sv.f_blocks > 0
    free0 = sv.f_bfree
    write(node.path("big"), "x" * 500_000)
    assert os.statvfs(node.mnt).f_bfree < free0


def test_daemon_mode_returns_when_ready(make_node):
    n = make_node()
    r = run_bin(["mount", n.mnt, "--data-dir", n.data_dir])
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(n.mnt)
        write(n.path("x"), "y")
        assert read(n.path("x")) == "y"
    finally:
        subprocess.run(["fusermount3", "-u", n.mnt])
    deadline = time.monotonic() + 10
    while os.path.ismount(n.mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.ismount(n.mnt)
    assert os.path.exists(os.path.join(n.data_dir, "quorumfs.log"))



def test_close_to_open(node):
    """After a writer's close() returns, every new open sees the new
    content: read-only opens use FOPEN_NOFLUSH + keep_cache, and a reader
    that keeps an fd open (page cache populated) must not mask it."""
    f = node.path("cto")
    write(f, "v0\n" * 100)
    held = open(f)  # keeps the inode's page cache warm
    try:
        for i in range(1, 40):
            body = ("v%d\n" % i) * (100 + (i % 7) * 50 - (i % 3) * 40)
            write(f, body)
            got = sh("cat %s" % f).stdout  # a separate process
            assert got == body, i
            assert read(f) == body, i
            assert os.stat(f).st_size == len(body), i
            held.seek(0)
            held.read()  # touching the old handle changes nothing
    finally:
        held.close()


def test_linearizable_mount(make_node):
    n = make_node().start(["--consistency", "linearizable"])
    sh("mkdir -p a/b && echo x > a/b/f && cat a/b/f", cwd=n.mnt)
    assert read(n.path("a/b/f")) == "x\n"
    rev = n.revision()
    sh("echo y > a/b/f", cwd=n.mnt)
    assert n.revision() == rev + 1
    assert sorted(os.listdir(n.path("a/b"))) == ["f"]


def test_large_directory_listing(node):
    d = node.path("big")
    os.mkdir(d)
    names = ["entry-%04d-%s" % (i, "x" * (i % 60)) for i in range(600)]
    for n in names:
        with open(os.path.join(d, n), "w"):
            pass
    # many readdir(plus) calls, each continuing from the last name
    assert sorted(os.listdir(d)) == sorted(names)
    assert sh("ls -1 %s | wc -l" % d).stdout.strip() == "600"
    with os.scandir(d) as it:
        seen = [e.name for e in it]
    assert len(seen) == len(set(seen)) == 600
    # removing while listing: every remaining entry is still listed once
    for n in names[::2]:
        os.unlink(os.path.join(d, n))
    assert sorted(os.listdir(d)) == sorted(names[1::2])
    sh("rm -r %s" % d)
    assert not os.path.exists(d)
