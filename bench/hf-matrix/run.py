#!/usr/bin/env python3
"""Runs galvatron on every models/hf fixture as a user would, and tabulates.

For each family x export variant (models/hf/FAMILY/VARIANT/model.onnx):
  import    galvatron-translate --import-onnx ... --batch-size 2 --seq-len 8
  logits    --galv-inference-pipeline, galvatron-run --expect logits=
            (PyTorch's logits, rtol 1e-4): the relative error
  5 steps   --galv-training-pipeline, galvatron-run --steps 5 --input
            input_ids=... --expect-losses (PyTorch's AdamW losses, rtol 1e-4):
            the worst relative error
  params    the trained set (the checkpoint's optimizer state) against
            PyTorch's named_parameters() (params.txt): ok, or +extra -missing
  tp=2, tp=2+sp
            --galv-apply-strategy="world-size=2 tp=2" (and "... sp=megatron")
            under mpirun -np 2: the worst relative error against the one-rank
            losses (rtol 1e-5); where one rank did not train, against
            PyTorch's (rtol 1e-4, marked "vs torch")
A failing stage shows FAIL (wrong numbers), ERR (a diagnostic) or CRASH
(LLVM ERROR, a stack dump or a signal); the last column gives the
first diagnostic (ERR or CRASH) of the row, else its first failure.  Exits 1
where some stage crashed.  Needs Python 3 only (no numpy, no torch).

With --state-dict every import also reads the family's PyTorch state dict
(galvatron-translate --state-dict), as a user holding the checkpoint would.

usage: bench/hf-matrix/run.py [--families F...] [--variants V...] [--state-dict]
                              [--markdown] [--details]
       bench/hf-matrix/run.py --log-to-npy metrics.jsonl losses.npy
       bench/hf-matrix/run.py --check-params CHECKPOINT_DIR params.txt
  BUILD_DIR (default /work/main/build) names the tools; MPIRUN the launcher
  (default "mpirun --allow-run-as-root --oversubscribe").
"""
import argparse
import json
import os
import re
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models" / "hf"
VARIANTS = ["torchscript", "torchscript-static", "dynamo", "dynamo-static"]
STRATEGIES = {"tp=2": "world-size=2 tp=2", "tp=2+sp": "world-size=2 tp=2 sp=megatron"}
CRASH = re.compile(r"LLVM ERROR|Stack dump|Segmentation fault|Aborted|exited on signal|"
                   r"terminate called|core dumped")
# mpirun passes on job control (SIGCONT when a loaded machine resumes it).
NOISE = re.compile(r"^mpirun: Forwarding signal \d+ to job\n?", re.M)
TIMEOUT = 300


def save_npy(path, values):
    """A float32 vector as .npy (format 1.0), without numpy."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({len(values)},), }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack(f"<{len(values)}f", *values))


def log_losses(path):
    return [json.loads(ln)["loss"] for ln in Path(path).read_text().splitlines()]


def log_to_npy(log, npy):
    """A galvatron-run --log's losses as the .npy --expect-losses reads."""
    save_npy(npy, log_losses(log))


def check_params(checkpoint_dir, params_txt):
    """The trained set (a checkpoint's optimizer state) against params.txt."""
    want = {ln.split()[0] for ln in Path(params_txt).read_text().splitlines()}
    files = list(Path(checkpoint_dir).glob("step-*/optimizer.safetensors"))
    if not files:
        raise Stage("ERR", f"no checkpoint in {checkpoint_dir}")
    with open(files[0], "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    got = {k.split(":", 1)[1] for k in header if k.startswith("adam_m:")}
    if got != want:
        extra, missing = sorted(got - want), sorted(want - got)
        raise Stage("FAIL", f"trains {len(extra)} tensors not in named_parameters() "
                    f"({', '.join(extra[:2])}, ...); {len(missing)} parameters are not "
                    f"trained under their names ({', '.join(missing[:2])}, ...)",
                    f"+{len(extra)}/-{len(missing)}")


class Stage(Exception):
    """A failed stage: its status (ERR, CRASH, FAIL) and first error line."""

    def __init__(self, status, line, cell=None):
        super().__init__(line)
        self.status, self.line = status, line
        if cell is None and status == "FAIL":
            cell = f"FAIL {error_of(line, ''):.1e}"
        self.cell = cell or status


def first_error(text):
    lines = [ln.strip().replace(f"{ROOT}/", "") for ln in text.splitlines() if ln.strip()]
    for pattern in (CRASH, re.compile(r"error", re.I)):
        for ln in lines:
            if pattern.search(ln):
                return ln
    return lines[-1] if lines else "(no output)"


def wait_for(tool):
    """The tools may be rebuilt under us: wait a while for one that is missing."""
    for _ in range(60):
        if os.access(tool, os.X_OK):
            return
        time.sleep(2)


def run(cmd, work):
    """Runs cmd (a list); returns its output, or raises Stage."""
    for arg in cmd:
        if "/galvatron-" in arg:
            wait_for(arg)
    try:
        p = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Stage("ERR", f"timed out after {TIMEOUT} s: {' '.join(cmd[:2])}")
    out = NOISE.sub("", p.stdout)
    if p.returncode < 0 or CRASH.search(out):
        raise Stage("CRASH", first_error(out) if CRASH.search(out)
                    else f"killed by signal {-p.returncode}")
    if p.returncode != 0:
        status = "FAIL" if re.search(r": FAIL\b", out) else "ERR"
        raise Stage(status, first_error(out) if status == "ERR" else fail_line(out))
    return out


def fail_line(out):
    line = next(ln for ln in out.splitlines() if re.search(r": FAIL\b", ln))
    return line.replace(f"{ROOT}/", "")


def error_of(out, pattern):
    m = re.search(pattern + r"[^\n]*?relative(?: error)? ([0-9][0-9.e+-]*)", out)
    return float(m.group(1)) if m else float("nan")


class Case:
    def __init__(self, tools, mpirun, family, variant, work, state_dict):
        self.t, self.mpirun, self.work = tools, mpirun, work
        self.fam = MODELS / family
        self.state_dict = state_dict
        self.onnx = self.fam / variant / "model.onnx"
        self.ids = f"input_ids={self.fam / 'input_ids.npy'}"

    def tool(self, name, *args):
        return run([str(self.t / name), *map(str, args)], self.work)

    def compile_training(self, strategy, name):
        opts = [f"--galv-apply-strategy={strategy}"] if strategy else []
        self.tool("galvatron-opt", "m.mlir", *opts, "--galv-training-pipeline",
                  "-o", f"{name}.mlir")
        self.tool("galvatron-translate", "--emit-plan", "--plan-function=train_step",
                  f"{name}.mlir", "-o", f"{name}.bin")

    def train_args(self, plan, expect, rtol):
        return [str(self.t / "galvatron-run"), plan, "--weights", "m.safetensors",
                "--steps", "5", "--input", self.ids, "--expect-losses", str(expect),
                "--rtol", str(rtol)]

    def import_model(self):
        extra = ["--state-dict", self.fam / "state_dict.safetensors"] if self.state_dict else []
        self.tool("galvatron-translate", "--import-onnx", self.onnx, "--batch-size", "2",
                  "--seq-len", "8", *extra, "-o", "m.mlir")
        return "ok"

    def logits(self):
        self.tool("galvatron-opt", "m.mlir", "--galv-inference-pipeline", "-o", "p.mlir")
        self.tool("galvatron-translate", "--emit-plan", "p.mlir", "-o", "p.bin")
        out = self.tool("galvatron-run", "p.bin", "--input", self.ids, "--weights",
                        "m.safetensors", "--expect",
                        f"logits={self.fam / 'logits.npy'}", "--rtol", "1e-4")
        return f"{error_of(out, 'logits'):.1e}"

    def train(self):
        """5 AdamW steps on one rank; leaves one-rank.npy and the checkpoint."""
        self.compile_training(None, "t")
        cmd = self.train_args("t.bin", self.fam / "adamw_losses.npy", 1e-4)
        cmd += ["--log", "t.jsonl", "--checkpoint-dir", "ck"]
        try:
            out = run(cmd, self.work)
        finally:
            log = Path(self.work) / "t.jsonl"
            if log.exists():
                if len(log_losses(log)) == 5:
                    log_to_npy(log, Path(self.work) / "one-rank.npy")
        return f"{error_of(out, 'losses'):.1e}"

    def params(self):
        check_params(Path(self.work, "ck"), self.fam / "params.txt")
        return "ok"

    def parallel(self, label):
        name = label.replace("=", "").replace("+", "-")
        self.compile_training(STRATEGIES[label], name)
        ref = Path(self.work) / "one-rank.npy"
        vs_torch = not ref.exists()
        cmd = self.train_args(f"{name}.bin", self.fam / "adamw_losses.npy" if vs_torch
                              else ref, 1e-4 if vs_torch else 1e-5)
        out = run(self.mpirun + ["-np", "2"] + cmd, self.work)
        return f"{error_of(out, 'losses'):.1e}" + (" vs torch" if vs_torch else "")


COLUMNS = ["import", "logits", "5 steps", "params", "tp=2", "tp=2+sp"]


def run_case(tools, mpirun, family, variant, state_dict):
    """One row: each column's result and each failed stage's diagnostic."""
    row, diags = {}, {}
    with tempfile.TemporaryDirectory(prefix="hf-matrix-") as work:
        case = Case(tools, mpirun, family, variant, work, state_dict)
        stages = [("import", case.import_model), ("logits", case.logits),
                  ("5 steps", case.train), ("params", case.params),
                  ("tp=2", lambda: case.parallel("tp=2")),
                  ("tp=2+sp", lambda: case.parallel("tp=2+sp"))]
        for col, fn in stages:
            if col != "import" and row["import"] != "ok":
                row[col] = "-"
                continue
            if col == "params" and row["5 steps"] in ("ERR", "CRASH"):
                row[col] = "-"
                continue
            try:
                row[col] = fn()
            except Stage as s:
                row[col] = s.cell
                diags[col] = (s.status, s.line)
    return row, diags


def headline(diags):
    """The first diagnostic (ERR or CRASH) of a row, else its first failure."""
    for col, (status, line) in diags.items():
        if status != "FAIL":
            return f"{col}: {line}"
    return next((f"{col}: {line}" for col, (_, line) in diags.items()), "")


def table(rows, markdown):
    head = ["family", "variant"] + COLUMNS + ["diagnostic"]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for fam, var, row, diags in rows:
            cells = [fam, var] + [row[c] for c in COLUMNS] + [
                headline(diags).replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        for fam, var, row, diags in rows:
            cells = [f"{fam:<20}", f"{var:<19}"] + [f"{row[c]:<13}" for c in COLUMNS]
            lines.append(" ".join(cells) + headline(diags)[:200])
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="*")
    ap.add_argument("--variants", nargs="*", default=VARIANTS)
    ap.add_argument("--state-dict", action="store_true",
                    help="import with --state-dict FAMILY/state_dict.safetensors")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--details", action="store_true", help="list every failed stage's line")
    ap.add_argument("--log-to-npy", nargs=2, metavar=("LOG", "NPY"),
                    help="only write LOG's (galvatron-run --log) losses to NPY")
    ap.add_argument("--check-params", nargs=2, metavar=("CHECKPOINT_DIR", "PARAMS_TXT"),
                    help="only check a checkpoint's trained set against params.txt")
    ns = ap.parse_args(argv)
    if ns.log_to_npy:
        log_to_npy(*ns.log_to_npy)
        return 0
    if ns.check_params:
        try:
            check_params(*ns.check_params)
        except Stage as s:
            print(f"params: {s.line}")
            return 1
        print(f"params: {len(Path(ns.check_params[1]).read_text().splitlines())}, "
              "as named_parameters()")
        return 0
    tools = Path(os.environ.get("BUILD_DIR", "/work/main/build")) / "bin"
    mpirun = shlex.split(os.environ.get("MPIRUN", "mpirun --allow-run-as-root --oversubscribe"))
    families = ns.families or sorted(p.name for p in MODELS.iterdir()
                                     if (p / "params.txt").exists())
    rows = []
    for fam in families:
        for var in ns.variants:
            if not (MODELS / fam / var / "model.onnx").exists():
                rows.append((fam, var, dict.fromkeys(COLUMNS, "-"),
                             {"import": ("ERR", "no export")}))
                continue
            row, diags = run_case(tools, mpirun, fam, var, ns.state_dict)
            rows.append((fam, var, row, diags))
            print(table(rows[-1:], False), flush=True)
    passed = sum(all(r[c][0].isdigit() or r[c] == "ok" for c in COLUMNS) for _, _, r, _ in rows)
    print(f"\n{passed}/{len(rows)} variants pass every stage\n")
    print(table(rows, ns.markdown))
    if ns.details:
        print("\nEvery failed stage:")
        for fam, var, _, diags in rows:
            for col, (status, line) in diags.items():
                print(f"  {fam} {var} {col}: {status}: {line}")
    crashes = [(f, v) for f, v, r, _ in rows if "CRASH" in r.values()]
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
