"""Logs people can read (docs/operations.md, "Logs"): a node started
without -f writes every line to DATA_DIR/quorumfs.log from its first one
(start-up and the first election included), names nodes by member name,
logs a failed write once with its cause (rate-limited), and says who the
new leader is when it changes. A start-up that fails still says why on the
terminal that ran `quorumfs mount`.

The nodes here run as daemons (no -f): `quorumfs mount` returns once the
mount is ready, and the daemon's pid is read from DATA_DIR/LOCK.
"""

import errno
import os
import re
import signal
import subprocess
import time

import pytest

import cluster as qc
from conftest import QUORUMFS_BIN, Node, check_log, peer_security_args, unmount

QUOTA = 400_000
FILE = 100_000
BURST = 50
# A node id printed in decimal (ids are 64-bit hashes: 15+ digits).
RAW_ID = re.compile(r"\b\d{15,20}\b")


class PidProc:
    """The little of subprocess.Popen that Node and Cluster use, for a
    daemon that is not our child."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is not None:
            return self.returncode
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "X"
        if state in ("Z", "X"):
            self.returncode = 0  # its exit status went to init
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout or 60)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.02)
        return self.returncode


class DaemonNode(Node):
    """A Node started without -f; its log is DATA_DIR/quorumfs.log."""

    def __init__(self, root, name):
        super().__init__(root, name)
        self.log_path = os.path.join(self.data_dir, "quorumfs.log")
        self.mount_proc = None

    def cmd(self, extra_args=()):
        return [QUORUMFS_BIN, "mount", self.mnt, "--data-dir", self.data_dir,
                "--name", self.name] + peer_security_args(extra_args)

    def start(self, extra_args=(), wait=True):
        self.extra_args = list(extra_args)
        self.mount_proc = subprocess.Popen(
            self.cmd(self.extra_args), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=qc.LEADER_TIMEOUT_S + 10):
        out, err = self.mount_proc.communicate(timeout=timeout)
        assert self.mount_proc.returncode == 0, (self.name, out, err,
                                                 self.log())
        with open(os.path.join(self.data_dir, "LOCK")) as f:
            self.proc = PidProc(int(f.readline().split()[0]))
        super().wait_ready()
        return err


@pytest.fixture
def cluster(tmp_path):
    if not QUORUMFS_BIN or not os.access(QUORUMFS_BIN, os.X_OK):
        pytest.fail("QUORUMFS_BIN is not set to an executable")
    c = qc.Cluster(str(tmp_path), extra_args=["--quota-bytes", str(QUOTA)])
    c.nodes = [DaemonNode(str(tmp_path), n) for n in qc.NAMES]
    yield c
    c.cleanup()
    for n in c.nodes:
        check_log(n)


def lines(text, needle):
    return [ln for ln in text.splitlines() if needle in ln]


def write_bytes(path, size):
    """Writes size bytes to path; returns 0 or the errno of the failure."""
    try:
        qc.write_file(path, b"q" * size)
        return 0
    except OSError as e:
        return e.errno


def test_daemon_logs(cluster, tmp_path):
    c = cluster
    ld = c.start()
    names = set(qc.NAMES)

    # Everything is in the file: start-up, the first election, the mount.
    for n in c.nodes:
        log = n.log()
        assert "raft: restored term" in log, (n.name, log)
        mounted = log.find("quorumfs %s mounted on" % n.name)
        assert mounted >= 0, (n.name, log)
        first = re.search(r"leader is now (\S+)(?: \(this node\))? at term",
                          log)
        assert first is not None and first.start() < mounted, (n.name, log)
        assert first.group(1) in names, (n.name, log)
        assert re.search(r"transport: connected (to|from) n[123] \(", log), \
            (n.name, log)
        assert not RAW_ID.findall(log), (n.name, RAW_ID.findall(log), log)

    # A write past the quota: one line with ENOSPC and its cause.
    w = c.followers(ld)[0]
    off = os.path.getsize(w.log_path)
    for i in range(QUOTA // FILE):
        assert write_bytes(w.path("fill%d" % i), FILE) == 0
    assert write_bytes(w.path("over"), FILE) == errno.ENOSPC
    text = c.log_since(w, off)
    failed = lines(text, "failed: ENOSPC")
    assert len(failed) == 1, text
    assert "write of /over failed: ENOSPC (quota" in failed[0], text
    assert " warn " in failed[0], text

    # A burst of failing writes: a line per cause per period, at most.
    off = os.path.getsize(w.log_path)
    for i in range(BURST):
        assert write_bytes(w.path("burst%d" % i), FILE) == errno.ENOSPC
    text = c.log_since(w, off)
    assert len(lines(text, "failed: ENOSPC")) <= 1, text

    # The file size limit: EFBIG, its own cause.
    assert write_bytes(w.path("huge"), 2 << 20) == errno.EFBIG
    text = c.log_since(w, off)
    assert "write of /huge failed: EFBIG (file size limit 1 MiB)" in text, \
        text

    # A leader change names the new leader, on every node left.
    offs = {n.name: os.path.getsize(n.log_path) for n in c.nodes}
    c.kill9(ld)
    rest = [n for n in c.nodes if n is not ld]
    new = c.wait_leader(rest)
    for n in rest:
        deadline = time.monotonic() + 5
        while True:
            text = c.log_since(n, offs[n.name])
            if re.search(r"leader is now %s( \(this node\))? at term \d+ "
                         r"\(was n[123];" % new.name, text):
                break
            assert time.monotonic() < deadline, (n.name, text)
            time.sleep(0.05)
        # (was OLD; on the first change after the kill, whichever won it)
        assert re.search(r"leader is now \S+ .*\(was %s;" % ld.name, text), \
            (n.name, text)
        assert not RAW_ID.findall(text), (n.name, text)

    # A start that fails says why on the terminal, and in the file.
    other = tmp_path / "other-mnt"
    other.mkdir()
    off = os.path.getsize(new.log_path)
    r = subprocess.run([QUORUMFS_BIN, "mount", str(other), "--data-dir",
                        new.data_dir, "--name", new.name] +
                       peer_security_args(c.args(new)),
                       capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode != 0, r
        assert "data dir in use by another node" in r.stderr, r.stderr
        assert "the whole log is in %s" % new.log_path in r.stderr, r.stderr
        assert "data dir in use by another node" in c.log_since(new, off)
        assert not os.path.ismount(str(other))
    finally:
        unmount(str(other))


def test_stale_mount_warning_in_file_and_on_terminal(cluster):
    """A member started alone with --mount-stale mounts its local state and
    warns: on the terminal that ran mount and in the log file."""
    c = cluster
    c.start()
    for n in c.nodes:
        assert n.stop() == 0, n.name
    n1 = c.node("n1")
    off = os.path.getsize(n1.log_path)
    n1.start(c.args(n1, "existing") +
             ["--mount-stale", "--catch-up-timeout-ms", "1000"], wait=False)
    err = n1.wait_ready()
    warning = "mounting the local state as it is (--mount-stale)"
    assert warning in err, err
    text = c.log_since(n1, off)
    assert warning in text, text
    assert text.find(warning) < text.find("quorumfs n1 mounted on"), text
