"""A trial that reports its metrics with Katib's SDK, unchanged except for
where the DB manager is: `katib.report_metrics()` speaks gRPC
(`api.v1.beta1.DBManager/ReportObservationLog`) to ktune.

Under `ktune run` (a Push experiment) the trial gets `KATIB_TRIAL_NAME` and
`KTUNE_DB_MANAGER_ADDRESS` (127.0.0.1:<port>); under `ktune controller`
point it at the controller's `--db-manager-listen` address (Katib's
`katib-db-manager.kubeflow:6789` if the Service is named so).

Needs `pip install kubeflow-katib` (it brings grpcio).

Usage: katib_report_metrics.py X  -- minimises (x - 1)^2 over three "epochs".
"""
import os
import sys

import kubeflow.katib as katib
from kubeflow.katib.utils import utils

# The SDK reads the trial's namespace from the service-account file of a
# pod, and raises FileNotFoundError without it (a local process): name one.
if not os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/namespace"):
    utils.get_current_k8s_namespace = lambda: "default"

address = os.environ.get("KTUNE_DB_MANAGER_ADDRESS", "katib-db-manager.kubeflow:6789")
x = float(sys.argv[1])
for epoch in range(1, 4):
    loss = (x - 1.0) ** 2 + 1.0 / epoch
    katib.report_metrics({"loss": loss, "epoch": epoch}, db_manager_address=address)
    print(f"epoch {epoch}: loss={loss}", flush=True)
