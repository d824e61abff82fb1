#!/usr/bin/env python3
"""Generates the hardware presets in presets/hardware/*.json.

Plain python3 (no numpy). Every figure used is below with where it comes
from; run `python3 presets/make_presets.py` after changing one and commit the
JSON it writes. Format: docs/COSTMODEL.md, "Hardware spec".

Two kinds of preset:
- a100-1x4, a100-1x8, a100-2x8: the communication profiles hetu-galvatron
  2.4.0 ships (galvatron/profile_hardware/hardware_configs/, measured by its
  authors on an A100 cluster), converted unchanged; device rates from the
  A100 datasheet.
- dgx-a100-*, dgx-h100-*, h200-* for 1, 2, 8, 64 and 128 nodes of 8 GPUs:
  built from published figures with the model in `bus_bandwidth` and
  `collective_ms` below.
"""

import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hardware")
# Galvatron 2.4.0's shipped hardware profiles, kept in the repository.
GALVATRON_DIR = os.path.join(HERE, "..", "test", "CostModel",
                             "galvatron-parity", "inputs", "hardware")

# 1 MB/ms = 2^20 bytes per ms = 1.048576 GB/s (Galvatron's units).
GBS_PER_MBMS = 1.048576

# ---------------------------------------------------------------------------
# Cited figures
# ---------------------------------------------------------------------------

# Sustained fraction of a GEMM's dense peak: the best measured H100 SXM bf16
# GEMM, ~795 of 989 TFLOP/s (docs: /work/shared/REFERENCES.md, "Performance
# anchors"), applied to every GPU and precision.
GEMM_SUSTAINED = 795.0 / 989.0
# Sustained fraction of the HBM peak for a stream-like copy: an assumption
# (no measured anchor at hand), stated as such in each preset's source.
HBM_SUSTAINED = 0.9

GPUS = {
    # NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): FP32 19.5 TFLOPS,
    # BF16 Tensor Core 312 TFLOPS dense, 80 GB HBM2e at 2,039 GB/s.
    "a100": {"fp32": 19.5, "bf16": 312.0, "hbm_gbs": 2039.0, "memory_gb": 80,
             "cite": "NVIDIA A100 datasheet (SXM4 80GB: FP32 19.5 TFLOPS, "
                     "BF16 312 TFLOPS dense, 80 GB HBM2e, 2,039 GB/s)"},
    # NVIDIA H100 Tensor Core GPU datasheet (SXM5): FP32 67 TFLOPS, BF16
    # 1,979 TFLOPS with sparsity = 989 dense, 80 GB HBM3 at 3.35 TB/s.
    "h100": {"fp32": 67.0, "bf16": 989.0, "hbm_gbs": 3350.0, "memory_gb": 80,
             "cite": "NVIDIA H100 datasheet (SXM5: FP32 67 TFLOPS, BF16 989 "
                     "TFLOPS dense, 80 GB HBM3, 3.35 TB/s)"},
    # NVIDIA H200 Tensor Core GPU datasheet (SXM): FP32 67 TFLOPS, BF16 1,979
    # TFLOPS with sparsity = 989 dense, 141 GB HBM3e at 4.8 TB/s.
    "h200": {"fp32": 67.0, "bf16": 989.0, "hbm_gbs": 4800.0, "memory_gb": 141,
             "cite": "NVIDIA H200 datasheet (SXM: FP32 67 TFLOPS, BF16 989 "
                     "TFLOPS dense, 141 GB HBM3e, 4.8 TB/s)"},
}

NETWORKS = {
    # DGX A100: NVLink 3 through NVSwitch, 8 single-port 200 Gb/s HDR
    # ConnectX-6 NICs for compute traffic, one per GPU (NVIDIA DGX A100
    # datasheet). nccl-tests all-reduce bus bandwidth: ~235 GB/s in one node,
    # ~192 GB/s across DGX A100 nodes (8x200G HDR), i.e. ~24 GB/s per NIC
    # (REFERENCES.md, "Performance anchors").
    "a100": {"intra_gbs": 235.0, "intra_full_gbs": 235.0, "nic_gbs": 24.0,
             "cite": "NVIDIA DGX A100 datasheet (NVSwitch, 8x 200 Gb/s HDR "
                     "ConnectX-6, one per GPU); nccl-tests all-reduce bus "
                     "bandwidth ~235 GB/s in a node, ~192 GB/s across nodes "
                     "(24 GB/s per NIC)"},
    # DGX H100 / HGX H200: NVLink 4 (900 GB/s per GPU) through NVSwitch, 8
    # single-port 400 Gb/s NDR ConnectX-7 NICs, one per GPU (NVIDIA DGX H100
    # and DGX H200 datasheets). nccl-tests all-reduce bus bandwidth in one
    # node ~480 GB/s with NVLink SHARP (all 8 GPUs), ~370 GB/s ring; NDR400
    # ~46-49 GB/s per NIC (REFERENCES.md, "Performance anchors").
    "h100": {"intra_gbs": 370.0, "intra_full_gbs": 480.0, "nic_gbs": 47.5,
             "cite": "NVIDIA DGX H100 / DGX H200 datasheets (NVLink 4 "
                     "900 GB/s per GPU, 8x 400 Gb/s NDR ConnectX-7, one per "
                     "GPU); nccl-tests all-reduce bus bandwidth ~480 GB/s "
                     "(NVLS, 8 GPUs) / ~370 GB/s (ring) in a node, ~46-49 "
                     "GB/s per NDR400 NIC across nodes"},
}

# Galvatron's overlap coefficient measured on its authors' A100 cluster
# (hetu-galvatron 2.4.0, hardware_configs/overlap_coefficient.json); the only
# published value, used for every GPU preset.
OVERLAP_COE = 1.125552573612729

# Latency of one collective call: Galvatron's shipped A100 sp_time gives
# 0.0703 ms for a 1 MB all-reduce on 2 GPUs, of which the bandwidth term is
# ~0.005 ms: ~0.065 ms of fixed cost per call (launch and synchronisation).
ALPHA_CALL_MS = 0.065
# Added per inter-node step; a tree across nodes takes 2 log2(nodes) steps.
# An assumption of the order of InfiniBand's few-microsecond message latency
# plus NCCL's proxy, stated as such in each preset's source.
ALPHA_NODE_STEP_MS = 0.01

SP_TIME_MB = [2 ** i for i in range(11)]  # 1 .. 1024 MB, as Galvatron's file.
GPUS_PER_NODE = 8
NODE_COUNTS = [1, 2, 8, 64, 128]


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

def group_layout(world, group, consecutive):
    """(GPUs of the group per node, nodes the group spans), Galvatron's
    layouts: consecutive groups are rank blocks, strided ones take every
    (world / group)-th rank."""
    if consecutive or group == world:
        return min(group, GPUS_PER_NODE), max(1, group // GPUS_PER_NODE)
    stride = world // group
    if stride >= GPUS_PER_NODE:
        return 1, group
    per_node = GPUS_PER_NODE // stride
    return per_node, group // per_node


def bus_bandwidth(net, world, group, consecutive):
    """All-reduce bus bandwidth, GB/s. In one node NVSwitch gives every group
    the measured NVLink rate (the full-node rate for 8 GPUs); across nodes
    every GPU of the group drives its own NIC, so the group moves per_node
    NICs' worth, at most the NVLink ring rate."""
    per_node, span = group_layout(world, group, consecutive)
    if span == 1:
        return net["intra_full_gbs"] if group == GPUS_PER_NODE \
            else net["intra_gbs"]
    return min(net["intra_gbs"], per_node * net["nic_gbs"])


def alpha_ms(span):
    steps = 2 * math.ceil(math.log2(span)) if span > 1 else 0
    return ALPHA_CALL_MS + steps * ALPHA_NODE_STEP_MS


def collective_ms(net, world, op, group, megabytes):
    """Alpha-beta time of one collective on a consecutive group."""
    per_node, span = group_layout(world, group, True)
    share = (group - 1) / group
    if op == "allreduce":
        beta = 2 * share * megabytes / (
            bus_bandwidth(net, world, group, True) / GBS_PER_MBMS)
    elif span == 1:  # all-to-all over NVSwitch
        beta = share * megabytes / (net["intra_gbs"] / GBS_PER_MBMS)
    else:  # all-to-all: the off-node share leaves through each GPU's NIC
        off_node = (group - per_node) / group
        beta = off_node * megabytes / (net["nic_gbs"] / GBS_PER_MBMS)
    return alpha_ms(span) + beta


def p2p_bandwidth(net, nodes):
    """Pipeline stages are rank blocks; across nodes some stage boundary
    crosses a node, limited by one GPU's NIC; in one node NVLink (taken at
    the ring all-reduce bus rate, both bounded by a GPU's NVLink links)."""
    return net["nic_gbs"] if nodes > 1 else net["intra_gbs"]


def powers_of_two(limit):
    n = 2
    while n <= limit:
        yield n
        n *= 2


def rnd(x, digits=6):
    return float(f"{x:.{digits}g}")


def device_rates(gpu):
    return {
        "gemm_tflops_fp32": rnd(gpu["fp32"] * GEMM_SUSTAINED, 4),
        "gemm_tflops_bf16": rnd(gpu["bf16"] * GEMM_SUSTAINED, 4),
        "memory_bandwidth_gbs": rnd(gpu["hbm_gbs"] * HBM_SUSTAINED, 4),
        "memory_gb": gpu["memory_gb"],
    }


def modelled_preset(name, gpu_key, net_key, nodes):
    gpu, net = GPUS[gpu_key], NETWORKS[net_key]
    world = nodes * GPUS_PER_NODE
    allreduce = {}
    for group in sorted(powers_of_two(world), reverse=True):
        for consec in ([1] if group == world else [1, 0]):
            bw = bus_bandwidth(net, world, group, consec == 1)
            allreduce[f"allreduce_size_{group}_consec_{consec}"] = \
                rnd(bw / GBS_PER_MBMS)
    p2p = {f"pp_size_{pp}": rnd(p2p_bandwidth(net, nodes) / GBS_PER_MBMS)
           for pp in powers_of_two(world)}
    sp_time = {}
    for op in ("allreduce", "all2all"):
        for group in sorted(powers_of_two(world), reverse=True):
            for mb in SP_TIME_MB:
                sp_time[f"{op}_size_{group}_{mb}MB_time"] = \
                    rnd(collective_ms(net, world, op, group, mb))
    source = (
        f"Modelled by presets/make_presets.py from published figures. "
        f"Device: {gpu['cite']}, sustained GEMM = peak x 795/989 (best "
        f"measured H100 bf16 GEMM, REFERENCES.md), memory bandwidth = peak x "
        f"{HBM_SUSTAINED} (assumed). Network: {net['cite']}. Overlap "
        f"coefficient {OVERLAP_COE} from hetu-galvatron 2.4.0's shipped A100 "
        f"profile. sp_time: alpha-beta, alpha = {ALPHA_CALL_MS} ms per call "
        f"(Galvatron 2.4.0's A100 sp_time, 1 MB on 2 GPUs) + "
        f"{ALPHA_NODE_STEP_MS} ms per inter-node tree step (assumed).")
    return {
        "format": "galvatron-hardware/1", "name": name, "source": source,
        "backend": "cuda", "nodes": nodes, "devices_per_node": GPUS_PER_NODE,
        "device": device_rates(gpu), "allreduce_bandwidth": allreduce,
        "p2p_bandwidth": p2p, "overlap_coefficient": OVERLAP_COE,
        "sp_time": sp_time,
    }


def galvatron_preset(nodes, per_node):
    """One of Galvatron's shipped cluster shapes, converted unchanged."""
    def load(kind):
        path = os.path.join(
            GALVATRON_DIR, f"{kind}_{nodes}nodes_{per_node}gpus_per_node.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)
    with open(os.path.join(GALVATRON_DIR, "overlap_coefficient.json")) as f:
        overlap = json.load(f)["overlap_coe"]
    preset = {
        "format": "galvatron-hardware/1", "name": f"a100-{nodes}x{per_node}",
        "source": (
            f"Communication: hetu-galvatron 2.4.0's shipped hardware profiles "
            f"(galvatron/profile_hardware/hardware_configs/, "
            f"{nodes}nodes_{per_node}gpus_per_node, measured by its authors "
            f"on an A100 cluster), unchanged. Device: {GPUS['a100']['cite']}, "
            f"sustained GEMM = peak x 795/989 (REFERENCES.md anchor), memory "
            f"bandwidth = peak x {HBM_SUSTAINED} (assumed)."),
        "backend": "cuda", "nodes": nodes, "devices_per_node": per_node,
        "device": device_rates(GPUS["a100"]),
        "allreduce_bandwidth": load("allreduce_bandwidth"),
        "p2p_bandwidth": load("p2p_bandwidth"),
        "overlap_coefficient": overlap,
    }
    sp_time = load("sp_time")
    if sp_time is not None:
        preset["sp_time"] = sp_time
    return preset


def write(preset):
    path = os.path.join(OUT, preset["name"] + ".json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(preset, indent=4) + "\n")
    os.replace(tmp, path)
    return path


def main():
    if not os.path.isdir(GALVATRON_DIR):
        sys.exit(f"{GALVATRON_DIR}: missing (Galvatron's shipped profiles)")
    os.makedirs(OUT, exist_ok=True)
    presets = [galvatron_preset(n, g) for n, g in ((1, 4), (1, 8), (2, 8))]
    for nodes in NODE_COUNTS:
        presets.append(modelled_preset(f"dgx-a100-{nodes}n", "a100", "a100",
                                       nodes))
        presets.append(modelled_preset(f"dgx-h100-{nodes}n", "h100", "h100",
                                       nodes))
        presets.append(modelled_preset(f"h200-{nodes}n", "h200", "h100",
                                       nodes))
    for preset in presets:
        print(write(preset))


if __name__ == "__main__":
    main()
