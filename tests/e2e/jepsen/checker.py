"""Checkers for register histories: one file = one register.

Contract:
- An Op is one client operation on one file (key): a write of a value or a
  read that returned a value, with its invoke and complete times (any
  monotonic clock, same for all ops). complete is None when the outcome is
  unknown (EIO, a timeout, an abandoned call): the op may or may not have
  taken effect, at any time after its invoke. Failed reads carry no
  information and are not recorded. Values are bytes, unique per write;
  `initial` is the file's content before the first op.
- check_values(): reads that return bytes no write produced ("garbage": a
  value cut short, padded with NULs, a mix) and reads of a value whose write
  was invoked after the read completed ("future"). With page_cache (serializable
  mode: reads through the kernel's page cache), one shape is the Linux page
  cache's on the writer's host and is counted ("page_cache"), not reported:
  a value cut to, or NUL-padded to, the length of another write made on the
  reader's node during the read (the reader took the page of the first,
  that write's O_TRUNC dropped it and its write() set the size the reader
  then sampled; ext4 does the same: docs/consistency.md, "The writer's own
  mount"). Linearizable reads are direct I/O: no allowance. Reads of b"" are counted
  ("empty") and left out of the other checks: an empty file is a state the
  consistency model allows in documented cases: on the writer's own mount
  between its O_TRUNC and its write, and anywhere once a truncation was
  committed alone (its write came more than 200 ms later, or failed). An
  empty read that none of these explains is a violation ("empty").
- check_linearizable(): Wing & Gong's search with Lowe's memoization of
  (set of linearized ops, register value), as in Porcupine: returns
  (True|False|None, detail); None when the step budget ran out.
- check_sequential(): what serializable mode promises. Every node applies
  the same sequence of writes; a node's reads return its applied state, which
  only moves forward; a write acknowledged on a node is applied there before
  the acknowledgement. So there must be one order of the writes in which:
  writes are in real-time order (acked before invoked), and on each node the
  ops in real-time order (reads, and writes acknowledged there) never go
  back; reads noted "final" (made after healing and convergence) come after
  every acknowledged write. The constraints form a graph over values; a cycle
  is a violation.
All checkers are pure functions of the history; they never raise on a bad
history, they report it.
"""

import collections

INF = float("inf")
STEPS_MAX = 2_000_000  # Wing-Gong steps per key before giving up (None)
# FS_SETTLE_MS: a truncation that no write followed within it is committed
# on its own (docs/consistency.md).
TRUNC_ALONE_S = 0.2


class Op:
    __slots__ = ("id", "process", "node", "key", "kind", "value", "invoke",
                 "complete", "note")

    def __init__(self, process, node, key, kind, value, invoke, complete,
                 note=""):
        assert kind in ("w", "r")
        assert complete is None or complete >= invoke
        self.id = -1
        self.process = process
        self.node = node
        self.key = key
        self.kind = kind
        self.value = value
        self.invoke = invoke
        self.complete = complete  # None: unknown outcome (writes only)
        self.note = note

    def end(self):
        return INF if self.complete is None else self.complete

    def __repr__(self):
        c = "?" if self.complete is None else "%.3f" % self.complete
        return ("%s %s@%s %s %r [%.3f, %s]%s"
                % (self.process, self.kind, self.node, self.key, self.value,
                   self.invoke, c, " " + self.note if self.note else ""))


def by_key(ops):
    out = collections.defaultdict(list)
    for op in ops:
        out[op.key].append(op)
    return out


# ---------------------------------------------------------------- values

def check_values(ops, initial, page_cache=False):
    """{'garbage': [ops], 'future': [ops], 'empty': n, 'page_cache': [ops]}
    over all keys. initial maps key -> initial value."""
    out = {"garbage": [], "future": [], "empty": 0, "empty_unexplained": [],
           "page_cache": []}
    for key, kops in by_key(ops).items():
        writes = {op.value: op for op in kops if op.kind == "w"}
        for op in kops:
            if op.kind != "r":
                continue
            if op.value == b"":
                out["empty"] += 1
                if not _empty_explained(op, writes.values()):
                    out["empty_unexplained"].append(op)
            elif op.value == initial.get(key):
                continue
            elif op.value not in writes:
                if page_cache and _page_cache_race(op, writes.values()):
                    out["page_cache"].append(op)
                else:
                    out["garbage"].append(op)
            elif writes[op.value].invoke > op.end():
                out["future"].append(op)
    return out


def _page_cache_race(read, writes):
    """Whether read's bytes are a write's value cut to, or NUL-padded to,
    the length of another write made on read's node during read."""
    got = read.value
    body = got.rstrip(b"\0")
    sources = [w for w in writes if w.invoke < read.end() and (
        (len(w.value) > len(got) and w.value.startswith(got)) or
        (len(got) > len(w.value) and body == w.value))]
    for src in sources:
        for w in writes:
            if (w is not src and w.node == read.node and
                    len(w.value) == len(got) and w.invoke < read.end() and
                    w.end() > read.invoke):
                return True
    return False


def _empty_explained(read, writes):
    for w in writes:
        if w.invoke > read.end():
            continue
        if w.node == read.node and w.end() >= read.invoke:
            return True  # between the writer's O_TRUNC and its write
        if w.end() - w.invoke >= TRUNC_ALONE_S:
            return True  # its truncation may have been committed alone
    return False


def explain_garbage(op, writes, explain_max=3):
    """What a garbage read looks like: a write's bytes cut short, or
    extended with NULs or older bytes (the stale size of issue 10, item 1)."""
    body = op.value.rstrip(b"\0")
    out = []
    for w in writes:
        if not body or len(out) >= explain_max:
            break
        if w.value != body and w.value.startswith(body):
            out.append("%r of %s cut to %d bytes"
                       % (w.value, w.process, len(op.value)))
        elif body == w.value or body.startswith(w.value):
            out.append("%r of %s extended to %d bytes"
                       % (w.value, w.process, len(op.value)))
    if not body:
        out.append("only NULs")
    return " (%s)" % "; ".join(out) if out else ""


def relevant(kops, initial):
    """The ops of one key that the order checks use: reads of values some
    write (or the initial state) produced, known writes, and unknown writes
    that some read observed. An unknown write nobody read can be taken as
    never having happened: removing it from a valid order keeps it valid."""
    produced = {op.value for op in kops if op.kind == "w"}
    produced.add(initial)
    read = {op.value for op in kops if op.kind == "r"}
    out = []
    for op in kops:
        if op.kind == "r":
            if op.value != b"" and op.value in produced:
                out.append(op)
        elif op.complete is not None or op.value in read:
            out.append(op)
    return out


# ---------------------------------------------------------------- Wing-Gong

class _Entry:
    __slots__ = ("op", "call", "time", "match", "prev", "next")

    def __init__(self, op, call, time):
        self.op = op
        self.call = call
        self.time = time
        self.match = None
        self.prev = None
        self.next = None


def _entry_list(ops):
    """A doubly linked list of call and return entries in time order; at
    equal times calls come first (the ops are taken as overlapping)."""
    entries = []
    for op in ops:
        c = _Entry(op, True, op.invoke)
        r = _Entry(op, False, op.end())
        c.match = r
        entries += [c, r]
    entries.sort(key=lambda e: (e.time, 0 if e.call else 1))
    head = _Entry(None, True, -INF)
    prev = head
    for e in entries:
        prev.next = e
        e.prev = prev
        prev = e
    return head


def _lift(e):
    e.prev.next = e.next
    if e.next is not None:
        e.next.prev = e.prev
    r = e.match
    r.prev.next = r.next
    if r.next is not None:
        r.next.prev = r.prev


def _unlift(e):
    r = e.match
    r.prev.next = r
    if r.next is not None:
        r.next.prev = r
    e.prev.next = e
    if e.next is not None:
        e.next.prev = e


def check_linearizable(kops, initial, steps_max=STEPS_MAX):
    """Is the history of one key linearizable for a register starting at
    `initial`? Returns (True, None), (False, detail) or (None, detail)."""
    ok, detail, _ = _linearize(kops, initial, steps_max)
    return ok, detail


def _linearize(kops, initial, steps_max):
    """check_linearizable, and the invoke time of the op the search got
    stuck on (when a violation could first have been seen)."""
    ops = relevant(kops, initial)
    for i, op in enumerate(ops):
        op.id = i
    head = _entry_list(ops)
    state = initial
    linearized = 0
    depth = 0
    best = (0, None)  # deepest search: (ops linearized, op it got stuck on)
    stack = []
    seen = set()
    steps = 0
    e = head.next
    while e is not None:
        steps += 1
        if steps > steps_max:
            return None, "step budget (%d) exhausted at depth %d of %d" % (
                steps_max, best[0], len(ops)), None
        if e.call:
            op = e.op
            if op.kind == "w":
                ok, new = True, op.value
            else:
                ok, new = op.value == state, state
            if ok:
                lin = linearized | (1 << op.id)
                if (lin, new) not in seen:
                    seen.add((lin, new))
                    stack.append((e, state))
                    state, linearized = new, lin
                    depth += 1
                    _lift(e)
                    e = head.next
                    continue
            e = e.next
        elif e.time == INF:
            # Every op with a known return is linearized; the rest are
            # unknown writes that may not have happened.
            return True, None, None
        else:
            if depth > best[0] or best[1] is None:
                best = (depth, e.op)
            if not stack:
                return False, _detail(ops, best), best[1].invoke
            e, state = stack.pop()
            linearized &= ~(1 << e.op.id)
            depth -= 1
            _unlift(e)
            e = e.next
    return True, None, None


def _detail(ops, best):
    depth, stuck = best
    lines = ["no linearization: at most %d of %d ops ordered; stuck on %r"
             % (depth, len(ops), stuck)]
    if stuck is not None:
        order = sorted(ops, key=lambda o: o.invoke)
        i = order.index(stuck)
        lines += [("> " if o is stuck else "  ") + repr(o)
                  for o in order[max(0, i - 30):i + 10]]
    return "\n".join(lines)


# ---------------------------------------------------------------- sequential

def check_sequential(kops, initial):
    """Serializable mode's promise for one key (see the module doc).
    Returns (True, None) or (False, detail)."""
    ok, detail, _ = _sequential(kops, initial)
    return ok, detail


def _sequential(kops, initial):
    """check_sequential, and the time the last op of the cycle started."""
    ops = relevant(kops, initial)
    edges = collections.defaultdict(set)
    why = {}

    def edge(a, b, op_a, op_b, reason):
        if a != b and b not in edges[a]:
            edges[a].add(b)
            why[(a, b)] = (reason, op_a, op_b)

    writes = [op for op in ops if op.kind == "w"]
    for op in writes:
        edge(initial, op.value, None, op, "initial")
    # Writes in real-time order: for each write, the last acknowledged
    # write of each process that completed before it was invoked.
    _chain(writes, lambda op: op.complete is not None, edge, "real time")
    # Per node: reads and the writes acknowledged there, in real time.
    for node in {op.node for op in ops}:
        nops = [op for op in ops if op.node == node and
                (op.kind == "r" or op.complete is not None)]
        _chain(nops, lambda op: True, edge, "on " + str(node))
    # Final reads (note "final") were made after healing, once every node
    # had applied everything committed: they see the last write.
    for f in (op for op in ops if op.kind == "r" and op.note == "final"):
        for x in writes:
            if x.complete is not None:
                edge(x.value, f.value, x, f, "final")
    cycle = _find_cycle(edges)
    if cycle is None:
        return True, None, None
    lines = ["values go back in time: %d values in a cycle" % len(cycle)]
    t = 0.0
    for a, b in zip(cycle, cycle[1:] + cycle[:1]):
        reason, op_a, op_b = why[(a, b)]
        t = max(t, op_b.invoke)
        lines.append("  %r < %r (%s): %r then %r"
                     % (a, b, reason, op_a, op_b))
    return False, "\n".join(lines), t


def _chain(ops, counts, edge, reason):
    """edge(x.value, y.value) for each op y and, per process, the last op x
    with counts(x) that completed before y was invoked."""
    ends = sorted((op for op in ops if counts(op)), key=lambda o: o.end())
    last = {}  # process -> last completed op so far
    i = 0
    for y in sorted(ops, key=lambda o: o.invoke):
        while i < len(ends) and ends[i].end() < y.invoke:
            last[ends[i].process] = ends[i]
            i += 1
        for x in last.values():
            edge(x.value, y.value, x, y, reason)


def _find_cycle(edges):
    """One cycle of the directed graph as a list of nodes, or None.
    Iterative DFS (histories come from outside: no recursion)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = collections.defaultdict(int)
    for root in list(edges):
        if color[root] != WHITE:
            continue
        path = [root]
        iters = [iter(edges[root])]
        color[root] = GREY
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                color[path.pop()] = BLACK
                iters.pop()
            elif color[nxt] == GREY:
                return path[path.index(nxt):]
            elif color[nxt] == WHITE:
                color[nxt] = GREY
                path.append(nxt)
                iters.append(iter(edges.get(nxt, ())))
    return None


# ---------------------------------------------------------------- all

def check(ops, initial, mode, steps_max=STEPS_MAX):
    """Every check for one history. initial: key -> value. mode:
    'linearizable' or 'serializable'. Returns {'violations': {kind:
    [(time, detail)]}, 'empty': n, 'page_cache': n, 'unchecked': [keys]}."""
    v = check_values(ops, initial, page_cache=mode != "linearizable")
    violations = collections.defaultdict(list)
    for op in v["future"]:
        violations["future"].append((op.invoke, repr(op)))
    for op in v["empty_unexplained"]:
        violations["empty"].append((op.invoke, repr(op)))
    writes = by_key(op for op in ops if op.kind == "w")
    for op in v["garbage"]:
        violations["garbage"].append(
            (op.invoke, "%r%s" % (op, explain_garbage(op, writes[op.key]))))
    unchecked = []
    for key, kops in sorted(by_key(ops).items()):
        init = initial.get(key)
        if mode == "linearizable":
            ok, detail, t = _linearize(kops, init, steps_max)
            kind = "nonlinearizable"
        else:
            ok, detail, t = _sequential(kops, init)
            kind = "nonsequential"
        if ok is None:
            unchecked.append("%s: %s" % (key, detail))
        elif not ok:
            violations[kind].append((t, "%s: %s" % (key, detail)))
    return {"violations": dict(violations), "empty": v["empty"],
            "page_cache": len(v["page_cache"]), "unchecked": unchecked}
