//===- Passes.td - galv pass declarations ------------------*- tablegen -*-===//

#ifndef GALVATRON_TRANSFORMS_PASSES_TD
#define GALVATRON_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def InlineLayers : Pass<"galv-inline-layers", "::mlir::ModuleOp"> {
  let summary = "Inline every layer instance into its caller";
  let description = [{
    Replaces each `galv.layer` with a copy of its layer type's body, the layer
    type's arguments bound to the instance's inputs and parameters, and then
    erases the layer types nobody calls any more. The result is a flat graph,
    the form that per-op analyses and the reference interpreter want. The
    instances' strategies and the module's `galv.plan` describe layers, so they
    go with them: run this before a strategy is assigned or after the passes
    that consume it.

    Before:

    ```mlir
    galv.layer_type @block(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32>
        attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"]} {
      %y = galv.mul %x, %w : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
      galv.return %y : tensor<4xf32>
    }
    func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
      %w = galv.get_parameter @w0 : tensor<4xf32>
      %y = galv.layer @block(%x) params(%w) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
      return %y : tensor<4xf32>
    }
    ```

    After:

    ```mlir
    func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
      %w = galv.get_parameter @w0 : tensor<4xf32>
      %y = galv.mul %x, %w : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
      return %y : tensor<4xf32>
    }
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"keepLayerTypes", "keep-layer-types", "bool", /*default=*/"false",
           "Keep layer types after their last instance is inlined">
  ];
}

def RecomposeLinear : Pass<"galv-recompose-linear", "::mlir::ModuleOp"> {
  let summary = "Recognise fully connected layers";
  let description = [{
    Rewrites a `galv.matmul` whose right operand is a 2-D parameter into
    `galv.linear` (layout `in_out`, or `out_in` when the parameter is read
    through a transpose), folds a following bias `galv.add` of a 1-D
    parameter into it, and drops the reshapes around a linear that only
    flatten and restore the leading dimensions (the Reshape -> Gemm ->
    Reshape form).

    ```mlir
    %y = galv.matmul %x, %w : tensor<2x8x32xf32>, tensor<32x64xf32> -> tensor<2x8x64xf32>
    %z = galv.add %y, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
    // becomes
    %z = galv.linear %x, %w, %b layout = in_out : tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def RecomposeEmbedding : Pass<"galv-recompose-embedding", "::mlir::ModuleOp"> {
  let summary = "Recognise embedding lookups";
  let description = [{
    Rewrites `galv.gather` along axis 0 of a 2-D parameter into
    `galv.embedding`, the form vocabulary parallelism splits.

    ```mlir
    %h = galv.gather %wte[%ids] axis = 0 : tensor<128x32xf32>, tensor<2x8xi64> -> tensor<2x8x32xf32>
    // becomes
    %h = galv.embedding %wte[%ids] : tensor<128x32xf32>, tensor<2x8xi64> -> tensor<2x8x32xf32>
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def RecomposeActivations : Pass<"galv-recompose-activations", "::mlir::ModuleOp"> {
  let summary = "Recognise GELU (erf and tanh forms) and SiLU";
  let description = [{
    `0.5 x (1 + erf(x / sqrt(2)))` becomes `galv.gelu`,
    `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` becomes
    `galv.gelu approximate = tanh`, and `x * sigmoid(x)` becomes `galv.silu`,
    whatever the order of the factors.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def RecomposeNorms : Pass<"galv-recompose-norms", "::mlir::ModuleOp"> {
  let summary = "Recognise decomposed layer norm and RMS norm";
  let description = [{
    `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * w + b` over the last
    dimension becomes `galv.layer_norm`; `x / sqrt(mean(x^2) + eps) * w` (with
    the reciprocal written as Reciprocal, 1/..., or rsqrt) becomes
    `galv.rms_norm`.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def RecomposeRotary : Pass<"galv-recompose-rotary", "::mlir::ModuleOp"> {
  let summary = "Recognise rotary position embeddings";
  let description = [{
    `x * cos + rotate_half(x) * sin`, where `rotate_half(x)` concatenates the
    negated second half of the last dimension with the first half (Hugging
    Face LLaMA), becomes `galv.rotary`.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def NormalizeViews : Pass<"galv-normalize-views", "::mlir::ModuleOp"> {
  let summary = "Rewrite views into the forms tensor parallelism follows";
  let description = [{
    A reshape that merges dimensions (`[B, H, S, D] -> [B * H, S, D]`,
    `[S, B, E] -> [S, B * H, D]`, `[B, S, E] -> [B * S, E]`) moves below the
    ops that treat the merged dimensions alike (elementwise ops, norms,
    softmax and linear along the last dimension, transposes, batched
    matmuls), where it meets its inverse and folds away: a split dimension
    merged with another is no block of the merged one. A slice or a gather
    by constant consecutive indices that takes a part out of a fused
    projection through reshapes and transposes becomes a slice of the
    projection's last dimension, then the views, so that partitioning cuts
    the projection per part.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def RecomposeAttention : Pass<"galv-recompose-attention", "::mlir::ModuleOp"> {
  let summary = "Recognise scaled dot-product attention";
  let description = [{
    `softmax(q k^T * scale + mask) v` becomes `galv.attention`. The key may
    arrive transposed in one step from `[B, S, H, D]`; keys and values that
    are repeated across query-head groups (Hugging Face `repeat_kv`: reshape,
    expand, reshape) are used unrepeated, giving grouped-query attention. A
    constant additive mask that is exactly causal becomes the `causal` flag;
    any other mask stays an operand.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def OutlineLayers : Pass<"galv-outline-layers", "::mlir::ModuleOp"> {
  let summary = "Outline repeated Transformer blocks into layer types";
  let description = [{
    Finds, in `func.func @forward`, the longest run of consecutive segments
    of identical structure (same ops, attributes, types and wiring; parameter
    names do not matter) and outlines it: one `galv.layer_type` holds the
    body, each segment becomes a `galv.layer` instance passing its own
    parameters. Repeats on what is left, so models with two block types
    (encoder and decoder) get two layer types. Segments must read parameters
    and hold at least `min-ops` ops. Where a block starts is chosen so that
    the most whole blocks fit and the fewest values cross the cut.

    Parameter names in `param_names` are the part that every instance's name
    shares after the varying prefix (`attn.c_attn.weight` for
    `transformer.h.N.attn.c_attn.weight`), or `param<i>` when the names have
    no such structure.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"minOps", "min-ops", "unsigned", /*default=*/"4",
           "Fewest ops a layer may hold">
  ];
}

def AppendLoss : Pass<"galv-append-loss", "::mlir::ModuleOp"> {
  let summary = "Add the training loss of a causal language model";
  let description = [{
    Adds `func.func @loss` taking the inputs of `@forward` and returning the
    next-token cross-entropy (mean over positions): logits `[B, S, V]` at
    positions `0 .. S-2` against the token ids (the first input, `[B, S]`)
    at `1 .. S-1`, as Hugging Face computes with `labels = input_ids`. The
    body is a copy of `@forward`'s, which must have its layers inlined.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
}

def ApplyStrategy : Pass<"galv-apply-strategy", "::mlir::ModuleOp"> {
  let summary = "Set the parallel strategy from a Galvatron config or flags";
  let description = [{
    Attaches `#galv.plan` to the module and a `#galv.strategy` to every layer
    instance, from either a Galvatron strategy file (`config=` a
    `galvatron_config_*.json` with pp_deg, tp_sizes_enc,
    tp_consecutive_flags, dp_types_enc, use_sp, checkpoint, global_bsz,
    chunks, pp_division, pipeline_type, default_dp_type, vtp, vsp,
    embed_sdp) or Galvatron's GLOBAL-mode flags (`pp`, `tp`, `tp-consec`,
    `sdp`, `checkpoint`, `chunks`, `pipeline`, `dp-type`, `vocab-tp`,
    `vocab-sp`, `sp`,
    `global-batch`); `tp`, `tp-consec`, `sdp`, `sp` and `checkpoint` take one
    value for all layers or one per layer (a mixed strategy). `world-size`
    is the number of ranks. A strategy that does not fit (degrees that do
    not divide the world, heads or hidden sizes, a batch that is not
    chunks x the imported batch x data-parallel ranks...) is refused with
    the reason.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"configPath", "config", "std::string", /*default=*/"",
           "Galvatron strategy file (galvatron_config_*.json)">,
    Option<"worldSize", "world-size", "int64_t", /*default=*/"1",
           "Number of ranks">,
    Option<"pp", "pp", "int64_t", /*default=*/"1", "Pipeline stages">,
    ListOption<"ppDivision", "pp-division", "int64_t",
               "Layers per stage (default: an even split)">,
    ListOption<"tp", "tp", "int64_t",
               "Tensor-parallel degree, for all layers or per layer">,
    ListOption<"tpConsec", "tp-consec", "int64_t",
               "1: TP groups of consecutive ranks, 0: strided">,
    ListOption<"sdp", "sdp", "int64_t",
               "1: ZeRO-3 for the layer instead of the default dp type">,
    ListOption<"sp", "sp", "std::string",
               "Sequence parallelism: none, megatron or ulysses">,
    ListOption<"checkpoint", "checkpoint", "int64_t",
               "1: recompute the layer's activations in the backward pass">,
    Option<"chunks", "chunks", "int64_t", /*default=*/"1",
           "Micro-batches per step">,
    Option<"globalBatch", "global-batch", "int64_t", /*default=*/"0",
           "Global batch size (0: the imported batch x chunks)">,
    Option<"pipeline", "pipeline", "std::string", /*default=*/"\"gpipe\"",
           "Pipeline schedule: gpipe or pipedream_flush (1F1B)">,
    Option<"dpType", "dp-type", "std::string", /*default=*/"\"ddp\"",
           "Default data-parallel kind: ddp, zero2 or zero3">,
    Option<"vocabTp", "vocab-tp", "int64_t", /*default=*/"1",
           "Tensor-parallel degree of the embedding and head">,
    Option<"vocabSp", "vocab-sp", "bool", /*default=*/"false",
           "Sequence parallelism (Megatron's) for the embedding and head">,
    Option<"embedSdp", "embed-sdp", "bool", /*default=*/"false",
           "ZeRO-3 for the embedding and head">,
    Option<"megatronSp", "megatron-sp", "bool", /*default=*/"false",
           "With config=: Megatron sequence parallelism for tp layers "
           "without use_sp (Galvatron's --sequence_parallel)">
  ];
}

def AnnotateCosts : Pass<"galv-annotate-costs", "::mlir::ModuleOp"> {
  let summary = "Attach cost attributes to every layer type and the module";
  let description = [{
    Sets `#galv.cost` on every layer type and `#galv.model_cost` on the
    module (`galv.costs`), the inputs of the cost model that galv-search and
    galv-estimate price strategies with. `hardware` is a hw.json (written by
    `galvatron-profile hardware`), a directory of Galvatron's hardware
    files or `preset:NAME` (presets/hardware/). With `model=native` (the
    default) the costs come from the op interfaces: every op's FLOPs and
    bytes (CostOpInterface) against the hardware's GEMM rate and memory
    bandwidth (a roofline: the slower of the two), parameter bytes from the
    parameters, activation bytes per sample from the results each layer
    keeps for its backward pass (split over the tensor-parallel degree, as
    with Megatron's sequence parallelism), a checkpointed layer keeping its
    input. With `model=galvatron`, `profile=computation.json,memory.json`
    (Galvatron's model profiles) supplies them instead, and the passes that
    price strategies read those files (Galvatron 2.4.0's model exactly).
    `precision` (fp32 or bf16) sets the GEMM rate and activation width.
    Formulas: docs/COSTMODEL.md, "The native model".
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"hardware", "hardware", "std::string", /*default=*/"",
           "hw.json, a directory of Galvatron's files, or preset:NAME">,
    Option<"profile", "profile", "std::string", /*default=*/"",
           "Galvatron's computation and memory profiles, comma separated">,
    Option<"model", "model", "std::string", /*default=*/"\"native\"",
           "native or galvatron">,
    Option<"precision", "precision", "std::string", /*default=*/"\"fp32\"",
           "fp32 or bf16">,
    Option<"exportProfile", "export-profile", "std::string",
           /*default=*/"\"\"",
           "Native costs: also write them as Galvatron's model profiles "
           "(computation_profiling_*, memory_profiling_*) into this "
           "directory">
  ];
}

def Search : Pass<"galv-search", "::mlir::ModuleOp"> {
  let summary = "Find the fastest strategy that fits and apply it";
  let description = [{
    Searches the hybrid-parallel space (pipeline degree, per-layer tensor
    and data parallelism with consecutive or strided groups, DDP / ZeRO-2 /
    ZeRO-3, Megatron or Ulysses sequence parallelism, checkpointing, chunks,
    vocabulary tp and ZeRO for the embedding and head, GPipe or 1F1B) for
    the strategy with the best predicted throughput whose every stage fits
    `memory-gb` per device, under the costs galv-annotate-costs attached
    (exact dynamic program over layers: docs/SEARCH.md), and applies it as
    galv-apply-strategy would. When nothing fits it fails and names the
    smallest memory per device that would. The imported batch is the
    micro-batch: global batches are the imported batch times a chunk count.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"worldSize", "world-size", "int64_t", /*default=*/"1",
           "Number of devices (ranks)">,
    Option<"memoryGb", "memory-gb", "double", /*default=*/"0",
           "Memory per device in GB (GiB, as Galvatron)">,
    Option<"nodes", "nodes", "int64_t", /*default=*/"0",
           "Nodes (default: the hardware spec's)">,
    Option<"globalBatch", "global-batch", "std::string", /*default=*/"\"\"",
           "B or MIN:MAX (default: the imported batch)">,
    Option<"space", "space", "std::string", /*default=*/"\"full\"",
           "full, dp+tp, dp+pp, 3d, dp, sdp, tp or pp">,
    Option<"sp", "sp", "std::string", /*default=*/"\"megatron\"",
           "none, megatron, ulysses or both">,
    Option<"maxTp", "max-tp", "int64_t", /*default=*/"8",
           "Largest tensor-parallel degree">,
    Option<"tpConsec", "tp-consec", "std::string", /*default=*/"\"both\"",
           "0 (strided), 1 (consecutive) or both">,
    Option<"pipeline", "pipeline", "std::string",
           /*default=*/"\"pipedream_flush\"",
           "gpipe, pipedream_flush or both">,
    Option<"recompute", "recompute", "int64_t", /*default=*/"1",
           "1: checkpointing may be chosen per layer, 0: never">,
    Option<"division", "division", "std::string", /*default=*/"\"even\"",
           "Layers per stage: even (Galvatron's split) or search (searched "
           "jointly with the strategies)">,
    Option<"threads", "threads", "int64_t", /*default=*/"0",
           "Search threads (0: every core)">,
    Option<"top", "top", "int64_t", /*default=*/"5",
           "Alternatives kept for the report">,
    Option<"report", "report", "std::string", /*default=*/"\"\"",
           "Write the report here (.html, .md or .json; several, comma separated)">,
    Option<"verifyMemory", "verify-memory", "bool", /*default=*/"true",
           "Native model: lower the best candidates and keep the first whose "
           "exact plan memory (arena and bound tensors) fits">,
    Option<"training", "training", "std::string", /*default=*/"\"\"",
           "Training-pipeline options the verification lowers with">,
    ListOption<"chunks", "chunks", "int64_t",
               "With apply=0: the chunk counts to try (default: every power "
               "of two up to the batch)">,
    Option<"apply", "apply", "bool", /*default=*/"true",
           "0: search and report only (the plan may need another import "
           "batch: every layer's data-parallel degree must split it)">
  ];
}

def Estimate : Pass<"galv-estimate", "::mlir::ModuleOp"> {
  let summary = "Predict the step time, memory and traffic of the strategy";
  let description = [{
    Prices the module's strategy (galv-apply-strategy or galv-search) under
    the costs galv-annotate-costs attached: prints a table (time per step,
    samples per second, per stage time and peak memory) and, with `out=`,
    writes the same as JSON (`step_time_s`, `samples_per_s`, `stages` with
    `time_s` and `peak_memory_bytes`, and per rank `bytes_sent` by
    collective kind and group). The bytes are exact: a copy of the module
    is lowered with the training pipeline and every collective's message is
    counted as the runtime counts it. The module is unchanged.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"out", "out", "std::string", /*default=*/"\"\"",
           "Write the estimate as JSON here">,
    Option<"memoryGb", "memory-gb", "double", /*default=*/"0",
           "Memory per device for the allocator reserve (0: none)">,
    Option<"traffic", "traffic", "bool", /*default=*/"true",
           "Count the bytes each rank sends (lowers a copy of the module)">,
    Option<"training", "training", "std::string", /*default=*/"\"\"",
           "Options of the training pipeline the copy is lowered with, as "
           "--galv-training-pipeline takes them (e.g. 'clip-norm=1')">,
    Option<"trace", "trace", "std::string", /*default=*/"\"\"",
           "Write the played-out step here as galvatron-run --trace writes "
           "a measured one (trace-rankR.json, Chrome trace events, one "
           "per instruction with its kernel class), to set beside it">
  ];
}

def ExportConfig : Pass<"galv-export-config", "::mlir::ModuleOp"> {
  let summary = "Write the module's strategy as a Galvatron config file";
  let description = [{
    Writes `#galv.plan` and the layer strategies to `path` in Galvatron's
    `galvatron_config_*.json` format (the keys galv-apply-strategy reads),
    atomically. The module is unchanged.
  }];
  let options = [
    Option<"path", "path", "std::string", /*default=*/"",
           "Where to write the JSON file">
  ];
}

def Partition : Pass<"galv-partition", "::mlir::ModuleOp"> {
  let summary = "Rewrite @loss into the program each rank runs";
  let description = [{
    With a `galv.plan` of more than one rank, rewrites `@loss` (layers
    inlined; each op carries its layer's `galv.strategy`, the embedding and
    head use `vocab_tp` and the remaining devices for data parallelism) into
    the SPMD program of one rank: the batch is split over each op's
    data-parallel group (the data inputs get a `galv.shard` the runtime cuts
    by), Megatron tensor parallelism splits linears column then row with
    `galv.replicate` (f) before and `galv.all_reduce` (g) after, attention
    runs on this rank's heads, fused QKV projections are cut per part,
    values are regathered and resliced where adjacent layers split them
    differently, and parameters are read as shards (`get_parameter ...
    shard`): ZeRO-3 parameters are flat shards gathered on use, DDP and
    ZeRO-2 parameters are marked `galv.grad_sync` (a `#galv.grad_sync`)
    for galv-sync-gradients. The loss is averaged over data-parallel ranks.
    Collective groups are `#galv.group<size, stride>` within a stage;
    galvatron-translate --emit-plan resolves them per rank. Megatron
    sequence parallelism splits the activations between layers along the
    sequence (all-gather before the column-parallel linear, reduce-scatter
    after the row-parallel one); Ulysses keeps the
    weights whole on a split sequence and trades it for split heads around
    attention (all-to-all). With `vocab_tp` the embedding table and the head
    are split along the vocabulary, with a vocabulary-parallel
    cross-entropy; `vocab_sp` adds Megatron sequence parallelism to them. With pipeline stages every op is tagged `galv.stage` (its
    layer's stage; the embedding on the first, the head and loss on the
    last) and values crossing stages pass through `galv.stage_transfer`
    (a tied embedding read by the head too); --emit-plan gives each rank
    its stage's ops, ordered by the plan's schedule.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
}

def Autocast : Pass<"galv-autocast", "::mlir::ModuleOp"> {
  let summary = "bf16 mixed precision where PyTorch's autocast uses it";
  let description = [{
    Rewrites every function so that it computes as its PyTorch original does
    under `torch.autocast(dtype=torch.bfloat16)`: the ops whose
    `AutocastOpInterface` says bf16 (matmul, linear, attention) get bf16
    operands and results, the ones it says fp32 (norms, softmax, losses,
    reductions, exp, log, pow) get fp32 operands, and every other op
    computes in the widest floating type of its operands, so that a GELU
    between two linears stays bf16 and a residual add is fp32. Conversions
    are `galv.cast` ops that carry the attributes (stage, layer, strategy)
    of the op they feed. Parameters stay fp32 (master weights); autodiff's
    rule for the casts gives them fp32 gradients. Function signatures are
    kept: results are converted back where they leave.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
}

def Autodiff : Pass<"galv-autodiff", "::mlir::ModuleOp"> {
  let summary = "Reverse-mode differentiation of the loss";
  let description = [{
    Adds `func.func @loss_grad`, which returns `@loss`'s value followed by
    the gradient of the loss with respect to every trainable parameter, in
    declaration order (each result carries `galv.grad_of = "name"`). The
    backward computation is emitted as galv ops, one gradient rule per op,
    only along values that depend on trainable parameters. Ops without a
    rule (or rule limits, such as strided slices) are reported at their
    location.
  }];
  let options = [
    Option<"fusedBackward", "fused-backward", "bool", /*default=*/"true",
           "Differentiate cross-entropy, layer norm and RMS norm with one "
           "fused gradient op each (false: chains of elementwise and reduce "
           "ops, as a baseline)">,
    Option<"fusedAttention", "fused-attention", "bool", /*default=*/"true",
           "Differentiate galv.attention as one galv.attention_grad (false: "
           "matmuls and a softmax that keep the [B, H, Sq, Sk] scores)">
  ];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
}

def FuseResidualNorm : Pass<"galv-fuse-residual-norm", "::mlir::ModuleOp"> {
  let summary = "A residual add and the norm that reads it as one galv.add_norm";
  let description = [{
    Rewrites `%s = galv.add %x, %r` and a `galv.layer_norm` or
    `galv.rms_norm` of `%s` into one `galv.add_norm` that gives both the sum
    (the residual stream, which later ops read) and its norm, so that a
    backend reads the sum from registers instead of writing it and reading
    it back. Only adds of two operands of the result's shape and type, in
    the norm's block, whose other readers all come after the norm, with the
    same stage, micro-batch and recomputation marks. Runs after partitioning
    and autodiff (the training pipeline runs it before planning; either
    pipeline's `fuse-norms=false` leaves the ops apart).
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def FoldTransposes : Pass<"galv-fold-transposes", "::mlir::ModuleOp"> {
  let summary = "Transposes of the last two dimensions become GEMM flags";
  let description = [{
    A `galv.transpose` that swaps only the last two dimensions of a
    `galv.matmul` operand is folded into the matmul's `transpose_lhs` /
    `transpose_rhs` flag, which the kernels pass to GEMM, so the transposed
    copy is never written. Transposes left without users are erased. Runs
    after partitioning and autodiff (their rules read unflagged matmuls);
    the training pipeline runs it last before planning.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def AccumulateMicroBatches
    : Pass<"galv-accumulate-micro-batches", "::mlir::ModuleOp"> {
  let summary = "The batch's gradient: @loss_grad over the micro-batches";
  let description = [{
    Adds `func.func @batch_grad(data..., params...) -> (loss, grads...)`,
    the first of the optimizer's four passes (then galv-sync-gradients,
    galv-clip-gradients, galv-adamw). Each data input holds `micro-batches`
    batches of the imported size stacked along its leading dimension;
    `@loss_grad` is inlined once per micro-batch with the trainable
    parameters read from arguments, and the losses and gradients are
    averaged. Ops are tagged with their micro-batch (`galv.micro_batch`) and
    the accumulation as backward, for the pipeline schedules. A parameter
    argument names its parameter (`galv.param = @name`) and carries how
    `@loss_grad` read it (`galv.shard`, `galv.stage`, `galv.grad_sync`). With
    a strategy, micro-batches=1 means the strategy's chunks. A weight read on
    another pipeline stage moves once per step, and its gradient coming back
    is summed over the micro-batches before it is sent.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"microBatches", "micro-batches", "unsigned", /*default=*/"1",
           "Micro-batches per step: the data inputs stack this many batches "
           "of the imported size; gradients are accumulated and averaged">
  ];
}

def SyncGradients : Pass<"galv-sync-gradients", "::mlir::ModuleOp"> {
  let summary = "Data-parallel gradient synchronisation of @batch_grad";
  let description = [{
    Every gradient result of `@batch_grad` whose parameter argument carries
    `galv.grad_sync` is a partial sum over a data-parallel group: DDP
    all-reduces it; ZeRO-2 reduce-scatters it flattened and zero-padded to a
    multiple of the group, so the rank holds its piece. The attribute moves
    from the argument to the result it synchronised; galv-clip-gradients and
    galv-adamw refuse gradients still unsynchronised.

    ```mlir
    // before: argument {galv.grad_sync =
    //     #galv.grad_sync<all_reduce, group = <size = 2, stride = 1>>}
    %s = galv.all_reduce sum %g group = <size = 2, stride = 1> : tensor<8x8xf32>
    return %loss, %s  // result {galv.grad_sync = (the same)}
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
}

def ClipGradients : Pass<"galv-clip-gradients", "::mlir::ModuleOp"> {
  let summary = "Global-norm clipping of @batch_grad's gradients";
  let description = [{
    Scales every gradient by `min(1, clip-norm / (||g|| + 1e-6))`, where
    `||g||` is the L2 norm over all parameters' whole gradients (as
    `torch.nn.utils.clip_grad_norm_`). Ranks hold pieces: a piece held alike
    by c ranks of a stage counts 1/c, each stage all-reduces its sum, the
    stages send theirs to the last stage, which broadcasts the factor. Runs
    after galv-sync-gradients.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"clipNorm", "clip-norm", "double", /*default=*/"1.0",
           "The global L2 norm to clip the gradients to">
  ];
}

def AdamW : Pass<"galv-adamw", "::mlir::ModuleOp"> {
  let summary = "One AdamW training step as a function of the state";
  let description = [{
    Replaces `@batch_grad` with `func.func @train_step(data..., %lr, %step,
    params..., m..., v...) -> (loss, params..., m..., v...)`: the batch's
    gradients and the AdamW update with decoupled weight decay (as
    torch.optim.AdamW: `p = p (1 - lr wd) - lr m^ / (sqrt(v^) + eps)`, bias
    corrections `1 - beta^step`). A ZeRO-2 parameter (its gradient result
    reduce-scattered) updates this rank's piece, keeps its moments as that
    piece, and all-gathers the new parameter. Parameters and moments are
    arguments and results, so the function is pure; the runtime feeds the
    new state back in. Every argument and result is named by `galv.name`:
    the data inputs keep their ONNX names, then `lr`, `step`,
    `param:<name>`, `adam_m:<name>`, `adam_v:<name>`; the results are `loss`
    and the new state under the same names. The names are for people: what
    each argument is to the runtime is its `galv.role`
    (`#galv.role<learning_rate>`, `step`, `parameter`, `adam_m`, `adam_v`;
    data inputs have none) and, for state, `galv.param` (the
    `galv.parameter` it belongs to). A state result carries its argument's
    role and parameter, which --emit-plan turns into the plan's input roles
    and feedback pairs. `lr` and `step` (from 1) are
    scalars the runtime supplies, so the learning-rate schedule lives in the
    runtime. Each parameter's update is one `galv.adamw_update` (one pass
    over its four arrays) unless `fused=false`.
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "First moment decay">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999",
           "Second moment decay">,
    Option<"epsilon", "eps", "double", /*default=*/"1e-8",
           "Added to the denominator">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.01",
           "Decoupled weight decay">,
    Option<"fused", "fused", "bool", /*default=*/"true",
           "One galv.adamw_update per parameter (false: the same arithmetic "
           "as separate elementwise ops)">
  ];
}

def AssignStages : Pass<"galv-assign-stages", "::mlir::ModuleOp"> {
  let summary = "Make the pipeline stage of every op explicit";
  let description = [{
    Tags every op of `@function` with the pipeline stage it runs on
    (`galv.stage`), so galv-schedule and --emit-plan read it instead of
    deriving it. An op runs on the stage of its staged operands (a
    `galv.stage_transfer` result lives on its `to` stage), else on the stage
    its own tag names; an op with neither (arithmetic on arguments and
    constants, such as a parameter's weight decay) runs on the stage of its
    users when they all agree. Ops left untagged run on every stage;
    transfers and broadcasts name their stages themselves. An op that reads
    values of two stages without a transfer is an error at its location.

    Before (`%d` reads only an argument, its user runs on stage 1):

    ```mlir
    %a = galv.tanh %x {galv.stage = 0 : i64} : tensor<4xf32>
    %b = galv.stage_transfer %a from = 0 to = 1 : tensor<4xf32>
    %c = galv.exp %b : tensor<4xf32>
    %d = galv.neg %x : tensor<4xf32>
    %e = galv.add %c, %d : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
    ```

    After:

    ```mlir
    %a = galv.tanh %x {galv.stage = 0 : i64} : tensor<4xf32>
    %b = galv.stage_transfer %a from = 0 to = 1 : tensor<4xf32>
    %c = galv.exp %b {galv.stage = 1 : i64} : tensor<4xf32>
    %d = galv.neg %x {galv.stage = 1 : i64} : tensor<4xf32>
    %e = galv.add %c, %d {galv.stage = 1 : i64} : ...
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"forward\"",
           "The function the plan is made from (forward, train_step)">
  ];
}

def Schedule : Pass<"galv-schedule", "::mlir::ModuleOp"> {
  let summary = "One function per pipeline stage, ops in schedule order";
  let description = [{
    After galv-assign-stages, adds `@<function>_stage<s>` for every pipeline
    stage `s` of the module's `#galv.plan` (one stage without a plan): the
    ops that run on stage `s`, in the order its ranks execute them: what
    precedes the micro-batches, joined by every constant and parameter read
    (they are not instructions), then each micro-batch's forward (ops tagged
    `galv.micro_batch`) and
    backward (also `galv.backward`) pass in the schedule's order, then the
    rest (gradient sync, the optimizer). GPipe runs every forward, then
    every backward; 1F1B (`pipedream_flush`) runs `stages - s - 1` forwards
    ahead, then alternates one forward and one backward, then drains.

    A `galv.stage_transfer` becomes `galv.send` on its `from` stage and
    `galv.recv` on its `to` stage; a `galv.stage_broadcast` sends from its
    stage to every other one. `galv.replicate` (an identity for the
    forward) disappears. Results that are not fresh buffers (arguments,
    weights, constants, a value returned twice) get a `galv.copy`. The stage
    function takes the arguments its ops read (both ends of a transfer name
    its input), returns the results that live on its stage, and names each
    argument and result with `galv.name`; `galv.stage` on it names its
    stage. `@<function>` itself is left as it was.

    Before (`#galv.plan<world_size = 2, pp = 2, ..., chunks = 2,
    schedule = pipedream_flush>`; `f`/`b` stand for the micro-batch and
    backward tags):

    ```mlir
    func.func @train_step(%x: tensor<4xf32>) -> tensor<4xf32> {
      %a0 = galv.tanh %x {galv.stage = 0, f0}          // forward 0
      %t0 = galv.stage_transfer %a0 from = 0 to = 1    // f0
      %a1 = galv.tanh %x {galv.stage = 0, f1}          // forward 1
      %t1 = galv.stage_transfer %a1 from = 0 to = 1    // f1
      %g0 = galv.exp %t0 {galv.stage = 1, b0}          // backward 0
      %g1 = galv.exp %t1 {galv.stage = 1, b1}          // backward 1
      %s = galv.add %g0, %g1 {galv.stage = 1}
      return %s : tensor<4xf32>
    }
    ```

    After (stage 0 runs one forward ahead, stage 1 none; GPipe would run
    both forwards first on every stage):

    ```mlir
    func.func @train_step_stage0(%x: tensor<4xf32> {galv.name = "x"})
        attributes {galv.stage = 0 : i64} {
      %a0 = galv.tanh %x
      %0 = galv.send %a0 to = 1 : tensor<4xf32> -> tensor<1xf32>
      %a1 = galv.tanh %x
      %1 = galv.send %a1 to = 1 : tensor<4xf32> -> tensor<1xf32>
      return
    }
    func.func @train_step_stage1() -> (tensor<4xf32> {galv.name = "output0"})
        attributes {galv.stage = 1 : i64} {
      %t0 = galv.recv from = 0 : tensor<4xf32>
      %g0 = galv.exp %t0
      %t1 = galv.recv from = 0 : tensor<4xf32>
      %g1 = galv.exp %t1
      %s = galv.add %g0, %g1
      return %s : tensor<4xf32>
    }
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"function", "function", "std::string", /*default=*/"\"forward\"",
           "The function the plan is made from (forward, train_step)">
  ];
}

def PlanMemory : Pass<"galv-plan-memory", "::mlir::ModuleOp"> {
  let summary = "Place every buffer of each stage program in its arena";
  let description = [{
    For every stage function galv-schedule made (`galv.stage` on the
    function), walks the instructions in order (every op but constants and
    parameter reads, which are not arena buffers) and places each result
    first-fit among the arena slots alive at that point, each slot a
    multiple of 64 bytes (at least 64). An instruction's results are placed
    before its inputs that die there are freed, since a kernel reads its
    inputs while it writes its outputs; the function's results stay alive to
    the end. Each instruction gets `galv.offsets` (the byte offset of each
    result) and the function gets `galv.arena_bytes`, the last byte any
    buffer touches: the peak the runtime's high-water mark must equal.

    Before:

    ```mlir
    func.func @forward_stage0(%x: tensor<16x16xf32>) -> tensor<16x16xf32>
        attributes {galv.stage = 0 : i64} {
      %a = galv.tanh %x : tensor<16x16xf32>
      %b = galv.exp %a : tensor<16x16xf32>
      %c = galv.neg %b : tensor<16x16xf32>
      return %c : tensor<16x16xf32>
    }
    ```

    After (`%c` reuses `%a`'s slot):

    ```mlir
    func.func @forward_stage0(%x: tensor<16x16xf32>) -> tensor<16x16xf32>
        attributes {galv.arena_bytes = 2048 : i64, galv.stage = 0 : i64} {
      %a = galv.tanh %x {galv.offsets = array<i64: 0>} : tensor<16x16xf32>
      %b = galv.exp %a {galv.offsets = array<i64: 1024>} : tensor<16x16xf32>
      %c = galv.neg %b {galv.offsets = array<i64: 0>} : tensor<16x16xf32>
      return %c : tensor<16x16xf32>
    }
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // GALVATRON_TRANSFORMS_PASSES_TD
