"""PyTorch side of the training benchmark: the same model, fp32 on the CPU,
the same thread count, AdamW, next-token loss, batches read from tokens.npy
the way galvatron-run --data reads them. Prints the median tokens/s.

usage: python3 bench/train/pytorch_train.py DIR BATCH SEQ STEPS THREADS
"""
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from make_model import LogitsOnly, config  # noqa: E402


def main():
    out, batch, seq, steps, threads = sys.argv[1], *map(int, sys.argv[2:6])
    torch.set_num_threads(threads)
    model = LogitsOnly(config(seq))
    model.load_state_dict(load_file(os.path.join(out, "weights.safetensors")),
                          strict=False)
    model.train()
    tokens = np.load(os.path.join(out, "tokens.npy"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for step in range(1, steps + 1):
        starts = [((step - 1) * batch + i) * seq % (len(tokens) - seq)
                  for i in range(batch)]
        ids = torch.from_numpy(np.stack([tokens[s:s + seq] for s in starts]))
        begin = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(ids)
        loss = loss_fn(logits[:, :-1].reshape(-1, logits.shape[-1]),
                       ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - begin)
    median = float(np.median(times[2:] if len(times) > 4 else times))
    print(f"pytorch {batch * seq / median:.0f} tokens/s "
          f"{median * 1000:.1f} ms/step loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
