"""Reads safetensors files with the standard library only (CI has no numpy)."""

import array
import json
import struct


def read(path):
    """Returns {name: (shape, array('f'))} for the F32 tensors of `path`."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor '{name}' is {info['dtype']}, not F32")
        begin, end = info["data_offsets"]
        values = array.array("f")
        values.frombytes(data[base + begin : base + end])
        tensors[name] = (info["shape"], values)
    return tensors
