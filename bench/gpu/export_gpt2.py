#!/usr/bin/env python3
"""Exports torch_gpt2.py's GPT-2-124M (seed 0, eager attention) to ONNX.

    python3 bench/gpu/export_gpt2.py OUT.onnx [--seq 1024]

The graph returns only the logits and keeps the Hugging Face state-dict
names as initializer names (make_fixtures.make_logits_only), so that
galvatron-run --weights takes the safetensors torch_gpt2.py --write-weights
writes on the GPU machine (the 500 MB of weights are not carried there).
Needs torch, transformers, onnx, onnxruntime, safetensors (about a minute).
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "models"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures  # noqa: E402
import torch_gpt2  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seq", type=int, default=1024)
    args = ap.parse_args()
    cfg, model = torch_gpt2.build(args.seq)
    model.config._attn_implementation = "eager"
    model = model.eval()
    make_fixtures.make_logits_only(model, ["input_ids"])
    ids = torch.randint(0, cfg.vocab_size, (2, 16))
    make_fixtures.export_torchscript(model, (ids,), ["input_ids"],
                                     Path(args.out))


if __name__ == "__main__":
    main()
