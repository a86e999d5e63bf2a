#!/usr/bin/env python3
"""The trainer of examples/optimizationjob.yaml: "trains" for a few epochs on
a noisy quadratic bowl (the optimum is lr = 0.03, momentum = 0.9) and reports
its loss through Kubeflow Trainer's progress protocol (KEP-2779), as a
TrainJob's trainer does under Trainer.

Its parameters arrive as KUBEFLOW_TRAINER_OPT_<name>, as Trainer hands an
OptimizationJob's trials their values. It reports once, at the end: the
Kubeflow SDK sends at most one update per 5 s per process, and the
objective is the latest value reported.

With the Kubeflow SDK installed (`pip install kubeflow`) it calls
`kubeflow.trainer.update_trainjob_status`; without it, it POSTs the same body
itself with urllib (Trainer's raw-HTTP option), so the example runs on any
python3. Under `ktune run` the endpoint is ktune's (KUBEFLOW_TRAINER_SERVER_URL,
the token in the file at KUBEFLOW_TRAINER_SERVER_TOKEN).
"""
import datetime
import json
import math
import os
import random
import ssl
import sys
import time
import urllib.request


def update_status(progress_percent, metrics):
    """Trainer's update_trainjob_status: the SDK's when it is installed."""
    try:
        from kubeflow.trainer import update_trainjob_status
    except ImportError:
        return post_status(progress_percent, metrics)
    return update_trainjob_status(progress_percent=progress_percent, metrics=metrics)


def post_status(progress_percent, metrics):
    """The same request as the SDK's, without it: True on HTTP 200."""
    url = os.environ.get("KUBEFLOW_TRAINER_SERVER_URL")
    token_file = os.environ.get("KUBEFLOW_TRAINER_SERVER_TOKEN")
    if not url or not token_file or not os.path.exists(token_file):
        return False
    with open(token_file) as f:
        token = f.read().strip()
    body = {
        "trainerStatus": {
            "lastUpdatedTime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "progressPercentage": progress_percent,
            "metrics": [{"name": str(k), "value": str(v)} for k, v in metrics.items()],
        }
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    context = None
    ca_file = os.environ.get("KUBEFLOW_TRAINER_SERVER_CA_CERT")
    if url.startswith("https://"):
        context = ssl.create_default_context(
            cafile=ca_file if ca_file and os.path.exists(ca_file) else None
        )
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status == 200
    except Exception as e:  # the SDK never raises either
        print(f"status update failed: {e}", file=sys.stderr)
        return False


def main():
    lr = float(os.environ["KUBEFLOW_TRAINER_OPT_lr"])
    momentum = float(os.environ["KUBEFLOW_TRAINER_OPT_momentum"])
    epochs = int(os.environ.get("EPOCHS", "5"))
    rng = random.Random(0)
    distance = math.log(lr / 0.03) ** 2 + 4 * (momentum - 0.9) ** 2
    loss = math.inf
    for epoch in range(1, epochs + 1):
        loss = distance + 1.0 / epoch + rng.gauss(0, 0.002)
        print(f"epoch {epoch}: loss={loss:.6f}", flush=True)
        time.sleep(0.05)
    if not update_status(100, {"loss": round(loss, 6), "epoch": epochs}):
        print("the status update was not accepted", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
