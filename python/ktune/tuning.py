"""``ktune.tune()``: Katib's ``KatibClient.tune()`` run on this machine by
``ktune run``.

It writes a ``kubeflow.org/v1beta1`` Experiment (JSON, which is YAML) whose
trial is a ``batch/v1`` Job running ``python -m ktune._trial`` with this
interpreter, and the Push metrics collector, so that ``ktune.report`` (or
the objective's return value) reaches ktune's push endpoint. The objective
travels as Katib's ``tune`` sends it — its source, written to a file the
trial executes — or, given as ``"module:function"``, is imported by the
trial. Closures, lambdas and methods cannot travel as source: ``ValueError``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from ._binary import ktune_binary
from .search import Parameter

Objective = Union[Callable[[Dict[str, Any]], Any], str]
_MODULE_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    ``trials`` is a list of dicts (one per trial: ``name``, ``state``,
    ``objective``, ``parameters`` typed as the objective got them, and
    timestamps), which ``pandas.DataFrame(result.trials)`` takes as is.
    ``experiment_name`` and ``db`` are what ``ktune ui --db DB`` and
    ``ktune trials NAME --db DB`` need.
    """

    experiment_name: str
    state: str
    best_parameters: Optional[Dict[str, Any]]
    best_value: Optional[float]
    best_trial: Optional[str]
    trials: List[Dict[str, Any]] = field(default_factory=list)
    db: str = "sqlite:ktune.db"
    experiment_file: Optional[str] = None

    def __repr__(self) -> str:
        return (f"TuneResult(experiment_name={self.experiment_name!r}, state={self.state!r}, "
                f"best_value={self.best_value!r}, best_parameters={self.best_parameters!r}, "
                f"trials={len(self.trials)})")


def tune(
    objective: Objective,
    parameters: Mapping[str, Parameter],
    *,
    name: Optional[str] = None,
    objective_metric_name: str = "objective",
    additional_metric_names: Optional[List[str]] = None,
    objective_type: str = "maximize",
    objective_goal: Optional[float] = None,
    algorithm_name: str = "random",
    algorithm_settings: Optional[Mapping[str, Any]] = None,
    max_trial_count: int = 10,
    parallel_trial_count: int = 1,
    max_failed_trial_count: Optional[int] = None,
    early_stopping: Union[None, str, Mapping[str, Any]] = None,
    env_per_trial: Optional[Mapping[str, str]] = None,
    resources_per_trial: Optional[Mapping[str, Any]] = None,
    metrics_collector_config: Optional[Mapping[str, Any]] = None,
    seed: int = 0,
    db: str = "sqlite:ktune.db",
    work_dir: Union[str, Path] = ".ktune",
    progress: Union[bool, Callable[[Dict[str, Any]], None]] = True,
    namespace: Optional[str] = None,
) -> TuneResult:
    """Runs a sweep of ``objective`` over ``parameters`` locally and returns
    the result. Arguments as in Katib's ``tune()``; see docs/python.md.

    ``objective`` takes one dict of parameter values and either returns a
    number (reported as ``objective_metric_name``), returns a dict of
    metrics, or calls :func:`ktune.report` itself and returns ``None``.
    ``progress``: ``True`` prints one line per trial started and ended
    (terminals and notebooks alike), ``False`` is quiet, a callable gets
    every event of ``ktune run -o json`` as a dict.
    """
    args = dict(locals())
    if namespace is not None:
        raise ValueError(
            "namespace: submitting to a cluster is not in this version of the ktune package; "
            "build the Experiment with ktune.build_experiment(...) and apply it with kubectl")
    experiment = _experiment(args)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    if not isinstance(db, str) or not (db.startswith("sqlite:") or db.startswith("postgres")):
        raise ValueError(f"db: expected 'sqlite:PATH' or 'postgres://…', got {db!r}")
    if not (isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"progress: expected True, False or a callable, got {progress!r}")
    name = experiment["metadata"]["name"]
    folder = Path(work_dir) / "tune" / name
    path = folder / "experiment.yaml"
    path.write_text(json.dumps(experiment, indent=2) + "\n", encoding="utf-8")
    binary = ktune_binary()
    show = _Printer(name, max_trial_count, objective_type == "maximize") if progress is True else (progress or None)
    summary = _run(binary, path, db, seed, str(Path(work_dir) / "trials"), show)
    trials = _trials(binary, name, db, parameters)
    best = (summary or {}).get("best") or {}
    best_parameters = None
    if best.get("parameters") is not None:
        best_parameters = {k: parameters[k].cast(v) if k in parameters else v
                           for k, v in best["parameters"].items()}
    return TuneResult(
        experiment_name=name,
        state=(summary or {}).get("state", "Unknown"),
        best_parameters=best_parameters,
        best_value=best.get("objective"),
        best_trial=best.get("trial"),
        trials=trials,
        db=db,
        experiment_file=str(path),
    )


def build_experiment(objective: Objective, parameters: Mapping[str, Parameter], **options: Any) -> Dict[str, Any]:
    """The Experiment :func:`tune` runs, as a dict, from the same arguments
    (those of ``tune`` that shape the experiment; ``TypeError`` for others);
    writes the objective's files under ``work_dir/tune/NAME/``. Validates
    every argument."""
    bound = inspect.signature(tune).bind(objective, parameters, **options)
    bound.apply_defaults()
    return _experiment(bound.arguments)


def _experiment(args: Mapping[str, Any]) -> Dict[str, Any]:
    """The Experiment for :func:`tune`'s arguments ``args`` (by name)."""
    objective, parameters = args["objective"], args["parameters"]
    name, objective_metric_name = args["name"], args["objective_metric_name"]
    objective_type, objective_goal = args["objective_type"], args["objective_goal"]
    algorithm_name, max_trial_count = args["algorithm_name"], args["max_trial_count"]
    parallel_trial_count = args["parallel_trial_count"]
    max_failed_trial_count = args["max_failed_trial_count"]
    env_per_trial, resources_per_trial = args["env_per_trial"], args["resources_per_trial"]
    metrics_collector_config, work_dir = args["metrics_collector_config"], args["work_dir"]
    early_stopping = args["early_stopping"]
    additional_metric_names = args["additional_metric_names"]
    algorithm_settings = args["algorithm_settings"]
    shipped = _objective(objective)
    _parameters(parameters)
    name = _name(name, shipped)
    for arg, value in (("max_trial_count", max_trial_count), ("parallel_trial_count", parallel_trial_count)):
        _positive(arg, value)
    if max_failed_trial_count is not None:
        _positive("max_failed_trial_count", max_failed_trial_count, zero=True)
    if objective_type not in ("minimize", "maximize"):
        raise ValueError(f"objective_type: expected 'minimize' or 'maximize', got {objective_type!r}")
    if not isinstance(objective_metric_name, str) or not objective_metric_name.strip():
        raise ValueError(f"objective_metric_name: expected a metric name, got {objective_metric_name!r}")
    if not isinstance(algorithm_name, str) or not algorithm_name:
        raise ValueError(f"algorithm_name: expected an algorithm name, got {algorithm_name!r}")
    if objective_goal is not None and (not isinstance(objective_goal, (int, float)) or not math.isfinite(objective_goal)):
        raise ValueError(f"objective_goal: expected a finite number, got {objective_goal!r}")

    folder = Path(work_dir) / "tune" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec: Dict[str, Any] = {
        "metric": objective_metric_name,
        "path": os.getcwd(),
        "parameters": {k: _asdict(p) for k, p in parameters.items()},
    }
    if "module" in shipped:
        spec["module"] = shipped["module"]
    else:
        source = folder / "objective.py"
        source.write_text(shipped["source"], encoding="utf-8")
        spec["source"] = str(source.resolve())
        spec["function"] = shipped["function"]
    spec_path = folder / "trial.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")

    objective_spec: Dict[str, Any] = {"type": objective_type, "objectiveMetricName": objective_metric_name}
    if additional_metric_names:
        objective_spec["additionalMetricNames"] = _names("additional_metric_names", additional_metric_names)
    if objective_goal is not None:
        objective_spec["goal"] = objective_goal
    container: Dict[str, Any] = {
        "name": "training-container",
        "image": "python:3.11-slim",
        "command": [sys.executable, "-m", "ktune._trial", str(spec_path.resolve())]
        + [f"{p}=${{trialParameters.{p}}}" for p in parameters],
    }
    if env_per_trial:
        if not isinstance(env_per_trial, Mapping):
            raise TypeError(f"env_per_trial: expected a mapping of name -> value, got {env_per_trial!r}")
        container["env"] = [{"name": str(k), "value": str(v)} for k, v in env_per_trial.items()]
    if resources_per_trial:
        if not isinstance(resources_per_trial, Mapping):
            raise TypeError(f"resources_per_trial: expected a mapping such as {{'cpu': '1'}}, got {resources_per_trial!r}")
        resources = {str(k): str(v) for k, v in resources_per_trial.items()}
        container["resources"] = {"requests": resources, "limits": resources}
    collector = dict(metrics_collector_config or {"kind": "Push"})
    if "kind" not in collector:
        raise ValueError(f"metrics_collector_config: needs a 'kind' (Push, StdOut, …), got {collector!r}")

    spec_doc: Dict[str, Any] = {
        "objective": objective_spec,
        "algorithm": {"algorithmName": algorithm_name, "algorithmSettings": _settings("algorithm_settings", algorithm_settings)},
        "parallelTrialCount": parallel_trial_count,
        "maxTrialCount": max_trial_count,
        "parameters": [p.spec(k) for k, p in parameters.items()],
        "metricsCollectorSpec": {"collector": collector},
        "trialTemplate": {
            "primaryContainerName": "training-container",
            "retain": True,
            "trialParameters": [{"name": p, "reference": p} for p in parameters],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {"template": {
                    "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": {"restartPolicy": "Never", "containers": [container]},
                }},
            },
        },
    }
    if max_failed_trial_count is not None:
        spec_doc["maxFailedTrialCount"] = max_failed_trial_count
    if not spec_doc["algorithm"]["algorithmSettings"]:
        del spec_doc["algorithm"]["algorithmSettings"]
    if early_stopping is not None:
        spec_doc["earlyStopping"] = _early_stopping(early_stopping)
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec_doc}


def _asdict(p: Parameter) -> Dict[str, Any]:
    return {"parameter_type": p.parameter_type, "min": p.min, "max": p.max, "step": p.step,
            "distribution": p.distribution, "list": list(p.list) if p.list is not None else None}


def _objective(objective: Objective) -> Dict[str, str]:
    """How the objective travels: ``{"module": "m:f"}`` or ``{"source", "function"}``."""
    if isinstance(objective, str):
        if not _MODULE_PATH.match(objective):
            raise ValueError(f"objective: {objective!r} is not 'module:function'")
        return {"module": objective}
    if isinstance(objective, (types.MethodType, types.BuiltinFunctionType)) or not isinstance(objective, types.FunctionType):
        raise ValueError(
            f"objective: {objective!r} is not a plain function; pass a function defined with def at the top "
            "level of a notebook cell or module, or 'module:function'")
    if objective.__name__ == "<lambda>":
        raise ValueError("objective: a lambda cannot be shipped to trials; define it with def (imports inside it), "
                         "or pass 'module:function'")
    if objective.__closure__:
        captured = ", ".join(objective.__code__.co_freevars)
        raise ValueError(
            f"objective: {objective.__name__} is a closure (it captures {captured}); trials run it in a fresh "
            "process, so define it at the top level with everything it needs inside it, or pass 'module:function'")
    if "." in objective.__qualname__:
        raise ValueError(f"objective: {objective.__qualname__} is defined inside another function or class; "
                         "define it at the top level, or pass 'module:function'")
    try:
        source = textwrap.dedent(inspect.getsource(objective))
    except (OSError, TypeError) as e:
        raise ValueError(f"objective: the source of {objective.__name__} cannot be read ({e}); "
                         "pass 'module:function' instead") from None
    return {"source": source, "function": objective.__name__}


def _parameters(parameters: Mapping[str, Parameter]) -> None:
    if not isinstance(parameters, Mapping) or not parameters:
        raise ValueError(f"parameters: expected a non-empty dict of name -> ktune.search.…, got {parameters!r}")
    for key, value in parameters.items():
        if not isinstance(key, str) or not re.match(r"^[A-Za-z_][\w.-]*$", key):
            raise ValueError(f"parameters: {key!r} is not a parameter name (letters, digits, _ . -)")
        if not isinstance(value, Parameter):
            raise TypeError(f"parameters[{key!r}]: expected ktune.search.double/int/categorical/discrete, got {value!r}")


def _name(name: Optional[str], shipped: Dict[str, str]) -> str:
    if name is None:
        base = shipped.get("function") or shipped["module"].rpartition(":")[2]
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        name = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:40] or "tune"
        return f"{name}-{stamp}"
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise ValueError(f"name: {name!r} is not a DNS label (lowercase letters, digits and '-', at most 63)")
    return name


def _positive(argument: str, value: Any, zero: bool = False) -> None:
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{argument}: expected an int >= {low}, got {value!r}")


def _names(argument: str, names: Any) -> List[str]:
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{argument}: expected a list of metric names, got {names!r}")
    return list(names)


def _settings(argument: str, settings: Optional[Mapping[str, Any]]) -> List[Dict[str, str]]:
    if settings is None:
        return []
    if not isinstance(settings, Mapping):
        raise TypeError(f"{argument}: expected a dict of name -> value, got {settings!r}")
    return [{"name": str(k), "value": str(v)} for k, v in settings.items()]


def _early_stopping(early_stopping: Union[str, Mapping[str, Any]]) -> Dict[str, Any]:
    if isinstance(early_stopping, str):
        return {"algorithmName": early_stopping}
    if isinstance(early_stopping, Mapping):
        algorithm = early_stopping.get("algorithm_name", early_stopping.get("algorithmName"))
        if not isinstance(algorithm, str):
            raise ValueError(f"early_stopping: needs 'algorithm_name', got {dict(early_stopping)!r}")
        doc: Dict[str, Any] = {"algorithmName": algorithm}
        settings = _settings("early_stopping", early_stopping.get("algorithm_settings", early_stopping.get("algorithmSettings")))
        if settings:
            doc["algorithmSettings"] = settings
        return doc
    raise TypeError(f"early_stopping: expected an algorithm name or a dict, got {early_stopping!r}")


class _Printer:
    """Plain progress lines, one per trial started and ended: readable in a
    terminal, a notebook cell and a CI log alike."""

    def __init__(self, name: str, total: int, maximize: bool):
        self.name = name
        self.total = total
        self.maximize = maximize
        self.finished = 0
        self.best: Optional[float] = None

    def __call__(self, event: Dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "started":
            params = " ".join(f"{k}={v}" for k, v in (event.get("parameters") or {}).items())
            print(f"[{self.name}] {event.get('trial')} started: {params}", flush=True)
        elif kind == "finished":
            value = event.get("objective")
            text = "-" if value is None else f"{value:.6g}"
            reason = f" ({event['reason']})" if event.get("reason") and event.get("state") != "Succeeded" else ""
            self.finished += 1
            if value is not None and (self.best is None or (value > self.best if self.maximize else value < self.best)):
                self.best = value
            best = "-" if self.best is None else f"{self.best:.6g}"
            print(f"[{self.name}] {event.get('trial')} {event.get('state')}{reason}: objective {text} "
                  f"({self.finished}/{self.total} done, best {best})", flush=True)
        elif kind == "summary":
            best = event.get("best") or {}
            print(f"[{self.name}] {event.get('state')}: best {best.get('objective')} from {best.get('trial')} "
                  f"{best.get('parameters')}", flush=True)


def _run(binary: str, path: Path, db: str, seed: int, trial_dir: str,
         show: Optional[Callable[[Dict[str, Any]], None]]) -> Optional[Dict[str, Any]]:
    """Runs ``ktune run -o json`` and feeds its events to ``show``; returns
    the summary event. Ctrl-C stops the run cleanly (ktune keeps it
    resumable: call tune() with the same name again)."""
    command = [binary, "run", str(path), "--db", db, "--seed", str(seed), "--trials-dir", trial_dir, "-o", "json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    summary = None
    errors: List[str] = []
    drain = threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True)
    drain.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                print(line.rstrip(), flush=True)
                continue
            if event.get("event") == "summary":
                summary = event
            if show is not None:
                show(event)
        code = process.wait()
        drain.join(timeout=5)
        stderr = "".join(errors)
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait()
        raise
    if summary is None:
        raise RuntimeError(f"ktune run {path} exited {code} without a result: {stderr.strip()}")
    return summary


def _trials(binary: str, name: str, db: str, parameters: Mapping[str, Parameter]) -> List[Dict[str, Any]]:
    out = subprocess.run([binary, "trials", name, "--db", db, "-o", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"ktune trials {name} exited {out.returncode}: {out.stderr.strip()}")
    rows = json.loads(out.stdout)
    for row in rows:
        row["parameters"] = {k: parameters[k].cast(v) if k in parameters else v
                             for k, v in (row.get("parameters") or {}).items()}
    return rows
