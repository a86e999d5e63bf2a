"""``ktune.report(metrics, step=None)``: one call that reports a trial's
metrics wherever the script runs.

1. ``KTUNE_PUSH_URL`` set (a Push-collector trial of ``ktune run`` or the
   controller): an HTTP POST of one JSON report to ktune's push endpoint,
   with the trial's bearer token from ``KTUNE_PUSH_TOKEN``.
2. Else ``KATIB_TRIAL_NAME`` set and a DB manager to reach
   (``KTUNE_DB_MANAGER_ADDRESS``/``KATIB_DB_MANAGER_ADDRESS``, or inside a
   Kubernetes pod, Katib's default ``katib-db-manager.kubeflow:6789``):
   Katib's gRPC ``ReportObservationLog`` with the Katib SDK's stubs
   (the optional extra ``ktune[katib]``; a clear
   ``ImportError`` without it). ``ktune run`` sets ``KATIB_TRIAL_NAME`` for
   every trial, so a local StdOut trial, which has no DB manager, falls
   through to 3.
3. Otherwise: Katib TEXT lines on standard output (``loss=0.31``), which
   the StdOut collector reads and a person reads in plain ``python``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Mapping, Optional

PUSH_URL_ENV = "KTUNE_PUSH_URL"
PUSH_TOKEN_ENV = "KTUNE_PUSH_TOKEN"
TRIAL_NAME_ENV = "KATIB_TRIAL_NAME"
DB_MANAGER_ENVS = ("KTUNE_DB_MANAGER_ADDRESS", "KATIB_DB_MANAGER_ADDRESS")
KATIB_DB_MANAGER = "katib-db-manager.kubeflow:6789"

_last_step: Optional[int] = None


def report(metrics: Mapping[str, Any], step: Optional[int] = None, *, timeout: float = 120) -> str:
    """Reports ``metrics`` (name -> number) as one observation; returns how it
    was sent: ``"push"``, ``"grpc"`` or ``"stdout"``.

    ``step`` (an ``int`` >= 0, optional) is checked to grow: Katib's
    observation log has no step field and orders reports by time, so each
    call is one step, and a step lower than the previous one is a mistake
    caught here (``ValueError``) rather than a jumbled curve later.
    """
    values = _validate(metrics, step)
    if os.environ.get(PUSH_URL_ENV):
        _push(values, timeout)
        return "push"
    address = _db_manager_address()
    if os.environ.get(TRIAL_NAME_ENV) and address:
        _grpc(values, address, timeout)
        return "grpc"
    line = " ".join(f"{name}={_format(value)}" for name, value in values.items())
    print(line, flush=True)
    return "stdout"


def _validate(metrics: Mapping[str, Any], step: Optional[int]) -> Dict[str, float]:
    global _last_step
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics: expected a mapping of name -> number, got {type(metrics).__name__}")
    if not metrics:
        raise ValueError("metrics: nothing to report (empty mapping)")
    values: Dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name or any(c.isspace() or c == "=" for c in name):
            raise ValueError(f"metrics: {name!r} is not a metric name (non-empty, no spaces or '=')")
        if isinstance(value, bool):
            raise TypeError(f"metrics[{name!r}]: {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metrics[{name!r}]: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"metrics[{name!r}]: {value!r} is not finite")
        values[name] = number
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step: expected an int >= 0, got {step!r}")
        if _last_step is not None and step < _last_step:
            raise ValueError(f"step: {step} is lower than the previous report's step {_last_step}")
        _last_step = step
    return values


def _format(value: float) -> str:
    return repr(value)


def _db_manager_address() -> Optional[str]:
    for env in DB_MANAGER_ENVS:
        if os.environ.get(env):
            return os.environ[env]
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KATIB_DB_MANAGER
    return None


def _push(values: Dict[str, float], timeout: float) -> None:
    url = os.environ[PUSH_URL_ENV]
    token = os.environ.get(PUSH_TOKEN_ENV)
    if not token:
        raise RuntimeError(f"{PUSH_URL_ENV} is set but {PUSH_TOKEN_ENV} is not (both come from ktune)")
    body = dict(values)
    body["timestamp"] = time.time()
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace").strip()
        raise RuntimeError(f"ktune refused the report: HTTP {e.code} {detail}") from None
    except OSError as e:
        raise RuntimeError(f"cannot reach ktune at {url}: {e}") from None


def _grpc(values: Dict[str, float], address: str, timeout: float) -> None:
    """``DBManager.ReportObservationLog`` with the Katib SDK's generated
    stubs (not its ``report_metrics``, which needs a pod's service-account
    namespace file and stamps whole seconds only)."""
    try:
        import grpc  # type: ignore[import-not-found]
        from kubeflow.katib import katib_api_pb2, katib_api_pb2_grpc  # type: ignore[import-not-found]
    except ImportError as e:
        raise ImportError(
            f"{TRIAL_NAME_ENV} is set and a Katib DB manager is at {address}, so ktune.report speaks "
            "Katib's gRPC, which needs the Katib SDK: pip install 'ktune[katib]' "
            f"(or unset {TRIAL_NAME_ENV} to print TEXT lines) ({e})"
        ) from None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    trial = os.environ[TRIAL_NAME_ENV]
    request = katib_api_pb2.ReportObservationLogRequest(
        trial_name=trial,
        observation_log=katib_api_pb2.ObservationLog(metric_logs=[
            katib_api_pb2.MetricLog(time_stamp=stamp, metric=katib_api_pb2.Metric(name=name, value=repr(value)))
            for name, value in values.items()
        ]),
    )
    with grpc.insecure_channel(address) as channel:
        try:
            katib_api_pb2_grpc.DBManagerStub(channel).ReportObservationLog(request, timeout=timeout)
        except grpc.RpcError as e:
            raise RuntimeError(f"the Katib DB manager at {address} refused trial {trial}'s report: "
                               f"{e.code().name} {e.details()}") from None


def main(argv=None) -> int:
    """``python -m ktune.reporting loss=0.3 accuracy=0.9``: the same from a shell."""
    args = sys.argv[1:] if argv is None else argv
    metrics = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep:
            print("usage: python -m ktune.reporting NAME=VALUE ...", file=sys.stderr)
            return 2
        metrics[name] = value
    try:
        report(metrics)
    except (ValueError, TypeError, RuntimeError, ImportError) as e:
        print(f"ktune.report: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
