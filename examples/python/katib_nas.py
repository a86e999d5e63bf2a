"""Katib's neural-architecture-search trial parameters, read with the
standard library only (so their tests need no virtual environment).

Katib's NAS services hand a trial Python-style JSON: ``json.dumps`` output
with every ``"`` turned into ``'``. Katib's own trial programs undo that with
``.replace("'", '"')`` and ``json.loads``; so do these functions, and they
check what they read, so that a malformed value stops the trial with a
message naming it instead of a traceback deep in the training code.

- DARTS (``darts``): ``--algorithm-settings`` (a dict over Katib's defaults;
  a value the user set stays a string, ``'3'``), ``--search-space`` (a list
  of operation names such as ``'separable_convolution_3x3'``) and
  ``--num-layers`` (an integer as text).
- ENAS (``enas``): ``--architecture`` (a list per layer: the operation id,
  then one 0/1 per earlier layer saying whether it feeds this one) and
  ``--nn_config`` (``num_layers``, ``input_sizes``, ``output_sizes`` and
  ``embedding``: operation id as text -> ``{opt_id, opt_type, opt_params}``).

Katib's example YAMLs write ``--search-space="${trialParameters.x}"``: in a
cluster Katib's metrics-collector wrapper runs the command through a shell,
which removes the quotes; ktune runs argv as it is, so a value may arrive
still wrapped in one pair of double quotes. Both forms are accepted.
"""

import json
import re

# Katib's DARTS defaults (pkg/suggestion/v1beta1/nas/darts/service.py), the
# type each is read as by Katib's run_trial.py.
DARTS_SETTINGS = {
    "num_epochs": (int, 50),
    "w_lr": (float, 0.025),
    "w_lr_min": (float, 0.001),
    "w_momentum": (float, 0.9),
    "w_weight_decay": (float, 3e-4),
    "w_grad_clip": (float, 5.0),
    "alpha_lr": (float, 3e-4),
    "alpha_weight_decay": (float, 1e-3),
    "batch_size": (int, 128),
    "num_workers": (int, 4),
    "init_channels": (int, 16),
    "print_step": (int, 50),
    "num_nodes": (int, 4),
    "stem_multiplier": (int, 3),
}

# The DARTS operation families Katib's trial image implements, with the
# kernel sizes its search space may name (`<family>_<k>x<k>`); any odd size
# is accepted here, as the network builds any.
DARTS_FAMILIES = (
    "separable_convolution",
    "dilated_convolution",
    "avg_pooling",
    "max_pooling",
    "convolution",
)
_DARTS_OP = re.compile(r"^(?P<family>[a-z_]+?)_(?P<k>\d+)x(?P=k)$")

# ENAS operation types (Katib's enas-cnn-cifar10 op_library).
ENAS_TYPES = ("convolution", "separable_convolution", "depthwise_convolution", "reduction")


class NasArgumentError(ValueError):
    """A trial parameter that is not in Katib's format."""


def katib_json(flag, text):
    """The value of ``flag`` in Katib's quote-swapped JSON, parsed."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    if not text:
        raise NasArgumentError(f"{flag} is empty")
    try:
        return json.loads(text.replace("'", '"'))
    except json.JSONDecodeError as e:
        raise NasArgumentError(f"{flag} is not Katib's JSON ({e}): {text[:200]!r}") from None


def _integer(flag, value, minimum=None):
    if isinstance(value, bool):
        raise NasArgumentError(f"{flag}: {value!r} is not an integer")
    try:
        number = int(value) if not isinstance(value, float) else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise NasArgumentError(f"{flag}: {value!r} is not an integer")
    if minimum is not None and number < minimum:
        raise NasArgumentError(f"{flag}: {number} is below {minimum}")
    return number


def darts_settings(text):
    """``--algorithm-settings``: every Katib setting, typed (a missing one
    takes Katib's default; a setting Katib does not know is kept as given)."""
    raw = katib_json("--algorithm-settings", text)
    if not isinstance(raw, dict):
        raise NasArgumentError(f"--algorithm-settings is not a dict: {raw!r}")
    settings = dict(raw)
    for name, (kind, default) in DARTS_SETTINGS.items():
        value = raw.get(name)
        if value is None:
            settings[name] = default
            continue
        try:
            settings[name] = kind(value)
        except (TypeError, ValueError):
            raise NasArgumentError(
                f"--algorithm-settings: {name} = {value!r} is not {kind.__name__}"
            ) from None
    for name in ("num_epochs", "batch_size", "init_channels", "num_nodes", "stem_multiplier"):
        if settings[name] < 1:
            raise NasArgumentError(f"--algorithm-settings: {name} must be >= 1, got {settings[name]}")
    return settings


def darts_operation(name):
    """``(family, kernel)`` of a DARTS operation name; ``skip_connection``
    has no kernel (``None``). ``none`` (the zero operation) is not named in
    a search space: the trial appends it, last, as Katib's does."""
    if name == "skip_connection":
        return name, None
    match = _DARTS_OP.match(name)
    if not match or match["family"] not in DARTS_FAMILIES:
        raise NasArgumentError(
            f"--search-space: unknown operation {name!r} (known: skip_connection and "
            f"<family>_<k>x<k> for {', '.join(DARTS_FAMILIES)})"
        )
    kernel = int(match["k"])
    if kernel % 2 == 0 or kernel < 1:
        raise NasArgumentError(f"--search-space: {name!r} needs an odd kernel size")
    return match["family"], kernel


def darts_search_space(text):
    """``--search-space``: the operation names, checked, in order."""
    space = katib_json("--search-space", text)
    if not isinstance(space, list) or not space or not all(isinstance(s, str) for s in space):
        raise NasArgumentError(f"--search-space is not a non-empty list of names: {space!r}")
    for name in space:
        darts_operation(name)
    if len(set(space)) != len(space):
        raise NasArgumentError(f"--search-space names an operation twice: {space!r}")
    return space


def num_layers(text):
    """``--num-layers``: a positive integer, possibly quoted."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    try:
        return _integer("--num-layers", text.strip(), minimum=1)
    except NasArgumentError:
        raise NasArgumentError(f"--num-layers: {text!r} is not a positive integer") from None


def enas_nn_config(text):
    """``--nn_config``: ``num_layers``, ``input_sizes`` (H, W, C),
    ``output_sizes`` (classes last) and the embedding, keyed by int id."""
    config = katib_json("--nn_config", text)
    if not isinstance(config, dict):
        raise NasArgumentError(f"--nn_config is not a dict: {config!r}")
    missing = [k for k in ("num_layers", "input_sizes", "output_sizes", "embedding") if k not in config]
    if missing:
        raise NasArgumentError(f"--nn_config lacks {', '.join(missing)}")
    layers = _integer("--nn_config num_layers", config["num_layers"], minimum=1)
    inputs = config["input_sizes"]
    if not isinstance(inputs, list) or len(inputs) != 3:
        raise NasArgumentError(f"--nn_config input_sizes must be [height, width, channels]: {inputs!r}")
    inputs = [_integer("--nn_config input_sizes", v, minimum=1) for v in inputs]
    outputs = config["output_sizes"]
    if not isinstance(outputs, list) or not outputs:
        raise NasArgumentError(f"--nn_config output_sizes must be a non-empty list: {outputs!r}")
    outputs = [_integer("--nn_config output_sizes", v, minimum=1) for v in outputs]
    embedding = {}
    if not isinstance(config["embedding"], dict):
        raise NasArgumentError("--nn_config embedding is not a dict")
    for key, op in config["embedding"].items():
        op_id = _integer("--nn_config embedding key", key, minimum=0)
        if not isinstance(op, dict) or op.get("opt_type") not in ENAS_TYPES:
            raise NasArgumentError(
                f"--nn_config embedding {key}: opt_type must be one of {', '.join(ENAS_TYPES)}: {op!r}"
            )
        params = op.get("opt_params", {})
        if not isinstance(params, dict):
            raise NasArgumentError(f"--nn_config embedding {key}: opt_params is not a dict")
        embedding[op_id] = {"opt_id": op_id, "opt_type": op["opt_type"], "opt_params": params}
    return {
        "num_layers": layers,
        "input_sizes": inputs,
        "output_sizes": outputs,
        "embedding": embedding,
    }


def enas_architecture(text, config):
    """``--architecture`` for ``config`` (from :func:`enas_nn_config`): one
    list per layer, ``[op_id, skip_0, …, skip_{i-1}]`` for layer ``i``
    (from 0), each skip 0 or 1 and each op id in the embedding."""
    arch = katib_json("--architecture", text)
    layers = config["num_layers"]
    if not isinstance(arch, list) or len(arch) != layers:
        raise NasArgumentError(f"--architecture must hold {layers} layers: {arch!r}")
    out = []
    for i, layer in enumerate(arch):
        if not isinstance(layer, list) or len(layer) != i + 1:
            raise NasArgumentError(
                f"--architecture layer {i} must be [op_id] plus {i} skip flags: {layer!r}"
            )
        op_id = _integer(f"--architecture layer {i} op id", layer[0], minimum=0)
        if op_id not in config["embedding"]:
            raise NasArgumentError(
                f"--architecture layer {i}: operation {op_id} is not in --nn_config's embedding"
            )
        skips = [_integer(f"--architecture layer {i} skip", s) for s in layer[1:]]
        if any(s not in (0, 1) for s in skips):
            raise NasArgumentError(f"--architecture layer {i}: skip flags must be 0 or 1: {layer!r}")
        out.append([op_id] + skips)
    return out


def enas_op_params(op):
    """An ENAS operation's parameters as the network needs them (integers,
    but ``reduction_type``), over Katib's op_library defaults."""
    defaults = {
        "convolution": {"num_filter": 64, "filter_size": 3, "stride": 1},
        "separable_convolution": {"num_filter": 64, "filter_size": 3, "stride": 1, "depth_multiplier": 1},
        "depthwise_convolution": {"filter_size": 3, "stride": 1, "depth_multiplier": 1},
        "reduction": {"reduction_type": "max_pooling", "pool_size": 2, "stride": None},
    }[op["opt_type"]]
    params = dict(defaults)
    for key, value in op["opt_params"].items():
        if key not in defaults:
            continue  # Katib ignores parameters its operations do not read
        if key == "reduction_type":
            if value not in ("max_pooling", "avg_pooling"):
                raise NasArgumentError(f"operation {op['opt_id']}: unknown reduction_type {value!r}")
            params[key] = value
        else:
            params[key] = _integer(f"operation {op['opt_id']} {key}", value, minimum=1)
    return params
