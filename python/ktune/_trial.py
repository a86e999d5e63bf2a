"""What each trial of :func:`ktune.tune` runs::

    python -m ktune._trial SPEC.json name=VALUE ...

``SPEC.json`` (written by ``tune``) names the objective — its source file
and function name, or a ``module:function`` to import — the parameter
types and the objective metric. The values arrive as Katib substitutes
them (text) and are typed back (double -> float, int -> int, categorical
-> the original choice). The function gets one dict, as Katib's ``tune``
calls it. A number it returns is reported as the objective metric, a
dict as metrics; ``None`` means it reported on its own (``ktune.report``).
"""

from __future__ import annotations

import importlib
import json
import numbers
import sys
from typing import Any, Callable, Dict

from .reporting import report
from .search import Parameter


def load_objective(spec: Dict[str, Any]) -> Callable:
    if "module" in spec:
        module_name, _, function = spec["module"].partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, function)
    with open(spec["source"], encoding="utf-8") as f:
        source = f.read()
    namespace: Dict[str, Any] = {"__name__": "__ktune_objective__"}
    exec(compile(source, spec["source"], "exec"), namespace)  # noqa: S102 - the user's own function
    return namespace[spec["function"]]


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m ktune._trial SPEC.json name=VALUE ...", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        spec = json.load(f)
    if spec.get("path"):
        sys.path.insert(0, spec["path"])
    types = {name: Parameter(**{k: tuple(v) if k == "list" and v is not None else v for k, v in p.items()})
             for name, p in spec["parameters"].items()}
    parameters: Dict[str, Any] = {}
    for arg in args[1:]:
        name, _, text = arg.partition("=")
        parameters[name] = types[name].cast(text) if name in types else text
    objective = load_objective(spec)
    result = objective(parameters)
    if isinstance(result, numbers.Real) and not isinstance(result, bool):
        report({spec["metric"]: float(result)})
    elif isinstance(result, dict):
        report(result)
    elif result is not None:
        print(f"ktune: the objective returned {type(result).__name__}, not a number, dict or None; "
              "nothing reported from it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
