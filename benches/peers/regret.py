#!/usr/bin/env python3
"""Side-by-side simple regret of ktune's algorithms and their Python peers.

One invocation runs every (family, function, seed) combination in this
process: ktune through `ktune ask-tell` (one child process per run, JSON
lines), the peers (Optuna, scikit-optimize, hyperopt) through their own
ask/tell or loop APIs. Every optimizer sees the same search space, the same
budget and the same deterministic test function, and is scored by simple
regret: best value found so far minus the known optimum.

Writes benches/peers/results/regret-<UTC time>.json (per run: the regret
curve, final regrets at each budget, per-suggestion times) and prints a
markdown table: per function x family x budget, the median final regret of
ktune and of the best peer, their ratio, and median/p95 time per suggestion.

    benches/peers/.venv/bin/python benches/peers/regret.py --quick
    benches/peers/.venv/bin/python benches/peers/regret.py --families random,tpe --functions branin

Time per suggestion: for ktune, the `cpu_seconds` it reports (wall time of
the suggest call inside the process, so no pipe or JSON cost); for Optuna,
`study.ask`; for scikit-optimize, `ask` plus `tell` (skopt fits its model and
picks the next point inside `tell`); for hyperopt, the `tpe.suggest` call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


# --------------------------------------------------------------------------
# Test functions (all minimised, known optimum f_star)


@dataclass(frozen=True)
class Param:
    """One parameter in ask-tell's JSON form."""

    name: str
    type: str  # double | int | categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()

    def to_json(self) -> dict:
        if self.type == "categorical":
            return {"name": self.name, "type": "categorical", "choices": list(self.choices)}
        low, high = (int(self.low), int(self.high)) if self.type == "int" else (self.low, self.high)
        return {"name": self.name, "type": self.type, "min": low, "max": high, "log": self.log}


@dataclass(frozen=True)
class Function:
    name: str
    space: tuple[Param, ...]
    f: Callable[[dict], float]
    f_star: float


def _xs(params: dict, n: int) -> list[float]:
    return [float(params[f"x{i}"]) for i in range(n)]


def branin(p: dict) -> float:
    x1, x2 = _xs(p, 2)
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
_H6_P = [
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
]
_H6_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(p: dict) -> float:
    x = _xs(p, 6)
    total = 0.0
    for i in range(4):
        inner = sum(_H6_A[i][j] * (x[j] - _H6_P[i][j] * 1e-4) ** 2 for j in range(6))
        total += _H6_ALPHA[i] * math.exp(-inner)
    return -total


def rosenbrock4(p: dict) -> float:
    x = _xs(p, 4)
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


def ackley5(p: dict) -> float:
    x = _xs(p, 5)
    n = len(x)
    s1 = sum(v * v for v in x) / n
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / n
    return -20 * math.exp(-0.2 * math.sqrt(s1)) - math.exp(s2) + 20 + math.e


def styblinski_tang8(p: dict) -> float:
    x = _xs(p, 8)
    return sum(v**4 - 16 * v**2 + 5 * v for v in x) / 2


_MIXED_CAT = {"relu": 0.0, "tanh": 1.0, "sigmoid": 2.5, "linear": 4.0}


def mixed(p: dict) -> float:
    """A tuning-shaped function: log-scale lr (best 1e-2.5), int layers
    (best 3), int batch exponent (best 6), categorical activation, and a
    dropout double that interacts with layers. Optimum 0."""
    lr = float(p["lr"])
    layers = int(p["layers"])
    batch = int(p["batch_log2"])
    dropout = float(p["dropout"])
    act = str(p["activation"])
    return (
        (math.log10(lr) + 2.5) ** 2
        + 0.5 * (layers - 3) ** 2
        + 0.25 * (batch - 6) ** 2
        + _MIXED_CAT[act]
        + 4 * (dropout - 0.05 * layers) ** 2
    )


def _box(n: int, low: float, high: float) -> tuple[Param, ...]:
    return tuple(Param(f"x{i}", "double", low, high) for i in range(n))


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function(
            "branin",
            (Param("x0", "double", -5, 10), Param("x1", "double", 0, 15)),
            branin,
            0.39788735772973816,
        ),
        Function("hartmann6", _box(6, 0, 1), hartmann6, -3.322368011391339),
        Function("rosenbrock4", _box(4, -5, 10), rosenbrock4, 0.0),
        Function("ackley5", _box(5, -32.768, 32.768), ackley5, 0.0),
        Function("styblinski_tang8", _box(8, -5, 5), styblinski_tang8, -39.16616570377142 * 8),
        Function(
            "mixed",
            (
                Param("lr", "double", 1e-5, 1.0, log=True),
                Param("layers", "int", 1, 8),
                Param("batch_log2", "int", 3, 10),
                Param("dropout", "double", 0.0, 0.5),
                Param("activation", "categorical", choices=tuple(_MIXED_CAT)),
            ),
            mixed,
            0.0,
        ),
    ]
}


# --------------------------------------------------------------------------
# Optimizers: each run yields (values in evaluation order, seconds per suggestion)


class NotAvailable(Exception):
    """The optimizer cannot run here (ktune: not implemented; a peer: not installed)."""


@dataclass
class Run:
    family: str
    optimizer: str
    function: str
    seed: int
    budget: int
    values: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | n/a | error
    message: str = ""
    curve: list[float] = field(default_factory=list)  # simple regret after each evaluation
    final: dict[str, float] = field(default_factory=dict)  # budget -> simple regret


def ktune_binary(path: str | None) -> Path:
    if path:
        return Path(path)
    target = os.environ.get("CARGO_TARGET_DIR")
    return (Path(target) if target else REPO / "target") / "release" / "ktune"


def run_ktune(binary: Path, algorithm: str, settings: list[str], fn: Function, seed: int, budget: int):
    args = [str(binary), "ask-tell", "--algorithm", algorithm]
    for s in settings:
        args += ["--setting", s]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )

    def request(message: dict) -> dict:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"ktune exited: {err.strip()}")
        return json.loads(line)

    values, seconds = [], []
    try:
        init = {
            "op": "init",
            "function": fn.name,
            "seed": seed,
            "budget": budget,
            "goal": "minimize",
            "space": [p.to_json() for p in fn.space],
        }
        reply = request(init)
        if "error" in reply:
            if "not implemented" in reply["error"]:
                raise NotAvailable(reply["error"])
            raise RuntimeError(reply["error"])
        for _ in range(budget):
            reply = request({"op": "ask"})
            if "error" in reply:
                raise RuntimeError(reply["error"])
            params = reply["params"]
            seconds.append(float(reply["cpu_seconds"]))
            value = fn.f(params)
            values.append(value)
            told = request(
                {"op": "tell", "params": params, "value": value if math.isfinite(value) else None}
            )
            if "error" in told:
                raise RuntimeError(told["error"])
    finally:
        if proc.stdin:
            try:
                proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                proc.stdin.close()
            except BrokenPipeError:
                pass
        proc.wait(timeout=10)
    return values, seconds


def _optuna_distributions(fn: Function):
    import optuna

    out = {}
    for p in fn.space:
        if p.type == "double":
            out[p.name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
        elif p.type == "int":
            out[p.name] = optuna.distributions.IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            out[p.name] = optuna.distributions.CategoricalDistribution(list(p.choices))
    return out


def run_optuna(make_sampler: Callable[[int], object], fn: Function, seed: int, budget: int):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="minimize", sampler=make_sampler(seed))
    distributions = _optuna_distributions(fn)
    values, seconds = [], []
    for _ in range(budget):
        started = time.perf_counter()
        trial = study.ask(fixed_distributions=distributions)
        seconds.append(time.perf_counter() - started)
        value = fn.f(trial.params)
        values.append(value)
        study.tell(trial, value if math.isfinite(value) else None,
                   state=None if math.isfinite(value) else optuna.trial.TrialState.FAIL)
    return values, seconds


def optuna_sampler(kind: str) -> Callable[[int], object]:
    def make(seed: int):
        import optuna

        s = optuna.samplers
        if kind == "random":
            return s.RandomSampler(seed=seed)
        if kind == "sobol":
            return s.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
        if kind == "tpe":
            # Katib's tpe defaults, which ktune's catalog shares. Optuna 5
            # defaults to the multivariate TPE, so independence is explicit.
            return s.TPESampler(
                n_startup_trials=10, n_ei_candidates=24, prior_weight=1.0, multivariate=False, seed=seed
            )
        if kind == "mv-tpe":
            return s.TPESampler(
                n_startup_trials=10, n_ei_candidates=24, multivariate=True, seed=seed
            )
        if kind == "cmaes":
            return s.CmaEsSampler(seed=seed)
        if kind == "gp":
            try:
                import torch  # noqa: F401
            except ImportError as e:
                raise NotAvailable("Optuna's GPSampler needs torch (setup.sh --with-torch)") from e
            return s.GPSampler(seed=seed, n_startup_trials=10)
        raise ValueError(kind)

    return make


def run_skopt(fn: Function, seed: int, budget: int):
    from skopt import Optimizer
    from skopt.space import Categorical, Integer, Real

    dims = []
    for p in fn.space:
        if p.type == "double":
            dims.append(Real(p.low, p.high, prior="log-uniform" if p.log else "uniform", name=p.name))
        elif p.type == "int":
            dims.append(Integer(int(p.low), int(p.high), prior="log-uniform" if p.log else "uniform", name=p.name))
        else:
            dims.append(Categorical(list(p.choices), name=p.name))
    # Katib's bayesianoptimization service: skopt with these settings' defaults.
    opt = Optimizer(
        dims,
        base_estimator="GP",
        acq_func="gp_hedge",
        n_initial_points=10,
        acq_optimizer="auto",
        random_state=seed,
    )
    values, seconds = [], []
    pending = 0.0  # time of the previous tell: skopt fits and picks the next point there
    for _ in range(budget):
        started = time.perf_counter()
        x = opt.ask()
        seconds.append(pending + time.perf_counter() - started)
        params = {p.name: v for p, v in zip(fn.space, x)}
        value = fn.f(params)
        values.append(value)
        started = time.perf_counter()
        opt.tell(x, value if math.isfinite(value) else 1e300)
        pending = time.perf_counter() - started
    return values, seconds


def run_hyperopt(fn: Function, seed: int, budget: int):
    import functools

    import numpy as np
    from hyperopt import STATUS_OK, Trials, fmin, hp, tpe

    space = {}
    for p in fn.space:
        if p.type == "double":
            space[p.name] = (
                hp.loguniform(p.name, math.log(p.low), math.log(p.high)) if p.log else hp.uniform(p.name, p.low, p.high)
            )
        elif p.type == "int":
            space[p.name] = hp.uniformint(p.name, int(p.low), int(p.high))
        else:
            space[p.name] = hp.choice(p.name, list(p.choices))
    # Katib's tpe service is hyperopt with these settings (ktune shares the defaults).
    suggest = functools.partial(tpe.suggest, n_startup_jobs=10, n_EI_candidates=24, gamma=0.25, prior_weight=1.0)
    seconds: list[float] = []

    def timed(*args, **kwargs):
        started = time.perf_counter()
        out = suggest(*args, **kwargs)
        seconds.append(time.perf_counter() - started)
        return out

    values: list[float] = []

    def objective(params):
        value = fn.f(params)
        values.append(value)
        return {"loss": value if math.isfinite(value) else 1e300, "status": STATUS_OK}

    fmin(
        objective,
        space,
        algo=timed,
        max_evals=budget,
        trials=Trials(),
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    return values, seconds


# --------------------------------------------------------------------------
# Families: ktune's algorithm and the peers it is compared with

KTUNE = "ktune"


@dataclass(frozen=True)
class Family:
    name: str
    ktune_algorithm: str
    ktune_settings: tuple[str, ...]
    peers: tuple[tuple[str, Callable], ...]  # (label, run(fn, seed, budget))


def _optuna(kind: str) -> Callable:
    return lambda fn, seed, budget: run_optuna(optuna_sampler(kind), fn, seed, budget)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("random", "random", (), (("optuna-random", _optuna("random")),)),
        Family("sobol", "sobol", (), (("optuna-qmc-sobol", _optuna("sobol")),)),
        Family(
            "tpe",
            "tpe",
            (),
            (("optuna-tpe", _optuna("tpe")), ("hyperopt-tpe", run_hyperopt)),
        ),
        Family("mv-tpe", "multivariate-tpe", (), (("optuna-mv-tpe", _optuna("mv-tpe")),)),
        Family("cmaes", "cmaes", (), (("optuna-cmaes", _optuna("cmaes")),)),
        Family(
            "gp",
            "bayesianoptimization",
            ("base_estimator=GP", "acq_func=gp_hedge", "n_initial_points=10"),
            (("optuna-gp", _optuna("gp")), ("skopt-gp", run_skopt)),
        ),
    ]
}


def execute(label: str, family: str, fn: Function, seed: int, budget: int, call: Callable) -> Run:
    run = Run(family, label, fn.name, seed, budget)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run.values, run.seconds = call()
        if len(run.values) < budget:
            run.status, run.message = "error", f"stopped after {len(run.values)} of {budget}"
    except NotAvailable as e:
        run.status, run.message = "n/a", str(e)
    except Exception as e:  # noqa: BLE001 — one broken optimizer must not end the benchmark
        run.status, run.message = "error", f"{type(e).__name__}: {e}"
    return run


# --------------------------------------------------------------------------
# Scoring and reporting


def regret_curve(values: list[float], f_star: float) -> list[float]:
    best, curve = math.inf, []
    for v in values:
        if math.isfinite(v):
            best = min(best, v)
        curve.append(max(best - f_star, 0.0) if math.isfinite(best) else math.inf)
    return curve


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return math.nan
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt_regret(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "—"
    if x == 0:
        return "0"
    return f"{x:.3g}"


def fmt_time(x: float) -> str:
    if math.isnan(x):
        return "—"
    if x < 1e-6:
        return f"{x * 1e9:.0f} ns"
    if x < 1e-3:
        return f"{x * 1e6:.1f} µs"
    if x < 1:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.2f} s"


def summarise(runs: list[Run], budgets: list[int]) -> tuple[list[dict], str]:
    rows, lines = [], []
    header = (
        "| function | family | budget | ktune regret | best peer | peer regret | ktune/peer "
        "| ktune time med / p95 | peer time med / p95 |"
    )
    lines += [header, "|" + "---|" * 9]
    groups: dict[tuple[str, str], dict[str, list[Run]]] = {}
    for r in runs:
        groups.setdefault((r.function, r.family), {}).setdefault(r.optimizer, []).append(r)
    for (function, family), by_opt in groups.items():
        for budget in budgets:
            stats = {}
            for label, rs in by_opt.items():
                ok = [r for r in rs if r.status == "ok"]
                if not ok:
                    status = rs[0].status if rs else "n/a"
                    stats[label] = {"status": status, "message": rs[0].message if rs else ""}
                    continue
                finals = [r.final[str(budget)] for r in ok if str(budget) in r.final]
                secs = [s for r in ok for s in r.seconds[:budget]]
                stats[label] = {
                    "status": "ok",
                    "median_regret": statistics.median(finals) if finals else math.nan,
                    "time_median": percentile(secs, 0.5),
                    "time_p95": percentile(secs, 0.95),
                    "runs": len(ok),
                }
            k = stats.pop(KTUNE, {"status": "n/a"})
            peers = {lab: s for lab, s in stats.items() if s["status"] == "ok"}
            best_label = min(peers, key=lambda lab: peers[lab]["median_regret"]) if peers else None
            best = peers.get(best_label, {}) if best_label else {}
            ratio = math.nan
            if k["status"] == "ok" and best:
                kr, pr = k["median_regret"], best["median_regret"]
                ratio = kr / pr if pr > 0 else (1.0 if kr == 0 else math.inf)
            rows.append(
                {
                    "function": function,
                    "family": family,
                    "budget": budget,
                    "ktune": k,
                    "peers": stats,
                    "best_peer": best_label,
                    "ratio": ratio,
                }
            )

            def cell(s: dict, key: str) -> str:
                return fmt_regret(s[key]) if s.get("status") == "ok" else s.get("status", "n/a")

            def times(s: dict) -> str:
                if s.get("status") != "ok":
                    return s.get("status", "n/a")
                return f"{fmt_time(s['time_median'])} / {fmt_time(s['time_p95'])}"

            peer_name = best_label or ", ".join(f"{lab}: {s['status']}" for lab, s in stats.items()) or "—"
            lines.append(
                f"| {function} | {family} | {budget} | {cell(k, 'median_regret')} | {peer_name} "
                f"| {cell(best, 'median_regret') if best else '—'} "
                f"| {('%.2f' % ratio) if math.isfinite(ratio) else ('∞' if ratio == math.inf else '—')} "
                f"| {times(k)} | {times(best) if best else '—'} |"
            )
    return rows, "\n".join(lines)


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("optuna", "skopt", "hyperopt", "cmaes", "numpy", "scipy", "sklearn", "torch"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, budget 30: a smoke run")
    ap.add_argument("--families", default=",".join(FAMILIES), help="comma-separated: " + ", ".join(FAMILIES))
    ap.add_argument("--functions", default=",".join(FUNCTIONS), help="comma-separated: " + ", ".join(FUNCTIONS))
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument(
        "--first-seed", type=int, default=0, help="start at this seed instead of 0 (to add seeds to a run in parallel)"
    )
    ap.add_argument("--budget", default="50,100", help="comma-separated budgets; each run goes to the largest")
    ap.add_argument("--ktune", help="ktune binary (default $CARGO_TARGET_DIR/release/ktune or target/release/ktune)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="folder for the JSON results")
    ap.add_argument(
        "--optimizers",
        help="comma-separated labels to run (e.g. ktune or skopt-gp); default: ktune and every peer of each family",
    )
    ap.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        help="a results JSON from an earlier run: runs in it (same family, optimizer, function, seed and budget) "
        "are taken from it instead of run again; repeatable",
    )
    args = ap.parse_args(argv)

    seeds = 2 if args.quick else args.seeds
    budgets = [30] if args.quick else sorted({int(b) for b in args.budget.split(",") if b})
    families = [FAMILIES[f] for f in args.families.split(",") if f]
    functions = [FUNCTIONS[f] for f in args.functions.split(",") if f]
    binary = ktune_binary(args.ktune)
    top = max(budgets)

    only = {o for o in args.optimizers.split(",") if o} if args.optimizers else None
    if not binary.is_file() and (only is None or KTUNE in only):
        print(f"ktune binary not found at {binary}; run `cargo build --release` or pass --ktune", file=sys.stderr)
        return 2
    reused: dict[tuple, Run] = {}
    for path in args.reuse:
        for r in json.loads(path.read_text())["runs"]:
            if r["status"] != "ok" or r["budget"] != top:
                continue
            old = Run(r["family"], r["optimizer"], r["function"], r["seed"], r["budget"])
            old.values = [math.nan if v is None else v for v in r["values"]]
            old.seconds = r["seconds_per_suggestion"]
            reused[(old.family, old.optimizer, old.function, old.seed)] = old

    runs: list[Run] = []
    started = time.perf_counter()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    # The process id keeps two runs started in the same second apart.
    path = args.out / f"regret-{stamp}-{os.getpid()}.json"
    for family in families:
        for fn in functions:
            for seed in range(args.first_seed, seeds):
                candidates = [
                    (
                        KTUNE,
                        lambda fn=fn, seed=seed, fam=family: run_ktune(
                            binary, fam.ktune_algorithm, list(fam.ktune_settings), fn, seed, top
                        ),
                    )
                ] + [(label, lambda run=run, fn=fn, seed=seed: run(fn, seed, top)) for label, run in family.peers]
                for label, call in candidates:
                    old = reused.get((family.name, label, fn.name, seed))
                    if old is not None:
                        old.curve = regret_curve(old.values, fn.f_star)
                        old.final = {str(b): old.curve[b - 1] for b in budgets if len(old.curve) >= b}
                        runs.append(old)
                        continue
                    if only is not None and label not in only:
                        continue
                    # Once an optimizer is n/a it stays so; do not retry it per seed.
                    prev = next(
                        (r for r in runs if (r.optimizer, r.family, r.status) == (label, family.name, "n/a")), None
                    )
                    if prev is not None:
                        runs.append(Run(family.name, label, fn.name, seed, top, status="n/a", message=prev.message))
                        continue
                    run = execute(label, family.name, fn, seed, top, call)
                    run.curve = regret_curve(run.values, fn.f_star)
                    run.final = {str(b): run.curve[b - 1] for b in budgets if len(run.curve) >= b}
                    runs.append(run)
                    if run.status == "error":
                        print(f"  {family.name}/{label}/{fn.name}/seed {seed}: {run.message}", file=sys.stderr)
            print(f"  {family.name} {fn.name}: done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
            # Written after every (family, function), so a long run stopped
            # part-way leaves its finished cells for --reuse.
            write_report(path, stamp, args, seeds, budgets, families, functions, binary, runs)

    table = write_report(path, stamp, args, seeds, budgets, families, functions, binary, runs)
    print(table)
    print(f"\n{len(runs)} runs, {seeds} seeds, {time.perf_counter() - started:.0f} s; results: {path}")
    return 0


def json_clean(x):
    """`x` with non-finite floats as None (JSON has no NaN or infinity), through dicts and lists."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [json_clean(v) for v in x]
    return x


def write_report(path, stamp, args, seeds, budgets, families, functions, binary, runs) -> str:
    """Writes the JSON report (summary and every run so far) and returns the markdown table."""
    rows, table = summarise(runs, budgets)
    report = {
        "created": stamp,
        "config": {
            "seeds": seeds,
            "budgets": budgets,
            "families": [f.name for f in families],
            "functions": {f.name: {"f_star": f.f_star, "space": [p.to_json() for p in f.space]} for f in functions},
            "ktune": str(binary),
        },
        "versions": versions(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "summary": rows,
        "runs": [
            {
                "family": r.family,
                "optimizer": r.optimizer,
                "function": r.function,
                "seed": r.seed,
                "budget": r.budget,
                "status": r.status,
                "message": r.message,
                "values": r.values,
                "regret_curve": r.curve,
                "final_regret": r.final,
                "seconds_per_suggestion": r.seconds,
            }
            for r in runs
        ],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(json_clean(report), indent=1))
    tmp.replace(path)
    return table


if __name__ == "__main__":
    sys.exit(main())
