#!/usr/bin/env python3
"""Runs hetu-galvatron 2.4.0's own search (GalvatronSearchEngine.
parallelism_optimization, C++ DP core) on shared/galvatron-inputs and stores
its chosen strategy, its predicted throughput and its wall time as JSON.

Settings (shared/galvatron-inputs/README.md): LLaMA-7B, 32 layers, seq 2048,
bf16, 36 GB per GPU, global batch 64 (settle_bsz), full search space with
Megatron-SP (--sequence_parallel, sp_space tp), TP groups consecutive only
(disable_tp_consec), pipeline_type pipedream_flush (1F1B), default_dp_type
zero2, max tp/pp degree 8. The package's __init__ (torch, CUDA kernels) is
bypassed as in bench/galvatron-parity/galvatron_parity.py.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "galvatron-parity"))
import importlib  # noqa: E402

LAYERS, SEQ, HIDDEN, MODEL = 32, 2048, 4096, "llama-7b"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--inputs", required=True)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--bsz", type=int, default=64)
    p.add_argument("--memory", type=int, default=36)
    p.add_argument("--out", required=True)
    opt = p.parse_args()
    # Reuse the parity script's import shim (no torch needed).
    sys.argv = [sys.argv[0]]
    gp = importlib.import_module("galvatron_parity")
    SE = gp.SE

    hw = tempfile.mkdtemp()
    src = os.path.join(opt.inputs, "hardware")
    for f in os.listdir(src):
        shutil.copy(os.path.join(src, f), hw)
    # Galvatron ships no multi-node sp_time file but reads one; the 1x8
    # figures stand in (unused with sp_space tp).
    sp = os.path.join(hw, "sp_time_%dnodes_%dgpus_per_node.json" %
                      (opt.nodes, opt.gpus))
    if not os.path.exists(sp):
        shutil.copy(os.path.join(hw, "sp_time_1nodes_8gpus_per_node.json"), sp)
    outdir = tempfile.mkdtemp()
    a = types.SimpleNamespace(
        num_nodes=opt.nodes, num_gpus_per_node=opt.gpus,
        memory_constraint=opt.memory, min_bsz=8, max_bsz=10240,
        recommend_min_bsz=0, settle_bsz=opt.bsz, settle_chunk=-1, bsz_scale=8,
        search_space="full", sp_space="tp", disable_dp=0, disable_tp=0,
        disable_vtp=0, disable_pp=0, disable_sdp=0, disable_ckpt=0,
        disable_tp_consec=1, max_tp_deg=8, max_pp_deg=8,
        default_dp_type="zero2", mixed_precision="bf16",
        pipeline_type="pipedream_flush", use_pipeline_costmodel=1,
        costmodel_coe=1.0, sequence_parallel=True, global_memory_buffer=True,
        async_grad_reduce=True,
        memory_profiling_path=os.path.join(opt.inputs, MODEL),
        time_profiling_path=os.path.join(opt.inputs, MODEL),
        allreduce_bandwidth_config_path=hw, p2p_bandwidth_config_path=hw,
        overlap_coe_path=hw, sp_time_path=hw, output_config_path=outdir,
        make_vocab_size_divisible_by=128, fine_grained_mode=1,
        time_profile_mode="static", memory_profile_mode="static",
        parallel_search=False, worker=0, log_dir=os.path.join(outdir, "logs"),
        hidden_size=HIDDEN)
    e = SE.GalvatronSearchEngine(a)
    e.set_search_engine_info(
        opt.inputs, [{"hidden_size": HIDDEN, "layer_num": LAYERS,
                      "seq_len": SEQ}], MODEL)
    start = time.time()
    e.generate_strategies()
    e.get_profiled_model_configs()
    e.get_profiled_hardware_configs()
    e.set_cost_models()
    throughput = e.parallelism_optimization()
    wall = time.time() - start
    configs = [f for f in os.listdir(outdir) if f.endswith(".json")]
    config = json.load(open(os.path.join(outdir, configs[0]))) if configs \
        else None
    json.dump({"nodes": opt.nodes, "gpus_per_node": opt.gpus,
               "global_batch": opt.bsz, "memory_gb": opt.memory,
               "throughput": throughput, "search_seconds": wall,
               "config_name": configs[0] if configs else None,
               "config": config}, open(opt.out, "w"), indent=1)
    print("throughput %.6f samples/s, search %.1f s" % (throughput, wall))


if __name__ == "__main__":
    main()
