#!/usr/bin/env python3
"""Reference numbers from hetu-galvatron 2.4.0's own cost functions.

For random hybrid-parallel strategies of LLaMA-7B on Galvatron's shipped
1x8 and 2x8 hardware profiles, this calls Galvatron's cost functions (not its
search) and writes strategy + outputs to one JSON file that the C++ parity
test (test/Unit/CostModel/ParityTest.cpp) reads; CI needs neither Galvatron
nor its dependencies.

Galvatron functions called (package galvatron, hetu-galvatron==2.4.0):
  core/search_engine/search_engine.py
    GalvatronSearchEngine(args).set_search_engine_info(path, layer_configs, name)
    .get_profiled_model_configs()      profiles -> per-layer-type inputs
                                       (time_profile_mode static | batch,
                                        memory_profile_mode static, with
                                        sequence_parallel=True: *_sp sections)
    .get_profiled_hardware_configs()   allreduce/p2p/overlap/sp_time files
    .set_cost_models()                 ModelArgs/TrainArgs/ParallelArgs/
                                       ProfileModelArgs/ProfileHardwareArgs
    .optimal_chunk_func                (optimal_chunk_func_default)
  core/search_engine/cost_model.py
    OtherTimeCostModel(mbsz, pp, world, vsp, embed_sdp, min_tp, max_tp,
                       [seq], <arg lists [0]>).gen_result()
    pipeline_costmodel(TimeCostModel, layernum_list, <arg lists>, strategies,
                       pp_division, chunks, global_bsz, min_tp,
                       other_time_cost_no_comm[vtp], return_stage_cost=True)
                       -> seconds per iteration (we store ms)
    MemoryCostModel(strategy, global_bsz, mbsz=mbsz, min_tp, max_tp,
                    stage_idx, vsp, embed_sdp, <arg lists>).get_memory_cost()
                       -> 'enc_total' per layer, 'other'[vtp] per stage
  core/search_engine/dynamic_programming.py
    DpOnModel(...).mem_cache           allocator reserve
  The per-stage memory total is assembled as DpOnModel.
  _build_dp_and_run_multi_layer_type + galvatron_dp_core do for a fixed
  strategy: sum of ceil(layer enc_total) + ceil(other) + int(global buffer)
  + mem_cache; the chunk count passed to pipeline_costmodel and mbsz follow
  search_for_chunk / _build_dp_and_run_multi_layer_type.

Galvatron ships no sp_time file for 2 nodes; the 1x8 sp_time figures stand
in for it (they only matter with sp_space tp+sp).
"""
import argparse
import copy
import importlib
import importlib.util
import json
import math
import os
import random
import shutil
import sys
import tempfile
import types


def import_galvatron_cost_model():
    """Import the search engine without galvatron/__init__ (which needs torch,
    transformers and CUDA kernels the cost functions never use)."""
    spec = importlib.util.find_spec("galvatron")
    root = os.path.dirname(spec.origin)
    for name, sub in [("galvatron", ""), ("galvatron.core", "core"),
                      ("galvatron.core.search_engine", "core/search_engine")]:
        mod = types.ModuleType(name)
        mod.__path__ = [os.path.join(root, sub)]
        sys.modules[name] = mod
    # galvatron.utils re-exports config_utils + strategy_utils (numpy/scipy).
    utils = types.ModuleType("galvatron.utils")
    utils.__path__ = [os.path.join(root, "utils")]
    sys.modules["galvatron.utils"] = utils
    for sub in ["strategy_utils", "config_utils"]:
        m = importlib.import_module("galvatron.utils." + sub)
        for k, v in vars(m).items():
            if not k.startswith("_"):
                setattr(utils, k, v)
    se = importlib.import_module("galvatron.core.search_engine.search_engine")
    cm = importlib.import_module("galvatron.core.search_engine.cost_model")
    dp = importlib.import_module(
        "galvatron.core.search_engine.dynamic_programming")
    return se, cm, dp


SE, CM, DP = import_galvatron_cost_model()

LAYERS, SEQ, HIDDEN, MODEL = 32, 2048, 4096, "llama-7b"


def make_engine(inputs, hw_dir, nodes, gpus, time_mode):
    a = types.SimpleNamespace(
        num_nodes=nodes, num_gpus_per_node=gpus, use_pipeline_costmodel=1,
        memory_constraint=36, mixed_precision="bf16",
        memory_profiling_path=os.path.join(inputs, MODEL),
        time_profiling_path=os.path.join(inputs, MODEL),
        allreduce_bandwidth_config_path=hw_dir, p2p_bandwidth_config_path=hw_dir,
        overlap_coe_path=hw_dir, sp_time_path=hw_dir,
        time_profile_mode=time_mode, memory_profile_mode="static",
        sequence_parallel=True, global_memory_buffer=True,
        async_grad_reduce=True, default_dp_type="ddp", disable_vtp=0,
        sp_space="tp+sp", pipeline_type="gpipe", costmodel_coe=1.0,
        fine_grained_mode=1, hidden_size=HIDDEN)
    e = SE.GalvatronSearchEngine(a)
    e.set_search_engine_info(
        inputs, [{"hidden_size": HIDDEN, "layer_num": LAYERS, "seq_len": SEQ}],
        MODEL)
    e.get_profiled_model_configs()
    e.get_profiled_hardware_configs()
    return e


def layer_strategy(pp, tp, world, consec, fsdp, cpt, sp, sp_space):
    """A Galvatron strategy list as generate_dp_tp_pp_sdp spells it."""
    dp = world // pp // tp
    info = {}
    if tp > 1 and dp > 1:
        info["tp"] = consec
    if dp > 1:
        info["fsdp"] = fsdp
    if tp > 1:
        info["sp"] = sp if sp_space == "tp+sp" else 0
    if cpt:
        info["cpt"] = 1
    return [pp, tp, dp, info]


def chunk_count(size, chunks):
    return len(CM.chunk_like_torch(size, chunks))


def random_case(rng, world, hw_name):
    """One random strategy that Galvatron's search could have produced."""
    while True:
        pp = rng.choices([1, 2, 4, 8], weights=[3, 3, 3, 1])[0]
        per_stage = world // pp
        tps = [t for t in [1, 2, 4, 8] if t <= per_stage]
        sp_space = rng.choice(["tp", "tp+sp"])
        style = rng.random()
        if style < 0.35:  # one strategy for all layers
            t0 = rng.choice(tps)
            tp = [t0] * LAYERS
        elif style < 0.7:  # a few blocks
            tp, cur = [], rng.choice(tps)
            for _ in range(LAYERS):
                if rng.random() < 0.15:
                    cur = rng.choice(tps)
                tp.append(cur)
        else:
            tp = [rng.choice(tps) for _ in range(LAYERS)]
        consec = [rng.choice([0, 1]) if rng.random() < 0.5 else 1
                  for _ in range(LAYERS)]
        fsdp = [1 if rng.random() < 0.3 else 0 for _ in range(LAYERS)]
        cpt_p = rng.choice([0.0, 0.3, 1.0])
        cpt = [1 if rng.random() < cpt_p else 0 for _ in range(LAYERS)]
        sp_p = rng.choice([0.0, 0.5, 1.0]) if sp_space == "tp+sp" else 0.0
        sp = [1 if (t > 1 and rng.random() < sp_p) else 0 for t in tp]
        vsp = rng.choice([0, 1]) if sp_space == "tp+sp" else 0
        vtp = rng.choice([t for t in tps if t * pp <= world])
        lo, hi = min(tp + [vtp]), max(tp + [vtp])
        if rng.random() < 0.2:  # a wider search window than needed
            lo = rng.choice([t for t in tps if t <= lo])
            hi = rng.choice([t for t in tps if t >= hi])
        unit = world // pp // lo
        bsz = unit * rng.choice([1, 2, 4, 8, 16])
        if bsz < 8:
            bsz *= 8 // bsz if 8 % bsz == 0 else 1
        local = bsz // unit
        chunk = rng.choice([c for c in range(1, local + 1)
                            if bsz % c == 0 and chunk_count(local, c) == c])
        if pp > 1 and rng.random() < 0.3:  # uneven pipeline division
            cuts = sorted(rng.sample(range(1, LAYERS), pp - 1))
            div = [b - a for a, b in zip([0] + cuts, cuts + [LAYERS])]
        else:
            div = [LAYERS // pp] * pp
        cfg = {
            "pp_deg": pp,
            "tp_sizes_enc": ",".join(map(str, tp)),
            "tp_consecutive_flags": ",".join(map(str, consec)),
            "dp_types_enc": ",".join(map(str, fsdp)),
            "use_sp": ",".join(map(str, sp)),
            "checkpoint": ",".join(map(str, cpt)),
            "global_bsz": bsz, "chunks": chunk,
            "pp_division": ",".join(map(str, div)),
            "pipeline_type": rng.choice(["gpipe", "pipedream_flush"]),
            "default_dp_type": rng.choice(["ddp", "zero2"]),
            "vtp": vtp, "vsp": vsp, "embed_sdp": rng.choice([0, 1]),
        }
        search = {
            "mixed_precision": "bf16" if rng.random() < 0.8 else "fp32",
            "sp_space": sp_space,
            "time_profile_mode": rng.choice(["static", "batch"]),
            "async_grad_reduce": rng.random() < 0.8,
            "memory_constraint_gb": rng.choice([16, 24, 36, 80]),
            "min_tp": lo, "max_tp": hi,
            "sequence_parallel": True, "global_memory_buffer": True,
        }
        return {"hardware": hw_name, "config": cfg, "search": search}


def evaluate(engine, case, world):
    cfg, srch = case["config"], case["search"]
    a = engine.args
    a.mixed_precision = srch["mixed_precision"]
    a.sp_space = srch["sp_space"]
    a.async_grad_reduce = srch["async_grad_reduce"]
    a.default_dp_type = cfg["default_dp_type"]
    a.pipeline_type = cfg["pipeline_type"]
    a.memory_constraint = srch["memory_constraint_gb"]
    engine.memory_constraint = a.memory_constraint * 1024
    engine.set_cost_models()
    arg_lists = dict(model_args_list=engine.model_args_list,
                     train_args_list=engine.train_args_list,
                     parallel_args_list=engine.parallel_args_list,
                     profile_model_args_list=engine.profile_model_args_list)
    hw_list = engine.profile_hardware_args_list
    first = {k[:-5]: v[0] for k, v in arg_lists.items()}

    pp, bsz, chunk = cfg["pp_deg"], cfg["global_bsz"], cfg["chunks"]
    lo, hi = srch["min_tp"], srch["max_tp"]
    vtp, vsp, esdp = cfg["vtp"], cfg["vsp"], cfg["embed_sdp"]
    ints = lambda key: [int(x) for x in cfg[key].split(",")]
    tp, consec, fsdp = ints("tp_sizes_enc"), ints("tp_consecutive_flags"), \
        ints("dp_types_enc")
    cpt, sp, div = ints("checkpoint"), ints("use_sp"), ints("pp_division")
    strategies = [layer_strategy(pp, tp[i], world, consec[i], fsdp[i], cpt[i],
                                 sp[i], a.sp_space) for i in range(LAYERS)]

    # search_for_chunk: mbsz of the min_tp strategy; DpOnModel: chunks.
    unit = world // pp // lo
    assert bsz % unit == 0
    mbsz = (bsz // unit + chunk - 1) // chunk
    dp_size = world // pp
    chunks = [p.optimal_chunk_func(bsz * lo // dp_size, [pp, lo, dp_size],
                                   mbsz, lo) for p in engine.parallel_args_list]
    other_time = CM.OtherTimeCostModel(
        mbsz, pp, world, vsp, esdp, lo, hi, engine.seqlen_list,
        model_args=first["model_args"], train_args=first["train_args"],
        parallel_args=first["parallel_args"],
        profile_model_args=first["profile_model_args"],
        profile_hardware_args=hw_list[0]).gen_result()
    stage_time, total = CM.pipeline_costmodel(
        CM.TimeCostModel, engine.layernum_list, engine.model_args_list,
        engine.train_args_list, engine.parallel_args_list,
        engine.profile_model_args_list, hw_list, strategies, div, chunks, bsz,
        lo, other_time[1][vtp], return_stage_cost=True)

    def mem(strategy, stage):
        return CM.MemoryCostModel(
            strategy, bsz, mbsz=mbsz, min_tp=lo, max_tp=hi, stage_idx=stage,
            vsp=vsp, embed_sdp=esdp, model_args=first["model_args"],
            train_args=first["train_args"], parallel_args=first["parallel_args"],
            profile_model_args=first["profile_model_args"]).get_memory_cost()

    one_f_one_b = cfg["pipeline_type"] == "pipedream_flush"
    other = [int(math.ceil(x)) for x in mem(strategies[0], 0)["other"][vtp]]
    layer_mem, start = [], 0
    for s in range(pp):
        idx = s if one_f_one_b else 0
        layer_mem.append(sum(int(math.ceil(mem(strategies[i], idx)["enc_total"]))
                             for i in range(start, start + div[s])))
        start += div[s]
    sp_search = 2 if vsp == 1 and all(t == 1 or u == 1 for t, u in
                                      zip(tp, sp)) else 3
    gmem = 0.0
    if a.sequence_parallel and a.global_memory_buffer and sp_search != 2:
        gmem = mbsz / lo * hi * HIDDEN * SEQ * 4 / 1024 / 1024
        if a.mixed_precision != "fp32":
            gmem /= 2
    dpm = DP.DpOnModel(
        strategies, CM.MemoryCostModel, CM.TimeCostModel,
        max_mem=engine.memory_constraint, layer_num=engine.layernum_list,
        sequence_len=engine.seqlen_list, multi_layer_type=True,
        pp_stage_dict={pp: div}, config=a, gpu_num=world,
        comm_coe_dict=engine.allreduce_comm_coe, **arg_lists,
        profile_hardware_args_list=hw_list)
    stage_mem = [layer_mem[s] + other[s] + int(gmem) + dpm.mem_cache
                 for s in range(pp)]
    return {
        "time_ms": float(total) * 1000.0,
        "stage_time_ms": [float(x) * 1000.0 for x in stage_time],
        "stage_memory_mb": stage_mem,
        "stage_layer_memory_mb": layer_mem,
        "stage_other_memory_mb": other,
        "global_buffer_mb": int(gmem),
        "reserve_mb": dpm.mem_cache,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", required=True,
                    help="galvatron-inputs dir (hardware/, llama-7b/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-hardware", type=int, default=60)
    ap.add_argument("--seed", type=int, default=2024)
    opt = ap.parse_args()
    rng = random.Random(opt.seed)
    tmp = tempfile.mkdtemp()
    hw_src = os.path.join(opt.inputs, "hardware")
    for f in os.listdir(hw_src):
        shutil.copy(os.path.join(hw_src, f), tmp)
    shutil.copy(os.path.join(tmp, "sp_time_1nodes_8gpus_per_node.json"),
                os.path.join(tmp, "sp_time_2nodes_8gpus_per_node.json"))
    cases = []
    for nodes, gpus in [(1, 8), (2, 8)]:
        world, name = nodes * gpus, "%dnodes_%dgpus_per_node" % (nodes, gpus)
        engines = {m: make_engine(opt.inputs, tmp, nodes, gpus, m)
                   for m in ["static", "batch"]}
        n = 0
        while n < opt.per_hardware:
            case = random_case(rng, world, name)
            case["num_nodes"], case["gpus_per_node"] = nodes, gpus
            eng = engines[case["search"]["time_profile_mode"]]
            case["galvatron"] = evaluate(eng, case, world)
            cases.append(case)
            n += 1
    out = {
        "generator": "bench/galvatron-parity/run.sh (hetu-galvatron 2.4.0)",
        "seed": opt.seed,
        "model": {"name": MODEL, "layer_num": LAYERS, "seq_len": SEQ,
                  "hidden_size": HIDDEN,
                  "profiles": "shared/galvatron-inputs/llama-7b"},
        "hardware_profiles": "shared/galvatron-inputs/hardware "
                             "(2 nodes: the 1x8 sp_time file stands in)",
        "cases": cases,
    }
    os.makedirs(os.path.dirname(os.path.abspath(opt.out)), exist_ok=True)
    with open(opt.out, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote %d cases to %s" % (len(cases), opt.out))


if __name__ == "__main__":
    main()
