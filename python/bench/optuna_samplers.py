#!/usr/bin/env python3
"""KtuneSampler against Optuna's own samplers, inside Optuna's loop
(``study.optimize``), on the peer benchmark's functions
(benches/peers/regret.py: Branin, Hartmann-6, Rosenbrock-4, Ackley-5,
Styblinski-Tang-8, mixed).

Pairs (same seeds, same budget, same function):

    gp     optuna GPSampler(n_startup_trials=10)      vs KtuneSampler("bayesianoptimization")
    tpe    optuna TPESampler(independent, Katib's)    vs KtuneSampler("tpe")
    cmaes  optuna CmaEsSampler                        vs KtuneSampler("cmaes")

For each run: final simple regret (best value minus the known optimum) and
wall time per trial (the whole ``study.optimize`` over the budget, divided
by the budget: sampling, Optuna's bookkeeping and the cheap function).
Prints a markdown table of medians over seeds and writes the runs as JSON
next to it when ``--out`` is given.

    python python/bench/optuna_samplers.py --seeds 5 --budget 40
    python python/bench/optuna_samplers.py --families gp --functions branin,hartmann6

Needs the ktune wheel (or python/ on PYTHONPATH with $KTUNE_BIN), optuna,
cmaes, and torch for GPSampler (benches/peers/setup.sh --with-torch pins).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benches" / "peers"))

import optuna  # noqa: E402
from regret import FUNCTIONS  # noqa: E402

from ktune.optuna import KtuneSampler  # noqa: E402

PAIRS = {
    "gp": (
        "optuna GPSampler",
        lambda seed: optuna.samplers.GPSampler(seed=seed, n_startup_trials=10),
        lambda seed: KtuneSampler("bayesianoptimization", seed=seed, settings={"n_initial_points": 10}),
    ),
    "tpe": (
        "optuna TPESampler",
        lambda seed: optuna.samplers.TPESampler(n_startup_trials=10, n_ei_candidates=24, prior_weight=1.0,
                                                multivariate=False, seed=seed),
        lambda seed: KtuneSampler("tpe", seed=seed),
    ),
    "cmaes": (
        "optuna CmaEsSampler",
        lambda seed: optuna.samplers.CmaEsSampler(seed=seed),
        lambda seed: KtuneSampler("cmaes", seed=seed),
    ),
}


def objective_for(fn):
    def objective(trial):
        params = {}
        for p in fn.space:
            if p.type == "double":
                params[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            elif p.type == "int":
                params[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                params[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        return fn.f(params)

    return objective


def run(make, fn, seed, budget):
    sampler = make(seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    started = time.perf_counter()
    study.optimize(objective_for(fn), n_trials=budget)
    seconds = (time.perf_counter() - started) / budget
    if isinstance(sampler, KtuneSampler):
        sampler.close()
    return max(study.best_value - fn.f_star, 0.0), seconds


def fmt(x):
    return f"{x:.3g}"


def fmt_time(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="gp,tpe,cmaes")
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows, runs = [], []
    for family in args.families.split(","):
        peer_name, make_peer, make_ktune = PAIRS[family]
        for name in args.functions.split(","):
            fn = FUNCTIONS[name]
            result = {}
            for label, make in (("peer", make_peer), ("ktune", make_ktune)):
                regrets, times = [], []
                for seed in range(args.seeds):
                    regret, seconds = run(make, fn, seed, args.budget)
                    regrets.append(regret)
                    times.append(seconds)
                    runs.append({"family": family, "optimizer": label, "function": name, "seed": seed,
                                 "budget": args.budget, "regret": regret, "seconds_per_trial": seconds})
                result[label] = (statistics.median(regrets), statistics.median(times))
                print(f"{family} {name} {label}: regret {fmt(result[label][0])}, "
                      f"{fmt_time(result[label][1])}/trial", file=sys.stderr, flush=True)
            (pr, pt), (kr, kt) = result["peer"], result["ktune"]
            ratio = "=" if pr == kr else (fmt(kr / pr) if pr > 0 else "inf")
            rows.append(f"| {family} | {name} | {peer_name} | {fmt(pr)} | {fmt(kr)} | {ratio} | "
                        f"{fmt_time(pt)} | {fmt_time(kt)} | {pt / kt:.1f}x |")
    header = (f"Median over {args.seeds} seeds, {args.budget} trials, inside `study.optimize`.\n\n"
              "| family | function | Optuna sampler | Optuna regret | KtuneSampler regret | ktune/Optuna regret | "
              "Optuna time/trial | KtuneSampler time/trial | speed-up |\n|---|---|---|---|---|---|---|---|---|")
    table = header + "\n" + "\n".join(rows)
    print(table)
    if args.out:
        args.out.write_text(json.dumps({"table": table, "runs": runs,
                                        "versions": {"optuna": optuna.__version__}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
