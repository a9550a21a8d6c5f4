#!/usr/bin/python3
"""bench.py - the cell loop and the report of tests/bench/run.sh (not a test).

  bench.py run PLAN.json OUT_DIR     runs every cell, writes OUT_DIR/cells.json
  bench.py report OUT_DIR            results.json, table.md, PNG charts

PLAN.json (written by run.sh):
  {"loadgen": PATH, "lua_dir": DIR, "reps": N, "seconds": S,
   "clients": [1, 16, 64], "keys": 1000, "value_bytes": 100,
   "systems": [{"name": "tmpfs", "kind": "fs", "dir": DIR, "pids": [..]},
               {"name": "etcd", "kind": "etcd", "url": URL, "pids": [..]}]}

Interleaving: for each repetition, for each client count, for each
workload, every system runs its cell in turn (the order of systems rotates
by one each repetition), so machine noise spreads over all systems.
Before the loop, the files read by the read/stat cells are written in
parallel (prepare()); the three-node cluster's leader and follower systems
share one directory (written through the leader, read on either mount).
Filesystems run loadgen write|read|stat|rename; etcd runs wrk with
etcd-put.lua at "write" and etcd-range.lua (serializable, then
linearizable) at "read". Keys: KEYS in total over the clients (loadgen -k
is per thread: ceil(KEYS / clients)).

CPU: around each cell, /proc/stat (all CPUs) and utime+stime of the
system's own PIDs (/proc/PID/stat) are sampled, and the load generator's
rusage is taken from wait4. "other CPU %" = (busy jiffies of the machine -
ours) / all jiffies, in percent of the whole machine (all cores).
"""
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
CELL_TIMEOUT_EXTRA_S = 120  # a cell's process is killed after S + this
PREPARE_THREADS = 32  # parallel writers of the read/stat files
FS_WORKLOADS = ("write", "read", "stat", "rename")
ETCD_FOR = {"write": ["put"],
            "read": ["range-serializable", "range-linearizable"]}


def plan_workloads(plan):
    """The plan's workloads (run.sh --workloads), in FS_WORKLOADS order."""
    want = plan.get("workloads") or FS_WORKLOADS
    bad = [w for w in want if w not in FS_WORKLOADS]
    if bad:
        raise SystemExit("bench.py: unknown workload %s (known: %s)" % (
            ", ".join(bad), ", ".join(FS_WORKLOADS)))
    return [w for w in FS_WORKLOADS if w in want]


def proc_stat_jiffies():
    """Returns (busy, total) jiffies summed over all CPUs."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    vals = [int(x) for x in parts[1:9]]  # user .. steal
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals)
    return total - idle, total


def pid_jiffies(pid):
    """utime + stime of a live process (all its threads), 0 if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def run_measured(argv, env, pids, timeout_s):
    """Runs argv; returns (stdout, rc, our_jiffies, busy, total)."""
    b0, t0 = proc_stat_jiffies()
    p0 = sum(pid_jiffies(p) for p in pids)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + timeout_s
    # wait4 gives the child's rusage; poll so a hung cell is bounded.
    while True:
        wpid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if wpid == proc.pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            wpid, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read().decode(errors="replace")
    err = proc.stderr.read().decode(errors="replace")
    b1, t1 = proc_stat_jiffies()
    p1 = sum(pid_jiffies(p) for p in pids)
    child = (ru.ru_utime + ru.ru_stime) * CLK_TCK
    ours = max(0, p1 - p0) + child
    return out, err, proc.returncode, ours, b1 - b0, t1 - t0


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None


def cell_argv(plan, sysm, workload, clients):
    """The command and environment for one cell."""
    secs = plan["seconds"]
    env = dict(os.environ)
    if sysm["kind"] == "fs":
        keys = max(1, math.ceil(plan["keys"] / clients))
        return [plan["loadgen"], workload, sysm["dir"], "-t", str(clients),
                "-d", str(secs), "-s", str(plan["value_bytes"]),
                "-k", str(keys)], env
    env["BENCH_LUA_DIR"] = plan["lua_dir"]
    env["BENCH_KEYS"] = str(plan["keys"])
    env["BENCH_VALUE_BYTES"] = str(plan["value_bytes"])
    if workload == "put":
        script = "etcd-put.lua"
    else:
        script = "etcd-range.lua"
        env["BENCH_SERIALIZABLE"] = "1" if workload.endswith(
            "serializable") else "0"
    wrk_threads = min(clients, 2)
    return ["wrk", "-t", str(wrk_threads), "-c", str(clients),
            "-d", "%ss" % secs, "--timeout", "10s",
            "-s", os.path.join(plan["lua_dir"], script),
            sysm["url"]], env


def node_role(sysm):
    """The role of the quorumfs node behind a system (its /.cluster/status),
    or None for systems without one."""
    path = sysm.get("status")
    if not path:
        return None
    try:
        with open(path) as f:
            return json.load(f).get("role")
    except (OSError, ValueError):
        return "unknown"


def run_cell(plan, sysm, workload, clients, rep):
    role_before = node_role(sysm)
    argv, env = cell_argv(plan, sysm, workload, clients)
    out, err, rc, ours, busy, total = run_measured(
        argv, env, sysm.get("pids", []), plan["seconds"] + CELL_TIMEOUT_EXTRA_S)
    r = last_json(out) or {}
    total = max(total, 1)
    cell = {
        "system": sysm["name"], "workload": workload, "clients": clients,
        "rep": rep, "rc": rc,
        "ops_per_s": r.get("ops_per_s", 0), "ops": r.get("ops", 0),
        "errors": r.get("errors", None), "first_error": r.get("first_error"),
        "p50_us": r.get("p50_us"), "p99_us": r.get("p99_us"),
        "p999_us": r.get("p999_us"), "seconds": r.get("seconds"),
        "our_cpu_pct": round(100.0 * ours / total, 1),
        "other_cpu_pct": round(max(0.0, 100.0 * (busy - ours) / total), 1),
    }
    if role_before is not None:
        # A leader change during the run swaps what the "leader" and
        # "follower" systems measure: recorded, and flagged by the report.
        cell["role"] = role_before
        cell["role_after"] = node_role(sysm)
        cell["role_ok"] = (sysm.get("expect_role") in (None, role_before) and
                           role_before == cell["role_after"])
    if not r:
        cell["stderr"] = err[-500:]
    return cell


def write_if_missing(path, payload):
    try:
        st = os.stat(path)
        if st.st_size == len(payload):
            return 0
    except FileNotFoundError:
        pass
    with open(path, "wb") as f:
        f.write(payload)
    return 1


def prepare(plan, sysm):
    """Writes the files the read and stat cells read (loadgen's layout:
    DIR/tNN/kNNNNN, ceil(KEYS / clients) per thread dir), in parallel, so
    loadgen's single-threaded setup finds them. Systems sharing a dir
    (a cluster seen from two mounts) are prepared once."""
    from concurrent.futures import ThreadPoolExecutor
    size = plan["value_bytes"]
    payload = bytes(97 + i % 26 for i in range(size))
    if size > 0:
        payload = payload[:-1] + b"\n"
    paths = set()
    for clients in plan["clients"]:
        per = max(1, math.ceil(plan["keys"] / clients))
        for t in range(clients):
            d = os.path.join(sysm["dir"], "t%02d" % t)
            os.makedirs(d, exist_ok=True)
            for k in range(per):
                paths.add(os.path.join(d, "k%05d" % k))
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as ex:
        wrote = sum(ex.map(lambda p: write_if_missing(p, payload),
                           sorted(paths)))
    print("prepared %s: %d files (%d written) in %.1fs" % (
        sysm["name"], len(paths), wrote, time.monotonic() - t0), flush=True)


def cmd_run(plan_path, out_dir):
    with open(plan_path) as f:
        plan = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    systems = plan["systems"]
    workloads = plan_workloads(plan)
    for s in systems:
        if (s["kind"] == "fs" and not s.get("same_dir_as") and
                ("read" in workloads or "stat" in workloads)):
            prepare(plan, s)
    cells = []
    n_cells = 0
    for s in systems:
        for w in workloads:
            n_cells += len(ETCD_FOR.get(w, [])) if s["kind"] == "etcd" else 1
    n_cells *= len(plan["clients"]) * plan["reps"]
    t_start = time.monotonic()
    for rep in range(plan["reps"]):
        k = rep % len(systems)
        order = systems[k:] + systems[:k]
        for clients in plan["clients"]:
            for w in workloads:
                for s in order:
                    wls = [w] if s["kind"] == "fs" else ETCD_FOR.get(w, [])
                    for wl in wls:
                        c = run_cell(plan, s, wl, clients, rep)
                        cells.append(c)
                        print("[%3d/%d %4.0fs] rep %d %-14s %-19s c=%-3d "
                              "%9.0f ops/s p50 %6s p99 %7s us err %s "
                              "other-cpu %4.1f%%" % (
                                  len(cells), n_cells,
                                  time.monotonic() - t_start, rep,
                                  s["name"], wl, clients, c["ops_per_s"],
                                  c["p50_us"], c["p99_us"], c["errors"],
                                  c["other_cpu_pct"]), flush=True)
                        with open(os.path.join(out_dir, "cells.json"),
                                  "w") as f:
                            json.dump({"plan": plan, "cells": cells}, f,
                                      indent=1)
    return 0


# ---- report ----

def summarize(cells):
    groups = {}
    for c in cells:
        groups.setdefault((c["system"], c["workload"], c["clients"]),
                          []).append(c)
    out = {}
    for key, cs in groups.items():
        def stat(field):
            vals = [c[field] for c in cs if c.get(field) is not None]
            if not vals:
                return None
            return {"median": statistics.median(vals), "min": min(vals),
                    "max": max(vals)}
        out[key] = {
            "system": key[0], "workload": key[1], "clients": key[2],
            "reps": len(cs),
            "ops_per_s": stat("ops_per_s"), "p50_us": stat("p50_us"),
            "p99_us": stat("p99_us"), "p999_us": stat("p999_us"),
            "other_cpu_pct": stat("other_cpu_pct"),
            "our_cpu_pct": stat("our_cpu_pct"),
            "errors": sum(c["errors"] or 0 for c in cs),
            "failed_cells": sum(1 for c in cs
                                if c["errors"] is None or c["rc"] != 0),
            "role_mismatch_cells": sum(1 for c in cs
                                       if c.get("role_ok") is False),
        }
    return out


def fmt_num(x):
    if x is None:
        return "-"
    if x >= 100:
        return "{:,.0f}".format(x)
    return "{:.3g}".format(x)


def fmt_range(st):
    if st is None:
        return "-"
    if st["min"] == st["max"]:
        return fmt_num(st["median"])
    return "%s (%s–%s)" % (fmt_num(st["median"]), fmt_num(st["min"]),
                           fmt_num(st["max"]))


ROWS = [("write", "write (FS) / put (etcd)", {"fs": "write", "etcd": "put"}),
        ("read", "read (FS) / range serializable (etcd)",
         {"fs": "read", "etcd": "range-serializable"}),
        ("read-lin", "read (FS) / range linearizable (etcd)",
         {"fs": None, "etcd": "range-linearizable"}),
        ("stat", "stat", {"fs": "stat", "etcd": None}),
        ("rename", "rename (write temp + rename)",
         {"fs": "rename", "etcd": None})]


def table_md(summary, systems, clients_list, field, title):
    names = [s["name"] for s in systems]
    kinds = {s["name"]: s["kind"] for s in systems}
    lines = ["### %s" % title, "",
             "| workload | clients | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for _, label, wmap in ROWS:
        for cl in clients_list:
            row = []
            present = False
            for n in names:
                wl = wmap[kinds[n]]
                g = summary.get((n, wl, cl)) if wl else None
                if g is not None:
                    present = True
                    cellv = fmt_range(g[field])
                    if g["errors"]:
                        cellv += " [%d err]" % g["errors"]
                    if g["role_mismatch_cells"]:
                        cellv += " [%d cell(s) role changed]" % (
                            g["role_mismatch_cells"])
                    row.append(cellv)
                else:
                    row.append("")
            if present:
                lines.append("| %s | %d | %s |" % (label, cl, " | ".join(row)))
    return "\n".join(lines) + "\n"


def ratio(summary, a, b, field="ops_per_s"):
    ga, gb = summary.get(a), summary.get(b)
    if not ga or not gb or not ga[field] or not gb[field]:
        return None
    if not gb[field]["median"]:
        return None
    return ga[field]["median"] / gb[field]["median"]


def ratios_md(summary, systems, clients_list, workloads=FS_WORKLOADS):
    names = [s["name"] for s in systems]
    qfs = [n for n in names if n.startswith("quorumfs")]
    lines = ["### Ratios (of medians)", "",
             "| ratio | clients | " + " | ".join(qfs) + " |",
             "|---|---:|" + "---:|" * len(qfs)]
    specs = []
    if "etcd" in names:
        specs += [("writes/s ÷ etcd puts/s", "write", "etcd", "put",
                   "ops_per_s"),
                  ("p99 write ÷ etcd p99 put (lower is better)", "write",
                   "etcd", "put", "p99_us"),
                  ("p50 write ÷ etcd p50 put (lower is better)", "write",
                   "etcd", "put", "p50_us"),
                  ("reads/s ÷ etcd serializable ranges/s", "read", "etcd",
                   "range-serializable", "ops_per_s"),
                  ("reads/s ÷ etcd linearizable ranges/s", "read", "etcd",
                   "range-linearizable", "ops_per_s")]
    for nf in ("nullfs", "nullfs-st"):
        if nf not in names:
            continue
        for w in FS_WORKLOADS:
            specs.append(("%s/s ÷ %s %s/s" % (w, nf, w), w, nf, w,
                          "ops_per_s"))
    specs = [sp for sp in specs if sp[1] in workloads]
    for label, wl, other, owl, field in specs:
        for cl in clients_list:
            row = []
            for n in qfs:
                r = ratio(summary, (n, wl, cl), (other, owl, cl), field)
                row.append("-" if r is None else "%.2f" % r)
            lines.append("| %s | %d | %s |" % (label, cl, " | ".join(row)))
    if not specs:
        lines = []  # no yardstick in this run (tests/bench/ab.sh)
    lines += ab_ratios_md(summary, names, clients_list, workloads)
    return "\n".join(lines) + "\n"


def ab_ratios_md(summary, names, clients_list, workloads=FS_WORKLOADS):
    """tests/bench/ab.sh's systems come in pairs NAME-before / NAME-after:
    after ÷ before for every workload (1.00: no change)."""
    pairs = [n[:-len("-after")] for n in names if n.endswith("-after") and
             n[:-len("-after")] + "-before" in names]
    if not pairs:
        return []
    lines = ["", "### After ÷ before (of medians; ops/s: higher is better, "
             "p99: lower is better)", "",
             "| workload | clients | " + " | ".join(
                 "%s ops/s | %s p99" % (p, p) for p in pairs) + " |",
             "|---|---:|" + "---:|---:|" * len(pairs)]
    for w in workloads:
        for cl in clients_list:
            row = []
            for p in pairs:
                for field in ("ops_per_s", "p99_us"):
                    r = ratio(summary, (p + "-after", w, cl),
                              (p + "-before", w, cl), field)
                    row.append("-" if r is None else "%.2f" % r)
            lines.append("| %s | %d | %s |" % (w, cl, " | ".join(row)))
    return lines


def other_cpu_md(cells):
    vals = [c["other_cpu_pct"] for c in cells]
    if not vals:
        return ""
    return ("Other CPU (busy time of processes other than the system under "
            "test and its load generator, %% of the whole machine, per cell): "
            "median %.1f%%, min %.1f%%, max %.1f%% over %d cells.\n" % (
                statistics.median(vals), min(vals), max(vals), len(vals)))


def chart_panels(systems):
    """[(title, [(label, system, workload, color index)])]: one panel per
    workload; etcd's linearizable ranges join the read panel."""
    names = [s["name"] for s in systems]
    kinds = {s["name"]: s["kind"] for s in systems}
    panels = []
    for key, label, wmap in ROWS:
        if key == "read-lin":
            continue
        series = []
        for si, n in enumerate(names):
            wl = wmap[kinds[n]]
            if wl:
                series.append((n, n, wl, si))
            if key == "read" and kinds[n] == "etcd":
                series.append(("%s linearizable" % n, n,
                               "range-linearizable", len(names)))
        panels.append((label, series))
    return panels


def charts(summary, systems, clients_list, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = chart_panels(systems)
    paths = []
    for field, fname, ylabel in (("ops_per_s", "ops.png", "ops/s (median)"),
                                 ("p99_us", "p99.png",
                                  "p99 latency, µs (median)")):
        fig, axes = plt.subplots(1, len(panels),
                                 figsize=(4.6 * len(panels), 4.8))
        for ax, (title, series) in zip(axes, panels):
            width = 0.84 / max(1, len(series))
            for k, (label, n, wl, color) in enumerate(series):
                xs, ys, lo, hi = [], [], [], []
                for ci, cl in enumerate(clients_list):
                    g = summary.get((n, wl, cl))
                    if g is None or g[field] is None:
                        continue
                    xs.append(ci + (k - (len(series) - 1) / 2) * width)
                    ys.append(g[field]["median"])
                    lo.append(g[field]["median"] - g[field]["min"])
                    hi.append(g[field]["max"] - g[field]["median"])
                if xs:
                    ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2,
                           label=label, color="C%d" % color)
            ax.set_xticks(range(len(clients_list)))
            ax.set_xticklabels([str(c) for c in clients_list])
            ax.set_xlabel("concurrent clients")
            ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
            ax.grid(axis="y", alpha=0.3, which="both")
        axes[0].set_ylabel(ylabel + ", bars: min–max")
        handles = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(list(handles.values()), list(handles.keys()),
                   loc="upper center", ncol=len(handles), fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.9))
        p = os.path.join(out_dir, fname)
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths


def cmd_report(out_dir):
    with open(os.path.join(out_dir, "cells.json")) as f:
        data = json.load(f)
    plan, cells = data["plan"], data["cells"]
    summary = summarize(cells)
    systems = plan["systems"]
    clients_list = plan["clients"]
    head = ("quorumfs benchmark: %d repetition(s) of %gs cells, %s clients, "
            "%d keys of %d bytes; median (min–max) over repetitions.\n" % (
                plan["reps"], plan["seconds"],
                ", ".join(str(c) for c in clients_list), plan["keys"],
                plan["value_bytes"]))
    md = [head, other_cpu_md(cells), "",
          table_md(summary, systems, clients_list, "ops_per_s",
                   "Throughput, ops/s"),
          table_md(summary, systems, clients_list, "p50_us",
                   "p50 latency, µs"),
          table_md(summary, systems, clients_list, "p99_us",
                   "p99 latency, µs"),
          table_md(summary, systems, clients_list, "other_cpu_pct",
                   "Other CPU during the cell, % of the machine"),
          ratios_md(summary, systems, clients_list, plan_workloads(plan))]
    text = "\n".join(md)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(text)
    pngs = []
    try:
        pngs = charts(summary, systems, clients_list, out_dir)
    except ImportError as e:
        print("bench.py: no charts (%s); install python3-matplotlib" % e,
              file=sys.stderr)
    results = {"plan": plan, "cells": cells,
               "summary": list(summary.values()), "charts": pngs}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(text)
    print("results: %s" % os.path.join(out_dir, "results.json"))
    for p in pngs:
        print("chart: %s" % p)
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "run":
        return cmd_run(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "report":
        return cmd_report(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    if shutil.which("wrk") is None:
        print("bench.py: warning: wrk not found", file=sys.stderr)
    sys.exit(main(sys.argv))
