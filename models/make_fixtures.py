#!/usr/bin/env python3
"""Generate tiny ONNX fixtures of Hugging Face Transformer models.

For each tiny model (gpt2, llama, bert, t5) built from a config with random,
seeded weights (no hub downloads), this script exports the model with both
PyTorch ONNX exporters (the TorchScript exporter and the dynamo/torch.export
based exporter) and stores, next to each model.onnx:

  * the inputs used (input_ids.npy, plus attention_mask.npy and
    token_type_ids.npy for BERT, decoder_input_ids.npy for T5),
  * the PyTorch reference logits (logits.npy) and the onnxruntime logits
    (logits_ort.npy) on the same inputs,
  * the model weights under their Hugging Face state-dict names
    (weights.safetensors),
  * meta.json describing the export (versions, config, inputs, symbolic dims,
    opset imports, op-type histogram, parameter names/shapes, errors, ...).

It also writes one external-data variant (gpt2-torchscript-external) whose
weights live in model.onnx.data.

Usage:  python3 models/make_fixtures.py [--out DIR] [--only NAME ...] [--grads-only | --adamw-only]

Exits non-zero if any exported variant's onnxruntime logits do not match the
PyTorch logits (max abs error / max abs reference > 1e-4), at the export shape
(batch 2, seq 8) or at a second shape (batch 3, seq 5) used to check that the
symbolic dims really are dynamic, or if onnxruntime cannot load a variant.
A variant that cannot be exported at all is recorded in its meta.json
(export_error) and skipped; pass --strict to make that fatal too.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import platform
import random
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import safetensors
import safetensors.torch
import torch

import strip_node_metadata  # models/, beside this script
import transformers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

try:
    import onnxscript  # noqa: F401  (needed by the dynamo exporter)

    ONNXSCRIPT_VERSION = onnxscript.__version__
except Exception:  # pragma: no cover
    ONNXSCRIPT_VERSION = None

BATCH = 2
SEQ = 8
# Shape used to check that exported symbolic dims really are dynamic.
ALT_BATCH = 3
ALT_SEQ = 5
TOLERANCE = 1e-4  # max |ort - torch| / max |torch|

TS_OPSET = 17
DYNAMO_OPSETS = (18, 17)  # first one that works is used

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "fixtures"


# --------------------------------------------------------------------------
# Determinism helpers
# --------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------
# Model specs
# --------------------------------------------------------------------------


def _config_with_eager(cls, **kwargs):
    """Build a config asking for eager attention where the config accepts it."""
    try:
        cfg = cls(attn_implementation="eager", **kwargs)
    except TypeError:
        cfg = cls(**kwargs)
    # Make sure the attribute is really set (older/newer transformers differ).
    try:
        cfg._attn_implementation = "eager"
    except Exception:
        pass
    return cfg


def make_gpt2():
    cfg = _config_with_eager(
        GPT2Config,
        vocab_size=128,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        use_cache=False,
    )
    return cfg, GPT2LMHeadModel(cfg)


def make_llama():
    cfg = _config_with_eager(
        LlamaConfig,
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        use_cache=False,
    )
    return cfg, LlamaForCausalLM(cfg)


def make_bert():
    cfg = _config_with_eager(
        BertConfig,
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        type_vocab_size=2,
        hidden_act="gelu",
    )
    return cfg, BertForMaskedLM(cfg)


MODEL_SPECS = {
    # name: (builder, seed, input names)
    "gpt2": (make_gpt2, 1234, ["input_ids"]),
    "llama": (make_llama, 2345, ["input_ids"]),
    "bert": (make_bert, 3456, ["input_ids", "attention_mask", "token_type_ids"]),
}


def make_inputs(name: str, vocab: int, batch: int, seq: int, seed: int):
    """Deterministic inputs (numpy, int64)."""
    rng = np.random.default_rng(seed)
    inputs = collections.OrderedDict()
    inputs["input_ids"] = rng.integers(0, vocab, size=(batch, seq), dtype=np.int64)
    if name == "bert":
        mask = np.ones((batch, seq), dtype=np.int64)
        if batch > 1:
            # Padding at the end of the second row.
            mask[1, max(1, seq - 3):] = 0
        inputs["attention_mask"] = mask
        tt = np.zeros((batch, seq), dtype=np.int64)
        tt[:, seq // 2:] = 1  # second "segment"
        inputs["token_type_ids"] = tt
    return inputs


# --------------------------------------------------------------------------
# Weights and logits-only forward
# --------------------------------------------------------------------------


def randomize_parameters(model, seed: int) -> None:
    """Give every parameter distinct, non-trivial random values.

    HF's default init leaves every bias at 0 and every norm weight at 1, so
    the exported graphs would (a) not exercise bias/norm-weight wiring and
    (b) let the TorchScript exporter deduplicate identical initializers
    (one LayerNorm weight shared by all LayerNorms).  Tied parameters stay
    tied (named_parameters() yields each tensor once).  Buffers are untouched.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            leaf = pname.rsplit(".", 1)[-1]
            is_norm = "norm" in pname.lower() or ".ln_" in pname or pname.startswith("transformer.ln_f")
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if is_norm and leaf == "weight":
                p.copy_(1.0 + 0.1 * noise)
            elif leaf == "bias" or p.dim() == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.2 * noise)


def make_logits_only(model, input_names):
    """Swap the model's class for a subclass whose forward returns only logits.

    Using a subclass (instead of a wrapper nn.Module) keeps every parameter
    under its Hugging Face state-dict name, so ONNX initializer names are
    e.g. "transformer.wte.weight" rather than "model.transformer.wte.weight".
    """
    base = type(model)
    if input_names == ["input_ids"]:

        def forward(self, input_ids):
            out = base.forward(
                self,
                input_ids=input_ids,
                attention_mask=None,
                use_cache=False,
                return_dict=True,
            )
            return out.logits

    elif input_names == ["input_ids", "attention_mask", "token_type_ids"]:

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = base.forward(
                self,
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            )
            return out.logits

    elif input_names == ["input_ids", "decoder_input_ids"]:  # T5

        def forward(self, input_ids, decoder_input_ids):
            out = base.forward(
                self,
                input_ids=input_ids,
                attention_mask=None,
                decoder_input_ids=decoder_input_ids,
                use_cache=False,
                return_dict=True,
            )
            return out.logits

    else:
        raise ValueError(f"make_logits_only: unsupported inputs {input_names}")

    cls = type(base.__name__ + "LogitsOnly", (base,), {"forward": forward})
    cls.__module__ = __name__
    model.__class__ = cls
    return model


# --------------------------------------------------------------------------
# T5 (encoder-decoder)
#
# (The dynamo exporter records "File .../make_fixtures.py, line N" in every
# node's pkg.torch.onnx.stack_trace; export_dynamo strips those traces with
# strip_node_metadata.py, so where code sits here no longer changes the
# checked-in *-dynamo/model.onnx files.)
# --------------------------------------------------------------------------

from transformers import T5Config, T5ForConditionalGeneration  # noqa: E402


def make_t5():
    # tie_word_embeddings is left at its default.  transformers 5 always ties
    # shared / encoder.embed_tokens / decoder.embed_tokens / lm_head for T5,
    # and (tie_word_embeddings not passed as False) sets
    # scale_decoder_outputs=True: the decoder output is multiplied by
    # d_model**-0.5 before lm_head.
    cfg = _config_with_eager(
        T5Config,
        vocab_size=128,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=3,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        feed_forward_proj="relu",
        dropout_rate=0.0,
        use_cache=False,
    )
    return cfg, T5ForConditionalGeneration(cfg)


MODEL_SPECS["t5"] = (make_t5, 4567, ["input_ids", "decoder_input_ids"])


def make_model_inputs(name: str, vocab: int, batch: int, seq: int, seed: int, dec_seq=None):
    """make_inputs, plus decoder_input_ids for T5.

    For T5 both id tensors come from one generator (input_ids first); the
    decoder length is dec_seq (default: seq).  No attention masks.
    """
    if name != "t5":
        return make_inputs(name, vocab, batch, seq, seed)
    rng = np.random.default_rng(seed)
    inputs = collections.OrderedDict()
    inputs["input_ids"] = rng.integers(0, vocab, size=(batch, seq), dtype=np.int64)
    inputs["decoder_input_ids"] = rng.integers(
        0, vocab, size=(batch, seq if dec_seq is None else dec_seq), dtype=np.int64
    )
    return inputs


# --------------------------------------------------------------------------
# Exporters
# --------------------------------------------------------------------------


def _diff_symbolic(g, self, n, dim, prepend, append):
    """ONNX lowering of aten::diff (n=1) for the TorchScript exporter.

    transformers >= 5 calls torch.diff in masking_utils.find_packed_sequence_indices
    whenever attention_mask is None and the model is being traced; the
    TorchScript exporter has no symbolic for it (the dynamo exporter
    decomposes it).  diff(x, dim) = x[1:] - x[:-1] along dim, after
    concatenating prepend/append.
    """
    from torch.onnx import symbolic_helper as sh

    n = sh._maybe_get_const(n, "i")
    dim = sh._maybe_get_const(dim, "i")
    if not isinstance(n, int) or n != 1 or not isinstance(dim, int):
        raise RuntimeError(f"aten::diff symbolic: only n=1 with constant dim supported (n={n}, dim={dim})")
    parts = []
    if not sh._is_none(prepend):
        parts.append(prepend)
    parts.append(self)
    if not sh._is_none(append):
        parts.append(append)
    x = g.op("Concat", *parts, axis_i=dim) if len(parts) > 1 else self

    def const(v):
        return g.op("Constant", value_t=torch.tensor([v], dtype=torch.int64))

    axes = const(dim)
    hi = g.op("Slice", x, const(1), const(torch.iinfo(torch.int64).max), axes)
    lo = g.op("Slice", x, const(0), const(-1), axes)
    return g.op("Sub", hi, lo)


def _cumsum_symbolic(g, self, dim, dtype):
    """aten::cumsum that follows torch's type promotion.

    torch promotes bool/integral cumsum inputs to int64 when dtype is None; the
    stock opset-11 symbolic emits CumSum directly on the bool tensor, which is
    invalid ONNX (CumSum does not accept tensor(bool)).  Used by transformers'
    packed-sequence detection: (position_diff != 1).cumsum(-1).
    """
    from torch.onnx import symbolic_helper as sh

    dim = sh._maybe_get_const(dim, "i")
    if not isinstance(dim, int):
        raise RuntimeError("aten::cumsum symbolic: dim must be constant")
    onnx_to = None
    if not sh._is_none(dtype):
        tdt = sh._maybe_get_const(dtype, "i")
        if isinstance(tdt, int):
            onnx_to = _ONNX_FROM_SCALAR_TYPE_INDEX.get(tdt)
    if onnx_to is None:
        try:
            st = self.type().scalarType()
        except Exception:
            st = None
        if st in ("Bool", "Byte", "Char", "Short", "Int"):
            onnx_to = onnx.TensorProto.INT64
    x = g.op("Cast", self, to_i=onnx_to) if onnx_to is not None else self
    return g.op("CumSum", x, g.op("Constant", value_t=torch.tensor(dim, dtype=torch.int64)))


# torch ScalarType enum index -> ONNX elem type (only the ones cumsum may see).
_ONNX_FROM_SCALAR_TYPE_INDEX = {
    3: onnx.TensorProto.INT32,  # torch.int32
    4: onnx.TensorProto.INT64,  # torch.int64
    6: onnx.TensorProto.FLOAT,  # torch.float32
    7: onnx.TensorProto.DOUBLE,  # torch.float64
}

TS_CUSTOM_SYMBOLICS = {"aten::diff": _diff_symbolic, "aten::cumsum": _cumsum_symbolic}


def export_torchscript(wrapper, args, input_names, path: Path, opset=TS_OPSET, dynamic=True):
    """dynamic=False keeps the example's shapes (PyTorch's default export)."""
    for op, fn in TS_CUSTOM_SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(op, fn, opset)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {n: {0: "batch_size", 1: "sequence_length"} for n in input_names}
        dynamic_axes["logits"] = {0: "batch_size", 1: "sequence_length"}
    torch.onnx.export(
        wrapper,
        args,
        str(path),
        dynamo=False,
        opset_version=opset,
        do_constant_folding=True,
        input_names=list(input_names),
        output_names=["logits"],
        dynamic_axes=dynamic_axes,
        export_params=True,
        external_data=False,
    )
    return {
        "exporter": "torchscript",
        "opset_requested": opset,
        "dynamic": dynamic,
        "dynamic_axes": dynamic_axes,
        "custom_symbolics": {
            "aten::diff": "x[1:] - x[:-1] via Concat(prepend, x)/Slice/Sub (n=1); no stock "
            "symbolic exists and transformers.masking_utils.find_packed_sequence_indices "
            "calls torch.diff when attention_mask is None",
            "aten::cumsum": "Cast bool/int inputs to int64 before CumSum (torch type "
            "promotion); the stock symbolic emits CumSum on tensor(bool), which ORT rejects",
        },
    }


def export_dynamo(wrapper, args, input_names, path: Path, log: list, shapes=(True, False)):
    """Try dynamic shapes first, then static (`shapes` narrows that); opset 18 then 17."""
    attempts = []
    for opset in DYNAMO_OPSETS:
        for dynamic in shapes:
            attempts.append((opset, dynamic))
    last_exc = None
    for opset, dynamic in attempts:
        kwargs = {}
        if dynamic:
            batch = torch.export.Dim("batch_size", min=1, max=64)
            seq = torch.export.Dim("sequence_length", min=1, max=SEQ_MAX[0])
            kwargs["dynamic_shapes"] = {n: {0: batch, 1: seq} for n in input_names}
        try:
            buf = io.StringIO()
            with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
                warnings.simplefilter("ignore")
                prog = torch.onnx.export(
                    wrapper,
                    args,
                    dynamo=True,
                    opset_version=opset,
                    input_names=list(input_names),
                    output_names=["logits"],
                    external_data=False,
                    optimize=True,
                    report=False,
                    **kwargs,
                )
            prog.save(str(path), external_data=False)
            strip_node_metadata.strip(path)
            return {
                "exporter": "dynamo",
                "opset_requested": opset,
                "dynamic": dynamic,
                "dynamic_shapes": (
                    {n: {0: "batch_size", 1: "sequence_length"} for n in input_names}
                    if dynamic
                    else None
                ),
                "failed_attempts": list(log),
            }
        except Exception as exc:  # record and try the next variation
            last_exc = exc
            log.append(
                {
                    "opset": opset,
                    "dynamic": dynamic,
                    "error": f"{type(exc).__name__}: {exc}"[:4000],
                }
            )
            print(
                f"    dynamo export attempt (opset={opset}, dynamic={dynamic}) failed: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
    raise last_exc


SEQ_MAX = [32]  # max sequence length for dynamic shapes (set per model)


# --------------------------------------------------------------------------
# ONNX inspection
# --------------------------------------------------------------------------


def _dims(value_info):
    t = value_info.type.tensor_type
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_param"):
            dims.append(d.dim_param)
        elif d.HasField("dim_value"):
            dims.append(d.dim_value)
        else:
            dims.append(None)
    return {
        "name": value_info.name,
        "elem_type": onnx.TensorProto.DataType.Name(t.elem_type),
        "shape": dims,
    }


# All nodes of a graph, including subgraphs (If/Loop/Scan bodies).
_walk_nodes = strip_node_metadata.nodes


def inspect_onnx(path: Path):
    model = onnx.load(str(path), load_external_data=False)
    g = model.graph
    top_ops = collections.Counter(
        (n.domain or "ai.onnx") + "::" + n.op_type if n.domain not in ("", "ai.onnx") else n.op_type
        for n in g.node
    )
    all_ops = collections.Counter(
        n.op_type if n.domain in ("", "ai.onnx") else n.domain + "::" + n.op_type
        for n in _walk_nodes(g)
    )
    init_names = {i.name for i in g.initializer}
    inputs = [_dims(i) for i in g.input if i.name not in init_names]
    outputs = [_dims(o) for o in g.output]
    symbolic = sorted(
        {d for io_ in inputs + outputs for d in io_["shape"] if isinstance(d, str)}
    )
    input_symbolic = sorted(
        {d for io_ in inputs for d in io_["shape"] if isinstance(d, str)}
    )
    functions = [
        {
            "domain": f.domain,
            "name": f.name,
            "num_nodes": len(f.node),
            "op_types": dict(collections.Counter(n.op_type for n in f.node)),
        }
        for f in model.functions
    ]
    ext_inits = [
        i.name
        for i in g.initializer
        if i.data_location == onnx.TensorProto.EXTERNAL
    ]
    node_meta_example = None
    nodes_with_meta = 0
    meta_keys = collections.Counter()
    for n in g.node:
        if len(n.metadata_props):
            nodes_with_meta += 1
            for p in n.metadata_props:
                meta_keys[p.key] += 1
            if node_meta_example is None:
                node_meta_example = {
                    "node_name": n.name,
                    "op_type": n.op_type,
                    "metadata_props": {p.key: p.value for p in n.metadata_props},
                }
    empty_names = sum(1 for n in g.node if not n.name)
    # Per op type: attribute names (with small scalar values) and input arity,
    # e.g. "Reshape": {"allowzero=1 | 2 inputs": 22}.  Tells an importer which
    # op forms it has to accept.
    sigs = collections.defaultdict(collections.Counter)
    for n in _walk_nodes(g):
        parts = []
        for a in sorted(n.attribute, key=lambda a: a.name):
            val = onnx.helper.get_attribute_value(a)
            if n.op_type == "Constant" and a.name == "value":
                parts.append(
                    f"value={onnx.TensorProto.DataType.Name(val.data_type)}{list(val.dims)}"
                )
            elif isinstance(val, (int, float)):
                parts.append(f"{a.name}={val}")
            elif isinstance(val, bytes):
                parts.append(f"{a.name}={val.decode(errors='replace')}")
            elif isinstance(val, list) and len(val) <= 8 and all(isinstance(x, (int, float)) for x in val):
                parts.append(f"{a.name}={list(val)}")
            else:
                parts.append(a.name)
        n_in = len(n.input)
        empty = [i for i, x in enumerate(n.input) if x == ""]
        parts.append(f"{n_in} inputs" + (f" (empty: {empty})" if empty else ""))
        op = n.op_type if n.domain in ("", "ai.onnx") else n.domain + "::" + n.op_type
        sigs[op][" | ".join(parts)] += 1
    dim_params = collections.Counter()
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                dim_params[d.dim_param] += 1
    info = {
        "ir_version": model.ir_version,
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "opset_imports": [
            {"domain": o.domain or "ai.onnx", "version": o.version}
            for o in model.opset_import
        ],
        "graph_name": g.name,
        "num_nodes": len(g.node),
        "num_nodes_including_subgraphs": sum(all_ops.values()),
        "op_types": dict(sorted(top_ops.items())),
        "op_types_including_subgraphs": dict(sorted(all_ops.items())),
        "num_distinct_op_types": len(top_ops),
        "num_constant_nodes": top_ops.get("Constant", 0),
        "custom_domains": sorted(
            {n.domain for n in _walk_nodes(g) if n.domain not in ("", "ai.onnx")}
        ),
        "functions": functions,
        "inputs": inputs,
        "outputs": outputs,
        "op_signatures": {k: dict(v) for k, v in sorted(sigs.items())},
        "symbolic_dims": symbolic,
        "value_info_dim_params": dict(dim_params),
        "input_symbolic_dims": input_symbolic,
        "num_initializers": len(g.initializer),
        "initializers": [
            {
                "name": i.name,
                "dtype": onnx.TensorProto.DataType.Name(i.data_type),
                "shape": list(i.dims),
            }
            for i in g.initializer
        ],
        "external_initializers": len(ext_inits),
        "num_value_info": len(g.value_info),
        "model_metadata_props": {p.key: p.value for p in model.metadata_props},
        "nodes_with_metadata_props": nodes_with_meta,
        "node_metadata_prop_keys": dict(meta_keys),
        "node_metadata_props_example": node_meta_example,
        "nodes_without_name": empty_names,
        "example_node_names": [n.name for n in g.node[:5]],
    }
    return model, info


def match_initializers(proto, base_dir: Path, model):
    """Map each float initializer to the HF state-dict entry it equals.

    Values are "<hf name>" (identical), "<hf name>^T" (2-D transpose, e.g. the
    TorchScript exporter's constant-folded nn.Linear weights named
    onnx::MatMul_N) or null (no match: folded constants, masks, ...).
    """
    from onnx import numpy_helper

    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out = {}
    for init in proto.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        try:
            arr = numpy_helper.to_array(init, base_dir=str(base_dir))
        except Exception:
            out[init.name] = None
            continue
        found = None
        if init.name in sd and sd[init.name].shape == arr.shape and np.array_equal(sd[init.name], arr):
            found = init.name
        else:
            for k, v in sd.items():
                if v.shape == arr.shape and np.array_equal(v, arr):
                    found = k
                    break
                if v.ndim == 2 and v.T.shape == arr.shape and np.array_equal(v.T, arr):
                    found = k + "^T"
                    break
        out[init.name] = found
    return out


# --------------------------------------------------------------------------
# onnxruntime
# --------------------------------------------------------------------------


def run_ort(path: Path, feeds: dict, log_severity_level: int = 3):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = log_severity_level
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    out = sess.run(["logits"], {n: feeds[n] for n in names})[0]
    return np.asarray(out, dtype=np.float32), names


def rel_err(ref: np.ndarray, got: np.ndarray):
    mae = float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64))))
    scale = float(np.max(np.abs(ref)))
    return mae, mae / max(scale, 1e-30)


# --------------------------------------------------------------------------
# Main driver
# --------------------------------------------------------------------------


def torch_logits(wrapper, inputs: dict, names):
    with torch.no_grad():
        args = tuple(torch.from_numpy(inputs[n]) for n in names)
        return wrapper(*args).detach().to(torch.float32).numpy()


def config_dict(cfg):
    d = cfg.to_dict()
    return json.loads(json.dumps(d, default=str))


def state_dict_info(model):
    sd = model.state_dict()
    params = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    # Detect tied tensors (same storage).
    by_ptr = collections.defaultdict(list)
    for k, v in sd.items():
        by_ptr[(v.data_ptr(), tuple(v.shape))].append(k)
    tied = [sorted(v) for v in by_ptr.values() if len(v) > 1]
    entries = [
        {
            "name": k,
            "shape": list(v.shape),
            "dtype": str(v.dtype).replace("torch.", ""),
            "is_parameter": k in params,
        }
        for k, v in sd.items()
    ]
    return entries, tied


def save_weights(model, path: Path):
    """All state-dict entries under HF names (tied tensors duplicated)."""
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(sd, str(path), metadata={"format": "pt"})


def versions():
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "onnxscript": ONNXSCRIPT_VERSION,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def write_json(path: Path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def process_variant(
    name, variant, cfg, model, model_class, wrapper, input_names, inputs, ref_logits,
    alt_inputs, alt_ref, out_dir: Path, sd_entries, tied, external=False,
):
    vdir = out_dir / variant
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.mkdir(parents=True)
    onnx_path = vdir / "model.onnx"
    meta = {
        "variant": variant,
        "model_type": cfg.model_type,
        "model_class": model_class,
        "parameter_init": "HF init, then every parameter re-drawn (seeded): matrices/embeddings "
        "N(0, 0.2^2), biases N(0, 0.1^2), norm weights 1 + N(0, 0.1^2); tied weights stay tied",
        "exporter": "dynamo" if "dynamo" in variant else "torchscript",
        "external_data": external,
        "versions": versions(),
        "seed": MODEL_SPECS[name][1],
        "config": config_dict(cfg),
        "attn_implementation": getattr(cfg, "_attn_implementation", None),
        "hidden_act": getattr(
            cfg, "hidden_act", getattr(cfg, "activation_function", getattr(cfg, "dense_act_fn", None))
        ),
        "inputs": [
            {"name": n, "dtype": str(inputs[n].dtype), "shape": list(inputs[n].shape),
             "file": f"{n}.npy"}
            for n in input_names
        ],
        "outputs": [{"name": "logits", "dtype": "float32",
                     "shape": list(ref_logits.shape), "file": "logits.npy"}],
        "tolerance_rel": TOLERANCE,
        "state_dict": sd_entries,
        "tied_weights": tied,
        "weights_file": "weights.safetensors",
    }
    if name == "t5":
        meta["scale_decoder_outputs"] = getattr(cfg, "scale_decoder_outputs", None)
        meta["sequence_dims"] = {
            "input_ids": ["batch_size", "sequence_length"],
            "decoder_input_ids": ["batch_size", "sequence_length"],
            "logits": ["batch_size", "sequence_length"],
            "note": "encoder and decoder lengths share the dim name 'sequence_length' (they are "
            "equal in these fixtures). The dynamo export (one torch.export Dim for both) computes "
            "with a single length and only supports equal lengths; the TorchScript graph itself is "
            "length-agnostic, but onnxruntime's memory planner trusts the shared dim_param and may "
            "reject unequal lengths. See unequal_seq_check (informational, not part of status).",
        }
    args = tuple(torch.from_numpy(inputs[n]) for n in input_names)
    status = "ok"
    try:
        if meta["exporter"] == "torchscript":
            buf = io.StringIO()
            with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
                warnings.simplefilter("ignore")
                if external:
                    with tempfile.TemporaryDirectory() as td:
                        tmp = Path(td) / "model.onnx"
                        exp = export_torchscript(wrapper, args, input_names, tmp)
                        m = onnx.load(str(tmp))
                    onnx.save_model(
                        m,
                        str(onnx_path),
                        save_as_external_data=True,
                        all_tensors_to_one_file=True,
                        location="model.onnx.data",
                        size_threshold=0,
                    )
                else:
                    exp = export_torchscript(wrapper, args, input_names, onnx_path)
        else:
            log = []
            exp = export_dynamo(wrapper, args, input_names, onnx_path, log)
        meta["export"] = exp
        meta["export_error"] = None
    except Exception as exc:
        tb = traceback.format_exc()
        meta["export"] = None
        meta["export_error"] = f"{type(exc).__name__}: {exc}"[:8000]
        meta["export_traceback"] = tb[-8000:]
        if meta["exporter"] == "dynamo":
            meta["export_failed_attempts"] = log
        status = "export-failed"
        print(f"  [{variant}] EXPORT FAILED: {meta['export_error'].splitlines()[0]}")
        # Keep only meta.json for a failed variant.
        for p in vdir.iterdir():
            p.unlink()
        write_json(vdir / "meta.json", meta)
        return {"variant": variant, "status": status, "meta": meta}

    # Save inputs / references / weights.
    for n in input_names:
        np.save(vdir / f"{n}.npy", inputs[n])
    np.save(vdir / "logits.npy", ref_logits.astype(np.float32))
    save_weights(model, vdir / "weights.safetensors")

    onnx.checker.check_model(str(onnx_path))
    proto, info = inspect_onnx(onnx_path)
    info["initializer_hf_match"] = match_initializers(proto, onnx_path.parent, model)
    meta["onnx"] = info
    meta["opset"] = next(
        (o["version"] for o in info["opset_imports"] if o["domain"] == "ai.onnx"), None
    )

    try:
        ort_logits, ort_input_names = run_ort(onnx_path, inputs)
    except Exception as exc:
        meta["ort_error"] = f"{type(exc).__name__}: {exc}"[:8000]
        meta["match"] = False
        print(f"  [{variant}] ONNXRUNTIME FAILED: {meta['ort_error'].splitlines()[0]}")
        write_json(vdir / "meta.json", meta)
        return {"variant": variant, "status": "ort-failed", "meta": meta}
    np.save(vdir / "logits_ort.npy", ort_logits)
    mae, rel = rel_err(ref_logits, ort_logits)
    meta["onnx_input_names"] = ort_input_names
    meta["max_abs_diff"] = mae
    meta["max_abs_reference"] = float(np.max(np.abs(ref_logits)))
    meta["max_rel_err"] = rel
    meta["match"] = bool(rel <= TOLERANCE and ort_logits.shape == ref_logits.shape)

    # Dynamic-shape sanity check at a different (batch, seq).
    alt = None
    is_dynamic = bool(info["input_symbolic_dims"])
    if is_dynamic:
        try:
            alt_ort, _ = run_ort(onnx_path, alt_inputs)
            amae, arel = rel_err(alt_ref, alt_ort)
            alt = {
                "shape": [ALT_BATCH, ALT_SEQ],
                "max_abs_diff": amae,
                "max_rel_err": arel,
                "match": bool(arel <= TOLERANCE and alt_ort.shape == alt_ref.shape),
            }
        except Exception as exc:
            alt = {"shape": [ALT_BATCH, ALT_SEQ], "error": f"{type(exc).__name__}: {exc}"[:2000],
                   "match": False}
    meta["alt_shape_check"] = alt
    if name == "t5" and is_dynamic:
        # Informational only (does not affect status): encoder length SEQ,
        # decoder length ALT_SEQ, although both share the "sequence_length" name.
        uneq = make_model_inputs(
            name, cfg.vocab_size, BATCH, SEQ, MODEL_SPECS[name][1] + 3, dec_seq=ALT_SEQ
        )
        check = {"input_ids": list(uneq["input_ids"].shape),
                 "decoder_input_ids": list(uneq["decoder_input_ids"].shape)}
        try:
            uneq_ref = torch_logits(wrapper, uneq, input_names)
            uneq_ort, _ = run_ort(onnx_path, uneq, log_severity_level=4)  # failure is expected
            umae, urel = rel_err(uneq_ref, uneq_ort)
            check.update(max_abs_diff=umae, max_rel_err=urel,
                         match=bool(urel <= TOLERANCE and uneq_ort.shape == uneq_ref.shape))
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
            check.update(error=msg[:2000], match=False)
        meta["unequal_seq_check"] = check
        print(f"  [{variant}] unequal encoder/decoder lengths (informational): " + ("ok" if check["match"] else check.get("error", "mismatch")[:160]))
    if not meta["match"] or (alt is not None and not alt["match"]):
        status = "MISMATCH"

    meta["files"] = {
        p.name: p.stat().st_size for p in sorted(vdir.iterdir())
    }
    write_json(vdir / "meta.json", meta)
    return {
        "variant": variant,
        "status": status,
        "meta": meta,
        "onnx_size": onnx_path.stat().st_size
        + ((vdir / "model.onnx.data").stat().st_size if external else 0),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", default=None,
                    help="restrict to these models (gpt2 llama bert t5)")
    ap.add_argument("--strict", action="store_true",
                    help="also fail when a variant could not be exported")
    ap.add_argument("--grads-only", action="store_true",
                    help="only (re)write loss.npy and grads.safetensors of the causal LMs "
                    "(gpt2, llama) in the existing variant directories; nothing is exported "
                    "and no other file is touched")
    ap.add_argument("--adamw-only", action="store_true",
                    help="only (re)write adamw_losses.npy of the causal LMs (gpt2, llama) in the "
                    "existing variant directories (--grads-only writes it too)")
    ns = ap.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    out_dir: Path = ns.out
    out_dir.mkdir(parents=True, exist_ok=True)
    print("versions:", json.dumps(versions()))
    if ns.adamw_only:
        return 0 if write_adamw_references(out_dir, ns.only) else 1
    if ns.grads_only:
        ok = write_grad_references(out_dir, ns.only)
        ok = write_adamw_references(out_dir, ns.only) and ok
        return 0 if ok else 1

    results = []
    for name, (builder, seed, input_names) in MODEL_SPECS.items():
        if ns.only and name not in ns.only:
            continue
        print(f"== {name}")
        seed_everything(seed)
        cfg, model = builder()
        model = model.to(torch.float32).eval()
        # Check attention implementation actually in use.
        impl = getattr(model.config, "_attn_implementation", None)
        if impl not in (None, "eager"):
            model.config._attn_implementation = "eager"
        randomize_parameters(model, seed + 100)
        model_class = type(model).__name__
        wrapper = make_logits_only(model, input_names).eval()
        SEQ_MAX[0] = int(getattr(cfg, "max_position_embeddings", getattr(cfg, "n_positions", 32)))
        inputs = make_model_inputs(name, cfg.vocab_size, BATCH, SEQ, seed + 1)
        alt_inputs = make_model_inputs(name, cfg.vocab_size, ALT_BATCH, ALT_SEQ, seed + 2)
        ref = torch_logits(wrapper, inputs, input_names)
        alt_ref = torch_logits(wrapper, alt_inputs, input_names)
        sd_entries, tied = state_dict_info(model)

        variants = [f"{name}-torchscript", f"{name}-dynamo"]
        for variant in variants:
            r = process_variant(
                name, variant, cfg, model, model_class, wrapper, input_names, inputs, ref,
                alt_inputs, alt_ref, out_dir, sd_entries, tied,
            )
            results.append(r)
        if name == "gpt2":
            r = process_variant(
                name, "gpt2-torchscript-external", cfg, model, model_class, wrapper, input_names,
                inputs, ref, alt_inputs, alt_ref, out_dir, sd_entries, tied,
                external=True,
            )
            results.append(r)

    # Summary table.
    hdr = f"{'variant':<28} {'opset':>5} {'dyn':>4} {'#nodes':>6} {'#ops':>4} {'onnx bytes':>10} {'max rel err':>12} {'alt rel err':>12}  status"
    print()
    print(hdr)
    print("-" * len(hdr))
    failed = False
    for r in results:
        m = r["meta"]
        if r["status"] == "ort-failed":
            print(f"{r['variant']:<28} {m.get('opset', '-')!s:>5} {'-':>4} {m['onnx']['num_nodes']:>6} {'-':>4} {'-':>10} {'-':>12} {'-':>12}  ort-failed")
            failed = True
            continue
        if r["status"] == "export-failed":
            print(f"{r['variant']:<28} {'-':>5} {'-':>4} {'-':>6} {'-':>4} {'-':>10} {'-':>12} {'-':>12}  export-failed")
            if ns.strict:
                failed = True
            continue
        info = m["onnx"]
        alt = m.get("alt_shape_check")
        alt_s = f"{alt['max_rel_err']:.3e}" if alt and "max_rel_err" in alt else ("n/a" if alt is None else "ERR")
        dyn = "yes" if info["input_symbolic_dims"] else "no"
        print(
            f"{r['variant']:<28} {m['opset']:>5} {dyn:>4} {info['num_nodes']:>6} "
            f"{info['num_distinct_op_types']:>4} {r['onnx_size']:>10} "
            f"{m['max_rel_err']:>12.3e} {alt_s:>12}  {r['status']}"
        )
        if r["status"] != "ok":
            failed = True
    # Loss/gradient references, written after meta.json (which therefore does
    # not list them) from freshly rebuilt models.
    if not write_grad_references(out_dir, ns.only):
        print("FAILURE: loss/gradient references (see above).", file=sys.stderr)
        failed = True
    if not write_adamw_references(out_dir, ns.only):
        print("FAILURE: AdamW loss references (see above).", file=sys.stderr)
        failed = True
    total = dir_size(out_dir)
    print()
    print(f"total size of {out_dir}: {total} bytes ({total / 1e6:.2f} MB)")
    if failed:
        print("FAILURE: at least one variant mismatched (see table).", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------
# Loss and gradient references (causal LMs)
#
# For gpt2 and llama, every variant directory also gets
#   loss.npy           float32, shape (): HF's causal-LM loss with
#                      labels=input_ids, i.e. mean cross-entropy of
#                      logits[:, :-1] against input_ids[:, 1:] over all
#                      BATCH * (SEQ - 1) positions (none ignored),
#   grads.safetensors  d loss / d parameter for every key of
#                      weights.safetensors (same names, shapes, float32); a
#                      tied tensor's single, combined gradient is stored under
#                      each of its names.
# Computed in fp32 on the CPU in eval mode (dropout off) on a model rebuilt
# exactly as main() builds it (same seeds and re-initialisation), checked
# against the variant's weights.safetensors / input_ids.npy / logits.npy.
# --------------------------------------------------------------------------

GRAD_MODELS = ("gpt2", "llama")
GRAD_LOSS_RTOL = 1e-5  # loss vs loss recomputed with numpy from logits.npy


def build_reference_model(name: str):
    """Model and export inputs of MODEL_SPECS[name], built as in main().

    Same seeds, dtype, eval mode, attention implementation and parameter
    re-initialisation; only the logits-only class swap is left out, so the
    model's own forward (with labels) is used.
    """
    builder, seed, _ = MODEL_SPECS[name]
    seed_everything(seed)
    cfg, model = builder()
    model = model.to(torch.float32).eval()
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager"):
        model.config._attn_implementation = "eager"
    randomize_parameters(model, seed + 100)
    inputs = make_model_inputs(name, cfg.vocab_size, BATCH, SEQ, seed + 1)
    return cfg, model, inputs


def causal_lm_loss_and_grads(model, input_ids: np.ndarray):
    """HF loss with labels=input_ids, the logits, and the gradient per state-dict name."""
    model.zero_grad(set_to_none=True)
    ids = torch.from_numpy(input_ids)
    out = model(input_ids=ids, attention_mask=None, labels=ids, use_cache=False, return_dict=True)
    out.loss.backward()
    grads = collections.OrderedDict()
    # remove_duplicate=False: a tied Parameter appears under each of its names
    # and its .grad already sums the contributions of all its uses.
    for pname, p in model.named_parameters(remove_duplicate=False):
        if p.grad is None:
            raise RuntimeError(f"no gradient for {pname}")
        grads[pname] = p.grad.detach().clone().contiguous()
    loss = out.loss.detach().clone()
    logits = out.logits.detach().clone()
    model.zero_grad(set_to_none=True)
    return loss, logits, grads


def numpy_causal_lm_loss(logits: np.ndarray, input_ids: np.ndarray) -> float:
    """Mean next-token cross-entropy (float64 log-softmax, gather, mean)."""
    x = logits[:, :-1].astype(np.float64)
    t = input_ids[:, 1:]
    m = x.max(axis=-1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
    return float(-np.take_along_axis(logp, t[..., None], axis=-1).mean())


def write_grad_references(out_dir: Path, only=None) -> bool:
    """Write loss.npy and grads.safetensors for the causal-LM variants.

    Returns False if a check fails (nothing is written for that model).
    """
    ok = True
    rows = []
    if only and not set(only) & set(GRAD_MODELS):
        print(f"loss/gradient references: only written for {', '.join(GRAD_MODELS)}; none selected")
    for name in GRAD_MODELS:
        if only and name not in only:
            continue
        print(f"== {name} (loss / gradients)")
        vdirs = sorted(d for d in out_dir.glob(f"{name}-*") if d.is_dir())
        if not vdirs:
            print(f"  no {name}-* directories under {out_dir}")
            ok = False
            continue
        usable = []
        for d in vdirs:
            if (d / "weights.safetensors").exists() and (d / "input_ids.npy").exists():
                usable.append(d)
            else:
                print(f"  [{d.name}] skipped (no weights.safetensors / input_ids.npy: export failed?)")
        if not usable:
            continue

        cfg, model, inputs = build_reference_model(name)
        input_ids = inputs["input_ids"]
        loss, logits, grads = causal_lm_loss_and_grads(model, input_ids)
        loss2, logits2, grads2 = causal_lm_loss_and_grads(model, input_ids)
        errors = []
        if not (torch.equal(loss, loss2) and torch.equal(logits, logits2)
                and list(grads) == list(grads2)
                and all(torch.equal(grads[k], grads2[k]) for k in grads)):
            errors.append("two gradient computations differ")
        lt = logits.to(torch.float32)
        manual = torch.nn.functional.cross_entropy(
            lt[:, :-1].reshape(-1, lt.shape[-1]), torch.from_numpy(input_ids[:, 1:]).reshape(-1)
        )
        if abs(manual.item() - loss.item()) > GRAD_LOSS_RTOL * abs(loss.item()):
            errors.append(f"HF loss {loss.item()!r} != shifted cross-entropy {manual.item()!r}")
        if not all(bool(torch.isfinite(g).all()) for g in grads.values()):
            errors.append("non-finite gradient")
        sd = model.state_dict()
        if set(sd) != set(grads):
            errors.append(f"state_dict names != parameter names: {sorted(set(sd) ^ set(grads))}")
        for k, g in grads.items():
            if k in sd and tuple(g.shape) != tuple(sd[k].shape):
                errors.append(f"{k}: gradient shape {tuple(g.shape)} != {tuple(sd[k].shape)}")

        checks = {}
        for d in usable:
            stored_ids = np.load(d / "input_ids.npy")
            if stored_ids.shape != input_ids.shape or not np.array_equal(stored_ids, input_ids):
                errors.append(f"{d.name}: input_ids.npy differs from the rebuilt inputs")
                continue
            w = safetensors.torch.load_file(str(d / "weights.safetensors"))
            if set(w) != set(grads):
                errors.append(f"{d.name}: weights.safetensors keys != gradient keys: "
                              f"{sorted(set(w) ^ set(grads))}")
                continue
            bad = [k for k in w if not torch.equal(w[k], sd[k])]
            if bad:
                errors.append(f"{d.name}: weights differ from the rebuilt model: {bad[:5]}")
                continue
            stored_logits = np.load(d / "logits.npy")
            np_loss = numpy_causal_lm_loss(stored_logits, stored_ids)
            rel = abs(np_loss - loss.item()) / abs(loss.item())
            if not rel <= GRAD_LOSS_RTOL:
                errors.append(f"{d.name}: numpy loss from logits.npy {np_loss!r} vs {loss.item()!r} "
                              f"(rel {rel:.3e})")
            _, logits_rel = rel_err(stored_logits, logits.numpy())
            checks[d.name] = (np_loss, rel, logits_rel)

        if errors:
            ok = False
            for e in errors:
                print(f"  ERROR: {e}")
            print(f"  nothing written for {name}")
            continue

        loss_np = np.asarray(loss.numpy(), dtype=np.float32).reshape(())
        max_grad = max(float(g.abs().max()) for g in grads.values())
        for d in usable:
            np.save(d / "loss.npy", loss_np)
            safetensors.torch.save_file(dict(grads), str(d / "grads.safetensors"),
                                        metadata={"format": "pt"})
            np_loss, rel, logits_rel = checks[d.name]
            rows.append((d.name, float(loss_np), np_loss, rel, logits_rel, len(grads), max_grad))

    if rows:
        hdr = (f"{'variant':<28} {'loss':>12} {'numpy loss':>12} {'rel diff':>9} "
               f"{'logits rel':>10} {'#grads':>6} {'max |grad|':>11}")
        print()
        print(hdr)
        print("-" * len(hdr))
        for v, l, nl, r, lr, n, mg in rows:
            print(f"{v:<28} {l:>12.8f} {nl:>12.8f} {r:>9.2e} {lr:>10.2e} {n:>6} {mg:>11.6f}")
    return ok


# --------------------------------------------------------------------------
# AdamW training-loss references (causal LMs)
#
# For gpt2 and llama, every variant directory also gets
#   adamw_losses.npy   float32, shape (ADAMW_STEPS,): the loss (as in
#                      loss.npy) before each of ADAMW_STEPS AdamW steps, all
#                      on the same batch (the fixture's input_ids), starting
#                      from the fixture's weights; element 0 == loss.npy.
# Computed in fp32 on the CPU in eval mode (dropout off) with
#   torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999),
#                     eps=1e-8, weight_decay=0.01, amsgrad=False,
#                     maximize=False, foreach=False, fused=False)
# (decoupled weight decay on every parameter, constant lr, no gradient
# clipping, zero_grad(set_to_none=True) before every forward).  GPT-2's
# lm_head stays tied to transformer.wte (one parameter, one optimizer state).
# Checked against a float64 re-implementation of the update (see
# adamw_reference_losses).
# GPT-2's variants also get adamw_clip_losses.npy: the same run with
# torch.nn.utils.clip_grad_norm_(model.parameters(), ADAMW_CLIP_NORM) before
# every step.
# --------------------------------------------------------------------------

ADAMW_STEPS = 20
ADAMW_LR = 1e-3
ADAMW_BETAS = (0.9, 0.999)
ADAMW_EPS = 1e-8
ADAMW_WEIGHT_DECAY = 0.01
ADAMW_CLIP_NORM = 0.5  # adamw_clip_losses.npy: below GPT-2's gradient norms, so it clips
ADAMW_RTOL = 1e-4  # fp32 torch.optim.AdamW losses vs the float64 re-implementation


def tied_lm_head(model) -> bool:
    """True if the model's output embedding is the very same tensor as its input embedding."""
    out = model.get_output_embeddings()
    inp = model.get_input_embeddings()
    return out is not None and out.weight is inp.weight


def hf_causal_lm_loss(model, ids):
    """The model's own loss with labels=input_ids (a Hugging Face causal LM)."""
    return model(input_ids=ids, attention_mask=None, labels=ids, use_cache=False,
                 return_dict=True).loss


def shifted_cross_entropy(logits, ids):
    """Mean cross-entropy of position t's logits against token t+1 (galv-append-loss)."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def torch_adamw_losses(model, input_ids: np.ndarray, steps: int = ADAMW_STEPS,
                       clip_norm: float = 0.0, grad_norms=None,
                       loss_fn=hf_causal_lm_loss) -> np.ndarray:
    """Losses before each of `steps` torch.optim.AdamW steps (trains `model` in place).

    loss_fn(model, ids) gives the loss of one step.  With clip_norm > 0 the
    gradients are clipped to that global L2 norm
    (torch.nn.utils.clip_grad_norm_) before each step; the norms before
    clipping are appended to grad_norms when given."""
    ids = torch.from_numpy(input_ids)
    opt = torch.optim.AdamW(
        model.parameters(), lr=ADAMW_LR, betas=ADAMW_BETAS, eps=ADAMW_EPS,
        weight_decay=ADAMW_WEIGHT_DECAY, amsgrad=False, maximize=False,
        foreach=False, fused=False, capturable=False, differentiable=False,
    )
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, ids)
        losses.append(loss.detach().clone())
        loss.backward()
        if clip_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            if grad_norms is not None:
                grad_norms.append(float(norm))
        opt.step()
    opt.zero_grad(set_to_none=True)
    return torch.stack(losses).numpy().astype(np.float32)


def adamw_reference_losses(model, input_ids: np.ndarray, steps: int = ADAMW_STEPS) -> np.ndarray:
    """Float64 re-implementation: model, loss, gradients and AdamW update all in float64.

    Written from the textbook formulas, without torch.optim:
        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
        mhat = m / (1 - b1^t),   vhat = v / (1 - b2^t),
        p = p (1 - lr wd)                       (decoupled decay, first),
        p = p - lr mhat / (sqrt(vhat) + eps)    (then the Adam step).
    The loss is the shifted cross-entropy computed here in float64 (HF's own
    loss upcasts logits with .float(), i.e. to float32).  Trains `model`
    (converted to float64) in place.
    """
    model = model.to(torch.float64)
    ids = torch.from_numpy(input_ids)
    params = list(model.parameters())  # a tied tensor once
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    b1, b2 = ADAMW_BETAS
    losses = []
    for t in range(1, steps + 1):
        logits = model(input_ids=ids, attention_mask=None, use_cache=False, return_dict=True).logits
        loss = shifted_cross_entropy(logits, ids)
        losses.append(float(loss.detach()))
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g, mi, vi in zip(params, grads, m, v):
                mi.copy_(b1 * mi + (1.0 - b1) * g)
                vi.copy_(b2 * vi + (1.0 - b2) * g * g)
                mhat = mi / (1.0 - b1 ** t)
                vhat = vi / (1.0 - b2 ** t)
                p.copy_(p * (1.0 - ADAMW_LR * ADAMW_WEIGHT_DECAY))
                p.copy_(p - ADAMW_LR * (mhat / (torch.sqrt(vhat) + ADAMW_EPS)))
    return np.asarray(losses, dtype=np.float64)


def write_adamw_references(out_dir: Path, only=None) -> bool:
    """Write adamw_losses.npy for the causal-LM variants.

    Before writing, checks that the rebuilt model and inputs match the
    variant's weights.safetensors / input_ids.npy bit for bit, that two runs
    give identical losses, that element 0 equals loss.npy (or, where a
    directory has none, the loss of causal_lm_loss_and_grads) exactly, that
    GPT-2's lm_head is still tied after training, and that the float64
    re-implementation agrees within ADAMW_RTOL (relative, per step).
    Returns False if a check fails (nothing is written for that model).
    """
    ok = True
    rows = []
    if only and not set(only) & set(GRAD_MODELS):
        print(f"AdamW loss references: only written for {', '.join(GRAD_MODELS)}; none selected")
    for name in GRAD_MODELS:
        if only and name not in only:
            continue
        print(f"== {name} (AdamW losses, {ADAMW_STEPS} steps)")
        vdirs = sorted(d for d in out_dir.glob(f"{name}-*") if d.is_dir())
        usable = [d for d in vdirs
                  if (d / "weights.safetensors").exists() and (d / "input_ids.npy").exists()]
        for d in vdirs:
            if d not in usable:
                print(f"  [{d.name}] skipped (no weights.safetensors / input_ids.npy: export failed?)")
        if not vdirs:
            print(f"  no {name}-* directories under {out_dir}")
            ok = False
            continue
        if not usable:
            continue

        errors = []
        # Reference loss (as in loss.npy) and the initial weights.
        _, model, inputs = build_reference_model(name)
        input_ids = inputs["input_ids"]
        sd0 = {k: t.detach().clone() for k, t in model.state_dict().items()}
        loss0, _, _ = causal_lm_loss_and_grads(model, input_ids)
        loss0 = np.asarray(loss0.numpy(), dtype=np.float32).reshape(())

        # Two independent fp32 torch.optim.AdamW runs on freshly rebuilt models.
        runs = []
        for _ in range(2):
            _, model, _ = build_reference_model(name)
            tied_before = tied_lm_head(model)
            runs.append(torch_adamw_losses(model, input_ids))
            if tied_lm_head(model) != tied_before:
                errors.append("lm_head tying changed during training")
        losses = runs[0]
        if not np.array_equal(runs[0], runs[1]):
            errors.append("two AdamW runs differ")
        if losses.shape != (ADAMW_STEPS,) or losses.dtype != np.float32:
            errors.append(f"unexpected losses array {losses.dtype} {losses.shape}")
        if not np.isfinite(losses).all():
            errors.append("non-finite AdamW loss")
        if losses[0] != loss0:
            errors.append(f"losses[0] {losses[0]!r} != loss {loss0!r}")

        # Float64 re-implementation.
        _, model64, _ = build_reference_model(name)
        tied_before = tied_lm_head(model64)
        ref = adamw_reference_losses(model64, input_ids)
        if tied_lm_head(model64) != tied_before:
            errors.append("lm_head tying changed in the float64 re-implementation")
        rel = np.abs(losses.astype(np.float64) - ref) / np.abs(ref)
        max_rel = float(rel.max())
        if not max_rel <= ADAMW_RTOL:
            errors.append(f"fp32 AdamW losses vs float64 re-implementation: max rel diff "
                          f"{max_rel:.3e} > {ADAMW_RTOL:g} (step {int(rel.argmax())})")

        for d in usable:
            stored_ids = np.load(d / "input_ids.npy")
            if stored_ids.shape != input_ids.shape or not np.array_equal(stored_ids, input_ids):
                errors.append(f"{d.name}: input_ids.npy differs from the rebuilt inputs")
                continue
            w = safetensors.torch.load_file(str(d / "weights.safetensors"))
            if set(w) != set(sd0) or any(not torch.equal(w[k], sd0[k]) for k in w):
                errors.append(f"{d.name}: weights.safetensors differs from the rebuilt model")
                continue
            if (d / "loss.npy").exists():
                stored_loss = np.load(d / "loss.npy")
                if stored_loss.dtype != np.float32 or stored_loss.shape != () \
                        or stored_loss.tobytes() != losses[:1].tobytes():
                    errors.append(f"{d.name}: loss.npy {stored_loss!r} != losses[0] {losses[0]!r}")

        if errors:
            ok = False
            for e in errors:
                print(f"  ERROR: {e}")
            print(f"  nothing written for {name}")
            continue

        print(f"  fp32 torch.optim.AdamW losses ({name}):")
        for i, (l32, l64) in enumerate(zip(losses, ref)):
            print(f"    step {i:2d}  {float(l32):.8f}   float64 {l64:.8f}   rel {rel[i]:.2e}")
        # The same run with gradient clipping (GPT-2 only: it is the check that
        # clipping is wired, not another model test).
        clipped = None
        if name == "gpt2":
            norms = []
            _, model, _ = build_reference_model(name)
            clipped = torch_adamw_losses(model, input_ids, clip_norm=ADAMW_CLIP_NORM,
                                         grad_norms=norms)
            print(f"  clip-norm {ADAMW_CLIP_NORM}: gradient norms before clipping "
                  f"{min(norms):.3f} .. {max(norms):.3f}; last loss "
                  f"{float(clipped[-1]):.6f} (unclipped {float(losses[-1]):.6f})")
            if not min(norms) > ADAMW_CLIP_NORM:
                print("  ERROR: some gradient norm is below the clip norm; nothing clipped there")
                ok = False
                continue
        for d in usable:
            np.save(d / "adamw_losses.npy", losses)
            if clipped is not None:
                np.save(d / "adamw_clip_losses.npy", clipped)
            rows.append((d.name, float(losses[0]), float(losses[-1]), max_rel))

    if rows:
        hdr = f"{'variant':<28} {'loss[0]':>12} {'loss[' + str(ADAMW_STEPS - 1) + ']':>12} {'max rel vs f64':>15}"
        print()
        print(hdr)
        print("-" * len(hdr))
        for v, l0, ln, r in rows:
            print(f"{v:<28} {l0:>12.8f} {ln:>12.8f} {r:>15.2e}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
