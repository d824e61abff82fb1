#!/usr/bin/env python3
"""Tiny hand-written language models in the forms real exports take.

Two decoder blocks that combine what issue 15 found on real models and our
fixtures do not cover:
  - nanoGPT's attention: masked_fill(~causal, -inf).softmax(-1), not
    recomposed into galv.attention (softmax keeps a negative axis);
  - GPT-NeoX's partial rotary: rotate_half and torch.cat(..., -1);
  - Falcon's fused query/key/value: keys and values taken out of the
    projection with a constant (negative) index along the head axis
    (qkv[:, :, :, [-2]], an ONNX Gather that is not a row lookup);
  - RoBERTa's position ids: cumsum of the non-pad mask of the input ids
    (an ONNX CumSum that depends on the input);
  - BERT's buffered token types: torch.gather of an integer buffer
    (ONNX GatherElements) at those positions;
  - GPT-NeoX's rotary cos/sin tables and a cached ALiBi bias (BLOOM's
    slopes times distances): float buffers that PyTorch never trains, and
    the import must freeze.

Writes, per variant (TorchScript and dynamo exporters, dynamic batch and
sequence; TorchScript also with static shapes), model.onnx, and once
input_ids.npy, logits.npy and adamw_losses.npy (5 torch.optim.AdamW steps
as in models/make_fixtures.py: lr 1e-3, betas 0.9/0.999, eps 1e-8,
weight decay 0.01, shifted cross-entropy), state_dict.safetensors (the
model's state dict, what --state-dict reads) and parameters.txt (the names
of named_parameters(), the trainable set the import must find). The dynamo
exporter's per-node metadata (stack traces naming this machine's files) is
stripped.

Needs torch and onnx (and onnxscript for dynamo); the logits are checked
by galvatron's own tests (test/tools/realmodels-*.test):
  /tmp/venv-export/bin/python models/realmodels/make_realmodels.py
"""
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from safetensors.torch import save_file
from torch import nn

V, D, H, HD, T, B = 32, 8, 2, 4, 8, 2
PAD = 1
ROT = 2  # rotary features of each head (partial rotary)
STEPS = 5
LAYERS = 2


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("causal", torch.ones(T, T, dtype=torch.bool).tril(),
                             persistent=False)
        # GPT-NeoX's cached rotary tables and BLOOM's ALiBi bias (per-head
        # slopes times the keys' distance to the query), cached.
        inv_freq = 1.0 / (10000 ** (torch.arange(0, ROT, 2).float() / ROT))
        angles = torch.outer(torch.arange(T + 2).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)
        slopes = 2.0 ** (-8.0 * torch.arange(1, H + 1) / H)
        pos = torch.arange(T)
        self.register_buffer("alibi", slopes.view(H, 1, 1) * (pos[None, :] - pos[:, None]),
                             persistent=False)
        self.ln1 = nn.LayerNorm(D)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.ln2 = nn.LayerNorm(D)
        self.fc1 = nn.Linear(D, 4 * D)
        self.fc2 = nn.Linear(4 * D, D)

    def rotary(self, x):
        t = x.shape[2]
        x_rot, x_pass = x[..., :ROT], x[..., ROT:]
        x_rot = x_rot * self.cos[:t] + rotate_half(x_rot) * self.sin[:t]
        return torch.cat((x_rot, x_pass), dim=-1)

    def forward(self, x):
        b, t, _ = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, t, H, 3, HD)
        q = qkv[:, :, :, :1].reshape(b, t, H, HD).transpose(1, 2)
        k = qkv[:, :, :, [-2]].reshape(b, t, H, HD).transpose(1, 2)
        v = qkv[:, :, :, [-1]].reshape(b, t, H, HD).transpose(1, 2)
        q, k = self.rotary(q), self.rotary(k)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HD)) + self.alibi[:, :t, :t]
        att = att.masked_fill(~self.causal[:t, :t], float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, D)
        x = x + self.proj(y)
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, D)
        self.wpe = nn.Embedding(T + 2, D)
        self.tte = nn.Embedding(2, D)
        types = torch.zeros(1, T + 2, dtype=torch.long)
        types[0, T // 2 + 2:] = 1
        self.register_buffer("token_types", types, persistent=False)
        self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
        self.lnf = nn.LayerNorm(D)
        self.head = nn.Linear(D, V, bias=False)

    def forward(self, input_ids):
        b, t = input_ids.shape
        mask = (input_ids != PAD).long()
        pos = torch.cumsum(mask, dim=1) * mask + PAD
        types = torch.gather(self.token_types.expand(b, -1), 1, pos)
        x = self.wte(input_ids) + self.wpe(pos) + self.tte(types)
        for block in self.blocks:
            x = block(x)
        return self.head(self.lnf(x))


def build():
    torch.manual_seed(15)
    model = TinyLM().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return model


def adamw_losses(model, ids):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=0.01, foreach=False)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return np.asarray(losses, dtype=np.float32)


def strip_metadata(path: Path):
    m = onnx.load(str(path))
    for node in m.graph.node:
        keep = [p for p in node.metadata_props
                if p.key == "pkg.torch.onnx.name_scopes"]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
    del m.metadata_props[:]
    onnx.save(m, str(path))


def export(model, ids, path: Path, dynamo: bool, dynamic: bool):
    kwargs = dict(input_names=["input_ids"], output_names=["logits"],
                  opset_version=18)
    if dynamo:
        kwargs["dynamo"] = True
        kwargs["external_data"] = False
        if dynamic:
            kwargs["dynamic_shapes"] = {"input_ids": {
                0: torch.export.Dim("batch", max=16),
                1: torch.export.Dim("seq", max=T)}}
    else:
        kwargs["dynamo"] = False
        if dynamic:
            kwargs["dynamic_axes"] = {"input_ids": {0: "batch", 1: "seq"},
                                      "logits": {0: "batch", 1: "seq"}}
    torch.onnx.export(model, (ids,), str(path), **kwargs)
    if dynamo:
        strip_metadata(path)


def main():
    out = Path(__file__).resolve().parent
    model = build()
    rng = np.random.default_rng(15)
    ids = rng.integers(0, V, size=(B, T)).astype(np.int64)
    ids[0, 3] = PAD  # the pad token shifts the cumsum positions
    ids_t = torch.from_numpy(ids)
    with torch.no_grad():
        logits = model(ids_t).numpy()
    for name, dynamo, dynamic in [("torchscript", False, True),
                                  ("torchscript-static", False, False),
                                  ("dynamo", True, True)]:
        d = out / f"tiny-{name}"
        d.mkdir(exist_ok=True)
        export(model, ids_t, d / "model.onnx", dynamo, dynamic)
        onnx.checker.check_model(str(d / "model.onnx"))
        ops = sorted({n.op_type for n in onnx.load(str(d / "model.onnx")).graph.node})
        print(f"{name}: {(d / 'model.onnx').stat().st_size} bytes, ops {ops}")
    np.save(out / "input_ids.npy", ids)
    np.save(out / "logits.npy", logits)
    losses = adamw_losses(model, ids_t)
    np.save(out / "adamw_losses.npy", losses)
    print("AdamW losses:", losses)
    fresh = build()
    save_file({k: v.contiguous() for k, v in fresh.state_dict().items()},
              str(out / "state_dict.safetensors"))
    names = [n for n, _ in fresh.named_parameters()]
    (out / "parameters.txt").write_text("".join(n + "\n" for n in sorted(names)))
    print("parameters:", names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
