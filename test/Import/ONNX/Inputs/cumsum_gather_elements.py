"""Inputs and numpy references for cumsum-gather-elements.pbtxt, committed
in Inputs/cumsum-gather-elements/ (the test needs no numpy):
  python cumsum_gather_elements.py cumsum-gather-elements
"""
import sys

import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(7)
x = rng.standard_normal((2, 5)).astype(np.float32)
ids = rng.integers(0, 3, size=(2, 4)).astype(np.int64)
data = rng.standard_normal((3, 4)).astype(np.float32)
data[2, 1] = np.inf  # never selected: must not turn the sums into NaN
idx = np.array([[0, -1, 2, 1], [-3, 1, 0, 0]], dtype=np.int64)
np.save(f"{out}/x.npy", x)
np.save(f"{out}/ids.npy", ids)
np.save(f"{out}/data.npy", data)
np.save(f"{out}/idx.npy", idx)


def cumsum(a, axis, exclusive=False, reverse=False):
    a = np.flip(a, axis) if reverse else a
    c = np.cumsum(a, axis=axis, dtype=a.dtype)
    if exclusive:
        c = c - a
    return np.flip(c, axis) if reverse else c


np.save(f"{out}/inclusive.npy", cumsum(x, 1))
np.save(f"{out}/exclusive.npy", cumsum(x, 0, exclusive=True))
np.save(f"{out}/reverse.npy", cumsum(x, 1, reverse=True))
np.save(f"{out}/positions.npy", cumsum(ids, 1, exclusive=True, reverse=True))
rows = np.where(idx < 0, idx + 3, idx)
np.save(f"{out}/gathered.npy", np.take_along_axis(data[:, :4], rows, axis=0))
cols = np.array([[3, -4], [1, 1]], dtype=np.int64)
np.save(f"{out}/cols.npy", cols)
np.save(f"{out}/columns.npy",
        np.take_along_axis(data[:2], np.where(cols < 0, cols + 4, cols), axis=1))
