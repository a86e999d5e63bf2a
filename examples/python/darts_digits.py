#!/usr/bin/env python3
"""DARTS (differentiable architecture search) on scikit-learn's digits, in JAX.

A trial of Katib's ``darts`` algorithm, like Katib's darts-cnn-cifar10 image
but small enough for a CPU: it reads Katib's three DARTS parameters
(``--algorithm-settings``, ``--search-space``, ``--num-layers``, in Katib's
formats; see katib_nas.py), builds Katib's search network — a stem
convolution, ``num_layers`` cells (reduction cells at 1/3 and 2/3 of the
depth, channels doubled there), each cell a DAG of ``num_nodes`` nodes whose
every edge is a *mixed operation*: the sum of all the search space's
operations (and ``none``) weighted by softmax(alpha) — and trains it with
DARTS's bilevel updates, alternating per mini-batch:

1. the architecture weights alpha, by Adam on the validation half's loss
   (betas 0.5/0.999, ``alpha_lr``, ``alpha_weight_decay``). By default the
   second-order step of the DARTS paper, as Katib's ``Architect`` does:
   the gradient of L_val(w - lr * (momentum + grad L_train(w) + wd * w),
   alpha), here differentiated exactly by JAX (Katib approximates its
   Hessian-vector product by finite differences). ``--first-order`` uses
   grad L_val(w, alpha) instead (DARTS's first-order variant, faster);
2. the network weights w, by SGD with momentum on the training half
   (``w_lr`` cosine-annealed to ``w_lr_min``, ``w_momentum``,
   ``w_weight_decay``, gradients clipped to norm ``w_grad_clip``).

After every epoch it derives the genotype as Katib does (each node keeps its
two strongest edges, each edge its strongest operation but ``none``) and
prints one line of metrics on stdout; at the end the genotype of the best
epoch, Katib's objective for DARTS::

    epoch=1 Train-Loss=1.62 Train-Accuracy=0.47 Validation-Loss=1.21 Validation-Accuracy=0.71
    Best-Genotype=Genotype(normal=[[('separable_convolution_3x3',1),...]],normal_concat=range(2,4),...)

Data: ``sklearn.datasets.load_digits`` (1,797 8x8 greyscale images, shipped
inside scikit-learn: nothing is downloaded), split in halves as Katib's
trial splits CIFAR-10's training set: one half trains w, the other alpha and
is the validation set. Batch normalisation uses the statistics of the batch
(evaluation: of the whole validation half in one batch), as the search
network's non-affine BN does in training. ``num_workers`` and
``print_step`` are read; there are no loader workers. ``--seed`` fixes
everything (same flags, same numbers on one machine).

    examples/python/.venv/bin/python examples/python/darts_digits.py \\
        --algorithm-settings="{'num_epochs': '4', 'num_nodes': '2', 'init_channels': '8'}" \\
        --search-space="['separable_convolution_3x3', 'max_pooling_3x3', 'skip_connection']" \\
        --num-layers=2
"""

import argparse
import math
import os
import sys
import time
from collections import namedtuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import katib_nas  # noqa: E402

# Katib's genotype (its search_space.py): printed with str(), spaces removed.
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algorithm-settings", default="{}", help="Katib's DARTS settings (a dict)")
    p.add_argument("--search-space", required=True, help="Katib's operation names (a list)")
    p.add_argument("--num-layers", required=True, help="cells in the network")
    p.add_argument("--first-order", action="store_true",
                   help="alpha's gradient at the current weights, not after a virtual step")
    p.add_argument("--seed", type=int, default=2, help="weights, alphas and batch order")
    args = p.parse_args(argv)
    try:
        args.settings = katib_nas.darts_settings(args.algorithm_settings)
        args.space = katib_nas.darts_search_space(args.search_space)
        args.layers = katib_nas.num_layers(args.num_layers)
    except katib_nas.NasArgumentError as e:
        p.error(str(e))
    return args


def cell_layout(num_layers):
    """(reduction, channel multiplier) of each cell, as Katib's NetworkCNN
    lays them out: one layer, normal; two, normal then reduction; more,
    reductions at num_layers // 3 and 2 * num_layers // 3."""
    layout, multiplier = [], 1
    for i in range(num_layers):
        reduction = num_layers > 1 and (
            (num_layers == 2 and i == 1) or (num_layers > 2 and i in (num_layers // 3, 2 * num_layers // 3))
        )
        if reduction:
            multiplier *= 2
        layout.append((reduction, multiplier))
    return layout


def genotype(primitives, alpha_normal, alpha_reduce, num_nodes):
    """Katib's SearchSpace.parse: per node, the two edges whose best
    operation (``none``, last, left out) weighs most, strongest first."""

    def parse(alphas):
        gene = []
        for edges in alphas:
            edges = [list(map(float, row)) for row in edges]
            best = [max(range(len(row) - 1), key=lambda o, row=row: (row[o], -o)) for row in edges]
            strength = [row[b] for row, b in zip(edges, best)]
            order = sorted(range(len(edges)), key=lambda e: (-strength[e], e))[:2]
            gene.append([(primitives[best[e]], e) for e in order])
        return gene

    concat = range(2, 2 + num_nodes)
    return Genotype(normal=parse(alpha_normal), normal_concat=concat,
                    reduce=parse(alpha_reduce), reduce_concat=concat)


def katib_genotype_text(g):
    return str(g).replace(" ", "")


def build(primitives, layers, settings, in_channels, classes):
    """The search network as (init(key) -> weights, apply(weights, alphas, x) -> logits)."""
    import nas_jax as nj
    from nas_jax import jax, jnp

    he, conv, bn = nj.he, nj.conv, nj.batch_norm

    # Each piece: (init(key) -> params, apply(params, x) -> y).
    def std_conv(c_in, c_out, k, stride, padding):
        def init(key):
            return {"w": he(key, (k, k, c_in, c_out), k * k * c_in)}

        def apply(p, x):
            return bn(conv(jax.nn.relu(x), p["w"], stride, padding))
        return init, apply

    def dil_conv(c, k, stride, padding, dilation):
        def init(key):
            a, b = jax.random.split(key)
            return {"dw": he(a, (k, k, 1, c), k * k), "pw": he(b, (1, 1, c, c), c)}

        def apply(p, x):
            y = nj.depthwise(jax.nn.relu(x), p["dw"], stride, padding, dilation)
            return bn(conv(y, p["pw"]))
        return init, apply

    def sep_conv(c, k, stride):
        first, second = dil_conv(c, k, stride, k // 2, 1), dil_conv(c, k, 1, k // 2, 1)

        def init(key):
            a, b = jax.random.split(key)
            return {"a": first[0](a), "b": second[0](b)}

        def apply(p, x):
            return second[1](p["b"], first[1](p["a"], x))
        return init, apply

    def factorized_reduce(c_in, c_out):
        half = c_out // 2

        def init(key):
            a, b = jax.random.split(key)
            return {"a": he(a, (1, 1, c_in, half), c_in), "b": he(b, (1, 1, c_in, c_out - half), c_in)}

        def apply(p, x):
            x = jax.nn.relu(x)
            # The second path sees the input shifted by one pixel (padded
            # back to its size, so odd sizes reduce alike).
            shifted = jnp.pad(x[:, 1:, 1:, :], ((0, 0), (0, 1), (0, 1), (0, 0)))
            return bn(jnp.concatenate([conv(x, p["a"], 2), conv(shifted, p["b"], 2)], axis=-1))
        return init, apply

    def stateless(fn):
        return (lambda key: {}), (lambda p, x: fn(x))

    def operation(name, c, stride):
        if name == "none":
            return stateless(lambda x: x[:, ::stride, ::stride, :] * 0.0)
        family, k = katib_nas.darts_operation(name)
        if family == "skip_connection":
            return stateless(lambda x: x) if stride == 1 else factorized_reduce(c, c)
        if family in ("max_pooling", "avg_pooling"):
            kind = family.split("_")[0]
            return stateless(lambda x: bn(nj.pool(x, kind, k, stride, k // 2)))
        if family == "separable_convolution":
            return sep_conv(c, k, stride)
        if family == "dilated_convolution":  # 3x3 sees 5x5, 5x5 sees 9x9
            return dil_conv(c, k, stride, k - 1, 2)
        return std_conv(c, c, k, stride, k // 2)  # convolution_kxk

    def mixed(c, stride):
        ops = [operation(name, c, stride) for name in primitives]

        def init(key):
            return [op[0](k) for op, k in zip(ops, jax.random.split(key, len(ops)))]

        def apply(p, x, weights):
            return sum(weights[i] * op[1](p[i], x) for i, op in enumerate(ops))
        return init, apply

    num_nodes = settings["num_nodes"]
    c_stem = settings["stem_multiplier"] * settings["init_channels"]
    cells, c_pp, c_p, reduction_prev = [], c_stem, c_stem, False
    for reduction, multiplier in cell_layout(layers):
        c = settings["init_channels"] * multiplier
        pre0 = factorized_reduce(c_pp, c) if reduction_prev else std_conv(c_pp, c, 1, 1, 0)
        pre1 = std_conv(c_p, c, 1, 1, 0)
        edges = [[mixed(c, 2 if reduction and j < 2 else 1) for j in range(2 + i)] for i in range(num_nodes)]
        cells.append((reduction, pre0, pre1, edges))
        c_pp, c_p, reduction_prev = c_p, c * num_nodes, reduction

    def init(key):
        keys = iter(jax.random.split(key, 3 + len(cells)))
        weights = {
            "stem": he(next(keys), (3, 3, in_channels, c_stem), 9 * in_channels),
            "stem_scale": jnp.ones((c_stem,)),
            "stem_shift": jnp.zeros((c_stem,)),
            "fc": jax.random.normal(next(keys), (c_p, classes)) / math.sqrt(c_p),
            "fc_bias": jnp.zeros((classes,)),
            "cells": [],
        }
        for _, pre0, pre1, edges in cells:
            k0, k1, ke = jax.random.split(next(keys), 3)
            edge_keys = iter(jax.random.split(ke, sum(len(n) for n in edges)))
            weights["cells"].append({
                "pre0": pre0[0](k0),
                "pre1": pre1[0](k1),
                "edges": [[e[0](next(edge_keys)) for e in node] for node in edges],
            })
        return weights

    def apply(weights, alphas, x):
        mix = {
            False: [jax.nn.softmax(a, axis=-1) for a in alphas["normal"]],
            True: [jax.nn.softmax(a, axis=-1) for a in alphas["reduce"]],
        }
        s = bn(conv(x, weights["stem"], 1, 1), weights["stem_scale"], weights["stem_shift"])
        s0 = s1 = s
        for (reduction, pre0, pre1, edges), p in zip(cells, weights["cells"]):
            states = [pre0[1](p["pre0"], s0), pre1[1](p["pre1"], s1)]
            for node, node_p, w in zip(edges, p["edges"], mix[reduction]):
                states.append(sum(e[1](ep, h, w[j]) for j, (e, ep, h) in enumerate(zip(node, node_p, states))))
            s0, s1 = s1, jnp.concatenate(states[2:], axis=-1)
        pooled = jnp.mean(s1, axis=(1, 2))
        return pooled @ weights["fc"] + weights["fc_bias"]

    return init, apply


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()
    settings, layers = args.settings, args.layers
    primitives = list(args.space) + ["none"]  # Katib appends the zero operation, last

    import nas_jax as nj
    import numpy as np
    from nas_jax import jax, jnp

    log = sys.stderr
    print(">>> Algorithm settings", file=log)
    for key, value in settings.items():
        print(f"{key}\t{value}", file=log)
    print(f">>> Primitives {primitives}; {layers} layer(s) {cell_layout(layers)}", file=log)

    x, y = nj.digits()
    order = np.random.RandomState(args.seed).permutation(len(x))
    half = len(x) // 2
    x_train, y_train = x[order[:half]], y[order[:half]]
    x_valid, y_valid = x[order[half:]], y[order[half:]]
    batch = min(settings["batch_size"], half)
    steps = half // batch

    init, apply = build(primitives, layers, settings, 1, 10)
    key_w, key_a, key_n = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    weights = init(key_w)
    n_ops, num_nodes = len(primitives), settings["num_nodes"]
    ka = iter(jax.random.split(key_a, 2 * num_nodes))
    alphas = {
        "normal": [1e-3 * jax.random.normal(next(ka), (i + 2, n_ops)) for i in range(num_nodes)],
        "reduce": [1e-3 * jax.random.normal(next(ka), (i + 2, n_ops)) for i in range(num_nodes)]
        if layers > 1 else [],
    }
    print(f">>> {nj.count(weights)} weights, {nj.count(alphas)} alphas, "
          f"{steps} steps of {batch} per epoch", file=log)

    def loss_and_logits(w, a, xb, yb):
        logits = apply(w, a, xb)
        return nj.cross_entropy(logits, yb), logits

    def loss(w, a, xb, yb):
        return loss_and_logits(w, a, xb, yb)[0]

    tree = nj.tree
    s = settings

    def alpha_gradient(w, momentum, a, lr, xt, yt, xv, yv):
        if args.first_order:
            return jax.grad(loss, argnums=1)(w, a, xv, yv)

        def after_virtual_step(a):
            g = jax.grad(loss)(w, a, xt, yt)
            virtual = tree.tree_map(
                lambda p, m, d: p - lr * (s["w_momentum"] * m + d + s["w_weight_decay"] * p), w, momentum, g)
            return loss(virtual, a, xv, yv)
        return jax.grad(after_virtual_step)(a)

    @jax.jit
    def train_step(w, momentum, a, adam, lr, xt, yt, xv, yv):
        # 1. alpha: Adam (L2 weight decay, as torch's) on the validation batch.
        ga = alpha_gradient(w, momentum, a, lr, xt, yt, xv, yv)
        a, adam = nj.adam_step(a, ga, adam, s["alpha_lr"], b1=0.5, b2=0.999,
                               weight_decay=s["alpha_weight_decay"])
        # 2. w: SGD with momentum on the training batch, gradients clipped.
        (value, logits), gw = jax.value_and_grad(loss_and_logits, has_aux=True)(w, a, xt, yt)
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in tree.tree_leaves(gw)))
        scale = jnp.minimum(1.0, s["w_grad_clip"] / (norm + 1e-6))
        gw = tree.tree_map(lambda g, p: g * scale + s["w_weight_decay"] * p, gw, w)
        momentum = tree.tree_map(lambda b, g: s["w_momentum"] * b + g, momentum, gw)
        w = tree.tree_map(lambda p, b: p - lr * b, w, momentum)
        correct = jnp.sum(jnp.argmax(logits, axis=1) == yt)
        return w, momentum, a, adam, value, correct

    @jax.jit
    def evaluate(w, a, xb, yb):
        value, logits = loss_and_logits(w, a, xb, yb)
        return value, jnp.mean(jnp.argmax(logits, axis=1) == yb)

    momentum, adam = tree.tree_map(jnp.zeros_like, weights), nj.adam_init(alphas)
    epochs = s["num_epochs"]
    best_accuracy, best_genotype = -1.0, None
    rng = np.random.RandomState(args.seed + 1)
    for epoch in range(epochs):
        # Cosine annealing from w_lr to w_lr_min, one value per epoch (torch's CosineAnnealingLR).
        lr = s["w_lr_min"] + (s["w_lr"] - s["w_lr_min"]) * (1 + math.cos(math.pi * epoch / epochs)) / 2
        train_order, valid_order = rng.permutation(half), rng.permutation(len(x_valid))
        total_loss, total_correct = 0.0, 0
        for step in range(steps):
            ti = train_order[step * batch:(step + 1) * batch]
            vi = valid_order[step * batch:(step + 1) * batch]
            weights, momentum, alphas, adam, value, correct = train_step(
                weights, momentum, alphas, adam, jnp.float32(lr),
                x_train[ti], y_train[ti], x_valid[vi], y_valid[vi])
            total_loss += float(value)
            total_correct += int(correct)
            if step % s["print_step"] == 0 or step == steps - 1:
                print(f"Train: [{epoch + 1}/{epochs}] Step {step:03d}/{steps - 1:03d} "
                      f"Loss {total_loss / (step + 1):.3f} ({time.monotonic() - started:.0f} s)", file=log)
        if not math.isfinite(total_loss):
            print(f"the training loss diverged at epoch {epoch + 1}", file=log)
            return 3
        val_loss, val_accuracy = evaluate(weights, alphas, x_valid, y_valid)
        val_loss, val_accuracy = float(val_loss), float(val_accuracy)
        g = genotype(primitives, [np.asarray(a) for a in alphas["normal"]],
                     [np.asarray(a) for a in alphas["reduce"]], num_nodes)
        print(">>> softmax(alpha), normal cell:", file=log)
        for a in alphas["normal"]:
            print(np.array2string(np.asarray(jax.nn.softmax(a, axis=-1)), precision=3), file=log)
        print(f"Model genotype = {g}", file=log)
        print(f"epoch={epoch + 1} Train-Loss={total_loss / steps:.4f} "
              f"Train-Accuracy={total_correct / (steps * batch):.4f} "
              f"Validation-Loss={val_loss:.4f} Validation-Accuracy={val_accuracy:.4f}", flush=True)
        if val_accuracy > best_accuracy:
            best_accuracy, best_genotype = val_accuracy, g

    print(f"Best-Validation-Accuracy={best_accuracy:.4f}", flush=True)
    print(f"Best-Genotype={katib_genotype_text(best_genotype)}", flush=True)
    print(f"done: {epochs} epochs in {time.monotonic() - started:.1f} s", file=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
