"""The fixtures of the Python SDK suites: a fake Kubernetes API server
(its executor runs pods as local processes) and `ktune controller
--api-group kubeflow.org` with Katib's gRPC DBManager, driven through the
real SDK packages from PyPI.

Shared by two suites, each of whose conftest.py imports what it uses from
here: tests/python/ (the Katib SDK, `kubeflow-katib`) and
tests/python-kubeflow/ (the Kubeflow SDK, `kubeflow`). A suite changes
where its objects live and where pods run by overriding the `namespace`
and `pod_workdir` fixtures.

Builds nothing: `scripts/test-python` builds the binaries and passes them
as `KTUNE_BIN` and `KTUNE_FAKE_APISERVER` (default: the debug builds under
`$CARGO_TARGET_DIR` or `target/`). Run it from the suite's venv
(`scripts/sdk-venv katib|kubeflow`); trial pods find that venv's `python`
first on their PATH, so their scripts import the SDK.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# Every test's objects live here (the Katib suite's; see the `namespace`
# fixture).
NAMESPACE = "katib-sdk"


def _binary(variable: str, relative: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / relative


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check, timeout: float = 60.0, every: float = 0.2):
    """Polls `check()` until it returns something truthy, which it returns."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10.0):
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The servers stay in pytest's process group: `timeout` in
# scripts/test-python signals the whole group, so a run cut short leaves
# nothing behind.

# Logs shown under a failing test (see pytest_runtest_makereport).
_LOGS: dict[str, Path] = {}


@dataclass
class FakeCluster:
    url: str
    kubeconfig: Path
    dir: Path

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["kubectl", *args, "--cache-dir", str(self.dir / "kube-cache")],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            timeout=60,
            check=False,
        )

    def apply(self, manifest: str):
        out = self.kubectl("apply", "-f", "-", stdin=manifest)
        assert out.returncode == 0, out.stderr

    def api_client(self):
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)


@pytest.fixture(scope="session")
def namespace() -> str:
    """The namespace the suite's objects live in (created by `fake_cluster`)."""
    return NAMESPACE


@pytest.fixture(scope="session")
def pod_workdir() -> Path:
    """Where the fake node runs pods' processes: the repository root, where
    the Katib examples' stand-ins are found."""
    return REPO


@pytest.fixture(scope="session")
def fake_apiserver_args() -> list[str]:
    """More arguments for the fake API server (see examples/fake-apiserver.rs)."""
    return []


@pytest.fixture(scope="session")
def controller_args() -> list[str]:
    """More arguments for `ktune controller` (a suite may install what they
    need first, e.g. a CRD)."""
    return []


@pytest.fixture(scope="session")
def fake_cluster(
    tmp_path_factory, namespace: str, pod_workdir: Path, fake_apiserver_args: list[str]
) -> FakeCluster:
    """The fake API server with the workload CRDs (PyTorchJob, TrainJob …)
    and its executor; pods see the venv's python first and the pod-site
    shim (see pod-site/sitecustomize.py)."""
    binary = _binary("KTUNE_FAKE_APISERVER", "examples/fake-apiserver")
    assert binary.exists(), f"{binary} missing: build it (scripts/test-python does)"
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH")
    folder = tmp_path_factory.mktemp("fake-cluster")
    kubeconfig = folder / "kubeconfig"
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "PYTHONPATH": str(HERE / "pod-site"),
        "KTUNE_TEST_POD_NAMESPACE": namespace,
        "PYTHONUNBUFFERED": "1",
        "RUST_LOG": os.environ.get("FAKE_LOG", "warn"),
    }
    log = folder / "fake-apiserver.log"
    _LOGS["fake API server"] = log
    with open(log, "w") as err:
        process = subprocess.Popen(
            [str(binary), "--port", "0", "--workload-crds", "--workdir", str(pod_workdir),
             "--kubeconfig", str(kubeconfig), *fake_apiserver_args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
    first = process.stdout.readline() if process.stdout else ""
    match = re.search(r"http://127\.0\.0\.1:\d+", first)
    if not match:
        _stop(process)
        pytest.fail(f"the fake API server did not start: {first!r}\n{_tail(log)}")
    cluster = FakeCluster(url=match.group(0), kubeconfig=kubeconfig, dir=folder)
    from kubernetes import client

    client.CoreV1Api(cluster.api_client()).create_namespace(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    yield cluster
    # SIGINT: the server's way out; its executor kills the pods' processes.
    _stop(process, signal.SIGINT)


@dataclass
class Controller:
    # Katib's DBManager gRPC endpoint (`HOST:PORT`); None when this ktune
    # build has no `--db-manager-listen` (the tests that need it skip).
    db_manager: str | None
    log: Path

    def need_db_manager(self) -> str:
        if self.db_manager is None:
            pytest.skip("this ktune has no --db-manager-listen (Katib's DBManager gRPC API)")
        return self.db_manager


@pytest.fixture(scope="session")
def katib_mode(fake_cluster: FakeCluster, controller_args: list[str], tmp_path_factory) -> Controller:
    """ktune's CRDs for kubeflow.org and `ktune controller` in Katib mode
    with the DBManager gRPC endpoint (trial pods' host address admitted)."""
    ktune = _binary("KTUNE_BIN", "ktune")
    assert ktune.exists(), f"{ktune} missing: build it (scripts/test-python does)"
    crds = subprocess.run(
        [str(ktune), "crds", "--api-group", "kubeflow.org"],
        capture_output=True, text=True, check=False,
    )
    assert crds.returncode == 0, f"ktune crds --api-group kubeflow.org: {crds.stderr}"
    fake_cluster.apply(crds.stdout)
    folder = tmp_path_factory.mktemp("controller")
    port, push_port = free_port(), free_port()
    help_text = subprocess.run(
        [str(ktune), "controller", "--help"], capture_output=True, text=True, check=False
    ).stdout
    grpc = "--db-manager-listen" in help_text
    db_manager = (
        # trial-hosts: the trial pods' hostIP, 127.0.0.1 on the fake node.
        ["--db-manager-listen", f"127.0.0.1:{port}", "--db-manager-callers", "trial-hosts"]
        if grpc
        else []
    )
    log = folder / "controller.log"
    _LOGS["ktune controller"] = log
    with open(log, "w") as err:
        process = subprocess.Popen(
            [str(ktune), "controller", "--api-group", "kubeflow.org", *db_manager,
             # The DBManager stores through the Push collector's endpoint.
             "--push-listen", f"127.0.0.1:{push_port}",
             "--tick-ms", "100", "--listen", "off", "--db", f"sqlite:{folder / 'controller.db'}",
             *controller_args],
            stdout=err,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(fake_cluster.kubeconfig),
                 "KTUNE_LOG": os.environ.get("KTUNE_TEST_LOG", "info")},
        )

    def listening():
        assert process.poll() is None, f"ktune controller exited:\n{_tail(log)}"
        try:
            socket.create_connection(("127.0.0.1", port if grpc else push_port), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_until("the controller's endpoints", listening, timeout=60)
    yield Controller(db_manager=f"127.0.0.1:{port}" if grpc else None, log=log)
    _stop(process)


@pytest.fixture(scope="session")
def katib(katib_mode: Controller, fake_cluster: FakeCluster, namespace: str):
    """The real Katib SDK's client, on the fake cluster's kubeconfig."""
    from kubeflow.katib import KatibClient

    return KatibClient(config_file=str(fake_cluster.kubeconfig), namespace=namespace)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name, path in _LOGS.items():
            report.sections.append((f"{name} (last lines)", _tail(path)))
