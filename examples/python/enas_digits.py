#!/usr/bin/env python3
"""Train one ENAS child network on scikit-learn's digits, in JAX.

A trial of Katib's ``enas`` algorithm, like Katib's enas-cnn-cifar10
RunTrial.py scaled to a CPU: it reads ``--architecture`` and ``--nn_config``
in Katib's format (see katib_nas.py), builds the network as Katib's
ModelConstructor does — layer ``i`` takes the previous layer's output,
concatenated (channels; smaller feature maps zero-padded to the largest,
centred) with every earlier layer whose skip flag is 1 (the input image is
layer 0), and applies its operation — then global average pooling and a
dense softmax layer. It trains with Adam (learning rate 0.01: Katib's 1e-3
is for 50,000 CIFAR-10 images, 21 steps an epoch here learn too slowly with
it; 0.83 against 0.97 after 5 epochs) and prints Katib's metric lines after
every epoch::

    Training-Accuracy=0.8143
    Training-Loss=0.6127
    Validation-Accuracy=0.9178
    Validation-Loss=0.3011

Operations (``opt_type`` and its ``opt_params``, over Katib's op_library
defaults): ``convolution`` (ReLU, convolution with ``num_filter`` filters of
``filter_size``, ``stride``, ``same`` padding, batch norm),
``separable_convolution`` (ReLU, depthwise x ``depth_multiplier`` then
pointwise to ``num_filter``, batch norm), ``depthwise_convolution`` and
``reduction`` (``max_pooling``/``avg_pooling`` of ``pool_size``, stride the
pool size; the identity on a 1-pixel map, as Katib's). Katib's op_library
looks the parameters up in the embedding entry itself rather than its
``opt_params``, so its trials always build its defaults (64 filters, 3x3);
this one builds what the architecture names.

Data: ``sklearn.datasets.load_digits`` (1,797 8x8 greyscale images, shipped
with scikit-learn), a fixed stratified split of 1,347 training and 450
validation images; ``graphConfig.inputSizes`` must be ``[8, 8, 1]`` and
``outputSizes`` ``[10]``. Batch normalisation uses batch statistics (the
whole validation set as one batch when evaluating).

    examples/python/.venv/bin/python examples/python/enas_digits.py --num_epochs=3 \\
        --architecture="[[0], [1, 0]]" \\
        --nn_config="{'num_layers': 2, 'input_sizes': [8, 8, 1], 'output_sizes': [10], \\
            'embedding': {'0': {'opt_id': 0, 'opt_type': 'convolution', \\
            'opt_params': {'filter_size': '3', 'num_filter': '16', 'stride': '1'}}, \\
            '1': {'opt_id': 1, 'opt_type': 'reduction', \\
            'opt_params': {'reduction_type': 'max_pooling', 'pool_size': 2}}}}"
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import katib_nas  # noqa: E402

INPUT = [8, 8, 1]
CLASSES = 10


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--architecture", required=True, help="operation id and skip flags per layer")
    p.add_argument("--nn_config", required=True, help="layers, sizes and the operations' embedding")
    p.add_argument("--num_epochs", type=int, default=10)
    p.add_argument("--num_gpus", type=int, default=0, help="accepted for Katib's flags; CPU only")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=0, help="weights and batch order")
    p.add_argument("--data_seed", type=int, default=1234, help="train/validation split")
    args = p.parse_args(argv)
    try:
        args.config = katib_nas.enas_nn_config(args.nn_config)
        args.arch = katib_nas.enas_architecture(args.architecture, args.config)
        args.ops = {i: katib_nas.enas_op_params(op) for i, op in args.config["embedding"].items()}
    except katib_nas.NasArgumentError as e:
        p.error(str(e))
    if args.config["input_sizes"] != INPUT or args.config["output_sizes"][-1] != CLASSES:
        p.error(f"this trial trains on 8x8 greyscale digits: graphConfig.inputSizes must be {INPUT} "
                f"and outputSizes [{CLASSES}], got {args.config['input_sizes']} and "
                f"{args.config['output_sizes']}")
    if args.num_epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        p.error("--num_epochs and --batch_size must be >= 1, --lr > 0")
    return args


def shapes(arch, ops, input_sizes):
    """Each layer's (height, width, channels), from the input (layer 0) on:
    what the network will build, computed without JAX."""
    out = [tuple(input_sizes)]
    for i, layer in enumerate(arch):
        sources = [out[i]] + [out[j] for j in range(i) if layer[1 + j] == 1]
        h = max(s[0] for s in sources)
        w = max(s[1] for s in sources)
        c = sum(s[2] for s in sources)
        op = ops[layer[0]]
        kind = op["kind"]
        if kind == "reduction":
            if h > 1 and w > 1:
                stride = op["stride"] or op["pool_size"]
                h = (h - op["pool_size"]) // stride + 1
                w = (w - op["pool_size"]) // stride + 1
        else:
            h, w = -(-h // op["stride"]), -(-w // op["stride"])
            c = op["num_filter"] if kind != "depthwise_convolution" else c * op["depth_multiplier"]
        if h < 1 or w < 1:
            raise katib_nas.NasArgumentError(f"layer {i} reduces the image to nothing")
        out.append((h, w, c))
    return out


def build(arch, ops, input_sizes):
    """(init(key) -> weights, apply(weights, x) -> logits) of the child network."""
    import nas_jax as nj
    from nas_jax import jax, jnp

    sizes = shapes(arch, ops, input_sizes)

    def concat(tensors):
        if len(tensors) == 1:
            return tensors[0]
        size = max(t.shape[1] for t in tensors)
        padded = []
        for t in tensors:
            diff = size - t.shape[1]
            before, after = diff // 2, diff - diff // 2
            padded.append(jnp.pad(t, ((0, 0), (before, after), (before, after), (0, 0))))
        return jnp.concatenate(padded, axis=-1)

    def init(key):
        keys = iter(jax.random.split(key, 2 * len(arch) + 1))
        layers = []
        for i, layer in enumerate(arch):
            op, c_in = ops[layer[0]], sum(
                [sizes[i][2]] + [sizes[j][2] for j in range(i) if layer[1 + j] == 1])
            kind, p = op["kind"], {}
            if kind == "convolution":
                k = op["filter_size"]
                p["w"] = nj.he(next(keys), (k, k, c_in, op["num_filter"]), k * k * c_in)
            elif kind in ("separable_convolution", "depthwise_convolution"):
                k, m = op["filter_size"], op["depth_multiplier"]
                p["dw"] = nj.he(next(keys), (k, k, 1, c_in * m), k * k)
                if kind == "separable_convolution":
                    p["pw"] = nj.he(next(keys), (1, 1, c_in * m, op["num_filter"]), c_in * m)
            if kind != "reduction":
                c_out = sizes[i + 1][2]
                p["bias"], p["scale"], p["shift"] = jnp.zeros(c_out), jnp.ones(c_out), jnp.zeros(c_out)
            layers.append(p)
        c_last = sizes[-1][2]
        dense = jax.random.normal(next(keys), (c_last, CLASSES)) / jnp.sqrt(c_last)
        return {"layers": layers, "dense": dense, "dense_bias": jnp.zeros(CLASSES)}

    def apply(weights, x):
        outputs = [x]
        for i, (layer, p) in enumerate(zip(arch, weights["layers"])):
            op = ops[layer[0]]
            h = concat([outputs[i]] + [outputs[j] for j in range(i) if layer[1 + j] == 1])
            if op["kind"] == "reduction":
                if h.shape[1] > 1 and h.shape[2] > 1:
                    kind = "max" if op["reduction_type"] == "max_pooling" else "avg"
                    size = op["pool_size"]
                    h = nj.pool(h, kind, size, op["stride"] or size, "VALID")
            else:
                h = jax.nn.relu(h)
                if op["kind"] == "convolution":
                    h = nj.conv(h, p["w"], op["stride"], "SAME")
                else:
                    h = nj.depthwise(h, p["dw"], op["stride"], "SAME")
                    if op["kind"] == "separable_convolution":
                        h = nj.conv(h, p["pw"])
                h = nj.batch_norm(h + p["bias"], p["scale"], p["shift"])
            outputs.append(h)
        pooled = jnp.mean(outputs[-1], axis=(1, 2))
        return pooled @ weights["dense"] + weights["dense_bias"]

    return init, apply, sizes


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()
    log = sys.stderr
    ops = {i: dict(params, kind=args.config["embedding"][i]["opt_type"]) for i, params in args.ops.items()}
    print(f">>> architecture {args.arch}", file=log)
    for i, layer in enumerate(args.arch):
        print(f"layer {i + 1}: {ops[layer[0]]}, skips from {[j for j in range(i) if layer[1 + j]]}", file=log)

    try:
        shapes(args.arch, ops, args.config["input_sizes"])
    except katib_nas.NasArgumentError as e:
        print(f"enas_digits.py: error: {e}", file=log)
        return 2

    import nas_jax as nj
    import numpy as np
    from nas_jax import jax, jnp
    from sklearn.model_selection import train_test_split

    x, y = nj.digits()
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=450, stratify=y, random_state=args.data_seed)
    init, apply, sizes = build(args.arch, ops, args.config["input_sizes"])
    weights = init(jax.random.PRNGKey(args.seed))
    print(f">>> layer shapes {sizes}; {nj.count(weights)} weights", file=log)

    def loss_and_logits(w, xb, yb):
        logits = apply(w, xb)
        return nj.cross_entropy(logits, yb), logits

    @jax.jit
    def train_step(w, adam, xb, yb):
        (value, logits), grads = jax.value_and_grad(loss_and_logits, has_aux=True)(w, xb, yb)
        w, adam = nj.adam_step(w, grads, adam, args.lr)
        return w, adam, value, jnp.sum(jnp.argmax(logits, axis=1) == yb)

    @jax.jit
    def evaluate(w, xb, yb):
        value, logits = loss_and_logits(w, xb, yb)
        return value, jnp.mean(jnp.argmax(logits, axis=1) == yb)

    adam = nj.adam_init(weights)
    batch = min(args.batch_size, len(x_train))
    steps = len(x_train) // batch
    rng = np.random.RandomState(args.seed)
    for epoch in range(args.num_epochs):
        order = rng.permutation(len(x_train))
        total_loss, correct = 0.0, 0
        for step in range(steps):
            idx = order[step * batch:(step + 1) * batch]
            weights, adam, value, right = train_step(weights, adam, x_train[idx], y_train[idx])
            total_loss += float(value)
            correct += int(right)
        val_loss, val_accuracy = (float(v) for v in evaluate(weights, x_val, y_val))
        if not np.isfinite(total_loss) or not np.isfinite(val_loss):
            print(f"diverged at epoch {epoch + 1}", file=log)
            return 3
        print(f"\nTotal Epoch {epoch + 1}/{args.num_epochs} ({time.monotonic() - started:.1f} s)", file=log)
        print(f"Training-Accuracy={correct / (steps * batch):.4f}")
        print(f"Training-Loss={total_loss / steps:.4f}")
        print(f"Validation-Accuracy={val_accuracy:.4f}")
        print(f"Validation-Loss={val_loss:.4f}", flush=True)
    print(f"done: {args.num_epochs} epochs in {time.monotonic() - started:.1f} s", file=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
