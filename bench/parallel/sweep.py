#!/usr/bin/env python3
"""Random hybrid strategies on the benchmark model, each against one rank.

The benchmark model (bench/train/make_model.py: 4 layers, hidden 256,
vocabulary 8192, tied head; its exporter shares the identical initial norm
weights between layers, which the fixtures do not) stresses what the
equivalence suite cannot: more layers than two, pipelines of up to 4
stages, weights read by layers of different groups and stages. Each draw
mixes per-layer tp / sp / ZeRO-3 / recompute with pp, chunks, vocabulary
parallelism, dp type, schedule and group layout; it must either be refused
with a galv- error or train 2 steps with the one-rank losses (rtol 1e-5).

  bench/parallel/sweep.py [SEED] [COUNT]     (after bench/parallel/run.sh)
"""
import os
import random
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")), "bin")
WORK = os.environ.get("WORK_DIR", "/tmp/galvatron-bench/parallel")
TOKENS = os.path.join(ROOT, "models", "corpus", "tokens.npy")
MPIRUN = ["mpirun", "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])


def shell(command):
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=WORK)


def losses(text):
    return [float(x) for x in re.findall(r"loss ([0-9.]+)", text)]


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    if not os.path.exists(os.path.join(WORK, "m.mlir")):
        sys.exit("run bench/parallel/run.sh first (it imports the model into " + WORK + ")")
    rng = random.Random(seed)
    references = {}
    ok = bad = refused = 0
    for _ in range(count):
        world = rng.choice([4, 8])
        pp = rng.choice([1, 2, 4])
        per = world // pp
        tps = [rng.choice([t for t in (1, 2, 4) if per % t == 0]) for _ in range(4)]
        chunks = rng.choice([1, 2])
        vtp = rng.choice([v for v in (1, 2, 4) if per % v == 0])
        flags = (f"world-size={world} pp={pp} tp={','.join(map(str, tps))} "
                 f"sp={','.join(rng.choice(['none', 'megatron', 'ulysses']) for _ in tps)} "
                 f"sdp={','.join(str(rng.choice([0, 1])) for _ in tps)} "
                 f"checkpoint={','.join(str(rng.choice([0, 1])) for _ in tps)} "
                 f"chunks={chunks} vocab-tp={vtp} dp-type={rng.choice(['ddp', 'zero2'])} "
                 f"pipeline={rng.choice(['gpipe', 'pipedream_flush'])} "
                 f"tp-consec={rng.choice([0, 1])}")
        if vtp > 1 and rng.random() < 0.5:
            flags += " vocab-sp=1"
        if chunks not in references:
            done = shell(f'{BIN}/galvatron-opt m.mlir --galv-apply-strategy="world-size=1 chunks={chunks}" '
                         f'--galv-training-pipeline | {BIN}/galvatron-translate --emit-plan '
                         f'--plan-function=train_step -o ref{chunks}.bin && {BIN}/galvatron-run '
                         f'ref{chunks}.bin --weights m.safetensors --data {TOKENS} --steps 2')
            references[chunks] = losses(done.stdout)
        done = shell(f'{BIN}/galvatron-opt m.mlir --galv-apply-strategy="{flags}" '
                     f'--galv-training-pipeline -o sweep.mlir && {BIN}/galvatron-translate '
                     f'--emit-plan --plan-function=train_step sweep.mlir -o sweep.bin')
        if done.returncode != 0:
            refused += 1
            message = (done.stderr.strip().splitlines() or [""])[0]
            if done.returncode > 1 or "galv-" not in message:
                bad += 1
                print("CRASH or unexplained refusal:", flags, message[:200])
            continue
        run = subprocess.run(MPIRUN + ["-np", str(world), f"{BIN}/galvatron-run", "sweep.bin",
                                       "--weights", "m.safetensors", "--data", TOKENS,
                                       "--steps", "2"], capture_output=True, text=True, cwd=WORK)
        got, want = losses(run.stdout), references[chunks]
        if len(got) == 2 and all(abs(a - b) <= 1e-5 * abs(b) for a, b in zip(got, want)):
            ok += 1
        else:
            bad += 1
            print("MISMATCH", flags, got, want, run.stderr[-300:])
    print(f"seed {seed}: {ok} match one rank, {refused} refused, {bad} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
