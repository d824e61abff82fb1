#!/usr/bin/env python3
"""Weightless ONNX exports of large Transformers, for planning without weights.

Builds LLaMA-2 7B / 13B / 70B and a GPT-3-175B-shaped model (LLaMA's
architecture at GPT-3's size, see gpt3_175b) with PyTorch on
the meta device (no weight is ever allocated), exports each with the dynamo
exporter (torch.onnx.export(..., dynamo=True, optimize=False)) and rewrites
every initializer that comes from a parameter as an external-data reference
to OUT/NAME/model.onnx.data, a file that is never written. Each weight keeps
its state-dict name, dtype and shape; offsets are laid out as if the file
existed. Buffers computed from the config (RoPE's inv_freq) are real tensors
and keep their data, since the importer folds them. The per-node stack-trace
metadata (which names this machine's files) and the other per-node debugging
strings are dropped; the module scopes the importer names nodes by stay.

    galvatron-translate --import-onnx OUT/llama2-7b/model.onnx --shapes-only \\
        --batch-size 1 --seq-len 2048 -o llama2-7b.mlir

Requirements (not in the system python3):

    python3 -m venv /tmp/venv-export
    /tmp/venv-export/bin/pip install torch transformers onnx onnxscript onnx_ir

(the CPU-only torch wheel from PyTorch's own index does as well).

Usage:

    /tmp/venv-export/bin/python models/export_shapes_only.py \\
        [--model llama2-7b|llama2-13b|llama2-70b|gpt3-175b|all ...] \\
        [--out /tmp/shapes-only] [--batch-size 2] [--seq-len 64] [--static]

The export is traced at --batch-size x --seq-len (at least 2 each: torch
specialises a traced size of 1); batch and sequence stay symbolic
("batch_size", "sequence_length") unless --static is given, so the importer's
--batch-size/--seq-len choose the sizes to plan for.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import time
import warnings
from pathlib import Path

import onnx_ir as ir
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def llama(hidden, intermediate, layers, heads, kv_heads, vocab=32000, positions=4096, tied=False):
    """A LLaMA config; the defaults are LLaMA-2's (RMSNorm 1e-5 throughout)."""
    return LlamaForCausalLM, LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=positions,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tied,
    )


def gpt3_175b():
    """GPT-3 175B's shape (96 layers, hidden 12288, 96 heads, 2048 positions,
    GPT-2's 50257-token vocabulary, tied head) in LLaMA's architecture, with
    the SwiGLU width (32768, 8/3 of hidden) that keeps 175 B parameters.
    GPT-2's own architecture is not used: with optimize=False its exporter
    output splits q/k/v with SplitToSequence, which the importer lacks."""
    return llama(12288, 32768, 96, 96, 96, vocab=50257, positions=2048, tied=True)


MODELS = {
    "llama2-7b": lambda: llama(4096, 11008, 32, 32, 32),
    "llama2-13b": lambda: llama(5120, 13824, 40, 40, 40),
    "llama2-70b": lambda: llama(8192, 28672, 80, 64, 8),
    "gpt3-175b": gpt3_175b,
}


@contextlib.contextmanager
def parameters_on_meta():
    """Registers every parameter on the meta device while buffers stay real,
    so that buffers computed from the config (inv_freq) keep their values."""
    register = torch.nn.Module.register_parameter

    def register_on_meta(module, name, param):
        if param is not None and param.device.type != "meta":
            param = torch.nn.Parameter(param.to("meta"), param.requires_grad)
        register(module, name, param)

    torch.nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register


def build(name):
    model_cls, config = MODELS[name]()
    config._attn_implementation = "eager"
    config.use_cache = False
    with parameters_on_meta():
        model = model_cls(config)
    model.eval()
    # The logits only, under the state-dict names (a subclass, not a wrapper
    # module, so initializer names carry no extra prefix).
    base = type(model)

    def forward(self, input_ids):
        out = base.forward(self, input_ids=input_ids, use_cache=False, return_dict=True)
        return out.logits

    model.__class__ = type(base.__name__ + "LogitsOnly", (base,), {"forward": forward})
    return model


def export(model, batch, seq, static):
    # Buffers follow the activations onto the meta device while tracing;
    # their values are put back into the initializers afterwards.
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    for module in model.modules():
        for n, b in module._buffers.items():
            if b is not None:
                module._buffers[n] = b.to("meta")
    input_ids = torch.zeros(batch, seq, dtype=torch.int64, device="meta")
    kwargs = {}
    if not static:
        dims = {
            0: torch.export.Dim("batch_size", min=1, max=1024),
            1: torch.export.Dim("sequence_length", min=2, max=model.config.max_position_embeddings),
        }
        kwargs["dynamic_shapes"] = {"input_ids": dims}
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            model,
            (input_ids,),
            dynamo=True,
            optimize=False,
            input_names=["input_ids"],
            output_names=["logits"],
            report=False,
            **kwargs,
        )
    return prog.model, buffers


def externalize(model, buffers, data_file):
    """Initializers from parameters become references into `data_file` (never
    written); buffers get their real values back. Returns the bytes referenced."""
    offset = 0
    for name, value in list(model.graph.initializers.items()):
        if name in buffers:
            value.const_value = ir.tensor(buffers[name].numpy(), name=name)
            continue
        dtype, shape = value.const_value.dtype, value.const_value.shape
        length = int(dtype.itemsize) * math.prod(shape.numpy())
        value.const_value = ir.ExternalTensor(
            data_file, offset, length, dtype, shape=shape, name=name, base_dir=""
        )
        # 64-byte alignment, as onnx's own external-data writer uses for mmap.
        offset += (length + 63) // 64 * 64
    return offset


def drop_debug_metadata(model):
    """Keeps only the module scopes the importer names nodes by: stack traces
    name this machine's files, and the FX/class/namespace strings would make
    up most of the file."""
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        for key in list(node.metadata_props):
            if key != "pkg.torch.onnx.name_scopes":
                del node.metadata_props[key]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", nargs="+", default=["llama2-7b"], choices=[*MODELS, "all"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/shapes-only"))
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--static", action="store_true", help="fix batch and sequence at the traced sizes")
    args = parser.parse_args()
    names = list(MODELS) if "all" in args.model else args.model
    print(f"torch {torch.__version__}, onnx_ir {ir.__version__}")
    for name in names:
        start = time.time()
        model = build(name)
        params = sum(p.numel() for p in model.parameters())
        onnx_model, buffers = export(model, args.batch_size, args.seq_len, args.static)
        referenced = externalize(onnx_model, buffers, "model.onnx.data")
        drop_debug_metadata(onnx_model)
        path = args.out / name / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        ir.save(onnx_model, path)
        print(
            f"{name}: {params / 1e9:.2f} B parameters, {len(onnx_model.graph.initializers)} "
            f"initializers referencing {referenced / 1e9:.1f} GB of absent data; "
            f"{path} {path.stat().st_size / 1e6:.1f} MB in {time.time() - start:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
