"""Peer security (docs/security.md), end to end on real nodes.

Members prove themselves with a shared secret (TLS 1.3 external PSK) or a
certificate signed by the cluster's CA that names them; everything after
the handshake is in TLS records. An outsider on the network (here: another
127.0.0.x address on this host) cannot complete a handshake, cannot claim
a member's name with a certificate of another name, and cannot disturb the
cluster by flooding its peer ports. Bad certificates and secret files are
refused at start, with the reason.
"""

import os
import socket
import ssl
import subprocess
import threading
import time

import pytest

import cluster as qc
import peer_forge
from conftest import QUORUMFS_BIN, Node
from test_members import restart_behind_a_leader_it_does_not_know


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


def make_cert(d, ca, name, cn=None, days="365", dns=True):
    """An EC P-256 key and a certificate for `name` signed by `ca` (the
    basename of a CA made by make_ca). Returns (cert, key) paths."""
    cn = cn or name
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + cn, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        if dns:
            f.write("subjectAltName=DNS:%s\n" % cn)
        f.write("extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
            "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".pem",
            "-days", days, "-extfile", name + ".ext", cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
            "-out", name + ".pem", "-days", "3650", "-subj",
            "/CN=quorumfs test " + name, cwd=d)
    return os.path.join(d, name + ".pem")


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path / "pki")
    os.makedirs(d)
    out = {"ca": make_ca(d, "ca"), "dir": d}
    for n in qc.NAMES:
        out[n] = make_cert(d, "ca", n)
    out["n4"] = make_cert(d, "ca", "n4")
    out["n9"] = make_cert(d, "ca", "n9")
    out["expired-n3"] = make_cert(d, "ca", "expired-n3", cn="n3", days="-1")
    make_ca(d, "other-ca")
    out["foreign-n3"] = make_cert(d, "other-ca", "foreign-n3", cn="n3")
    out["cn-only-n3"] = make_cert(d, "ca", "cn-only-n3", cn="n3", dns=False)
    return out


def cert_args(pki, cert_key):
    cert, key = cert_key
    return ["--peer-cert-file", cert, "--peer-key-file", key,
            "--peer-trusted-ca-file", pki["ca"]]


def mount_refused(tmp_path, c, name, args):
    """Run `quorumfs mount` for member `name` of c with args; it must exit
    with status 2 before creating its data dir. Returns stderr."""
    data = tmp_path / ("refused-" + name)
    mnt = tmp_path / ("refused-mnt-" + name)
    mnt.mkdir(exist_ok=True)
    r = subprocess.run(
        [QUORUMFS_BIN, "mount", str(mnt), "--name", name, "--data-dir",
         str(data), "-f", "--listen-peer", c.addrs[name], "--initial-cluster",
         c.initial] + args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r
    assert not data.exists(), "a refused start left %s behind" % data
    return r.stderr


def member_id(node, name):
    return int(next(m["id"] for m in node.status()["members"]
                    if m["name"] == name), 16)


def test_certificate_cluster(make_cluster, pki):
    """Three members with CA-signed certificates replicate as usual, over
    TLS; one whose certificate carries its name only as CN works too."""
    args = {n: cert_args(pki, pki[n]) for n in qc.NAMES}
    args["n3"] = cert_args(pki, pki["cn-only-n3"])
    c = make_cluster(node_args=args)
    ld = c.start()
    acked = {}
    for n in c.nodes:
        rel = "from-" + n.name
        acked[rel] = n.name.encode()
        qc.write_file(n.path(rel), acked[rel])
    t = c.assert_same_trees()
    c.assert_acked_present(acked, t)
    log = qc.Cluster.log_since(ld, 0)
    assert "(certificates)" in log and "TLS 1.3" in log, log[-2000:]


def test_bad_certificates_fail_at_start(make_cluster, pki, tmp_path):
    """An expired certificate, one from another CA, one of another name and
    a key that is not the certificate's: each a clear error at start
    (exit status 2, nothing written), not a retry loop."""
    c = make_cluster()
    err = mount_refused(tmp_path, c, "n3",
                        cert_args(pki, pki["expired-n3"]))
    assert "certificate has expired" in err, err
    err = mount_refused(tmp_path, c, "n3",
                        cert_args(pki, pki["foreign-n3"]))
    assert "--peer-trusted-ca-file" in err and "issuer" in err, err
    err = mount_refused(tmp_path, c, "n3", cert_args(pki, pki["n9"]))
    assert "does not name this member 'n3'" in err, err
    err = mount_refused(tmp_path, c, "n3",
                        cert_args(pki, (pki["n3"][0], pki["n9"][1])))
    assert "is not the key of --peer-cert-file" in err, err
    err = mount_refused(tmp_path, c, "n3",
                        ["--peer-cert-file", pki["n3"][0]])
    assert "all three" in err, err


def test_secret_file_and_insecure_flags(make_cluster, tmp_path):
    """No peer security at all, a secret file others can read, a short
    one: refused at start with the flag to use."""
    c = make_cluster()
    err = mount_refused(tmp_path, c, "n1",
                        ["--peer-insecure", "--peer-secret-file", "/x"])
    assert "exclusive" in err, err
    # Node.cmd adds the test secret only when no --peer-* flag is given:
    # call the binary directly to give none.
    mnt = tmp_path / "bare-mnt"
    mnt.mkdir()
    r = subprocess.run(
        [QUORUMFS_BIN, "mount", str(mnt), "--name", "n1", "--data-dir",
         str(tmp_path / "bare"), "-f", "--listen-peer", c.addrs["n1"],
         "--initial-cluster", c.initial], capture_output=True, text=True,
        timeout=30)
    assert r.returncode == 2 and "--peer-insecure" in r.stderr, r
    assert "--peer-secret-file" in r.stderr, r.stderr
    secret = tmp_path / "open.secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    os.chmod(secret, 0o644)
    err = mount_refused(tmp_path, c, "n1",
                        ["--peer-secret-file", str(secret)])
    assert "chmod 600" in err, err
    os.chmod(secret, 0o600)
    secret.write_text("short\n")
    err = mount_refused(tmp_path, c, "n1",
                        ["--peer-secret-file", str(secret)])
    assert "at least 16" in err, err


def test_member_with_wrong_secret_cannot_join(make_cluster, tmp_path):
    """n3 started with another secret never gets a connection up: it finds
    no leader and its writes fail, the others log the refusal and keep a
    working quorum of two, and nothing n3 tried reaches them."""
    c = make_cluster()
    n1, n2, n3 = c.nodes
    for n in (n1, n2):
        n.start(c.args(n), wait=False)
    for n in (n1, n2):
        n.wait_ready()
    ld = c.wait_leader([n1, n2])
    wrong = tmp_path / "wrong.secret"
    with open(os.open(str(wrong), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("not the members' secret, but long enough\n")
    off = os.path.getsize(ld.log_path)
    # A new cluster's member mounts its local state after the proposal
    # timeout when it cannot reach a quorum.
    n3.start(c.args(n3) + ["--peer-secret-file", str(wrong)])
    qc.wait_log(ld, off, "refused connection")
    with pytest.raises(OSError):
        qc.write_file(n3.path("from-outside"), b"x")
    assert n3.status()["leader"] != ld.name
    assert "refused connection" in qc.Cluster.log_since(n3, 0)
    qc.write_file(ld.path("still-works"), b"yes")
    t = c.assert_same_trees([n1, n2])
    assert "from-outside" not in t and "still-works" in t


def test_outsider_cannot_speak_raft(make_cluster, pki):
    """The outside tester's attacks, against a cluster with certificates:
    a member's HELLO in the clear (then a message) is refused before any
    frame is read; a TLS client with a valid certificate of another name
    (n9) cannot claim to be n3; nothing reaches the tree."""
    c = make_cluster(node_args={n: cert_args(pki, pki[n]) for n in qc.NAMES})
    ld = c.start()
    target = c.followers(ld)[0]
    st = target.status()
    cluster_id = int(st["cluster_id"], 16)
    n3_id = member_id(target, "n3")
    host, port = c.addrs[target.name].rsplit(":", 1)
    rejected0 = st["transport"]["rejected_frames"]
    off = os.path.getsize(target.log_path)

    s = socket.create_connection((host, int(port)),
                                 source_address=("127.0.0.9", 0))
    s.sendall(qc.hello_frame(cluster_id, n3_id) + b"\0" * 64)
    # A TLS alert may come back, never a frame.
    assert not qc.expect_closed(s).startswith(qc.FRAME_MAGIC)
    s.close()
    qc.wait_log(target, off, "refused connection from 127.0.0.9")
    # Refused by TLS: no frame was ever parsed.
    assert target.status()["transport"]["rejected_frames"] == rejected0

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(pki["ca"])
    ctx.load_cert_chain(*pki["n9"])
    raw = socket.create_connection((host, int(port)),
                                   source_address=("127.0.0.10", 0))
    tls = ctx.wrap_socket(raw)
    tls.sendall(qc.hello_frame(cluster_id, n3_id))
    assert qc.expect_closed(tls) == b"", "the node answered the false n3"
    tls.close()
    qc.wait_log(target, off, "does not name member 'n3'")
    before = set(os.listdir(ld.mnt))
    qc.write_file(ld.path("after"), b"ok")
    assert set(os.listdir(target.mnt)) - before <= {"after"}
    c.assert_same_trees()


def test_flood_and_impersonation(make_cluster):
    """For 20 s, strangers from 12 addresses open connections to every
    peer port as fast as they can: half send a member's HELLO in the
    clear, half send nothing and wait for the deadline. Writes go on, the
    leader and the term do not change, the refusals are logged at most
    once per address per 10 s (with the count of the others), and past 16
    connections a second from one address the rest are closed at accept."""
    c = make_cluster()
    ld = c.start()
    term0 = ld.status()["term"]
    cluster_id = int(ld.status()["cluster_id"], 16)
    victim_id = member_id(ld, c.followers(ld)[0].name)
    ports = [tuple(a.rsplit(":", 1)) for a in c.addrs.values()]
    offsets = {n.name: os.path.getsize(n.log_path) for n in c.nodes}
    stop = threading.Event()
    made = []
    # The attackers at nice 10: on a 2-core test machine they would
    # otherwise take the CPU the nodes need, which an outsider on another
    # host does not (tests/bench/flood.sh measures both).
    flooder = threading.Thread(target=lambda: made.append(peer_forge.flood(
        ports, 3600, cluster_id, victim_id, nice=10, stop=stop)))
    flooder.start()
    acked = {}
    deadline = time.monotonic() + 20
    i = 0
    try:
        while time.monotonic() < deadline:
            rel = "during-flood-%d" % i
            qc.write_file(ld.path(rel), b"%d" % i)
            acked[rel] = b"%d" % i
            i += 1
            time.sleep(0.05)
    finally:
        stop.set()
        flooder.join(30)
    assert made and made[0] > 1000, made
    assert c.wait_leader(timeout=5) is ld
    assert ld.status()["term"] == term0
    t = c.assert_same_trees()
    c.assert_acked_present(acked, t)
    for n in c.nodes:
        log = qc.Cluster.log_since(n, offsets[n.name])
        lines = [l for l in log.splitlines() if "refused connection from" in l]
        # 12 addresses, 20 s, one line per address per 10 s: at most 3
        # windows each.
        assert 0 < len(lines) <= 12 * 3, (n.name, len(lines), lines[:5])
        assert any("more from this address" in l for l in lines), lines[:5]
        # Each attacker address connects far more often than 16 times a
        # second: past its burst the node closes at accept, before TLS.
        tr = n.status()["transport"]
        assert tr["rate_limited"] > 0, (n.name, tr)
        assert tr["refused_handshakes"] > 0, (n.name, tr)


def forge(*args):
    """Run peer_forge.py as uid nobody; returns its verdict."""
    script = os.path.join(os.path.dirname(__file__), "peer_forge.py")
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         "/usr/bin/python3", script] + [str(a) for a in args],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    return r.stdout.strip()


@pytest.mark.parametrize("security", ["insecure", "secret"])
def test_forged_propose_from_nobody(make_cluster, security):
    """The outside tester's repro, as uid nobody: HELLO as a member, then
    a PROPOSE of a mkdir to the leader. Without peer security it is
    applied on every replica (which shows the forger is real); with a
    shared secret the connection is refused before any frame is read and
    the tree does not change."""
    c = make_cluster(extra_args=["--peer-insecure"]
                     if security == "insecure" else [])
    ld = c.start()
    st = ld.status()
    follower = c.followers(ld)[0]
    host, port = c.addrs[ld.name].rsplit(":", 1)
    name = "forged-by-nobody"
    verdict = forge("propose", host, port, st["cluster_id"],
                    "%x" % member_id(ld, follower.name),
                    "%x" % member_id(ld, ld.name), st["term"], name)
    if security == "insecure":
        assert verdict == "answered"
        deadline = time.monotonic() + 10
        while not all(os.path.isdir(n.path(name)) for n in c.nodes):
            assert time.monotonic() < deadline, "the forged mkdir was lost"
            time.sleep(qc.POLL_S)
    else:
        assert verdict == "closed"
        qc.write_file(ld.path("after"), b"ok")
        t = c.assert_same_trees()
        assert name not in t and "after" in t


@pytest.mark.parametrize("security", ["insecure", "secret"])
def test_forged_append_from_nobody(make_cluster, security):
    """The forged APPEND, as uid nobody: "from the leader" to a follower,
    a mkdir at the index and term of the next real entry. Without peer
    security the follower applies it and its tree differs from the others'
    for good (the real entry is skipped as one it has); with a shared
    secret the connection is refused and the replicas stay identical."""
    c = make_cluster(extra_args=["--peer-insecure"]
                     if security == "insecure" else [])
    ld = c.start()
    c.wait_applied()
    victim = c.followers(ld)[0]
    st = victim.status()
    host, port = c.addrs[victim.name].rsplit(":", 1)
    name = "forged-append"
    verdict = forge("append", host, port, st["cluster_id"],
                    "%x" % member_id(ld, ld.name),
                    "%x" % member_id(ld, victim.name), st["term"], name,
                    st["last_index"])
    qc.write_file(ld.path("real"), b"the real next entry")
    if security == "insecure":
        assert verdict == "answered"
        deadline = time.monotonic() + 10
        while not os.path.isdir(victim.path(name)):
            assert time.monotonic() < deadline, "the forged append was lost"
            time.sleep(qc.POLL_S)
        assert not os.path.exists(ld.path(name))
        assert not os.path.exists(victim.path("real"))
    else:
        assert verdict == "closed"
        t = c.assert_same_trees()
        assert name not in t and "real" in t


def test_node_outside_the_configuration_cannot_start_an_election(
        make_cluster):
    """A node that proves an id outside the configuration (in the clear
    anyone does; with peer security a removed member still can) is a
    provisional peer: a leader this node does not know yet must be able to
    send it appends (test_members.py, a restarted member and a leader it
    does not know). Its TimeoutNow and a VOTE with the transfer flag, which
    no leader lease holds back, would each make a follower campaign in a
    new term; they are dropped and counted, and the leader and the term
    stay."""
    c = make_cluster(extra_args=["--peer-insecure"])
    ld = c.start()
    c.wait_applied()
    victim = c.followers(ld)[0]
    st = victim.status()
    term0 = st["term"]
    dropped0 = st["transport"]["provisional_dropped"]
    cluster_id = int(st["cluster_id"], 16)
    outsider = 0x0DD0DD0DD0DD0DD0
    victim_id = member_id(victim, victim.name)
    host, port = c.addrs[victim.name].rsplit(":", 1)
    off = os.path.getsize(victim.log_path)
    s = socket.create_connection((host, int(port)),
                                 source_address=("127.0.0.9", 0))
    try:
        s.sendall(peer_forge.hello(cluster_id, outsider))
        s.settimeout(5)
        assert s.recv(4).startswith(qc.FRAME_MAGIC), "HELLO not answered"
        s.sendall(peer_forge.timeout_now(outsider, victim_id, term0))
        s.sendall(peer_forge.vote(outsider, victim_id, term0 + 1,
                                  st["last_index"] + 1000, term0 + 1,
                                  transfer=True))
        qc.wait_for(lambda: victim.status()["transport"]
                    ["provisional_dropped"] >= dropped0 + 2,
                    "the forged TimeoutNow and VOTE dropped")
        time.sleep(3 * qc.ELECTION_MS / 1000)
    finally:
        s.close()
    log = qc.Cluster.log_since(victim, off)
    assert "a provisional peer" in log, log[-2000:]
    # logged once per connection (the VOTE is counted above)
    assert "dropping timeout_now at term %d" % term0 in log, log[-2000:]
    assert c.wait_leader(timeout=5.0) is ld
    assert all(n.status()["term"] == term0 for n in c.nodes)
    qc.write_file(ld.path("after"), b"ok")
    assert "after" in c.assert_same_trees()


def test_certificate_of_a_leader_outside_the_configuration(make_cluster, pki):
    """With certificates, a member that restarts behind its leader's
    configuration takes that leader as a provisional peer only because
    the leader's certificate names the member of the id it claims (n4:
    the id is a hash of the name); it catches up (test_members.py, a
    restarted member and a leader it does not know). A certificate of the
    CA that names another member is still refused for that id."""
    c = make_cluster(node_args={n: cert_args(pki, pki[n]) for n in qc.NAMES})
    down, n4 = restart_behind_a_leader_it_does_not_know(
        c, cert_args(pki, pki["n4"]))
    log = qc.Cluster.log_since(down, 0)
    assert "n4, node %016x" % member_id(down, "n4") in log, log[-3000:]

    # n9's certificate, claiming n4's id, which down now knows, and an id
    # outside its configuration whose member name it does not carry.
    st = down.status()
    host, port = c.addrs[down.name].rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(pki["ca"])
    ctx.load_cert_chain(*pki["n9"])
    off = os.path.getsize(down.log_path)
    for i, claimed in enumerate((member_id(down, "n4"), 0x0DD0DD0DD0DD0DD0)):
        raw = socket.create_connection(
            (host, int(port)), source_address=("127.0.0.%d" % (10 + i), 0))
        tls = ctx.wrap_socket(raw)
        tls.sendall(qc.hello_frame(int(st["cluster_id"], 16), claimed))
        assert qc.expect_closed(tls) == b"", "the node answered the false peer"
        tls.close()
    qc.wait_log(down, off, "does not name member 'n4'")
    qc.wait_log(down, off, "its certificate names no member of that id")
