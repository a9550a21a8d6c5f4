"""Living in the system (docs/operations.md, "Install" to "check perf"):
- systemd: the notify protocol of a foreground node (READY=1 only once the
  tree is mounted and caught up, STATUS= naming the role and the leader,
  STOPPING=1 on SIGTERM), checked with a notify socket of the test's own
  (the machine need not run systemd); the unit through `systemd-analyze
  verify`;
- fstab: `mount -T FILE` with a temporary fstab (never /etc/fstab), the
  mount helper, and option errors;
- the man page and the bash completion list every flag of the binary's
  help; completions; `meson install --destdir`;
- `quorumfs check perf` prints PASS or FAIL with reasons (no timing is
  asserted)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import QUORUMFS_BIN, unmount

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
UNIT_IN = os.path.join(ROOT, "examples", "quorumfs@.service.in")
WAIT_S = 20.0


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []  # (monotonic time, {key: value})

    def recv(self, timeout):
        """The next message as a dict, or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = dict(line.split("=", 1)
                      for line in data.decode().split("\n") if "=" in line)
        self.messages.append(fields)
        return fields

    def wait_for(self, key, timeout=WAIT_S, proc=None):
        """Messages until one has key (returned); None when proc exits or
        the time is up first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(0.2)
            if m is not None and key in m:
                return m
            if m is None and proc is not None and proc.poll() is not None:
                return None
        return None

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    s = NotifySocket(str(tmp_path / "notify.sock"))
    yield s
    s.close()


def start_node(tmp_path, notify, name="default", args=(), env_extra=None):
    mnt = tmp_path / (name + "-mnt")
    mnt.mkdir(exist_ok=True)
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    env.update(env_extra or {})
    log = open(tmp_path / (name + ".log"), "ab")
    proc = subprocess.Popen(
        [QUORUMFS_BIN, "mount", str(mnt), "--data-dir",
         str(tmp_path / (name + "-data")), "--name", name, "-f"] + list(args),
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
    log.close()
    return proc, str(mnt)


def stop(proc, mnt):
    if proc.poll() is None:
        proc.kill()
        proc.wait(WAIT_S)
    unmount(mnt)


def test_ready_status_stopping(tmp_path, notify):
    proc, mnt = start_node(tmp_path, notify)
    try:
        ready = notify.wait_for("READY", proc=proc)
        assert ready is not None, (notify.messages, proc.poll())
        # READY=1 comes once the tree is mounted and usable.
        assert os.path.ismount(mnt)
        with open(os.path.join(mnt, "app.conf"), "w") as f:
            f.write("port = 8080\n")
        with open(os.path.join(mnt, "app.conf")) as f:
            assert f.read() == "port = 8080\n"
        assert ready["READY"] == "1"
        assert ready["STATUS"] == "role leader, leader default", ready
        # Before it: the start-up said what it waits for, and no READY.
        before = notify.messages[:-1]
        assert any("catching up" in m.get("STATUS", "") for m in before), \
            notify.messages
        proc.send_signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING", proc=None)
        assert stopping is not None, notify.messages
        assert stopping["STOPPING"] == "1"
        assert "SIGTERM" in stopping["STATUS"]
        assert proc.wait(WAIT_S) == 0
        assert not os.path.ismount(mnt)
    finally:
        stop(proc, mnt)


def test_no_notify_without_foreground(tmp_path, notify):
    """A daemonized node is not the service's main process: it says
    nothing on the socket (use -f under Type=notify)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    r = subprocess.run([QUORUMFS_BIN, "mount", str(mnt), "--data-dir",
                        str(tmp_path / "data")], env=env,
                       capture_output=True, text=True, timeout=WAIT_S)
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(str(mnt))
        assert notify.recv(0.5) is None
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)])
        deadline = time.monotonic() + WAIT_S
        while os.path.exists(tmp_path / "data" / "ctl.sock") and \
                time.monotonic() < deadline:
            time.sleep(0.05)


def test_status_names_follower_and_leader(make_cluster, notify,
                                          monkeypatch):
    """A cluster member's STATUS= names its role and the leader, and
    changes with them; restarted alone (no quorum) it never says READY=1
    and exits 1 with the reason in STATUS=."""
    c = make_cluster()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    n1 = c.node("n1")
    n1.start(c.args(n1), wait=False)
    monkeypatch.delenv("NOTIFY_SOCKET")
    for n in c.nodes[1:]:
        n.start(c.args(n), wait=False)
    ready = notify.wait_for("READY", proc=n1.proc)
    assert ready is not None, notify.messages
    assert os.path.ismount(n1.mnt)
    leader = c.wait_leader()
    want = "role %s, leader %s" % (
        "leader" if leader is n1 else "follower", leader.name)
    deadline = time.monotonic() + WAIT_S
    while notify.messages[-1].get("STATUS") != want and \
            time.monotonic() < deadline:
        notify.recv(0.5)
    assert notify.messages[-1].get("STATUS") == want, notify.messages
    # Hand leadership to another node: n1's STATUS= follows.
    other = "n2" if leader.name != "n2" else "n3"
    subprocess.run([QUORUMFS_BIN, "leader", "transfer", "--to", other,
                    "--data-dir", leader.data_dir], check=True,
                   capture_output=True, timeout=WAIT_S)
    want = "role %s, leader %s" % (
        "leader" if other == "n1" else "follower", other)
    deadline = time.monotonic() + WAIT_S
    while notify.messages[-1].get("STATUS") != want and \
            time.monotonic() < deadline:
        notify.recv(0.5)
    assert notify.messages[-1].get("STATUS") == want, notify.messages
    for n in c.nodes:
        n.stop()
    # Alone, n1 cannot catch up: no READY=1, exit 1, STATUS= says why.
    del notify.messages[:]
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    n1.start(c.args(n1, "existing") + ["--catch-up-timeout-ms", "1000"],
             wait=False)
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify.wait_for("READY", timeout=WAIT_S, proc=n1.proc) is None
    assert n1.proc.wait(WAIT_S) == 1
    assert not os.path.ismount(n1.mnt)
    assert any("not mounted" in m.get("STATUS", "")
               for m in notify.messages), notify.messages


def test_unit_verifies(tmp_path):
    """examples/quorumfs@.service.in, with @bindir@ set as meson install
    sets it, passes `systemd-analyze verify` with no warning."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    with open(UNIT_IN) as f:
        text = f.read()
    assert "Type=notify" in text and "NotifyAccess=main" in text
    unit = tmp_path / "quorumfs@n1.service"
    unit.write_text(text.replace("@bindir@",
                                 os.path.dirname(QUORUMFS_BIN)))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


# ---------------------------------------------------------------- fstab
# mount(8) runs mount.fuse3 for a fuse line; for the source BIN#NAME it
# runs `BIN NAME MOUNTPOINT -o OPTIONS` (for type fuse.quorumfs and source
# NAME: `quorumfs NAME ...` from sh's default PATH; the same command line).


def daemon_gone(data_dir, timeout=WAIT_S):
    """Whether the node of data_dir stopped answering within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run([QUORUMFS_BIN, "status", "--data-dir", data_dir],
                           capture_output=True, timeout=WAIT_S)
        if r.returncode != 0:
            return True
        time.sleep(0.1)
    return False


def fstab_mount(tmp_path, line, mnt):
    fstab = tmp_path / "fstab"
    fstab.write_text(line + "\n")
    return subprocess.run(["mount", "-T", str(fstab), mnt],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def fstab_dirs(tmp_path):
    if shutil.which("mount.fuse3") is None and \
            not os.path.exists("/sbin/mount.fuse3"):
        pytest.fail("mount.fuse3 is not installed (package fuse3)")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    data = str(tmp_path / "data")
    yield str(mnt), data
    if os.path.ismount(str(mnt)):
        subprocess.run(["umount", str(mnt)])
    daemon_gone(data)
    unmount(str(mnt))


def test_fstab_mount_write_umount(tmp_path, fstab_dirs):
    mnt, data = fstab_dirs
    r = fstab_mount(tmp_path, "%s#n1 %s fuse defaults,data_dir=%s,"
                    "file_size_max=4096,noatime,_netdev,nofail,"
                    "x-systemd.requires=network-online.target 0 0"
                    % (QUORUMFS_BIN, mnt, data), mnt)
    assert r.returncode == 0, r.stderr
    # mount returned: the node runs in the background, the tree is there.
    assert os.path.ismount(mnt)
    with open(os.path.join(mnt, "app.conf"), "w") as f:
        f.write("port = 8080\n")
    with open(os.path.join(mnt, "app.conf")) as f:
        assert f.read() == "port = 8080\n"
    st = subprocess.run([QUORUMFS_BIN, "status", "--data-dir", data],
                        capture_output=True, text=True, timeout=WAIT_S)
    assert "name:        n1" in st.stdout, st.stdout
    # file_size_max=4096 became --file-size-max 4096.
    with pytest.raises(OSError) as e:
        with open(os.path.join(mnt, "big"), "wb") as f:
            f.write(b"x" * 8192)
    assert e.value.errno == 27  # EFBIG
    assert subprocess.run(["umount", mnt]).returncode == 0
    assert daemon_gone(data)
    assert not os.path.ismount(mnt)


def test_fstab_quoted_cluster(tmp_path, fstab_dirs):
    """A value with commas in double quotes: initial_cluster."""
    mnt, data = fstab_dirs
    cluster = "n1=127.0.0.1:27301,n2=127.0.0.1:27302,n3=127.0.0.1:27303"
    r = fstab_mount(tmp_path, '%s#n1 %s fuse data_dir=%s,'
                    'listen_peer=127.0.0.1:27301,initial_cluster="%s",'
                    'peer_insecure,election_ms=300,heartbeat_ms=50,'
                    'proposal_timeout_ms=1000 0 0'
                    % (QUORUMFS_BIN, mnt, data, cluster), mnt)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([QUORUMFS_BIN, "members", "--data-dir", data],
                         capture_output=True, text=True, timeout=WAIT_S)
    assert [line.split()[0] for line in out.stdout.splitlines()] == \
        ["n1", "n2", "n3"], out.stdout


def test_fstab_mount_helper(tmp_path, fstab_dirs):
    """examples/mount.fuse.quorumfs.in (installed as
    /sbin/mount.fuse.quorumfs) run as mount(8) runs it, with no PATH:
    mount.fuse3 finds quorumfs in the bindir the helper names and drops
    mount's own options."""
    mnt, data = fstab_dirs
    with open(os.path.join(ROOT, "examples", "mount.fuse.quorumfs.in")) as f:
        text = f.read()
    helper = tmp_path / "mount.fuse.quorumfs"
    helper.write_text(text.replace("@bindir@",
                                   os.path.dirname(QUORUMFS_BIN)))
    helper.chmod(0o755)
    r = subprocess.run(["env", "-i", str(helper), "n1", mnt, "-o",
                        "rw,data_dir=%s,_netdev,nofail,x-a=b" % data],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.ismount(mnt)
    with open(os.path.join(mnt, ".cluster", "status")) as f:
        assert json.load(f)["name"] == "n1"
    assert subprocess.run(["umount", mnt]).returncode == 0
    assert daemon_gone(data)


@pytest.mark.parametrize("opts,wanted", [
    ("data_dir=D,bogus", "fstab option 'bogus': not a quorumfs mount flag"),
    ("data_dir=D,relatime", "fstab option 'relatime'"),
    ("data_dir=D,file_size_max", "'file_size_max': needs a value"),
    ("data_dir=D,mount_stale=1", "'mount_stale=1': takes no value"),
    ("data_dir=D,name=x", "the node name is the fstab source"),
    ("data_dir=D,file_size_max=lots", "--file-size-max: bad value 'lots'"),
])
def test_fstab_bad_option(tmp_path, fstab_dirs, opts, wanted):
    """A bad option fails the mount with its name, before anything is
    written."""
    mnt, data = fstab_dirs
    r = fstab_mount(tmp_path, "%s#n1 %s fuse %s 0 0"
                    % (QUORUMFS_BIN, mnt, opts.replace("D", data)), mnt)
    assert r.returncode != 0
    assert wanted in r.stderr, r.stderr
    assert not os.path.exists(data)
    assert not os.path.ismount(mnt)


def test_fstab_form_is_not_a_command(tmp_path):
    """`quorumfs NAME /abs -o OPTS` is the fstab form only when NAME is no
    command: `quorumfs status /x -o y` stays the status command."""
    r = subprocess.run([QUORUMFS_BIN, "status", "/nonexistent", "-o", "rw"],
                       capture_output=True, text=True, timeout=WAIT_S)
    assert r.returncode == 2, r.stderr
    assert "fstab" not in r.stderr
    # The form itself, as mount.fuse3 runs it: a quote not closed.
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([QUORUMFS_BIN, "n1", str(mnt), "-o",
                        'rw,initial_cluster="n1=127.0.0.1:27301'],
                       capture_output=True, text=True, timeout=WAIT_S)
    assert r.returncode == 2, r.stderr
    assert "not closed" in r.stderr, r.stderr
    assert not os.path.ismount(str(mnt))


# ------------------------------------------------- man page, completion
MAN_SRC = os.path.join(ROOT, "docs", "quorumfs.8.scd")
COMPLETION = os.path.join(ROOT, "examples", "bash-completion", "quorumfs")


def help_text(*args):
    r = subprocess.run([QUORUMFS_BIN] + list(args), capture_output=True,
                       text=True, timeout=WAIT_S)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def commands():
    """The commands `quorumfs --help` lists (quorumfs WORD lines)."""
    words = re.findall(r"^  quorumfs ([a-z]+)\b", help_text("--help"), re.M)
    cmds = sorted(set(words) - {"help"})
    assert "mount" in cmds and "snapshot" in cmds, cmds
    return cmds


def option_flags(text):
    """The flags an option line of a usage text starts with ("  --x",
    "  -f, --foreground", "  --a LIST, --b ADDR")."""
    flags = set()
    for line in text.splitlines():
        m = re.match(r"^\s{2}(-[-a-z]+)", line)
        if m:
            flags.add(m.group(1))
            flags.update(re.findall(r", (-[-a-z]+)", line))
    return flags


def test_man_page_lists_every_flag():
    """Every command and every flag of the binary's help is in the man
    page source (as *--flag*), so the two cannot drift."""
    with open(MAN_SRC) as f:
        man = f.read()
    missing = []
    for cmd in commands():
        if "*%s" % cmd not in man:
            missing.append(cmd)
        text = help_text(cmd, "--help")
        for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text)) | \
                option_flags(text):
            if "*%s*" % flag not in man:
                missing.append("%s %s" % (cmd, flag))
    assert missing == [], "not in docs/quorumfs.8.scd: %s" % missing


def test_man_page_builds(tmp_path):
    if shutil.which("scdoc") is None:
        pytest.skip("scdoc is not installed (package scdoc)")
    with open(MAN_SRC, "rb") as f:
        r = subprocess.run(["scdoc"], stdin=f, capture_output=True,
                           timeout=WAIT_S)
    assert r.returncode == 0, r.stderr
    assert b".TH \"quorumfs\" \"8\"" in r.stdout


def complete(*words):
    """What the completion offers for the command line words (the last
    one being completed), in bash with COMP_WORDS/COMP_CWORD set."""
    script = ('. "$1"; shift; COMP_WORDS=("$@"); '
              'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _quorumfs; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", script, "bash", COMPLETION] +
                       list(words), capture_output=True, text=True,
                       timeout=WAIT_S)
    assert r.returncode == 0, r.stderr
    return sorted(w for w in r.stdout.splitlines() if w)


def test_completion():
    assert complete("quorumfs", "mem") == ["member", "members"]
    assert complete("quorumfs", "") == sorted(
        commands() + ["help", "--help", "--version"])
    assert complete("quorumfs", "member", "") == \
        ["add", "list", "promote", "remove", "update"]
    assert complete("quorumfs", "member", "update", "n1", "--peer-i") == \
        ["--peer-insecure"]
    assert complete("quorumfs", "snapshot", "re") == ["restore"]
    assert complete("quorumfs", "mount", "/m", "--peer-s") == \
        ["--peer-secret-file"]
    assert complete("quorumfs", "mount", "/m", "--log-level", "w") == \
        ["warn"]
    assert complete("quorumfs", "mount", "/m", "--consistency", "") == \
        ["linearizable", "serializable"]
    assert complete("quorumfs", "snapshot", "status", "--") == \
        ["--help", "--json"]


def test_completion_lists_every_flag():
    """Each command's completed flags include every flag its --help
    lists (for snapshot: over its three subcommands)."""
    for cmd in commands():
        want = option_flags(help_text(cmd, "--help"))
        if cmd == "snapshot":
            got = set()
            for word in ("save", "status", "restore"):
                got.update(complete("quorumfs", cmd, word, "-"))
        else:
            got = set(complete("quorumfs", cmd, "-"))
        assert want - got == set(), (cmd, want - got)


# ------------------------------------------------------------- install
def test_meson_install(tmp_path):
    """`meson install --destdir` puts the binary, the man page, the
    completion, the unit and the mount helper where their users look,
    the unit and the helper naming the installed binary."""
    build = os.path.dirname(os.path.dirname(QUORUMFS_BIN))
    if not os.path.isdir(os.path.join(build, "meson-private")):
        pytest.skip("QUORUMFS_BIN is not in a meson build dir")
    dest = str(tmp_path / "dest")
    r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild",
                        "--destdir", dest], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    paths = [os.path.join(d, n)
             for d, _, names in os.walk(dest) for n in names]

    def installed(name, under):
        found = [p for p in paths if os.path.basename(p) == name and
                 os.path.basename(os.path.dirname(p)) == under]
        assert len(found) == 1, (name, under, paths)
        return found[0]

    binary = installed("quorumfs", "bin")
    assert os.access(binary, os.X_OK)
    assert help_text("--version") == subprocess.run(
        [binary, "--version"], capture_output=True, text=True).stdout
    bindir = os.path.dirname(binary)[len(dest):]
    with open(installed("quorumfs@.service", "system")) as f:
        unit = f.read()
    assert "ExecStart=%s/quorumfs mount " % bindir in unit
    helper = installed("mount.fuse.quorumfs", "sbin")
    assert os.path.dirname(helper) == os.path.join(dest, "sbin")
    assert os.access(helper, os.X_OK)
    with open(helper) as f:
        assert "PATH=%s:" % bindir in f.read()
    completion = installed("quorumfs", "completions")
    assert "bash-completion" in completion
    installed("quorumfs.conf", "examples")
    if shutil.which("scdoc") is not None:
        with open(installed("quorumfs.8", "man8")) as f:
            assert '.TH "quorumfs" "8"' in f.read()


# ----------------------------------------------------------- check perf
def check_perf(mnt, *args):
    return subprocess.run([QUORUMFS_BIN, "check", "perf", "--mount", mnt] +
                          list(args), capture_output=True, text=True,
                          timeout=120)


def test_check_perf_prints_a_verdict(make_node):
    """It runs, prints the figures and PASS or FAIL with reasons (the
    verdict depends on the host: no timing is asserted), and leaves
    nothing behind in the tree or the data dir."""
    n = make_node().start()
    r = check_perf(n.mnt, "--load", "s", "--seconds", "2")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("load s: 2 writers for 2 s through "), r.stdout
    assert any(x.startswith("fdatasync: p50 ") for x in lines), r.stdout
    assert any(x.startswith("writes: ") and ", 0 failed" in x
               for x in lines), r.stdout
    assert any(x.startswith("close(): p50 ") for x in lines), r.stdout
    verdict = [x for x in lines if x.startswith(("PASS", "FAIL"))]
    assert verdict, r.stdout
    if r.returncode == 0:
        assert verdict == [lines[-1]] and lines[-1].startswith("PASS: ")
    else:
        assert r.returncode == 1, r.stderr
        assert all(v.startswith("FAIL: ") for v in verdict), r.stdout
    assert sorted(os.listdir(n.mnt)) == [".cluster", ".snapshots"]
    assert not [f for f in os.listdir(n.data_dir) if "check-perf" in f]


def test_check_perf_fails_with_reasons(make_node):
    """A quota too small for the load: every write past it fails, and the
    verdict says so."""
    n = make_node().start(["--quota-bytes", "4096"])
    r = check_perf(n.mnt, "--seconds", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL: " in r.stdout and "writes failed (the first: " \
        "No space left on device)" in r.stdout, r.stdout
    assert sorted(os.listdir(n.mnt)) == [".cluster", ".snapshots"]


@pytest.mark.parametrize("args,wanted", [
    (["perf"], "give --mount M"),
    (["perf", "--mount", "/", "--load", "xl"], "--load: bad value 'xl'"),
    (["perf", "--mount", "/", "--seconds", "0"], "--seconds: bad value '0'"),
    (["perf", "--mount", "/", "--bogus"], "unknown flag '--bogus'"),
    (["perf", "--mount"], "needs a value"),
    (["perf", "extra", "--mount", "/"], "unexpected argument 'extra'"),
    (["perfs", "--mount", "/"], "expected perf, not perfs"),
])
def test_check_usage_errors(args, wanted):
    r = subprocess.run([QUORUMFS_BIN, "check"] + args, capture_output=True,
                       text=True, timeout=WAIT_S)
    assert r.returncode == 2, r.stderr
    assert wanted in r.stderr, r.stderr


def test_mount_refuses_unknown_fuse_option(tmp_path):
    """`quorumfs mount -o` options are checked with libfuse before the node
    starts: exit 2, the option named, no data dir made."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    data = tmp_path / "data"
    r = subprocess.run([QUORUMFS_BIN, "mount", str(mnt), "--data-dir",
                        str(data), "-f", "-o", "allow_other,relatime"],
                       capture_output=True, text=True, timeout=WAIT_S)
    assert r.returncode == 2, r.stderr
    assert "quorumfs mount: -o relatime: not a FUSE mount option" in \
        r.stderr, r.stderr
    assert not data.exists()
    assert not os.path.ismount(str(mnt))
