"""Writes an int64 .npy of shape (rows, cols) holding 0, 1, 2, ... with one
element replaced: write_ids.py OUT ROWS COLS POSITION VALUE (no numpy)."""
import struct
import sys

out, rows, cols, position, value = sys.argv[1], *map(int, sys.argv[2:6])
values = [i % 50 for i in range(rows * cols)]
values[position] = value
header = "{'descr': '<i8', 'fortran_order': False, 'shape': (%d, %d), }" % (
    rows, cols)
header += " " * (63 - (len(header) + 10) % 64) + "\n"
with open(out, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
    f.write(header.encode("latin1"))
    f.write(struct.pack("<%dq" % len(values), *values))
