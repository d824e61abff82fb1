#!/usr/bin/env python3
"""Tiny random-weight models of common Transformer families (issue 15).

Twelve Hugging Face families built from their config classes (no downloads)
plus a nanoGPT-style module and an nn.TransformerEncoder language model,
each exported four ways: the TorchScript and dynamo exporters, with dynamic
(batch, sequence) axes and with the example's static shapes.  Per family
(models/hf/FAMILY/):

  torchscript/, torchscript-static/, dynamo/, dynamo-static/  model.onnx
      (weights in the initializers; dynamo exports stripped of their
      per-node metadata by strip_node_metadata.py)
  input_ids.npy     int64 [2, 8]; the family's pad token at [0, 3]
  logits.npy        PyTorch's logits on input_ids (eval mode, fp32)
  adamw_losses.npy  the loss before each of 5 torch.optim.AdamW steps on
                    input_ids (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight
                    decay 0.01: models/make_fixtures.py's constants) with
                    the shifted cross-entropy galv-append-loss computes
                    (position t against token t+1), as galvatron-run
                    --steps 5 --input input_ids=input_ids.npy trains
  params.txt        named_parameters(): name and shape, one a line
  state_dict.safetensors  the model's state_dict() before training (what
                    save_pretrained writes: tied weights under each name),
                    for galvatron-translate --state-dict
  config.json       the Hugging Face config (HF families), also beside each
                    variant's model.onnx, where Hugging Face and optimum
                    exports keep it and galvatron-translate looks for it

A variant that fails to export or whose onnxruntime logits differ from
PyTorch's by more than 1e-4 (relative to the largest logit) is reported
and its model.onnx left out; the run then exits 1.  bench/hf-matrix/run.sh
runs galvatron on every variant.

  /tmp/venv-export/bin/python models/hf/make_hf_fixtures.py [--only FAMILY...]
"""

import argparse
import collections
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
import transformers
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import make_fixtures as mf  # noqa: E402  (models/, beside this directory)

V, D, HEADS, FF, LAYERS, POSITIONS = 64, 16, 4, 32, 2, 16
STEPS = 5
OUT = Path(__file__).resolve().parent
VARIANTS = {  # name: (exporter, dynamic shapes)
    "torchscript": ("torchscript", True),
    "torchscript-static": ("torchscript", False),
    "dynamo": ("dynamo", True),
    "dynamo-static": ("dynamo", False),
}


def hf(config_cls, model_cls, **kwargs):
    """A builder: the config (eager attention, no cache) and its model."""
    def build():
        cfg = mf._config_with_eager(getattr(transformers, config_cls),
                                    use_cache=False, **kwargs)
        return cfg, getattr(transformers, model_cls)(cfg)
    return build


DECODER = dict(vocab_size=V, hidden_size=D, intermediate_size=FF,
               num_hidden_layers=LAYERS, num_attention_heads=HEADS,
               max_position_embeddings=POSITIONS, tie_word_embeddings=False)

FAMILIES = {
    "gpt2": hf("GPT2Config", "GPT2LMHeadModel", vocab_size=V, n_embd=D,
               n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS),
    "llama": hf("LlamaConfig", "LlamaForCausalLM", num_key_value_heads=2,
                **DECODER),
    "mistral": hf("MistralConfig", "MistralForCausalLM", num_key_value_heads=2,
                  head_dim=D // HEADS, sliding_window=None, **DECODER),
    "qwen2": hf("Qwen2Config", "Qwen2ForCausalLM", num_key_value_heads=2,
                **DECODER),
    # Fused qkv_proj and gate_up_proj split by Slice; pad token 0.
    "phi3": hf("Phi3Config", "Phi3ForCausalLM", num_key_value_heads=HEADS,
               pad_token_id=0, bos_token_id=1, eos_token_id=2, **DECODER),
    # (1 + w) norm scale, embeddings scaled by sqrt(hidden), tied head.
    "gemma": hf("GemmaConfig", "GemmaForCausalLM", num_key_value_heads=1,
                head_dim=D // HEADS, pad_token_id=0, bos_token_id=1,
                eos_token_id=2, **dict(DECODER, tie_word_embeddings=True)),
    # Partial rotary (rotate_half, cat(..., -1)), parallel residual.
    "gpt_neox": hf("GPTNeoXConfig", "GPTNeoXForCausalLM", rotary_pct=0.5,
                   **DECODER),
    # Learned positions offset by 2, padding_idx 1.
    "opt": hf("OPTConfig", "OPTForCausalLM", vocab_size=V, hidden_size=D,
              ffn_dim=FF, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
              max_position_embeddings=POSITIONS, word_embed_proj_dim=D,
              pad_token_id=1, bos_token_id=2, eos_token_id=2),
    # Multi-query attention: keys and values gathered out of the fused
    # projection; rotary; parallel attention and MLP.
    "falcon": hf("FalconConfig", "FalconForCausalLM", vocab_size=V,
                 hidden_size=D, num_hidden_layers=LAYERS,
                 num_attention_heads=HEADS, max_position_embeddings=POSITIONS,
                 bos_token_id=1, eos_token_id=2),
    # ALiBi attention bias.
    "bloom": hf("BloomConfig", "BloomForCausalLM", vocab_size=V, hidden_size=D,
                n_layer=LAYERS, n_head=HEADS, pad_token_id=3, bos_token_id=1,
                eos_token_id=2),
    # Position ids from the input ids (CumSum of the non-pad mask).
    "roberta": hf("RobertaConfig", "RobertaForMaskedLM", vocab_size=V,
                  hidden_size=D, num_hidden_layers=LAYERS,
                  num_attention_heads=HEADS, intermediate_size=FF,
                  max_position_embeddings=POSITIONS + 2, type_vocab_size=1,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2),
    # Called without token_type_ids: the buffered zeros are expanded.
    "bert": hf("BertConfig", "BertForMaskedLM", vocab_size=V, hidden_size=D,
               num_hidden_layers=LAYERS, num_attention_heads=HEADS,
               intermediate_size=FF, max_position_embeddings=POSITIONS,
               type_vocab_size=2, pad_token_id=0),
}


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention: c_attn split three ways, masked_fill(...).softmax(-1)."""

    def __init__(self):
        super().__init__()
        self.c_attn, self.c_proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.register_buffer("bias", torch.tril(torch.ones(POSITIONS, POSITIONS))
                             .view(1, 1, POSITIONS, POSITIONS))

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = (y.view(b, t, HEADS, c // HEADS).transpose(1, 2) for y in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
        y = att.softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class NanoGPTBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(D), CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(D)
        self.mlp = nn.Sequential(collections.OrderedDict(
            c_fc=nn.Linear(D, 4 * D), gelu=nn.GELU(), c_proj=nn.Linear(4 * D, D)))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, D)
        self.wpe = nn.Embedding(POSITIONS, D)
        self.h = nn.ModuleList([NanoGPTBlock() for _ in range(LAYERS)])
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as nanoGPT does

    def forward(self, input_ids):
        pos = torch.arange(0, input_ids.size(1), dtype=torch.long)
        x = self.wte(input_ids) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class EncoderLM(nn.Module):
    """nn.TransformerEncoder (PyTorch MHA, packed in-projection) as a causal LM."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.pos = nn.Embedding(POSITIONS, D)
        layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(D)
        self.head = nn.Linear(D, V)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(
            POSITIONS), persistent=False)

    def forward(self, input_ids):
        t = input_ids.size(1)
        x = self.embed(input_ids) + self.pos(torch.arange(t))
        x = self.encoder(x, mask=self.causal[:t, :t], is_causal=True)
        return self.head(self.norm(x))


def module(cls):
    return lambda: (None, cls())


FAMILIES["nanogpt"] = module(NanoGPT)
FAMILIES["transformer_encoder"] = module(EncoderLM)


def build(name, seed):
    """The family's model, eval mode, every parameter randomised; forward gives logits."""
    mf.seed_everything(seed)
    cfg, model = FAMILIES[name]()
    model = model.to(torch.float32).eval()
    mf.randomize_parameters(model, seed + 100)
    if cfg is not None:
        model = mf.make_logits_only(model, ["input_ids"]).eval()
    return cfg, model


def make_input_ids(cfg, seed):
    ids = np.random.default_rng(seed).integers(0, V, size=(mf.BATCH, mf.SEQ), dtype=np.int64)
    pad = getattr(cfg, "pad_token_id", None)
    if pad is not None and pad < V:
        ids[0, 3] = pad  # padding_idx and pad-dependent positions take effect
    return ids


def export(model, ids, variant, path):
    exporter, dynamic = VARIANTS[variant]
    args = (torch.from_numpy(ids),)
    if exporter == "torchscript":
        mf.export_torchscript(model, args, ["input_ids"], path, dynamic=dynamic)
    else:
        mf.export_dynamo(model, args, ["input_ids"], path, [], shapes=(dynamic,))
    onnx.checker.check_model(str(path))


def check_variant(path, ids, ref):
    """onnxruntime's logits against PyTorch's: relative error (raises on mismatch)."""
    got, _ = mf.run_ort(path, {"input_ids": ids})
    _, rel = mf.rel_err(ref, got)
    if not rel <= mf.TOLERANCE:
        raise RuntimeError(f"onnxruntime logits differ from PyTorch's: {rel:.2e}")
    return rel


def make_family(name, seed, out):
    cfg, model = build(name, seed)
    ids = make_input_ids(cfg, seed + 1)
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).numpy()
    d = out / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    np.save(d / "input_ids.npy", ids)
    np.save(d / "logits.npy", ref)
    if cfg is not None:
        cfg.to_json_file(str(d / "config.json"))
    mf.save_weights(model, d / "state_dict.safetensors")
    (d / "params.txt").write_text("".join(
        f"{n} {'x'.join(map(str, p.shape))}\n" for n, p in model.named_parameters()))
    ok = True
    for variant in VARIANTS:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                export(model, ids, variant, path)
                rel = check_variant(path, ids, ref)
                (d / variant).mkdir()
                shutil.copy(path, d / variant / "model.onnx")
                if cfg is not None:
                    shutil.copy(d / "config.json", d / variant / "config.json")
            size = (d / variant / "model.onnx").stat().st_size
            print(f"  {name}/{variant}: {size} bytes, onnxruntime rel err {rel:.1e}")
        except Exception as exc:  # reported; the other variants still export
            ok = False
            print(f"  {name}/{variant}: FAILED: {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0] if str(exc) else ''}")
    losses = mf.torch_adamw_losses(
        model, ids, steps=STEPS,
        loss_fn=lambda m, x: mf.shifted_cross_entropy(m(x), x))
    np.save(d / "adamw_losses.npy", losses)
    print(f"  {name}: AdamW losses {losses}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help=f"families: {' '.join(FAMILIES)}")
    ap.add_argument("--out", type=Path, default=OUT)
    ns = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    mf.SEQ_MAX[0] = POSITIONS
    ok = True
    for k, name in enumerate(FAMILIES):
        if ns.only and name not in ns.only:
            continue
        print(f"== {name}")
        ok = make_family(name, 1500 + 10 * k, ns.out) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
