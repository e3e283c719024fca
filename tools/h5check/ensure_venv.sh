#!/usr/bin/env bash
# Makes tools/.venv-h5 (gitignored by tools/.venv*) with the pinned h5py and numpy that
# h5_to_json.py needs, and prints the venv's python on stdout. Tests call it on first
# use: when the venv is already complete it only checks a stamp file and returns at once.
# Safe to run from several tests at the same time (flock) and to rerun after a failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(cd "$here/.." && pwd)/.venv-h5"
python="${PYTHON:-python3}"

# numpy 2.4 is the newest series that still supports Python 3.11 (Debian 12's python3).
H5PY_VERSION=3.16.0
NUMPY_VERSION=2.4.6
stamp="$venv/.ringscan-ready-h5py-$H5PY_VERSION-numpy-$NUMPY_VERSION"

if [[ -f "$stamp" ]]; then
    echo "$venv/bin/python"
    exit 0
fi

mkdir -p "$venv"
exec 9>"$venv/.lock"
flock 9
if [[ ! -f "$stamp" ]]; then
    {
        if [[ ! -x "$venv/bin/python" ]]; then
            "$python" -m venv "$venv"
        fi
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "h5py==$H5PY_VERSION" "numpy==$NUMPY_VERSION"
        "$venv/bin/python" -c "import h5py, numpy"
        touch "$stamp"
    } >&2
fi
echo "$venv/bin/python"
