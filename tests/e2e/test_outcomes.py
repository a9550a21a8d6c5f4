"""A write's answer matches its fate (docs/architecture.md, "The write
path"): a write whose entry was committed and applied is answered with
success and its full count, whatever the leader did meanwhile; EIO only
when the outcome is unknown at the proposal timeout.

Writers on every mount write unique files while the leadership is moved
from node to node with `quorumfs leader transfer`. Afterwards every write
that failed or came back short must be absent from the tree, and every
acknowledged one present.
"""

import errno
import os
import subprocess
import threading
import time

import cluster as qc
from conftest import QUORUMFS_BIN

# Several pages; small enough that the live data (every write is a new
# file) and so the snapshot images that catch up a stalled node stay small.
WRITE_BYTES = 64 * 1024
SNAPSHOT_WRITE_BYTES = 4 * 1024
# Every write is a new file: a run outgrows the default quota (32 MiB,
# docs/operations.md "Memory"), and ENOSPC is not what this test is about.
QUOTA_ARGS = ["--quota-bytes", str(1 << 30)]
THREADS_PER_NODE = 2
TRANSFERS = 12
TRANSFER_PAUSE_S = 0.4
STALLS = 4
SNAPSHOT_STALLS_MAX = 12
STALL_S = 2.0  # > 1 election timeout: the next leader is elected
# Proposals time out (250 ms) well before a failover ends (election 1 s),
# so that the node must find out what happened to them; their fences wait
# 5 election timeouts (fs/node.c, fence_waiter), long enough for a
# failover on a loaded machine. The test is about what the node answers.
PROPOSAL_TIMEOUT_MS = int(os.environ.get("QFS_TEST_PROPOSAL_TIMEOUT_MS", 250))
ELECTION_MS = 1000
HEARTBEAT_MS = 100


class OutcomeWriter(threading.Thread):
    """Writes unique files PREFIX-i (one os.write of WRITE_BYTES each) and
    records every attempt as (rel, data, outcome): "ok", "short N" or the
    errno name."""

    def __init__(self, node, prefix, write_bytes=WRITE_BYTES):
        super().__init__(daemon=True)
        self.write_bytes = write_bytes
        self.node = node
        self.prefix = prefix
        self.stop_event = threading.Event()
        self.attempts = []
        self.unexpected = None

    def one(self, rel, data):
        try:
            fd = os.open(self.node.path(rel), os.O_WRONLY | os.O_CREAT, 0o644)
        except OSError as e:
            e.strerror = "create"  # the file must not exist afterwards
            raise
        try:
            n = os.write(fd, data)
        finally:
            os.close(fd)
        return "ok" if n == len(data) else "short %d" % n

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            rel = "%s-%05d" % (self.prefix, i)
            head = ("%s %d\n" % (rel, i)).encode()
            data = head + bytes([65 + i % 26]) * (self.write_bytes - len(head))
            try:
                outcome = self.one(rel, data)
            except OSError as e:
                outcome = errno.errorcode.get(e.errno, str(e.errno))
                if e.strerror == "create":
                    outcome += " (create)"
                if e.errno not in (errno.EIO, errno.EAGAIN):
                    self.unexpected = e
            self.attempts.append((rel, data, outcome))
            i += 1


def leader_name(c):
    for n in c.running():
        try:
            st = n.status()
        except (OSError, ValueError):
            continue
        if st.get("role") == "leader":
            return n.name
    return None


def transfer_from_leader(c):
    """One `quorumfs leader transfer` on the current leader (to the most
    up-to-date voter). Returns True if it moved."""
    name = leader_name(c)
    if name is None:
        return False
    r = subprocess.run([QUORUMFS_BIN, "leader", "transfer", "--data-dir",
                        c.node(name).data_dir],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def run_writers(c, nemesis):
    """Writers on every mount while nemesis() runs; returns the writers."""
    writers = [OutcomeWriter(n, "%s-w%d" % (n.name, k))
               for n in c.nodes for k in range(THREADS_PER_NODE)]
    for w in writers:
        w.start()
    try:
        time.sleep(0.5)
        nemesis()
        time.sleep(0.5)
    finally:
        for w in writers:
            w.stop_event.set()
        for w in writers:
            w.join(60)
    return writers


def check_outcomes(c, writers):
    """Every acknowledged write is in the tree, no failed or short one is;
    returns (attempts, failed)."""
    for w in writers:
        assert w.unexpected is None, w.unexpected
    t = c.assert_same_trees()
    attempts = [a for w in writers for a in w.attempts]
    wrong = []
    for rel, data, outcome in attempts:
        entry = t.get(rel)
        present = entry is not None and entry[2] == data
        if outcome == "ok" and not present:
            wrong.append("%s acknowledged but %s" % (
                rel, "absent" if entry is None else "different"))
        elif outcome != "ok" and present:
            wrong.append("%s answered %s but its content is in the tree"
                         % (rel, outcome))
        elif outcome.endswith("(create)") and entry is not None:
            wrong.append("%s: create answered %s but the file exists"
                         % (rel, outcome))
    failed = sum(1 for a in attempts if a[2] != "ok")
    print("attempts", len(attempts), "failed", failed,
          sorted(set(a[2] for a in attempts if a[2] != "ok")))
    assert not wrong, "%d of %d writes (%d failed) answered wrongly: %s" % (
        len(wrong), len(attempts), failed, wrong[:10])
    assert len(attempts) - failed > 0
    return len(attempts), failed


def test_writes_during_leader_transfers_answer_their_fate(make_cluster):
    c = make_cluster(proposal_timeout_ms=PROPOSAL_TIMEOUT_MS,
                     election_ms=ELECTION_MS, heartbeat_ms=HEARTBEAT_MS,
                     extra_args=QUOTA_ARGS)
    c.start()
    moved = [0]

    def transfers():
        for _ in range(TRANSFERS):
            moved[0] += transfer_from_leader(c)
            time.sleep(TRANSFER_PAUSE_S)

    writers = run_writers(c, transfers)
    assert moved[0] >= TRANSFERS // 2, \
        "leadership moved only %d times" % moved[0]
    check_outcomes(c, writers)


def test_writes_while_the_leader_stalls_answer_their_fate(make_cluster):
    """The leader is stopped (SIGSTOP) longer than the proposal timeout
    while it holds proposals; the next leader commits those that reached
    it. Before the fence (fs/node.c) they were answered EIO: 'failed' but
    in the tree."""
    c = make_cluster(proposal_timeout_ms=PROPOSAL_TIMEOUT_MS,
                     election_ms=ELECTION_MS, heartbeat_ms=HEARTBEAT_MS,
                     extra_args=QUOTA_ARGS)
    c.start()
    stalls = [0]

    def stall_leaders():
        for _ in range(STALLS):
            ld = c.wait_leader()
            c.sigstop(ld)
            time.sleep(STALL_S)
            c.sigcont(ld)
            stalls[0] += 1
            time.sleep(STALL_S)

    writers = run_writers(c, stall_leaders)
    assert stalls[0] == STALLS
    check_outcomes(c, writers)


def test_writes_of_a_follower_caught_up_by_snapshot_answer_their_fate(
        make_cluster):
    """A follower stopped with writes in flight comes back behind the
    leader's compacted log and installs a snapshot that holds them: their
    entries are never applied there one by one. Before
    waiters_after_install (fs/node.c) they were answered EIO after their
    fence (a duplicate): 'failed' but in the tree."""
    # A short kept tail (--snapshot-entries): a stop of a second or two
    # outlasts it even on a loaded machine, where the leader's writers
    # manage only a few hundred writes per second.
    c = make_cluster(proposal_timeout_ms=10000,
                     extra_args=["--snapshot-bytes", str(1 << 20),
                                 "--snapshot-entries", "100"] + QUOTA_ARGS)
    ld = c.start()
    f = c.followers(ld)[0]
    # The leader's writer goes on while f is stopped: past the inflight
    # window of appends to f, the entries it did not send are compacted,
    # and f's own proposals, forwarded when it resumes, land there too.
    # The proposal timeout covers the image transfer (~100 MB): an EIO
    # whose fence also timed out would be a truly unknown outcome.
    # Small files: a run of many stops writes tens of thousands of them,
    # and the image the follower installs holds them all (at 64 KiB each,
    # over a gigabyte: the install itself outlasted the convergence wait).
    writers = [OutcomeWriter(n, "%s-w%d" % (n.name, k),
                             write_bytes=SNAPSHOT_WRITE_BYTES)
               for n in (f, ld) for k in range(THREADS_PER_NODE)]
    offset = os.path.getsize(f.log_path)
    try:
        for w in writers:
            w.start()
        # Stops until f installed a snapshot (at least STALLS of them),
        # each longer than the last: how many writes a stop outlasts
        # depends on the machine's load.
        for r in range(SNAPSHOT_STALLS_MAX):
            time.sleep(0.5)
            c.sigstop(f)
            time.sleep(1.0 + 0.5 * r)
            c.sigcont(f)
            time.sleep(1.0)
            if r + 1 >= STALLS and \
                    "installed snapshot" in c.log_since(f, offset):
                break
    finally:
        for w in writers:
            w.stop_event.set()
        for w in writers:
            w.join(60)
    check_outcomes(c, writers)
    log = c.log_since(f, offset)
    assert "installed snapshot" in log, f.log()[-3000:]
