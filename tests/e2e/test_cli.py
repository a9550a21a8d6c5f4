"""The command line: every flag is checked before anything touches the
disk, and a refusal names the flag (exit status 2, a message on stderr
that starts with the command's prefix). Also the CLI's own messages for a
data dir in use and for files that are not snapshot files, and `snapshot
restore` into a data dir whose parents do not exist yet."""

import os
import re
import subprocess

import pytest

from conftest import QUORUMFS_BIN, unmount

# Refusals never open a socket; the addresses are only parsed.
A1, A2, A3 = "127.0.0.1:17401", "127.0.0.2:17402", "127.0.0.3:17403"
CLUSTER = "n1=%s,n2=%s,n3=%s" % (A1, A2, A3)


def run(args, timeout=20):
    return subprocess.run([QUORUMFS_BIN] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def refuse(tmp_path):
    """Run `quorumfs mount` with flags that must be refused: exit 2, every
    wanted piece in the message, and no data dir (nor its parent) made."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    parent = tmp_path / "never"
    data = parent / "data"

    def check(flags, *wanted):
        r = run(["mount", mnt, "--data-dir", data, "-f"] + flags)
        assert r.returncode == 2, (flags, r.returncode, r.stderr)
        assert r.stderr.startswith("quorumfs mount: "), r.stderr
        for w in wanted:
            assert w in r.stderr, (flags, w, r.stderr)
        assert not os.path.exists(parent), flags
        assert not os.path.ismount(mnt)
        return r.stderr

    yield check
    unmount(str(mnt))  # a flag wrongly accepted (-f: killed at the timeout)


def test_heartbeat_must_be_below_election(refuse):
    err = refuse(["--election-ms", "50", "--heartbeat-ms", "100"],
                 "--heartbeat-ms 100", "--election-ms 50", "must be below")
    assert "Assertion" not in err
    refuse(["--election-ms", "100", "--heartbeat-ms", "100"],
           "must be below")
    # Without --election-ms: its default (1000).
    refuse(["--heartbeat-ms", "1000"], "--election-ms 1000")


@pytest.mark.parametrize("entry", ["a=nonsense", "a=127.0.0.1",
                                   "a=127.0.0.1:0", "a=127.0.0.1:65536",
                                   "a=127.0.0.1:http", "a=localhost:17401",
                                   "a=:17401"])
def test_initial_cluster_bad_address(refuse, entry):
    refuse(["--name", "a", "--listen-peer", A1, "--initial-cluster", entry],
           "--initial-cluster", "'%s'" % entry)


def test_initial_cluster_bad_address_among_good_ones(refuse):
    refuse(["--name", "n1", "--listen-peer", A1, "--initial-cluster",
            CLUSTER + ",n4=127.0.0.4:99999"],
           "--initial-cluster", "'n4=127.0.0.4:99999'")


def test_initial_cluster_duplicate_name(refuse):
    refuse(["--name", "n1", "--listen-peer", A1, "--initial-cluster",
            "n1=%s,n2=%s,n2=%s" % (A1, A2, A3)],
           "--initial-cluster", "same name", "n2=%s" % A2, "n2=%s" % A3)


def test_initial_cluster_duplicate_address(refuse):
    refuse(["--name", "n1", "--listen-peer", A1, "--initial-cluster",
            "n1=%s,n2=%s,n3=%s" % (A1, A2, A2)],
           "--initial-cluster", "same address", "n2=%s" % A2,
           "n3=%s" % A2)


def test_listen_peer_must_be_own_entry(refuse):
    refuse(["--name", "n1", "--listen-peer", A2, "--initial-cluster",
            CLUSTER],
           "--listen-peer %s" % A2, "--initial-cluster", "n1=%s" % A1)
    # Same host, other port.
    refuse(["--name", "n1", "--listen-peer", "127.0.0.1:17409",
            "--initial-cluster", CLUSTER], "--listen-peer", "n1=%s" % A1)


def test_listen_peer_bad_address(refuse):
    refuse(["--listen-peer", "nonsense"],
           "--listen-peer: bad value 'nonsense'")


@pytest.mark.parametrize("flag", ["--heartbeat-ms", "--election-ms",
                                  "--proposal-timeout-ms",
                                  "--catch-up-timeout-ms",
                                  "--snapshot-entries", "--file-size-max",
                                  "--quota-bytes", "--pending-bytes",
                                  "--history-revisions", "--history-hours",
                                  "--history-bytes", "--snapshot-bytes"])
def test_numeric_flag_errors_name_the_flag(refuse, flag):
    err = refuse([flag, "abc"], "%s: bad value 'abc'" % flag)
    assert "for abc" not in err
    refuse([flag, "-5"], "%s: bad value '-5'" % flag)
    refuse(["%s=-5" % flag], "%s: bad value '-5'" % flag)
    refuse([flag, "99999999999999999999999"], flag)


@pytest.mark.parametrize("flag,value", [
    ("--log-level", "loud"), ("--consistency", "eventual"),
    ("--initial-cluster-state", "old"), ("--cluster-id", "xyz"),
    ("--initial-cluster", "n1"), ("--name", "x" * 40)])
def test_word_flag_errors_name_the_flag(refuse, flag, value):
    refuse([flag, value], "%s: bad value '%s'" % (flag, value))


@pytest.mark.parametrize("value", ["-5", "0", "67108865",
                                   "18446744073709551615"])
def test_file_size_max_out_of_range(refuse, value):
    refuse(["--file-size-max", value],
           "--file-size-max: bad value '%s'" % value, "67108864")


@pytest.mark.parametrize("flag", ["--heartbeat-ms", "--election-ms",
                                  "--proposal-timeout-ms",
                                  "--catch-up-timeout-ms"])
def test_times_out_of_range(refuse, flag):
    refuse([flag, "0"], "%s: bad value '0'" % flag)
    refuse([flag, "86400001"], "%s: bad value '86400001'" % flag)


def test_valid_flags_at_their_limits_still_mount(make_node):
    n = make_node()
    n.start(["--heartbeat-ms", "50", "--election-ms", "500",
             "--file-size-max", "67108864", "--quota-bytes", "1",
             "--catch-up-timeout-ms", "86400000"])
    assert n.revision() >= 0


def test_data_dir_in_use_message_ends_after_the_pid(make_node, tmp_path):
    n = make_node().start()
    other = tmp_path / "other-mnt"
    other.mkdir()
    r = run(["mount", other, "--data-dir", n.data_dir, "-f"])
    assert r.returncode != 0
    m = re.search(r"in use by another quorumfs node \(pid ([^)]*)\)",
                  r.stderr)
    assert m, r.stderr
    assert m.group(1) == str(n.proc.pid), r.stderr
    assert not os.path.ismount(str(other))


def test_snapshot_status_of_a_file_that_is_not_a_snapshot(tmp_path):
    for name, content in (("short", b"hello\n"), ("empty", b""),
                          ("long", b"# a config file\n" * 20)):
        p = tmp_path / name
        p.write_bytes(content)
        r = run(["snapshot", "status", p])
        assert r.returncode != 0
        assert "not a quorumfs snapshot file" in r.stderr, r.stderr
        assert "truncated" not in r.stderr, r.stderr
        assert r.stderr.startswith("quorumfs snapshot status: "), r.stderr


def test_snapshot_status_of_a_truncated_snapshot(node, tmp_path):
    snap = tmp_path / "s.qfs"
    r = run(["snapshot", "save", snap, "--data-dir", node.data_dir])
    assert r.returncode == 0, r.stderr
    cut = tmp_path / "cut.qfs"
    cut.write_bytes(snap.read_bytes()[:20])
    r = run(["snapshot", "status", cut])
    assert r.returncode != 0 and "truncated" in r.stderr, r.stderr


def test_snapshot_restore_creates_missing_parents(make_node, tmp_path):
    src = make_node("src").start()
    with open(src.path("k"), "w") as f:
        f.write("v\n")
    snap = tmp_path / "s.qfs"
    r = run(["snapshot", "save", snap, "--data-dir", src.data_dir])
    assert r.returncode == 0, r.stderr
    src.stop()
    dst = make_node("dst")
    dst.data_dir = str(tmp_path / "new" / "nested" / "dst-data")
    r = run(["snapshot", "restore", snap, "--data-dir", dst.data_dir,
             "--name", "dst"])
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(dst.data_dir + ".tmp")
    dst.start()
    with open(dst.path("k")) as f:
        assert f.read() == "v\n"
