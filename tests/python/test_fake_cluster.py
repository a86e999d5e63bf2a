"""The fake API server's pods and Events through the Kubernetes Python
client (kubernetes==34.1.0, the one kubeflow-katib 0.19.0 works with),
which deserialises every response into typed models and refuses a
missing required field (a null container `image`, `imageID`, `ready`,
`restartCount` …). Needs only the fake server, not ktune.
"""

import time

import pytest
from kubernetes import client

from conftest import NAMESPACE

PLACEHOLDER = "fake.ktune.dev/none:latest"

# Slow enough to be listed while running, quick enough for the suite.
NAP = ["sh", "-c", "sleep 1.5"]

WORKLOADS = {
    "Job": (
        ("batch", "v1", "jobs"),
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "shapes-job"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "initContainers": [{"name": "init", "command": ["true"]}],
                        "containers": [{"name": "main", "command": NAP}],
                    }
                },
            },
        },
        "job-name=shapes-job",
    ),
    "PyTorchJob": (
        ("kubeflow.org", "v1", "pytorchjobs"),
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "metadata": {"name": "shapes-torch"},
            "spec": {
                "pytorchReplicaSpecs": {
                    replica: {
                        "replicas": 1,
                        "template": {"spec": {"containers": [
                            {"name": "pytorch", "image": "docker.io/pytorch/pytorch:2.4", "command": NAP}
                        ]}},
                    }
                    for replica in ("Master", "Worker")
                }
            },
        },
        "training.kubeflow.org/job-name=shapes-torch",
    ),
    # The shape that broke `CoreV1Api.list_namespaced_pod`: a TrainJob
    # whose trainer names no image (the runtime's would be used).
    "TrainJob": (
        ("trainer.kubeflow.org", "v1alpha1", "trainjobs"),
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "metadata": {"name": "shapes-trainjob"},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "trainer": {"numNodes": 2, "command": NAP},
            },
        },
        "jobset.sigs.k8s.io/jobset-name=shapes-trainjob",
    ),
}


def _pods_when(core, selector, phases_ok, what, timeout=30.0):
    """Lists the pods (typed: an incomplete status raises ValueError inside
    the call) until there are some and `phases_ok` holds for every phase."""
    deadline = time.monotonic() + timeout
    phases = []
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
        phases = [p.status.phase if p.status else None for p in pods]
        if pods and all(phases_ok(p) for p in phases):
            return pods
        time.sleep(0.1)
    raise AssertionError(f"{what}: pods never got there, phases {phases}")


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_list_namespaced_pod_deserialises_running_and_finished_pods(fake_cluster, kind):
    (group, version, plural), body, selector = WORKLOADS[kind]
    api = fake_cluster.api_client()
    core = client.CoreV1Api(api)
    if kind == "Job":
        client.BatchV1Api(api).create_namespaced_job(NAMESPACE, body)
    else:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            group, version, NAMESPACE, plural, body
        )
    running = _pods_when(core, selector, lambda p: p == "Running", f"{kind} running")
    done = _pods_when(core, selector, lambda p: p in ("Succeeded", "Failed"), f"{kind} ended")
    assert {p.status.phase for p in done} == {"Succeeded"}, [p.status for p in done]
    for pod in running + done:
        expected = {
            c.name: c.image for c in (pod.spec.containers + (pod.spec.init_containers or []))
        }
        assert all(expected.values()), expected
        if kind == "TrainJob":
            assert set(expected.values()) == {PLACEHOLDER}
        statuses = (pod.status.container_statuses or []) + (pod.status.init_container_statuses or [])
        assert statuses, pod.status
        for s in statuses:
            assert s.image == expected[s.name]
            assert s.image_id and s.ready is not None and s.restart_count == 0
    for pod in done:
        for s in pod.status.container_statuses:
            assert s.state.terminated.exit_code == 0, s
    if kind == "Job":
        init = running[0].status.init_container_statuses
        assert init and init[0].name == "init"


def test_list_namespaced_event_deserialises_events_of_both_apis(fake_cluster):
    """An Event written through events.k8s.io/v1 (as kube-rs' Recorder, and
    so ktune, writes them) and one through core/v1 are both listed by
    `CoreV1Api.list_namespaced_event` as typed V1Events."""
    api = fake_cluster.api_client()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    micro = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    regarding = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                 "name": "events-demo", "namespace": NAMESPACE}
    client.EventsV1Api(api).create_namespaced_event(NAMESPACE, {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "events-demo.new"},
        "eventTime": micro, "reportingController": "ktune", "reportingInstance": "ktune-0",
        "action": "Reconcile", "reason": "Created", "type": "Normal", "note": "new API",
        "regarding": regarding,
    })
    client.CoreV1Api(api).create_namespaced_event(NAMESPACE, {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "events-demo.core"},
        "involvedObject": regarding, "reason": "Created", "type": "Normal",
        "message": "core API", "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        "source": {"component": "ktune"},
    })
    events = client.CoreV1Api(api).list_namespaced_event(
        NAMESPACE, field_selector="involvedObject.name=events-demo"
    ).items
    by_message = {e.message: e for e in events}
    assert set(by_message) >= {"new API", "core API"}, by_message
    assert by_message["core API"].first_timestamp is not None
    assert by_message["new API"].involved_object.kind == "Experiment"
    assert by_message["new API"].last_timestamp is not None
