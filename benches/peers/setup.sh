#!/usr/bin/env bash
# Creates benches/peers/.venv with the peer optimizers the regret benchmark
# compares ktune against. Versions are pinned so that numbers from different
# days compare; bump them together and note it in README.md.
#
#   benches/peers/setup.sh               # optuna, scikit-optimize, hyperopt, cmaes
#   benches/peers/setup.sh --with-torch  # also torch (CPU) for Optuna's GPSampler; multi-GB
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
with_torch=0
for arg in "$@"; do
    case "$arg" in
        --with-torch) with_torch=1 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

"${pip[@]}" -r "$here/requirements.txt"
if [ "$with_torch" = 1 ]; then
    # Only PyPI is reachable from our machines; its Linux wheel brings CUDA
    # libraries along (several GB), which is why this is opt-in and never in CI.
    "${pip[@]}" "torch==2.15.0"
fi
"$venv/bin/python" - <<'PY'
import importlib
for name in ("optuna", "skopt", "hyperopt", "cmaes", "numpy", "scipy", "sklearn"):
    module = importlib.import_module(name)
    print(f"{name} {getattr(module, '__version__', '?')}")
try:
    import torch
    print(f"torch {torch.__version__}")
except ImportError:
    print("torch: not installed (Optuna's GPSampler is skipped; setup.sh --with-torch adds it)")
PY
