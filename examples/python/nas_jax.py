"""The JAX pieces the NAS trials share (darts_digits.py, enas_digits.py):
layers as plain functions over NHWC arrays, a cross-entropy, torch-style
Adam, and the digits images. Imported after the trial has read its flags,
so a bad flag fails fast without loading JAX.
"""

import math
import os

# Before JAX is imported: CPU only (no accelerator probing) and quiet.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

tree = jax.tree_util


def he(key, shape, fan_in):
    """He-normal initial weights."""
    return jax.random.normal(key, shape) * math.sqrt(2.0 / fan_in)


def conv(x, w, stride=1, padding=0, dilation=1, groups=1):
    """A 2-D convolution (``w`` is HWIO); ``padding`` a number of pixels or
    ``"SAME"`` (Keras's ``same``: output size ceil(input / stride))."""
    pad = padding if isinstance(padding, str) else ((padding, padding), (padding, padding))
    return lax.conv_general_dilated(
        x, w, (stride, stride), pad, rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)


def depthwise(x, w, stride=1, padding=0, dilation=1):
    """A depthwise convolution (``w`` is (k, k, 1, channels x multiplier),
    output channel ``c * multiplier + j`` from input channel ``c``, as
    TensorFlow's and torch's grouped convolutions), run as a dense
    convolution whose kernel is zero off the diagonal blocks: XLA's CPU
    grouped convolution is ~300x slower to differentiate, and on these
    small images the dense one costs little more."""
    channels = x.shape[-1]
    mask = jnp.repeat(jnp.eye(channels, dtype=w.dtype), w.shape[-1] // channels, axis=1)
    return conv(x, w * mask[None, None], stride, padding, dilation)


def batch_norm(x, scale=None, shift=None, eps=1e-5):
    """Batch normalisation with the batch's statistics (training mode); an
    affine one with ``scale`` and ``shift``."""
    mean = jnp.mean(x, axis=(0, 1, 2), keepdims=True)
    var = jnp.var(x, axis=(0, 1, 2), keepdims=True)
    y = (x - mean) * lax.rsqrt(var + eps)
    return y if scale is None else y * scale + shift


def pool(x, kind, size, stride, padding):
    """Max or average pooling over ``size`` x ``size`` windows; ``padding``
    pixels each side (an average counts only the pixels inside the image,
    as torch's ``count_include_pad=False``) or ``"VALID"``."""
    if isinstance(padding, str):
        pad = padding
    else:
        pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    window, strides = (1, size, size, 1), (1, stride, stride, 1)
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, pad)
    total = lax.reduce_window(x, 0.0, lax.add, window, strides, pad)
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    return total / lax.reduce_window(ones, 0.0, lax.add, window, strides, pad)


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer labels."""
    picked = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)
    return -jnp.mean(picked)


def adam_init(params):
    zeros = tree.tree_map(jnp.zeros_like, params)
    return zeros, tree.tree_map(jnp.zeros_like, params), jnp.zeros((), jnp.float32)


def adam_step(params, grads, state, lr, b1=0.9, b2=0.999, weight_decay=0.0, eps=1e-8):
    """torch.optim.Adam's update (weight decay as an L2 term in the
    gradient); returns the new parameters and state."""
    m, v, t = state
    t = t + 1
    grads = tree.tree_map(lambda g, p: g + weight_decay * p, grads, params)
    m = tree.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = tree.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    params = tree.tree_map(
        lambda p, m, v: p - lr * (m / (1 - b1 ** t)) / (jnp.sqrt(v / (1 - b2 ** t)) + eps),
        params, m, v)
    return params, (m, v, t)


def count(params):
    return sum(int(v.size) for v in tree.tree_leaves(params))


def digits():
    """scikit-learn's 1,797 8x8 digit images (NHWC, standardised) and labels."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = ((x - x.mean()) / x.std()).astype(np.float32).reshape(-1, 8, 8, 1)
    return x, y.astype(np.int32)
