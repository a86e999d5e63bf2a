"""ktune for Python: Katib's ``tune()`` run locally by ktune, one
``report()`` for every setting, and ktune's algorithms inside Optuna
(``ktune.optuna.KtuneSampler``). Only the standard library is required."""

from . import search
from ._binary import ktune_binary
from .reporting import report
from .tuning import TuneResult, build_experiment, tune

__all__ = ["TuneResult", "build_experiment", "ktune_binary", "report", "search", "tune"]
__version__ = "0.1.0"
