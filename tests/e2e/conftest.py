"""Fixtures for end-to-end tests: real quorumfs daemons on real FUSE mounts.

A Node is one `quorumfs mount` process with its own data dir and mountpoint.
It is designed so cluster tests can start several of them with
`--listen-peer/--initial-cluster` passed through `extra_args`.

Cleanup always runs (even when a test fails): every mountpoint is lazily
unmounted with `fusermount3 -uz` and only the PIDs this file started are
killed.
"""

import atexit
import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

QUORUMFS_BIN = os.environ.get("QUORUMFS_BIN", "")
# With a sanitizer build (tests/run.sh): the directory the sanitizers'
# log_path points into. A report written there during a test fails it.
SANITIZER_LOGS = os.environ.get("QUORUMFS_SANITIZER_LOGS", "")
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0

# Peers authenticate (docs/security.md): every node started with
# --listen-peer and no --peer-* flag of its own gets this shared secret, so
# the suites run over TLS as users do. Tests of the clear-text framing pass
# --peer-insecure themselves.
PEER_SECRET_DIR = tempfile.mkdtemp(prefix="qfs-e2e-secret-")
PEER_SECRET = os.path.join(PEER_SECRET_DIR, "peer.secret")
with open(os.open(PEER_SECRET, os.O_WRONLY | os.O_CREAT, 0o600), "w") as _f:
    _f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
atexit.register(shutil.rmtree, PEER_SECRET_DIR, True)


def peer_security_args(args):
    """args plus the shared secret when it listens for peers and says
    nothing about peer security itself."""
    args = list(args)
    if "--listen-peer" in args and not any(
            a.startswith("--peer-") for a in args):
        args += ["--peer-secret-file", PEER_SECRET]
    return args


def unmount(path):
    subprocess.run(["fusermount3", "-uz", path],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Node:
    """One quorumfs daemon, run in the foreground (-f) so we own its PID."""

    def __init__(self, root, name="default"):
        self.name = name
        self.data_dir = os.path.join(root, name + "-data")
        self.mnt = os.path.join(root, name + "-mnt")
        self.log_path = os.path.join(root, name + ".log")
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.proc = None
        self.extra_args = []
        self._log = None

    # ---- process control ----
    def cmd(self, extra_args=()):
        return [QUORUMFS_BIN, "mount", self.mnt, "--data-dir", self.data_dir,
                "--name", self.name, "-f"] + peer_security_args(extra_args)

    def start(self, extra_args=(), wait=True):
        assert self.proc is None or self.proc.poll() is not None
        self.extra_args = list(extra_args)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd(self.extra_args),
                                     stdout=self._log, stderr=self._log,
                                     stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("quorumfs exited with %s:\n%s"
                                   % (self.proc.returncode, self.log()))
            if os.path.ismount(self.mnt):
                try:
                    self.status()
                    return
                except (OSError, ValueError) as e:
                    last = e
            time.sleep(0.05)
        raise RuntimeError("mount not ready after %ss (%r):\n%s"
                           % (timeout, last, self.log()))

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Stop the daemon (SIGTERM: orderly) and wait for the unmount."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        rc = self.proc.returncode
        if os.path.ismount(self.mnt):
            unmount(self.mnt)
        if self._log is not None:
            self._log.close()
            self._log = None
        return rc

    def kill9(self):
        rc = self.stop(signal.SIGKILL)
        unmount(self.mnt)
        return rc

    def unmount_clean(self, timeout=STOP_TIMEOUT_S):
        """fusermount3 -u: the daemon must see the unmount and exit 0."""
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)
        self.proc.wait(timeout)
        return self.stop()

    def restart(self, extra_args=None):
        self.stop()
        return self.start(self.extra_args if extra_args is None
                          else extra_args)

    def cleanup(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        finally:
            unmount(self.mnt)
            if self._log is not None:
                self._log.close()
                self._log = None

    # ---- observation ----
    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def status(self):
        with open(os.path.join(self.mnt, ".cluster", "status")) as f:
            return json.loads(f.read())

    def revision(self):
        return int(self.status()["revision"])

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)


@pytest.fixture
def make_node(tmp_path):
    if not QUORUMFS_BIN or not os.access(QUORUMFS_BIN, os.X_OK):
        pytest.fail("QUORUMFS_BIN is not set to an executable (run through meson test)")
    nodes = []

    def make(name="default"):
        n = Node(str(tmp_path), name)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        n.cleanup()
    for n in nodes:
        check_log(n)


@pytest.fixture
def node(make_node):
    """A started single-node mount."""
    return make_node().start()


@pytest.fixture
def mnt(node):
    return node.mnt


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def tree(root):
    """{relative path: (type, mode, content or link target)} of a mount.
    Special files are never opened: ("p"|"s", mode, None) for a FIFO or a
    socket, ("c"|"b", mode, st_rdev) for a device."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames
                           if d not in (".cluster", ".snapshots")]
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode), None)
            elif stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
                out[rel] = ("p" if stat.S_ISFIFO(st.st_mode) else "s",
                            stat.S_IMODE(st.st_mode), None)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out[rel] = ("c" if stat.S_ISCHR(st.st_mode) else "b",
                            stat.S_IMODE(st.st_mode), st.st_rdev)
            else:
                out[rel] = ("f", stat.S_IMODE(st.st_mode), _read_bytes(p))
    return out


# A sanitizer build prints these on stderr (the node's log, unless log_path
# sends them to SANITIZER_LOGS) and goes on or aborts; either way the test
# fails.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", ": runtime error: ",
                   "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer")


def check_log(n):
    log = n.log()
    for bad in SANITIZER_MARKS:
        assert bad not in log, "%s's log: %s" % (
            n.name, log[max(0, log.index(bad) - 200):][:3000])


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    """Fails the test during which a daemon wrote a sanitizer report into
    SANITIZER_LOGS (torn down after the node and cluster fixtures, which
    stop the daemons: reports made at exit count)."""
    if not SANITIZER_LOGS:
        yield
        return
    before = set(os.listdir(SANITIZER_LOGS))
    yield
    new = sorted(set(os.listdir(SANITIZER_LOGS)) - before)
    if new:
        with open(os.path.join(SANITIZER_LOGS, new[0]), errors="replace") as f:
            pytest.fail("sanitizer report(s) %s:\n%s" % (new, f.read()[:4000]))


def mounted_under(root):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f
                if line.split()[4].startswith(root)]


def nft_tables_of_ours():
    r = subprocess.run(["nft", "list", "tables"], capture_output=True,
                       text=True)
    prefix = "qfs_test_%d_" % os.getpid()
    return [t for t in r.stdout.split() if t.startswith(prefix)]


@pytest.fixture
def make_cluster(tmp_path):
    if not QUORUMFS_BIN or not os.access(QUORUMFS_BIN, os.X_OK):
        pytest.fail("QUORUMFS_BIN is not set to an executable (run through meson test)")
    if shutil.which("nft") is None:
        pytest.fail("nft is not installed (tests/run.sh installs nftables)")
    clusters = []

    import cluster as qc  # cluster.py imports this module

    def make(**kw):
        c = qc.Cluster(str(tmp_path), **kw)
        clusters.append(c)
        return c

    yield make
    for c in clusters:
        c.cleanup()
    root = str(tmp_path)
    assert mounted_under(root) == [], "mounts left behind"
    assert nft_tables_of_ours() == [], "nftables tables left behind"
    for c in clusters:
        for n in c.nodes:
            assert n.proc is None or n.proc.poll() is not None
            check_log(n)
