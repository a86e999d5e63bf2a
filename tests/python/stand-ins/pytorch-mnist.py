#!/usr/bin/env python3
"""Stands in for `/opt/pytorch-mnist/mnist.py` of Katib's example image
(`ghcr.io/kubeflow/katib/pytorch-mnist-cpu`), which the fake cluster
cannot run: it ignores images and runs containers as local processes, and
this machine has no torch or MNIST. It takes the same arguments and logs
its metrics in the same lines, on stderr as logging does, as Katib's script (`…\tloss=0.2345`,
`{metricName: accuracy, metricValue: 0.9}` …), from a smooth function of
lr and momentum instead of training, in well under a second.
"""
import argparse
import logging
import math

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--momentum", type=float, default=0.5)
parser.add_argument("--log-path", default="")
# Katib's script has more (--no-cuda, --seed, --save-model …): accept them.
args, _ = parser.parse_known_args()

logging.basicConfig(
    format="%(asctime)s %(levelname)-8s %(message)s",
    datefmt="%Y-%m-%dT%H:%M:%SZ",
    level=logging.DEBUG,
)
distance = math.log(args.lr / 0.03) ** 2 + 4 * (args.momentum - 0.9) ** 2
for epoch in range(1, args.epochs + 1):
    loss = distance + 0.5 / epoch
    accuracy = 1.0 / (1.0 + loss)
    logging.info(
        "Train Epoch: {} [{}/{} ({:.0f}%)]\tloss={:.4f}".format(
            epoch, 60000, 60000, 100.0, loss
        )
    )
    logging.info(
        "{{metricName: accuracy, metricValue: {:.4f}}};{{metricName: loss, metricValue: {:.4f}}}\n".format(
            accuracy, loss
        )
    )
