"""Objectives imported by module path (``objectives:quadratic``) in trials:
the tests put this folder on the trials' PYTHONPATH."""


def quadratic(params):
    return (params["x"] - 0.3) ** 2 + (0 if params["kind"] == "good" else 1)
