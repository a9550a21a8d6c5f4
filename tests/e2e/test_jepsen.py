"""The short fault-injection run of tests/e2e/jepsen/run.py, both modes.

Each mode runs JEPSEN_SECONDS (default 50) of reads and writes on every
mount under kill -9, SIGSTOP and partitions, then heals and checks (see
run.py). The seed is random unless QFS_JEPSEN_SEED is set; the summary line
names it, so a failure can be run again with the same nemesis schedule.
The long soak is the same command with a larger --seconds (README).
"""

import os
import random
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "jepsen", "run.py")
SECONDS = float(os.environ.get("JEPSEN_SECONDS", "50"))
OVERHEAD_S = 120  # start, heal, final reads, checks, cleanup (bounded)


def short_run(mode, nemesis, seconds, overhead_s, env=None):
    """Runs run.py for `seconds` with the given nemesis kinds and a seed
    (QFS_JEPSEN_SEED or random); asserts it passed; returns its stdout
    (the summary line: seed, counts, nemesis events). env: more variables
    for the run and the nodes it starts."""
    bin_ = os.environ.get("QUORUMFS_BIN", "")
    if not bin_ or not os.access(bin_, os.X_OK):
        pytest.fail("QUORUMFS_BIN is not set to an executable")
    seed = int(os.environ.get("QFS_JEPSEN_SEED",
                              random.SystemRandom().randrange(1 << 31)))
    if mode is None:  # alternate with the seed: both over time
        mode = ("linearizable", "serializable")[seed % 2]
    r = subprocess.run([sys.executable, RUN, "--seconds", str(seconds),
                        "--mode", mode, "--nemesis", nemesis,
                        "--seed", str(seed), "--bin", bin_],
                       capture_output=True, text=True,
                       timeout=seconds + overhead_s,
                       env=dict(os.environ, **(env or {})))
    print(r.stdout)
    print(r.stderr[-20000:], file=sys.stderr)
    assert r.returncode == 0, "%s\n%s" % (r.stdout, r.stderr[-6000:])
    assert " result=PASS" in r.stdout
    return r.stdout


@pytest.mark.parametrize("mode", ["linearizable", "serializable"])
def test_short_run_finds_no_violation(mode):
    short_run(mode, "kill,pause,partition", SECONDS, OVERHEAD_S)


ANSWER_DELAY_SECONDS = float(os.environ.get("JEPSEN_ANSWER_DELAY_SECONDS",
                                            "40"))


def test_answers_held_back_find_no_violation():
    """Every commit's answer held back 30 ms after its apply on every node
    (test hook QFS_TEST_COMMIT_ANSWER_DELAY_MS): other nodes' changes to
    the same keys often apply in that window. Before the fix of
    test_c2c.py::test_change_from_elsewhere_between_apply_and_answer a
    writer's mount kept its own value there for good: 3 violations in
    120 s of seed 401 (none with the fix); the window is what the default
    run found once (seed 1224790989)."""
    short_run("serializable", "kill,pause,partition", ANSWER_DELAY_SECONDS,
              OVERHEAD_S, env={"QFS_TEST_COMMIT_ANSWER_DELAY_MS": "30"})
