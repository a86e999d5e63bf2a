"""The NAS trials' reading of Katib's parameters, with the standard library
only: ``python3 -m unittest discover -s examples/python -p 'test_*.py'``
(test_nas_jax.py, which needs the ``--nas`` venv tier, skips itself
without it).

The fixtures are the values Katib's services write: DARTS's as ktune's
``darts`` writes them for Katib's darts-gpu example (byte for byte Katib's,
see algorithms/src/suggest/darts.rs), ENAS's as Katib's enas service.py
writes them (``json.dumps`` of its dicts, ``"`` turned into ``'``, the
embedding's int keys turned into strings) for enas-digits.yaml's space.
"""

import contextlib
import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import darts_digits  # noqa: E402  (imports JAX only when it trains)
import enas_digits  # noqa: E402
import katib_nas  # noqa: E402

DARTS_SETTINGS = (
    "{'num_epochs': '6', 'w_lr': '0.05', 'w_lr_min': 0.001, 'w_momentum': 0.9, "
    "'w_weight_decay': 0.0003, 'w_grad_clip': 5.0, 'alpha_lr': '0.003', "
    "'alpha_weight_decay': 0.001, 'batch_size': '32', 'num_workers': 4, "
    "'init_channels': '8', 'print_step': 50, 'num_nodes': '2', 'stem_multiplier': 3}"
)
DARTS_SPACE = (
    "['separable_convolution_3x3', 'dilated_convolution_3x3', 'dilated_convolution_5x5', "
    "'avg_pooling_3x3', 'max_pooling_3x3', 'skip_connection']"
)

ENAS_ARCHITECTURE = "[[5], [14, 0], [3, 1, 0], [12, 0, 1, 1]]"
ENAS_NN_CONFIG = (
    "{'num_layers': 4, 'input_sizes': [8, 8, 1], 'output_sizes': [10], 'embedding': "
    "{'5': {'opt_id': 5, 'opt_type': 'separable_convolution', 'opt_params': "
    "{'filter_size': '3', 'num_filter': '16', 'stride': '1', 'depth_multiplier': '2'}}, "
    "'14': {'opt_id': 14, 'opt_type': 'reduction', 'opt_params': "
    "{'reduction_type': 'max_pooling', 'pool_size': 2}}, "
    "'3': {'opt_id': 3, 'opt_type': 'convolution', 'opt_params': "
    "{'filter_size': '5', 'num_filter': '32', 'stride': '1'}}, "
    "'12': {'opt_id': 12, 'opt_type': 'depthwise_convolution', 'opt_params': "
    "{'filter_size': '3', 'stride': '1', 'depth_multiplier': '1'}}}}"
)


def refused(parse_args, argv):
    """The error argparse prints when ``parse_args`` refuses ``argv``."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parse_args(argv)
        except SystemExit as e:
            if e.code == 2:
                return err.getvalue()
    raise AssertionError(f"{argv} was accepted")


class DartsArguments(unittest.TestCase):
    def test_settings_are_typed_over_katibs_defaults(self):
        s = katib_nas.darts_settings(DARTS_SETTINGS)
        self.assertEqual(s["num_epochs"], 6)
        self.assertEqual(s["w_lr"], 0.05)
        self.assertEqual(s["alpha_lr"], 0.003)
        self.assertEqual(s["batch_size"], 32)
        self.assertEqual(s["num_nodes"], 2)
        self.assertIsInstance(s["w_momentum"], float)
        # A setting Katib's service left out takes its default; null too.
        s = katib_nas.darts_settings("{'num_epochs': '1', 'batch_size': null}")
        self.assertEqual((s["num_epochs"], s["batch_size"], s["init_channels"]), (1, 128, 16))

    def test_values_still_wrapped_in_the_yamls_quotes_are_read(self):
        # Katib's YAML writes --search-space="${...}": no shell removes the quotes locally.
        self.assertEqual(katib_nas.darts_search_space(f'"{DARTS_SPACE}"'),
                         katib_nas.darts_search_space(DARTS_SPACE))
        self.assertEqual(katib_nas.num_layers('"3"'), 3)
        self.assertEqual(katib_nas.darts_settings(f'"{DARTS_SETTINGS}"')["num_epochs"], 6)

    def test_search_space_names_map_to_operation_families(self):
        space = katib_nas.darts_search_space(DARTS_SPACE)
        self.assertEqual(len(space), 6)
        self.assertEqual(katib_nas.darts_operation("dilated_convolution_5x5"), ("dilated_convolution", 5))
        self.assertEqual(katib_nas.darts_operation("max_pooling_3x3"), ("max_pooling", 3))
        self.assertEqual(katib_nas.darts_operation("skip_connection"), ("skip_connection", None))

    def test_malformed_values_are_refused_with_the_flag_named(self):
        cases = [
            (katib_nas.darts_settings, "{'num_epochs': 'many'}", "num_epochs"),
            (katib_nas.darts_settings, "{'batch_size': '0'}", "batch_size"),
            (katib_nas.darts_settings, "['num_epochs']", "not a dict"),
            (katib_nas.darts_settings, "{'num_epochs': ", "not Katib's JSON"),
            (katib_nas.darts_search_space, "['conv_3x3']", "unknown operation"),
            (katib_nas.darts_search_space, "['max_pooling_3x5']", "unknown operation"),
            (katib_nas.darts_search_space, "['max_pooling_2x2']", "odd kernel"),
            (katib_nas.darts_search_space, "['none']", "unknown operation"),
            (katib_nas.darts_search_space, "[]", "non-empty list"),
            (katib_nas.darts_search_space, "['skip_connection', 'skip_connection']", "twice"),
            (katib_nas.num_layers, "0", "positive integer"),
            (katib_nas.num_layers, "two", "positive integer"),
            (katib_nas.num_layers, "", "positive integer"),
        ]
        for function, text, message in cases:
            with self.subTest(text=text):
                with self.assertRaises(katib_nas.NasArgumentError) as caught:
                    function(text)
                self.assertIn(message, str(caught.exception))

    def test_the_trial_parses_katibs_flags(self):
        args = darts_digits.parse_args([
            f"--algorithm-settings={DARTS_SETTINGS}", f"--search-space={DARTS_SPACE}", "--num-layers=3",
        ])
        self.assertEqual(args.layers, 3)
        self.assertEqual(args.space[-1], "skip_connection")
        self.assertFalse(args.first_order)
        self.assertIn("unknown operation 'conv_9x9'",
                      refused(darts_digits.parse_args, ["--search-space=['conv_9x9']", "--num-layers=1"]))

    def test_cells_are_laid_out_as_katibs_network(self):
        self.assertEqual(darts_digits.cell_layout(1), [(False, 1)])
        self.assertEqual(darts_digits.cell_layout(2), [(False, 1), (True, 2)])
        self.assertEqual(darts_digits.cell_layout(3), [(False, 1), (True, 2), (True, 4)])
        self.assertEqual([r for r, _ in darts_digits.cell_layout(8)],
                         [False, False, True, False, False, True, False, False])

    def test_the_genotype_is_printed_as_katibs(self):
        primitives = ["max_pooling_3x3", "skip_connection", "separable_convolution_3x3", "none"]
        normal = [
            # node 0: edge 1's best is skip (0.9 > 0.5 of edge 0's max_pooling); 'none' never wins
            [[0.5, 0.1, 0.2, 9.0], [0.0, 0.9, 0.3, 0.0]],
            # node 1: edges 2 and 0 win (0.8, 0.7); edge 1 loses (0.6)
            [[0.1, 0.2, 0.7, 0.0], [0.6, 0.0, 0.0, 0.0], [0.0, 0.0, 0.8, 0.0]],
        ]
        g = darts_digits.genotype(primitives, normal, [], 2)
        self.assertEqual(
            darts_digits.katib_genotype_text(g),
            "Genotype(normal=[[('skip_connection',1),('max_pooling_3x3',0)],"
            "[('separable_convolution_3x3',2),('separable_convolution_3x3',0)]],"
            "normal_concat=range(2,4),reduce=[],reduce_concat=range(2,4))",
        )


class EnasArguments(unittest.TestCase):
    def test_katibs_fixture_is_read(self):
        config = katib_nas.enas_nn_config(ENAS_NN_CONFIG)
        self.assertEqual(config["num_layers"], 4)
        self.assertEqual(config["input_sizes"], [8, 8, 1])
        self.assertEqual(sorted(config["embedding"]), [3, 5, 12, 14])
        arch = katib_nas.enas_architecture(ENAS_ARCHITECTURE, config)
        self.assertEqual(arch, [[5], [14, 0], [3, 1, 0], [12, 0, 1, 1]])
        self.assertEqual(
            katib_nas.enas_op_params(config["embedding"][5]),
            {"num_filter": 16, "filter_size": 3, "stride": 1, "depth_multiplier": 2})
        self.assertEqual(
            katib_nas.enas_op_params(config["embedding"][14]),
            {"reduction_type": "max_pooling", "pool_size": 2, "stride": None})

    def test_the_network_follows_the_skip_connections(self):
        args = enas_digits.parse_args([
            f"--architecture={ENAS_ARCHITECTURE}", f"--nn_config={ENAS_NN_CONFIG}", "--num_epochs=1",
        ])
        ops = {i: dict(p, kind=args.config["embedding"][i]["opt_type"]) for i, p in args.ops.items()}
        shapes = enas_digits.shapes(args.arch, ops, [8, 8, 1])
        # layer 1: separable conv to 16 filters; layer 2: 2x2 max pooling;
        # layer 3: conv 5x5 to 32 filters over layer 2 plus the input (skip
        # to layer 0, layer 2 padded 4x4 -> 8x8); layer 4: depthwise over
        # layer 3, layer 1 and layer 2 (padded): 32 + 16 + 16 channels.
        self.assertEqual(shapes, [(8, 8, 1), (8, 8, 16), (4, 4, 16), (8, 8, 32), (8, 8, 64)])

    def test_quoted_values_are_read(self):
        config = katib_nas.enas_nn_config(f'"{ENAS_NN_CONFIG}"')
        self.assertEqual(katib_nas.enas_architecture(f'"{ENAS_ARCHITECTURE}"', config)[3], [12, 0, 1, 1])

    def test_malformed_architectures_are_refused(self):
        config = katib_nas.enas_nn_config(ENAS_NN_CONFIG)
        cases = [
            ("[[5], [14, 0], [3, 1, 0]]", "4 layers"),
            ("[[5], [14], [3, 1, 0], [12, 0, 1, 1]]", "layer 1"),
            ("[[5], [14, 0], [3, 1, 2], [12, 0, 1, 1]]", "0 or 1"),
            ("[[7], [14, 0], [3, 1, 0], [12, 0, 1, 1]]", "not in --nn_config"),
            ("[['5'], [14, 0], [3, 1, 0], [12, 0, 1, 1]]", None),  # a string id still reads
        ]
        for text, message in cases:
            with self.subTest(text=text):
                if message is None:
                    self.assertEqual(katib_nas.enas_architecture(text, config)[0], [5])
                    continue
                with self.assertRaises(katib_nas.NasArgumentError) as caught:
                    katib_nas.enas_architecture(text, config)
                self.assertIn(message, str(caught.exception))

    def test_malformed_configs_are_refused(self):
        cases = [
            ("{'num_layers': 1, 'input_sizes': [8, 8, 1], 'output_sizes': [10]}", "lacks embedding"),
            ("{'num_layers': 1, 'input_sizes': [8, 8], 'output_sizes': [10], 'embedding': {}}", "input_sizes"),
            ("{'num_layers': 1, 'input_sizes': [8, 8, 1], 'output_sizes': [10], "
             "'embedding': {'0': {'opt_id': 0, 'opt_type': 'pooling', 'opt_params': {}}}}", "opt_type"),
            ("{'num_layers': 0, 'input_sizes': [8, 8, 1], 'output_sizes': [10], 'embedding': {}}", "below 1"),
        ]
        for text, message in cases:
            with self.subTest(text=text):
                with self.assertRaises(katib_nas.NasArgumentError) as caught:
                    katib_nas.enas_nn_config(text)
                self.assertIn(message, str(caught.exception))

    def test_an_image_other_than_the_digits_is_refused(self):
        other = ENAS_NN_CONFIG.replace("[8, 8, 1]", "[32, 32, 3]")
        message = refused(enas_digits.parse_args, [f"--architecture={ENAS_ARCHITECTURE}", f"--nn_config={other}"])
        self.assertIn("inputSizes must be [8, 8, 1]", message)


if __name__ == "__main__":
    unittest.main()
