"""`KatibClient.create_experiment` of Katib's own example Experiments
(../shared/katib-examples, verbatim from kubeflow/katib) against ktune in
Katib mode, each read as YAML into a dict and changed only where a local
run needs it:

- the namespace is the suite's, budgets are shrunk (2 trials, 2 in
  parallel) to keep the suite quick;
- `/opt/pytorch-mnist/mnist.py`, the script inside Katib's example image,
  becomes `stand-ins/pytorch-mnist.py`, which takes the same arguments and
  logs the same metric lines without torch (the fake cluster ignores
  images and runs containers as local processes).

Examples that cannot run locally are listed in SKIPPED with the reason.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from conftest import HERE, NAMESPACE, REPO, wait_until

EXAMPLES = Path(os.environ.get("KATIB_EXAMPLES", REPO.parent / "shared" / "katib-examples"))
STAND_IN = str(HERE / "stand-ins" / "pytorch-mnist.py")
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"

# Example → the trial's workload kind. All log their metrics to stdout.
RUN = {
    "hp-tuning/random.yaml": "Job",
    "hp-tuning/tpe.yaml": "Job",
    "hp-tuning/multivariate-tpe.yaml": "Job",
    "hp-tuning/cma-es.yaml": "Job",
    "hp-tuning/sobol.yaml": "Job",
    "hp-tuning/bayesian-optimization.yaml": "Job",
    "hp-tuning/grid.yaml": "Job",
    "hp-tuning/hyperband.yaml": "Job",
    "hp-tuning/hyperopt-distribution.yaml": "Job",
    "hp-tuning/optuna-distribution.yaml": "Job",
    "early-stopping/median-stop.yaml": "Job",
    "metrics-collector/metrics-collection-strategy.yaml": "Job",
    "trial-template/trial-metadata-substitution.yaml": "Job",
    "kubeflow-training-operator/pytorchjob-mnist.yaml": "PyTorchJob",
    "kubeflow-trainer/trainjob-pytorch.yaml": "TrainJob",
    "argo/argo-workflow.yaml": "Workflow",
}

# Run by test_edit_experiment_budget_resumes_a_long_running_experiment.
LONG_RUNNING = "resume-experiment/long-running-resume.yaml"

# Example → why this suite does not run it.
SKIPPED = {
    "hp-tuning/simple-pbt.yaml": "PBT: ktune refuses the algorithm (not supported yet)",
    "nas/darts-cpu.yaml": "DARTS runs inside its trial image (PyTorch on CIFAR-10, a download); ktune's suggestions are tested in tests/katib_examples.rs",
    "nas/darts-gpu.yaml": "DARTS (as above), on a GPU",
    "nas/enas-cpu.yaml": "ENAS trains its architectures in its trial image (Keras on CIFAR-10, a download); ktune's suggestions are tested in tests/cli.rs",
    "nas/enas-gpu.yaml": "ENAS (as above), on a GPU",
    "tekton/pipeline-run.yaml": "upstream defect: refused by Katib's webhook too (undeclared trial parameter)",
    "trial-template/trial-configmap-source.yaml": "upstream defect: refused by Katib's webhook too (undeclared trial parameter)",
    "metrics-collector/file-metrics-collector.yaml": "File collector: its sidecar is an image (ktune collect-file) reading a volume",
    "metrics-collector/file-metrics-collector-with-json-format.yaml": "File collector (as above)",
    "early-stopping/median-stop-with-json-format.yaml": "File collector (as above)",
    "metrics-collector/custom-metrics-collector.yaml": "Custom collector: its own collector image",
    "resume-experiment/from-volume-resume.yaml": "FromVolume resume needs a PersistentVolumeClaim bound to a volume",
    "kubeflow-training-operator/tfjob-mnist-with-summaries.yaml": "TensorFlow script inside its image (no stand-in)",
    "kubeflow-training-operator/mpijob-horovod.yaml": "mpirun and Horovod inside its image",
    "kubeflow-training-operator/xgboostjob-lightgbm.yaml": "LightGBM entrypoint inside its image",
    "fpga/xgboost-example.yaml": "FPGA XGBoost script inside its image",
}


def local_experiment(file: str, name: str, max_trials: int = 2, parallel: int = 2) -> dict:
    """The Experiment of a Katib example, ready for this suite's cluster."""
    documents = list(yaml.safe_load_all((EXAMPLES / file).read_text()))
    experiment = next(d for d in documents if d and d.get("kind") == "Experiment")
    experiment = copy.deepcopy(experiment)
    experiment["metadata"]["name"] = name
    experiment["metadata"]["namespace"] = NAMESPACE
    spec = experiment["spec"]
    spec["maxTrialCount"] = min(spec.get("maxTrialCount", max_trials), max_trials)
    spec["parallelTrialCount"] = min(spec.get("parallelTrialCount", parallel), parallel, spec["maxTrialCount"])
    if "maxFailedTrialCount" in spec:
        spec["maxFailedTrialCount"] = min(spec["maxFailedTrialCount"], spec["maxTrialCount"])
    return _replace_strings(experiment, "/opt/pytorch-mnist/mnist.py", STAND_IN)


def _replace_strings(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_strings(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _replace_strings(v, old, new) for k, v in value.items()}
    return value


def test_every_example_is_either_run_or_skipped_for_a_reason():
    if not EXAMPLES.is_dir():
        pytest.skip(f"no Katib examples at {EXAMPLES}")
    files = {
        str(p.relative_to(EXAMPLES))
        for p in EXAMPLES.rglob("*.yaml")
        if not str(p.relative_to(EXAMPLES)).startswith("_extra")
    }
    listed = set(RUN) | set(SKIPPED) | {LONG_RUNNING}
    assert files == listed, files ^ listed
    assert not set(RUN) & set(SKIPPED)


def example_name(file: str) -> str:
    return "ex-" + Path(file).stem.replace("_", "-")


@pytest.fixture(scope="module")
def launched(katib):
    """Creates every runnable example at once (they run side by side, so
    the module takes about as long as the slowest), returning each one's
    Experiment dict or the error its creation raised."""
    if not EXAMPLES.is_dir():
        pytest.skip(f"no Katib examples at {EXAMPLES}")
    out = {}
    for file in [*RUN, LONG_RUNNING]:
        experiment = local_experiment(file, example_name(file))
        try:
            katib.create_experiment(experiment, namespace=NAMESPACE)
            out[file] = experiment
        except Exception as e:  # reported by the example's own test
            out[file] = e
    return out


def created(launched, file) -> dict:
    experiment = launched[file]
    if isinstance(experiment, Exception):
        raise experiment
    return experiment


@pytest.mark.parametrize("file", list(RUN))
def test_create_experiment_of_a_katib_example_runs_to_succeeded(katib, launched, file):
    experiment = created(launched, file)
    name = experiment["metadata"]["name"]
    done = katib.wait_for_experiment_condition(
        name, NAMESPACE, timeout=150, polling_interval=1
    )
    assert katib.is_experiment_succeeded(name, NAMESPACE)
    assert katib.is_experiment_created(name, NAMESPACE)
    assert not katib.is_experiment_running(name, NAMESPACE)
    assert not katib.is_experiment_failed(name, NAMESPACE)
    _assert_webhook_defaults(done.spec, RUN[file])
    status = done.status
    budget = experiment["spec"]["maxTrialCount"]
    assert status.trials == budget, status
    assert (status.trials_succeeded or 0) + (status.trials_early_stopped or 0) == budget, status
    assert not status.trials_failed, status
    assert status.start_time and status.completion_time, status

    objective = experiment["spec"]["objective"]["objectiveMetricName"]
    optimal = katib.get_optimal_hyperparameters(name, NAMESPACE)
    assert optimal is not None and optimal.best_trial_name, status
    assert objective in {m.name for m in optimal.observation.metrics}
    parameters = {p["name"] for p in experiment["spec"]["parameters"]}
    assert {a.name for a in optimal.parameter_assignments} == parameters

    trials = katib.list_trials(name, NAMESPACE)
    assert len(trials) == budget
    assert all(t.metadata.labels[EXPERIMENT_LABEL] == name for t in trials)
    assert optimal.best_trial_name in {t.metadata.name for t in trials}

    details = katib.get_success_trial_details(name, NAMESPACE)
    assert len(details) == status.trials_succeeded
    for d in details:
        assert {a.name for a in d["parameter_assignments"]} == parameters
        metric = next(m for m in d["metrics"] if m.name == objective)
        for value in (metric.min, metric.max, metric.latest):
            float(value)  # strings holding numbers, as Katib writes them

    katib.delete_experiment(name, NAMESPACE)
    wait_until(
        f"{name} and its trials to go",
        lambda: not katib.list_trials(name, NAMESPACE) and _gone(katib, name),
        timeout=30,
    )


def _assert_webhook_defaults(spec, kind: str):
    """What Katib's mutating webhook writes into the stored spec, which
    readers of the Experiment (the SDKs, the UI) find there."""
    assert spec.parallel_trial_count and spec.max_failed_trial_count is not None
    assert spec.resume_policy in ("Never", "LongRunning", "FromVolume"), spec.resume_policy
    assert spec.metrics_collector_spec.collector.kind == "StdOut"
    assert spec.objective.metric_strategies, spec.objective
    for p in spec.parameters:
        if p.parameter_type in ("double", "int"):
            assert p.feasible_space.distribution, p
    template = spec.trial_template
    assert template.success_condition and template.failure_condition, template
    if kind == "PyTorchJob":
        assert template.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}


def _gone(katib, name: str) -> bool:
    try:
        katib.get_experiment(name, NAMESPACE)
    except RuntimeError:
        return True
    return False


def test_edit_experiment_budget_resumes_a_long_running_experiment(katib, launched):
    """Katib's resume example (resumePolicy LongRunning): finished with 2
    trials, its maxTrialCount raised to 3 through the SDK, it restarts and
    succeeds again with 3."""
    experiment = created(launched, LONG_RUNNING)
    name = experiment["metadata"]["name"]
    assert experiment["spec"]["resumePolicy"] == "LongRunning"
    first = katib.wait_for_experiment_condition(name, NAMESPACE, timeout=150, polling_interval=1)
    assert first.status.trials == 2

    katib.edit_experiment_budget(name, NAMESPACE, max_trial_count=3)
    assert katib.get_experiment(name, NAMESPACE).spec.max_trial_count == 3
    seen = set()

    def resumed():
        experiment = katib.get_experiment(name, NAMESPACE)
        seen.update(
            c.type for c in (experiment.status.conditions or []) if c.status == "True"
        )
        if katib.is_experiment_restarting(name, NAMESPACE, experiment):
            seen.add("Restarting (seen)")
        return (
            experiment.status.trials == 3
            and katib.is_experiment_succeeded(name, NAMESPACE, experiment)
            and experiment
        )

    again = wait_until("the resumed experiment to succeed with 3 trials", resumed, timeout=150, every=0.1)
    assert again.status.trials_succeeded == 3, again.status
    assert len(katib.list_trials(name, NAMESPACE)) == 3
    conditions = {c.type for c in again.status.conditions}
    assert "Restarting" in conditions or "Restarting (seen)" in seen, again.status.conditions
    katib.delete_experiment(name, NAMESPACE)
