"""Kubeflow Trainer's progress protocol (KEP-2779) against `ktune run`, with
the REAL Kubeflow SDK (kubeflow==0.5.0, `scripts/sdk-venv kubeflow`): an
OptimizationJob's trainer calls `kubeflow.trainer.update_trainjob_status`
unchanged, ktune's local push endpoint receives it at Trainer's path, and
the stored objective is what the trainer reported.

Self-contained (no conftest fixture needed): the ktune binary is
`$KTUNE_BIN`, else `$CARGO_TARGET_DIR/debug/ktune`, else
`target/debug/ktune`; this file builds nothing. Run it with the venv's
python; the trials find that venv's `python3` first on their PATH, so they
import `kubeflow.trainer`.

Each trial process reports once: the SDK drops a second update within 5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JOB = "sdk-progress"


def ktune_bin() -> Path:
    if os.environ.get("KTUNE_BIN"):
        return Path(os.environ["KTUNE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "ktune"


@pytest.fixture(scope="module")
def ktune():
    binary = ktune_bin()
    if not binary.is_file():
        pytest.fail(f"no ktune binary at {binary}: `cargo build --bin ktune` or set KTUNE_BIN")
    return binary


def job(trainer: Path, choices: list[str]) -> dict:
    """A grid OptimizationJob over one categorical `x`, minimising `loss`,
    whose trainer is `python3 <trainer>` (the venv's python, by PATH)."""
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "OptimizationJob",
        "metadata": {"name": JOB},
        "spec": {
            "objectives": [{"metric": "loss", "direction": "Minimize"}],
            "searchAlgorithm": {"grid": {}},
            "numTrials": len(choices),
            "parallelTrials": len(choices),
            "parameters": [{"name": "x", "searchSpace": {"categorical": {"choices": choices}}}],
            "trainJobTemplate": {
                "spec": {
                    "runtimeRef": {"name": "torch-distributed"},
                    "trainer": {"command": ["python3", str(trainer)]},
                }
            },
        },
    }


def run(ktune: Path, tmp: Path, trainer_source: str, choices: list[str]):
    """`ktune run` of the job in `tmp` with its own SQLite store; returns
    (the run's output, `ktune trials -o json`, the trials' folder, the db)."""
    trainer = tmp / "train.py"
    trainer.write_text(textwrap.dedent(trainer_source))
    spec = tmp / "job.json"
    spec.write_text(json.dumps(job(trainer, choices)))
    db = f"sqlite:{tmp / 'ktune.db'}"
    trials_dir = tmp / "trials"
    env = dict(os.environ)
    # The trials' `python3` is this venv's, which has the Kubeflow SDK.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for inherited in ("KUBEFLOW_TRAINER_SERVER_URL", "KUBEFLOW_TRAINER_SERVER_TOKEN",
                      "KUBEFLOW_TRAINER_SERVER_CA_CERT"):
        env.pop(inherited, None)
    out = subprocess.run(
        [str(ktune), "run", str(spec), "--db", db, "--trials-dir", str(trials_dir),
         "--timeout", "60"],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=120,
    )
    trials = subprocess.run(
        [str(ktune), "trials", JOB, "--db", db, "-o", "json"],
        cwd=tmp, capture_output=True, text=True, timeout=30,
    )
    assert trials.returncode == 0, trials.stderr
    return out, json.loads(trials.stdout), trials_dir / JOB, db


def trial_log(folder: Path, trial: str, name: str = "stdout.log") -> str:
    return (folder / trial / name).read_text()


REPORTING_TRAINER = """
    import os, sys
    from kubeflow.trainer import update_trainjob_status

    x = float(os.environ["KUBEFLOW_TRAINER_OPT_x"])
    loss = (x - 2.0) ** 2 + 0.25
    # As a Trainer trainer reports: progress, an ETA, metrics of any type
    # (the SDK sends each as text); "phase" is not a number, so ktune
    # leaves it out and still answers 200.
    ok = update_trainjob_status(
        progress_percent=100,
        estimated_remaining_seconds=0,
        metrics={"loss": loss, "epoch": 3, "phase": "done"},
    )
    print(f"reported={ok} loss={loss}", flush=True)
    sys.exit(0 if ok else 3)
"""


def test_update_trainjob_status_reports_the_objective(ktune, tmp_path):
    out, trials, folder, db = run(ktune, tmp_path, REPORTING_TRAINER, ["1", "2", "3.5"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 succeeded" in out.stdout, out.stdout + out.stderr
    assert len(trials) == 3
    for trial in trials:
        x = float(trial["parameters"]["x"])
        expected = (x - 2.0) ** 2 + 0.25
        log = trial_log(folder, trial["name"])
        assert f"reported=True loss={expected}" in log, log
        assert trial["state"] == "Succeeded", trial
        assert trial["objective"] == pytest.approx(expected, abs=1e-12), trial
        # The token file the runner wrote, its owner's alone.
        token = folder / trial["name"] / "kubeflow-trainer-token"
        assert token.stat().st_mode & 0o777 == 0o600

    best = subprocess.run(
        [str(ktune), "best", JOB, "--db", db], capture_output=True, text=True, timeout=30,
    )
    assert best.returncode == 0, best.stderr
    best = json.loads(best.stdout)
    assert best["parameters"] == {"x": "2"}, best
    assert best["objective"] == {"name": "loss", "value": 0.25}, best


STRANGER_TRAINER = """
    import json, os, urllib.error, urllib.request
    from kubeflow.trainer import update_trainjob_status

    url = os.environ["KUBEFLOW_TRAINER_SERVER_URL"]
    real = open(os.environ["KUBEFLOW_TRAINER_SERVER_TOKEN"]).read().strip()
    body = json.dumps({"trainerStatus": {"metrics": [{"name": "loss", "value": "1"}]}}).encode()

    def raw(url, token):
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    print("raw-wrong", raw(url, "0" * 32))
    other = url.replace("/trainjobs/", "/trainjobs/no-such-")
    print("raw-unknown", raw(other, real))

    # The SDK with a token file holding someone else's token: HTTP 401, False.
    wrong = "wrong-token"
    with open(wrong, "w") as f:
        f.write("0" * 32)
    os.environ["KUBEFLOW_TRAINER_SERVER_TOKEN"] = os.path.abspath(wrong)
    print("sdk-wrong", update_trainjob_status(metrics={"loss": 1.0}))
"""

NO_TOKEN_TRAINER = """
    import os
    from kubeflow.trainer import update_trainjob_status

    # Without a token file the SDK sends nothing and answers False.
    os.environ["KUBEFLOW_TRAINER_SERVER_TOKEN"] = "/nonexistent/token"
    print("sdk-no-token", update_trainjob_status(metrics={"loss": 1.0}))
"""


def test_a_bad_token_gets_false_from_the_sdk_and_401(ktune, tmp_path):
    out, trials, folder, _ = run(ktune, tmp_path, STRANGER_TRAINER, ["1"])
    assert len(trials) == 1, out.stdout + out.stderr
    trial = trials[0]
    log = trial_log(folder, trial["name"])
    assert "raw-wrong 401" in log, log
    assert "raw-unknown 404" in log, log
    assert "sdk-wrong False" in log, log
    assert "HTTP 401" in trial_log(folder, trial["name"], "stderr.log")
    # Nothing got in: the trial has no objective.
    assert trial.get("objective") is None, trial
    assert "1 metrics-unavailable" in out.stdout, out.stdout + out.stderr


def test_without_a_token_file_the_sdk_sends_nothing(ktune, tmp_path):
    out, trials, folder, _ = run(ktune, tmp_path, NO_TOKEN_TRAINER, ["1"])
    log = trial_log(folder, trials[0]["name"])
    assert "sdk-no-token False" in log, log
    assert trials[0].get("objective") is None, trials[0]
