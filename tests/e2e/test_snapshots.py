"""End-to-end tests of snapshots (issue 5): /.snapshots views on every node,
read-only enforcement, @REV history, restore (CLI and cp -a / rsync),
snapshot files for disaster recovery, and crashes during db compaction.

Three-node tests use tests/e2e/cluster.py (127.0.0.1/.2/.3); the others run
one node. Expected trees are computed in the tests, never read back from the
filesystem under test.
"""

import errno
import os
import random
import shutil
import stat
import subprocess
import threading
import time

import pytest

import cluster as qc
from cluster import wait_for
from conftest import QUORUMFS_BIN



def q(*args, check=True):
    """Run the quorumfs CLI; returns the CompletedProcess."""
    r = subprocess.run([QUORUMFS_BIN] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError("quorumfs %s failed (%d): %s%s"
                             % (" ".join(map(str, args)), r.returncode,
                                r.stdout, r.stderr))
    return r




def fill(root, files):
    """files: {rel: content (str) | ('l', target) | ('d', mode)}."""
    for rel, v in sorted(files.items()):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if isinstance(v, tuple) and v[0] == "l":
            os.symlink(v[1], p)
        elif isinstance(v, tuple) and v[0] == "d":
            os.makedirs(p, exist_ok=True)
            os.chmod(p, v[1])
        else:
            qc.write_file(p, v)


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


BASE = {
    "app/a.conf": "alpha\n",
    "app/b.conf": "beta\n",
    "app/sub/c.txt": "gamma\n",
    "app/link": ("l", "a.conf"),
    "etc/hosts": "127.0.0.1 localhost\n",
}


# ------------------------------------------------------------ three nodes

def test_snapshot_keeps_old_tree_on_all_nodes(make_cluster):
    c = make_cluster()
    c.start()
    n1, n2, n3 = c.nodes
    fill(n1.mnt, BASE)
    os.chmod(n1.path("app", "b.conf"), 0o600)
    before = c.assert_same_trees()
    t0 = time.time()
    os.mkdir(n1.path(".snapshots", "s1"))
    # Replicated: every mount lists it, a duplicate is EEXIST anywhere.
    for n in c.nodes:
        wait_for(lambda n=n: "s1" in os.listdir(n.path(".snapshots")),
                 what="s1 on " + n.name)
    assert errno_of(os.mkdir, n3.path(".snapshots", "s1")) == errno.EEXIST
    st = os.stat(n2.path(".snapshots", "s1"))
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o555
    assert abs(st.st_mtime - t0) < 30

    # Modify, delete and create on other nodes.
    qc.write_file(n2.path("app", "a.conf"), "ALPHA changed\n")
    os.unlink(n3.path("app", "b.conf"))
    shutil.rmtree(n2.path("app", "sub"))
    qc.write_file(n1.path("app", "new.conf"), "new\n")
    os.chmod(n1.path("etc", "hosts"), 0o600)
    after = c.assert_same_trees()
    assert after != before

    for n in c.nodes:
        got = qc.tree(n.path(".snapshots", "s1"))
        assert qc.tree_diff(before, got) == [], n.name
        assert os.readlink(n.path(".snapshots", "s1", "app", "link")) \
            == "a.conf"

    # diff -r shows exactly the changes (and the reserved dirs).
    r = subprocess.run(["diff", "-r", n3.path(".snapshots", "s1"), n3.mnt],
                       capture_output=True, text=True)
    assert r.returncode == 1
    lines = sorted(l for l in r.stdout.splitlines()
                   if l.startswith(("Only in", "diff -r")))
    snap = n3.path(".snapshots", "s1")
    expect = sorted([
        "Only in %s: .cluster" % n3.mnt,
        "Only in %s: .snapshots" % n3.mnt,
        "Only in %s/app: b.conf" % snap,
        "Only in %s/app: sub" % snap,
        "Only in %s/app: new.conf" % n3.mnt,
        "diff -r %s/app/a.conf %s/app/a.conf" % (snap, n3.mnt),
        "diff -r %s/app/link %s/app/link" % (snap, n3.mnt),
    ])
    assert lines == expect, r.stdout
    assert "< alpha" in r.stdout and "> ALPHA changed" in r.stdout

    # Restore of a subtree (one proposal), then of the whole tree.
    q("restore", "s1", "/app", "--data-dir", n2.data_dir)
    t = c.assert_same_trees()
    exp = dict(after)
    for k in list(exp):
        if k == "app" or k.startswith("app/"):
            del exp[k]
    exp.update({k: v for k, v in before.items()
                if k == "app" or k.startswith("app/")})
    assert qc.tree_diff(exp, t) == []
    assert t["etc/hosts"][1] == 0o600  # outside PATH: untouched
    q("restore", "s1", "--data-dir", n3.data_dir)
    t = c.assert_same_trees()
    assert qc.tree_diff(before, t) == []

    # rmdir drops it everywhere.
    os.rmdir(n3.path(".snapshots", "s1"))
    for n in c.nodes:
        wait_for(lambda n=n: "s1" not in os.listdir(n.path(".snapshots")),
                 what="s1 gone on " + n.name)
    assert errno_of(os.rmdir, n1.path(".snapshots", "s1")) == errno.ENOENT


def test_disaster_recovery_from_snapshot_file(make_cluster, tmp_path):
    c = make_cluster()
    c.start()
    n1 = c.nodes[0]
    files = dict(BASE)
    for i in range(50):
        files["data/f%02d" % i] = "value %d\n" % i * (i + 1)
    fill(n1.mnt, files)
    os.chmod(n1.path("data", "f07"), 0o640)
    os.mkdir(n1.path(".snapshots", "before-disaster"))
    want = c.assert_same_trees()
    leader = c.leader()
    snap = str(tmp_path / "backup.qfs")
    out = q("snapshot", "save", snap, "--data-dir", leader.data_dir).stdout
    assert "saved" in out
    st = q("snapshot", "status", snap, "--json").stdout
    import json
    info = json.loads(st)
    assert info["ok"] and info["checksum_verified"]
    assert info["keys"] == len(want)
    assert info["revision"] == leader.revision()
    assert sorted(m["name"] for m in info["members"]) == ["n1", "n2", "n3"]

    # Corrupted and truncated copies are refused; the target is untouched.
    data = open(snap, "rb").read()
    bad = str(tmp_path / "bad.qfs")
    for damaged in (data[:len(data) // 2],
                    data[:100] + bytes([data[100] ^ 0x10]) + data[101:]):
        with open(bad, "wb") as f:
            f.write(damaged)
        target = str(tmp_path / "never")
        r = q("snapshot", "restore", bad, "--data-dir", target, "--name",
              "n1", "--initial-cluster", c.initial, check=False)
        assert r.returncode != 0
        assert "truncated" in r.stderr or "checksum" in r.stderr, r.stderr
        assert not os.path.exists(target)
        assert not os.path.exists(target + ".tmp")
        assert q("snapshot", "status", bad, check=False).returncode != 0

    # Disaster: stop every node, delete every data dir.
    for n in c.nodes:
        n.stop()
    for n in c.nodes:
        shutil.rmtree(n.data_dir)
    for n in c.nodes:
        q("snapshot", "restore", snap, "--data-dir", n.data_dir, "--name",
          n.name, "--initial-cluster", c.initial)
    # A non-empty data dir is refused.
    r = q("snapshot", "restore", snap, "--data-dir", n1.data_dir, "--name",
          "n1", "--initial-cluster", c.initial, check=False)
    assert r.returncode != 0 and "not empty" in r.stderr
    c.start()
    got = c.assert_same_trees()
    assert qc.tree_diff(want, got) == []
    # The new cluster takes writes.
    qc.write_file(c.nodes[2].path("after.txt"), "alive\n")
    got = c.assert_same_trees()
    assert got["after.txt"][2] == b"alive\n"


# ------------------------------------------------------------ one node

def write_fd(fd):
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


def test_writes_under_snapshots_are_erofs(make_node):
    n = make_node().start()
    fill(n.mnt, BASE)
    os.mkdir(n.path(".snapshots", "ro"))
    snap = n.path(".snapshots", "ro")
    live_before = qc.tree(n.mnt)
    snap_before = qc.tree(snap)
    f = os.path.join(snap, "app", "a.conf")
    d = os.path.join(snap, "app")
    ops = [
        # Opens send no request (docs/consistency.md): a write-open of a
        # view file succeeds, its first write() fails.
        ("open write", lambda: write_fd(os.open(f, os.O_WRONLY))),
        ("open rdwr", lambda: write_fd(os.open(f, os.O_RDWR))),
        ("append", lambda: write_fd(os.open(f, os.O_WRONLY | os.O_APPEND))),
        ("open trunc", lambda: os.open(f, os.O_RDONLY | os.O_TRUNC)),
        ("create", lambda: os.open(os.path.join(d, "x"),
                                   os.O_WRONLY | os.O_CREAT, 0o644)),
        ("create at top", lambda: os.open(os.path.join(snap, "x"),
                                          os.O_WRONLY | os.O_CREAT, 0o644)),
        ("create in .snapshots",
         lambda: os.open(n.path(".snapshots", "x"),
                         os.O_WRONLY | os.O_CREAT, 0o644)),
        ("unlink", lambda: os.unlink(f)),
        ("rmdir", lambda: os.rmdir(os.path.join(d, "sub"))),
        ("mkdir", lambda: os.mkdir(os.path.join(d, "newdir"))),
        ("symlink", lambda: os.symlink("t", os.path.join(d, "l2"))),
        ("chmod", lambda: os.chmod(f, 0o777)),
        ("chown", lambda: os.chown(f, 1, 1)),
        ("utime", lambda: os.utime(f, (1, 1))),
        ("truncate", lambda: os.truncate(f, 0)),
        ("rename inside", lambda: os.rename(f, os.path.join(d, "z"))),
        ("link", lambda: os.link(f, os.path.join(d, "hl"))),
        ("mknod fifo", lambda: os.mkfifo(os.path.join(d, "fifo"))),
        ("setxattr-free chmod dir", lambda: os.chmod(d, 0o700)),
    ]
    for what, fn in ops:
        e = errno_of(fn)
        assert e == errno.EROFS, "%s: %s" % (what, errno.errorcode.get(e, e))
    # Renames across the border.
    e = errno_of(os.rename, n.path("app", "a.conf"), os.path.join(d, "a2"))
    assert e == errno.EXDEV
    e = errno_of(os.rename, f, n.path("app", "moved"))
    assert e == errno.EXDEV
    # Nothing changed anywhere.
    assert qc.tree_diff(snap_before, qc.tree(snap)) == []
    assert qc.tree_diff(live_before, qc.tree(n.mnt)) == []
    # Names: '@' is reserved for revisions.
    assert errno_of(os.mkdir, n.path(".snapshots", "@5")) in (
        errno.EINVAL, errno.EEXIST)


def test_at_rev_views_match_history(make_node):
    """A scripted sequence of changes; the expected tree after each is
    computed here; @REV must show exactly that tree."""
    n = make_node().start()
    rng = random.Random(5)
    model = {}  # rel -> ('f', mode, bytes) | ('d', mode, None) | ('l',0,t)
    at = {}     # revision -> model copy
    names = ["a", "b", "c", "d"]

    def record():
        at[n.revision()] = dict(model)

    os.mkdir(n.path("dir"))
    model["dir"] = ("d", 0o755, None)
    record()
    for step in range(40):
        op = rng.choice(["write", "write", "unlink", "chmod", "symlink",
                         "rename"])
        name = "dir/" + rng.choice(names)
        cur = model.get(name)
        if op == "write" and (cur is None or cur[0] == "f"):
            data = ("step %d %s\n" % (step, rng.random())).encode()
            qc.write_file(n.path(name), data)
            model[name] = ("f", cur[1] if cur else 0o644, data)
        elif op == "unlink" and cur is not None:
            os.unlink(n.path(name))
            del model[name]
        elif op == "chmod" and cur is not None and cur[0] == "f":
            mode = rng.choice([0o600, 0o640, 0o644, 0o400])
            os.chmod(n.path(name), mode)
            model[name] = ("f", mode, cur[2])
        elif op == "symlink" and cur is None:
            target = "target-%d" % step
            os.symlink(target, n.path(name))
            model[name] = ("l", 0, target)
        elif op == "rename" and cur is not None:
            dst = "dir/" + rng.choice(names)
            if dst == name:
                continue
            if model.get(dst, ("f",))[0] == "d":
                continue
            os.rename(n.path(name), n.path(dst))
            model[dst] = cur
            del model[name]
        else:
            continue
        record()
    assert len(at) > 15
    revs = sorted(at)
    for rev in rng.sample(revs, 12) + [revs[0], revs[-1]]:
        got = qc.tree(n.path(".snapshots", "@%d" % rev))
        assert qc.tree_diff(at[rev], got) == [], "@%d" % rev
    # A revision in the future does not exist.
    assert not os.path.exists(n.path(".snapshots", "@%d" % (revs[-1] + 100)))

    # Compaction: older revisions are gone (ENOENT + a log line), newer
    # ones still agree with the history.
    cut = revs[len(revs) // 2]
    q("compact", "--revision", cut, "--data-dir", n.data_dir)
    old = revs[0]
    e = errno_of(os.stat, n.path(".snapshots", "@%d" % old))
    assert e == errno.ENOENT
    wait_for(lambda: "compact" in n.log(), what="compaction log line")
    for rev in [r for r in revs if r >= cut][:5]:
        got = qc.tree(n.path(".snapshots", "@%d" % rev))
        assert qc.tree_diff(at[rev], got) == [], "@%d after compact" % rev
    st = n.status()
    assert st["compact_revision"] >= cut
    assert st["revision"] >= revs[-1]


def test_restore_is_atomic_for_readers(make_node):
    n = make_node().start()
    N = 20
    os.mkdir(n.path("cfg"))
    for i in range(N):
        qc.write_file(n.path("cfg", "f%02d" % i), "old %d\n" % i)
    os.mkdir(n.path(".snapshots", "old"))
    for i in range(N):
        qc.write_file(n.path("cfg", "f%02d" % i), "new %d\n" % i)
    for i in range(5):
        qc.write_file(n.path("cfg", "extra%d" % i), "extra\n")
    stop = threading.Event()
    bad = []
    samples = []

    def reader():
        # Files are read in name order (the order a non-atomic restore
        # would most likely follow): an atomic restore can only show a
        # prefix of new contents followed by old ones, never old, then
        # new, then old; and once old content is seen, every extra file
        # must already be gone from a listing taken afterwards.
        while not stop.is_set():
            seen = []
            for i in range(N):
                try:
                    with open(n.path("cfg", "f%02d" % i)) as f:
                        seen.append(f.read().split()[0])
                except OSError as e:
                    bad.append("read error %s" % e)
            samples.append(seen)
            # new* old* in read order only (old then new is a mix).
            s = "".join("n" if x == "new" else "o" for x in seen)
            if "on" in s:
                bad.append(s)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    q("restore", "old", "/cfg", "--data-dir", n.data_dir)
    time.sleep(0.3)
    stop.set()
    t.join(30)
    assert not bad, bad[:5]
    assert samples and all(x == "old" for x in samples[-1])
    assert sorted(os.listdir(n.path("cfg"))) == \
        ["f%02d" % i for i in range(N)]
    # The whole tree, to @REV: a file created later disappears.
    rev = n.revision()
    qc.write_file(n.path("later.txt"), "later\n")
    q("restore", "@%d" % rev, "--data-dir", n.data_dir)
    assert not os.path.exists(n.path("later.txt"))
    assert open(n.path("cfg", "f03")).read() == "old 3\n"


def test_cp_and_rsync_restore_from_snapshot_dir(make_node):
    n = make_node().start()
    fill(n.mnt, BASE)
    os.chmod(n.path("app", "b.conf"), 0o600)
    os.utime(n.path("app", "a.conf"), (1000000000, 1000000000))
    want = qc.tree(n.path("app"))
    os.mkdir(n.path(".snapshots", "good"))
    shutil.rmtree(n.path("app", "sub"))
    qc.write_file(n.path("app", "a.conf"), "broken\n")
    os.chmod(n.path("app", "b.conf"), 0o666)
    subprocess.run(["cp", "-a", n.path(".snapshots", "good", "app") + "/.",
                    n.path("app") + "/"], check=True)
    assert qc.tree_diff(want, qc.tree(n.path("app"))) == []
    assert int(os.stat(n.path("app", "a.conf")).st_mtime) == 1000000000
    if shutil.which("rsync") is None:
        return
    qc.write_file(n.path("app", "a.conf"), "broken again\n")
    qc.write_file(n.path("app", "junk"), "junk\n")
    subprocess.run(["rsync", "-a", "--delete",
                    n.path(".snapshots", "good", "app") + "/",
                    n.path("app") + "/"], check=True)
    assert qc.tree_diff(want, qc.tree(n.path("app"))) == []


@pytest.mark.parametrize("point", ["compact-after-write",
                                   "compact-before-rename",
                                   "compact-after-rename"])
def test_compaction_killed_midway(make_node, point):
    n = make_node().start()
    for i in range(30):
        qc.write_file(n.path("f%d" % (i % 5)), "version %d\n" % i)
    os.mkdir(n.path("d"))
    os.symlink("f1", n.path("d", "l"))
    want = qc.tree(n.mnt)
    rev = n.revision()
    n.stop()
    # Restart with the crash hook armed; compaction then kills the node.
    os.environ["QFS_CRASH_POINT"] = point
    try:
        n.start()
    finally:
        del os.environ["QFS_CRASH_POINT"]
    q("compact", "--revision", rev - 3, "--data-dir", n.data_dir,
      check=False)  # the node may die before it answers
    n.proc.wait(20)
    assert n.proc.returncode == 99, n.log()[-2000:]
    n.stop()
    n.start()
    assert qc.tree_diff(want, qc.tree(n.mnt)) == []
    st = n.status()
    assert st["revision"] >= rev
    # The restarted node finishes the compaction (or had it committed) and
    # keeps serving the same tree and history after it.
    wait_for(lambda: not os.path.exists(os.path.join(n.data_dir,
                                                     "db.compact")),
             timeout=10, what="no leftover db.compact")
    got = qc.tree(n.path(".snapshots", "@%d" % rev))
    assert qc.tree_diff(want, got) == []
    qc.write_file(n.path("after"), "ok\n")
    assert open(n.path("after")).read() == "ok\n"


def test_retention_compacts_but_keeps_named_snapshots(make_node):
    n = make_node().start(["--history-revisions", "20",
                           "--history-hours", "0"])
    qc.write_file(n.path("keep"), "kept\n")
    os.mkdir(n.path(".snapshots", "pinned"))
    pinned = n.revision()
    for i in range(30):
        qc.write_file(n.path("f%d" % (i % 3)), "v%d\n" % i)
    # Pinned by the named snapshot: nothing before it may go.
    wait_for(lambda: n.status()["compact_revision"] > 0, timeout=15,
             what="automatic compaction")
    st = n.status()
    assert 0 < st["compact_revision"] <= pinned
    assert open(n.path(".snapshots", "pinned", "keep")).read() == "kept\n"
    # Without the pin, history is cut to the last 20 revisions.
    # (A restart: automatic compactions are at least a minute apart.)
    os.rmdir(n.path(".snapshots", "pinned"))
    n.restart()
    for i in range(30):
        qc.write_file(n.path("f%d" % (i % 3)), "w%d\n" % i)

    def kept():
        st = n.status()
        return st["revision"] - st["compact_revision"]
    wait_for(lambda: kept() == 20, timeout=20,
             what="history cut to the last 20 revisions")
    assert errno_of(os.stat, n.path(".snapshots", "@1")) == errno.ENOENT
    assert open(n.path("f2")).read() == "w29\n"
