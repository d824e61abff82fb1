//===- GalvBase.td - galv dialect definition and enums -----*- tablegen -*-===//
//
// The galv dialect: Transformer training graphs with value semantics on
// statically shaped tensors, the layer structure the strategy search works on,
// and the attributes that carry costs, strategies and the plan configuration.
//
//===----------------------------------------------------------------------===//

#ifndef GALV_BASE_TD
#define GALV_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def Galv_Dialect : Dialect {
  let name = "galv";
  let cppNamespace = "::mlir::galv";
  let summary = "Transformer training graphs for automatic parallelism";
  let description = [{
    The `galv` dialect is the graph IR of galvatron. It models the forward
    computation of a Transformer model with value semantics on ranked tensors
    whose shapes are fully static. It has three layers of structure:

    * Graph ops close to what ONNX exports of Transformers contain
      (elementwise math, `matmul`, shape manipulation, `gather`, `softmax`,
      reductions, `where`, `cast`) and the recomposed ops the strategy passes
      reason about (`linear`, `embedding`, `layer_norm`, `rms_norm`, `gelu`,
      `silu`, `rotary`, `attention`, `cross_entropy`).
    * Named parameters: `galv.parameter` declares a weight at module level by
      the name it has in the model's state dict; `galv.get_parameter` reads it.
      The bytes live in the safetensors file named by the module attribute
      `galv.weights`; a module imported without its weights (shape-only, for
      planning) has the unit attribute `galv.shapes_only` instead.
    * Layers: a `galv.layer_type` holds the body shared by structurally
      identical Transformer blocks, and each `galv.layer` instance calls it
      with its own parameters and carries its own `#galv.strategy`. Costs are
      attached per layer type (`#galv.cost`); the module attribute `galv.plan`
      (`#galv.plan`) holds the global parallel configuration.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let hasConstantMaterializer = 1;
  let extraClassDeclaration = [{
    void registerAttributes();

    /// Module attribute naming the safetensors file that holds the weights.
    static constexpr ::llvm::StringLiteral getWeightsAttrName() {
      return ::llvm::StringLiteral("galv.weights");
    }
    /// Module unit attribute: the parameters have names, types and shapes
    /// but no bytes (galvatron-translate --shapes-only); it can be planned,
    /// not run.
    static constexpr ::llvm::StringLiteral getShapesOnlyAttrName() {
      return ::llvm::StringLiteral("galv.shapes_only");
    }
    /// Op attribute: the #galv.strategy of the layer an inlined op came from.
    static constexpr ::llvm::StringLiteral getStrategyAttrName() {
      return ::llvm::StringLiteral("galv.strategy");
    }
    /// Op attribute: the index of the layer instance an inlined op came from.
    static constexpr ::llvm::StringLiteral getLayerAttrName() {
      return ::llvm::StringLiteral("galv.layer");
    }
    /// Op attribute: the pipeline stage an op runs on (galv-partition).
    static constexpr ::llvm::StringLiteral getStageAttrName() {
      return ::llvm::StringLiteral("galv.stage");
    }
    /// Op attribute: the micro-batch an op of @train_step works on.
    static constexpr ::llvm::StringLiteral getMicroBatchAttrName() {
      return ::llvm::StringLiteral("galv.micro_batch");
    }
    /// Op attribute: an op of the backward pass (galv-autodiff).
    static constexpr ::llvm::StringLiteral getBackwardAttrName() {
      return ::llvm::StringLiteral("galv.backward");
    }
    /// galv.parameter attribute, a string: why a parameter that is not
    /// `trainable` is frozen (the import's rule, a --frozen pattern, or its
    /// absence from the state dict), for the layer summary.
    static constexpr ::llvm::StringLiteral getFrozenAttrName() {
      return ::llvm::StringLiteral("galv.frozen");
    }
    /// Op attribute: a forward op recomputed for a checkpointed layer.
    static constexpr ::llvm::StringLiteral getRecomputeAttrName() {
      return ::llvm::StringLiteral("galv.recompute");
    }
    /// get_parameter attribute, a #galv.grad_sync: the gradient is a
    /// partial sum over a data-parallel group, to be all-reduced or
    /// reduce-scattered (ZeRO-2) by the optimizer.
    static constexpr ::llvm::StringLiteral getGradSyncAttrName() {
      return ::llvm::StringLiteral("galv.grad_sync");
    }
    /// Function argument / result attribute: the #galv.shard a rank holds.
    static constexpr ::llvm::StringLiteral getShardAttrName() {
      return ::llvm::StringLiteral("galv.shard");
    }
    /// Module attribute holding the global #galv.plan configuration.
    static constexpr ::llvm::StringLiteral getPlanAttrName() {
      return ::llvm::StringLiteral("galv.plan");
    }
    /// Op attribute (galv-plan-memory): the arena offset of each result.
    static constexpr ::llvm::StringLiteral getOffsetsAttrName() {
      return ::llvm::StringLiteral("galv.offsets");
    }
    /// Function attribute (galv-plan-memory): a stage program's arena size.
    static constexpr ::llvm::StringLiteral getArenaBytesAttrName() {
      return ::llvm::StringLiteral("galv.arena_bytes");
    }
    /// Function argument / result attribute: the #galv.role of a step's
    /// input (galv-adamw), which plan.bin gives the runtime.
    static constexpr ::llvm::StringLiteral getRoleAttrName() {
      return ::llvm::StringLiteral("galv.role");
    }
    /// Function argument / result attribute beside a state #galv.role: the
    /// galv.parameter (a symbol) the state belongs to.
    static constexpr ::llvm::StringLiteral getParamAttrName() {
      return ::llvm::StringLiteral("galv.param");
    }
  }];
}

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Galv_DataParallelKind : I32EnumAttr<"DataParallelKind",
    "how data-parallel replicas hold model states", [
      I32EnumAttrCase<"ddp", 0>,
      I32EnumAttrCase<"zero2", 1>,
      I32EnumAttrCase<"zero3", 2>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_SequenceParallelKind : I32EnumAttr<"SequenceParallelKind",
    "sequence parallelism used together with the tensor-parallel group", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"megatron", 1>,
      I32EnumAttrCase<"ulysses", 2>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_PipelineSchedule : I32EnumAttr<"PipelineSchedule",
    "order of micro-batches in a pipeline", [
      I32EnumAttrCase<"gpipe", 0>,
      // Galvatron's name for 1F1B (one forward, one backward, then flush).
      I32EnumAttrCase<"pipedream_flush", 1>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_GradSyncKind : I32EnumAttr<"GradSyncKind",
    "how the optimizer sums a data-parallel partial gradient", [
      // DDP: every rank gets the whole sum.
      I32EnumAttrCase<"all_reduce", 0>,
      // ZeRO-2: each rank gets the sum of its flat piece.
      I32EnumAttrCase<"reduce_scatter", 1>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_ReduceKind : I32EnumAttr<"ReduceKind", "reduction kind", [
      I32EnumAttrCase<"sum", 0>,
      I32EnumAttrCase<"mean", 1>,
      I32EnumAttrCase<"max", 2>,
      I32EnumAttrCase<"min", 3>,
      I32EnumAttrCase<"prod", 4>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_ComparePredicate : I32EnumAttr<"ComparePredicate",
    "elementwise comparison", [
      I32EnumAttrCase<"eq", 0>,
      I32EnumAttrCase<"ne", 1>,
      I32EnumAttrCase<"lt", 2>,
      I32EnumAttrCase<"le", 3>,
      I32EnumAttrCase<"gt", 4>,
      I32EnumAttrCase<"ge", 5>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_GeluApproximation : I32EnumAttr<"GeluApproximation",
    "GELU formula: exact (erf) or the tanh approximation", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"tanh", 1>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_WeightLayout : I32EnumAttr<"WeightLayout",
    "layout of a linear weight: [out, in] (torch.nn.Linear) or [in, out] "
    "(GPT-2 Conv1D, ONNX MatMul)", [
      I32EnumAttrCase<"out_in", 0>,
      I32EnumAttrCase<"in_out", 1>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_LayerKind : I32EnumAttr<"LayerKind",
    "role of a layer type in the model", [
      I32EnumAttrCase<"encoder", 0>,
      I32EnumAttrCase<"decoder", 1>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

def Galv_InputRole : I32EnumAttr<"InputRole",
    "what a step's input is to the runtime", [
      I32EnumAttrCase<"data", 0>,
      I32EnumAttrCase<"learning_rate", 1>,
      I32EnumAttrCase<"step", 2>,
      I32EnumAttrCase<"parameter", 3>,
      I32EnumAttrCase<"adam_m", 4>,
      I32EnumAttrCase<"adam_v", 5>
    ]> {
  let cppNamespace = "::mlir::galv";
  let genSpecializedAttr = 0;
}

// Inside op formats these print as a bare keyword (`approximate = tanh`).
class Galv_EnumAttr<EnumAttrInfo enumInfo, string name>
    : EnumAttr<Galv_Dialect, enumInfo, name>;

def Galv_DataParallelKindAttr
    : Galv_EnumAttr<Galv_DataParallelKind, "data_parallel_kind">;
def Galv_SequenceParallelKindAttr
    : Galv_EnumAttr<Galv_SequenceParallelKind, "sequence_parallel_kind">;
def Galv_PipelineScheduleAttr
    : Galv_EnumAttr<Galv_PipelineSchedule, "pipeline_schedule">;
def Galv_ReduceKindAttr : Galv_EnumAttr<Galv_ReduceKind, "reduce_kind">;
def Galv_ComparePredicateAttr
    : Galv_EnumAttr<Galv_ComparePredicate, "compare_predicate">;
def Galv_GeluApproximationAttr
    : Galv_EnumAttr<Galv_GeluApproximation, "gelu_approximation">;
def Galv_WeightLayoutAttr : Galv_EnumAttr<Galv_WeightLayout, "weight_layout">;
// Only ever stands alone in an attribute dictionary: #galv.layer_kind<decoder>.
def Galv_LayerKindAttr : Galv_EnumAttr<Galv_LayerKind, "layer_kind"> {
  let assemblyFormat = "`<` $value `>`";
}
// An argument or result attribute: `{galv.role = #galv.role<parameter>}`.
def Galv_InputRoleAttr : Galv_EnumAttr<Galv_InputRole, "role"> {
  let assemblyFormat = "`<` $value `>`";
}

#endif // GALV_BASE_TD
