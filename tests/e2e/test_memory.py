"""Memory bounded in bytes, not entry counts (DESIGN §1, docs/benchmarks.md
"Memory"): big writes must not pile up in the node's in-memory raft log.

The bound asserted is generous (measured peak about 110 MiB; before the
byte limits the raft log alone held every write: about 1 MiB of RSS per
write, over 450 MiB here), so it cannot flake on a loaded machine.
"""

import os
import subprocess
import time

import pytest

from conftest import QUORUMFS_BIN

WRITES = 450
FILES = 5
MIB = 1 << 20
RSS_MAX_MIB = 300


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS for %d" % pid)


def sanitized():
    """A sanitizer build's RSS (shadow memory, quarantine) says nothing
    about ours."""
    r = subprocess.run(["ldd", QUORUMFS_BIN], capture_output=True, text=True)
    return "libasan" in r.stdout or "libtsan" in r.stdout


def test_big_writes_keep_rss_bounded(make_node):
    if sanitized():
        pytest.skip("RSS of a sanitizer build")
    n = make_node().start()
    blob = os.urandom(MIB)  # incompressible: the worst case for the db
    peak = 0
    for i in range(WRITES):
        data = i.to_bytes(4, "little") + blob[4:]
        with open(n.path("f%d" % (i % FILES)), "wb") as f:
            f.write(data)
        peak = max(peak, rss_mib(n.proc.pid))
    with open(n.path("f%d" % ((WRITES - 1) % FILES)), "rb") as f:
        assert f.read()[:4] == (WRITES - 1).to_bytes(4, "little")
    assert peak < RSS_MAX_MIB, "peak RSS %d MiB after %d writes of 1 MiB" % (
        peak, WRITES)


def test_byte_limits_are_validated(tmp_path):
    for opt, bad in (("--snapshot-bytes", "5"), ("--history-bytes", "1000"),
                     ("--snapshot-bytes", "-1"), ("--history-bytes", "x")):
        r = subprocess.run([QUORUMFS_BIN, "mount", str(tmp_path / "m"),
                            "--data-dir", str(tmp_path / "d"), opt, bad],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, (opt, bad, r)
        assert "bad value" in r.stderr, r.stderr
    r = subprocess.run([QUORUMFS_BIN, "mount", "--help"],
                       capture_output=True, text=True, timeout=30)
    assert "--snapshot-bytes" in r.stdout and "--history-bytes" in r.stdout


def test_history_bytes_compacts_history(make_node):
    """Past --history-bytes the history is compacted to about half of it:
    the compact revision moves and the db file shrinks below what was
    written (history bounded in bytes, not only in revisions)."""
    n = make_node().start(["--history-bytes", str(4 * MIB)])
    blob = os.urandom(256 * 1024)
    for i in range(64):  # 16 MiB through one file: 64 revisions
        with open(n.path("f"), "wb") as f:
            f.write(i.to_bytes(4, "little") + blob[4:])
    deadline = time.monotonic() + 60
    st = n.status()
    while time.monotonic() < deadline:
        st = n.status()
        if st["compact_revision"] > 0 and st["db_bytes"] < 12 * MIB:
            break
        time.sleep(0.2)
    assert st["compact_revision"] > 0, st
    assert st["db_bytes"] < 12 * MIB, st
