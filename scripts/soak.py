#!/usr/bin/env python3
"""Soak benchmark: a testnet of real `warren` node processes under sustained
inserts and fetches beyond what its stores hold.

    scripts/soak.py --minutes 5 [--nodes 10] [--store-mib 16] [--cache-mib 8]
                    [--eviction lru|random] [--max-kib 4096] [--idle-s 60]
                    [--out DIR] [--seed 1]

Starts `warren testnet` (opennet: the nodes join through node 0) with small
stores (WARREN_STORE_MIB / WARREN_CACHE_MIB / WARREN_STORE_EVICTION, which
override the testnet's config; every node must report that policy), then for the given time: insert a random file (1 KiB to --max-kib,
log-uniform) at a random node, then fetch a random earlier file at another
random node and compare it byte for byte. Every --sample-s it records each
node's resident memory (VmRSS, with that of its fec-worker children) and store figures (from /api/status). When the
time is up the load stops; memory is sampled for --idle-s more.

Reports (stdout, and DIR/soak.json, DIR/rss.csv, DIR/rss.png):
- fetch success by the document's age (fraction of the run elapsed since its
  insert), and overall, beside the data inserted as a multiple of the
  network's capacity;
- fetch failures by cause: top block lost (a manifest root and its 6 copies),
  single-block file lost (its one block, root and 2 copies), segment
  unrecoverable, timeout, other;
- evictions and store fill per node at the end;
- each node's RSS over time (table and chart), its peak, the figure at the
  tenth minute and at the end of the load, and 60 s after the load stopped.

The chart needs matplotlib: the script installs it into .venv-soak (PyPI)
on first use; with --no-chart it only writes the table and CSV.
Only loopback addresses are used. Processes are stopped by
`warren testnet stop`, which signals each node by its pid.
"""

import argparse
import hashlib
import json
import math
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_EXE = ROOT / "target" / "debug" / "warren"
# Lists the blocks of a file (cargo build -p warren --example block_keys).
BLOCK_KEYS = ROOT / "target" / "debug" / "examples" / "block_keys"
VENV = ROOT / ".venv-soak"
# One fetch may take this long before it counts as a timeout.
FETCH_TIMEOUT_S = 180
INSERT_TIMEOUT_S = 300
BLOCK = 32768
BLOCK_LEN = 32790


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def own_rss_kib(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid):
    kids = []
    try:
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            try:
                kids += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                pass
    except OSError:
        pass
    return kids


def rss_kib(pid):
    """The node's resident memory plus that of its children (the
    `warren fec-worker` processes coding a segment for it), so a relay's
    memory is counted whole however its work is split."""
    own = own_rss_kib(pid)
    if own is None:
        return None
    return own + sum(own_rss_kib(c) or 0 for c in children(pid))


class Node:
    def __init__(self, info):
        self.index = info["index"]
        self.pid = info["pid"]
        self.api = info["api"]
        self.data_dir = info["data_dir"]

    def token(self):
        return (pathlib.Path(self.data_dir) / "api.token").read_text().strip()

    def status(self):
        req = urllib.request.Request(f"http://{self.api}/api/status",
                                     headers={"Authorization": f"Bearer {self.token()}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


def classify(stderr, timed_out):
    if timed_out:
        return "timeout"
    if "content block was not found" in stderr:
        # A one-block file: its only block is its root; data, not metadata.
        return "single-block file lost"
    if "of its copies" in stderr or "block was not found in the network" in stderr:
        return "top block lost"
    if "cannot be recovered" in stderr:
        return "segment unrecoverable"
    if "timed out" in stderr or "timeout" in stderr.lower():
        return "timeout"
    return "other"


def file_size(rng, max_kib):
    # Log-uniform from 1 KiB to max_kib: many small files, some large ones.
    return int(1024 * math.exp(rng.uniform(0, math.log(max_kib))))


def blocks_of(size):
    """CHK blocks one insert puts into the network: data + check + root, and
    for a one-block file its 2 copies (each with a small SSK pointer; a
    manifest's root is coded into small SSK shards instead, not counted)."""
    if size <= BLOCK:
        return 1 + 2
    data = math.ceil(size / BLOCK)
    meta = 1  # a manifest fits one block up to ~16 GiB at this size range
    return 2 * data + meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--store-mib", type=int, default=16)
    ap.add_argument("--cache-mib", type=int, default=8)
    ap.add_argument("--eviction", choices=["lru", "random"], default="random",
                    help="the nodes' store eviction policy (WARREN_STORE_EVICTION)")
    ap.add_argument("--max-kib", type=int, default=4096)
    ap.add_argument("--idle-s", type=int, default=60)
    ap.add_argument("--overfill", type=float, default=2.0,
                    help="blocks inserted by the end, as a multiple of the network's store+cache capacity; "
                         "inserts are paced to reach it, with extra fetches in between")
    ap.add_argument("--sample-s", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pause-s", type=float, default=0.5,
                    help="pause after each extra fetch while inserts are ahead of schedule")
    ap.add_argument("--exe", default=str(DEFAULT_EXE))
    ap.add_argument("--out", default=None, help="results directory [default: a new one under /tmp]")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--probe-docs", type=int, default=20,
                    help="after the run, for up to this many documents whose top block was lost, ask the "
                         "network for each of their blocks: were their segments still recoverable?")
    ap.add_argument("--report", default=None, metavar="SOAK_JSON",
                    help="only print the report (and chart) of an earlier run's soak.json, "
                         "given the same --nodes/--store-mib/--cache-mib/--minutes/--max-kib/--idle-s")
    ap.add_argument("--assert-idle-mib", type=float, default=None,
                    help="exit 1 if any node is above this many MiB resident --idle-s after the load stops")
    args = ap.parse_args()

    if args.report:
        saved = json.loads(pathlib.Path(args.report).read_text())
        r = saved["report"]
        nodes = [type("N", (), {"index": i})() for i in range(args.nodes)]
        report = summarise(args, nodes, saved["samples"], saved["fetches"], r["inserts"], r["final_store"],
                           r["capacity_blocks"], r["load_s"])
        if not args.no_chart:
            chart(pathlib.Path(args.report).with_name("rss.png"), nodes, saved["samples"], r["load_s"])
        return 0
    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="warren-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="warren-soak-work-"))
    net_dir = work / "net"
    env = dict(os.environ, WARREN_STORE_MIB=str(args.store_mib), WARREN_CACHE_MIB=str(args.cache_mib),
               WARREN_STORE_EVICTION=args.eviction)
    env.setdefault("RUST_LOG", "warn")
    rng = random.Random(args.seed)
    exe = args.exe

    log(f"starting {args.nodes} nodes (store {args.store_mib} MiB + cache {args.cache_mib} MiB each, "
        f"{args.eviction} eviction) in {net_dir}")
    subprocess.run([exe, "testnet", "start", "--nodes", str(args.nodes), "--dir", str(net_dir),
                    "--seed", str(args.seed), "--detach"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    state = json.loads((net_dir / "testnet.json").read_text())
    nodes = [Node(n) for n in state["nodes"]]
    policies = [n.status().get("store", {}).get("eviction") for n in nodes]
    if any(p != args.eviction for p in policies):
        subprocess.run([exe, "testnet", "stop", "--dir", str(net_dir)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"FAIL: asked for {args.eviction} eviction, the nodes report {policies}", file=sys.stderr)
        return 1
    capacity_blocks = args.nodes * (args.store_mib + args.cache_mib) * (1 << 20) // BLOCK_LEN

    samples = []  # (t, phase, [rss_kib per node], [node process alone, kib])
    store_samples = []  # (t, [status store json per node])
    docs = []  # dict(uri, t, size, sha, blocks)
    fetches = []  # dict(t, age_s, ok, cause, size)
    inserts = {"ok": 0, "failed": 0, "bytes": 0, "blocks": 0}
    stop_sampling = threading.Event()
    phase = {"name": "load"}
    t0 = time.monotonic()

    def sampler():
        while not stop_sampling.is_set():
            t = time.monotonic() - t0
            # Whole (node + fec-worker children), and the node process alone.
            samples.append((t, phase["name"], [rss_kib(n.pid) for n in nodes],
                            [own_rss_kib(n.pid) for n in nodes]))
            stats = []
            for n in nodes:
                try:
                    stats.append(n.status().get("store"))
                except Exception:  # a node busy or gone: the sample says so
                    stats.append(None)
            store_samples.append((t, stats))
            stop_sampling.wait(args.sample_s)

    sampling = threading.Thread(target=sampler, daemon=True)
    sampling.start()
    files = work / "files"
    files.mkdir()
    duration = args.minutes * 60
    try:
        i = 0
        target_blocks = args.overfill * capacity_blocks
        while time.monotonic() - t0 < duration:
            ahead = inserts["blocks"] > target_blocks * (time.monotonic() - t0) / duration
            if ahead and len(docs) >= 2:
                fetch_one(exe, rng, docs, nodes, files, fetches, t0)
                # Ahead of the insert schedule: a pause, so the extra fetches
                # do not take the machine's cores from the nodes.
                time.sleep(args.pause_s)
                continue
            i += 1
            size = file_size(rng, args.max_kib)
            path = files / f"doc-{i}.bin"
            data = rng.randbytes(size)
            path.write_bytes(data)
            at = rng.choice(nodes)
            t_ins = time.monotonic() - t0
            try:
                r = subprocess.run([exe, "insert", str(path), "--api", at.api, "--data-dir", at.data_dir],
                                   capture_output=True, text=True, timeout=INSERT_TIMEOUT_S)
                uri = r.stdout.strip().splitlines()[-1] if r.returncode == 0 and r.stdout.strip() else None
                if not uri:
                    why = (r.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
                    log(f"insert of {size} bytes at node {at.index} failed: {why}")
            except subprocess.TimeoutExpired:
                uri = None
                log(f"insert of {size} bytes at node {at.index} timed out after {INSERT_TIMEOUT_S} s")
            segments = block_keys(path) if uri and size > BLOCK and args.probe_docs else None
            path.unlink()
            if uri:
                inserts["ok"] += 1
                inserts["bytes"] += size
                inserts["blocks"] += blocks_of(size)
                docs.append({"uri": uri, "t": t_ins, "size": size, "sha": hashlib.sha256(data).hexdigest(),
                             "segments": segments})
            else:
                inserts["failed"] += 1
            if len(docs) < 2:
                continue
            fetch_one(exe, rng, docs, nodes, files, fetches, t0)
            if i % 50 == 0:
                done = sum(f["ok"] for f in fetches)
                log(f"{i} inserts ({inserts['bytes'] >> 20} MiB), fetches {done}/{len(fetches)} ok")
        phase["name"] = "idle"
        load_end = time.monotonic() - t0
        log(f"load stopped after {load_end:.0f} s; idle for {args.idle_s} s")
        time.sleep(args.idle_s)
        final_store = []
        for n in nodes:
            try:
                final_store.append(n.status().get("store"))
            except Exception:
                final_store.append(None)
        # The memory figures are taken: the probe's traffic comes after them.
        stop_sampling.set()
        sampling.join(timeout=30)
        probes = probe_lost_roots(args, rng, docs, fetches, nodes)
    finally:
        stop_sampling.set()
        sampling.join(timeout=30)
        subprocess.run([exe, "testnet", "stop", "--dir", str(net_dir)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    report = summarise(args, nodes, samples, fetches, inserts, final_store, capacity_blocks, load_end)
    report["probes"] = probes
    print_probes(probes)
    (out / "soak.json").write_text(json.dumps({"report": report, "fetches": fetches, "samples": samples,
                                                "store_samples": store_samples}, indent=1))
    with open(out / "rss.csv", "w") as f:
        f.write("t_s,phase," + ",".join(f"node{n.index}_mib" for n in nodes) + "\n")
        for t, ph, rss, *_ in samples:
            f.write(f"{t:.0f},{ph}," + ",".join("" if r is None else f"{r / 1024:.1f}" for r in rss) + "\n")
    if not args.no_chart:
        chart(out / "rss.png", nodes, samples, load_end)
    print(f"results in {out}")
    shutil_rmtree(work)
    if args.assert_idle_mib is not None and report["idle_rss_max_mib"] > args.assert_idle_mib:
        print(f"FAIL: a node is at {report['idle_rss_max_mib']:.1f} MiB resident {args.idle_s} s after the load, "
              f"above {args.assert_idle_mib:g} MiB", file=sys.stderr)
        return 1
    if report["left_behind"]:
        print(f"FAIL: {report['left_behind']} failed fetches left a file behind", file=sys.stderr)
        return 1
    return 0


def block_keys(path):
    """[(k, [block URIs])] per segment of the file's splitfile, or None."""
    if not BLOCK_KEYS.exists():
        return None
    r = subprocess.run([str(BLOCK_KEYS), str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    segments = []
    for line in r.stdout.splitlines():
        k, *uris = line.split()
        segments.append((int(k), uris))
    return segments


def has_block(node, uri):
    req = urllib.request.Request(f"http://{node.api}/api/fetch/{uri}",
                                 headers={"Authorization": f"Bearer {node.token()}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return r.status == 200
    except Exception:
        return False


def probe_lost_roots(args, rng, docs, fetches, nodes):
    """For documents whose last fetch lost the top block: is every segment still recoverable?"""
    by_uri = {d["uri"]: d for d in docs}
    last = {}
    for f in fetches:
        last[f["uri"]] = f
    lost = [by_uri[u] for u, f in last.items() if f["cause"] == "top block lost" and by_uri[u].get("segments")]
    lost = lost[-args.probe_docs:]
    results = []
    for doc in lost:
        node = rng.choice(nodes)
        segs = []
        for k, uris in doc["segments"]:
            found = sum(has_block(node, u) for u in uris)
            segs.append({"k": k, "blocks": len(uris), "found": found})
        results.append({"uri": doc["uri"], "size": doc["size"], "segments": segs,
                        "recoverable": all(sg["found"] >= sg["k"] for sg in segs)})
    # A control: the most recent document fetched whole, probed the same way,
    # must show its blocks (else the probe, not the network, is broken).
    fine = [by_uri[u] for u, f in last.items() if f["ok"] and by_uri[u].get("segments")]
    if fine and results:
        node = rng.choice(nodes)
        k, uris = fine[-1]["segments"][0]
        results.append({"control": True, "found": sum(has_block(node, u) for u in uris), "blocks": len(uris)})
    return results


def print_probes(probes):
    control = [p for p in probes if p.get("control")]
    probes = [p for p in probes if not p.get("control")]
    for c in control:
        print(f"probe control (a document fetched whole): {c['found']}/{c['blocks']} blocks of its first segment found")
    if not probes:
        print("probe of lost top blocks: no document to probe")
        return
    meta_only = sum(p["recoverable"] for p in probes)
    print(f"probe of {len(probes)} documents whose top block (and copies) were lost: "
          f"{meta_only} had every segment still recoverable (lost by their metadata alone), "
          f"{len(probes) - meta_only} had lost data too")
    found = sum(sg["found"] for p in probes for sg in p["segments"])
    total = sum(sg["blocks"] for p in probes for sg in p["segments"])
    print(f"  their blocks still findable: {found}/{total} ({100 * found / total if total else 0:.0f}%)")


def shutil_rmtree(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def fetch_one(exe, rng, docs, nodes, files, fetches, t0):
    """Fetches a random earlier document at a random node and checks it."""
    doc = rng.choice(docs[:-1])
    at = rng.choice(nodes)
    target = files / "fetched"
    t_f = time.monotonic() - t0
    timed_out = False
    try:
        r = subprocess.run([exe, "fetch", doc["uri"], "-o", str(target), "--force", "--api", at.api,
                            "--data-dir", at.data_dir], capture_output=True, text=True,
                           timeout=FETCH_TIMEOUT_S)
        stderr = r.stderr
        ok = r.returncode == 0 and hashlib.sha256(target.read_bytes()).hexdigest() == doc["sha"]
        if r.returncode == 0 and not ok:
            stderr = "fetched content differs from what was inserted"
    except subprocess.TimeoutExpired:
        ok, stderr, timed_out = False, "", True
    if target.exists() and not ok:
        # A failed fetch must leave nothing behind: record it if it did.
        leftovers = [target.name]
    else:
        leftovers = [p.name for p in files.iterdir() if p.name != "fetched"]
    if target.exists():
        target.unlink()
    cause = None if ok else classify(stderr, timed_out)
    fetches.append({"t": t_f, "age_s": t_f - doc["t"], "ok": ok, "cause": cause, "size": doc["size"],
                    "uri": doc["uri"],
                    "error": None if ok else stderr.strip()[-300:], "leftovers": leftovers})


def summarise(args, nodes, samples, fetches, inserts, final_store, capacity_blocks, load_end):
    p = print
    p("")
    p(f"== soak: {args.nodes} nodes, store {args.store_mib} + cache {args.cache_mib} MiB each, "
      f"{getattr(args, 'eviction', '?')} eviction, "
      f"{args.minutes:g} min of load, files 1 KiB-{args.max_kib} KiB ==")
    ratio = inserts["blocks"] / capacity_blocks if capacity_blocks else 0
    p(f"inserts: {inserts['ok']} ok, {inserts['failed']} failed, {inserts['bytes'] / 2**20:.0f} MiB; "
      f"{inserts['blocks']} blocks = {ratio:.2f}x the network's store+cache capacity ({capacity_blocks} blocks)")
    ok = sum(f["ok"] for f in fetches)
    n = len(fetches)
    p(f"fetches: {ok}/{n} ok ({100 * ok / n if n else 0:.1f}%)")
    # Success by age: the fraction of the load's duration since the insert.
    p("success by document age (share of the run since its insert):")
    buckets = 5
    by_age = []
    for b in range(buckets):
        lo, hi = b / buckets, (b + 1) / buckets
        sel = [f for f in fetches if lo <= f["age_s"] / max(load_end, 1) < hi or (b == buckets - 1 and f["age_s"] / max(load_end, 1) >= 1)]
        good = sum(f["ok"] for f in sel)
        by_age.append({"age": f"{lo:.1f}-{hi:.1f}", "fetches": len(sel), "ok": good})
        p(f"  age {lo:.1f}-{hi:.1f}: {good}/{len(sel)}" + (f" ({100 * good / len(sel):.0f}%)" if sel else ""))
    causes = {}
    for f in fetches:
        if not f["ok"]:
            causes[f["cause"]] = causes.get(f["cause"], 0) + 1
    p("failures by cause: " + (", ".join(f"{k} {v}" for k, v in sorted(causes.items())) or "none"))
    leftovers = sum(1 for f in fetches if f["leftovers"])
    p(f"fetches that left a file behind: {leftovers}")
    p("store at the end (per node: store fill, cache fill, evictions store/cache):")
    evictions = 0
    for node, st in zip(nodes, final_store):
        if not st:
            p(f"  node {node.index}: no answer")
            continue
        s, c = st.get("store", {}), st.get("cache", {})
        fill = lambda a: 100 * a.get("bytes", 0) / a["capacity_bytes"] if a.get("capacity_bytes") else 0
        ev = (s.get("evictions", 0), c.get("evictions", 0))
        evictions += sum(ev)
        p(f"  node {node.index}: store {fill(s):.0f}%, cache {fill(c):.0f}%, evictions {ev[0]}/{ev[1]}")
    p(f"evictions, all nodes: {evictions}")
    held = sum((st or {}).get("store", {}).get("blocks", 0) + (st or {}).get("cache", {}).get("blocks", 0)
               for st in final_store)
    p(f"blocks held at the end, all nodes (copies on several nodes counted each time): {held} "
      f"= {100 * held / inserts['blocks'] if inserts['blocks'] else 0:.0f}% of the blocks inserted")
    # RSS table: one row per minute (and the idle samples), MiB.
    p("resident memory (MiB) over time:")
    p("  t(s)   phase " + " ".join(f"n{n.index:<5}" for n in nodes))
    last_row = -1e9
    for t, ph, rss, *_ in samples:
        if t - last_row >= 60 or ph == "idle" and t - last_row >= 20:
            last_row = t
            p(f"  {t:5.0f}  {ph:5} " + " ".join(f"{(r or 0) / 1024:<6.1f}" for r in rss))

    def at(target):
        best = min(samples, key=lambda s: abs(s[0] - target)) if samples else None
        return best[2] if best else []
    peak = [max((s[2][i] or 0) for s in samples) / 1024 for i in range(len(nodes))] if samples else []
    end_load = at(load_end)
    idle = samples[-1][2] if samples else []
    minute10 = at(600) if load_end >= 600 else []
    p(f"  peak:               " + " ".join(f"{x:<6.1f}" for x in peak))
    if minute10:
        p(f"  at 10 min:          " + " ".join(f"{(x or 0) / 1024:<6.1f}" for x in minute10))
    p(f"  end of load:        " + " ".join(f"{(x or 0) / 1024:<6.1f}" for x in end_load))
    p(f"  {args.idle_s} s after load:  " + " ".join(f"{(x or 0) / 1024:<6.1f}" for x in idle))
    idle_max = max(((x or 0) / 1024 for x in idle), default=0)
    p(f"  largest idle RSS: {idle_max:.1f} MiB")
    # Baseline from the same run: each node's own figure at the first sample.
    start = samples[0][2] if samples else []
    ratios = [(x or 0) / s0 for x, s0 in zip(idle, start) if s0]
    if ratios:
        p(f"  idle RSS / the node's own RSS at start: {min(ratios):.2f}x-{max(ratios):.2f}x "
          f"(start {min(start) / 1024:.1f}-{max(start) / 1024:.1f} MiB)")
    if minute10 and end_load:
        growth = [((e or 0) - (m or 0)) / 1024 for e, m in zip(end_load, minute10)]
        p(f"  growth from minute 10 to the end of the load: {min(growth):+.1f} to {max(growth):+.1f} MiB")
    # A busy fec-worker child adds 10-25 MiB to one sample and not the next:
    # steadiness is judged on the node process alone, as the median of the
    # samples of minutes 9-11 against that of the load's last two minutes.
    own = [s for s in samples if len(s) > 3 and s[1] == "load"]
    early = [s[3] for s in own if 540 <= s[0] <= 660]
    late = [s[3] for s in own if load_end - 120 <= s[0] <= load_end]
    if early and late:
        def median(rows, i):
            xs = sorted((r[i] or 0) for r in rows)
            return xs[len(xs) // 2] / 1024
        drift = [median(late, i) - median(early, i) for i in range(len(nodes))]
        p("  node process alone, median of minutes 9-11 / of the last 2 minutes of load: "
          + " ".join(f"{median(early, i):.1f}/{median(late, i):.1f}" for i in range(len(nodes))))
        p(f"  its growth over that time: {min(drift):+.1f} to {max(drift):+.1f} MiB")
    return {"eviction": getattr(args, "eviction", None), "seed": args.seed,
            "inserts": inserts, "capacity_blocks": capacity_blocks, "inserted_over_capacity": ratio,
            "fetches": n, "fetches_ok": ok, "by_age": by_age, "causes": causes, "evictions": evictions,
            "left_behind": leftovers, "blocks_held": held, "peak_rss_mib": peak, "idle_rss_mib": [(x or 0) / 1024 for x in idle],
            "idle_rss_max_mib": idle_max, "final_store": final_store, "load_s": load_end}


def chart(path, nodes, samples, load_end):
    py = VENV / "bin" / "python"
    if not py.exists():
        log("installing matplotlib into .venv-soak (once)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "matplotlib"], check=True)
    data = json.dumps({"nodes": [n.index for n in nodes], "samples": samples, "load_end": load_end,
                       "path": str(path)})
    code = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.loads(sys.stdin.read())
fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
ts = [s[0] / 60 for s in d["samples"]]
for i, n in enumerate(d["nodes"]):
    ax.plot(ts, [(s[2][i] or 0) / 1024 for s in d["samples"]], label=f"node {n}", linewidth=1)
ax.axvline(d["load_end"] / 60, color="grey", linestyle="--", linewidth=1)
ax.text(d["load_end"] / 60, ax.get_ylim()[1] * 0.95, " load stops", color="grey")
ax.axhline(30, color="red", linestyle=":", linewidth=1)
ax.set_xlabel("minutes"); ax.set_ylabel("resident memory (MiB)")
ax.set_title("warren soak: resident memory per node")
ax.legend(fontsize=7, ncol=5, loc="upper left")
fig.tight_layout(); fig.savefig(d["path"])
'''
    subprocess.run([str(py), "-c", code], input=data, text=True, check=True)
    log(f"chart: {path}")


if __name__ == "__main__":
    sys.exit(main())
