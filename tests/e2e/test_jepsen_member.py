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
import re

from test_jepsen import short_run

SECONDS = float(os.environ.get("JEPSEN_MEMBER_SECONDS", "40"))
OVERHEAD_S = 180  # start, a join in progress, heal, checks (bounded)


def test_member_nemesis_short_run():
    out = short_run(None, "kill,pause,partition,member", SECONDS, OVERHEAD_S)
    m = re.search(r" nemesis=(\S+)", out)
    counts = dict(x.split(":") for x in m.group(1).split(","))
    assert int(counts.get("member_remove", 0)) + \
        int(counts.get("member_add", 0)) > 0, out
