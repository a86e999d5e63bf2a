#!/usr/bin/env python3
"""An ordinary Optuna script with one line changed: the sampler is ktune's
GP (``KtuneSampler("bayesianoptimization")``) instead of Optuna's
``GPSampler``. Everything else — ``create_study``, ``suggest_*``,
``optimize``, ``best_params`` — is Optuna's.

    pip install 'ktune-*.whl[optuna]'      # the ktune wheel (scripts/build-wheel)
    python examples/python/optuna_ktune_sampler.py

The objective is a stand-in for a training run: a validation loss shaped by
a log-scale learning rate, a depth and an optimizer choice, with noise-free
values so that runs compare.
"""

import math

import optuna

from ktune.optuna import KtuneSampler


def objective(trial):
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    depth = trial.suggest_int("depth", 1, 8)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam", "rmsprop"])
    penalty = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.1}[optimizer]
    return (math.log10(lr) + 3) ** 2 + 0.2 * (depth - 4) ** 2 + 2 * (dropout - 0.1 * depth / 4) ** 2 + penalty


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # sampler = optuna.samplers.GPSampler(seed=0)          # before
    sampler = KtuneSampler("bayesianoptimization", seed=0)  # after: the one changed line
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=40)
    print(f"best value {study.best_value:.4f} with {study.best_params}")
