#!/usr/bin/env bash
# Install connectome-gnn into ./.venv (idempotent; a few seconds when already installed).
#
# PyTorch is installed first, on its own, so that a CPU-only machine gets the CPU build rather
# than multi-GB CUDA wheels.  Set TORCH_INDEX_URL to PyTorch's CPU wheel index on machines whose
# package index would otherwise serve a CUDA build; set TORCH_SPEC to choose another version.
# For GPU clusters use envs/gpu.yaml instead (conda), see README.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        pip_install "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
    else
        pip_install "$TORCH_SPEC"
    fi
fi
pip_install -e ".[workflow,dev]"
# flyvis (MIT) only for its connectome JSON, read at run time by connectome_gnn.simulate.flyvis.
# --no-deps on purpose: its dependencies would pull a CUDA torch/torchvision; we never import it.
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('flyvis') != '1.2.0')" 2>/dev/null; then
    pip_install --no-deps flyvis==1.2.0
fi
"$VENV/bin/python" -c "import connectome_gnn, torch; print('connectome-gnn', connectome_gnn.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
