#!/usr/bin/env bash
# Creates tools/.venv-hf (gitignored by tools/.venv*) with the pinned packages that
# make_fixtures.py / check_fixtures.py need. Safe to rerun: an existing venv is reused
# and pip skips what is already installed at the pinned version.
# Only needed to regenerate the committed fixtures in tests/fixtures/hf; never by CI or users.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/../.venv-hf"
python="${PYTHON:-python3}"

# Pins: transformers must contain models/nemotron_h (NemotronHForCausalLM); the fixtures'
# README records which version produced them. torch: PyPI's default wheel (CPU is enough;
# the CUDA runtime packages it pulls in are unused here).
TORCH_VERSION=2.9.1
TRANSFORMERS_VERSION=5.23.0
SAFETENSORS_VERSION=0.8.0
NUMPY_VERSION=2.3.5

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet \
    "torch==$TORCH_VERSION" \
    "transformers==$TRANSFORMERS_VERSION" \
    "safetensors==$SAFETENSORS_VERSION" \
    "numpy==$NUMPY_VERSION"
"$venv/bin/python" - <<'PY'
import torch, transformers, safetensors, numpy
from transformers import NemotronHForCausalLM, NemotronHConfig  # fails loudly if absent
print(f"venv ready: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"safetensors {safetensors.__version__}, numpy {numpy.__version__}")
PY
