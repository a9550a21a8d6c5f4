"""Local users (docs/security.md): no local user can lock the control
socket, and only root and the node's own uid may use it."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import QUORUMFS_BIN, Node, check_log

NOBODY = 65534


def ctl_path(node):
    return os.path.join(node.data_dir, "ctl.sock")


def status_cli(node, timeout=30):
    t0 = time.monotonic()
    r = subprocess.run([QUORUMFS_BIN, "status", "--data-dir", node.data_dir],
                       capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def idle_clients(node, count):
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(ctl_path(node))
        socks.append(s)
    return socks


def closed_by_node(s, timeout):
    """Whether the node closed s (EOF) within timeout seconds."""
    s.settimeout(timeout)
    try:
        return s.recv(100) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def test_idle_clients_do_not_block_the_control_socket(make_node):
    n = make_node().start()
    socks = idle_clients(n, 100)
    try:
        r, took = status_cli(n)
        assert r.returncode == 0, r.stderr
        assert "leader" in r.stdout.lower() or r.stdout, r.stdout
        assert took < 3.0, took
        # Again, with as many idle clients as the node serves opened after
        # the first ones (each new one takes the place of an older one).
        socks += idle_clients(n, 70)
        r, took = status_cli(n)
        assert r.returncode == 0, r.stderr
        assert took < 3.0, took
        # An idle client is closed after the idle timeout (2 s), and one
        # that trickles a request without its newline too.
        slow = idle_clients(n, 1)[0]
        slow.sendall(b"status")
        t0 = time.monotonic()
        assert closed_by_node(slow, 6.0)
        assert 1.0 < time.monotonic() - t0 < 5.0
        socks.append(slow)
        for s in socks[-10:-1]:
            assert closed_by_node(s, 1.0)
        # A client that sends its request in pieces inside the timeout is
        # answered.
        s = idle_clients(n, 1)[0]
        s.sendall(b"sta")
        time.sleep(0.3)
        s.sendall(b"tus text\n")
        s.settimeout(5)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        assert got and not got.startswith(b"error"), got
    finally:
        for s in socks:
            s.close()


def as_nobody(fn):
    """Run fn() in a forked child as uid/gid nobody; its return value (a
    short bytes) comes back through a pipe."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(rd)
            os.setgid(NOBODY)
            os.setgroups([])
            os.setuid(NOBODY)
            out = fn()
            os.write(wr, out)
        except BaseException as e:  # noqa: BLE001
            os.write(wr, ("EXC %r" % (e,)).encode())
            code = 3
        os._exit(code)
    os.close(wr)
    chunks = []
    while True:
        b = os.read(rd, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(rd)
    os.waitpid(pid, 0)
    return b"".join(chunks)


@pytest.fixture
def open_root():
    """A directory other users can traverse (pytest's tmp dirs are 0700),
    for a node whose data dir they must reach."""
    root = tempfile.mkdtemp(prefix="qfs-sec-")
    os.chmod(root, 0o711)
    nodes = []

    def make(name="default"):
        n = Node(root, name)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        n.cleanup()
    for n in nodes:
        check_log(n)
    shutil.rmtree(root, ignore_errors=True)


def test_control_socket_refuses_other_users(open_root):
    n = open_root().start()
    sock = ctl_path(n)
    assert os.stat(sock).st_mode & 0o777 == 0o600
    os.chmod(n.data_dir, 0o711)

    def try_status():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(sock)
        except PermissionError:
            return b"EACCES"
        s.sendall(b"status text\n")
        s.settimeout(5)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got

    # The file's mode keeps others out ...
    assert as_nobody(try_status) == b"EACCES"
    # ... and so does the node's own check when the mode would let them in.
    os.chmod(sock, 0o666)
    got = as_nobody(try_status)
    assert got == (b"error: permission denied (the control socket serves "
                   b"root and uid %d only)\n" % os.geteuid()), got
    # The CLI as nobody says so too and fails.
    r = subprocess.run(["setpriv", "--reuid", str(NOBODY), "--regid",
                        str(NOBODY), "--clear-groups", QUORUMFS_BIN,
                        "status", "--data-dir", n.data_dir],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "permission denied" in r.stderr, r.stderr
    # Root still is served.
    r, _ = status_cli(n)
    assert r.returncode == 0, r.stderr

