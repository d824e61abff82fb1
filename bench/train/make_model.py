"""A GPT-2-small-shaped model scaled to a 2-core machine for the training
benchmark: by default 4 layers, hidden 256, 4 heads, vocabulary 8192,
context SEQ. Writes model.onnx (dynamo exporter, batch x sequence fixed at
export), the state dict as weights.safetensors, and tokens.npy (random ids,
fixed seed).

usage: python3 bench/train/make_model.py OUT_DIR [BATCH SEQ [LAYERS HIDDEN HEADS]]
"""
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel


class LogitsOnly(GPT2LMHeadModel):
    def forward(self, input_ids):
        return super().forward(input_ids=input_ids, use_cache=False).logits


def config(seq=128, layers=4, hidden=256, heads=4):
    # Longer sequences (the seq-2048 memory measurement) need more positions.
    c = GPT2Config(n_layer=layers, n_embd=hidden, n_head=heads,
                   n_positions=max(128, seq),
                   vocab_size=8192, resid_pdrop=0.0, embd_pdrop=0.0,
                   attn_pdrop=0.0)
    c._attn_implementation = "eager"
    return c


def main():
    out = sys.argv[1]
    batch, seq = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 \
        else (4, 128)
    shape = tuple(map(int, sys.argv[4:7])) if len(sys.argv) > 6 else ()
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = LogitsOnly(config(seq, *shape)).eval()
    ids = torch.zeros(batch, seq, dtype=torch.int64)
    torch.onnx.export(model, (ids,), os.path.join(out, "model.onnx"),
                      dynamo=True, opset_version=18,
                      input_names=["input_ids"], output_names=["logits"])
    # Tied tensors (lm_head = wte) are stored once per name, as copies.
    state = {k: v.detach().clone().contiguous()
             for k, v in model.state_dict().items()
             if not k.endswith("attn.bias") and not k.endswith("masked_bias")}
    save_file(state, os.path.join(out, "weights.safetensors"))
    rng = np.random.default_rng(0)
    np.save(os.path.join(out, "tokens.npy"),
            rng.integers(0, 8192, size=200000, dtype=np.int64))


if __name__ == "__main__":
    main()
