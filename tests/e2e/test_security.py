"""Local users (docs/security.md): no local user can lock the control
socket, only root and the node's own uid may use it, and the quota keeps a
reserve that only root may fill."""

import errno
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


def as_nobody(fn, cwd=None):
    """Run fn() in a forked child as uid/gid nobody, from cwd (entered
    first: pytest's tmp dirs are 0700); its return value (a short bytes)
    comes back through a pipe."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(rd)
            if cwd is not None:
                os.chdir(cwd)
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


QUOTA = 64 * 1024
CHUNK = 1024


def fill(dirpath, prefix, chunk=CHUNK, limit=1000):
    """Write files of `chunk` bytes into dirpath until one fails; returns
    (files written, errno of the failure)."""
    for i in range(limit):
        path = os.path.join(dirpath, "%s%04d" % (prefix, i))
        try:
            with open(path, "wb") as f:
                f.write(b"x" * chunk)
        except OSError as e:
            return i, e.errno
    return limit, 0


def test_quota_keeps_a_reserve_for_root(make_node):
    """An unprivileged user fills the tree to quota x 95 %; root can still
    write, up to the full quota."""
    n = make_node().start(["-o", "allow_other", "--quota-bytes", str(QUOTA)])
    os.chmod(n.mnt, 0o777)
    os.mkdir(n.path("u"))
    os.chmod(n.path("u"), 0o777)
    limit = QUOTA - QUOTA * 5 // 100  # the default reserve: 5 %

    def fill_as_user():
        files, err = fill("u", "f")
        st = os.statvfs("u")
        return b"%d %d %d" % (files, err, st.f_bavail)

    out = as_nobody(fill_as_user, n.mnt)
    files, err, bavail = [int(x) for x in out.split()]
    assert err == errno.ENOSPC, out
    assert bavail == 0, out
    live = n.status()["live_bytes"]
    assert files * CHUNK == live
    assert limit - CHUNK < live <= limit, (live, limit)

    def write_as_user(name, size):
        def write():
            try:
                with open(os.path.join("u", name), "wb") as f:
                    f.write(b"y" * size)
                return b"0"
            except OSError as e:
                return b"%d" % e.errno
        return int(as_nobody(write, n.mnt))

    # To the byte: the user may reach its limit, not pass it.
    assert write_as_user("rest", limit - live) == 0
    assert n.status()["live_bytes"] == limit
    assert write_as_user("one", 1) == errno.ENOSPC
    # A new file is created whole or not at all (docs/consistency.md,
    # "Creating a file"): its failed update leaves no empty name behind.
    assert not os.path.exists(n.path("u", "one"))
    # Root is served from the reserve: a file of a few KiB, then up to the
    # full quota, to the byte.
    with open(n.path("root.conf"), "wb") as f:
        f.write(b"r" * 2048)
    assert n.status()["live_bytes"] == limit + 2048
    _, err = fill(n.mnt, "r")
    assert err == errno.ENOSPC
    live = n.status()["live_bytes"]
    assert QUOTA - CHUNK < live <= QUOTA, live
    with open(n.path("root-rest"), "wb") as f:
        f.write(b"r" * (QUOTA - live))
    with pytest.raises(OSError) as e:
        with open(n.path("root.conf"), "ab") as f:
            f.write(b"r")
    assert e.value.errno == errno.ENOSPC
    assert n.status()["live_bytes"] == QUOTA
    # Space freed inside the reserve is still root's only.
    os.unlink(n.path("u", "f0000"))
    assert n.status()["live_bytes"] == QUOTA - CHUNK > limit
    assert write_as_user("two", 1) == errno.ENOSPC


def test_quota_reserve_percent_flag(make_node):
    """--quota-reserve-percent 0: the user may fill the whole quota; 50:
    half of it. A refused value exits 2."""
    n = make_node().start(["-o", "allow_other", "--quota-bytes", str(QUOTA),
                           "--quota-reserve-percent", "50"])
    os.chmod(n.mnt, 0o777)
    out = as_nobody(lambda: b"%d %d" % fill(".", "f"), n.mnt)
    files, err = [int(x) for x in out.split()]
    assert err == errno.ENOSPC
    assert files == QUOTA // 2 // CHUNK, out
    n.restart(["-o", "allow_other", "--quota-bytes", str(QUOTA),
               "--quota-reserve-percent", "0"])
    out = as_nobody(lambda: b"%d %d" % fill(".", "g"), n.mnt)
    files, err = [int(x) for x in out.split()]
    assert err == errno.ENOSPC
    assert n.status()["live_bytes"] == QUOTA
    r = subprocess.run([QUORUMFS_BIN, "mount", n.mnt, "--data-dir",
                        n.data_dir, "-f", "--quota-reserve-percent", "51"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2
    assert "--quota-reserve-percent: bad value '51'" in r.stderr, r.stderr


def test_quota_reserve_is_decided_alike_on_every_node(make_cluster):
    """The reserve travels in each command: n2 runs with 50 %, the others
    with the default 5 %. A user's writes through n2 stop at half the
    quota, through n3 at 95 %; root's through n1 reach the quota; every
    node applies the same outcome (same tree, same live bytes)."""
    args = ["-o", "allow_other", "--quota-bytes", str(QUOTA)]
    c = make_cluster(extra_args=args,
                     node_args={"n2": ["--quota-reserve-percent", "50"]})
    c.start()
    n1, n2, n3 = c.node("n1"), c.node("n2"), c.node("n3")
    os.chmod(n1.mnt, 0o777)
    c.wait_applied()

    def user_fill(node, prefix):
        out = as_nobody(lambda: b"%d %d" % fill(".", prefix), node.mnt)
        files, err = [int(x) for x in out.split()]
        assert err == errno.ENOSPC, out
        return files

    assert user_fill(n2, "a") == QUOTA // 2 // CHUNK
    st = c.wait_applied()
    assert {s["live_bytes"] for s in st.values()} == {QUOTA // 2}
    more = user_fill(n3, "b")
    limit = QUOTA - QUOTA * 5 // 100
    assert (QUOTA // 2 // CHUNK + more) * CHUNK == limit // CHUNK * CHUNK
    _, err = fill(n1.mnt, "r")
    assert err == errno.ENOSPC
    st = c.wait_applied()
    live = {s["live_bytes"] for s in st.values()}
    assert len(live) == 1 and QUOTA - CHUNK < live.pop() <= QUOTA, st
    c.assert_same_trees()


def test_a_client_waiting_for_its_proposal_is_not_idle(make_cluster):
    """The idle timeout is for clients still sending their request: one
    whose answer waits for a proposal (here: no quorum, so until the
    proposal times out, well past 2 s) gets that answer."""
    c = make_cluster(proposal_timeout_ms=3000)
    leader = c.start()
    with open(leader.path("f"), "w") as f:
        f.write("x")
    with open(leader.path("f"), "w") as f:
        f.write("y")
    for n in c.followers(leader):
        c.sigstop(n)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(ctl_path(leader))
    t0 = time.monotonic()
    s.sendall(b"compact\t2\n")
    s.settimeout(20)
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    took = time.monotonic() - t0
    s.close()
    for n in list(c.nodes):
        if n.name in c.stopped:
            c.sigcont(n)
    assert got.startswith(b"error: "), got
    assert took > 2.5, (took, got)
