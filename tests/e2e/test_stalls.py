"""A stalled host is not a silent peer.

On an overloaded machine every node can be descheduled for longer than an
election timeout. Time during which a node's own loop did not run is not
silence from its peers: it must not make a follower campaign or a leader
step down on check-quorum (issue: ~6.4 s leaderless periods at load 10-19).
SIGSTOP of every node at once stands for such a stall.
"""

import os
import random
import signal
import time

import cluster as qc

STALL_S = 3.5  # > 3 election timeouts at the default 1000 ms


def test_all_nodes_stalled_keep_their_leader(make_cluster):
    c = make_cluster()
    c.start()
    leader = c.leader()
    term = leader.status()["term"]
    qc.write_file(leader.path("before"), b"1\n")
    for n in c.nodes:
        os.kill(n.proc.pid, signal.SIGSTOP)
    time.sleep(STALL_S)
    for n in c.nodes:
        os.kill(n.proc.pid, signal.SIGCONT)
    time.sleep(2.5)  # more than 2 election timeouts of running again
    qc.write_file(leader.path("after"), b"2\n")
    for n in c.nodes:
        st = n.status()
        assert st["term"] == term, (n.name, st, term)
        assert st["leader"] == leader.name, (n.name, st)
    for n in c.nodes:
        assert "check-quorum failed" not in n.log(), n.name
    c.assert_same_trees()


def test_starved_nodes_keep_their_leader(make_cluster):
    """Short runs between long stalls, as on a host whose CPUs are taken:
    the followers stop first and the leader last, the leader resumes first
    (no node ever runs a whole election timeout without the leader's
    heartbeats). A node that resumes must read what its peers sent before
    it judges their silence: none may campaign."""
    c = make_cluster()
    c.start()
    leader = c.leader()
    term = leader.status()["term"]
    followers = c.followers(leader)
    rng = random.Random(7)
    for _ in range(12):
        for n in followers + [leader]:
            os.kill(n.proc.pid, signal.SIGSTOP)
            time.sleep(rng.uniform(0.0, 0.05))
        time.sleep(rng.uniform(1.2, 2.5))
        for n in [leader] + followers:
            os.kill(n.proc.pid, signal.SIGCONT)
            time.sleep(rng.uniform(0.0, 0.02))
        time.sleep(rng.uniform(0.2, 0.4))
    time.sleep(2.5)
    qc.write_file(leader.path("after"), b"2\n")
    for n in c.nodes:
        st = n.status()
        assert st["term"] == term, (n.name, st, term)
        assert st["leader"] == leader.name, (n.name, st)
    c.assert_same_trees()
