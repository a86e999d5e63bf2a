"""``KtuneSampler``: ktune's search algorithms as an Optuna sampler.

One long-lived ``ktune ask-tell`` process per sampler holds the search
(``ask``/``tell`` over JSON lines; see README "ask-tell"). Optuna's study
drives it:

* ``infer_relative_search_space``: the study's intersection search space
  (every parameter of every finished trial, same distribution), without
  single-valued distributions — what Optuna's own relative samplers use.
* ``sample_relative``: one ``ask``. When the space changes (the first
  trials finish, or a parameter appears or disappears), the sampler sends a
  new ``init`` and replays the study's finished trials into it as
  ``external`` tells, so no history is lost.
* ``sample_independent``: Optuna's ``RandomSampler`` (seeded from ``seed``)
  for parameters outside that space, e.g. ones that appear later.
* ``after_trial``: ``tell`` the value; failed trials as ``failed``, pruned
  ones as ``pruned`` with their last intermediate value. A trial whose
  values were fixed elsewhere (``study.enqueue_trial``) tells its asked
  configuration ``killed`` (never evaluated) and its real one as external.

A lock serialises the pipe, so ``study.optimize(n_jobs=2)`` is safe.
Single-objective studies only.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ._binary import ktune_binary

ALGORITHMS = ("random", "sobol", "tpe", "multivariate-tpe", "cmaes", "bayesianoptimization", "grid")


class KtuneError(RuntimeError):
    """``ktune ask-tell`` answered an error or went away."""


class _AskTell:
    """One ``ktune ask-tell`` child and its pipes (not thread-safe by itself)."""

    def __init__(self, algorithm: str, settings: Mapping[str, Any], binary: Optional[str]):
        command = [binary or ktune_binary(), "ask-tell", "--algorithm", algorithm]
        for key, value in settings.items():
            command += ["--setting", f"{key}={value}"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, bufsize=1)
        self.stderr: List[str] = []
        self._drain = threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True)
        self._drain.start()
        self._finalizer = weakref.finalize(self, _close, self.process)

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.process.wait(timeout=10)
            self._drain.join(timeout=5)  # the reason is on stderr
            detail = "".join(self.stderr).strip() or f"exit status {self.process.returncode}"
            raise KtuneError(f"ktune ask-tell stopped: {detail}")
        return json.loads(line)

    def close(self) -> None:
        self._finalizer()


def _close(process: subprocess.Popen) -> None:
    try:
        if process.poll() is None:
            process.stdin.write('{"op":"close"}\n')
            process.stdin.flush()
            process.stdin.close()
            process.wait(timeout=5)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        process.kill()


class KtuneSampler(BaseSampler):
    """An Optuna sampler backed by one of ktune's algorithms::

        sampler = KtuneSampler("bayesianoptimization", seed=0)
        study = optuna.create_study(sampler=sampler)

    ``algorithm``: a Katib algorithm name ktune implements (``tpe``,
    ``multivariate-tpe``, ``cmaes``, ``bayesianoptimization``, ``random``,
    ``sobol``, …). ``settings``: its ``algorithmSettings`` (name -> value).
    ``seed``: an int >= 0 for a reproducible study, ``None`` for a random
    one. ``binary``: the ``ktune`` executable (default: the wheel's).
    """

    def __init__(self, algorithm: str = "tpe", *, seed: Optional[int] = None,
                 settings: Optional[Mapping[str, Any]] = None, binary: Optional[str] = None):
        if not isinstance(algorithm, str) or not algorithm:
            raise ValueError(f"algorithm: expected an algorithm name such as {', '.join(ALGORITHMS)}; got {algorithm!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed: expected None or an int >= 0, got {seed!r}")
        if settings is not None and not isinstance(settings, Mapping):
            raise ValueError(f"settings: expected a dict of setting name -> value, got {settings!r}")
        self._algorithm = algorithm
        self._seed = random.SystemRandom().randrange(2**32) if seed is None else seed
        self._random = RandomSampler(seed=self._seed)
        self._search_space = IntersectionSearchSpace()
        self._lock = threading.Lock()
        self._ktune = _AskTell(algorithm, dict(settings or {}), binary)
        self._space_key: Optional[Tuple] = None
        self._space: Dict[str, BaseDistribution] = {}
        self._generation = 0
        self._asked: Dict[int, Tuple[int, Dict[str, Any]]] = {}
        self._check_arguments()

    def _check_arguments(self) -> None:
        """Fails now, naming the argument, when ktune refuses the algorithm
        or a setting (it exits before reading any input)."""
        probe = {"op": "init", "seed": 0, "space": [{"name": "x", "type": "double", "min": 0.0, "max": 1.0}]}
        try:
            self._ktune.request(probe)
        except KtuneError as e:
            argument = "algorithm" if "unknown algorithm" in str(e) else "settings"
            raise ValueError(f"{argument}: {e}") from None

    def close(self) -> None:
        """Ends the ktune process (also done when the sampler is collected)."""
        self._ktune.close()

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    # -- Optuna's sampler interface ------------------------------------

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> Dict[str, BaseDistribution]:
        if len(study.directions) > 1:
            raise ValueError("study: KtuneSampler supports single-objective studies only")
        with self._lock:  # the intersection keeps a cursor over the study's trials
            space = self._search_space.calculate(study)
        return {name: d for name, d in space.items() if not d.single()}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: Dict[str, BaseDistribution]) -> Dict[str, Any]:
        if not search_space:
            return {}
        with self._lock:
            self._ensure_session(study, search_space)
            reply = self._ktune.request({"op": "ask"})
            if "error" in reply:
                # An exhausted grid, or an algorithm waiting for pending
                # trials: Optuna samples these parameters independently.
                optuna.logging.get_logger(__name__).info("ktune %s: %s", self._algorithm, reply["error"])
                return {}
            asked = reply["params"]
            self._asked[trial.number] = (self._generation, asked)
        return {name: _from_ktune(self._space[name], value) for name, value in asked.items()}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Optional[Sequence[float]]) -> None:
        with self._lock:
            generation, asked = self._asked.pop(trial.number, (None, None))
            if self._space_key is None:
                return
            told = self._ktune_params(trial)
            current = generation == self._generation
            tell = _tell_message(trial, state, values)
            if current and asked is not None and told == asked:
                self._request({"op": "tell", "params": asked, **tell})
                return
            if current and asked is not None:
                self._request({"op": "tell", "params": asked, "state": "killed"})
            if told is not None:
                self._request({"op": "tell", "params": told, "external": True, **tell})

    # -- the session ----------------------------------------------------

    def _request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        reply = self._ktune.request(message)
        if "error" in reply:
            raise KtuneError(f"ktune ask-tell refused {message.get('op')}: {reply['error']}")
        return reply

    def _ensure_session(self, study: Study, search_space: Dict[str, BaseDistribution]) -> None:
        key = (study.direction, tuple(sorted((n, repr(d)) for n, d in search_space.items())))
        if key == self._space_key:
            return
        goal = "maximize" if study.direction == StudyDirection.MAXIMIZE else "minimize"
        space = [_to_ktune_space(name, d) for name, d in sorted(search_space.items())]
        self._request({"op": "init", "seed": self._seed, "goal": goal, "space": space})
        self._space_key = key
        self._space = dict(search_space)
        self._generation += 1
        for past in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
            params = self._ktune_params(past)
            if params is not None:
                tell = _tell_message(past, past.state, past.values)
                self._request({"op": "tell", "params": params, "external": True, **tell})

    def _ktune_params(self, trial: FrozenTrial) -> Optional[Dict[str, Any]]:
        """The trial's parameters in the session's space, or ``None`` when
        it lacks one or used another distribution for it."""
        out: Dict[str, Any] = {}
        for name, dist in self._space.items():
            if name not in trial.params or trial.distributions.get(name) != dist:
                return None
            out[name] = _to_ktune_value(dist, trial.params[name])
        return out


def _tell_message(trial: FrozenTrial, state: TrialState, values: Optional[Sequence[float]]) -> Dict[str, Any]:
    if state == TrialState.COMPLETE and values:
        return {"value": float(values[0])}
    if state == TrialState.PRUNED:
        steps = trial.intermediate_values
        last = steps[max(steps)] if steps else None
        return {"value": last, "state": "pruned"}
    return {"value": None, "state": "failed"}


def _to_ktune_space(name: str, d: BaseDistribution) -> Dict[str, Any]:
    if isinstance(d, FloatDistribution):
        entry: Dict[str, Any] = {"name": name, "type": "double", "min": d.low, "max": d.high, "log": d.log}
        if d.step is not None:
            entry["step"] = d.step
        return entry
    if isinstance(d, IntDistribution):
        entry = {"name": name, "type": "int", "min": d.low, "max": d.high, "log": d.log}
        if d.step != 1:
            entry["step"] = d.step
        return entry
    if isinstance(d, CategoricalDistribution):
        return {"name": name, "type": "categorical", "choices": [str(i) for i in range(len(d.choices))]}
    raise ValueError(f"search space: KtuneSampler cannot sample {name!r} from {d!r}")


def _to_ktune_value(d: BaseDistribution, value: Any) -> Any:
    if isinstance(d, CategoricalDistribution):
        return str(int(d.to_internal_repr(value)))
    if isinstance(d, IntDistribution):
        return int(value)
    return float(value)


def _from_ktune(d: BaseDistribution, value: Any) -> Any:
    if isinstance(d, CategoricalDistribution):
        return d.to_external_repr(int(value))
    if isinstance(d, IntDistribution):
        return int(value)
    return float(value)
