"""The wheel installed the binary beside the interpreter, and it runs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ktune


@pytest.mark.skipif(bool(os.environ.get("KTUNE_BIN")), reason="KTUNE_BIN names another binary")
def test_the_wheel_puts_ktune_in_the_environments_scripts_folder():
    binary = Path(ktune.ktune_binary())
    assert Path(sys.prefix) in binary.parents, binary
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ktune "), out.stdout


def test_the_package_needs_only_the_standard_library():
    code = ("import sys, ktune, ktune.search, ktune.reporting, ktune.tuning; "
            "bad = [m for m in ('optuna', 'numpy', 'kubernetes', 'grpc', 'kubeflow') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
