#!/usr/bin/env python3
"""Stands in for the training program of one of Katib's example
experiments (their images cannot be pulled here): accepts the example's
own `--name=value` arguments, and prints, per epoch, Katib TEXT metric
lines for the metrics named by `--metrics`, from a smooth function of the
numeric arguments (lower for learning rates near 0.03).

Every process of a distributed trial prints the same lines; only the
primary one is read.
"""
import math
import sys
import time

metrics = ["loss"]
numbers = []
for arg in sys.argv[1:]:
    name, _, value = arg.lstrip("-").partition("=")
    if name == "metrics":
        metrics = [m for m in value.split(",") if m]
        continue
    try:
        numbers.append(float(value))
    except ValueError:
        pass

distance = sum(math.log(abs(x) / 0.03 + 1e-9) ** 2 for x in numbers if 0 < abs(x) < 1)
for epoch in range(1, 4):
    loss = distance / 10 + 1.0 / epoch
    values = {m: (1.0 / (1.0 + loss) if "acc" in m.lower() else loss) for m in metrics}
    print(" ".join(f"{m}={v:.6f}" for m, v in values.items()), flush=True)
    time.sleep(0.05)
