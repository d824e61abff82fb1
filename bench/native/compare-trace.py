#!/usr/bin/env python3
"""Where a predicted step and a measured one differ, by kernel class.

  galvatron-opt m.mlir ... --galv-estimate="trace=PRED" ...
  galvatron-run plan.bin ... --trace MEAS
  bench/native/compare-trace.py PRED MEAS [--by class|opcode] [--rank R]

Each instruction's measured time is its median over the traced steps (the
first is left out: it warms the caches); an instruction's predicted time is
the played-out one. Both include waits (a collective's time from the rank's
arrival to its end). Prints per group the predicted and measured ms per
step and their ratio, largest measured first.
"""
import argparse
import json
import os
import statistics


def load(path):
    with open(path) as f:
        return [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("predicted")
    ap.add_argument("measured")
    ap.add_argument("--by", choices=["class", "opcode"], default="class")
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--top", type=int, default=0,
                    help="also list the N instructions furthest under")
    a = ap.parse_args()
    name = f"trace-rank{a.rank}.json"
    pred = load(os.path.join(a.predicted, name))
    meas = [e for e in load(os.path.join(a.measured, name)) if e["name"] != "step"]
    group_of, pred_ms, names = {}, {}, {}
    for e in pred:
        i = e["args"]["instruction"]
        group_of[i] = e["args"].get("class", "communication") if a.by == "class" else e["name"]
        pred_ms[i] = e["dur"] / 1000
        names[i] = e["name"]
    first = min(e["args"]["step"] for e in meas)
    times = {}
    for e in meas:
        if e["args"]["step"] != first:
            times.setdefault(e["args"]["instruction"], []).append(e["dur"] / 1000)
    steps = [e["dur"] / 1000 for e in load(os.path.join(a.measured, name))
             if e["name"] == "step"][1:]
    if set(times) != set(pred_ms):
        raise SystemExit("the traces are of different programs "
                         f"({len(pred_ms)} and {len(times)} instructions)")
    rows = {}
    for i, ts in times.items():
        r = rows.setdefault(group_of[i], [0.0, 0.0, 0])
        r[0] += pred_ms[i]
        r[1] += statistics.median(ts)
        r[2] += 1
    print(f"{a.by:>20} | count | predicted ms | measured ms | ratio")
    tp = tm = 0
    for g, (p, m, n) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        tp, tm = tp + p, tm + m
        print(f"{g:>20} | {n:5d} | {p:12.3f} | {m:11.3f} | {p / m if m else 0:5.2f}")
    print(f"{'sum':>20} |       | {tp:12.3f} | {tm:11.3f} | {tp / tm if tm else 0:5.2f}")
    if a.top:
        print(f"\n{'instruction':>11} | {'opcode':>14} | predicted ms | measured ms")
        under = sorted(times, key=lambda i: pred_ms[i] - statistics.median(times[i]))
        for i in under[:a.top]:
            print(f"{i:11d} | {names[i]:>14} | {pred_ms[i]:12.3f} | "
                  f"{statistics.median(times[i]):11.3f}")
    if steps:
        print(f"measured step (median of {len(steps)}): {statistics.median(steps):.3f} ms")


if __name__ == "__main__":
    main()
