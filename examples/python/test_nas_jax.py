"""The NAS trials' networks, in JAX: needs the ``--nas`` venv tier
(``examples/python/setup.sh --nas``), and skips itself by name without it.

    examples/python/.venv/bin/python -m unittest discover -s examples/python -p 'test_*.py'
"""

import importlib.util
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

HAVE_JAX = importlib.util.find_spec("jax") is not None and importlib.util.find_spec("sklearn") is not None
NEEDS_VENV = "needs JAX and scikit-learn: examples/python/setup.sh --nas, then run with examples/python/.venv/bin/python"


@unittest.skipUnless(HAVE_JAX, NEEDS_VENV)
class Layers(unittest.TestCase):
    def test_depthwise_matches_the_grouped_convolution(self):
        import nas_jax as nj
        from nas_jax import jax, jnp

        for size, channels, multiplier, k, stride, padding, dilation in [
            (8, 3, 1, 3, 1, 1, 1), (8, 3, 2, 3, 2, "SAME", 1), (7, 4, 1, 5, 2, 4, 2), (4, 3, 1, 3, 2, 2, 2),
        ]:
            x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, channels))
            w = jax.random.normal(jax.random.PRNGKey(1), (k, k, 1, channels * multiplier))
            ours = nj.depthwise(x, w, stride, padding, dilation)
            grouped = nj.conv(x, w, stride, padding, dilation, groups=channels)
            self.assertEqual(ours.shape, grouped.shape)
            self.assertLess(float(jnp.max(jnp.abs(ours - grouped))), 1e-4)

    def test_average_pooling_counts_only_the_pixels_inside(self):
        import nas_jax as nj
        from nas_jax import jnp

        x = jnp.ones((1, 4, 4, 1))
        self.assertTrue(bool(jnp.all(nj.pool(x, "avg", 3, 1, 1) == 1.0)))
        self.assertEqual(nj.pool(x, "max", 3, 2, 1).shape, (1, 2, 2, 1))


@unittest.skipUnless(HAVE_JAX, NEEDS_VENV)
class Darts(unittest.TestCase):
    def test_the_search_network_is_differentiable_in_alpha(self):
        import darts_digits
        import katib_nas
        from nas_jax import jax, jnp
        import nas_jax as nj

        settings = katib_nas.darts_settings("{'num_nodes': '2', 'init_channels': '4', 'stem_multiplier': '1'}")
        primitives = ["separable_convolution_3x3", "dilated_convolution_5x5", "avg_pooling_3x3",
                      "max_pooling_3x3", "skip_connection", "none"]
        init, apply = darts_digits.build(primitives, 2, settings, 1, 10)
        weights = init(jax.random.PRNGKey(0))
        alphas = {
            "normal": [jnp.zeros((i + 2, len(primitives))) for i in range(2)],
            "reduce": [jnp.zeros((i + 2, len(primitives))) for i in range(2)],
        }
        x, y = nj.digits()
        logits = apply(weights, alphas, x[:16])
        self.assertEqual(logits.shape, (16, 10))
        grads = jax.grad(lambda a: nj.cross_entropy(apply(weights, a, x[:16]), y[:16]))(alphas)
        for part in ("normal", "reduce"):
            self.assertGreater(float(sum(jnp.sum(jnp.abs(g)) for g in grads[part])), 0.0, part)


@unittest.skipUnless(HAVE_JAX, NEEDS_VENV)
class Enas(unittest.TestCase):
    def test_the_child_network_has_the_planned_shapes(self):
        import enas_digits
        from test_katib_nas import ENAS_ARCHITECTURE, ENAS_NN_CONFIG
        from nas_jax import jax, jnp

        args = enas_digits.parse_args([f"--architecture={ENAS_ARCHITECTURE}", f"--nn_config={ENAS_NN_CONFIG}"])
        ops = {i: dict(p, kind=args.config["embedding"][i]["opt_type"]) for i, p in args.ops.items()}
        init, apply, sizes = enas_digits.build(args.arch, ops, [8, 8, 1])
        weights = init(jax.random.PRNGKey(0))
        self.assertEqual(apply(weights, jnp.ones((3, 8, 8, 1))).shape, (3, 10))
        self.assertEqual(weights["dense"].shape, (sizes[-1][2], 10))


if __name__ == "__main__":
    unittest.main()
