"""The Kubeflow SDK (`kubeflow` from PyPI: OptimizerClient, and
kubeflow.trainer's update_trainjob_status) against ktune in Katib mode.

The cluster is the Katib suite's: the fake API server (standing in for
Kubernetes, JobSet and Kubeflow Trainer, its TrainJobStatus gate on) and
`ktune controller --api-group kubeflow.org`, from the fixtures in
tests/python/ktune_sdk_fixtures.py, imported here rather than copied. What
this suite changes: its namespace; where pods run (a temporary folder, each
pod in a folder of its own below it, as each has its own filesystem on a
cluster: the SDK's trainer writes the training function's source file into
its working directory, and parallel trials would overwrite each other's);
`runtime` installs runtime.yaml (the ClusterTrainingRuntime that trials
name, and Trainer's public ConfigMap); and the controller runs with
`--optimization-jobs` (Trainer's OptimizationJob CRD installed first).

Fixtures are session-scoped and nothing here is autouse: a test file that
requests none of them (test_trainer_progress_local.py) starts nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "python"))

from ktune_sdk_fixtures import (  # noqa: E402,F401  (fixtures and hooks pytest finds here)
    Controller,
    _binary,
    FakeCluster,
    fake_cluster,
    katib_mode,
    pytest_runtest_makereport,
    wait_until,
)

NAMESPACE = "kubeflow-sdk"


@pytest.fixture(scope="session")
def namespace() -> str:
    return NAMESPACE


@pytest.fixture(scope="session")
def pod_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pods")


@pytest.fixture(scope="session")
def fake_apiserver_args() -> list[str]:
    # Each pod in a folder of its own (as on a cluster): parallel trials'
    # trainers each write `<test file>.py` to run it.
    return ["--workdir-per-pod"]


@pytest.fixture(scope="session")
def controller_args(fake_cluster: FakeCluster) -> list[str]:
    """The controller also reconciles Trainer's OptimizationJobs, whose CRD
    (`ktune crds --optimization-job`) is installed first."""
    ktune = _binary("KTUNE_BIN", "ktune")
    crd = subprocess.run(
        [str(ktune), "crds", "--optimization-job"], capture_output=True, text=True, check=False
    )
    assert crd.returncode == 0, f"ktune crds --optimization-job: {crd.stderr}"
    fake_cluster.apply(crd.stdout)
    return ["--optimization-jobs"]


@pytest.fixture(scope="session")
def runtime(fake_cluster: FakeCluster) -> str:
    """The ClusterTrainingRuntime `torch-distributed` (and Trainer's public
    ConfigMap); its name."""
    fake_cluster.apply((HERE / "runtime.yaml").read_text())
    return "torch-distributed"


@pytest.fixture(scope="session")
def optimizer(katib_mode: Controller, fake_cluster: FakeCluster, runtime: str):
    """The real SDK's OptimizerClient, on the fake cluster's kubeconfig."""
    from kubeflow.optimizer import KubernetesBackendConfig, OptimizerClient

    return OptimizerClient(
        KubernetesBackendConfig(namespace=NAMESPACE, config_file=str(fake_cluster.kubeconfig))
    )
