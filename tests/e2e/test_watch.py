"""`quorumfs watch`: the committed changes made on any member reach a
watcher on another node once each, in revision order, only under its
PATH; a file written with several write() calls is one event; --since
replays from the node's ring, and a revision older than the ring is a
clear error; --exec runs its command once per settled burst; a watcher
that never reads does not hold up writes (docs/operations.md, "Watch")."""

import ctypes
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time

from conftest import QUORUMFS_BIN

IN_DELETE_SELF = 0x400


class Watcher:
    """`quorumfs watch ARGS` in the background, its stdout lines collected."""

    def __init__(self, args):
        self.proc = subprocess.Popen([QUORUMFS_BIN, "watch"] + list(args),
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.started = threading.Event()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pred, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(pred(line) for line in list(self.lines)):
                return
            assert self.proc.poll() is None, self.stop()
            time.sleep(0.05)
        raise AssertionError("not seen in time; got %r; stderr %s"
                             % (self.lines, self.stop()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except ValueError:  # stdout being read by the thread
            self.proc.wait(10)
            err = self.proc.stderr.read()
        self.t.join(5)
        return err


def run(args, timeout=20):
    return subprocess.run([QUORUMFS_BIN] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def parse(line):
    """'REV OP PATH [-> NEW]' as (rev, op, path[, new])."""
    parts = line.split(" ")
    rev, op, rest = int(parts[0]), parts[1], parts[2:]
    if len(rest) == 3 and rest[1] == "->":
        return (rev, op, rest[0], rest[2])
    return (rev, op, " ".join(rest))


def wait_ready(w):
    """The watch request is answered before the test writes: the first
    status read over the socket shows the watcher is registered."""
    time.sleep(0.3)
    assert w.proc.poll() is None, w.stop()


def test_remote_changes_in_order_once_each(make_cluster):
    c = make_cluster()
    c.start()
    a, b, n3 = c.nodes
    os.mkdir(a.path("app"))
    c.wait_applied()
    # On b, a path in its mount: the subtree /app of the tree.
    w = Watcher([b.path("app")])
    wj = Watcher(["/app", "--json", "--data-dir", n3.data_dir])
    wait_ready(w)
    wait_ready(wj)

    os.mkdir(a.path("other"))
    with open(a.path("other", "x"), "w") as f:
        f.write("not watched\n")
    with open(a.path("app", "a.conf"), "w") as f:
        f.write("v1\n")
    # An update of an existing file with several write() calls.
    fd = os.open(a.path("app", "a.conf"), os.O_WRONLY | os.O_TRUNC)
    for i in range(5):
        os.write(fd, b"line %d\n" % i)
    os.close(fd)
    os.mkdir(a.path("app", "sub"))
    os.rename(a.path("app", "a.conf"), a.path("app", "sub", "b.conf"))
    os.rename(a.path("other", "x"), a.path("app", "x"))  # into /app
    os.unlink(a.path("app", "sub", "b.conf"))
    os.rmdir(a.path("app", "sub"))
    os.mkdir(a.path("apple"))  # a sibling whose name starts alike
    with open(a.path("app", "last"), "w") as f:
        f.write("done\n")

    w.wait_for(lambda l: l.endswith(" create /app/last"))
    wj.wait_for(lambda l: '"/app/last"' in l and '"create"' in l)
    got = [parse(l) for l in w.lines]
    revs = [e[0] for e in got]
    assert revs == sorted(set(revs)), got  # in order, none twice
    # a new file is one entry with its content (a deferred create)
    assert [e[1:] for e in got] == [
        ("create", "/app/a.conf"),
        ("write", "/app/a.conf"),  # five write() calls: one update
        ("mkdir", "/app/sub"),
        ("rename", "/app/a.conf", "/app/sub/b.conf"),
        ("rename", "/other/x", "/app/x"),
        ("unlink", "/app/sub/b.conf"),
        ("rmdir", "/app/sub"),
        ("create", "/app/last"),
    ], got
    # The same changes, with the same revisions, on the third node.
    js = [json.loads(l) for l in wj.lines]
    assert [(e["revision"], e["op"], e["path"]) for e in js] == \
        [e[:3] for e in got]
    assert js[3]["new_path"] == "/app/sub/b.conf"
    w.stop()
    wj.stop()

    # --since replays from the ring: the first change watched above, and
    # everything after it (under / this time: /apple too).
    first = got[0][0]
    r = subprocess.Popen([QUORUMFS_BIN, "watch", "--since", str(first),
                          "--data-dir", b.data_dir],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    lines = []
    for line in r.stdout:
        lines.append(line.rstrip("\n"))
        if line.endswith(" create /app/last\n"):
            break
    r.terminate()
    r.wait(10)
    replay = [parse(l) for l in lines]
    assert replay[0][0] == first
    assert [e for e in replay if e[2].startswith("/app/")
            or (len(e) > 3 and e[3].startswith("/app/"))] == got
    assert any(e[1:] == ("mkdir", "/apple") for e in replay)

    # inotify on b: a directory removed on a raises IN_DELETE_SELF on
    # b's watch of it (the node's notify_delete); nothing else does. The
    # kernel raises it only through the dentry b's lookup made; b's
    # notifier invalidates that name once for the mkdir, asynchronously
    # after the apply, and a lookup that came before that invalidation has
    # its dentry unhashed under it (then the delete finds no dentry and
    # falls back to an invalidation: no event). A loaded machine can take
    # that path: up to 3 tries with a fresh name, each given time for the
    # mkdir's invalidation first.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def delete_self_seen(name):
        os.mkdir(a.path(name))
        c.wait_applied()
        time.sleep(1.0)  # b's notifier sends the mkdir's invalidation
        os.stat(b.path(name))
        ifd = libc.inotify_init1(os.O_NONBLOCK)
        assert ifd >= 0
        try:
            wd = libc.inotify_add_watch(ifd, b.path(name).encode(), 0xfff)
            assert wd >= 0
            os.rmdir(a.path(name))
            masks = []
            deadline = time.monotonic() + 10
            while (time.monotonic() < deadline and
                   IN_DELETE_SELF not in masks):
                select.select([ifd], [], [], 0.2)
                try:
                    data = os.read(ifd, 4096)
                except BlockingIOError:
                    continue
                i = 0
                while i < len(data):
                    _, mask, _, ln = struct.unpack_from("iIII", data, i)
                    masks.append(mask)
                    i += 16 + ln
            return IN_DELETE_SELF in masks
        finally:
            os.close(ifd)

    assert any(delete_self_seen("gone%d" % i) for i in range(3))

    # A node restarted holds only what it applied since: an older --since
    # is refused with the oldest revision it can replay.
    n3.restart(c.args(n3, "existing"))
    c.wait_applied()
    r = run(["watch", "/app", "--since", "1", "--data-dir", n3.data_dir])
    assert r.returncode == 1, r
    assert "revision 1 is older than this node can replay: the oldest is" \
        in r.stderr, r.stderr
    assert "kept in memory and starts when the node starts" in r.stderr


def test_ring_bound_and_slow_reader(make_node):
    """A ring of 64 changes: --since older than it names the oldest kept;
    a watcher that never reads gets the fell-behind line (then is closed)
    while the writes go on."""
    n = make_node().start(["--watch-events", "64"])
    # Long paths: each change is a long line, so the socket fills soon.
    deep = n.mnt
    for i in range(4):
        deep = os.path.join(deep, "d%d" % i + "x" * 200)
        os.mkdir(deep)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(n.data_dir, "ctl.sock"))
    s.sendall(b"watch\t0\t/\n")
    time.sleep(0.2)
    start = n.revision()
    writes = 1500
    for i in range(writes):
        with open(os.path.join(deep, "f%04d" % (i % 50) + "y" * 150), "w") as f:
            f.write("%d\n" % i)
    # Every write completed (the loop above would hang if they did not),
    # and the node went on applying them.
    assert n.revision() >= start + writes

    r = run(["watch", "--since", "1", "--data-dir", n.data_dir])
    assert r.returncode == 1
    assert "older changes were dropped from its watch ring" in r.stderr, \
        r.stderr
    oldest = int(r.stderr.split("the oldest is ")[1].split(" ")[0])
    assert oldest > start

    # Now read what the silent watcher was sent: its changes in order,
    # then the fell-behind line naming a revision to resume from, then
    # the end of the stream.
    s.settimeout(20)
    data = b""
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    s.close()
    lines = data.decode().splitlines()
    assert lines[0].startswith("ok watching from revision "), lines[:2]
    assert lines[-1].startswith("fell behind; resume with --since "), \
        lines[-3:]
    resume = int(lines[-1].split("--since ")[1].split(" ")[0])
    revs = [int(l.split("\t")[0]) for l in lines[1:-1]]
    assert revs == sorted(set(revs)) and revs, revs[:5]
    assert resume > revs[-1]


def test_exec_once_per_settled_burst(make_node, tmp_path):
    n = make_node().start()
    os.mkdir(n.path("etc"))
    out = tmp_path / "runs"
    script = ("if [ -e {o}.lock ]; then echo overlap >> {o}; fi; "
              "touch {o}.lock; echo \"$QUORUMFS_REVISION $QUORUMFS_PATH\" "
              ">> {o}; sleep 0.5; rm {o}.lock; exit 3").format(o=out)
    w = subprocess.Popen([QUORUMFS_BIN, "watch", n.path("etc"),
                          "--exec", script, "--debounce", "700"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(0.3)

    def runs():
        try:
            return out.read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait_runs(k, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(runs()) < k:
            time.sleep(0.05)
        time.sleep(1.5)  # and no more than k
        assert len(runs()) == k, runs()

    for i in range(5):  # a burst: one run
        with open(n.path("etc", "f%d" % i), "w") as f:
            f.write("x")
    with open(n.path("other"), "w") as f:  # not under PATH
        f.write("x")
    burst1 = n.revision() - 1  # the last change under /etc
    wait_runs(1)
    assert runs()[0] == "%d /etc/f4" % burst1
    # A change while the command runs: one more run after it, not two
    # at once.
    with open(n.path("etc", "g"), "w") as f:
        f.write("y")
    deadline = time.monotonic() + 10
    while not (tmp_path / "runs.lock").exists() and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    with open(n.path("etc", "h"), "w") as f:
        f.write("z")
    wait_runs(3)
    assert "overlap" not in runs()
    assert runs()[2] == "%d /etc/h" % n.revision()
    w.terminate()
    _, err = w.communicate(timeout=10)
    assert err.count("command exited with status 3") == 3, err


def test_watchers_are_not_idle_clients(make_node):
    """70 watchers, more than the 64 control clients served at once: none
    is closed as idle (past the 2 s a request has), `quorumfs status`
    still answers, and each watcher gets the next change."""
    n = make_node().start()
    socks = []
    for _ in range(70):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.path.join(n.data_dir, "ctl.sock"))
        s.sendall(b"watch\t0\t/w\n")
        socks.append(s)
    for s in socks:
        s.settimeout(10)
        assert s.recv(64).startswith(b"ok watching from revision ")
    time.sleep(2.5)  # past the idle limit of a client still sending
    r = run(["status", "--data-dir", n.data_dir])
    assert r.returncode == 0, r.stderr
    with open(n.path(".cluster/metrics")) as m:
        metrics = m.read()
    assert "\nquorumfs_watchers 70\n" in metrics, metrics[-3000:]
    assert "\nquorumfs_watch_queue_depth 0\n" in metrics
    os.mkdir(n.path("w"))
    rev = n.revision()
    for s in socks:
        assert s.recv(256) == b"%d\tmkdir\t/w\n" % rev
        s.close()


def test_many_requests_accepted_at_once_are_all_served(make_node):
    """70 watchers connect and send their request while the node is
    stopped: it accepts them all in one turn, before reading any. Past the
    64 clients served at once, a client whose request waits unread is not
    idle and is not closed: all 70 are watching (before the fix the
    oldest 6 were closed with their request unread)."""
    n = make_node().start()
    n.proc.send_signal(signal.SIGSTOP)
    socks = []
    try:
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(os.path.join(n.data_dir, "ctl.sock"))
            s.sendall(b"watch\t0\t/w\n")
            socks.append(s)
    finally:
        n.proc.send_signal(signal.SIGCONT)
    for i, s in enumerate(socks):
        got = s.recv(64)
        assert got.startswith(b"ok watching from revision "), (i, got)
    os.mkdir(n.path("w"))
    rev = n.revision()
    for s in socks:
        assert s.recv(256) == b"%d\tmkdir\t/w\n" % rev
        s.close()


def test_snapshot_install_is_one_reset(make_cluster):
    """A follower that missed more than the leader's log holds installs a
    snapshot: its watchers get one `reset /` at the snapshot's revision
    (the changes up to it were not applied there one by one), then the
    changes after it (those the snapshot does not hold), in order."""
    import cluster as qc
    c = make_cluster(extra_args=["--snapshot-entries", "50"])
    ld = c.start()
    f1 = c.followers(ld)[0]
    os.mkdir(ld.path("s"))
    c.wait_applied()
    w = Watcher([f1.path("s")])
    wait_ready(w)
    off = os.path.getsize(f1.log_path)
    c.sigstop(f1)
    try:
        for i in range(200):
            qc.write_file(ld.path("s/paused-%03d" % i), b"%d\n" % i)
    finally:
        c.sigcont(f1)
    c.assert_caught_up_by_snapshot(f1, off, {})
    qc.write_file(ld.path("s/after"), b"after\n")
    w.wait_for(lambda l: l.endswith(" create /s/after"))
    got = [parse(l) for l in w.lines]
    revs = [e[0] for e in got]
    assert revs == sorted(set(revs)), got
    resets = [e for e in got if e[1] == "reset"]
    assert len(resets) == 1 and resets[0][2] == "/", got
    # a new file with its content: one entry (a deferred create)
    assert got[-1:] == [(revs[-1], "create", "/s/after")], got[-3:]
    # Before the snapshot, the follower may apply what reached its socket
    # before the leader compacted: the appends the leader pipelined to it
    # while it was stopped (at most RAFT_INFLIGHT_MAX, 64, of them, raft.h).
    # The rest of the pause comes as the reset, not file by file: fewer
    # than the 200 files are reported one by one, and the reset is at a
    # revision after every change reported before it.
    at = got.index(resets[0])
    before = [e for e in got[:at] if "paused" in e[2]]
    assert len(before) <= 64, before
    paused = {e[2] for e in got if "paused" in e[2]}
    assert len(paused) < 200, sorted(paused)
    assert all(e[0] < resets[0][0] for e in got[:at]), got[:at]
    assert len(got) - at - 1 < 2 * 200, got[at:]
    w.stop()
