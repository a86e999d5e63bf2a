"""KtuneSampler against the parts of Optuna's own sampler test
expectations that apply (optuna/tests/samplers_tests/test_samplers.py):
suggestions inside their distributions, reproducible with a seed,
enqueue_trial, pruning, failures, n_jobs=2, a parameter that appears
later, and arguments named in errors."""

from __future__ import annotations

import math

import pytest

optuna = pytest.importorskip("optuna")

from ktune.optuna import KtuneSampler  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
ALGORITHMS = ["random", "tpe", "multivariate-tpe", "cmaes", "bayesianoptimization"]


def mixed(trial):
    x = trial.suggest_float("x", -5.0, 5.0)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    q = trial.suggest_float("q", 0.0, 1.0, step=0.25)
    n = trial.suggest_int("n", 1, 9)
    m = trial.suggest_int("m", 2, 64, log=True)
    s = trial.suggest_int("s", 0, 10, step=5)
    c = trial.suggest_categorical("c", [None, 1, 2.5, "a", True])
    for name, value, ok in [("x", x, -5 <= x <= 5), ("lr", lr, 1e-5 <= lr <= 1e-1), ("q", q, q in (0, .25, .5, .75, 1)),
                            ("n", n, isinstance(n, int) and 1 <= n <= 9), ("m", m, isinstance(m, int) and 2 <= m <= 64),
                            ("s", s, s in (0, 5, 10)), ("c", c, c in (None, 1, 2.5, "a", True))]:
        assert ok, (name, value)
    return x * x + math.log(lr) ** 2 / 100 + q + n + m / 64 + s + (0 if c == "a" else 1)


def sampled(study):
    return [t.params for t in study.trials]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_suggestions_stay_inside_their_distributions(algorithm):
    sampler = KtuneSampler(algorithm, seed=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(mixed, n_trials=15)
    assert len(study.trials) == 15 and all(t.state.name == "COMPLETE" for t in study.trials)
    # After the first trial, ktune chose the relative parameters.
    assert len(sampler._asked) == 0 and sampler._space_key is not None


@pytest.mark.parametrize("algorithm", ["tpe", "cmaes", "bayesianoptimization"])
def test_the_same_seed_gives_the_same_study_and_another_does_not(algorithm):
    def run(seed):
        study = optuna.create_study(sampler=KtuneSampler(algorithm, seed=seed))
        study.optimize(lambda t: (t.suggest_float("x", -3, 3) - 1) ** 2 + t.suggest_int("k", 0, 4), n_trials=12)
        return sampled(study)

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_a_better_point_is_found_than_random_on_a_smooth_function():
    def bowl(t):
        return sum((t.suggest_float(f"x{i}", -5, 5) - 1) ** 2 for i in range(3))

    best = {}
    for algorithm in ("random", "bayesianoptimization"):
        values = []
        for seed in range(3):
            study = optuna.create_study(sampler=KtuneSampler(algorithm, seed=seed))
            study.optimize(bowl, n_trials=25)
            values.append(study.best_value)
        best[algorithm] = sorted(values)[1]
    assert best["bayesianoptimization"] < best["random"], best


def test_enqueued_trials_are_evaluated_as_given_and_join_the_history():
    sampler = KtuneSampler("tpe", seed=0)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"x": 0.5, "y": 2})
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("y", 0, 3), n_trials=3)
    study.enqueue_trial({"x": 0.25, "y": 1})
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("y", 0, 3), n_trials=3)
    assert study.trials[0].params == {"x": 0.5, "y": 2}
    assert study.trials[3].params == {"x": 0.25, "y": 1}
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert not sampler._asked


def test_pruned_and_failed_trials_are_told_as_such():
    sampler = KtuneSampler("tpe", seed=0)
    study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.MedianPruner(n_startup_trials=2))

    def objective(trial):
        x = trial.suggest_float("x", -2, 2)
        if trial.number % 5 == 4:
            raise ValueError("boom")
        for step in range(5):
            trial.report(x * x + 1.0 / (step + 1), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x * x

    study.optimize(objective, n_trials=20, catch=(ValueError,))
    states = {t.state.name for t in study.trials}
    assert {"COMPLETE", "FAIL"} <= states, states
    assert len(study.trials) == 20
    # A trial pruned without any report is told pruned with no value.
    study.optimize(lambda t: (t.suggest_float("x", -2, 2), (_ for _ in ()).throw(optuna.TrialPruned()))[0],
                   n_trials=2)
    assert study.trials[-1].state.name == "PRUNED"


@pytest.mark.parametrize("algorithm", ["tpe", "bayesianoptimization"])
def test_two_jobs_share_one_sampler(algorithm):
    sampler = KtuneSampler(algorithm, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -3, 3)) ** 2 + t.suggest_int("k", 0, 3), n_trials=24, n_jobs=2)
    assert len(study.trials) == 24 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert not sampler._asked


def test_a_parameter_that_appears_later_is_sampled_independently_then_joins():
    sampler = KtuneSampler("tpe", seed=0)
    study = optuna.create_study(sampler=sampler, direction="maximize")

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number >= 5:
            return x + trial.suggest_float("extra", 0, 1)
        return x

    study.optimize(objective, n_trials=12)
    assert all(0 <= t.params.get("extra", 0) <= 1 for t in study.trials)
    # The intersection space stays {x}: trials without `extra` exist.
    assert [name for name, _ in sampler._space_key[1]] == ["x"]


@pytest.mark.parametrize("kwargs, argument", [
    ({"algorithm": "bogus"}, "algorithm"),
    ({"algorithm": 3}, "algorithm"),
    ({"algorithm": "tpe", "seed": -1}, "seed"),
    ({"algorithm": "tpe", "seed": "0"}, "seed"),
    ({"algorithm": "tpe", "settings": {"no_such_setting": 1}}, "settings"),
    ({"algorithm": "tpe", "settings": [1]}, "settings"),
])
def test_bad_arguments_name_the_argument(kwargs, argument):
    with pytest.raises(ValueError) as info:
        KtuneSampler(**kwargs)
    assert str(info.value).startswith(f"{argument}:"), info.value


def test_multi_objective_studies_are_refused_naming_the_study():
    study = optuna.create_study(sampler=KtuneSampler("tpe", seed=0), directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="^study:"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=3)
