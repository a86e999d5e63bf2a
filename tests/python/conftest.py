"""The Katib Python SDK suite against ktune: its fixtures, shared with
tests/python-kubeflow/, live in ktune_sdk_fixtures.py (see there). The
names the tests import from here are re-exported."""

from ktune_sdk_fixtures import (  # noqa: F401  (fixtures and hooks pytest finds here)
    HERE,
    NAMESPACE,
    REPO,
    Controller,
    FakeCluster,
    controller_args,
    fake_apiserver_args,
    fake_cluster,
    katib,
    katib_mode,
    namespace,
    pod_workdir,
    pytest_runtest_makereport,
    wait_until,
)
