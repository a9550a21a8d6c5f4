"""A three-node quorumfs cluster on one machine, for end-to-end tests.

Contract:
- Cluster(root, ...) makes three conftest.Node objects n1, n2, n3 whose
  peer addresses are 127.0.0.1/.2/.3 on a random free port base; start()
  launches them with --listen-peer/--initial-cluster and waits until every
  node names the same leader in /.cluster/status.
- leader(), followers(), wait_leader(), wait_converged() observe the
  cluster; tree() and assert_same_trees() compare the mounts (paths, modes,
  contents; the reserved /.cluster and /.snapshots are skipped).
- Partition isolates 127.0.0.x addresses from each other with an nftables
  table of its own (inet qfs_test_<pid>_<n>); heal() deletes that table.
  It drops only TCP to and from this cluster's peer listen ports, so other
  clusters on the same addresses (other tests, other ports) are untouched.
  Only 127.0.0.0/8 addresses are accepted.
- Writer is a thread that writes unique files on one mount and records which
  writes were acknowledged (close() returned 0) and which failed.
- cleanup() always leaves no process, mount or nftables table behind: it
  stops writers, deletes partitions, kills (SIGKILL, also of a SIGSTOPped
  node) only the PIDs it started and lazily unmounts every mountpoint.
"""

import errno
import ipaddress
import json
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

from conftest import Node, tree  # noqa: F401 (tree: used by callers)
from peer_forge import xxh32

HEARTBEAT_MS = 50
ELECTION_MS = 300
PROPOSAL_TIMEOUT_MS = 2000
LEADER_TIMEOUT_S = 15.0
CONVERGE_TIMEOUT_S = 30.0
POLL_S = 0.05
NAMES = ("n1", "n2", "n3")
PORT_MIN, PORT_MAX = 20000, 60000
PORT_TRIES_MAX = 50


# ---------------------------------------------------------------- helpers

def wait_for(pred, what="condition", timeout=5.0):
    """pred()'s first true value, polled every 50 ms; AssertionError
    naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """open + write + close like `echo v > f`; raises OSError (close() is
    where the proposal's error surfaces)."""
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, flags, 0o644)
    try:
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:])
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def metric(node, name):
    """The value of an unlabelled sample `name` in node's /.cluster/metrics."""
    with open(node.path(".cluster", "metrics")) as f:
        for line in f.read().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError("no %s in %s's metrics" % (name, node.name))


def tree_diff(a, b, limit=10):
    """A short human-readable difference of two trees ([] if equal)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s: %r != %r" % (k, a.get(k), b.get(k)))
            if len(out) >= limit:
                out.append("...")
                break
    return out


def free_port_base():
    """A port P such that 127.0.0.i:P+i-1 (i = 1..3) can be bound now."""
    for _ in range(PORT_TRIES_MAX):
        base = random.randrange(PORT_MIN, PORT_MAX - len(NAMES))
        socks = []
        try:
            for i in range(len(NAMES)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.%d" % (i + 1), base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port base after %d tries" % PORT_TRIES_MAX)


def expect_closed(sock, timeout=5.0):
    """Read until the peer closes sock; returns what it sent before (a
    reset or a TLS error counts as closed). Fails if it stays open."""
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return got
            got += chunk
    except (ConnectionResetError, ssl.SSLError):
        return got
    except socket.timeout:
        raise AssertionError("connection still open after %ss (got %r)"
                             % (timeout, got))


def wait_log(node, offset, needle, timeout=5.0):
    """Wait until needle is in node's log after offset; returns that part
    of the log."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = Cluster.log_since(node, offset)
        if needle in text:
            return text
        time.sleep(POLL_S)
    raise AssertionError("%r not in %s's log:\n%s"
                         % (needle, node.name, text[-2000:]))


FRAME_MAGIC = b"QFSP"
FRAME_VERSION = 1
FRAME_KIND_HELLO = 1


def hello_frame(cluster_id, node_id):
    """A transport HELLO frame (docs/format-wire.md section 2)."""
    body = struct.pack("<QQ", cluster_id, node_id)
    return (FRAME_MAGIC + struct.pack("<HHII", FRAME_VERSION,
                                      FRAME_KIND_HELLO, len(body),
                                      xxh32(body)) + body)


# ---------------------------------------------------------------- partition

_partition_seq = 0


def _check_loopback(addr):
    if ipaddress.ip_address(addr) not in ipaddress.ip_network("127.0.0.0/8"):
        raise ValueError("partition helpers only touch 127.0.0.0/8: %s"
                         % addr)


class Partition:
    """An nftables table of our own that drops the TCP traffic between one
    side (a list of 127.0.0.x addresses) and the other, in input and output.

    ports maps each address to its node's peer listen port. A connection
    between the sides goes from an ephemeral port to one of those listen
    ports, so for every pair (a, b) four rules match it: to b's port and
    back from it, to a's port and back from it. Nothing else is matched:
    other clusters on the same addresses listen on other ports."""

    def __init__(self, ports):
        global _partition_seq
        _partition_seq += 1
        self.table = "qfs_test_%d_%d" % (os.getpid(), _partition_seq)
        self.ports = dict(ports)
        self.active = False
        for ip, port in self.ports.items():
            _check_loopback(ip)
            if not 0 < int(port) < 65536:
                raise ValueError("bad port for %s: %r" % (ip, port))

    def rules(self, side_a, side_b):
        """The nft rules (one per line) dropping side_a <-> side_b."""
        out = []
        for a in side_a:
            for b in side_b:
                for x, y in ((a, b), (b, a)):  # y listens, x dials
                    py = int(self.ports[y])
                    out.append("ip saddr %s ip daddr %s tcp dport %d drop"
                               % (x, y, py))
                    out.append("ip saddr %s ip daddr %s tcp sport %d drop"
                               % (y, x, py))
        return "".join(r + "\n" for r in out)

    def isolate(self, side_a, side_b):
        for ip in list(side_a) + list(side_b):
            _check_loopback(ip)
            if ip not in self.ports:
                raise ValueError("%s is not a node of this cluster" % ip)
        if set(side_a) & set(side_b):
            raise ValueError("sides overlap: %s %s" % (side_a, side_b))
        rules = self.rules(side_a, side_b)
        script = ("table inet %s {\n"
                  " chain input { type filter hook input priority -10;"
                  " policy accept;\n%s }\n"
                  " chain output { type filter hook output priority -10;"
                  " policy accept;\n%s }\n"
                  "}\n" % (self.table, rules, rules))
        self.active = True  # set first: heal() must run even if nft fails
        r = subprocess.run(["nft", "-f", "-"], input=script, text=True,
                           capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("nft failed (%d): %s\n%s"
                               % (r.returncode, r.stderr, script))

    def exists(self):
        r = subprocess.run(["nft", "list", "table", "inet", self.table],
                           capture_output=True)
        return r.returncode == 0

    def heal(self):
        if not self.active:
            return
        subprocess.run(["nft", "delete", "table", "inet", self.table],
                       capture_output=True)
        self.active = self.exists()
        if self.active:
            raise RuntimeError("nft table inet %s still exists" % self.table)


# ---------------------------------------------------------------- writer

class Writer(threading.Thread):
    """Writes PREFIX-i (unique names) on one mount until stopped, with a
    short pause between writes. acked maps relative path -> content of every
    write whose close() returned 0; errors lists (errno, time)."""

    def __init__(self, node, prefix, pause_s=0.01):
        super().__init__(daemon=True)
        self.node = node
        self.prefix = prefix
        self.pause_s = pause_s
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}
        self.ack_times = []
        self.errors = []
        self.unexpected = None

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            rel = "%s-%05d" % (self.prefix, i)
            data = ("%s %d %f\n" % (self.prefix, i, time.time())).encode()
            try:
                write_file(self.node.path(rel), data)
                with self.lock:
                    self.acked[rel] = data
                    self.ack_times.append(time.monotonic())
            except OSError as e:
                with self.lock:
                    self.errors.append((e.errno, time.monotonic()))
                if e.errno not in (errno.EIO, errno.ETIMEDOUT,
                                   errno.ENOTCONN, errno.EEXIST):
                    self.unexpected = e
                time.sleep(0.05)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.unexpected = e
                return
            i += 1
            time.sleep(self.pause_s)

    def acks_since(self, t):
        with self.lock:
            return sum(1 for x in self.ack_times if x >= t)

    def stop(self, timeout=30):
        self.stop_event.set()
        self.join(timeout)


# ---------------------------------------------------------------- cluster

class Cluster:
    """Three Nodes with a shared --initial-cluster. extra_args go to every
    node; node_args maps a name to more args for that node only."""

    def __init__(self, root, extra_args=(), node_args=None,
                 heartbeat_ms=HEARTBEAT_MS, election_ms=ELECTION_MS,
                 proposal_timeout_ms=PROPOSAL_TIMEOUT_MS):
        self.root = root
        self.port_base = free_port_base()
        self.addrs = {n: "127.0.0.%d:%d" % (i + 1, self.port_base + i)
                      for i, n in enumerate(NAMES)}
        self.ips = {n: "127.0.0.%d" % (i + 1) for i, n in enumerate(NAMES)}
        self.initial = ",".join("%s=%s" % (n, self.addrs[n]) for n in NAMES)
        self.election_ms = election_ms
        self.proposal_timeout_ms = proposal_timeout_ms
        self.common = ["--heartbeat-ms", str(heartbeat_ms),
                       "--election-ms", str(election_ms),
                       "--proposal-timeout-ms", str(proposal_timeout_ms)]
        self.common += list(extra_args)
        self.node_args = dict(node_args or {})
        self.nodes = [Node(root, n) for n in NAMES]
        self.partitions = []
        self.writers = []
        self.stopped = set()  # names of SIGSTOPped nodes
        self.status_errors = {}  # name: why its last status was unreadable

    # ---- process control ----
    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def args(self, node, state="new"):
        return (["--listen-peer", self.addrs[node.name],
                 "--initial-cluster", self.initial,
                 "--initial-cluster-state", state] + self.common +
                list(self.node_args.get(node.name, ())))

    def start(self, wait_leader=True):
        for n in self.nodes:
            n.start(self.args(n), wait=False)
        for n in self.nodes:
            n.wait_ready()
        if wait_leader:
            return self.wait_leader()
        return None

    def running(self):
        """Nodes whose process is alive and not stopped."""
        return [n for n in self.nodes
                if n.proc is not None and n.proc.poll() is None and
                n.name not in self.stopped]

    def kill9(self, node):
        self.stopped.discard(node.name)
        node.kill9()

    def restart(self, node, state="existing"):
        """Start a stopped/killed node again (its log file is appended);
        returns the log size before the start, for log_since()."""
        assert node.proc is None or node.proc.poll() is not None
        offset = os.path.getsize(node.log_path) \
            if os.path.exists(node.log_path) else 0
        node.start(self.args(node, state))
        return offset

    def sigstop(self, node):
        self.stopped.add(node.name)
        node.proc.send_signal(signal.SIGSTOP)

    def sigcont(self, node):
        node.proc.send_signal(signal.SIGCONT)
        self.stopped.discard(node.name)

    def writer(self, node, prefix, pause_s=0.01):
        w = Writer(node, prefix, pause_s)
        self.writers.append(w)
        w.start()
        return w

    def partition(self):
        p = Partition({self.ips[n]: self.port_base + i
                       for i, n in enumerate(NAMES)})
        self.partitions.append(p)
        return p

    def cleanup(self):
        """Leave nothing behind. Never raises before everything is tried."""
        errors = []
        for w in self.writers:
            w.stop_event.set()
        for p in self.partitions:
            try:
                p.heal()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        for n in self.nodes:
            try:
                n.cleanup()  # SIGKILL works on a SIGSTOPped process too
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        self.stopped.clear()
        for w in self.writers:
            w.join(30)
        if errors:
            raise errors[0]

    # ---- observation ----
    @staticmethod
    def log_since(node, offset):
        with open(node.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def statuses(self, nodes=None):
        """{name: status dict or None when unreadable}."""
        out = {}
        for n in nodes if nodes is not None else self.running():
            try:
                out[n.name] = n.status()
                self.status_errors.pop(n.name, None)
            except (OSError, ValueError) as e:
                out[n.name] = None
                running = n.proc is not None and n.proc.poll() is None
                self.status_errors[n.name] = "%r (%s)" % (
                    e, "running" if running else "not running")
        return out

    def wait_leader(self, nodes=None, timeout=LEADER_TIMEOUT_S):
        """Wait until every node of `nodes` (default: the running ones)
        names the same leader, that leader is one of them and says it is
        leader in the same term. Returns the leader's Node."""
        nodes = list(nodes) if nodes is not None else self.running()
        names = {n.name for n in nodes}
        deadline = time.monotonic() + timeout
        st = {}
        while time.monotonic() < deadline:
            st = self.statuses(nodes)
            if all(s is not None for s in st.values()):
                leaders = {s["leader"] for s in st.values()}
                terms = {s["term"] for s in st.values()}
                if len(leaders) == 1 and len(terms) == 1:
                    ld = leaders.pop()
                    if ld in names and st[ld]["role"] == "leader":
                        return self.node(ld)
            time.sleep(POLL_S)
        raise AssertionError("no agreed leader among %s after %ss: %s%s"
                             % (sorted(names), timeout,
                                {k: v and (v["role"], v["term"], v["leader"])
                                 for k, v in st.items()},
                                "".join("; %s: %s" % (k, self.status_errors[k])
                                        for k in sorted(st)
                                        if st[k] is None and
                                        k in self.status_errors)))

    def leader(self):
        return self.wait_leader()

    def followers(self, leader=None):
        leader = leader or self.leader()
        return [n for n in self.running() if n is not leader]

    def wait_applied(self, nodes=None, timeout=CONVERGE_TIMEOUT_S,
                     kernel=True):
        """Wait until every node has applied the same index, and that index
        is at least the highest commit index seen among them. With kernel
        (the default), also until each mount has sent its kernel every
        invalidation of what it applied: the notifier sends them just after
        the apply, and until then a cached name may still show what was
        changed (docs/consistency.md, "Kernel caching")."""
        nodes = list(nodes) if nodes is not None else self.running()
        deadline = time.monotonic() + timeout
        st = {}
        while time.monotonic() < deadline:
            st = self.statuses(nodes)
            if all(s is not None for s in st.values()):
                applied = {s["applied_index"] for s in st.values()}
                commit = max(s["commit_index"] for s in st.values())
                unsent = sum(s.get("fuse_invalidations_unsent", 0)
                             for s in st.values()) if kernel else 0
                if (len(applied) == 1 and applied.pop() >= commit and
                        unsent == 0):
                    return st
            time.sleep(POLL_S)
        raise AssertionError("nodes did not converge after %ss: %s"
                             % (timeout,
                                {k: v and (v["commit_index"],
                                           v["applied_index"],
                                           v.get("fuse_invalidations_unsent"))
                                 for k, v in st.items()}))

    def assert_same_trees(self, nodes=None, timeout=CONVERGE_TIMEOUT_S):
        """Wait for convergence, then the trees of all `nodes` (default:
        all three, which must be running) must be identical. Returns the
        tree."""
        nodes = list(nodes) if nodes is not None else list(self.nodes)
        deadline = time.monotonic() + timeout
        diff = []
        while True:
            self.wait_applied(nodes, max(1.0, deadline - time.monotonic()))
            trees = [tree(n.mnt) for n in nodes]
            diff = []
            for n, t in zip(nodes[1:], trees[1:]):
                d = tree_diff(trees[0], t)
                if d:
                    diff.append("%s vs %s:\n  %s"
                                % (nodes[0].name, n.name, "\n  ".join(d)))
            if not diff:
                return trees[0]
            if time.monotonic() >= deadline:
                raise AssertionError("trees differ:\n" + "\n".join(diff))
            time.sleep(0.2)

    def assert_acked_present(self, acked, t):
        """Every acknowledged write (rel path -> content) is in tree t."""
        missing = [k for k, v in acked.items()
                   if t.get(k) is None or t[k][2] != v]
        assert not missing, ("%d acknowledged writes missing or wrong, "
                             "e.g. %s" % (len(missing), missing[:5]))

    def assert_caught_up_by_snapshot(self, node, log_offset, acked):
        """All nodes converge with every acknowledged write, and node's log
        since log_offset says it installed a snapshot. Returns the tree."""
        t = self.assert_same_trees()
        self.assert_acked_present(acked, t)
        log = self.log_since(node, log_offset)
        assert "installed snapshot" in log, log[-3000:]
        return t

    def status_json_ctl(self, node):
        """`quorumfs status --json --data-dir D` (the Unix socket path)."""
        r = subprocess.run([node.cmd()[0], "status", "--json",
                            "--data-dir", node.data_dir],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise AssertionError("quorumfs status failed (%d): %s"
                                 % (r.returncode, r.stderr))
        return json.loads(r.stdout)
