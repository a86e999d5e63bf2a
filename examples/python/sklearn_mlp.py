#!/usr/bin/env python3
"""Train a small neural network on scikit-learn's bundled handwritten digits.

A ktune / Katib trial: the hyperparameters come in as flags, and one line of
metrics per epoch goes to stdout in Katib's default text format, e.g.

    epoch=7 loss=0.1843 val_loss=0.2105 accuracy=0.9417

so an early-stopping rule (medianstop, asha) sees the learning curve while the
trial runs. Everything else (warnings, the summary) goes to stderr.

The data is `sklearn.datasets.load_digits` (1,797 8x8 images, 10 classes),
shipped inside scikit-learn: nothing is downloaded. The train/validation split
is fixed (--data_seed) so that every trial is scored on the same 450 images;
the 1,347 training images are augmented with one-pixel shifts (--augment).
--seed drives the weight initialisation and the mini-batch order, so the same
flags give the same numbers.

With --log_path DIR it also writes TensorBoard event files (tensorboardX),
as Katib's tf-mnist-with-summaries example does: per epoch, `loss` and
`accuracy` of the training images under DIR/train and of the validation
images under DIR/test, for the TensorFlowEvent collector (metric names
`test/accuracy`, `train/loss`, ...). A trial of 20 epochs takes 3-6 s on one core
(about 1.5 s of it importing scikit-learn).

    examples/python/.venv/bin/python examples/python/sklearn_mlp.py \
        --lr=0.01 --alpha=1e-4 --hidden=64 --batch_size=32 --epochs=20
"""

import argparse
import math
import os
import sys
import time

# One BLAS thread per trial: ktune runs trials side by side, and a tiny model
# only loses from more threads. Must be set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lr", type=float, default=0.001, help="initial learning rate (Adam/SGD)")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    p.add_argument("--hidden", type=int, default=64, help="units in the hidden layer")
    p.add_argument("--layers", type=int, default=1, help="number of hidden layers")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (sgd only)")
    p.add_argument("--train_size", type=int, default=0,
                   help="use only the first N training images (0: all 1,347)")
    p.add_argument("--augment", type=int, choices=[0, 1], default=1,
                   help="1: add each training image shifted by one pixel up, down, "
                        "left and right (5x the data, ~0.1-0.2 s per epoch)")
    p.add_argument("--seed", type=int, default=0, help="weights and batch order")
    p.add_argument("--data_seed", type=int, default=1234, help="train/validation split")
    p.add_argument("--log_path", default="",
                   help="also write TensorBoard scalars under LOG_PATH/train and LOG_PATH/test")
    args = p.parse_args(argv)
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error(f"--lr must be a positive number, got {args.lr}")
    if args.alpha < 0 or args.hidden < 1 or args.layers < 1 or args.batch_size < 1 or args.epochs < 1:
        p.error("--alpha must be >= 0; --hidden, --layers, --batch_size and --epochs >= 1")
    return args


def shifted(x, y):
    """The images plus copies moved by one pixel in each of four directions."""
    images = x.reshape(-1, 8, 8)
    copies = [images]
    for axis, step in ((1, 1), (1, -1), (2, 1), (2, -1)):
        moved = np.roll(images, step, axis=axis)
        edge = 0 if step == 1 else -1  # blank the row/column that wrapped round
        if axis == 1:
            moved[:, edge, :] = 0.0
        else:
            moved[:, :, edge] = 0.0
        copies.append(moved)
    return np.concatenate(copies).reshape(-1, 64), np.tile(y, len(copies))


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()

    x, y = load_digits(return_X_y=True)
    x = x / 16.0  # pixels are 0..16
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=450, stratify=y, random_state=args.data_seed
    )
    if args.train_size:
        x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]
    if args.augment:
        x_train, y_train = shifted(x_train, y_train)
    classes = np.unique(y)
    writers = None
    if args.log_path:
        from tensorboardX import SummaryWriter

        # The pid in the name: two trials started within a second never share a file.
        writers = {
            part: SummaryWriter(os.path.join(args.log_path, part), filename_suffix=f".{os.getpid()}")
            for part in ("train", "test")
        }

    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,) * args.layers,
        alpha=args.alpha,
        batch_size=min(args.batch_size, len(x_train)),
        learning_rate_init=args.lr,
        solver=args.optimizer,
        momentum=args.momentum,
        random_state=args.seed,
        shuffle=True,
    )

    for epoch in range(1, args.epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow in a diverging run is reported below
            model.partial_fit(x_train, y_train, classes=classes)
            proba = model.predict_proba(x_val)
        train_loss = float(model.loss_)
        if not (math.isfinite(train_loss) and np.all(np.isfinite(proba))):
            # Katib's parser cannot read nan/inf: report a huge finite loss and
            # chance accuracy, then give up on this trial's learning rate.
            print(f"epoch={epoch} loss=1e6 val_loss=1e6 accuracy=0.1", flush=True)
            print(f"diverged at epoch {epoch} (lr={args.lr}); stopping", file=sys.stderr)
            return 0
        val_loss = log_loss(y_val, proba, labels=classes)
        accuracy = float(np.mean(classes[np.argmax(proba, axis=1)] == y_val))
        if writers:
            train_accuracy = float(np.mean(model.predict(x_train) == y_train))
            for part, loss, acc in (("train", train_loss, train_accuracy), ("test", val_loss, accuracy)):
                writers[part].add_scalar("loss", loss, epoch)
                writers[part].add_scalar("accuracy", acc, epoch)
                writers[part].flush()
        print(
            f"epoch={epoch} loss={train_loss:.4f} val_loss={val_loss:.4f} accuracy={accuracy:.4f}",
            flush=True,
        )

    for writer in (writers or {}).values():
        writer.close()
    print(
        f"done: {args.epochs} epochs on {len(x_train)} images in "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
