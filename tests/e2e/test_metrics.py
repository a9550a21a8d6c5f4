"""Metrics and health (docs/operations.md, "Metrics and health"):
/.cluster/metrics and `--listen-metrics ADDR:PORT` (GET /metrics, /livez,
/readyz) on a real three-node cluster. The text is checked by a strict
parser of the Prometheus text format 0.0.4 written here (every family has
HELP and TYPE before its samples, names and label sets well formed, no
series twice, histogram buckets cumulative and ending at +Inf = _count)
and by `promtool check metrics` (Debian's prometheus package)."""

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import QUORUMFS_BIN
from cluster import NAMES, write_file

HTTP_TIMEOUT_S = 10.0
WAIT_S = 20.0

NAME_RE = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_RE = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_RE = re.compile(r"^(%s)(\{(%s(?:,%s)*)?\})? (\S+)$"
                       % (NAME_RE, LABEL_RE, LABEL_RE))
HELP_RE = re.compile(r"^# HELP (%s) \S.*$" % NAME_RE)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram)$" % NAME_RE)


def parse_labels(s):
    return tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|'
                                   r'\\.)*)"', s or "")))


def parse_metrics(text):
    """{(name, labels): value}; raises AssertionError on any breach of the
    format or of the naming conventions."""
    assert text.endswith("\n"), "the text ends with a newline"
    families = {}  # name -> type
    helps = set()
    current = None
    samples = {}
    for line in text.splitlines():
        m = HELP_RE.match(line)
        if m:
            assert m.group(1) not in helps, "HELP twice: " + line
            helps.add(m.group(1))
            current = m.group(1)
            continue
        m = TYPE_RE.match(line)
        if m:
            assert m.group(1) == current, "TYPE after its HELP: " + line
            assert m.group(1) not in families, "TYPE twice: " + line
            families[m.group(1)] = m.group(2)
            continue
        assert not line.startswith("#"), "stray comment: " + line
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.group(1), parse_labels(m.group(3)), \
            float(m.group(4))
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        fam = name if name in families else base
        assert fam == current, "sample outside its family: " + line
        assert fam.startswith("quorumfs_"), line
        kind = families[fam]
        if kind == "counter":
            assert fam.endswith("_total"), "counter without _total: " + fam
        if kind == "histogram":
            assert fam.endswith("_seconds"), "histogram unit: " + fam
            assert name != fam, "bare histogram sample: " + line
        assert (name, labels) not in samples, "series twice: " + line
        samples[(name, labels)] = value
    for fam, kind in families.items():
        if kind == "histogram":
            check_histogram(fam, samples)
    return samples


def check_histogram(fam, samples):
    series = {}
    for (name, labels), v in samples.items():
        if name == fam + "_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            le = dict(labels)["le"]
            series.setdefault(rest, []).append(
                (float("inf") if le == "+Inf" else float(le), v))
    for rest, buckets in series.items():
        buckets.sort()
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), (fam, rest, "not cumulative")
        assert buckets[-1][0] == float("inf"), (fam, rest)
        assert samples[(fam + "_count", rest)] == counts[-1], (fam, rest)
        assert (fam + "_sum", rest) in samples, (fam, rest)


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def promtool_check(text):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (tests/run.sh installs "
                    "Debian's prometheus package)")
    r = subprocess.run([promtool, "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def read_vfile(node):
    with open(node.path(".cluster", "metrics")) as f:
        return f.read()


def wait_http(port, path, status, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        try:
            got = http_get(port, path)
        except urllib.error.URLError as e:  # not listening yet
            got = (None, str(e))
        if got[0] == status:
            return got[1]
        time.sleep(0.1)
    raise AssertionError("%s on port %d: wanted %d, last %r"
                         % (path, port, status, got))


@pytest.fixture
def metrics_cluster(make_cluster):
    ports = {n: free_port() for n in NAMES}
    c = make_cluster(node_args={
        n: ["--listen-metrics", "127.0.0.1:%d" % ports[n]] for n in NAMES})
    c.start()
    c.ports = ports
    return c


def test_metrics_parse_and_move(metrics_cluster):
    c = metrics_cluster
    leader = c.leader()
    follower = c.followers(leader)[0]
    port = c.ports[follower.name]
    before = parse_metrics(http_get(port, "/metrics")[1])
    lead_before = parse_metrics(read_vfile(leader))

    for i in range(5):
        write_file(follower.path("f%d" % i), b"value %d\n" % i)
    c.wait_applied()

    for n in c.nodes:
        text = read_vfile(n)
        s = parse_metrics(text)
        promtool_check(text)
        status, body = http_get(c.ports[n.name], "/metrics")
        assert status == 200
        parse_metrics(body)
        promtool_check(body)
        assert value(s, "quorumfs_is_leader") == (1 if n is leader else 0)
        assert value(s, "quorumfs_has_leader") == 1
        assert value(s, "quorumfs_keys") >= 5
        assert ("quorumfs_db_size_bytes", ()) in s  # frames come later
        assert value(s, "quorumfs_live_bytes") >= 5 * len(b"value 0\n")
    after = parse_metrics(http_get(port, "/metrics")[1])
    # the writes went through the follower's mount and its proposals
    assert value(after, "quorumfs_proposals_total") >= \
        value(before, "quorumfs_proposals_total") + 5
    assert value(after, "quorumfs_fuse_requests_total", op="write") >= \
        value(before, "quorumfs_fuse_requests_total", op="write") + 5
    assert value(after, "quorumfs_fuse_request_duration_seconds_count",
                 op="write") >= 5
    assert value(after, "quorumfs_proposal_duration_seconds_count") >= \
        value(before, "quorumfs_proposal_duration_seconds_count") + 5
    assert value(after, "quorumfs_applied_entries_total") >= \
        value(before, "quorumfs_applied_entries_total") + 5
    assert value(after, "quorumfs_commit_index") >= \
        value(before, "quorumfs_commit_index") + 5
    assert value(after, "quorumfs_log_fsync_duration_seconds_count") > \
        value(before, "quorumfs_log_fsync_duration_seconds_count")
    lead = parse_metrics(read_vfile(leader))
    assert value(lead, "quorumfs_applied_entries_total") >= \
        value(lead_before, "quorumfs_applied_entries_total") + 5
    # the leader's view of every member; followers export none
    lagging = {dict(k[1])["member"] for k in lead
               if k[0] == "quorumfs_member_lag_entries"}
    assert lagging == set(NAMES), lagging
    for n in c.followers(leader):
        assert value(lead, "quorumfs_member_match_index", member=n.name) > 0
        assert not any(k[0] == "quorumfs_member_lag_entries"
                       for k in parse_metrics(read_vfile(n)))


def test_health_endpoints(metrics_cluster):
    c = metrics_cluster
    leader = c.leader()
    for n in c.nodes:
        assert http_get(c.ports[n.name], "/livez") == (200, "ok\n")
        assert wait_http(c.ports[n.name], "/readyz", 200) == "ok\n"
    assert http_get(c.ports[leader.name], "/nope")[0] == 404

    # the other two stop: no quorum, no leader, not ready; still live
    others = c.followers(leader)
    for n in others:
        assert n.stop() == 0
        # the listener stopped with the node (SIGTERM)
        with pytest.raises(urllib.error.URLError):
            http_get(c.ports[n.name], "/livez")
    port = c.ports[leader.name]
    body = wait_http(port, "/readyz", 503)
    assert body == "no leader known\n", body
    assert http_get(port, "/livez") == (200, "ok\n")

    for n in others:
        c.restart(n)
    c.wait_leader()
    for n in c.nodes:
        wait_http(c.ports[n.name], "/readyz", 200)


def test_bad_listen_metrics(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    data = tmp_path / "data"
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = "127.0.0.1:%d" % taken.getsockname()[1]
    try:
        for bad, why in (("127.0.0.1", "expected ADDR:PORT"),
                         ("127.0.0.1:0", "port from 1 to 65535"),
                         ("127.0.0.1:http", "expected ADDR:PORT"),
                         (":9479", "expected ADDR:PORT"),
                         (busy, "Address already in use")):
            r = subprocess.run([QUORUMFS_BIN, "mount", str(mnt), "--data-dir",
                                str(data), "-f", "--listen-metrics", bad],
                               capture_output=True, text=True, timeout=20)
            assert r.returncode == 2, (bad, r.returncode, r.stderr)
            assert r.stderr.startswith("quorumfs mount: --listen-metrics"), \
                r.stderr
            assert why in r.stderr, (bad, r.stderr)
            assert not data.exists(), "nothing written before the refusal"
    finally:
        taken.close()


def test_snapshot_sends_and_installs(make_cluster):
    """A paused follower misses more than the leader keeps in its log: the
    leader counts a snapshot send, the follower an install."""
    c = make_cluster(extra_args=["--snapshot-entries", "50"])
    leader = c.start()
    f1 = c.followers(leader)[0]
    off = os.path.getsize(f1.log_path)
    sent = value(parse_metrics(read_vfile(leader)),
                 "quorumfs_snapshot_sends_total")
    assert value(parse_metrics(read_vfile(f1)),
                 "quorumfs_snapshot_installs_total") == 0
    c.sigstop(f1)
    try:
        # a new file is one entry (a deferred create)
        for i in range(240):
            write_file(leader.path("p%03d" % i), b"%d\n" % i)
    finally:
        c.sigcont(f1)
    c.assert_caught_up_by_snapshot(f1, off, {})
    assert value(parse_metrics(read_vfile(f1)),
                 "quorumfs_snapshot_installs_total") >= 1
    assert value(parse_metrics(read_vfile(leader)),
                 "quorumfs_snapshot_sends_total") >= sent + 1


def test_readyz_before_the_mount(make_cluster):
    """The listener starts with the node: while a member waits at start for
    the cluster's commit (no quorum yet), /livez answers and /readyz says it
    is not mounted; once the others come, it is ready."""
    ports = {n: free_port() for n in NAMES}
    c = make_cluster(node_args={
        n: ["--listen-metrics", "127.0.0.1:%d" % ports[n]] for n in NAMES})
    first = c.nodes[0]
    first.start(c.args(first), wait=False)
    wait_http(ports[first.name], "/livez", 200)
    status, body = http_get(ports[first.name], "/readyz")
    assert (status, body) == \
        (503, "not mounted (catching up with the cluster at start)\n")
    assert not os.path.ismount(first.mnt)
    for n in c.nodes[1:]:
        n.start(c.args(n), wait=False)
    for n in c.nodes:
        n.wait_ready()
    c.wait_leader()
    for n in c.nodes:
        wait_http(ports[n.name], "/readyz", 200)
