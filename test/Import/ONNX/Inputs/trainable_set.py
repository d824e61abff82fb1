"""Compares an imported module's trainable parameters with PyTorch's.

    trainable_set.py MODEL.mlir meta.json

meta.json (models/make_fixtures.py) lists the state dict with each entry's
is_parameter (named_parameters()) and the groups of tied names. The
trainable set must hold one name of every parameter tensor (tied names are
one tensor, which the import declares once) and nothing else. Prints one
line, ending in PASS or FAIL with what differs.
"""
import json
import re
import sys


def main():
    mlir, meta_path = sys.argv[1:3]
    meta = json.load(open(meta_path))
    params = {e["name"] for e in meta["state_dict"] if e["is_parameter"]}
    tensor_of = {name: name for name in params}
    for group in meta.get("tied_weights", []):
        for name in group:
            tensor_of[name] = min(group)
    trainable, frozen = set(), set()
    declared = re.compile(r'\s*galv\.parameter @"?([^" ]+)"? : \S+( trainable)?')
    with open(mlir) as f:
        for line in f:
            m = declared.match(line)
            if m:
                (trainable if m.group(2) else frozen).add(m.group(1))
    problems = []
    extra = sorted(trainable - params)
    if extra:
        problems.append(f"trained but not parameters: {extra}")
    covered = {tensor_of[n] for n in trainable & params}
    missing = sorted(set(tensor_of.values()) - covered)
    if missing:
        problems.append(f"parameters not trained: {missing}")
    if len(covered) != len(trainable & params):
        problems.append("a tied tensor is trained twice")
    print(f"{meta['variant']}: {len(trainable)} trainable for "
          f"{len(params)} parameter names, {len(frozen)} frozen: "
          + ("; ".join(problems) + ": FAIL" if problems else "PASS"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
