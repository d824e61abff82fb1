#!/usr/bin/env python3
"""Make the weightless fixture that tests galvatron-translate --shapes-only.

Copies a fixture's model.onnx (default: fixtures/llama-dynamo) with its
weights rewritten as external-data references to model.onnx.data, a file that
is never written, the way models/export_shapes_only.py writes exports of big
models: every float initializer of more than one element (what the importer
makes a parameter) loses its data but keeps its name, type and shape, except
buffers computed from the config (--keep, default RoPE's inv_freq), which the
importer folds. Small constants (shapes, axes, scalars) keep their data. The
per-node debugging metadata (stack traces name the exporting machine's files)
is dropped, except the module scopes the importer names nodes by.

Needs only the onnx package (e.g. the venv of export_shapes_only.py).

Usage:
    python3 models/make_shapes_only_fixture.py \\
        [--fixture llama-dynamo] [--out models/fixtures/shapes-only/llama-dynamo]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
DATA_FILE = "model.onnx.data"


def is_weight(tensor: TensorProto) -> bool:
    dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
    return np.issubdtype(dtype, np.floating) and int(np.prod(tensor.dims)) > 1


def strip_data(model: onnx.ModelProto, keep: list[str]) -> int:
    """Weights become references into DATA_FILE; returns how many."""
    offset = count = 0
    for tensor in model.graph.initializer:
        if not is_weight(tensor) or any(k in tensor.name for k in keep):
            continue
        length = numpy_helper.to_array(tensor).nbytes
        dims, data_type, name = list(tensor.dims), tensor.data_type, tensor.name
        tensor.Clear()
        tensor.name, tensor.data_type = name, data_type
        tensor.dims.extend(dims)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", DATA_FILE), ("offset", offset), ("length", length)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
        offset += (length + 63) // 64 * 64
        count += 1
    return count


def drop_debug_metadata(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        scopes = [p for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"]
        del node.metadata_props[:]
        node.metadata_props.extend(scopes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", default="llama-dynamo")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", nargs="*", default=["inv_freq"], help="initializer name parts whose data stays")
    args = parser.parse_args()
    out = args.out or HERE / "fixtures" / "shapes-only" / args.fixture
    model = onnx.load(str(HERE / "fixtures" / args.fixture / "model.onnx"))
    stripped = strip_data(model, args.keep)
    drop_debug_metadata(model)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "model.onnx"))
    size = (out / "model.onnx").stat().st_size
    print(f"{out / 'model.onnx'}: {stripped} weights without data, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
