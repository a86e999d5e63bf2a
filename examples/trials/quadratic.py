#!/usr/bin/env python3
"""A tiny, dependency-free trial program: "trains" for a few epochs on a
noisy quadratic bowl and prints Katib-style metrics (`loss=…`) per epoch.

The optimum is lr = 0.03, momentum = 0.9 with loss approaching 0; it exists
so the example experiments run anywhere in seconds.
"""
import argparse
import math
import random
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--momentum", type=float, required=True)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--sleep", type=float, default=0.05)
args = parser.parse_args()

rng = random.Random(args.seed)
distance = math.log(args.lr / 0.03) ** 2 + 4 * (args.momentum - 0.9) ** 2
for epoch in range(1, args.epochs + 1):
    loss = distance + 1.0 / epoch + rng.gauss(0, 0.002)
    accuracy = 1.0 / (1.0 + loss)
    print(f"epoch {epoch}: loss={loss:.6f} accuracy={accuracy:.6f}", flush=True)
    time.sleep(args.sleep)
sys.exit(0)
