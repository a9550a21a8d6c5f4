"""The command line: every flag is checked before anything touches the
disk, and a refusal names the flag (exit status 2, a message on stderr
that starts with the command's prefix). Also the CLI's own messages for a
data dir in use and for files that are not snapshot files, and `snapshot
restore` into a data dir whose parents do not exist yet."""

import json
import os
import re
import subprocess
import time

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
                                  "--history-bytes", "--snapshot-bytes",
                                  "--fuse-threads"])
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


@pytest.mark.parametrize("value", ["0", "17", "4294967297"])
def test_fuse_threads_out_of_range(refuse, value):
    refuse(["--fuse-threads", value],
           "--fuse-threads: bad value '%s'" % value, "1 to 16")


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


# ---- help, unknown commands and flags (no node needed) ----

# Each command's help names its own flags and not those of the others.
OWN_FLAGS = {
    "status": (["--json", "--mount", "--data-dir", "PATH"],
               ["--revision", "--to", "--learner", "--initial-cluster"]),
    "endpoint": (["health", "--json", "--mount", "--data-dir"],
                 ["--revision", "--to", "--learner", "--initial-cluster"]),
    "members": (["--mount", "--data-dir"],
                ["--json", "--revision", "--to", "--learner"]),
    "leader": (["transfer", "--to", "--mount", "--data-dir"],
               ["--json", "--revision", "--learner", "--initial-cluster"]),
    "member": (["add", "promote", "remove", "--learner", "--json"],
               ["--revision", "--to", "--initial-cluster"]),
    "restore": (["NAME|@REV", "--mount", "--data-dir"],
                ["--json", "--revision", "--to", "--learner"]),
    "compact": (["--revision", "--mount", "--data-dir"],
                ["--json", "--to", "--learner", "--initial-cluster"]),
    "snapshot": (["save", "restore", "--initial-cluster", "--listen-peer"],
                 ["--revision", "--to", "--learner"]),
}


@pytest.mark.parametrize("cmd", sorted(OWN_FLAGS))
def test_each_command_has_its_own_help(cmd):
    own, others = OWN_FLAGS[cmd]
    r = run([cmd, "--help"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Usage: quorumfs %s" % cmd), r.stdout
    for f in own:
        assert f in r.stdout, (cmd, f, r.stdout)
    for f in others:
        assert f not in r.stdout, (cmd, f, r.stdout)
    h = run(["help", cmd])
    assert h.returncode == 0 and h.stdout == r.stdout


def test_helps_differ():
    texts = {cmd: run([cmd, "--help"]).stdout for cmd in OWN_FLAGS}
    assert len(set(texts.values())) == len(texts)
    assert run(["help", "mount"]).stdout.startswith(
        "Usage: quorumfs mount MOUNTPOINT")


@pytest.mark.parametrize("word,near", [("stauts", "status"),
                                       ("statu", "status"),
                                       ("membr", "member"),
                                       ("leadre", "leader"),
                                       ("compcat", "compact"),
                                       ("mnt", "mount")])
def test_unknown_command_suggests_the_nearest(word, near):
    for args in ([word], [word, "--data-dir", "/nonexistent"],
                 ["help", word]):
        r = run(args)
        assert r.returncode == 2, (args, r.stderr)
        assert "unknown command '%s'" % word in r.stderr, r.stderr
        assert "did you mean '%s'?" % near in r.stderr, r.stderr
        assert r.stdout == ""


@pytest.mark.parametrize("args,msg", [
    (["member", "lst"], "unknown subcommand 'lst'; did you mean 'list'?"),
    (["snapshot", "sav", "f"], "did you mean 'save'?"),
    (["endpoint", "helth"], "did you mean 'health'?"),
    (["leader", "tranfser"], "did you mean 'transfer'?"),
    (["member"], "expected list, add, promote, remove or update"),
    (["snapshot"], "expected save, status or restore"),
    (["member", "add", "n4"], "member add: missing arguments"),
    (["snapshot", "save"], "snapshot save: missing arguments"),
    (["members", "x"], "unexpected argument 'x'"),
    (["compact", "x"], "unexpected argument 'x'"),
    (["status", "a", "b"], "unexpected argument 'b'"),
])
def test_bad_arguments_are_refused_before_any_node_is_looked_for(args, msg):
    # No node anywhere: the usage error comes first.
    r = run(args + ["--data-dir", "/nonexistent"])
    assert r.returncode == 2, (args, r.stderr)
    assert msg in r.stderr, r.stderr
    assert "quorumfs %s --help" % args[0] in r.stderr, r.stderr


def test_unknown_command_far_from_all_has_no_suggestion():
    r = run(["xyzzyq"])
    assert r.returncode == 2
    assert "unknown command 'xyzzyq'" in r.stderr
    assert "did you mean" not in r.stderr


@pytest.mark.parametrize("args,flag", [
    (["status", "--bogus"], "'--bogus'"),
    (["status", "-x"], "'-x'"),
    (["status", "--revision", "3"], "'--revision'"),
    (["compact", "--json"], "'--json'"),
    (["members", "--to", "n1"], "'--to'"),
    (["leader", "--learner"], "'--learner'"),
    (["compact", "--data-dir"], "'--data-dir' needs a value"),
    (["status", "--json=yes"], "'--json=yes' takes no value"),
])
def test_bad_flag_names_it_and_the_help(args, flag):
    r = run(args)
    assert r.returncode == 2, (args, r.stderr)
    assert r.stderr.startswith("quorumfs %s: " % args[0]), r.stderr
    assert flag in r.stderr, r.stderr
    assert "quorumfs %s --help" % args[0] in r.stderr, r.stderr


# ---- which node: PATH, --mount, --data-dir ----

def test_a_path_that_is_no_node_is_a_clear_error(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for args in (["status", plain], ["endpoint", "health", plain],
                 ["status", "--mount", plain], ["members", "--mount", plain]):
        r = run(args)
        assert r.returncode == 1, (args, r.stderr)
        assert str(plain) in r.stderr, r.stderr
        assert "neither a quorumfs mount" in r.stderr, r.stderr
        assert "/var/lib/quorumfs" not in r.stderr, r.stderr
    r = run(["status", tmp_path / "missing"])
    assert r.returncode == 1
    assert str(tmp_path / "missing") in r.stderr
    assert "No such file or directory" in r.stderr, r.stderr
    r = run(["leader", "--data-dir", plain])
    assert r.returncode == 1
    assert "--data-dir %s is not a quorumfs data dir" % plain in r.stderr
    r = run(["status", plain, "--data-dir", plain])
    assert r.returncode == 2 and "give one of" in r.stderr, r.stderr


def test_status_of_a_single_node_by_mount_data_dir_and_path_in_it(node):
    os.mkdir(node.path("app"))
    # A file named like the data dir's identity file does not make the
    # mount a data dir.
    with open(node.path("identity"), "w") as f:
        f.write("not a data dir\n")
    for args in ([node.mnt], [node.data_dir], [node.path("app")],
                 ["--mount", node.mnt], ["--data-dir", node.data_dir]):
        r = run(["status", "--json"] + args)
        assert r.returncode == 0, (args, r.stderr)
        st = json.loads(r.stdout)
        assert st["name"] == node.name
        assert st["data_dir"] == os.path.realpath(node.data_dir)
        assert st["health"]["state"] == "healthy"
    r = run(["status", node.mnt])
    assert r.returncode == 0
    assert "health:      healthy (1 of 1 members reachable" in r.stdout
    for args in (["leader", "--mount", node.mnt], ["members", "--mount",
                                                   node.mnt]):
        r = run(args)
        assert r.returncode == 0 and node.name in r.stdout, r.stderr
    r = run(["endpoint", "health", node.mnt])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("default - healthy"), r.stdout


# ---- a cluster: addressing every node, health after a kill ----

def _health(path):
    r = run(["endpoint", "health", path])
    return r.returncode, r.stdout, r.stderr


def _wait(pred, timeout=20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(0.1)
    raise AssertionError("timed out; last: %r" % (last,))


def test_status_and_health_on_a_cluster(make_cluster):
    c = make_cluster()
    leader = c.start()
    for n in c.nodes:
        for args in ([n.mnt], [n.data_dir], ["--mount", n.mnt]):
            r = run(["status", "--json"] + args)
            assert r.returncode == 0, (n.name, args, r.stderr)
            st = json.loads(r.stdout)
            assert st["name"] == n.name, (args, st["name"])
            assert st["leader"] == leader.name
        r = run(["status", n.mnt])
        assert r.returncode == 0 and "name:        %s\n" % n.name in r.stdout
    # (leader transfer from a follower: test_cluster.py)
    f = c.followers(leader)[0]
    r = run(["member", "list", "--json", "--mount", f.mnt])
    assert r.returncode == 0 and json.loads(r.stdout)["node"] == f.name
    # All healthy, from the leader: lag and last heard known.
    rc, out, err = _wait(lambda: (_health(leader.mnt)[0] == 0,
                                  _health(leader.mnt)))
    assert len(out.splitlines()) == 4, out
    assert "health: healthy (3 of 3 members reachable" in out, out
    victim = c.followers(leader)[0]
    other = next(n for n in c.followers(leader) if n is not victim)
    c.kill9(victim)

    # The leader: the victim unhealthy, degraded, exit status 1.
    def leader_sees_it_down():
        rc, out, err = _health(leader.mnt)
        line = next((ln for ln in out.splitlines()
                     if ln.startswith(victim.name + " ")), "")
        return rc == 1 and "unhealthy: unreachable" in line, (rc, out, err)
    rc, out, err = _wait(leader_sees_it_down)
    assert "health: degraded (2 of 3 members reachable, quorum 2 of 3" in out
    assert "last heard" in out
    r = run(["status", leader.mnt])
    assert r.returncode == 0, r.stderr
    assert re.search(r"^member %s: UNREACHABLE \(last heard \d+\.\d s ago\)$"
                     % victim.name, r.stdout, re.M), r.stdout
    assert "health:      degraded (2 of 3 members reachable, quorum 2)" \
        in r.stdout, r.stdout
    st = json.loads(run(["status", "--json", leader.mnt]).stdout)
    assert st["health"]["state"] == "degraded"
    vm = next(m for m in st["members"] if m["name"] == victim.name)
    assert vm["reachable"] is False and vm["last_heard_ms"] >= 0
    # The other follower: no longer connected to the victim.
    rc, out, err = _wait(lambda: (_health(other.mnt)[0] == 1,
                                  _health(other.mnt)))
    assert "%s " % victim.name in out and "unhealthy" in out, out
    # The victim's own mount: a clear error, not another node's answer.
    r = run(["status", victim.data_dir])
    assert r.returncode == 1 and victim.data_dir in r.stderr, r.stderr

    c.restart(victim)
    victim.wait_ready()
    for n in (leader, other, victim):
        _wait(lambda n=n: (_health(n.mnt)[0] == 0, _health(n.mnt)))
    r = run(["status", leader.mnt])
    assert "health:      healthy (3 of 3 members reachable" in r.stdout
    assert "UNREACHABLE" not in r.stdout
