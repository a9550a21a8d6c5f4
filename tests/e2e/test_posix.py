"""End-to-end tests of POSIX behaviour where users meet it (issue 11):
special files (FIFOs, sockets, device nodes) as replicated entries, and
the attribute bugs pjdfstest found (O_TRUNC times and size, nlink of an
unlinked open file, a truncation's size after close).

Three-node tests use tests/e2e/cluster.py (127.0.0.1/.2/.3); the others run
one node.
"""

import errno
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

import cluster as qc
from conftest import QUORUMFS_BIN

VISIBLE_TIMEOUT_S = 10.0


def wait_for(pred, timeout=VISIBLE_TIMEOUT_S, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
        except FileNotFoundError:
            v = None
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


# ------------------------------------------------------------ special files

def make_specials(root):
    """A FIFO, a socket (bind), a char and a block device under root/sp;
    returns the expected {name: (type letter, mode, rdev)}."""
    d = os.path.join(root, "sp")
    os.mkdir(d)
    old = os.umask(0)
    try:
        os.mkfifo(os.path.join(d, "fifo"), 0o640)
        os.mknod(os.path.join(d, "chr"), stat.S_IFCHR | 0o600,
                 os.makedev(1, 3))
        os.mknod(os.path.join(d, "blk"), stat.S_IFBLK | 0o660,
                 os.makedev(7, 200))
        os.mknod(os.path.join(d, "sock2"), stat.S_IFSOCK | 0o644)
    finally:
        os.umask(old)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(os.path.join(d, "sock"))
    finally:
        s.close()
    sock_mode = stat.S_IMODE(os.lstat(os.path.join(d, "sock")).st_mode)
    return {
        "fifo": ("p", 0o640, 0),
        "chr": ("c", 0o600, os.makedev(1, 3)),
        "blk": ("b", 0o660, os.makedev(7, 200)),
        "sock2": ("s", 0o644, 0),
        "sock": ("s", sock_mode, 0),
    }


def specials_of(root):
    d = os.path.join(root, "sp")
    out = {}
    for name in os.listdir(d):
        st = os.lstat(os.path.join(d, name))
        m = st.st_mode
        t = ("p" if stat.S_ISFIFO(m) else "s" if stat.S_ISSOCK(m) else
             "c" if stat.S_ISCHR(m) else "b" if stat.S_ISBLK(m) else "?")
        out[name] = (t, stat.S_IMODE(m),
                     st.st_rdev if t in ("c", "b") else 0)
    return out


def dirent_types(root):
    with os.scandir(os.path.join(root, "sp")) as it:
        return {e.name: (e.is_file(follow_symlinks=False),
                         e.is_dir(follow_symlinks=False),
                         e.is_symlink()) for e in it}


def fifo_roundtrip(path):
    """A writer thread and a reader on one FIFO of this host."""
    got = []

    def reader():
        with open(path, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=reader)
    t.start()
    with open(path, "wb") as f:
        f.write(b"through the pipe\n")
    t.join(10)
    assert not t.is_alive(), "FIFO reader hung"
    assert got == [b"through the pipe\n"]


def test_special_files_on_one_node(make_node):
    # -o dev: FUSE mounts are nodev by default (device nodes can be made
    # and listed, not opened); with it the kernel opens them as any device
    n = make_node().start(["-o", "dev"])
    exp = make_specials(n.mnt)
    assert specials_of(n.mnt) == exp
    # none of them is a regular file, a dir or a link in readdir's d_type
    assert all(v == (False, False, False)
               for v in dirent_types(n.mnt).values())
    assert os.stat(n.path("sp", "chr")).st_size == 0
    # the kernel does the I/O: a FIFO works between two local processes,
    # and a socket bound on the mount accepts connections
    fifo_roundtrip(n.path("sp", "fifo"))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(n.path("sp", "live.sock"))
        srv.listen(1)
        cl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cl.connect(n.path("sp", "live.sock"))
        conn, _ = srv.accept()
        cl.sendall(b"hi")
        assert conn.recv(2) == b"hi"
        conn.close()
        cl.close()
    finally:
        srv.close()
    os.unlink(n.path("sp", "live.sock"))
    # the device node is the kernel's: (1, 3) is the null device
    fd = os.open(n.path("sp", "chr"), os.O_RDWR)
    try:
        assert os.write(fd, b"x" * 10) == 10
        assert os.read(fd, 10) == b""
    finally:
        os.close(fd)
    # an existing name, whatever its type
    assert errno_of(os.mkfifo, n.path("sp", "fifo")) == errno.EEXIST
    assert errno_of(os.mkfifo, n.path("sp", "chr")) == errno.EEXIST
    # attributes change like any entry's; truncate is refused by the kernel
    os.chmod(n.path("sp", "fifo"), 0o600)
    os.chown(n.path("sp", "fifo"), 1000, 1000)
    st = os.lstat(n.path("sp", "fifo"))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == \
        (0o600, 1000, 1000)
    assert errno_of(os.truncate, n.path("sp", "fifo"), 0) == errno.EINVAL
    # rename and unlink
    os.rename(n.path("sp", "sock2"), n.path("sp", "sock3"))
    os.unlink(n.path("sp", "sock3"))
    assert not os.path.lexists(n.path("sp", "sock3"))
    # O_CREAT of an existing FIFO opens it (no CREATE of a regular file)
    fd = os.open(n.path("sp", "fifo"), os.O_RDONLY | os.O_CREAT |
                 os.O_NONBLOCK, 0o644)
    os.close(fd)
    assert stat.S_ISFIFO(os.lstat(n.path("sp", "fifo")).st_mode)


def test_device_nodes_need_cap_mknod(make_node):
    """The VFS checks CAP_MKNOD before the request reaches the daemon; a
    FIFO needs no privilege. (allow_other: another user may use the
    mount; the child works from inside it, the test's tmp dir is 0700.)"""
    n = make_node().start(["-o", "allow_other"])
    os.chmod(n.mnt, 0o777)
    pid = os.fork()
    if pid == 0:  # child: an unprivileged user
        code = 0
        try:
            os.chdir(n.mnt)
            os.setgid(65534)
            os.setuid(65534)
            try:
                os.mknod("dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
                code = 2
            except PermissionError:
                pass
            os.mkfifo("userfifo", 0o600)
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, os.WEXITSTATUS(status)
    assert not os.path.lexists(n.path("dev"))
    st = os.lstat(n.path("userfifo"))
    assert stat.S_ISFIFO(st.st_mode) and st.st_uid == 65534


def test_special_files_replicated_restart_snapshot(make_cluster):
    c = make_cluster()
    c.start()
    n1, n2, n3 = c.nodes
    exp = make_specials(n1.mnt)
    rev_made = n1.revision()
    for n in (n2, n3):
        wait_for(lambda n=n: specials_of(n.mnt) == exp,
                 what="special files on " + n.name)
    t = c.assert_same_trees()
    assert t["sp/fifo"] == ("p", 0o640, None)
    assert t["sp/chr"] == ("c", 0o600, os.makedev(1, 3))
    # a FIFO made elsewhere works for a local writer and reader
    fifo_roundtrip(n2.path("sp", "fifo"))
    # a named snapshot and @REV history show them, on every node
    os.mkdir(n1.path(".snapshots", "specials"))
    for n in c.nodes:
        wait_for(lambda n=n: os.path.isdir(n.path(".snapshots", "specials")),
                 what="snapshot on " + n.name)
        assert specials_of(n.path(".snapshots", "specials")) == exp
    assert specials_of(n3.path(".snapshots", "@%d" % rev_made)) == exp
    # removed, then restored from the snapshot: the same types and rdevs
    for name in exp:
        os.unlink(n2.path("sp", name))
    wait_for(lambda: os.listdir(n3.path("sp")) == [], what="removal on n3")
    r = subprocess.run([QUORUMFS_BIN, "restore", "specials", "/sp",
                        "--data-dir", n1.data_dir],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for n in c.nodes:
        wait_for(lambda n=n: specials_of(n.mnt) == exp,
                 what="restored special files on " + n.name)
    # every node restarted: from its db file and log
    for n in c.nodes:
        n.stop()
    c.start()
    for n in c.nodes:
        assert specials_of(n.mnt) == exp, n.name
        assert specials_of(n.path(".snapshots", "specials")) == exp
    fifo_roundtrip(n3.path("sp", "fifo"))



def test_special_files_reach_a_follower_by_snapshot_image(make_cluster):
    """A wiped follower catches up through InstallSnapshot: the image
    carries the special files' types, modes and device numbers."""
    c = make_cluster(extra_args=["--snapshot-entries", "50"])
    ld = c.start()
    f = c.followers(ld)[0]
    c.kill9(f)
    shutil.rmtree(f.data_dir)
    os.makedirs(f.data_dir)
    exp = make_specials(ld.mnt)
    for i in range(120):  # past what the leader keeps in its log
        qc.write_file(ld.path("w-%02d" % i), b"%d\n" % i)
    off = c.restart(f, "existing")
    c.assert_caught_up_by_snapshot(f, off, {})
    assert specials_of(f.mnt) == exp
    fifo_roundtrip(f.path("sp", "fifo"))

# ------------------------------------------------ attributes (pjdfstest)

def fstest(*code):
    """Run python code in a process of its own (as pjdfstest's fstest
    runs each step), returning its stdout."""
    r = subprocess.run([sys.executable, "-c", "import os, sys\n" +
                        "\n".join(code)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def stat_of(path):
    out = fstest("s = os.stat(%r)" % path,
                 "print(s.st_size, s.st_mtime_ns, s.st_ctime_ns)")
    return tuple(int(x) for x in out.split())


@pytest.fixture(params=["single", "follower"])
def where(request):
    """The mount a test runs on: one node, or a follower of three (only
    the fixture in use is set up: the cluster's teardown checks that no
    mount is left under the test's directory)."""
    if request.param == "single":
        return request.getfixturevalue("make_node")().start()
    c = request.getfixturevalue("make_cluster")()
    c.start()
    return c.followers()[0]


def test_o_trunc_times_and_size(where):
    """pjdfstest open/00 #43-45: open(O_TRUNC) of an existing file marks
    mtime and ctime, and stat right after it shows size 0."""
    p = where.path("t")
    subprocess.run(["bash", "-c", "echo test > %s" % p], check=True)
    size1, mtime1, ctime1 = stat_of(p)
    assert size1 == 5
    time.sleep(1.05)
    fstest("os.close(os.open(%r, os.O_WRONLY | os.O_TRUNC))" % p)
    size2, mtime2, ctime2 = stat_of(p)
    assert size2 == 0
    assert mtime2 // 10**9 > mtime1 // 10**9
    assert ctime2 // 10**9 > ctime1 // 10**9
    # and after the commit (the settle timer): the same, times not older
    time.sleep(1.5)
    size3, mtime3, ctime3 = stat_of(p)
    assert (size3, mtime3 >= mtime2, ctime3 >= ctime2) == (0, True, True)


def test_unlinked_open_file_has_no_links(where):
    """pjdfstest unlink/14 #4: fstat of an unlinked, still open file."""
    for mode in ("created", "written", "existing"):
        p = where.path("u-" + mode)
        if mode == "existing":
            qc.write_file(p, "x")
            fd = os.open(p, os.O_RDONLY)
        else:
            fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
            if mode == "written":
                os.write(fd, b"abc")
        try:
            assert os.fstat(fd).st_nlink == 1
            os.unlink(p)
            assert os.fstat(fd).st_nlink == 0, mode
        finally:
            os.close(fd)



def test_unlinked_file_keeps_its_pending_writes(where):
    """pjdfstest unlink/14 #6: a file written and then unlinked while open
    reads back what was written through that descriptor (until the close
    drops it, docs/consistency.md)."""
    for fresh in (True, False):
        p = where.path("uw-%s" % fresh)
        if not fresh:
            fstest("os.close(os.open(%r, os.O_CREAT | os.O_WRONLY, 0o644))"
                   % p)
        fd = os.open(p, os.O_RDWR | (os.O_CREAT if fresh else 0), 0o644)
        try:
            os.write(fd, b"Hello,_World!")
            os.unlink(p)
            assert os.pread(fd, 13, 0) == b"Hello,_World!", fresh
            st = os.fstat(fd)
            assert (st.st_size, st.st_nlink) == (13, 0), fresh
        finally:
            os.close(fd)
        assert not os.path.lexists(p)

def test_truncate_up_then_down_then_close(where):
    """ftruncate(100000), ftruncate(0), close: every stat after the close
    shows 0 (it showed 100000 for ~0.3 s)."""
    for i in range(5):
        p = where.path("ft%d" % i)
        if i % 2:
            qc.write_file(p, "previous content\n")
        fstest("fd = os.open(%r, os.O_CREAT | os.O_RDWR, 0o644)" % p,
               "os.ftruncate(fd, 100000)", "os.ftruncate(fd, 0)",
               "os.close(fd)")
        sizes = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:
            sizes.add(os.stat(p).st_size)
            time.sleep(0.01)
        assert sizes == {0}, (i, sizes)
