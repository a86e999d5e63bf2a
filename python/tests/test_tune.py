"""ktune.tune(): real local sweeps through the wheel's ktune binary."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import ktune
from ktune import search

HERE = Path(__file__).resolve().parent
SPACE = {"x": search.double(-1.0, 1.0), "kind": search.categorical(["good", "bad"])}


def returning_objective(params):
    import math

    return math.fabs(params["x"] - 0.3) + (0.0 if params["kind"] == "good" else 1.0)


def test_a_real_sweep_returns_the_best_trial(workdir, capsys):
    result = ktune.tune(returning_objective, SPACE, name="sweep", objective_metric_name="loss",
                        objective_type="minimize", algorithm_name="random",
                        algorithm_settings={"random_state": 3}, max_trial_count=6, parallel_trial_count=2)
    assert result.experiment_name == "sweep" and result.state == "Succeeded"
    assert len(result.trials) == 6 and all(t["state"] == "Succeeded" for t in result.trials)
    best = min(result.trials, key=lambda t: t["objective"])
    assert result.best_trial == best["name"]
    assert result.best_value == pytest.approx(best["objective"])
    assert result.best_parameters == best["parameters"]
    assert isinstance(result.best_parameters["x"], float) and result.best_parameters["kind"] in ("good", "bad")
    assert result.best_value == pytest.approx(returning_objective(result.best_parameters))
    out = capsys.readouterr().out
    assert out.count("started:") == 6 and "[sweep] Succeeded: best" in out
    # What `ktune ui`/`ktune trials` read: the default store in this folder.
    listed = subprocess.run([ktune.ktune_binary(), "trials", "sweep"], capture_output=True, text=True, check=True)
    assert best["name"] in listed.stdout


def test_a_module_path_objective_is_imported_by_the_trials(workdir):
    # The caller's working folder is on the trials' sys.path.
    shutil.copy(HERE / "objectives.py", workdir / "objectives.py")
    events = []
    result = ktune.tune("objectives:quadratic", SPACE, name="by-module", objective_metric_name="loss",
                        objective_type="minimize", max_trial_count=3, progress=events.append)
    assert [t["state"] for t in result.trials] == ["Succeeded"] * 3, result.trials
    assert events[-1]["event"] == "summary"
    assert {e["event"] for e in events} >= {"started", "finished", "summary"}


def failing_objective(params):
    raise RuntimeError("diverged")


def test_failing_trials_fail_the_experiment_with_their_reason(workdir):
    result = ktune.tune(failing_objective, SPACE, name="failing", max_trial_count=3,
                        max_failed_trial_count=1, progress=False)
    assert result.state == "Failed" and result.best_parameters is None
    assert all(t["state"] == "Failed" for t in result.trials)


def test_the_experiment_is_katib_yaml_that_ktune_validates(workdir):
    experiment = ktune.build_experiment(returning_objective, SPACE, name="valid", objective_metric_name="loss",
                                        early_stopping={"algorithm_name": "medianstop",
                                                        "algorithm_settings": {"min_trials_required": 2}})
    assert experiment["apiVersion"] == "kubeflow.org/v1beta1"
    assert experiment["spec"]["metricsCollectorSpec"] == {"collector": {"kind": "Push"}}
    path = workdir / "e.yaml"
    import json
    path.write_text(json.dumps(experiment))
    subprocess.run([ktune.ktune_binary(), "validate", str(path)], check=True, capture_output=True)


def test_closures_lambdas_and_methods_are_refused_naming_objective(workdir):
    offset = 0.3

    def closure(params):
        return params["x"] - offset

    def nested(params):
        return params["x"]

    class Model:
        def fit(self, params):
            return 0

    for bad, needle in [(closure, "closure"), (lambda p: 0, "lambda"), (nested, "inside another"),
                        (Model().fit, "plain function"), (print, "plain function"), ("no-colon", "module:function")]:
        with pytest.raises(ValueError) as info:
            ktune.build_experiment(bad, SPACE)
        assert str(info.value).startswith("objective:") and needle in str(info.value), info.value


@pytest.mark.parametrize("kwargs, argument", [
    ({"parameters": {}}, "parameters"),
    ({"parameters": {"x": (0, 1)}}, "parameters['x']"),
    ({"max_trial_count": 0}, "max_trial_count"),
    ({"parallel_trial_count": "2"}, "parallel_trial_count"),
    ({"max_failed_trial_count": -1}, "max_failed_trial_count"),
    ({"objective_type": "min"}, "objective_type"),
    ({"objective_metric_name": ""}, "objective_metric_name"),
    ({"name": "Bad_Name"}, "name"),
    ({"algorithm_settings": [1]}, "algorithm_settings"),
    ({"early_stopping": {"x": 1}}, "early_stopping"),
    ({"metrics_collector_config": {"x": 1}}, "metrics_collector_config"),
    ({"seed": -1}, "seed"),
    ({"namespace": "kubeflow"}, "namespace"),
    ({"progress": "yes"}, "progress"),
])
def test_bad_arguments_name_the_argument(workdir, kwargs, argument):
    args = {"objective": returning_objective, "parameters": SPACE, **kwargs}
    with pytest.raises((ValueError, TypeError)) as info:
        ktune.tune(**args)
    assert str(info.value).startswith(f"{argument}:"), info.value


def test_an_unknown_algorithm_is_ktunes_error(workdir):
    with pytest.raises(RuntimeError, match="bogus"):
        ktune.tune(returning_objective, SPACE, algorithm_name="bogus", progress=False)
