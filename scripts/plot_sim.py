#!/usr/bin/env python3
"""Plots the folding curve of opennet simulator runs.

    target/debug/warren sim --topology folded --nodes 10000 --rounds 400 --json > folded.json
    target/debug/warren sim --topology ideal --nodes 10000 --json > ideal.json
    scripts/plot_sim.py --out docs/sim-folding.png folded.json [--ideal ideal.json ...]

Each run's `curve` (one point per round of requests: requests served,
success rate, mean hops, mean degree, long-link share) becomes a line in
three panels: success, mean hops and the share of long links against
requests served. With `--ideal`, the ideal small world's success and hops
(same nodes and degree, no folding) are drawn as dashed lines, which is what
the folded network should approach. Also prints the curve as a table.

The chart needs matplotlib: installed into .venv-soak (PyPI) on first use,
as for scripts/soak.py.
"""

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-soak"


def load(path):
    with open(path) as f:
        return json.load(f)


def table(name, run):
    print(f"{name}: {run['nodes']} nodes, topology {run['topology']}, final round: "
          f"{100 * run['success_rate']:.1f} % success, {run['hops_mean']:.2f} hops")
    print("  requests served | success % | mean hops | mean degree | long links %")
    for p in run["curve"]:
        print(f"  {p['requests_served']:>15} | {100 * p['success_rate']:>9.1f} | {p['hops_mean']:>9.2f} |"
              f" {p['degree_mean']:>11.1f} | {100 * p['long_link_share']:>12.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="`warren sim --json` output of an opennet run")
    ap.add_argument("--ideal", action="append", default=[],
                    help="`warren sim --json` output of the ideal topology, drawn as the target (repeatable)")
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--title", default="warren sim: a network folding itself into a small world")
    args = ap.parse_args()
    runs = []
    for path in args.runs:
        run = load(path)
        if not run.get("curve"):
            sys.exit(f"{path}: no curve (not an opennet run: use --topology folded or join)")
        table(path, run)
        runs.append({"label": f"{run['topology']}, {run['nodes']} nodes", "curve": run["curve"]})
    ideals = []
    for path in args.ideal:
        i = load(path)
        ideal = {"success": 100 * i["success_rate"], "hops": i["hops_mean"], "long": 100 * i["long_link_share"],
                 "label": f"ideal small world, {i['nodes']} nodes, degree {i['degree_mean']:.0f}"}
        print(f"{ideal['label']}: {ideal['success']:.1f} % success, {ideal['hops']:.2f} hops, "
              f"{ideal['long']:.1f} % long links")
        ideals.append(ideal)
    py = VENV / "bin" / "python"
    if not py.exists():
        print("installing matplotlib into .venv-soak (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "matplotlib"], check=True)
    data = json.dumps({"runs": runs, "ideals": ideals, "out": args.out, "title": args.title})
    subprocess.run([str(py), "-c", PLOT], input=data, text=True, check=True)
    print(f"chart: {args.out}")


PLOT = r'''
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
d = json.loads(sys.stdin.read())
fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), dpi=100)
panels = [("success_rate", 100, "fetch success (%)", "success"),
          ("hops_mean", 1, "mean hops of a successful fetch", "hops"),
          ("long_link_share", 100, "links longer than 0.01 (%)", "long")]
for ax, (field, scale, label, key) in zip(axes, panels):
    for run in d["runs"]:
        xs = [p["requests_served"] / 1000 for p in run["curve"]]
        ax.plot(xs, [p[field] * scale for p in run["curve"]], label=run["label"], linewidth=1.2)
    for ideal, style in zip(d["ideals"], ["--", ":", "-."]):
        ax.axhline(ideal[key], color="grey", linestyle=style, linewidth=1, label=ideal["label"])
    ax.set_xlabel("requests served (thousands)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
axes[0].legend(fontsize=7, loc="lower right")
fig.suptitle(d["title"])
fig.tight_layout()
fig.savefig(d["out"])
'''

if __name__ == "__main__":
    sys.exit(main())
