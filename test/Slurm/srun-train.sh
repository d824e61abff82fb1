#!/usr/bin/env bash
# srun launches galvatron-run as MPI ranks, proven on a real Slurm.
#
#   test/Slurm/srun-train.sh BUILD_DIR "MPIRUN COMMAND"
#
# Starts a one-node Slurm cluster of its own on the loopback interface, in a
# temporary directory (munged with a fresh key, slurmctld, slurmd, all in the
# foreground of this script, on free ports, with every state, spool, log and
# pid file inside that directory), waits for the node to be idle, then trains
# the bundled tiny GPT-2 for a few steps on a 4-rank plan (2 pipeline stages
# x 2-way ZeRO-2 data parallelism, 1F1B over 2 micro-batches) twice: under
# `srun -n 4 --mpi=pmix` and under `mpirun -np 4`. Every rank's log must show
# a 4-rank job, and each rank's losses and bytes per collective must be equal
# in both runs. The daemons are always stopped (trap) and the directory
# removed (KEEP=1 keeps it); every wait is bounded.
#
# Debian 12's Slurm is 22.05 and its Open MPI 4.1 talks to srun only through
# PMIx (`--mpi=pmix`); `--mpi=pmi2` fails in MPI_Init, since Open MPI was
# built without Slurm's PMI-2 library. Runs as root (slurmd as root, as on a
# real cluster) or as any user (every daemon as that user, which Slurm
# allows for a cluster that runs only its own user's jobs).
#
# Exit status: 0 equal, 1 anything failed (with the daemons' logs), 77 (ctest
# SKIP_RETURN_CODE) when Slurm or munge is not installed.
set -euo pipefail

build=$(cd "${1:?usage: srun-train.sh BUILD_DIR \"MPIRUN COMMAND\"}" && pwd)
read -r -a mpirun <<<"${2:?usage: srun-train.sh BUILD_DIR \"MPIRUN COMMAND\"}"
root=$(cd "$(dirname "$0")/../.." && pwd)
steps=${STEPS:-4}
# SRUN_MPI=pmi2 or none shows that the test fails when srun does not start
# one 4-rank MPI job.
srun_mpi=${SRUN_MPI:-pmix}

# The daemons live in /usr/sbin, which a user's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin
missing=()
for tool in slurmctld slurmd srun sinfo scancel munged munge unmunge python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "SKIP: not installed: ${missing[*]} (scripts/install-deps.sh installs" \
    "Debian's slurmctld, slurmd, slurm-client and munge)"
  exit 77
fi

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/galvatron-slurm-XXXXXX")
# munged insists that everyone may reach its socket's directory, and that no
# one else may write to it.
chmod 755 "$tmp"
conf=$tmp/slurm.conf
pids=()
child=

show_logs() {
  for log in "$tmp"/log/*; do
    [[ -f $log ]] || continue
    echo "---- last lines of $log" >&2
    tail -n 25 "$log" >&2
  done
}

# This cluster's processes: the daemons, and whatever they or srun started
# (srun's helpers, slurmstepd, the tasks), which all carry SLURM_CONF=$conf
# in their environment; nothing else does.
cluster_pids() {
  {
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && echo "$pid"; done
    grep -lsaF "SLURM_CONF=$conf" /proc/[0-9]*/environ 2>/dev/null |
      cut -d/ -f3
  } | sort -u
}

# Waits up to $1 seconds for `cluster_pids` (or, with $2, that one pid) to
# be gone.
wait_gone() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    if [[ -n ${2:-} ]]; then
      kill -0 "$2" 2>/dev/null || return 0
    else
      [[ -z $(cluster_pids) ]] && return 0
    fi
    sleep 0.2
  done
  return 1
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  ((status == 0)) || show_logs
  # The command running now first (srun cancels its step on TERM), then
  # what is left of the job, then the daemons; what has not gone after
  # that is killed.
  if [[ -n $child ]]; then
    kill -TERM "$child" 2>/dev/null
    wait_gone 10 "$child"
  fi
  if [[ -f $conf ]]; then
    SLURM_CONF=$conf timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  if ! wait_gone 15; then
    local left
    left=$(cluster_pids | tr '\n' ' ')
    if [[ -n $left ]]; then
      echo "killing what is left after 15 s: $left" >&2
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null
    fi
  fi
  wait 2>/dev/null
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Runs a command in the background and waits for it: a signal to this script
# then ends the wait at once and the trap cleans up (a foreground command
# would hold the trap back until it finished).
run() {
  "$@" &
  child=$!
  local status=0
  wait "$child" || status=$?
  child=
  return "$status"
}

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# ---- munge: a key of our own, a socket in $tmp.
mkdir -m 700 "$tmp/munge"
head -c 1024 /dev/urandom >"$tmp/munge/munge.key"
chmod 400 "$tmp/munge/munge.key"
socket=$tmp/munge.socket
mkdir -p "$tmp/log"
munged --foreground --key-file="$tmp/munge/munge.key" --socket="$socket" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/log/munged.log" \
  --seed-file="$tmp/munge/munged.seed" >"$tmp/log/munged.out" 2>&1 &
pids+=($!)
munge_ok() { munge -S "$socket" -n | unmunge -S "$socket"; }
wait_for 15 munge_ok || fail "munged did not answer within 15 s"

# ---- slurm.conf: this machine's CPUs as slurmd sees them, free ports.
read -r port_ctld port_d < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
hardware=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]*//' -e 's/RealMemory=[0-9]*//')
user=$(id -un)
mkdir -p "$tmp/state" "$tmp/spool" "$tmp/tmpfs" "$tmp/ompi"
cat >"$conf" <<EOF
ClusterName=galvatron
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port_ctld
SlurmdPort=$port_d
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
TmpFS=$tmp/tmpfs
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=10 State=UP
EOF
slurm=(env SLURM_CONF="$conf")
"${slurm[@]}" slurmctld -D -i >"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
"${slurm[@]}" slurmd -D -N localhost >"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { [[ $("${slurm[@]}" sinfo -h -n localhost -o %t) == idle ]]; }
wait_for 60 node_idle ||
  fail "the node is not idle after 60 s: $("${slurm[@]}" sinfo -h -N -o '%N %t %E' 2>&1)"
echo "slurm: node localhost idle ($hardware)"

# ---- a 4-rank training plan: 2 stages x 2-way ZeRO-2, 1F1B, 2 micro-batches
# of 4 sequences.
fixture=$root/models/fixtures/gpt2-torchscript
bin=$build/bin
run timeout 120 "$bin/galvatron-translate" --import-onnx "$fixture/model.onnx" \
  --batch-size 4 --seq-len 8 --state-dict "$fixture/weights.safetensors" \
  -o "$tmp/model.mlir"
run timeout 120 "$bin/galvatron-opt" "$tmp/model.mlir" \
  "--galv-apply-strategy=world-size=4 pp=2 chunks=2 pipeline=pipedream_flush dp-type=zero2" \
  --galv-training-pipeline -o "$tmp/train.mlir"
run timeout 120 "$bin/galvatron-translate" --emit-plan --plan-function=train_step \
  "$tmp/train.mlir" -o "$tmp/train.bin"
train=("$bin/galvatron-run" "$tmp/train.bin" --weights "$tmp/model.safetensors"
  --data "$root/models/corpus/tokens.npy" --steps "$steps" --lr 1e-3
  --comm-timeout 60)

# Open MPI's session directories stay in $tmp (and apart from other suites').
export OMPI_MCA_orte_tmpdir_base=$tmp/ompi
echo "== srun -n 4 --mpi=$srun_mpi"
run "${slurm[@]}" timeout 180 srun --ntasks=4 --overcommit --mpi="$srun_mpi" --time=4 \
  --kill-on-bad-exit=1 --chdir="$tmp" "${train[@]}" --log "$tmp/srun.jsonl" ||
  fail "srun exited with $?"
echo "== ${mpirun[*]} -np 4"
run timeout 180 "${mpirun[@]}" -np 4 "${train[@]}" --log "$tmp/mpirun.jsonl" ||
  fail "mpirun exited with $?"

# ---- every rank of both runs: the same losses and bytes per collective, and
# a world of 4 (four singletons would each write a rank-0 log).
python3 - "$tmp" "$steps" "$srun_mpi" <<'EOF'
import json, os, sys
tmp, steps, plugin = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def records(run, rank):
    path = os.path.join(tmp, run + (".jsonl" if rank == 0 else f".rank{rank}.jsonl"))
    if not os.path.exists(path):
        sys.exit(f"FAIL: {run}: rank {rank} wrote no log ({path}): not a 4-rank job")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
keys = ("step", "loss", "comm_bytes")
for rank in range(4):
    a, b = records("srun", rank), records("mpirun", rank)
    if len(a) != steps or len(b) != steps:
        sys.exit(f"FAIL: rank {rank}: {len(a)} steps under srun, {len(b)} under "
                 f"mpirun, not {steps}")
    for x, y in zip(a, b):
        if any(x.get(k) != y.get(k) for k in keys):
            sys.exit(f"FAIL: rank {rank} differs: srun {x} mpirun {y}")
        if not x.get("comm_bytes"):
            sys.exit(f"FAIL: rank {rank} step {x.get('step')}: no collective counted")
    if rank == 0:
        print("losses (srun = mpirun):", " ".join(f"{r['loss']:.6f}" for r in a))
print(f"PASS: {steps} steps on 4 ranks under srun --mpi={plugin} equal mpirun's "
      "on every rank")
EOF
