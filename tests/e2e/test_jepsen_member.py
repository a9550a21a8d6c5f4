"""The short member-nemesis run of tests/e2e/jepsen/run.py (issue 13).

JEPSEN_MEMBER_SECONDS (default 40) of reads and writes on every mount
while one nemesis kills, pauses and partitions nodes and another changes
the membership through the CLI (remove, wipe and add back, a 4th voter,
leader transfer, removal of the leader; docs/jepsen.md). The mode
alternates with the seed (random unless QFS_JEPSEN_SEED is set; the
summary line names both), so CI covers both over time at the cost of one
run. The checker must find no violation, and at least one membership
change must have been committed (else the run tested nothing new).
"""

import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "jepsen", "run.py")
SECONDS = float(os.environ.get("JEPSEN_MEMBER_SECONDS", "40"))
OVERHEAD_S = 180  # start, a join in progress, heal, checks (bounded)


def test_member_nemesis_short_run():
    bin_ = os.environ.get("QUORUMFS_BIN", "")
    assert bin_ and os.access(bin_, os.X_OK), \
        "QUORUMFS_BIN is not set to an executable"
    seed = int(os.environ.get("QFS_JEPSEN_SEED",
                              random.SystemRandom().randrange(1 << 31)))
    mode = ("linearizable", "serializable")[seed % 2]
    r = subprocess.run([sys.executable, RUN, "--seconds", str(SECONDS),
                        "--mode", mode,
                        "--nemesis", "kill,pause,partition,member",
                        "--seed", str(seed), "--bin", bin_],
                       capture_output=True, text=True,
                       timeout=SECONDS + OVERHEAD_S)
    print(r.stdout)
    print(r.stderr[-20000:], file=sys.stderr)
    assert r.returncode == 0, "%s\n%s" % (r.stdout, r.stderr[-6000:])
    assert " result=PASS" in r.stdout
    m = re.search(r" nemesis=(\S+)", r.stdout)
    counts = dict(x.split(":") for x in m.group(1).split(","))
    assert int(counts.get("member_remove", 0)) + \
        int(counts.get("member_add", 0)) > 0, r.stdout
