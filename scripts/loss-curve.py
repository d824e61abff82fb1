#!/usr/bin/env python3
"""Draws the loss per step of a galvatron-run --log file as an SVG picture.

    scripts/loss-curve.py metrics.jsonl loss.svg [--title TEXT]

Plain Python (no plotting library): one polyline, axes with a few ticks.
"""
import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("svg")
    parser.add_argument("--title", default="training loss")
    args = parser.parse_args()
    steps, losses = [], []
    try:
        with open(args.log) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    record = json.loads(line)
                    steps.append(record["step"])
                    losses.append(record["loss"])
    except (OSError, ValueError, KeyError) as error:
        sys.exit(f"loss-curve: {args.log}: {error}")
    if len(steps) < 2:
        sys.exit(f"loss-curve: {args.log}: fewer than two steps logged")
    width, height, left, bottom, top = 640, 360, 60, 40, 30
    lo, hi = min(losses), max(losses)
    span = (hi - lo) or 1.0
    x = lambda s: left + (s - steps[0]) / (steps[-1] - steps[0]) * (width - left - 20)  # noqa: E731
    y = lambda v: top + (hi - v) / span * (height - top - bottom)  # noqa: E731
    points = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(steps, losses))
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           "font-family='sans-serif' font-size='11'>",
           f"<text x='{left}' y='18' font-size='13'>{args.title}</text>",
           f"<line x1='{left}' y1='{height - bottom}' x2='{width - 20}' y2='{height - bottom}' stroke='black'/>",
           f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' stroke='black'/>"]
    for i in range(5):
        value = lo + span * i / 4
        out.append(f"<text x='4' y='{y(value) + 4:.1f}'>{value:.3f}</text>")
        step = steps[0] + (steps[-1] - steps[0]) * i / 4
        out.append(f"<text x='{x(step) - 10:.1f}' y='{height - bottom + 16}'>{step:.0f}</text>")
    out.append(f"<text x='{width / 2:.0f}' y='{height - 6}'>step</text>")
    out.append(f"<polyline fill='none' stroke='#4c8bd6' stroke-width='1.5' points='{points}'/>")
    out.append("</svg>")
    try:
        with open(args.svg, "w") as f:
            f.write("\n".join(out) + "\n")
    except OSError as error:
        sys.exit(f"loss-curve: {args.svg}: {error}")


if __name__ == "__main__":
    main()
