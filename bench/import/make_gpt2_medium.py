"""Exports a GPT-2-medium-shaped model (24 layers, hidden 1024, 16 heads,
vocabulary 50257, 355M parameters) with random weights, for the import
benchmark. Nothing is downloaded: the config is built here.

usage: python3 bench/import/make_gpt2_medium.py OUT_DIR [--external]
"""
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel


class LogitsOnly(GPT2LMHeadModel):
    def forward(self, input_ids):
        return super().forward(input_ids=input_ids, use_cache=False).logits


def main():
    out = sys.argv[1]
    external = "--external" in sys.argv
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    config = GPT2Config(n_layer=24, n_embd=1024, n_head=16, n_positions=1024,
                        vocab_size=50257)
    config._attn_implementation = "eager"
    model = LogitsOnly(config).eval()
    # Fresh init leaves every norm weight 1 and every bias 0; exporters merge
    # identical initializers, so give every tensor its own values.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    ids = torch.zeros(1, 128, dtype=torch.int64)
    path = os.path.join(out, "model.onnx")
    torch.onnx.export(model, (ids,), path, dynamo=True, opset_version=18,
                      input_names=["input_ids"], output_names=["logits"],
                      external_data=external)
    print(path, sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
