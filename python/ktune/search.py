"""Search-space helpers in the shape of Katib's ``kubeflow.katib.search``:
``double``, ``int``, ``categorical`` (and ``discrete``, which Katib's
Experiment has but its SDK lacks). Each returns a :class:`Parameter` that
knows its Katib ``ParameterSpec`` and how to turn the text a trial receives
back into a typed value.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")


@dataclass(frozen=True)
class Parameter:
    """One search dimension. Build it with :func:`double`, :func:`int`,
    :func:`categorical` or :func:`discrete`."""

    parameter_type: str  # double | int | categorical | discrete
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    distribution: Optional[str] = None
    list: Optional[tuple] = None

    def feasible_space(self) -> dict:
        """Katib's ``feasibleSpace`` object (all values as strings)."""
        if self.parameter_type in ("categorical", "discrete"):
            return {"list": [_text(v) for v in self.list]}
        space = {"min": _text(self.min), "max": _text(self.max)}
        if self.step is not None:
            space["step"] = _text(self.step)
        if self.distribution is not None:
            space["distribution"] = self.distribution
        return space

    def spec(self, name: str) -> dict:
        """Katib's ``ParameterSpec`` for this parameter under ``name``."""
        return {"name": name, "parameterType": self.parameter_type, "feasibleSpace": self.feasible_space()}

    def cast(self, text: str) -> Any:
        """The value a trial receives as text, typed: ``float`` for double,
        ``int`` for int, the original list item for categorical and discrete."""
        if self.parameter_type == "double":
            return float(text)
        if self.parameter_type == "int":
            return builtins.int(float(text))
        for item in self.list:
            if _text(item) == text:
                return item
        if self.parameter_type == "discrete":
            return float(text)
        return text


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def _number(value: Any, argument: str, integral: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (builtins.int, float)):
        raise TypeError(f"{argument}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{argument}: {value!r} is not finite")
    if integral and builtins.int(value) != value:
        raise ValueError(f"{argument}: {value!r} is not an integer")
    return value


def _distribution(distribution: Optional[str], low: float) -> Optional[str]:
    if distribution is None:
        return None
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution: {distribution!r} is not one of {', '.join(DISTRIBUTIONS)}")
    if distribution in ("logUniform", "logNormal") and low <= 0:
        raise ValueError(f"distribution: {distribution} needs min > 0, got min={low!r}")
    return distribution


def double(min: float, max: float, step: Optional[float] = None, distribution: Optional[str] = None) -> Parameter:
    """A real number in ``[min, max]`` (``distribution="logUniform"`` for a log scale)."""
    low = _number(min, "min")
    high = _number(max, "max")
    if low >= high:
        raise ValueError(f"min: {low!r} must be below max {high!r}")
    if step is not None and _number(step, "step") <= 0:
        raise ValueError(f"step: {step!r} must be positive")
    return Parameter("double", float(low), float(high), step, _distribution(distribution, low))


def int(min: int, max: int, step: Optional[int] = None, distribution: Optional[str] = None) -> Parameter:  # noqa: A001
    """An integer in ``[min, max]``."""
    low = builtins.int(_number(min, "min", integral=True))
    high = builtins.int(_number(max, "max", integral=True))
    if low > high:
        raise ValueError(f"min: {low!r} must not be above max {high!r}")
    if step is not None and _number(step, "step", integral=True) <= 0:
        raise ValueError(f"step: {step!r} must be a positive integer")
    return Parameter("int", low, high, step, _distribution(distribution, low))


def categorical(list: Sequence[Any]) -> Parameter:  # noqa: A002
    """One of the given choices (strings, or anything whose ``str`` is distinct)."""
    choices = _choices(list, "list")
    return Parameter("categorical", list=tuple(choices))


def discrete(list: Sequence[float]) -> Parameter:  # noqa: A002
    """One of the given numbers (an ordered set, unlike categorical)."""
    values = _choices(list, "list")
    for i, value in enumerate(values):
        _number(value, f"list[{i}]")
    return Parameter("discrete", list=tuple(sorted(values)))


def _choices(items: Any, argument: str) -> List[Any]:
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise TypeError(f"{argument}: expected a list of choices, got {items!r}")
    choices = builtins.list(items)
    if not choices:
        raise ValueError(f"{argument}: needs at least one choice")
    texts = [_text(c) for c in choices]
    if len(set(texts)) != len(texts):
        raise ValueError(f"{argument}: choices must be distinct, got {texts}")
    return choices
