#!/usr/bin/python3
"""quorumfs under faults, checked: the project's own Jepsen-style test.

A three-node cluster (tests/e2e/cluster.py: real nodes, real FUSE mounts on
127.0.0.1-3) is loaded by clients on every mount that read and write a few
files (registers) while a nemesis kills (kill -9 + restart), pauses
(SIGSTOP/SIGCONT) and partitions (nftables, this cluster's ports only)
nodes, one fault at a time. Then everything is healed and checked:
- every read returned bytes that one write produced, whole (checker.py);
- the history of each file is linearizable (--mode linearizable) or
  sequentially consistent per node (--mode serializable);
- every acknowledged write of a unique file is on every node (no loss);
- lock files (O_CREAT|O_EXCL): of the clients racing for one name, at most
  one gets it, and an EEXIST always has a holder: a winner or an attempt
  whose outcome is unknown (docs/consistency.md, "O_EXCL"); a winner's
  acknowledged file is on every node with its value;
- every node has the same tree;
- a killed node exits and starts again at once (issue 10, item 4).
With `member` among the nemeses, a second nemesis changes the membership
through the CLI as an operator would (docs/jepsen.md, "The member
nemesis"); clients follow it: a removed node's mount stops being a target,
a new member's becomes one.

Usage (as root, from the repository):
  tests/e2e/jepsen/run.py --seconds 60 --mode linearizable \\
      --nemesis kill,pause,partition --seed 1
One summary line on stdout; exit 0 when no violation was found, 1 when one
was, 2 when the harness itself failed. --out DIR keeps the history, the
nemesis events and the node logs (kept anyway when the run fails).

Client ops: a write is open(O_TRUNC) + one write() + close() of a value
unique to that write (files k0..kN; one such writer per file and mount at a
time), or the same into a temporary file and a rename over the file (file
r: only renames, so that no write goes to an inode a rename just replaced;
half of them rename the temporary file while it is still open, so that the
rename carries its pending update, and close it after). A read is open + ONE read() of up to 64 KiB
+ close. Every EXCL_EVERY-th op of a client takes a lock file: O_CREAT|O_EXCL
of d/l/NNNNNN (the name changes every EXCL_SLOT_S, so the clients of all
nodes race for it), and on success one write of a unique value and close. The files change every --epoch-s seconds (all made at setup) and
each file takes at most --ops-per-key-max ops: the history the checker
searches per file stays bounded however long the run.
Values are a base-62 id padded with '-' to 3..16 bytes (3 and 9 most
often): a read of the new bytes at the old size is then bytes no write
produced. Every call runs in a worker thread and is abandoned after
--op-timeout seconds (a hung mount must not hang the run); an abandoned or
failed write has an unknown outcome.
"""

import argparse
import collections
import errno
import itertools
import json
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import checker as ck  # noqa: E402
import cluster as qc  # noqa: E402
import conftest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
# fork, not vfork, for every subprocess: the child closes the clients'
# fds of the mounts, and a close of a FUSE file waits for its daemon
# (FLUSH). Under vfork the calling thread waits for that child, holding
# the GIL: with a member nemesis command started while the other nemesis
# has a node SIGSTOPped, no thread could send the SIGCONT (seen: a run
# stuck until the node was continued by hand).
subprocess._USE_VFORK = False
READ_BYTES_MAX = 64 * 1024
KILL_EXIT_S = 5.0        # a SIGKILLed node must be gone by then (item 4)
STOP_S = 20.0            # a removed member SIGTERMed must be gone by then
HEAL_TIMEOUT_S = 60.0
# Reading a whole tree back: a cold linearizable mount pays a ReadIndex per
# lookup and per open (~1-2 ms here), and a 20-minute run leaves ~100,000
# files; a 60 s bound timed out on one follower while the others took ~45 s.
TREE_READ_S_PER_FILE = 0.005
UNIQUE_EVERY = 5         # every 5th op of a client writes a new file
EXCL_EVERY = 7           # every 7th op of a client races for a lock file
EXCL_SLOT_S = 0.5        # how long one lock file name is raced for
ERROR_PAUSE_S = 0.05     # a client's pause after a failed call
FUSECTL = "/sys/fs/fuse/connections"
MEMBER_CLI_S = 20.0      # a membership command that takes longer: failed
JOIN_READY_S = 90.0      # a new member catches up and mounts within this
PROMOTE_S = 30.0         # `member promote` retried this long
MEMBER_PORTS = (27700, 27800)  # new members' peer ports (on 127.0.N.4-254)
B62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def now():
    return time.monotonic()


# ---------------------------------------------------------------- calls

class Abandoned(Exception):
    pass


class Caller:
    """Runs blocking calls in a worker thread. A call still running after
    its timeout is abandoned with its thread (blocked in a hung mount until
    cleanup aborts the connection) and a new worker takes over."""

    def __init__(self):
        self.abandoned = 0
        self._spawn()

    def _spawn(self):
        self.jobs = queue.Queue()
        threading.Thread(target=self._loop, args=(self.jobs,),
                         daemon=True).start()

    @staticmethod
    def _loop(jobs):
        while True:
            fn, box, done = jobs.get()
            try:
                box.append((True, fn()))
            except BaseException as e:  # noqa: BLE001 - handed back
                box.append((False, e))
            done.set()

    def call(self, fn, timeout):
        box, done = [], threading.Event()
        self.jobs.put((fn, box, done))
        if not done.wait(timeout):
            self.abandoned += 1
            self._spawn()
            raise Abandoned()
        ok, v = box[0]
        if ok:
            return v
        raise v


class ShortWrite(Exception):
    pass


def log_tail(path, lines):
    """The last `lines` lines of a node's log (none when unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            return [x.decode(errors="replace") for x in
                    f.read().splitlines()[-lines:]]
    except OSError:
        return []


def write_once(path, data, stage=None, flag=os.O_TRUNC):
    """open(O_TRUNC, or flag) + ONE write() + close(); a short count
    raises. stage[0] says how far it got: open, then write, then close."""
    stage = stage if stage is not None else [None]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o644)
    stage[0] = "write"
    try:
        n = os.write(fd, data)
    except BaseException:
        os.close(fd)
        raise
    stage[0] = "close"
    os.close(fd)
    check_count(n, data)


def check_count(n, data):
    """ONE write() of data wrote n bytes: a short count raises."""
    if n != len(data):
        raise ShortWrite("%d of %d bytes" % (n, len(data)))


def rename_held_open(tmp, path, data, stage):
    """open(tmp, O_TRUNC) + ONE write(), rename(tmp, path) while still
    open, then close(): the rename commits the write. stage[0]: tmp until
    the rename is sent, then rename (a failed close after it leaves the
    outcome unknown too)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        check_count(os.write(fd, data), data)
        stage[0] = "rename"
        os.rename(tmp, path)
    finally:
        os.close(fd)


def excl_once(path, data, stage):
    """O_CREAT|O_EXCL, then ONE write() and close(): False when the name
    was taken (EEXIST). stage[0] says how far it got: open, write, close."""
    try:
        write_once(path, data, stage, os.O_EXCL)
    except FileExistsError:
        return False  # only open() raises it
    return True


def read_once(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, READ_BYTES_MAX)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- mounts

def mounts_of(paths):
    """{mountpoint: (fstype, 'major:minor')} for our FUSE mountpoints, from
    /proc/self/mountinfo (never touches the possibly hung mounts)."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, _, b = line.partition(" - ")
            fields = a.split()
            mp = fields[4].replace("\\040", " ")
            if mp in paths:
                out[mp] = (b.split()[0], fields[2])
    return out


def abort_connection(mnt):
    """Abort the FUSE connection of our own mountpoint mnt (frees every
    call blocked in it and a daemon blocked in a notify). Returns True if
    an abort was written."""
    m = mounts_of({mnt}).get(mnt)
    if m is None or not m[0].startswith("fuse"):
        return False
    if not os.listdir(FUSECTL):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL],
                       capture_output=True)
    major, minor = (int(x) for x in m[1].split(":"))
    path = os.path.join(FUSECTL, str((major << 20) | minor), "abort")
    try:
        with open(path, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- members

class Member:
    """One incarnation of a member: its Node (mount, data dir), its peer
    address, the args it (re)starts with and its label in the history (the
    name, then NAME.2, NAME.3 ... when a name comes back with a fresh data
    dir: another state machine). lock serializes process control (a fault,
    a removal's stop and wipe); retired is set once it is removed."""

    def __init__(self, node, ip, port, args, label, voter=True):
        self.node = node
        self.ip = ip
        self.port = port
        self.args = list(args)
        self.label = label
        self.voter = voter
        self.lock = threading.Lock()
        self.retired = threading.Event()


def free_port(ip):
    """A port of MEMBER_PORTS that ip:port can be bound to now."""
    ports = list(range(*MEMBER_PORTS))
    random.shuffle(ports)
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port in %s on %s" % (MEMBER_PORTS, ip))


# ---------------------------------------------------------------- run

class Run:
    def __init__(self, args, root):
        self.args = args
        self.root = root
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.ops = []            # checker.Op
        self.initial = {}        # key -> initial value
        self.acked_unique = {}   # rel path -> value
        self.excl = collections.defaultdict(list)  # rel -> [(how, t0, t1, who)]
        self.counts = collections.Counter()
        self.events = []         # (time, kind, node, detail)
        self.violations = collections.defaultdict(list)  # kind -> [(t, s)]
        self.next_id = len(B62) ** 2
        self.stop = threading.Event()
        self.dead = set()        # labels of nodes that could not be restarted
        self.members = []        # Member, the current ones (self.lock)
        self.threads = []        # clients, joined at the end
        self.incarnations = collections.Counter({n: 1 for n in qc.NAMES})
        self.t0 = now()
        extra = ["--consistency", args.mode]
        self.c = qc.Cluster(root, extra_args=extra)
        n = int(args.seconds // args.epoch_s) + 1
        self.epochs = [["d/e%03d-k%d" % (e, i) for i in range(args.keys)] +
                       ["d/e%03d-r" % e] for e in range(n)]
        self.keys = [k for ks in self.epochs for k in ks]
        self.key_ops = collections.Counter()
        self.write_locks = {}    # (node, key) -> Lock: see write()

    # ---- values ----
    def new_value(self, rng):
        with self.lock:
            i = self.next_id
            self.next_id += 1
        s = ""
        while i:
            i, d = divmod(i, len(B62))
            s = B62[d] + s
        lo, hi = self.args.value_bytes
        r = rng.random()
        n = lo if r < 0.3 else min(hi, 9) if r < 0.6 else rng.randint(lo, hi)
        return (s + "-" * max(0, n - len(s))).encode()

    def record(self, op):
        with self.lock:
            self.ops.append(op)

    def event(self, kind, node="", detail=""):
        with self.lock:
            self.events.append((round(now() - self.t0, 3), kind, node,
                                detail))
            self.counts["nemesis_" + kind] += 1

    def violation(self, kind, t, text):
        with self.lock:
            self.violations[kind].append((t, text))

    # ---- setup ----
    def setup(self):
        self.c.start()
        n1 = self.c.nodes[0]
        for d in ("d", "d/u", "d/tmp", "d/l"):
            os.mkdir(n1.path(d))
        for k in self.keys:
            self.initial[k] = ("init-" + k).encode()
            write_once(n1.path(k), self.initial[k])
        self.c.wait_applied()
        self.members = [Member(n, self.c.ips[n.name], self.c.port_base + i,
                               self.c.args(n, "existing"), n.name)
                        for i, n in enumerate(self.c.nodes)]

    def current(self):
        with self.lock:
            return list(self.members)

    def start_clients(self, m):
        for j in range(self.args.clients_per_node):
            name = "%s.c%d" % (m.label, j)
            rng = random.Random("%s-%s" % (self.args.seed, name))
            t = threading.Thread(target=self.client, args=(m, name, rng),
                                 daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    # ---- clients ----
    def client(self, m, name, rng):
        caller = Caller()
        timeout = self.args.op_timeout
        seq = 0
        while not self.stop.is_set():
            time.sleep(rng.random() * self.args.think_ms / 1000.0)
            if m.label in self.dead or m.retired.is_set():
                return
            if caller.abandoned > self.args.abandoned_max:
                self.event("client_gave_up", m.label, name)
                return
            seq += 1
            if seq % UNIQUE_EVERY == 0:
                self.unique_write(m, name, seq, rng, caller, timeout)
                continue
            if seq % EXCL_EVERY == 0:
                self.excl_take(m, name, rng, caller, timeout)
                continue
            key = self.pick_key(rng)
            if key is None:
                continue
            if rng.random() < 0.5:
                self.read(m, name, key, caller, timeout)
            elif self.write(m, name, key, rng, caller, timeout):
                # Read it back at once: a lost write shows before the next
                # write to the file hides it.
                with self.lock:
                    self.key_ops[key] += 1
                self.read(m, name, key, caller, timeout)

    def pick_key(self, rng):
        e = min(int((now() - self.t0) / self.args.epoch_s),
                len(self.epochs) - 1)
        with self.lock:
            keys = [k for k in self.epochs[e]
                    if self.key_ops[k] < self.args.ops_per_key_max]
            if not keys:
                return None
            key = rng.choice(keys)
            self.key_ops[key] += 1
        return key

    def read(self, m, name, key, caller, timeout, note=""):
        t = now()
        try:
            v = caller.call(lambda: read_once(m.node.path(key)), timeout)
        except (OSError, Abandoned) as e:
            self.count_error("read", e)
            return None
        self.record(ck.Op(name, m.label, key, "r", v, t - self.t0,
                          now() - self.t0, note))
        self.counts["reads"] += 1
        return v

    def write(self, m, name, key, rng, caller, timeout):
        node = m.node
        value = self.new_value(rng)
        rename = key.endswith("-r")
        tmp = node.path("d/tmp", name)
        stage = ["tmp" if rename else "open"]
        # One in-place writer per file and mount: two processes that both
        # open(O_TRUNC) and then write on one mount get what a local file
        # system gives, the second value over the first one's tail, which
        # is no register. Released by the call itself, when it ends.
        busy = None if rename else self.write_lock(m.label, key)
        if busy is not None and not busy.acquire(timeout=timeout):
            self.counts["write_busy"] += 1
            return False

        # Half the renames keep the temporary file open across the rename:
        # the rename then carries the new file's pending update (one entry).
        held = rename and rng.random() < 0.5

        def do():
            try:
                if held:
                    rename_held_open(tmp, node.path(key), value, stage)
                elif rename:
                    write_once(tmp, value, stage)
                    stage[0] = "rename"
                    os.rename(tmp, node.path(key))
                else:
                    write_once(node.path(key), value, stage)
            finally:
                if busy is not None:
                    busy.release()

        t = now()
        complete = None
        note = "rename-held" if held else "rename" if rename else ""
        try:
            caller.call(do, timeout)
            complete = now() - self.t0
            self.counts["writes_acked"] += 1
        except ShortWrite as e:
            self.violation("short_write", t - self.t0, "%s %s %r: %s"
                           % (name, key, value, e))
        except (OSError, Abandoned) as e:
            self.count_error("write_" + stage[0], e)
            if not isinstance(e, Abandoned) and stage[0] in ("tmp", "open"):
                return False  # failed before the value was sent
            self.counts["writes_unknown"] += 1
            note += " " + errname(e)
        self.record(ck.Op(name, m.label, key, "w", value, t - self.t0,
                          complete, note.strip()))
        return complete is not None

    def write_lock(self, node_name, key):
        with self.lock:
            return self.write_locks.setdefault((node_name, key),
                                               threading.Lock())

    def unique_write(self, m, name, seq, rng, caller, timeout):
        node = m.node
        rel = "d/u/%s-%06d" % (name, seq)
        value = self.new_value(rng)
        try:
            caller.call(lambda: write_once(node.path(rel), value), timeout)
        except ShortWrite as e:
            self.violation("short_write", now() - self.t0, "%s: %s"
                           % (rel, e))
            return
        except (OSError, Abandoned) as e:
            self.count_error("unique", e)
            return
        with self.lock:
            self.acked_unique[rel] = (value, now() - self.t0)
            self.counts["unique_acked"] += 1

    def excl_take(self, m, name, rng, caller, timeout):
        """Race for this slot's lock file: won (the open succeeded), lost
        (EEXIST) or unknown (the open failed otherwise or was abandoned:
        its reservation may have been taken)."""
        rel = "d/l/%06d" % int((now() - self.t0) / EXCL_SLOT_S)
        value = self.new_value(rng)
        stage = ["open"]
        t = now()
        try:
            won = caller.call(lambda: excl_once(m.node.path(rel), value,
                                                stage), timeout)
        except ShortWrite as e:
            self.violation("short_write", t - self.t0, "%s: %s" % (rel, e))
            return
        except (OSError, Abandoned) as e:
            self.count_error("excl_" + stage[0], e)
            how = "unknown" if stage[0] == "open" else "won"
            with self.lock:
                self.excl[rel].append((how, t - self.t0, now() - self.t0,
                                       name))
            return
        with self.lock:
            self.excl[rel].append(("won" if won else "lost", t - self.t0,
                                   now() - self.t0, name))
            self.counts["excl_won" if won else "excl_lost"] += 1
            if won:
                self.acked_unique[rel] = (value, now() - self.t0)

    def check_excl(self):
        """At most one winner per lock file; an EEXIST needs a holder that
        began before it ended (a winner, or an attempt of unknown outcome)."""
        for rel, hs in sorted(self.excl.items()):
            wins = [h for h in hs if h[0] == "won"]
            if len(wins) > 1:
                self.violation("excl_two_winners", wins[1][1], "%s: %s"
                               % (rel, ", ".join(
                                   "%s at %.3f-%.3f" % (h[3], h[1], h[2])
                                   for h in wins)))
            for h in hs:
                if h[0] == "lost" and not any(
                        o[0] in ("won", "unknown") and o[1] <= h[2]
                        for o in hs):
                    self.violation("excl_no_holder", h[1],
                                   "%s: %s got EEXIST at %.3f-%.3f, nobody "
                                   "took it" % (rel, h[3], h[1], h[2]))

    def count_error(self, what, e):
        with self.lock:
            self.counts["%s_%s" % (what, errname(e))] += 1
        time.sleep(ERROR_PAUSE_S)  # no busy loop on a dead mount

    # ---- nemesis ----
    def nemesis(self, rng, kinds):
        """kill, pause, partition: one fault at a time, on a current
        member that no membership step is stopping or starting."""
        while not self.stop.wait(rng.uniform(*self.args.quiet_s)):
            kind = rng.choice(kinds)
            if self.dead:
                return  # a node is gone for good: stop hurting the rest
            up = self.current()
            m = self.victim(rng, up)
            if not m.lock.acquire(blocking=False):
                continue  # a membership step owns its process now
            try:
                if not m.retired.is_set():
                    self.fault(kind, m, up, rng.uniform(*self.args.fault_s))
            except Exception as e:  # noqa: BLE001 - reported, run goes on
                self.event("error", m.label, repr(e))
            finally:
                m.lock.release()

    def fault(self, kind, m, up, hold):
        node = m.node
        if kind == "kill":
            self.kill_restart(m, hold)
        elif kind == "pause":
            self.event("pause", m.label)
            self.c.sigstop(node)
            self.stop.wait(hold)
            self.c.sigcont(node)
        else:
            # the rules match the current members' peer ports only
            p = qc.Partition({x.ip: x.port for x in up})
            self.c.partitions.append(p)
            self.event("partition", m.label)
            p.isolate([m.ip], [x.ip for x in up if x is not m])
            self.stop.wait(hold)
            p.heal()

    def victim(self, rng, up):
        """The leader half of the time (where faults hurt most)."""
        if rng.random() < 0.5:
            ld = self.leader_of(up)
            if ld is not None:
                return ld
        return rng.choice(up)

    def leader_of(self, up):
        st = self.status(up[0].node)
        if st and st.get("leader"):
            for m in up:
                if m.node.name == st["leader"]:
                    return m
        return None

    def status(self, node):
        try:
            return Caller().call(node.status, 2.0)
        except (OSError, ValueError, Abandoned):
            return None

    def kill_restart(self, m, hold):
        self.event("kill", m.label)
        self.kill(m)
        self.stop.wait(hold)
        self.restart(m)

    def kill(self, m):
        """kill -9; a node still there after KILL_EXIT_S is issue 10's
        item 4 (a violation): its connection is then aborted to free it."""
        if not self.end_process(m, signal.SIGKILL, KILL_EXIT_S, "unkillable"):
            self.dead.add(m.label)
            return
        m.node.stop()  # closes its log
        conftest.unmount(m.node.mnt)  # fusermount3 -uz of the dead mount

    def end_process(self, m, sig, wait_s, violation):
        """Sends sig to m's process and waits wait_s for it to exit. One
        still running is a `violation`: its FUSE connection is aborted, it
        gets SIGKILL and KILL_EXIT_S more. False (a `lost_node` event) when
        it never exits."""
        node = m.node
        node.proc.send_signal(sig)
        t = now()
        try:
            node.proc.wait(wait_s)
            return True
        except subprocess.TimeoutExpired:
            self.violation(violation, t - self.t0, "%s still running %.0f s "
                           "after %s" % (m.label, wait_s, sig.name))
        abort_connection(node.mnt)
        node.proc.kill()
        try:
            node.proc.wait(KILL_EXIT_S)
            return True
        except subprocess.TimeoutExpired:
            self.event("lost_node", m.label, "did not exit")
            return False

    def restart(self, m):
        """Start again on the same mountpoint and data dir: must work at
        once (issue 10, item 4); a failure is a violation."""
        if m.label in self.dead:
            return
        node = m.node
        t = now()
        try:
            node.start(m.args)
            return
        except Exception as e:  # noqa: BLE001
            if m.retired.is_set() or not self.listed(m):
                # removed while it was down: a member no longer, and
                # retire() stops and wipes it
                self.event("restart_removed", m.label, str(e)[-200:])
                return
            self.violation("restart", t - self.t0, "%s: %s"
                           % (m.label, str(e)[-500:]))
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(KILL_EXIT_S)
        abort_connection(node.mnt)
        conftest.unmount(node.mnt)
        try:
            node.start(m.args)
        except Exception as e:  # noqa: BLE001
            self.dead.add(m.label)
            self.event("lost_node", m.label, str(e)[-300:])

    # ---- the member nemesis ----
    def member_nemesis(self, rng):
        """Membership changes through the CLI, one at a time, 1-3 s apart
        (--quiet-s): with V voters (--voters, 3 or 5), replace a node, add
        one more voter, move the leader or remove it; with more than V,
        remove one; with fewer, add one (a 5-voter run starts with 3 and
        grows); a learner left over is promoted first. A command that fails
        is an outcome (an event), not an error: the next step starts from
        what `member list` says."""
        names = ("n%d" % i for i in itertools.count(4))
        ips = ("127.0.%d.%d" % (i // 251 % 256, 4 + i % 251)
               for i in itertools.count())
        while not self.stop.wait(rng.uniform(*self.args.quiet_s)):
            if self.dead:
                return
            try:
                self.member_step(rng, names, ips)
            except Exception as e:  # noqa: BLE001 - reported, run goes on
                self.event("member_error", "", repr(e)[-300:])

    def cli(self, m, *args, timeout=MEMBER_CLI_S):
        """`quorumfs ARGS --data-dir D` on member m: (rc, stdout, stderr);
        rc None when it did not answer in time."""
        try:
            r = subprocess.run([self.args.bin] + list(args) +
                               ["--data-dir", m.node.data_dir],
                               capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "", "timeout"
        return r.returncode, r.stdout, r.stderr

    def outcome(self, what, m, rc, out, err, detail=""):
        ok = rc == 0
        last = (err or out).strip().splitlines()
        self.event(what if ok else what + "_failed", m.label if m else "",
                   (detail + " " + ("" if ok else (last[-1] if last else
                                                   "rc=%s" % rc))).strip())
        return ok

    def member_step(self, rng, names, ips):
        up = self.current()
        if not self.reconcile(rng, up):
            return
        up = self.current()
        voters = [m for m in up if m.voter]
        learners = [m for m in up if not m.voter]
        if learners:
            self.promote(rng, learners[0])
        elif len(voters) < self.args.voters:
            self.add(rng, names, ips)
        elif len(voters) > self.args.voters:
            self.remove(rng, self.pick_victim(rng, voters))
        else:
            step = rng.choice(("replace", "grow", "transfer",
                               "remove_leader"))
            if step == "replace":
                gone = self.remove(rng, rng.choice(voters))
                if gone is not None:
                    self.add(rng, names, ips, reuse=gone)
            elif step == "grow":
                self.add(rng, names, ips)
            elif step == "transfer":
                via = rng.choice(voters)
                to = rng.choice([None] + voters)
                args = ["leader", "transfer"]
                if to is not None:
                    args += ["--to", to.node.name]
                rc, out, err = self.cli(via, *args)
                self.outcome("transfer", via, rc, out, err,
                             "to " + (to.label if to else "any"))
            else:
                ld = self.leader_of(voters)
                if ld is not None:
                    self.remove(rng, ld, "the leader")

    def pick_victim(self, rng, voters):
        if rng.random() < 0.3:
            ld = self.leader_of(voters)
            if ld is not None:
                return ld
        return rng.choice(voters)

    def reconcile(self, rng, up):
        """Bring our view in line with `member list` on some member (a
        command whose outcome was unknown may have landed): a member we
        think removed is retired, one we do not know is removed, roles
        are taken as listed. False when no member answered."""
        for via in rng.sample(up, len(up)):
            rc, out, _ = self.cli(via, "member", "list", "--json",
                                  timeout=5.0)
            if rc == 0:
                break
        else:
            self.event("member_list_failed")
            return False
        listed = {x["name"]: x for x in json.loads(out)["members"]}
        for m in up:
            x = listed.get(m.node.name)
            if x is None:
                self.event("member_gone", m.label, "found removed")
                self.retire(m)
            else:
                m.voter = bool(x["voter"])
        known = {m.node.name for m in up}
        for name in set(listed) - known:
            rc, out, err = self.cli(via, "member", "remove", name)
            self.outcome("member_remove_stray", None, rc, out, err, name)
        return True

    def listed(self, m):
        """Whether a member that answers lists m (True when none does)."""
        for via in self.current():
            if via is m:
                continue
            rc, out, _ = self.cli(via, "member", "list", "--json",
                                  timeout=5.0)
            if rc == 0:
                return any(x["name"] == m.node.name
                           for x in json.loads(out)["members"])
        return True

    def remove(self, rng, m, why=""):
        """`member remove` on another member; once it is committed, m's
        clients stop, and it is stopped and wiped. Returns its Node (for a
        re-add under the same name) or None."""
        vias = [x for x in self.current() if x is not m]
        via = rng.choice(vias)
        rc, out, err = self.cli(via, "member", "remove", m.node.name)
        if not self.outcome("member_remove", m, rc, out, err,
                            ("%s via %s" % (why, via.label)).strip()):
            return None
        self.retire(m)
        return m.node

    def retire(self, m):
        m.retired.set()  # its clients stop (calls in flight finish)
        with self.lock:
            if m in self.members:
                self.members.remove(m)
        with m.lock:  # waits for a fault on it to end
            self.stop_node(m)
            conftest.unmount(m.node.mnt)
            shutil.rmtree(m.node.data_dir, ignore_errors=True)
            os.makedirs(m.node.data_dir)

    def stop_node(self, m):
        """SIGTERM, as an operator does: a node still running STOP_S later
        is a violation (`unstoppable`; its connection is then aborted)."""
        node = m.node
        if node.proc is None or node.proc.poll() is not None:
            node.stop()
            return
        if self.end_process(m, signal.SIGTERM, STOP_S, "unstoppable"):
            node.stop()  # closes its log

    def add(self, rng, names, ips, reuse=None):
        """`member add` (a new name, or a removed one's with an empty data
        dir), start it with the flags printed, clients on it once it is
        mounted, then promote it."""
        up = self.current()
        if reuse is None and rng.random() < 0.5:
            gone = [n for n in self.c.nodes
                    if n.name not in {m.node.name for m in up} and
                    n.proc is not None and n.proc.poll() is not None]
            reuse = rng.choice(gone) if gone else None
        node = reuse if reuse is not None else conftest.Node(self.root,
                                                             next(names))
        ip = next(ips)
        port = free_port(ip)
        via = rng.choice(up)
        rc, out, err = self.cli(via, "member", "add", node.name,
                                "%s:%d" % (ip, port))
        if not self.outcome("member_add", via, rc, out, err,
                            "%s at %s:%d" % (node.name, ip, port)):
            return
        kv = dict(line.split("=", 1) for line in out.splitlines()
                  if line.startswith("QUORUMFS_") and "=" in line)
        args = (["--listen-peer", "%s:%d" % (ip, port),
                 "--initial-cluster", kv["QUORUMFS_INITIAL_CLUSTER"],
                 "--initial-cluster-state", "existing",
                 "--cluster-id", kv["QUORUMFS_CLUSTER_ID"]] +
                self.c.common)
        with self.lock:
            if node not in self.c.nodes:
                self.c.nodes.append(node)  # cleanup() stops it
            self.incarnations[node.name] += 1
            k = self.incarnations[node.name]
        m = Member(node, ip, port, args,
                   node.name if k == 1 else "%s.%d" % (node.name, k),
                   voter=False)
        with m.lock:
            with self.lock:
                self.members.append(m)
            t = now()
            try:
                node.start(args, wait=False)
                node.wait_ready(JOIN_READY_S)
            except Exception as e:  # noqa: BLE001
                self.violation("rejoin", t - self.t0, "%s did not join "
                               "within %.0f s: %s" % (m.label, JOIN_READY_S,
                                                      str(e)[-500:]))
                failed = True
            else:
                failed = False
        if failed:  # out again, so that the run can go on
            self.retire(m)
            rc, out, err = self.cli(via, "member", "remove", node.name)
            self.outcome("member_remove", m, rc, out, err, "not joined")
            return
        self.event("member_started", m.label, "%.1f s" % (now() - t))
        self.start_clients(m)
        self.promote(rng, m)

    def promote(self, rng, m):
        """`member promote` until the learner has caught up (or
        PROMOTE_S)."""
        deadline = now() + PROMOTE_S
        tries = 0
        while not self.stop.is_set():
            via = rng.choice(self.current())
            rc, out, err = self.cli(via, "member", "promote", m.node.name)
            tries += 1
            if rc == 0 or now() > deadline:
                if self.outcome("member_promote", m, rc, out, err,
                                "%d tries" % tries):
                    m.voter = True
                return
            self.stop.wait(0.3)

    # ---- heal and final checks ----
    def heal(self):
        for p in self.c.partitions:
            p.heal()
        for name in list(self.c.stopped):
            self.c.sigcont(self.c.node(name))
        for m in self.current():
            if m.label not in self.dead and (m.node.proc is None or
                                             m.node.proc.poll() is not None):
                self.restart(m)
        if "member" in self.args.nemesis.split(","):
            self.reconcile_at_heal()
        up = [m.node for m in self.current() if m.label not in self.dead]
        try:
            Caller().call(lambda: self.c.wait_leader(up), HEAL_TIMEOUT_S)
            Caller().call(lambda: self.c.wait_applied(up), HEAL_TIMEOUT_S)
        except Exception as e:  # noqa: BLE001
            tails = []
            for n in up:
                if n.name in self.c.status_errors:
                    tails.append("%s's log ends: %s" % (n.name, " | ".join(
                        log_tail(n.log_path, 4))))
            self.violation("no_recovery", now() - self.t0,
                           "after healing: %s%s" % (
                               str(e)[-800:],
                               "".join("\n  " + t for t in tails)))
            return False
        return True

    def reconcile_at_heal(self):
        """The last member step may have ended in a `member remove` whose
        answer was lost but which committed: the removed member, cut off
        before it learned its removal, stays a follower without a leader
        (the others no longer talk to it), so waiting for it to agree on
        a leader cannot succeed. As each step does, take the membership
        as the leader lists it (the highest term's, once its configuration
        is committed; polled until there is one): a member it does not list
        is retired (`member_gone`)."""
        deadline = now() + HEAL_TIMEOUT_S
        while now() < deadline:
            best = None
            for m in self.current():
                if m.label in self.dead:
                    continue
                rc, out, _ = self.cli(m, "member", "list", "--json",
                                      timeout=5.0)
                if rc != 0:
                    continue
                listed = json.loads(out)
                committed = listed["commit_index"] >= listed["conf_index"]
                if listed.get("role") == "leader" and committed and (
                        best is None or listed["term"] > best["term"]):
                    best = listed
            if best is not None:
                names = {x["name"] for x in best["members"]}
                for m in self.current():
                    if m.node.name not in names:
                        self.event("member_gone", m.label,
                                   "found removed at heal (leader %s, "
                                   "term %d)" % (best["node"], best["term"]))
                        self.retire(m)
                return
            time.sleep(0.5)

    def final_checks(self):
        ms = [m for m in self.current() if m.label not in self.dead]
        up = [m.node for m in ms]
        caller = Caller()
        for m in ms:
            for k in self.keys:
                self.read(m, "final-" + m.label, k, caller,
                          self.args.op_timeout, note="final")
        trees = {}
        # The files: every acknowledged unique write's, plus the keys'.
        files = (self.counts["unique_acked"] + self.counts["excl_won"] +
                 4 * len(self.keys))
        for n in up:
            t_tree = time.monotonic()
            try:
                trees[n.name] = caller.call(
                    lambda: conftest.tree(n.path("d")),
                    HEAL_TIMEOUT_S + TREE_READ_S_PER_FILE * files)
                print("tree of %s: %d entries in %.1f s" % (
                    n.name, len(trees[n.name]), time.monotonic() - t_tree),
                    file=sys.stderr)
            except (OSError, Abandoned) as e:
                self.violation("unreadable_tree", now() - self.t0,
                               "%s: %s" % (n.name, errname(e)))
        names = sorted(trees)
        for a in names[1:]:
            diff = qc.tree_diff(trees[names[0]], trees[a])
            if diff:
                self.violation("diverged", now() - self.t0, "%s vs %s: %s"
                               % (names[0], a, "; ".join(diff)))
        for name, t in trees.items():
            lost = [(at, rel) for rel, (v, at) in self.acked_unique.items()
                    if t.get(os.path.relpath(rel, "d"), (0, 0, None))[2]
                    != v]
            for at, rel in sorted(lost)[:20]:
                self.violation("lost", at, "%s: acked %s missing or "
                               "different" % (name, rel))
            if len(lost) > 20:
                self.violation("lost", lost[-1][0], "%s: %d more"
                               % (name, len(lost) - 20))

    def check_history(self):
        self.check_excl()
        res = ck.check(self.ops, self.initial, self.args.mode)
        for kind, items in res["violations"].items():
            for t, text in items:
                self.violation(kind, t, text)
        self.counts["empty_reads"] = res["empty"]
        self.counts["page_cache_reads"] = res["page_cache"]
        self.counts["unchecked_keys"] = len(res["unchecked"])
        return res

    # ---- the whole run ----
    def go(self):
        self.setup()
        self.t0 = now()
        kinds = [k for k in self.args.nemesis.split(",") if k]
        faults = [k for k in kinds if k != "member"]
        for m in self.current():
            self.start_clients(m)
        nemeses = []
        if faults:
            nemeses.append(threading.Thread(
                target=self.nemesis, args=(self.rng, faults), daemon=True))
            # with 5 voters, two faults at a time (a quorum of 3 is left);
            # the extra ones have their own schedules
            for k in range(1, (self.args.voters - 1) // 2):
                rng = random.Random("%s-fault-%d" % (self.args.seed, k))
                nemeses.append(threading.Thread(
                    target=self.nemesis, args=(rng, faults), daemon=True))
        if "member" in kinds:
            # its own schedule, so that seeds without it keep theirs
            rng = random.Random("%s-member" % self.args.seed)
            nemeses.append(threading.Thread(
                target=self.member_nemesis, args=(rng,), daemon=True))
        for t in nemeses:
            t.start()
        self.stop.wait(self.args.seconds)
        self.stop.set()
        # the nemeses first: a membership step ends before clients do
        for t in nemeses + self.threads:
            t.join(self.args.op_timeout + 2 * KILL_EXIT_S + JOIN_READY_S)
            if t.is_alive():
                self.event("thread_stuck", "", t.name)
        if self.heal():
            self.final_checks()
        return self.check_history()

    def summary(self):
        c = self.counts
        ops = len(self.ops)
        v = ",".join("%s:%d" % (k, len(x))
                     for k, x in sorted(self.violations.items())) or "none"
        firsts = [t for x in self.violations.values() for t, _ in x]
        nem = ",".join("%s:%d" % (k[len("nemesis_"):], n)
                       for k, n in sorted(c.items())
                       if k.startswith("nemesis_")) or "none"
        errs = ",".join("%s:%d" % (k, n) for k, n in sorted(c.items())
                        if k.split("_")[0] in ("read", "write", "unique",
                                               "excl")
                        and k not in ("unique_acked", "excl_won",
                                      "excl_lost"))
        return ("jepsen mode=%s%s seed=%s seconds=%s ops=%d writes_acked=%d "
                "writes_unknown=%d reads=%d empty_reads=%d "
                "page_cache_reads=%d unique_acked=%d "
                "locks_won=%d locks_lost=%d violations=%s first_violation_s=%s nemesis=%s errors=%s "
                "unchecked_keys=%d result=%s"
                % (self.args.mode, "" if self.args.voters == 3 else
                   " voters=%d" % self.args.voters, self.args.seed,
                   self.args.seconds, ops,
                   c["writes_acked"], c["writes_unknown"], c["reads"],
                   c["empty_reads"], c["page_cache_reads"],
                   c["unique_acked"], c["excl_won"],
                   c["excl_lost"], v,
                   "%.1f" % min(firsts) if firsts else "-", nem,
                   errs or "none", c["unchecked_keys"],
                   "FAIL" if self.violations else "PASS"))

    def save(self, out):
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "history.jsonl"), "w") as f:
            for op in sorted(self.ops, key=lambda o: o.invoke):
                f.write(json.dumps({
                    "process": op.process, "node": op.node, "key": op.key,
                    "kind": op.kind, "value": op.value.decode("latin-1"),
                    "invoke": op.invoke, "complete": op.complete,
                    "note": op.note}) + "\n")
        with open(os.path.join(out, "events.json"), "w") as f:
            json.dump(self.events, f, indent=0)
        with open(os.path.join(out, "violations.txt"), "w") as f:
            for kind, items in sorted(self.violations.items()):
                for t, text in sorted(items, key=lambda x: x[0]):
                    f.write("%s at %.3f s: %s\n" % (kind, t, text))
        for n in self.c.nodes:
            if os.path.exists(n.log_path):
                shutil.copy(n.log_path, out)

    def cleanup(self):
        """SIGKILL every node: its connection dies with it and frees the
        calls blocked in its mount. A node that cannot die (item 4) keeps
        its connection: that one is aborted."""
        self.stop.set()
        for n in self.c.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.proc.kill()
        for n in self.c.nodes:
            try:
                if n.proc is not None:
                    n.proc.wait(KILL_EXIT_S)
            except subprocess.TimeoutExpired:
                abort_connection(n.mnt)
        try:
            self.c.cleanup()
        except Exception as e:  # noqa: BLE001
            print("cleanup: %r" % e, file=sys.stderr)


def errname(e):
    if isinstance(e, Abandoned):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--mode", choices=("linearizable", "serializable"),
                   default="linearizable")
    p.add_argument("--nemesis", default="kill,pause,partition",
                   help="comma-separated: kill, pause, partition, member "
                   "('' none)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--voters", type=int, choices=(3, 5), default=3,
                   help="voters the member nemesis keeps (the cluster "
                   "starts with 3); with 5, two faults at a time")
    p.add_argument("--keys", type=int, default=3)
    p.add_argument("--clients-per-node", type=int, default=2)
    p.add_argument("--think-ms", type=float, default=10.0)
    p.add_argument("--op-timeout", type=float, default=10.0)
    p.add_argument("--abandoned-max", type=int, default=20)
    p.add_argument("--ops-per-key-max", type=int, default=3000,
                   help="bounds the history searched per file")
    p.add_argument("--value-bytes", type=int, nargs=2, default=(3, 16),
                   metavar=("MIN", "MAX"),
                   help="value sizes (3 and 9 most often); MIN = MAX: "
                   "all values the same size")
    p.add_argument("--epoch-s", type=float, default=20.0,
                   help="clients move to new files this often")
    p.add_argument("--quiet-s", type=float, nargs=2, default=(1.0, 3.0))
    p.add_argument("--fault-s", type=float, nargs=2, default=(1.0, 4.0))
    p.add_argument("--bin", default=os.environ.get(
        "QUORUMFS_BIN", os.path.join(ROOT, "build", "fs", "quorumfs")))
    p.add_argument("--out", default=None,
                   help="keep history, events and logs here")
    p.add_argument("--verbose", action="store_true",
                   help="print every violation on stderr")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1 << 31)
    bad = set(a.nemesis.split(",")) - {"", "kill", "pause", "partition",
                                       "member"}
    if bad:
        p.error("unknown nemesis: %s" % ",".join(sorted(bad)))
    if a.voters != 3 and "member" not in a.nemesis.split(","):
        p.error("--voters %d needs the member nemesis (the cluster starts "
                "with 3 and grows)" % a.voters)
    return a


def main(argv=None):
    args = parse_args(argv)
    if not os.access(args.bin, os.X_OK):
        print("no quorumfs binary at %s (--bin)" % args.bin, file=sys.stderr)
        return 2
    conftest.QUORUMFS_BIN = args.bin
    root = tempfile.mkdtemp(prefix="qfs-jepsen-")
    run = Run(args, root)
    rc = 2
    try:
        run.go()
        rc = 1 if run.violations else 0
    except Exception as e:  # noqa: BLE001
        print("harness error: %r" % e, file=sys.stderr)
        import traceback
        traceback.print_exc()
    finally:
        run.cleanup()
    print(run.summary(), flush=True)
    out = args.out or (os.path.join(tempfile.gettempdir(), "qfs-jepsen-%s-%d"
                                    % (args.mode, args.seed))
                       if rc != 0 else None)
    if out:
        run.save(out)
        print("history, events, violations and logs: %s" % out,
              file=sys.stderr)
    if args.verbose or rc != 0:
        for kind, items in sorted(run.violations.items()):
            for t, text in sorted(items, key=lambda x: x[0])[:5]:
                print("%s at %.1f s: %s" % (kind, t, text[:3000]),
                      file=sys.stderr)
    if not mounts_of({n.mnt for n in run.c.nodes}):
        shutil.rmtree(root, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
