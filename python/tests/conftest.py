"""Shared fixtures: every test runs in a fresh folder (ktune.db and .ktune/
land there), against the ktune binary the installed wheel brought (or
$KTUNE_BIN)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for env in ("KTUNE_PUSH_URL", "KTUNE_PUSH_TOKEN", "KATIB_TRIAL_NAME", "KTUNE_DB_MANAGER_ADDRESS",
                "KATIB_DB_MANAGER_ADDRESS", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(env, raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def _fresh_report_steps(monkeypatch):
    import ktune.reporting

    monkeypatch.setattr(ktune.reporting, "_last_step", None)
    yield
