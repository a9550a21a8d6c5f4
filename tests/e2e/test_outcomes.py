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

WRITE_BYTES = 300 * 1024  # several pages: a split WRITE can come back short
THREADS_PER_NODE = 2
TRANSFERS = 12
TRANSFER_PAUSE_S = 0.4
STALLS = 4
STALL_S = 1.0
# Short, so that proposals do time out around the transfers: the test is
# about what the node answers then.
PROPOSAL_TIMEOUT_MS = int(os.environ.get("QFS_TEST_PROPOSAL_TIMEOUT_MS", 250))


class OutcomeWriter(threading.Thread):
    """Writes unique files PREFIX-i (one os.write of WRITE_BYTES each) and
    records every attempt as (rel, data, outcome): "ok", "short N" or the
    errno name."""

    def __init__(self, node, prefix):
        super().__init__(daemon=True)
        self.node = node
        self.prefix = prefix
        self.stop_event = threading.Event()
        self.attempts = []
        self.unexpected = None

    def one(self, rel, data):
        fd = os.open(self.node.path(rel), os.O_WRONLY | os.O_CREAT, 0o644)
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
            data = head + bytes([65 + i % 26]) * (WRITE_BYTES - len(head))
            try:
                outcome = self.one(rel, data)
            except OSError as e:
                outcome = errno.errorcode.get(e.errno, str(e.errno))
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
    failed = sum(1 for a in attempts if a[2] != "ok")
    print("attempts", len(attempts), "failed", failed,
          sorted(set(a[2] for a in attempts if a[2] != "ok")))
    assert not wrong, "%d of %d writes (%d failed) answered wrongly: %s" % (
        len(wrong), len(attempts), failed, wrong[:10])
    assert len(attempts) - failed > 0
    return len(attempts), failed


def test_writes_during_leader_transfers_answer_their_fate(make_cluster):
    c = make_cluster(proposal_timeout_ms=PROPOSAL_TIMEOUT_MS)
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
    c = make_cluster(proposal_timeout_ms=PROPOSAL_TIMEOUT_MS)
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
