"""Katib's TensorFlowEvent collector against `ktune run`, with event files
written by a REAL TensorBoard writer (`tensorboardX` from PyPI, in the
suite's venv: `scripts/sdk-venv katib`): TF1-style `simple_value` scalars
(`add_scalar`) and TF2-style scalar tensors (a float tensor summary, as
`tf.summary.scalar` writes it, through tensorboardX's writer), and Katib's
`dir/tag` metric names.

Needs no cluster: the ktune binary is `$KTUNE_BIN` (scripts/test-python
sets it), else `$CARGO_TARGET_DIR/debug/ktune`, else `target/debug/ktune`.
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
NAME = "tfevent-local"

TRAINER = """
    import sys
    from tensorboardX import SummaryWriter
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.proto.tensor_pb2 import TensorProto

    lr, folder = float(sys.argv[1]), sys.argv[2]
    train = SummaryWriter(logdir=folder + "/train")
    test = SummaryWriter(logdir=folder + "/test")
    scalars = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    for step in range(1, 4):
        # TF1 style (simple_value): what add_scalar writes.
        train.add_scalar("accuracy", 1.0 - lr / step, step)
        # TF2 style, as tf.summary.scalar writes it: a float scalar tensor.
        tensor = TensorProto(dtype=1, float_val=[0.5 - lr / step])
        value = Summary.Value(tag="accuracy", tensor=tensor, metadata=scalars)
        test.file_writer.add_summary(Summary(value=[value]), step)
    train.close()
    test.close()
"""


def ktune_bin() -> Path:
    if os.environ.get("KTUNE_BIN"):
        return Path(os.environ["KTUNE_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "ktune"


def experiment(trainer: Path, folder: Path) -> dict:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": NAME},
        "spec": {
            # Katib's naming: the tag under the `train` folder is the
            # objective, the one under `test` an additional metric.
            "objective": {
                "type": "maximize",
                "objectiveMetricName": "train/accuracy",
                "additionalMetricNames": ["test/accuracy"],
            },
            "algorithm": {"algorithmName": "grid"},
            "parallelTrialCount": 1,
            "maxTrialCount": 2,
            "metricsCollectorSpec": {
                "collector": {"kind": "TensorFlowEvent"},
                "source": {"fileSystemPath": {"path": str(folder), "kind": "Directory"}},
            },
            "parameters": [
                {"name": "lr", "parameterType": "categorical", "feasibleSpace": {"list": ["0.3", "0.1"]}}
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "lr", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {"containers": [{
                        "name": "main",
                        "image": "x",
                        "command": ["python3", str(trainer), "${trialParameters.lr}", str(folder)],
                    }]}}},
                },
            },
        },
    }


def test_tensorboardx_event_files_are_collected(tmp_path):
    pytest.importorskip("tensorboardX")
    ktune = ktune_bin()
    if not ktune.is_file():
        pytest.fail(f"no ktune binary at {ktune}: `cargo build --bin ktune` or set KTUNE_BIN")
    trainer = tmp_path / "train.py"
    trainer.write_text(textwrap.dedent(TRAINER))
    spec = tmp_path / "experiment.json"
    spec.write_text(json.dumps(experiment(trainer, tmp_path / "tfevent")))
    db = f"sqlite:{tmp_path / 'ktune.db'}"
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    out = subprocess.run(
        [str(ktune), "run", str(spec), "--db", db, "--trials-dir", str(tmp_path / "trials"),
         "-o", "json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    trials = subprocess.run(
        [str(ktune), "trials", NAME, "--db", db, "-o", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )
    assert trials.returncode == 0, trials.stderr
    by_lr = {t["parameters"]["lr"]: t for t in json.loads(trials.stdout)}
    for lr, trial in by_lr.items():
        assert trial["state"] == "Succeeded", trial
        # Katib's default strategy for a maximised objective: its max, at
        # step 3 (float32 in the file).
        assert trial["objective"] == pytest.approx(1.0 - float(lr) / 3, abs=1e-6), trial
    best = subprocess.run(
        [str(ktune), "best", NAME, "--db", db], capture_output=True, text=True, timeout=30,
    )
    assert best.returncode == 0, best.stderr
    best = json.loads(best.stdout)
    assert best["parameters"]["lr"] == "0.1", best
    # The TF2-style tensor under `test`, the last reported: step 3.
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["best"]["trial"] == best["trial"], summary
    test_accuracy = float(summary["best"]["metrics"]["test/accuracy"])
    assert test_accuracy == pytest.approx(0.5 - 0.1 / 3, abs=1e-6), summary
