"""End-to-end tests of hard links (link(2); docs/consistency.md "Hard links").

One node: POSIX behaviour of link, unlink and rename with several names of
one inode (st_ino, nlink, ctime, errors, the reserved trees). Three nodes
(tests/e2e/cluster.py): a link made on one node seen on the others, a write
through one name seen through the other elsewhere, the primary name
removed, a restart, /.snapshots views, `quorumfs restore` and a wiped
follower repaired by a snapshot image. Expected values are computed by the
tests, never read back from the filesystem under test.
"""

import errno
import os
import shutil
import stat
import subprocess
import threading
import time

import cluster as qc
from cluster import wait_for
from conftest import QUORUMFS_BIN



def q(*args):
    r = subprocess.run([QUORUMFS_BIN] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def errno_of(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    return 0




def read(path):
    with open(path, "rb") as f:
        return f.read()


def same_file(p1, p2, nlink):
    s1, s2 = os.lstat(p1), os.lstat(p2)
    return (s1.st_ino == s2.st_ino and s1.st_nlink == nlink and
            s2.st_nlink == nlink)


# ------------------------------------------------------------ one node

def test_link_posix(make_node):
    n = make_node().start()
    m = n.mnt
    os.mkdir(os.path.join(m, "d"))
    a, b = os.path.join(m, "a"), os.path.join(m, "d", "b")
    qc.write_file(a, b"one\n")
    st0 = os.stat(a)
    assert st0.st_nlink == 1
    time.sleep(0.02)
    os.link(a, b)  # across directories of the mount
    sa, sb = os.stat(a), os.stat(b)
    assert sa.st_ino == sb.st_ino == st0.st_ino
    assert sa.st_nlink == 2 and sb.st_nlink == 2
    assert sa.st_ctime_ns > st0.st_ctime_ns  # the inode's ctime
    assert sa.st_mtime_ns == st0.st_mtime_ns
    assert read(b) == b"one\n"

    # errors
    assert errno_of(os.link, a, b) == errno.EEXIST
    assert errno_of(os.link, a, os.path.join(m, "d")) == errno.EEXIST
    assert errno_of(os.link, os.path.join(m, "d"),
                    os.path.join(m, "dd")) == errno.EPERM
    assert errno_of(os.link, os.path.join(m, "nope"),
                    os.path.join(m, "x")) == errno.ENOENT
    assert errno_of(os.link, a, os.path.join(m, "nodir", "x")) == errno.ENOENT
    assert errno_of(os.link, a, os.path.join(m, "a", "x")) == errno.ENOTDIR
    assert errno_of(os.link, os.path.join(m, "a", "x"),
                    os.path.join(m, "y")) == errno.ENOTDIR
    assert errno_of(os.link, a, os.path.join(m, ".snapshots", "x")) in (
        errno.EROFS, errno.EPERM, errno.EXDEV)
    assert errno_of(os.link, a, os.path.join(m, ".cluster", "x")) == \
        errno.EROFS
    assert errno_of(os.link, os.path.join(m, ".cluster", "status"),
                    os.path.join(m, "st")) == errno.EPERM
    assert errno_of(os.link, a, os.path.join(m, ".snapshots")) == errno.EEXIST
    os.mkdir(os.path.join(m, ".snapshots", "s"))
    assert errno_of(os.link, os.path.join(m, ".snapshots", "s", "a"),
                    os.path.join(m, "from-snap")) == errno.EROFS
    assert errno_of(os.link, a, os.path.join(m, ".snapshots", "s", "x")) == \
        errno.EROFS
    os.rmdir(os.path.join(m, ".snapshots", "s"))
    assert sorted(os.listdir(m)) == [".cluster", ".snapshots", "a", "d"]

    # a write (close-to-commit) and a chmod through one name: both names
    qc.write_file(b, b"two, longer\n")
    assert read(a) == b"two, longer\n"
    assert os.stat(a).st_size == len(b"two, longer\n")
    os.chmod(a, 0o600)
    assert stat.S_IMODE(os.stat(b).st_mode) == 0o600
    with open(a, "ab") as f:  # appends through the other name
        f.write(b"more\n")
    assert read(b) == b"two, longer\nmore\n"

    # symlinks, FIFOs and sockets have names too
    os.symlink("a", os.path.join(m, "sl"))
    os.link(os.path.join(m, "sl"), os.path.join(m, "d", "sl2"),
            follow_symlinks=False)
    assert os.readlink(os.path.join(m, "d", "sl2")) == "a"
    assert same_file(os.path.join(m, "sl"), os.path.join(m, "d", "sl2"), 2)
    os.mkfifo(os.path.join(m, "fifo"))
    os.link(os.path.join(m, "fifo"), os.path.join(m, "d", "fifo2"))
    assert stat.S_ISFIFO(os.lstat(os.path.join(m, "d", "fifo2")).st_mode)
    assert same_file(os.path.join(m, "fifo"), os.path.join(m, "d", "fifo2"),
                     2)

    # unlink the primary name: the content stays under the other, nlink
    # and ctime change at once (pjdfstest checks right after the call)
    c = os.path.join(m, "c")
    os.link(b, c)
    assert os.stat(a).st_nlink == 3
    ct = os.stat(b).st_ctime_ns
    time.sleep(0.02)
    os.unlink(a)
    assert not os.path.exists(a)
    sb = os.stat(b)
    assert sb.st_nlink == 2 and os.stat(c).st_nlink == 2
    assert sb.st_ctime_ns > ct
    assert read(b) == b"two, longer\nmore\n"
    assert sorted(os.listdir(os.path.join(m, "d"))) == ["b", "fifo2", "sl2"]

    # rename onto another name of the same inode: nothing, 0
    os.rename(b, c)
    assert os.path.exists(b) and os.path.exists(c)
    assert same_file(b, c, 2)
    # rename of a name, and over a multiply-linked name
    ct = os.stat(b).st_ctime_ns
    time.sleep(0.02)
    os.rename(c, os.path.join(m, "c2"))
    assert same_file(b, os.path.join(m, "c2"), 2)
    assert os.stat(os.path.join(m, "c2")).st_ctime_ns > ct
    assert os.stat(b).st_ctime_ns > ct
    qc.write_file(os.path.join(m, "x"), b"x\n")
    os.rename(os.path.join(m, "x"), b)  # replaces one name of the file
    assert read(b) == b"x\n"
    assert os.stat(os.path.join(m, "c2")).st_nlink == 1
    assert read(os.path.join(m, "c2")) == b"two, longer\nmore\n"
    # the last name: the file goes
    os.unlink(os.path.join(m, "c2"))
    assert sorted(os.listdir(m)) == [".cluster", ".snapshots", "c", "d",
                                     "fifo", "sl"] or \
        sorted(os.listdir(m)) == [".cluster", ".snapshots", "d", "fifo", "sl"]


def fresh(code):
    """Run python code in a process of its own (as pjdfstest's fstest)."""
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_pjdfstest_shapes(make_node):
    """link/00, unlink/00 #108-110: nlink and ctime right after each call,
    each call and each stat from a new process."""
    n = make_node().start()
    n0, n1, n2 = n.path("n0"), n.path("n1"), n.path("n2")
    st = "import os; s = os.lstat(%r); print(s.st_nlink, s.st_ctime_ns)"
    fresh("open(%r, 'w').close()" % n0)
    assert fresh(st % n0).split()[0] == "1"
    fresh("import os; os.link(%r, %r)" % (n0, n1))
    assert fresh(st % n0).split()[0] == "2"
    assert fresh(st % n1).split()[0] == "2"
    fresh("import os; os.link(%r, %r)" % (n1, n2))
    for p in (n0, n1, n2):
        assert fresh(st % p).split()[0] == "3"
    fresh("import os; os.chmod(%r, 0o201); os.chown(%r, 65534, 65533)"
          % (n1, n1))
    s = os.lstat(n0)
    assert (stat.S_IMODE(s.st_mode), s.st_nlink, s.st_uid, s.st_gid) == \
        (0o201, 3, 65534, 65533)
    ct = int(fresh(st % n0).split()[1])
    time.sleep(0.05)
    fresh("import os; os.unlink(%r)" % n2)
    nl, ct2 = fresh(st % n0).split()
    assert nl == "2" and int(ct2) > ct
    fresh("import os; os.unlink(%r)" % n0)
    assert fresh("import os; print(os.path.lexists(%r))" % n0) == "False"
    s = os.lstat(n1)
    assert (stat.S_IMODE(s.st_mode), s.st_nlink, s.st_uid, s.st_gid) == \
        (0o201, 1, 65534, 65533)


def test_link_of_a_file_being_written(make_node):
    """A new file of this mount not committed yet (open, or empty and
    closed): the link commits it first."""
    n = make_node().start()
    fd = os.open(n.path("w"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"first ")
    os.link(n.path("w"), n.path("w2"))
    assert same_file(n.path("w"), n.path("w2"), 2)
    os.write(fd, b"second\n")
    os.close(fd)
    assert read(n.path("w2")) == b"first second\n"
    open(n.path("e"), "w").close()
    os.link(n.path("e"), n.path("e2"))
    assert same_file(n.path("e"), n.path("e2"), 2)
    assert read(n.path("e2")) == b""


def test_new_file_renamed_over_a_linked_name(make_node):
    """A new file written and renamed over a name that has another name
    (write-temp-then-rename, its commit carrying the rename) takes the
    name as rename(2) does: the other name keeps the old inode and its
    content. An O_EXCL temp file (mkstemp) likewise, and it keeps the
    st_ino it had from its open."""
    n = make_node().start()
    for flags in (os.O_CREAT | os.O_TRUNC, os.O_CREAT | os.O_EXCL):
        tgt, other, tmp = n.path("conf"), n.path("conf.bak"), n.path("tmp")
        with open(tgt, "wb") as f:
            f.write(b"old\n")
        os.link(tgt, other)
        old_ino = os.stat(tgt).st_ino
        fd = os.open(tmp, os.O_WRONLY | flags, 0o644)
        os.write(fd, b"new\n")
        tmp_ino = os.fstat(fd).st_ino
        os.rename(tmp, tgt)  # by its writer: the commit, at the target
        os.close(fd)
        assert read(tgt) == b"new\n" and read(other) == b"old\n"
        assert os.stat(other).st_ino == old_ino
        assert os.stat(other).st_nlink == 1 and os.stat(tgt).st_nlink == 1
        if flags & os.O_EXCL:
            assert os.stat(tgt).st_ino == tmp_ino
        os.unlink(other)
        os.unlink(tgt)


def test_copy_tools_keep_links(make_node):
    """cp -a and tar copy a tree holding two names of one file (they
    failed with EPERM before: docs/consistency.md)."""
    n = make_node().start()
    os.makedirs(n.path("src", "sub"))
    qc.write_file(n.path("src", "f"), b"shared\n")
    os.link(n.path("src", "f"), n.path("src", "sub", "g"))
    subprocess.run(["cp", "-a", n.path("src"), n.path("cp")], check=True)
    assert same_file(n.path("cp", "f"), n.path("cp", "sub", "g"), 2)
    assert os.stat(n.path("cp", "f")).st_ino != os.stat(n.path("src", "f")).st_ino
    tar = subprocess.run(["tar", "-C", n.path("src"), "-cf", "-", "."],
                         check=True, capture_output=True).stdout
    os.mkdir(n.path("tar"))
    subprocess.run(["tar", "-C", n.path("tar"), "-xf", "-"], input=tar,
                   check=True)
    assert same_file(n.path("tar", "f"), n.path("tar", "sub", "g"), 2)
    assert read(n.path("tar", "sub", "g")) == b"shared\n"


def test_link_linearizable(make_node):
    """Linearizable mode hands out store inos: the same paths work."""
    n = make_node().start(["--consistency", "linearizable"])
    qc.write_file(n.path("a"), b"x\n")
    os.link(n.path("a"), n.path("b"))
    assert same_file(n.path("a"), n.path("b"), 2)
    qc.write_file(n.path("b"), b"yy\n")
    assert read(n.path("a")) == b"yy\n"
    os.unlink(n.path("a"))
    assert os.stat(n.path("b")).st_nlink == 1
    assert read(n.path("b")) == b"yy\n"


def test_link_survives_restart_single(make_node):
    n = make_node().start()
    qc.write_file(n.path("a"), b"keep\n")
    os.link(n.path("a"), n.path("b"))
    ino = os.stat(n.path("a")).st_ino
    n.restart()
    assert same_file(n.path("a"), n.path("b"), 2)
    assert os.stat(n.path("b")).st_ino == ino
    os.unlink(n.path("a"))  # after a replay: the index was rebuilt
    assert read(n.path("b")) == b"keep\n"
    assert os.stat(n.path("b")).st_nlink == 1


def watch_lines(node, since, want, prefix=None):
    """The first `want` lines of `quorumfs watch --since since [prefix]`."""
    args = [QUORUMFS_BIN, "watch", "--since", str(since),
            "--data-dir", node.data_dir]
    if prefix is not None:
        args.insert(2, prefix)
    p = subprocess.Popen(args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = []

    def reader():
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if len(lines) >= want:
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(10)
    p.kill()
    p.wait()
    return lines


def test_watch_reports_every_name(make_node):
    n = make_node().start()
    os.mkdir(n.path("app"))
    os.mkdir(n.path("etc"))
    qc.write_file(n.path("app", "a"), b"1\n")
    r0 = n.revision()
    os.link(n.path("app", "a"), n.path("etc", "b"))
    qc.write_file(n.path("etc", "b"), b"2\n")
    os.chmod(n.path("app", "a"), 0o600)
    r = n.revision()
    assert r == r0 + 3
    assert watch_lines(n, r0 + 1, 5) == [
        "%d link /app/a -> /etc/b" % (r0 + 1),
        "%d write /app/a" % (r0 + 2),
        "%d write /etc/b" % (r0 + 2),
        "%d setattr /app/a" % (r0 + 3),
        "%d setattr /etc/b" % (r0 + 3),
    ]
    # a watcher of /etc sees the change of the file through its name there
    assert watch_lines(n, r0 + 1, 3, "/etc") == [
        "%d link /app/a -> /etc/b" % (r0 + 1),
        "%d write /etc/b" % (r0 + 2),
        "%d setattr /etc/b" % (r0 + 3),
    ]


# ------------------------------------------------------------ three nodes

def test_links_on_three_nodes(make_cluster, tmp_path):
    c = make_cluster(extra_args=["--snapshot-entries", "50"])
    c.start()
    n1, n2, n3 = c.nodes
    os.mkdir(n1.path("app"))
    os.mkdir(n1.path("etc"))
    qc.write_file(n1.path("app", "a.conf"), b"v1\n")
    os.link(n1.path("app", "a.conf"), n1.path("etc", "b.conf"))

    # seen on the other nodes: one inode, both names, nlink 2 (n3 writes
    # through it next, so it must have applied the link too: a follower's
    # tree may be a few entries behind, serializable)
    for n in (n2, n3):
        wait_for(lambda n=n: os.path.exists(n.path("etc", "b.conf")),
                 "link on " + n.name)
    assert same_file(n2.path("app", "a.conf"), n2.path("etc", "b.conf"), 2)
    assert read(n2.path("etc", "b.conf")) == b"v1\n"

    # a write through one name on n3, seen through the other on n2
    qc.write_file(n3.path("etc", "b.conf"), b"v2 from n3\n")
    wait_for(lambda: read(n2.path("app", "a.conf")) == b"v2 from n3\n",
             "write through the other name on n2")
    assert os.stat(n2.path("app", "a.conf")).st_size == len(b"v2 from n3\n")
    os.chmod(n2.path("app", "a.conf"), 0o640)
    wait_for(lambda: stat.S_IMODE(os.stat(n1.path("etc", "b.conf")).st_mode)
             == 0o640, "chmod through the other name on n1")

    # a named snapshot with two names, then the primary name goes (n2)
    os.mkdir(n1.path(".snapshots", "two"))
    os.link(n1.path("app", "a.conf"), n1.path("app", "c.conf"))
    os.unlink(n2.path("app", "a.conf"))
    for n in (n1, n3):
        wait_for(lambda n=n: not os.path.exists(n.path("app", "a.conf")),
                 "unlink on " + n.name)
        assert read(n.path("etc", "b.conf")) == b"v2 from n3\n"
        assert same_file(n.path("etc", "b.conf"), n.path("app", "c.conf"), 2)
    t = c.assert_same_trees()
    assert t["etc/b.conf"][2] == b"v2 from n3\n"

    # the snapshot view: both names, one inode, nlink 2, on every node
    for n in c.nodes:
        s = n.path(".snapshots", "two")
        assert same_file(os.path.join(s, "app", "a.conf"),
                         os.path.join(s, "etc", "b.conf"), 2)
        assert read(os.path.join(s, "app", "a.conf")) == b"v2 from n3\n"
        assert not os.path.exists(os.path.join(s, "app", "c.conf"))

    # a restart: replayed from the db file and the log
    n3.stop()
    c.restart(n3)
    assert same_file(n3.path("etc", "b.conf"), n3.path("app", "c.conf"), 2)
    c.assert_same_trees()

    # restore the snapshot (whole tree): the names as they were
    q("restore", "two", "--data-dir", n1.data_dir)
    for n in c.nodes:
        wait_for(lambda n=n: os.path.exists(n.path("app", "a.conf")) and
                 not os.path.exists(n.path("app", "c.conf")),
                 "restore on " + n.name)
        assert same_file(n.path("app", "a.conf"), n.path("etc", "b.conf"), 2)
    c.assert_same_trees()

    # a subtree restore keeps names outside it: /etc/b.conf stays a name
    # of the file restored under /app
    os.link(n1.path("etc", "b.conf"), n1.path("app", "late"))
    qc.write_file(n1.path("app", "a.conf"), b"v3\n")
    q("restore", "two", "/app", "--data-dir", n2.data_dir)
    for n in c.nodes:
        wait_for(lambda n=n: not os.path.exists(n.path("app", "late")),
                 "subtree restore on " + n.name)
        assert read(n.path("etc", "b.conf")) == b"v2 from n3\n"
        assert same_file(n.path("app", "a.conf"), n.path("etc", "b.conf"), 2)

    # a wiped follower is repaired by a snapshot image: the links too
    ld = c.leader()
    f = c.followers(ld)[0]
    c.kill9(f)
    shutil.rmtree(f.data_dir)
    os.makedirs(f.data_dir)
    for i in range(150):  # past the leader's compacted log
        qc.write_file(ld.path("app", "w%03d" % i), b"%d\n" % i)
    os.link(ld.path("app", "w000"), ld.path("etc", "w00.link"))
    off = c.restart(f, "existing")
    c.assert_caught_up_by_snapshot(f, off, {})
    assert same_file(f.path("app", "a.conf"), f.path("etc", "b.conf"), 2)
    assert same_file(f.path("app", "w000"), f.path("etc", "w00.link"), 2)
    os.unlink(f.path("app", "w000"))  # the index was rebuilt from the image
    for n in c.nodes:
        wait_for(lambda n=n: not os.path.exists(n.path("app", "w000")),
                 "unlink on " + n.name)
        assert read(n.path("etc", "w00.link")) == b"0\n"
        assert os.stat(n.path("etc", "w00.link")).st_nlink == 1

    # a snapshot file (quorumfs snapshot save / restore) keeps them
    snap = str(tmp_path / "links.qfs")
    q("snapshot", "save", snap, "--data-dir", c.leader().data_dir)
    want = c.assert_same_trees()
    for n in c.nodes:
        n.stop()
    for n in c.nodes:
        shutil.rmtree(n.data_dir)
        q("snapshot", "restore", snap, "--data-dir", n.data_dir, "--name",
          n.name, "--initial-cluster", c.initial)
    c.start()
    got = c.assert_same_trees()
    assert qc.tree_diff(want, got) == []
    assert same_file(n1.path("app", "a.conf"), n1.path("etc", "b.conf"), 2)
