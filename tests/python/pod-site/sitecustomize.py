"""Imported by every Python process that the fake cluster runs as a trial
pod (the test suite puts this folder on the fake API server's PYTHONPATH;
pods inherit it): supplies the one file a kubelet mounts that
`kubeflow.katib.report_metrics` reads.

`report_metrics()` calls `utils.get_current_k8s_namespace()`, which opens
`/var/run/secrets/kubernetes.io/serviceaccount/namespace` (only to name
the trial in an error message). A local process has no such file, so the
call raises FileNotFoundError before any gRPC. Here, when the file does
not exist and `KTUNE_TEST_POD_NAMESPACE` is set, reading exactly that path
gives the namespace; every other path, and a machine that has the file,
are left alone. Nothing is written outside the test's folders, and the
test process itself (where `KatibClient` looks for the same folder to
decide whether it runs in a cluster) does not load this file.
"""
import builtins
import io
import os

_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_NAMESPACE = os.environ.get("KTUNE_TEST_POD_NAMESPACE")

if _NAMESPACE and not os.path.exists(_PATH):
    _open = builtins.open

    def _open_with_namespace(file, mode="r", *args, **kwargs):
        if file == _PATH and set(mode) <= {"r", "t"}:
            return io.StringIO(_NAMESPACE)
        return _open(file, mode, *args, **kwargs)

    builtins.open = _open_with_namespace
