#!/usr/bin/env python3
"""bf16 mixed-precision training references for the GPT-2, LLaMA and BERT fixtures.

For each model, every `fixtures/<model>-*` directory gets

  autocast_bf16_losses.npy  float32 (20,): the loss before each of 20 AdamW
                            steps with the forward under
                            torch.autocast("cpu", dtype=torch.bfloat16)
  autocast_bf16_logits.npy  float32 [2, 8, 128]: the first forward's logits
                            under the same autocast (bf16 values, widened)
  shifted_losses.npy        float32 (20,): the same 20 steps in fp32 (BERT
                            only: the causal LMs have adamw_losses.npy)

The training is what galv-append-loss and galv-adamw build: mean next-token
cross-entropy of logits[:, :-1] against input_ids[:, 1:], computed in fp32
on the fp32-widened logits (as autocast keeps losses in fp32), and
torch.optim.AdamW with make_fixtures.py's constants over fp32 master
weights and moments, the same batch every step, eval mode (no dropout).
BERT also gets its attention_mask and token_type_ids.

The script prints, per model, the largest relative difference between the
bf16 and fp32 losses, so that a test can show its tolerance separates the
two. Needs torch, transformers, safetensors and numpy (about 10 s on CPU).

    python3 models/make_bf16_references.py [--out models/fixtures]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as fx  # noqa: E402

MODELS = ("gpt2", "llama", "bert")


def forward_logits(model, name, inputs):
    kwargs = {"input_ids": torch.from_numpy(inputs["input_ids"]),
              "return_dict": True}
    if name == "bert":
        kwargs["attention_mask"] = torch.from_numpy(inputs["attention_mask"])
        kwargs["token_type_ids"] = torch.from_numpy(inputs["token_type_ids"])
    else:
        kwargs["attention_mask"] = None
        kwargs["use_cache"] = False
    return model(**kwargs).logits


def train(name, bf16):
    """Losses of 20 AdamW steps and the first step's logits."""
    _, model, inputs = fx.build_reference_model(name)
    ids = torch.from_numpy(inputs["input_ids"])
    opt = torch.optim.AdamW(model.parameters(), lr=fx.ADAMW_LR,
                            betas=fx.ADAMW_BETAS, eps=fx.ADAMW_EPS,
                            weight_decay=fx.ADAMW_WEIGHT_DECAY, foreach=False,
                            fused=False)
    losses, first_logits = [], None
    for _ in range(fx.ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward_logits(model, name, inputs)
            if bf16 and logits.dtype != torch.bfloat16:
                raise RuntimeError(f"{name}: autocast gave {logits.dtype} logits")
            loss = fx.shifted_cross_entropy(logits.float(), ids)
        if first_logits is None:
            first_logits = logits.detach().float().numpy()
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    return np.asarray(losses, dtype=np.float32), first_logits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=fx.DEFAULT_OUT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    ok = True
    print(f"{'model':<8} {'bf16 loss[0]':>13} {'bf16 loss[19]':>14} "
          f"{'fp32 loss[19]':>14} {'max rel bf16 vs fp32':>21}")
    for name in MODELS:
        bf16, logits = train(name, True)
        fp32, _ = train(name, False)
        again, _ = train(name, True)
        if not np.array_equal(bf16, again):
            print(f"{name}: two bf16 runs differ")
            ok = False
            continue
        rel = float(np.max(np.abs(bf16 - fp32) / np.abs(fp32)))
        print(f"{name:<8} {bf16[0]:>13.6f} {bf16[-1]:>14.6f} {fp32[-1]:>14.6f} "
              f"{rel:>21.3e}")
        for d in sorted(args.out.glob(f"{name}-*")):
            if not (d / "model.onnx").exists():
                continue
            np.save(d / "autocast_bf16_losses.npy", bf16)
            np.save(d / "autocast_bf16_logits.npy", logits.astype(np.float32))
            if name == "bert":
                np.save(d / "shifted_losses.npy", fp32)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
