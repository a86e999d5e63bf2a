"""Kubeflow Trainer's OptimizationJob in a cluster: applied with the
Kubernetes client to the fake cluster (whose Trainer status server is on,
as Trainer's TrainJobStatus gate) and run by `ktune controller
--optimization-jobs`. The trainer reports with the Kubeflow SDK's own
`kubeflow.trainer.update_trainjob_status`, unchanged; ktune reads
`TrainJob.status.trainerStatus` and ends the job `Complete` with
`status.result` naming the best trial's TrainJob.
"""

from __future__ import annotations

import json

import yaml

from conftest import NAMESPACE, wait_until

# The loss is twice the learning rate: the smallest lr is the best.
TRAINER = (
    "import os\n"
    "from kubeflow.trainer import update_trainjob_status\n"
    "lr = float(os.environ['KUBEFLOW_TRAINER_OPT_lr'])\n"
    "assert update_trainjob_status(progress_percent=100, metrics={'loss': 2 * lr})\n"
)

JOB = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1",
    "kind": "OptimizationJob",
    "metadata": {"name": "opt-e2e", "namespace": NAMESPACE},
    "spec": {
        "objectives": [{"metric": "loss", "direction": "Minimize"}],
        "searchAlgorithm": {"grid": {}},
        "parameters": [{"name": "lr", "searchSpace": {"categorical": {"choices": ["0.3", "0.1", "0.2"]}}}],
        "numTrials": 3,
        "parallelTrials": 2,
        "trainJobTemplate": {
            "metadata": {"labels": {"team": "ml"}},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"command": ["python", "-c", TRAINER]},
            },
        },
    },
}


def _get(fake_cluster, *what: str) -> dict:
    out = fake_cluster.kubectl("get", *what, "-n", NAMESPACE, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_an_optimization_job_reports_through_trainer_and_completes_with_its_result(
    katib_mode, fake_cluster, runtime
):
    fake_cluster.apply(yaml.safe_dump(JOB))

    def complete():
        job = _get(fake_cluster, "optimizationjob", "opt-e2e")
        conditions = job.get("status", {}).get("conditions", [])
        assert not any(c["type"] == "Failed" for c in conditions), conditions
        return job if any(c["type"] == "Complete" for c in conditions) else None

    job = wait_until("the OptimizationJob to complete", complete, timeout=120)
    result = job["status"]["result"]
    assert result["parameters"] == [{"name": "lr", "value": "0.1"}]

    # The best trial is a TrainJob named as Trainer names it, labelled with
    # the job, carrying what its trainer reported.
    best = _get(fake_cluster, "trainjob", result["trainJobName"])
    assert result["trainJobName"].startswith("opt-e2e-trial-")
    assert best["metadata"]["labels"]["trainer.kubeflow.org/optimization-job"] == "opt-e2e"
    assert best["metadata"]["labels"]["team"] == "ml"
    metrics = best["status"]["trainerStatus"]["metrics"]
    assert {"name": "loss", "value": "0.2"} in metrics
    trainjobs = _get(fake_cluster, "trainjobs", "-l", "trainer.kubeflow.org/optimization-job=opt-e2e")
    assert len(trainjobs["items"]) == 3
