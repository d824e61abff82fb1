"""Checks what a measured hw.json's probes are made of.

    check_hardware_profile.py HW.json [--shared]

The "gemm" kernel rates have a point on each side of the multiply-adds at
which the runtime's gemm() starts to split rows across threads (256^3;
the probe's GEMM is (4s x s)(s x s): 8 s^3 FLOPs), the repetitions are
spread over passes, and, with --shared (three ranks or more on fewer
cores), the shared-core table rises with the burst (the profiler pools
points that fall) and the contended-collective table has a row either side
of the runtime's blocking size (64 KB), each rising with the others' call. Prints one line per check
and "hardware profile: PASS".
"""

import json
import sys

hw = json.load(open(sys.argv[1]))
latency = hw["latency"]


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        sys.exit(1)


split_flops = 2 * 256**3
keys = [work for work, _ in latency["kernel_rates"]["gemm"]]
below = [k for k in keys if split_flops / 1.5 < k <= split_flops]
above = [k for k in keys if split_flops < k < split_flops * 1.5]
check(below and above, "gemm points either side of %d FLOPs: %s" %
      (split_flops, keys))
what = hw["measurements"]["kernel_rates"]["what"]
check("passes" in what, "kernel rates over passes: " + what)
if "--shared" in sys.argv:
    table = latency["sync_excess_ms"]
    bursts = [b for b, _ in table]
    extras = [e for _, e in table]
    check(bursts == sorted(bursts) and len(set(bursts)) == len(bursts),
          "bursts increase: %s" % bursts)
    check(all(a <= b for a, b in zip(extras, extras[1:])),
          "extras never fall: %s" % extras)
    rows = latency["contended_excess_ms"]
    check(sorted(rows, key=int) == ["4096", "65536"],
          "contended rows either side of the blocking size: %s" % list(rows))
    for size, row in rows.items():
        calls = [c for c, _ in row]
        extras = [e for _, e in row]
        check(len(calls) == 3 and calls == sorted(calls),
              "%s-byte row: three calls that increase: %s" % (size, calls))
        check(all(a <= b for a, b in zip(extras, extras[1:])),
              "%s-byte row: extras never fall: %s" % (size, extras))
print("hardware profile: PASS")
