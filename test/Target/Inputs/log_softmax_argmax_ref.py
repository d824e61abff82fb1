"""Writes x.npy and the expected log_softmax / argmax outputs for
log-softmax-argmax.test, computed with Python's math module (no numpy on
the test machines). Rows include ties, large logits and a -100 gap."""
import math
import struct
import sys

X = [[1.0, 3.0, 3.0, -2.0],
     [80.0, 79.5, -20.0, 80.0],
     [-100.0, 0.0, 0.5, 0.25]]


def write_npy(path, descr, shape, values, fmt):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % d for d in shape) if len(shape) > 1 else
        "%d," % shape[0])
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
        f.write(header.encode("latin1"))
        f.write(struct.pack("<%d%s" % (len(values), fmt), *values))


def log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def argmax(values, last):
    best = 0
    for i, v in enumerate(values):
        if v > values[best] or (last and v == values[best]):
            best = i
    return best


out = sys.argv[1]
flat = [v for row in X for v in row]
write_npy(out + "/x.npy", "<f4", (3, 4), flat, "f")
write_npy(out + "/logsm.npy", "<f4", (3, 4),
          [v for row in X for v in log_softmax(row)], "f")
write_npy(out + "/amax.npy", "<i8", (3,), [argmax(r, False) for r in X], "q")
cols = [[X[r][c] for r in range(3)] for c in range(4)]
write_npy(out + "/amax0.npy", "<i8", (1, 4), [argmax(c, True) for c in cols],
          "q")
