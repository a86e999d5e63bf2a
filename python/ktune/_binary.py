"""Finding the ``ktune`` binary: ``$KTUNE_BIN``, else the one the wheel put
in this interpreter's scripts folder, else ``ktune`` on ``PATH``."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

BIN_ENV = "KTUNE_BIN"


def ktune_binary() -> str:
    """The path of the ``ktune`` executable; ``FileNotFoundError`` naming
    where it looked when there is none."""
    explicit = os.environ.get(BIN_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise FileNotFoundError(f"{BIN_ENV}={explicit} is not an executable file")
        return explicit
    name = "ktune.exe" if sys.platform == "win32" else "ktune"
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("ktune")
    if found:
        return found
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no ktune binary: set {BIN_ENV}, or install the ktune wheel (looked in {looked} and PATH)")
