#!/usr/bin/env python3
"""Dumps a ringscan result file (or any HDF5 file) to JSON, read with h5py alone.

Used by tests/io to check that files written by ringscan read back, without ringscan,
as docs/hdf5-schema.md says. Output on stdout:

  {"attrs":    {"/": {name: value, ...}, "/documents": {...}, ...},
   "datasets": {"/documents/path": {"dtype": "...", "shape": [...],
                                    "string": {"encoding": "utf-8", "vlen": true} | null,
                                    "data": [...]}, ...}}

Floats are written exactly (float32 widened to float64); NaN and infinities as the bare
tokens NaN / Infinity / -Infinity, as Python's json module does. Strings are decoded as
UTF-8. Run it with the venv that tools/h5check/ensure_venv.sh prints.
"""
import json
import sys

import h5py
import numpy as np


def plain(value):
    """numpy scalars/arrays and bytes -> JSON-ready Python values."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def describe(name, obj, out):
    attrs = {key: plain(obj.attrs[key]) for key in sorted(obj.attrs.keys())}
    out["attrs"]["/" + name if name else "/"] = attrs
    if isinstance(obj, h5py.Dataset):
        info = h5py.check_string_dtype(obj.dtype)
        string = None if info is None else {"encoding": info.encoding, "vlen": info.length is None}
        data = obj.asstr()[()] if info is not None else obj[()]
        out["datasets"]["/" + name] = {
            "dtype": str(obj.dtype) if info is None else "string",
            "shape": list(obj.shape),
            "string": string,
            "data": plain(np.asarray(data, dtype=object) if info is not None else data),
        }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: h5_to_json.py FILE.h5")
    out = {"attrs": {}, "datasets": {}}
    with h5py.File(sys.argv[1], "r") as f:
        describe("", f, out)
        f.visititems(lambda name, obj: describe(name, obj, out))
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
