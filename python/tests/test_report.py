"""ktune.report in its three settings: TEXT lines on stdout, an HTTP push
to ktune's endpoint, and Katib's gRPC through the Katib SDK. Each is tested
against a fake where that shows the wire format, and in a real `ktune run`."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

import ktune
from ktune import search


def test_without_ktune_or_katib_it_prints_katib_text_lines(workdir, capsys):
    assert ktune.report({"loss": 0.25, "accuracy": 1}) == "stdout"
    assert capsys.readouterr().out == "loss=0.25 accuracy=1.0\n"


def test_katib_trial_name_alone_is_not_a_cluster_and_prints(workdir, monkeypatch, capsys):
    # ktune run sets KATIB_TRIAL_NAME for every trial; a StdOut trial has no DB manager.
    monkeypatch.setenv("KATIB_TRIAL_NAME", "t-1")
    assert ktune.report({"loss": 1}) == "stdout"
    assert "loss=1.0" in capsys.readouterr().out


def test_push_posts_one_json_report_with_the_bearer_token(workdir, monkeypatch):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Authorization"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("KTUNE_PUSH_URL", f"http://127.0.0.1:{server.server_port}/v1/trials/t-1/metrics")
        monkeypatch.setenv("KTUNE_PUSH_TOKEN", "secret")
        assert ktune.report({"loss": 0.5}, step=1) == "push"
    finally:
        server.shutdown()
    path, auth, body = received[0]
    assert path == "/v1/trials/t-1/metrics" and auth == "Bearer secret"
    assert body["loss"] == 0.5 and isinstance(body["timestamp"], float)


def test_a_refused_push_raises_with_ktunes_reason(workdir, monkeypatch):
    monkeypatch.setenv("KTUNE_PUSH_URL", "http://127.0.0.1:9/v1/trials/t/metrics")
    monkeypatch.setenv("KTUNE_PUSH_TOKEN", "x")
    with pytest.raises(RuntimeError, match="cannot reach ktune"):
        ktune.report({"loss": 1})


def test_grpc_without_the_katib_sdk_says_which_extra_to_install(workdir, monkeypatch):
    monkeypatch.setenv("KATIB_TRIAL_NAME", "t-1")
    monkeypatch.setenv("KTUNE_DB_MANAGER_ADDRESS", "127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "kubeflow.katib", None)
    with pytest.raises(ImportError, match=r"ktune\[katib\]"):
        ktune.report({"loss": 1})


@pytest.mark.parametrize("metrics, step, argument", [
    ([("loss", 1)], None, "metrics"),
    ({}, None, "metrics"),
    ({"loss": "high"}, None, "metrics['loss']"),
    ({"loss": float("nan")}, None, "metrics['loss']"),
    ({"bad name": 1}, None, "metrics"),
    ({"loss": 1}, -1, "step"),
])
def test_bad_arguments_name_the_argument(workdir, metrics, step, argument):
    with pytest.raises((TypeError, ValueError)) as info:
        ktune.report(metrics, step=step)
    assert str(info.value).startswith(f"{argument}:"), info.value


def test_steps_must_not_go_back(workdir, capsys):
    ktune.report({"loss": 1}, step=2)
    with pytest.raises(ValueError, match="step: 1 is lower"):
        ktune.report({"loss": 1}, step=1)


def reporting_objective(params):
    import os

    import ktune

    mode = params["mode"]
    if mode == "grpc":
        # Under ktune run a Push trial has all three variables; drop the
        # push URL to take the gRPC path to ktune's DBManager API.
        os.environ.pop("KTUNE_PUSH_URL")
    for step in range(1, 4):
        how = ktune.report({"loss": params["x"] + 1.0 / step}, step=step)
        assert how == ("stdout" if mode == "stdout" else mode), how


@pytest.mark.parametrize("mode, collector", [("push", "Push"), ("grpc", "Push"), ("stdout", "StdOut")])
def test_a_real_run_gets_the_reports_in_each_setting(workdir, mode, collector):
    if mode == "grpc":
        pytest.importorskip("kubeflow.katib")
    result = ktune.tune(
        reporting_objective,
        {"x": search.double(0.0, 1.0), "mode": search.categorical([mode])},
        name=f"report-{mode}",
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=2,
        metrics_collector_config={"kind": collector},
        progress=False,
    )
    assert [t["state"] for t in result.trials] == ["Succeeded", "Succeeded"], result.trials
    for trial in result.trials:
        # The objective is the last report: x + 1/3.
        assert trial["objective"] == pytest.approx(trial["parameters"]["x"] + 1.0 / 3), trial
