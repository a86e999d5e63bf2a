#!/usr/bin/env python3
"""The README's peer table from one or more results files of regret.py.

Runs are keyed by (family, optimizer, function, seed); a later file
replaces an earlier one's run. For every function x family x budget the
ratio ktune / best peer compares medians over the seeds that ktune and
every peer of that family all have (so a peer measured on 5 seeds is
compared with ktune on the same 5), and the table says how many those
are; where ktune has more seeds, its median over all of them is shown too.

    benches/peers/table.py results/a.json results/b.json [--summary results/summary.json]

Committed summaries are accepted as inputs too (new runs of one optimizer
can be compared with peers measured on another day).

--summary writes a compact JSON (per run: final regret at each budget and
the median / p95 time per suggestion; per cell: the medians and the ratio)
small enough to commit, unlike the full results.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

# regret.py imports only the standard library at the top (the peers are
# imported inside their runners), so its helpers are cheap to share.
from regret import fmt_regret, fmt_time, json_clean, percentile

KTUNE = "ktune"


def load(paths: list[Path]) -> tuple[dict, list[int]]:
    """Runs from full results files or from committed summaries.

    A summary (written by --summary) keeps each run's final regrets and its
    median / p95 time per suggestion, not every time: its runs stand in
    with those two times as their only samples, so peer times pooled from
    summaries are approximate, the regrets exact.
    """
    runs: dict[tuple, dict] = {}
    budgets: set[int] = set()
    for path in paths:
        report = json.loads(path.read_text())
        if "config" in report:
            budgets.update(report["config"]["budgets"])
        else:
            budgets.update(c["budget"] for c in report["cells"])
        for r in report["runs"]:
            if r.get("status", "ok") != "ok":
                continue
            if "seconds_per_suggestion" not in r:
                r = dict(r, seconds_per_suggestion=[r["time_median"], r["time_p95"]])
            runs[(r["family"], r["optimizer"], r["function"], r["seed"])] = r
    return runs, sorted(budgets)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--summary", type=Path, help="write a compact JSON summary here")
    args = ap.parse_args()
    runs, budgets = load(args.files)

    cells: dict[tuple[str, str], dict[str, dict[int, dict]]] = {}
    for (family, optimizer, function, seed), r in runs.items():
        cells.setdefault((function, family), {}).setdefault(optimizer, {})[seed] = r

    lines = [
        "| function | family | budget | seeds | ktune | best peer | peer | ktune/peer "
        "| ktune, all seeds | ktune time med / p95 | peer time med / p95 |",
        "|" + "---|" * 11,
    ]
    rows = []
    families = ["gp", "tpe", "mv-tpe", "cmaes", "random", "sobol"]
    functions = ["branin", "hartmann6", "rosenbrock4", "ackley5", "styblinski_tang8", "mixed"]

    def order(key):
        function, family = key
        return (
            families.index(family) if family in families else 99,
            functions.index(function) if function in functions else 99,
        )

    for key in sorted(cells, key=order):
        function, family = key
        by_opt = cells[key]
        if KTUNE not in by_opt or len(by_opt) < 2:
            continue
        common = set.intersection(*(set(s) for s in by_opt.values()))
        if not common:
            continue
        for budget in budgets:
            b = str(budget)

            def med(opt: str, seeds) -> float:
                xs = [by_opt[opt][s]["final_regret"].get(b) for s in seeds]
                xs = [x for x in xs if x is not None]
                return statistics.median(xs) if xs else math.nan

            def times(opt: str, seeds) -> tuple[float, float]:
                secs = [t for s in seeds for t in by_opt[opt][s]["seconds_per_suggestion"][:budget] if t is not None]
                return percentile(secs, 0.5), percentile(secs, 0.95)

            peers = {opt: med(opt, common) for opt in by_opt if opt != KTUNE}
            best = min(peers, key=lambda o: peers[o])
            k, p = med(KTUNE, common), peers[best]
            ratio = k / p if p > 0 else (1.0 if k == 0 else math.inf)
            k_all = med(KTUNE, by_opt[KTUNE].keys())
            kt, pt = times(KTUNE, common), times(best, common)
            rows.append(
                {
                    "function": function,
                    "family": family,
                    "budget": budget,
                    "seeds": sorted(common),
                    "ktune": k,
                    "peers": peers,
                    "best_peer": best,
                    "ratio": ratio,
                    "ktune_all_seeds": {"n": len(by_opt[KTUNE]), "median": k_all},
                    "ktune_time": {"median": kt[0], "p95": kt[1]},
                    "peer_time": {"median": pt[0], "p95": pt[1]},
                }
            )
            extra = (
                f"{fmt_regret(k_all)} ({len(by_opt[KTUNE])})" if len(by_opt[KTUNE]) > len(common) else "="
            )
            lines.append(
                f"| {function} | {family} | {budget} | {len(common)} | {fmt_regret(k)} | {best} "
                f"| {fmt_regret(p)} | {ratio:.2f} | {extra} "
                f"| {fmt_time(kt[0])} / {fmt_time(kt[1])} | {fmt_time(pt[0])} / {fmt_time(pt[1])} |"
            )
    print("\n".join(lines))

    # The compact view: one row per function and budget, one ratio per family.
    shown = [f for f in families if any(r["family"] == f for r in rows)]
    print()
    print("| function | budget | " + " | ".join(shown) + " |")
    print("|---|---|" + "---|" * len(shown))
    for function in functions:
        for budget in budgets:
            cells_out = []
            for family in shown:
                r = next(
                    (r for r in rows if (r["function"], r["family"], r["budget"]) == (function, family, budget)),
                    None,
                )
                if r is None:
                    cells_out.append("—")
                    continue
                ratio = r["ratio"]
                text = f"{ratio:.2f}" if math.isfinite(ratio) else "∞"
                cells_out.append(f"**{text}**" if ratio > 1 else text)
            if any(c != "—" for c in cells_out):
                print(f"| {function} | {budget} | " + " | ".join(cells_out) + " |")

    if args.summary:
        summary = {
            "sources": [p.name for p in args.files],
            "cells": rows,
            "runs": [
                {
                    "family": f,
                    "optimizer": o,
                    "function": fn,
                    "seed": s,
                    "final_regret": r["final_regret"],
                    "time_median": percentile(r["seconds_per_suggestion"], 0.5),
                    "time_p95": percentile(r["seconds_per_suggestion"], 0.95),
                }
                for (f, o, fn, s), r in sorted(runs.items())
            ],
        }
        args.summary.write_text(json.dumps(json_clean(summary), separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
