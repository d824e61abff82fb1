"""PyTorch side of the training benchmark: the same model, fp32 on the CPU,
the same thread count, AdamW, next-token loss, batches read from tokens.npy
the way galvatron-run --data reads them. Prints the median tokens/s and the
process's peak resident memory, eager or under torch.compile (inductor;
its compilation happens in the warm-up steps, which the median skips).

usage: python3 bench/train/pytorch_train.py DIR BATCH SEQ STEPS THREADS
           [LAYERS HIDDEN HEADS] [--compile]
"""
import os
import resource
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from make_model import LogitsOnly, config  # noqa: E402


def main():
    args = [a for a in sys.argv[1:] if a != "--compile"]
    compiled = "--compile" in sys.argv
    out, batch, seq, steps, threads = args[0], *map(int, args[1:5])
    shape = tuple(map(int, args[5:8]))
    torch.set_num_threads(threads)
    model = LogitsOnly(config(seq, *shape))
    model.load_state_dict(load_file(os.path.join(out, "weights.safetensors")),
                          strict=False)
    model.train()
    tokens = np.load(os.path.join(out, "tokens.npy"))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step_loss(ids):
        logits = model(ids)
        return loss_fn(logits[:, :-1].reshape(-1, logits.shape[-1]),
                       ids[:, 1:].reshape(-1))

    if compiled:
        step_loss = torch.compile(step_loss)
    times = []
    for step in range(1, steps + 1):
        starts = [((step - 1) * batch + i) * seq % (len(tokens) - seq)
                  for i in range(batch)]
        ids = torch.from_numpy(np.stack([tokens[s:s + seq] for s in starts]))
        begin = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = step_loss(ids)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - begin)
    median = float(np.median(times[2:] if len(times) > 4 else times))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pytorch {batch * seq / median:.0f} tokens/s "
          f"{median * 1000:.1f} ms/step loss {loss.item():.4f} "
          f"peak_rss_mb {peak_mb:.0f}")


if __name__ == "__main__":
    main()
