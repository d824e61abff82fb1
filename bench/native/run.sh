#!/usr/bin/env bash
# Native cost model against the CPU runtime: for each strategy, what
# --galv-estimate predicts (step time from the native model on this
# machine's hw.json, peak memory and bytes sent from the lowered plan) next
# to what galvatron-run measures (median ms per step over the last half of
# the steps; the largest rank's tensor memory: the arena it allocates and
# the tensors bound to it, beside the peak of live arena bytes and the peak
# RSS; the bytes its communicator counted). With ROUNDS=N every case runs
# N times, each round on fresh profiles, and the table compares prediction
# and measurement of the same take, on the quietest machine and by the
# median, beside how far the machine's own speed moved during the take
# (this VM's neighbours slow it by up to 40%, from one second to the next).
#
#   [ROUNDS=3] [TRIES=1] [STABLE=0.05] [CASES=regex] bench/native/run.sh [STEPS]
#   REPORT="RUN1/results RUN2/results" bench/native/run.sh
#   LAYERS=2 HIDDEN=128 HEADS=4 BATCH=8 SEQ=64 PYTHON=python3 \
#     bench/native/run.sh [STEPS]
#
# The model is the bundled tiny GPT-2 fixture at batch 8 x 32 tokens, or,
# with LAYERS set, a GPT-2-shaped model that bench/train/make_model.py
# writes once per batch size into /tmp/galvatron-bench (it needs torch and
# transformers in PYTHON; its dynamo export has a static batch, so a
# pipeline's micro-batch gets an export of its own).
# The hardware of each case is a fresh `mpirun -np R galvatron-profile
# hardware --quick` at the case's rank count R (ranks share the cores, so
# the rates depend on it), taken just before the case runs. Prints a
# Markdown table.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build}
bin=$build/bin
work=$(mktemp -d /tmp/galvatron-native-XXXXXX)
steps=${1:-30}
mpirun=(mpirun --oversubscribe)
[ "$(id -u)" = 0 ] && mpirun+=(--allow-run-as-root)
export OMPI_MCA_orte_tmpdir_base=$work

# The table from a results file (one JSON line per take).
report() {
  python3 - "$1" "${TRIES:-1}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
retaken = int(sys.argv[2]) > 1
cases = []
for r in rows:
    if (r["ranks"], r["strategy"]) not in cases:
        cases.append((r["ranks"], r["strategy"]))
# This VM shares its host: neighbours slow it down, never speed it up, by
# up to 40% at a time. With TRIES above 1 only the takes across which the
# machine held still (`stable`) count, where a case has any; of those, the time
# columns give the take on the quietest machine (the fastest measurement),
# a prediction beside the measurement of the same take, and the median of
# every counted take's error beside it.
print("| ranks | strategy | predicted ms/step | measured ms/step | time error "
      "| median error (each take) | machine speed moved "
      "| predicted peak bytes | held by the runtime | live peak | peak RSS MB "
      "| bytes sent equal |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
within = within_median = 0
for ranks, strategy in cases:
    rs = [r for r in rows if (r["ranks"], r["strategy"]) == (ranks, strategy)]
    stable = [r for r in rs if r.get("stable")]
    counted = (stable or rs) if retaken else rs
    moved = statistics.median(
        max(r["speed_before_ms"], r["speed_mid_ms"], r["speed_after_ms"]) /
        min(r["speed_before_ms"], r["speed_mid_ms"], r["speed_after_ms"]) - 1
        for r in counted)
    errors = [r["predicted_ms"] / r["measured_ms"] - 1 for r in counted]
    best = min(counted, key=lambda r: r["measured_ms"])
    pred, meas = best["predicted_ms"], best["measured_ms"]
    error = pred / meas - 1
    within += abs(error) <= 0.10
    median_error = statistics.median(errors)
    within_median += abs(median_error) <= 0.10
    held = max(r["held_bytes"] for r in rs)
    predicted = max(r["predicted_bytes"] for r in rs)
    spread = "" if len(errors) == 1 else " (%s)" % ", ".join(
        "%+.0f%%" % (e * 100) for e in errors)
    print(f"| {ranks} | {strategy} | {pred:.1f} | {meas:.1f} | {error * 100:+.0f}% "
          f"| {median_error * 100:+.0f}%{spread} | {moved * 100:.0f}%"
          f"{f' ({len(stable)} of {len(rs)} takes stable)' if retaken else ''} "
          f"| {predicted:.0f} | {held} ({(predicted / held - 1) * 100:+.1f}%) "
          f"| {max(r['live_bytes'] for r in rs)} | {max(r['peak_rss_mb'] for r in rs):.0f} "
          f"| {'yes' if all(r['bytes_equal'] for r in rs) else 'NO'} |")
takes = max(sum((r["ranks"], r["strategy"]) == c for r in rows) for c in cases)
print(f"\n{within} of {len(cases)} within 10% (the take on the quietest machine, of "
      f"{takes} take(s)); {within_median} of {len(cases)} by the median take")
PY
}

# REPORT="results ...": the table of earlier runs' takes together (their
# kept results files, KEEP=1), nothing run.
if [ -n "${REPORT:-}" ]; then
  # shellcheck disable=SC2086
  cat $REPORT > "$work/results"
  report "$work/results"
  rm -rf "$work"
  exit 0
fi
# This VM's speed drifts by up to 40% from one minute to the next, so every
# case is profiled just before it runs (KERNEL_MS per timed repetition of
# each kernel class and size, default 10), and a prediction and its
# measurement are half a minute apart, not many.
# One rank runs without mpirun, as its galvatron-run does (mpirun would bind
# it to one core: half the machine).
profile() {
  local launch=("${mpirun[@]}" -np "$1")
  [ "$1" = 1 ] && launch=()
  "${launch[@]}" "$bin/galvatron-profile" hardware --quick \
    --kernel-ms "${KERNEL_MS:-10}" -o "$work/hw$1.json" >/dev/null 2>&1
}
# model_dir B: the directory of the export at batch B (made when missing).
model_dir() {
  local dir=/tmp/galvatron-bench/native-l${LAYERS}h${HIDDEN}h${HEADS}-b$1s$seq
  [ -f "$dir/model.onnx" ] || "${PYTHON:-python3}" \
    "$root/bench/train/make_model.py" "$dir" "$1" "$seq" "$LAYERS" "$HIDDEN" \
    "$HEADS" >&2
  echo "$dir"
}
if [ -n "${LAYERS:-}" ]; then
  batch=${BATCH:-8} seq=${SEQ:-64}
  dir=$(model_dir "$batch")
  onnx=$dir/model.onnx weights=$dir/weights.safetensors data=$dir/tokens.npy
else
  onnx=$root/models/fixtures/gpt2-torchscript/model.onnx
  weights=$root/models/fixtures/gpt2-torchscript/weights.safetensors
  data=$root/models/corpus/tokens.npy batch=8 seq=32
fi
"$bin/galvatron-translate" --import-onnx "$onnx" --batch-size "$batch" \
  --seq-len "$seq" --state-dict "$weights" -o "$work/m.mlir"

strategies=(
  "1|"
  "1|checkpoint=1"
  "2|"
  "2|dp-type=zero2"
  "2|tp=2"
  "2|tp=2 sp=megatron vocab-tp=2"
  "2|pp=2 chunks=2 pipeline=pipedream_flush"
  "2|tp=2 sp=ulysses"
  "4|"
  "4|dp-type=zero3"
  "4|tp=2 sp=megatron"
  "4|tp=4 sp=megatron vocab-tp=4"
  "4|pp=2 tp=2 chunks=2"
  "4|tp=2 tp-consec=0 dp-type=zero2 checkpoint=1"
)
# The machine's speed now: ms per step of the one-rank data-parallel plan
# (the median of steps 4-8). Taken before a case is profiled, between its
# profile and its run, and after it ran: the table shows how far it moved.
# With TRIES=N, a case across which it moved more than STABLE (default
# 0.05) is taken again, up to N times, and only takes across which the
# machine held still are compared. Neither side of a take is adjusted.
"$bin/galvatron-opt" "$work/m.mlir" --galv-apply-strategy="world-size=1" \
  --galv-training-pipeline -o "$work/speed.mlir" >/dev/null
"$bin/galvatron-translate" --emit-plan --plan-function=train_step \
  "$work/speed.mlir" -o "$work/speed.bin"
speed() {
  "$bin/galvatron-run" "$work/speed.bin" --weights "$work/m.safetensors" \
    --data "$data" --steps 8 --lr 1e-3 --log "$work/speed.jsonl" >/dev/null
  python3 -c 'import json, statistics, sys
print(statistics.median(json.loads(l)["ms_per_step"] for l in list(open(sys.argv[1]))[3:]))' \
    "$work/speed.jsonl"
}
# One case until the machine held still across it (or TRIES ran out).
run_stable() {
  local try
  for ((try = 1; try <= ${TRIES:-1}; ++try)); do
    run_case "$@" "$try"
    tail -n 1 "$work/results" | grep -q '"stable": true' && return
  done
  return 0
}

# One case: predict, lower, run; appends a JSON line to $work/results.
run_case() {
  local ranks=$1 flags=$2 round=$3 try=$4 before mid after
  before=$(speed)
  profile "$ranks"
  local tag=$work/s$RANDOM chunks=1 model=$work/m.mlir part
  [[ $flags =~ chunks=([0-9]+) ]] && chunks=${BASH_REMATCH[1]}
  if [ "$chunks" != 1 ]; then
    model=$work/m$chunks.mlir
    part=$onnx
    [ -z "${LAYERS:-}" ] || part=$(model_dir $((batch / chunks)))/model.onnx
    [ -f "$model" ] || "$bin/galvatron-translate" --import-onnx "$part" \
      --batch-size $((batch / chunks)) --seq-len "$seq" \
      --state-dict "$weights" -o "$model"
  fi
  "$bin/galvatron-opt" "$model" --galv-apply-strategy="world-size=$ranks $flags" \
    --galv-annotate-costs="hardware=$work/hw$ranks.json" \
    --galv-estimate="out=$tag.est.json" \
    --galv-training-pipeline -o "$tag.mlir" >/dev/null
  "$bin/galvatron-translate" --emit-plan --plan-function=train_step "$tag.mlir" -o "$tag.bin"
  mid=$(speed)
  local run=("$bin/galvatron-run" "$tag.bin" --weights "${model%.mlir}.safetensors"
             --data "$data" --steps "$steps" --lr 1e-3 --log "$tag.jsonl")
  if [ "$ranks" = 1 ]; then "${run[@]}" >/dev/null; else "${mpirun[@]}" -np "$ranks" "${run[@]}" >/dev/null; fi
  after=$(speed)
  python3 - "$tag" "$ranks" "${flags:-data parallel}" "$round" "$try" "$before" \
    "$mid" "$after" "${STABLE:-0.05}" >>"$work/results" <<'PY'
import json, statistics, sys
tag, ranks, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3]
round_, try_ = int(sys.argv[4]), int(sys.argv[5])
speeds = [float(x) for x in sys.argv[6:9]]
stable = max(speeds) / min(speeds) - 1 <= float(sys.argv[9])
est = json.load(open(tag + ".est.json"))
logs = [[json.loads(l) for l in open(tag + (".jsonl" if r == 0 else f".rank{r}.jsonl"))]
        for r in range(ranks)]
half = len(logs[0]) // 2
print(json.dumps({
    "ranks": ranks, "strategy": flags, "round": round_, "try": try_,
    "speed_before_ms": speeds[0], "speed_mid_ms": speeds[1],
    "speed_after_ms": speeds[2], "stable": stable,
    "predicted_ms": est["step_time_s"] * 1000,
    "measured_ms": statistics.median(x["ms_per_step"] for x in logs[0][half:]),
    "predicted_bytes": max(s["peak_memory_bytes"] for s in est["stages"]),
    # What the runtime holds for tensors: its arena (allocated and zeroed
    # whole before the first step) and the tensors bound to it.
    "held_bytes": max(x["arena_bytes"] + x["bound_bytes"] for l in logs for x in l),
    "live_bytes": max(x["tensor_bytes"] for l in logs for x in l),
    "peak_rss_mb": max(x["peak_rss_mb"] for l in logs for x in l),
    "bytes_equal": all(est["ranks"][r]["bytes_sent"] == logs[r][-1]["comm_bytes"]
                       for r in range(ranks))}))
PY
}

# Rounds: every case (those whose "ranks|flags" matches the regular
# expression CASES, when given) once per round, each with fresh profiles.
for ((round = 1; round <= ${ROUNDS:-1}; ++round)); do
  for entry in "${strategies[@]}"; do
    [[ -z ${CASES:-} || $entry =~ $CASES ]] || continue
    run_stable "${entry%%|*}" "${entry#*|}" "$round"
  done
done
report "$work/results"
[ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
