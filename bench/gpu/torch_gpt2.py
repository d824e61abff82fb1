#!/usr/bin/env python3
"""GPT-2-124M training speed in PyTorch, the baseline of scripts/gpu-check.sh.

Hugging Face's GPT2LMHeadModel (12 layers, width 768, 12 heads, vocabulary
50257, 1024 positions) trained on random tokens with torch.optim.AdamW
(fused), under torch.autocast(bfloat16) with SDPA attention (flash on
Hopper), eager and torch.compile. Prints one JSON line per mode:
{"mode", "ms_per_step", "tokens_per_s", "mfu"}; MFU counts 6 N + 12 L d S
FLOPs per token (N parameters, L layers, width d, sequence S) against the
card's dense bf16 peak (--peak-tflops, H100/H200 SXM: 989).

    python3 bench/gpu/torch_gpt2.py --batch 8 --seq 1024 --steps 20

--write-weights FILE instead saves the model's initial state dict (seed 0)
as safetensors, under its state-dict names, for galvatron-run --weights.
"""

import argparse
import json
import time

import torch


def build(seq):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(n_positions=seq, n_embd=768, n_layer=12, n_head=12,
                     vocab_size=50257, attn_implementation="sdpa",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return cfg, GPT2LMHeadModel(cfg)


def flops_per_token(cfg, model, seq):
    n = sum(p.numel() for p in model.parameters())
    return 6 * n + 12 * cfg.n_layer * cfg.n_embd * seq


def time_mode(mode, args):
    cfg, model = build(args.seq)
    model = model.cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    step_fn = model
    if mode == "compile":
        step_fn = torch.compile(model)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(args.steps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    ms = sorted(times)[len(times) // 2]
    tokens = args.batch * args.seq
    mfu = flops_per_token(cfg, model, args.seq) * tokens / (ms / 1e3) / (
        args.peak_tflops * 1e12)
    return {"mode": mode, "ms_per_step": ms, "tokens_per_s": tokens / (ms / 1e3),
            "mfu": mfu}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--modes", default="eager,compile")
    ap.add_argument("--write-weights", metavar="FILE")
    ap.add_argument("--flops-per-token", action="store_true",
                    help="print the model's FLOPs per token and exit")
    args = ap.parse_args()
    if args.write_weights:
        from safetensors.torch import save_file
        _, model = build(args.seq)
        # Tied tensors are saved under each of their names.
        save_file({k: v.detach().clone().contiguous()
                   for k, v in model.state_dict().items()}, args.write_weights)
        return
    if args.flops_per_token:
        cfg, model = build(args.seq)
        print(flops_per_token(cfg, model, args.seq))
        return
    for mode in args.modes.split(","):
        print(json.dumps(time_mode(mode, args)), flush=True)


if __name__ == "__main__":
    main()
