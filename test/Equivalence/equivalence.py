#!/usr/bin/env python3
"""Every parallel strategy must train exactly like one rank.

For each fixture (GPT-2, LLaMA, BERT) this imports the model, trains it on
one rank for --steps AdamW steps on the bundled corpus (the reference), then
compiles and runs each strategy below under mpirun and checks that
  * every step's loss matches the reference within --rtol (relative), and
  * the consolidated checkpoint (parameters and both Adam moments) matches
    the reference checkpoint within --rtol, measured per tensor as
    max |a - b| / max |b|.
Elements whose gradient is zero or rounding noise in exact arithmetic (the
key bias of attention, which softmax ignores; rows of tables no token used)
are left out of the checkpoint check and counted ("still"): Adam turns noise
of 1e-10 into steps of lr, on one rank as on many. They are found from the
reference's second moment (v < 1e-12, against 1e-6 and up for the rest).

Prints a table; exits 1 if any strategy fails. Standard library only.

  test/Equivalence/equivalence.py --build build [--mpirun "mpirun ..."]
      [--models gpt2,llama,bert] [--only NAME] [--steps 10] [--rtol 1e-5]
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BATCH, SEQ = 8, 8
# The hardware galv-estimate prices with (its traffic counts do not depend
# on it).
HARDWARE = "preset:a100-1x8"
SEARCH_HARDWARE = os.path.join(ROOT, "bench", "profile", "this-machine-np4.json")

# (name, ranks, galv-apply-strategy flags, models it applies to or None,
# [--galv-training-pipeline options, compared with a one-rank run alike]).
# LLaMA's 2 key/value heads do not split 4 ways, hence the tp = 4 limits.
STRATEGIES = [
    ("dp2", 2, "", None),
    ("tp2", 2, "tp=2", None),
    ("zero2", 2, "dp-type=zero2", None),
    ("zero3", 2, "dp-type=zero3", None),
    ("dp2-recompute", 2, "checkpoint=1", None),
    ("vocab-tp2", 2, "vocab-tp=2", None),
    ("tp2-megatron-sp", 2, "tp=2 sp=megatron", None),
    ("tp2-ulysses", 2, "tp=2 sp=ulysses", None),
    ("dp2-chunks2", 2, "chunks=2", None),
    ("dp4", 4, "", None),
    ("tp2-dp2", 4, "tp=2", None),
    ("tp2-strided", 4, "tp=2 tp-consec=0", None),
    ("tp2-zero2", 4, "tp=2 dp-type=zero2", None),
    ("tp2-zero3-recompute", 4, "tp=2 sdp=1 checkpoint=1", None),
    ("mixed-tp2-tp1", 4, "tp=2,1 tp-consec=1,0", None),
    ("mixed-zero3-tp2-recompute", 4, "tp=1,2 sdp=1,0 checkpoint=0,1", None),
    ("tp2-vocab-tp4", 4, "tp=2 vocab-tp=4", None),
    ("megatron-sp-vocab-tp2", 4, "tp=2 sp=megatron vocab-tp=2", None),
    ("ulysses-zero2", 4, "tp=2 sp=ulysses dp-type=zero2", None),
    ("mixed-sp-kinds", 4, "tp=2 sp=megatron,ulysses", None),
    ("tp2-chunks4", 4, "tp=2 chunks=4 vocab-tp=2", None),
    ("tp4", 4, "tp=4", ("gpt2", "bert")),
    ("tp4-ulysses", 4, "tp=4 sp=ulysses", ("gpt2", "bert")),
    ("dp8", 8, "", None),
    ("tp2-zero3-8", 8, "tp=2 dp-type=zero3", None),
    ("tp2-strided-vocab-tp2", 8, "tp=2 tp-consec=0 vocab-tp=2", None),
    ("mixed-sp-recompute-zero2", 8,
     "tp=2,1 sp=megatron,none checkpoint=1,0 dp-type=zero2", None),
    ("ulysses-zero3-8", 8, "tp=2 sp=ulysses sdp=1", None),
    ("tp2-chunks2-8", 8, "tp=2 chunks=2 vocab-tp=2", None),
    ("tp4-vocab-tp2-8", 8, "tp=4 vocab-tp=2", ("gpt2", "bert")),
    # Pipelines: one layer per stage; 1F1B (pipedream_flush) with more
    # micro-batches than stages.
    ("pp2", 2, "pp=2", None),
    ("pp2-gpipe-chunks2", 2, "pp=2 chunks=2", None),
    ("pp2-1f1b-chunks4", 2, "pp=2 chunks=4 pipeline=pipedream_flush", None),
    ("pp2-tp2-zero3-recompute", 4, "pp=2 tp=2 sdp=1 checkpoint=1", None),
    ("pp2-1f1b-chunks4-zero2", 4,
     "pp=2 chunks=4 pipeline=pipedream_flush dp-type=zero2", None),
    ("pp2-1f1b-megatron-sp-vocab-tp2", 8,
     "pp=2 tp=2 sp=megatron vocab-tp=2 chunks=2 pipeline=pipedream_flush",
     None),
    ("pp2-1f1b-ulysses-zero3-recompute", 8,
     "pp=2 tp=2 sp=ulysses sdp=1 checkpoint=1 chunks=4 vocab-tp=2 "
     "pipeline=pipedream_flush", None),
    # Sequence parallelism in the embedding and head too (Galvatron's vsp).
    ("vocab-tp2-vsp", 2, "vocab-tp=2 vocab-sp=1", None),
    ("megatron-sp-vocab-tp2-vsp-zero3", 4,
     "tp=2 sp=megatron vocab-tp=2 vocab-sp=1 sdp=1", None),
    ("pp2-vocab-tp2-vsp-1f1b", 8,
     "pp=2 tp=2 sp=megatron,ulysses vocab-tp=2 vocab-sp=1 chunks=2 "
     "pipeline=pipedream_flush", None),
    # Global-norm clipping over sharded gradients (every step clips).
    ("clip-tp2-zero2", 4, "tp=2 dp-type=zero2", None, "clip-norm=0.5"),
    ("clip-zero3-vocab-tp2", 4, "sdp=1 vocab-tp=2", None, "clip-norm=0.5"),
    ("clip-pp2-tp2-1f1b", 8, "pp=2 tp=2 chunks=2 pipeline=pipedream_flush",
     None, "clip-norm=0.5"),
    # No strategy given: galv-search picks one under a budget that plain data
    # parallelism exceeds (810632 bytes per rank lowered), with the costs of
    # this kind of VM (bench/profile/this-machine-np4.json); the run checks
    # each rank's measured tensor bytes against the plan's lowered memory.
    ("searched-tight", 4, "search:memory-gb=0.0005 top=10", ("gpt2",)),
]


def run(cmd, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        with open(log) as f:
            tail = f.read().splitlines()[-6:]
        raise RuntimeError(" | ".join(line.strip() for line in tail))


def chunks_of(flags):
    for flag in flags.split():
        if flag.startswith("chunks="):
            return int(flag.split("=")[1])
    return 1


def losses(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def compare_checkpoints(ref_dir, got_dir):
    """Worst per-tensor relative error and the count of still elements."""
    worst, still = 0.0, 0
    ref_opt = safetensors_io.read(os.path.join(ref_dir, "optimizer.safetensors"))
    for file in ("model.safetensors", "optimizer.safetensors"):
        ref = (ref_opt if file == "optimizer.safetensors" else
               safetensors_io.read(os.path.join(ref_dir, file)))
        got = safetensors_io.read(os.path.join(got_dir, file))
        if set(ref) != set(got):
            raise RuntimeError(f"{file}: tensors {sorted(set(ref) ^ set(got))} "
                               "differ between the checkpoints")
        for name, (shape, a) in ref.items():
            gshape, b = got[name]
            if shape != gshape:
                raise RuntimeError(f"{file}: '{name}' is {gshape}, not {shape}")
            param = name.split(":", 1)[-1]
            v = ref_opt["adam_v:" + param][1]
            scale = max((abs(x) for x in a), default=0.0) or 1.0
            for i, (x, y) in enumerate(zip(a, b)):
                if v[i] < 1e-12:
                    still += file == "model.safetensors"
                    continue
                worst = max(worst, abs(x - y) / scale)
    return worst, still


def compare_traffic(estimate_path, out, ranks):
    """galv-estimate's bytes per rank and collective against the runtime's
    counts of the last step; the first difference, or None."""
    with open(estimate_path) as f:
        predicted = json.load(f)["ranks"]
    if len(predicted) != ranks:
        return f"estimate lists {len(predicted)} ranks, not {ranks}"
    for rank in range(ranks):
        log = out + (".jsonl" if rank == 0 else f".rank{rank}.jsonl")
        measured = losses(log)[-1].get("comm_bytes", {})
        if predicted[rank]["bytes_sent"] != measured:
            return (f"rank {rank}: estimated bytes {predicted[rank]['bytes_sent']}"
                    f" but the runtime counted {measured}")
    return None


def check_searched(report_path, out, ranks):
    """A searched plan: plain data parallelism did not fit, and every rank's
    measured tensor bytes stay within the lowered memory the search
    predicted for its stage, itself within the budget; the first failure."""
    with open(report_path) as f:
        report = json.load(f)
    ddp = [a for a in report["alternatives"] if a["name"].startswith("data parallel (DDP)")]
    if not ddp or ddp[0]["fits"]:
        return "plain data parallelism fits the budget: not a tight search"
    predicted = report["chosen"]["lowered_stage_memory_bytes"]
    budget = report["memory_budget_bytes"]
    with open(report_path[: -len(".search.json")] + ".estimate.json") as f:
        stages = [r["stage"] for r in json.load(f)["ranks"]]
    for rank in range(ranks):
        log = out + (".jsonl" if rank == 0 else f".rank{rank}.jsonl")
        measured = max(r["tensor_bytes"] for r in losses(log))
        if not measured <= predicted[stages[rank]] <= budget:
            return (f"rank {rank}: measured {measured} tensor bytes, predicted "
                    f"{predicted[stages[rank]]}, budget {budget:.0f}")
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--mpirun", default="mpirun --oversubscribe" +
                        (" --allow-run-as-root" if os.geteuid() == 0 else ""))
    parser.add_argument("--models", default="gpt2,llama,bert")
    parser.add_argument("--only", default="")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--keep", default="", help="work directory to keep")
    args = parser.parse_args()

    bin_dir = os.path.join(args.build, "bin")
    tool = lambda name: os.path.join(bin_dir, name)  # noqa: E731
    corpus = os.path.join(ROOT, "models", "corpus", "tokens.npy")
    work = args.keep or tempfile.mkdtemp(prefix="galvatron-equivalence-")
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "commands.log")
    # Open MPI's session directories live under this run's own work
    # directory: mpirun jobs of another suite running at the same time (ctest
    # -j) otherwise race on the shared one ("orte_session_dir failed").
    os.environ["OMPI_MCA_orte_tmpdir_base"] = tempfile.mkdtemp(
        prefix="ompi-", dir=work)
    mpirun = shlex.split(args.mpirun)
    failures, rows = 0, []
    start = time.time()

    def compile_plan(model_dir, batch, flags, out, options=""):
        fixture = os.path.join(ROOT, "models", "fixtures", f"{model_dir}-torchscript")
        imported = os.path.join(work, f"{model_dir}-b{batch}.mlir")
        if not os.path.exists(imported):
            run([tool("galvatron-translate"), "--import-onnx",
                 os.path.join(fixture, "model.onnx"), "--batch-size", str(batch),
                 "--seq-len", str(SEQ), "--state-dict",
                 os.path.join(fixture, "weights.safetensors"), "-o", imported], log)
        pipeline = "--galv-training-pipeline" + (f"={options}" if options else "")
        # galv-estimate counts each rank's bytes per collective from a copy
        # lowered the same way; train() checks them against the runtime's.
        estimate = [f"--galv-estimate=out={out}.estimate.json training='{options}'"]
        if " search:" in f" {flags}":
            world, search = flags.split(" search:")
            strategy = [f"--galv-annotate-costs=hardware={SEARCH_HARDWARE}",
                        f"--galv-search={world} {search} report={out}.search.json"]
        else:
            strategy = [f"--galv-apply-strategy={flags}",
                        f"--galv-annotate-costs=hardware={HARDWARE}"]
        run([tool("galvatron-opt"), imported, *strategy, *estimate, pipeline,
             "-o", out + ".mlir"], log)
        run([tool("galvatron-translate"), "--emit-plan",
             "--plan-function=train_step", out + ".mlir", "-o", out + ".bin"], log)
        return imported[: -len(".mlir")] + ".safetensors"

    def train(plan, weights, ranks, name):
        out = os.path.join(work, name)
        cmd = [tool("galvatron-run"), plan, "--weights", weights, "--data", corpus,
               "--steps", str(args.steps), "--lr", "1e-3", "--log",
               out + ".jsonl", "--checkpoint-dir", out + "-checkpoint"]
        run((mpirun + ["-np", str(ranks)] if ranks > 1 else []) + cmd, log)
        return out

    for model in args.models.split(","):
        references = {}

        def reference_for(options):
            # One-rank runs, one per set of training-pipeline options.
            if options not in references:
                tag = f"{model}-one-rank" + (f"-{options}" if options else "")
                base = os.path.join(work, tag)
                weights = compile_plan(model, BATCH, "world-size=1", base, options)
                out = train(base + ".bin", weights, 1, tag)
                references[options] = (out, [r["loss"] for r in losses(out + ".jsonl")])
            return references[options]

        for entry in STRATEGIES:
            name, ranks, flags, models = entry[:4]
            options = entry[4] if len(entry) > 4 else ""
            if models and model not in models:
                continue
            if args.only and args.only != name:
                continue
            tag = f"{model}-{name}"
            chunks = chunks_of(flags)
            row = {"model": model, "strategy": name, "ranks": ranks, "flags": flags}
            try:
                reference, ref_losses = reference_for(options)
                plan = os.path.join(work, tag)
                weights = compile_plan(model, BATCH // chunks,
                                       f"world-size={ranks} {flags}".strip(), plan,
                                       options)
                out = train(plan + ".bin", weights, ranks, tag)
                got = losses(out + ".jsonl")
                worst = max(abs(g["loss"] - r) / abs(r) for g, r in zip(got, ref_losses))
                if len(got) != len(ref_losses):
                    raise RuntimeError(f"{len(got)} steps logged, not {len(ref_losses)}")
                # Each run's last checkpoint is the one `latest` names.
                ckpt, still = compare_checkpoints(
                    os.path.join(reference + "-checkpoint", "latest"),
                    os.path.join(out + "-checkpoint", "latest"))
                row.update(loss=worst, checkpoint=ckpt, still=still,
                           comm=sum(got[-1].get("comm_bytes", {}).values()))
                traffic = compare_traffic(plan + ".estimate.json", out, ranks)
                if traffic:
                    raise RuntimeError(traffic)
                if flags.startswith("search:"):
                    memory = check_searched(plan + ".search.json", out, ranks)
                    if memory:
                        raise RuntimeError(memory)
                row["ok"] = worst <= args.rtol and ckpt <= args.rtol
            except RuntimeError as error:
                row.update(ok=False, error=str(error))
            failures += not row["ok"]
            rows.append(row)
            if row["ok"]:
                line = (f"{model:6} {name:27} {ranks:>2}  {row['loss']:.2e}  "
                        f"{row['checkpoint']:.2e}  {row['still']:>5}  "
                        f"{row['comm']:>9}  PASS")
            else:
                line = f"{model:6} {name:27} {ranks:>2}  FAIL {row.get('error', '')}"
                if "loss" in row:
                    line += f" loss {row['loss']:.2e} checkpoint {row['checkpoint']:.2e}"
            if len(rows) == 1:
                print(f"{'model':6} {'strategy':27} {'np':>2}  {'loss err':8}  "
                      f"{'ckpt err':8}  {'still':>5}  {'comm B/st':>9}  result")
            print(line, flush=True)
    passed = len(rows) - failures
    print(f"{passed} of {len(rows)} strategy runs match one rank within "
          f"rtol {args.rtol:g} ({args.steps} steps; {time.time() - start:.0f} s; "
          f"work directory {work})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
