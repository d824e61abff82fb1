"""Checkpoints are atomic as a set: galvatron-run's save, stopped at every
point of its protocol, leaves the previous checkpoint whole and named by
`latest`, and --resume from it continues bit for bit; torn checkpoints are
refused naming the file.

    checkpoint_faults.py WORK_DIR

Runs galvatron-run and galvatron-make-test-plans from PATH on the toy
training plan (6 steps, a checkpoint every 2, --keep 2), breaking the save
of step 4 with GALVATRON_TEST_CHECKPOINT=ACTION:4:POINT for every POINT the
save passes (listed by GALVATRON_TEST_CHECKPOINT=trace) and every ACTION:
kill (SIGKILL there), enospc and eio (that step fails with the error).
Prints one line per case and "checkpoint faults: PASS" at the end.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zlib

WORK = sys.argv[1]
STEPS = ["--steps", "6", "--lr", "0.25", "--save-every", "2", "--keep", "2"]
# The points the protocol must have, in this order (the trace may hold more).
CORE = ["mkdir", "write:model.safetensors", "fsync:model.safetensors",
        "write:optimizer.safetensors", "fsync:optimizer.safetensors",
        "write:trainer.json", "fsync:trainer.json", "write:manifest.json",
        "fsync:manifest.json", "fsync:step-dir", "rename:step-dir",
        "fsync:root", "symlink:latest", "rename:latest", "fsync:root-latest",
        "prune", "done"]
# From here on, `latest` names the new checkpoint.
SWITCHED = CORE.index("fsync:root-latest")
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message)
    return condition


def run(args, env_value=None):
    env = dict(os.environ)
    env.pop("GALVATRON_TEST_CHECKPOINT", None)
    if env_value:
        env["GALVATRON_TEST_CHECKPOINT"] = env_value
    return subprocess.run(["galvatron-run", os.path.join(WORK, "toy-train-1.bin"),
                           "--data", os.path.join(WORK, "tokens.npy")] + args,
                          env=env, capture_output=True, text=True)


def losses(path):
    with open(path) as f:
        return [re.search(r'"step": \d+, "loss": [-0-9.e]+', line).group(0)
                for line in f if line.strip()]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def leftovers(root):
    return sorted(n for n in os.listdir(root) if n.startswith("."))


def train(root, log, env_value=None, resume=False):
    args = STEPS + ["--checkpoint-dir", root, "--log", log]
    return run(args + (["--resume", root] if resume else []), env_value)


def fault_case(action, point, full):
    """Step 4's save broken at `point`; then a resumed run finishes."""
    tag = f"{action}-{point.replace(':', '-')}"
    root, log = os.path.join(WORK, tag), os.path.join(WORK, tag + ".jsonl")
    broken = train(root, log, f"{action}:4:{point}")
    switched = CORE.index(point) >= SWITCHED if point in CORE else False
    if action == "kill":
        check(broken.returncode == -9, f"{tag}: exit {broken.returncode}, not SIGKILL")
    elif point == "prune":
        # Old checkpoints that cannot be removed do not stop the run.
        check(broken.returncode == 0 and "warning: cannot remove old" in broken.stderr
              and losses(log) == losses(os.path.join(WORK, "full.jsonl")),
              f"{tag}: a failed prune is a warning: {broken.stderr}")
        print(f"{tag}: a warning; the run went on")
        return
    elif point != "done":
        said = (f"checkpoint of step 4 not saved: " if not switched else
                "after '" + root + "/latest' named the new checkpoint")
        check(broken.returncode == 1 and said in broken.stderr,
              f"{tag}: exit {broken.returncode}: {broken.stderr}")
        if not switched:
            check(f"the previous checkpoint '{root}/step-000002' is untouched"
                  in broken.stderr, f"{tag}: {broken.stderr}")
            check(not os.path.exists(os.path.join(root, "step-000004")) and
                  not leftovers(root), f"{tag}: left {os.listdir(root)}")
    # Step 2's checkpoint is whole whatever happened to step 4's.
    for f in ("model.safetensors", "optimizer.safetensors", "trainer.json"):
        check(read(os.path.join(root, "step-000002", f)) ==
              read(os.path.join(full, "step-000002", f)), f"{tag}: step 2's {f} changed")
    resumed = train(root, os.path.join(WORK, tag + ".resumed.jsonl"), resume=True)
    found = re.search(r"resuming from \S+ \(step (\d+), manifest verified\)", resumed.stdout)
    if not check(resumed.returncode == 0 and found,
                 f"{tag}: resume exit {resumed.returncode}: {resumed.stderr}"):
        return
    step = int(found.group(1))
    expected = 4 if switched else 2
    check(step == expected, f"{tag}: resumed from step {step}, not {expected}")
    got = losses(log)[:step] + losses(os.path.join(WORK, tag + ".resumed.jsonl"))
    check(got == losses(os.path.join(WORK, "full.jsonl")),
          f"{tag}: resumed losses differ: {got}")
    for f in ("model.safetensors", "optimizer.safetensors"):
        check(read(os.path.join(root, "latest", f)) ==
              read(os.path.join(full, "step-000006", f)), f"{tag}: step 6's {f} differs")
    check(sorted(os.listdir(root)) == ["latest", "step-000004", "step-000006"],
          f"{tag}: the directory holds {sorted(os.listdir(root))}")
    print(f"{tag}: resumed from step {step}, losses and checkpoint bit-exact")


def replace_latest(full):
    """Resuming from step 4 into the directory whose `latest` is step 6:
    the new step 6 takes the old one's place in one rename (exchange)."""
    root = os.path.join(WORK, "exchange")
    shutil.copytree(full, root, symlinks=True)
    log = os.path.join(WORK, "exchange.jsonl")
    result = run(STEPS + ["--checkpoint-dir", root, "--log", log, "--resume",
                          os.path.join(root, "step-000004")], "trace")
    check(result.returncode == 0 and "step 6: exchange:step-dir" in result.stderr,
          f"exchange: {result.stderr}")
    check(losses(log) == losses(os.path.join(WORK, "full.jsonl"))[4:],
          f"exchange: losses {losses(log)}")
    for f in ("model.safetensors", "optimizer.safetensors", "manifest.json"):
        check(read(os.path.join(root, "latest", f)) ==
              read(os.path.join(full, "step-000006", f)), f"exchange: {f} differs")
    check(sorted(os.listdir(root)) == ["latest", "step-000004", "step-000006"],
          f"exchange: the directory holds {sorted(os.listdir(root))}")
    print("exchange: step 6 saved again over the one latest named: bit-exact")


def reseal(step_dir, **changes):
    """Rewrites the manifest to match the files (after a deliberate edit)."""
    path = os.path.join(step_dir, "manifest.json")
    manifest = json.load(open(path))
    for name in manifest["files"]:
        data = read(os.path.join(step_dir, name))
        manifest["files"][name] = {"size": len(data),
                                   "crc32": format(zlib.crc32(data), "08x")}
    manifest.update(changes)
    with open(path, "w") as f:
        json.dump(manifest, f)


def torn_case(tag, full, edit, expected, resume_at=None):
    """A copy of step 6's checkpoint, edited, must be refused with `expected`."""
    step_dir = os.path.join(WORK, "torn", tag)
    shutil.copytree(os.path.join(full, "step-000006"), step_dir)
    edit(step_dir)
    result = run(["--steps", "6", "--resume", resume_at or step_dir])
    ok = check(result.returncode == 1 and expected in result.stderr and
               "step 1/6" not in result.stdout,
               f"torn {tag}: exit {result.returncode}, wanted '{expected}': {result.stderr}")
    if ok:
        print(f"torn {tag}: refused: {result.stderr.strip()}")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def torn_cases(full):
    os.makedirs(os.path.join(WORK, "torn"))

    def truncate(d):
        data = read(os.path.join(d, "model.safetensors"))
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(data[:-8])

    def flip(d):
        data = bytearray(read(os.path.join(d, "optimizer.safetensors")))
        data[-3] ^= 0x40
        with open(os.path.join(d, "optimizer.safetensors"), "wb") as f:
            f.write(data)

    def trainer(text, **changes):
        def edit(d):
            write(os.path.join(d, "trainer.json"), text)
            reseal(d, **changes)
        return edit

    def unlisted(d):
        manifest = json.load(open(os.path.join(d, "manifest.json")))
        del manifest["files"]["model.safetensors"]
        write(os.path.join(d, "manifest.json"), json.dumps(manifest))

    def dangling(d):
        os.makedirs(os.path.join(d, "root"))
        os.symlink("step-000008", os.path.join(d, "root", "latest"))

    size = len(read(os.path.join(full, "step-000006", "model.safetensors")))
    torn_case("truncated", full, truncate,
              f"model.safetensors is {size - 8} bytes; manifest.json says {size} "
              "(truncated or rewritten)")
    torn_case("flipped", full, flip,
              "optimizer.safetensors has CRC-32 ")
    torn_case("missing", full, lambda d: os.remove(os.path.join(d, "trainer.json")),
              "trainer.json is missing (manifest.json names it")
    torn_case("unlisted", full, unlisted, "manifest.json does not name model.safetensors")
    torn_case("not-json", full, lambda d: write(os.path.join(d, "manifest.json"), "{\"step\": 6,"),
              "manifest.json is not a JSON object")
    torn_case("no-manifest", full, lambda d: os.remove(os.path.join(d, "manifest.json")),
              "has no manifest.json (a checkpoint from before manifests, or torn)")
    torn_case("dangling-latest", full, dangling,
              "root/latest names step-000008, which does not exist",
              resume_at=os.path.join(WORK, "torn", "dangling-latest", "root"))
    torn_case("negative-step", full, trainer('{"step": -5}\n'),
              "trainer.json: step -5 is negative")
    torn_case("int-max-step", full, trainer('{"step": 2147483648}\n'),
              "trainer.json: step 2147483648 is past the largest step, 2147483647")
    torn_case("float-step", full, trainer('{"step": 1e3}\n'),
              "trainer.json: step 1000.0 is not written as an integer")
    torn_case("string-step", full, trainer('{"step": "5"}\n'),
              "trainer.json: step \"5\" is not a number")
    torn_case("zero-step", full, trainer('{"step": 0}\n'),
              "trainer.json: step 0 is not a step")
    torn_case("disagreeing-step", full, trainer('{"step": 5}\n'),
              "trainer.json says step 5; manifest.json says 6")
    torn_case("future-step", full, trainer('{"step": 99999}\n', step=99999),
              "is at step 99999, past --steps 6")
    renamed = os.path.join(WORK, "torn", "step-000004")
    shutil.copytree(os.path.join(full, "step-000006"), renamed)
    result = run(["--steps", "6", "--resume", renamed])
    check(result.returncode == 1 and "step-000004 holds step 6, not the one its "
          "name says" in result.stderr, f"torn renamed: {result.stderr}")


def main():
    subprocess.run(["galvatron-make-test-plans", WORK], check=True)
    full = os.path.join(WORK, "full")
    result = train(full, os.path.join(WORK, "full.jsonl"))
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(full)) == ["latest", "step-000004", "step-000006"], \
        os.listdir(full)
    # --keep 2 removed step 2's checkpoint after step 6's: make it again.
    again = os.path.join(WORK, "again")
    run(["--steps", "2", "--lr", "0.25", "--checkpoint-dir", again])
    shutil.copytree(os.path.join(again, "step-000002"), os.path.join(full, "step-000002"))

    traced = train(os.path.join(WORK, "traced"), os.path.join(WORK, "traced.jsonl"),
                   "trace")
    points = [line.split(": ", 2)[2] for line in traced.stderr.splitlines()
              if line.startswith("galvatron-run: checkpoint step 4: ")]
    check([p for p in points if p in CORE] == CORE,
          f"the save passes {points}, not the protocol {CORE}")
    print(f"step 4's save passes {len(points)} points: {' '.join(points)}")
    for point in points:
        for action in ("kill", "enospc", "eio"):
            if action != "kill" and point == "done":
                continue
            fault_case(action, point, full)
    replace_latest(full)
    torn_cases(full)
    if failures:
        print(f"checkpoint faults: FAIL ({len(failures)} failures)")
        return 1
    print("checkpoint faults: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
