//===- GalvAttrs.td - costs, strategies, plan config -------*- tablegen -*-===//

#ifndef GALV_ATTRS_TD
#define GALV_ATTRS_TD

include "Galv/GalvBase.td"

class Galv_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Galv_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

// A double printed so that it parses back to the same bits.
// Stored as an APFloat (which has a hash); read it with convertToDouble().
class Galv_DoubleParameter<string desc> : APFloatParameter<desc> {
  let parser = [{ ::mlir::galv::parseDoubleParameter($_parser) }];
  let printer = [{
    ::mlir::galv::printDoubleParameter($_printer, $_self.convertToDouble())
  }];
}

// A bool written `true` / `false`.
class Galv_BoolParameter<string desc, string default>
    : DefaultValuedParameter<"bool", default, desc> {
  let parser = [{ ::mlir::galv::parseBoolParameter($_parser) }];
  let printer = [{ $_printer << ($_self ? "true" : "false") }];
}

// A bracketed list of integers: `[1, 2, 4]`.
class Galv_I64ArrayParameter<string desc>
    : ArrayRefParameter<"int64_t", desc> {
  let parser = [{ ::mlir::galv::parseI64ArrayParameter($_parser) }];
  let printer = [{ ::mlir::galv::printI64ArrayParameter($_printer, $_self) }];
}

def Galv_LayerCostAttr : Galv_Attr<"LayerCost", "cost"> {
  let summary = "profiled or estimated costs of one layer type";
  let description = [{
    The cost model inputs for a layer type, in Galvatron's units: forward time
    in milliseconds per sample, backward time as a multiple of forward time,
    parameter bytes (full, unsharded), activation bytes kept for backward per
    sample at each tensor-parallel degree, and the bytes a checkpointed layer
    keeps per sample (its input).

    ```mlir
    #galv.cost<forward_ms = 0.35, backward_ratio = 2.0,
               parameter_bytes = 28311552, tp_degrees = [1, 2, 4],
               activation_bytes = [50331648, 29360128, 18874368],
               checkpoint_bytes = 4194304>
    ```
  }];
  let parameters = (ins
    Galv_DoubleParameter<"forward time per sample (ms)">:$forward_ms,
    Galv_DoubleParameter<"backward time / forward time">:$backward_ratio,
    "int64_t":$parameter_bytes,
    Galv_I64ArrayParameter<"tensor-parallel degrees profiled">:$tp_degrees,
    Galv_I64ArrayParameter<"activation bytes per sample per degree">:
        $activation_bytes,
    "int64_t":$checkpoint_bytes
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Activation bytes per sample at tensor-parallel degree `tp`, or
    /// std::nullopt when that degree was not profiled.
    std::optional<int64_t> getActivationBytesAt(int64_t tp) const;
  }];
}

def Galv_ModelCostAttr : Galv_Attr<"ModelCost", "model_cost"> {
  let summary = "where a module's costs come from, and its embedding and head";
  let description = [{
    Set by `galv-annotate-costs` on the module beside a `#galv.cost` on every
    layer type. `hardware` is the spec the costs were computed against (a
    hw.json path, a directory of Galvatron's files or `preset:NAME`), read
    again by the passes that price strategies; `model` is `native` (costs
    from the op interfaces against the hardware's rates) or `galvatron`
    (`profile` names Galvatron's computation and memory files, comma
    separated); `precision` is `fp32` or `bf16`. The rest describes the
    layers outside the layer instances ("other" layers in Galvatron): the
    forward time per sample of the embedding and head together, and per
    vocabulary tensor-parallel degree the parameter bytes one rank holds
    and the activation bytes per sample, for the first (embedding) and the
    last (head and loss) pipeline stage.

    ```mlir
    #galv.model_cost<hardware = "preset:dgx-h100-1n", model = "native",
        precision = "bf16", profile = "", other_forward_ms = 0.02,
        vocab_tp_degrees = [1, 2], first_parameter_bytes = [524288, 262144],
        last_parameter_bytes = [524288, 262144],
        first_activation_bytes = [8192, 8192],
        last_activation_bytes = [32768, 16384]>
    ```
  }];
  let parameters = (ins
    StringRefParameter<"hardware spec">:$hardware,
    StringRefParameter<"native or galvatron">:$model,
    StringRefParameter<"fp32 or bf16">:$precision,
    StringRefParameter<"Galvatron profiles (computation,memory)">:$profile,
    Galv_DoubleParameter<"embedding and head forward ms per sample">:
        $other_forward_ms,
    Galv_I64ArrayParameter<"vocabulary tp degrees">:$vocab_tp_degrees,
    Galv_I64ArrayParameter<"first stage parameter bytes per degree">:
        $first_parameter_bytes,
    Galv_I64ArrayParameter<"last stage parameter bytes per degree">:
        $last_parameter_bytes,
    Galv_I64ArrayParameter<"first stage activation bytes per sample">:
        $first_activation_bytes,
    Galv_I64ArrayParameter<"last stage activation bytes per sample">:
        $last_activation_bytes
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The attribute name on the module.
    static constexpr ::llvm::StringLiteral getAttrName() {
      return ::llvm::StringLiteral("galv.costs");
    }
  }];
}

def Galv_StrategyAttr : Galv_Attr<"Strategy", "strategy"> {
  let summary = "parallel strategy of one layer instance";
  let description = [{
    How one layer instance is split across the devices of its pipeline stage:
    tensor-parallel degree `tp` (Megatron column/row split) whose group is made
    of consecutive ranks or strided ones, data-parallel degree `dp` and the
    kind of data parallelism (DDP, ZeRO-2, ZeRO-3), sequence parallelism
    within the tensor-parallel group (Megatron-SP or Ulysses), activation
    checkpointing, and the pipeline stage that runs it. `tp * dp` equals the
    number of devices per stage.

    ```mlir
    #galv.strategy<tp = 2, dp = 4, dp_kind = zero3, checkpoint = true>
    #galv.strategy<tp = 4, dp = 1, tp_consecutive = false, sp = ulysses, stage = 1>
    ```
  }];
  let parameters = (ins
    "int64_t":$tp,
    "int64_t":$dp,
    Galv_BoolParameter<"TP group of consecutive ranks", "true">:
        $tp_consecutive,
    DefaultValuedParameter<"::mlir::galv::DataParallelKind",
        "::mlir::galv::DataParallelKind::ddp">:$dp_kind,
    DefaultValuedParameter<"::mlir::galv::SequenceParallelKind",
        "::mlir::galv::SequenceParallelKind::none">:$sp,
    Galv_BoolParameter<"activation checkpointing", "false">:$checkpoint,
    DefaultValuedParameter<"int64_t", "0">:$stage
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Galv_PlanConfigAttr : Galv_Attr<"PlanConfig", "plan"> {
  let summary = "global parallel configuration of a training plan";
  let description = [{
    The module-level half of a Galvatron strategy: world size, pipeline degree
    and the number of layers per stage (`pp_division`), micro-batches per
    step (`chunks`), global batch size, pipeline schedule, and how the
    embedding and head ("other" layers) are split: vocabulary tensor
    parallelism `vocab_tp`, its sequence parallelism `vocab_sp`, and ZeRO-3
    for them (`embed_zero3`, Galvatron's `embed_sdp`). `default_dp_kind` is
    the data-parallel kind of layers whose strategy does not name one.

    ```mlir
    #galv.plan<world_size = 8, pp = 2, pp_division = [6, 6], chunks = 4,
               global_batch = 32, schedule = pipedream_flush, vocab_tp = 2>
    ```
  }];
  let parameters = (ins
    "int64_t":$world_size,
    "int64_t":$pp,
    Galv_I64ArrayParameter<"layers per pipeline stage">:$pp_division,
    "int64_t":$chunks,
    "int64_t":$global_batch,
    DefaultValuedParameter<"::mlir::galv::PipelineSchedule",
        "::mlir::galv::PipelineSchedule::gpipe">:$schedule,
    DefaultValuedParameter<"::mlir::galv::DataParallelKind",
        "::mlir::galv::DataParallelKind::ddp">:$default_dp_kind,
    DefaultValuedParameter<"int64_t", "1">:$vocab_tp,
    DefaultValuedParameter<"::mlir::galv::SequenceParallelKind",
        "::mlir::galv::SequenceParallelKind::none">:$vocab_sp,
    Galv_BoolParameter<"ZeRO-3 for embedding and head", "false">:$embed_zero3
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Devices per pipeline stage (world_size / pp).
    int64_t getDevicesPerStage() const { return getWorldSize() / getPp(); }
    /// Total number of layer instances the division covers.
    int64_t getNumLayers() const;
  }];
}

def Galv_DeviceGroupAttr : Galv_Attr<"DeviceGroup", "group"> {
  let summary = "a group of ranks within one pipeline stage";
  let description = [{
    `size` ranks `stride` apart among the ranks of one pipeline stage: the
    stage-local rank r is at position `(r / stride) % size` of the group
    made of the stage-local ranks `r - position * stride + k * stride`,
    `0 <= k < size`. Tensor parallelism over consecutive ranks is
    `<size = tp, stride = 1>` and its data-parallel partner
    `<size = dp, stride = tp>`. Inside an op or another galv attribute it is
    written without the `#galv.group` prefix.

    ```mlir
    #galv.group<size = 2, stride = 1>
    %y = galv.all_reduce sum %x group = <size = 4, stride = 2> : tensor<8xf32>
    ```
  }];
  let parameters = (ins "int64_t":$size, "int64_t":$stride);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The position of stage-local rank `stageRank` in its group.
    int64_t getPosition(int64_t stageRank) const;
    /// The stage-local ranks of the group `stageRank` belongs to, in
    /// position order.
    ::llvm::SmallVector<int64_t> getMembers(int64_t stageRank) const;
  }];
}

// The device group of a cut or a shard, written stripped: `<size = 2, ...>`.
class Galv_DeviceGroupParameter<string desc>
    : AttrParameter<"::mlir::galv::DeviceGroupAttr", desc>;

def Galv_CutAttr : Galv_Attr<"Cut", "cut"> {
  let summary = "one dimension of a tensor split over a device group";
  let description = [{
    Dimension `axis` is divided into `blocks` equal blocks (3 for a fused
    query/key/value projection), each block into `group.size` pieces, and a
    rank keeps, of every block, the piece at its position in `group`.
    `blocks` is 1 unless written.

    ```mlir
    #galv.cut<axis = 1, blocks = 3, group = <size = 2, stride = 1>>
    ```
  }];
  let parameters = (ins
    "int64_t":$axis,
    DefaultValuedParameter<"int64_t", "1", "equal blocks split alike">:
        $blocks,
    Galv_DeviceGroupParameter<"the ranks that share the dimension">:$group
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

// A bracketed list of stripped cuts, `[<axis = 0, ...>, ...]`; elided when
// empty.
class Galv_CutListParameter<string desc>
    : OptionalArrayRefParameter<"::mlir::galv::CutAttr", desc> {
  let parser = [{ ::mlir::galv::parseCutList($_parser) }];
  let printer = [{ ::mlir::galv::printCutList($_printer, $_self) }];
}

def Galv_ShardAttr : Galv_Attr<"Shard", "shard"> {
  let summary = "how each rank's piece of a parameter or input is cut";
  let description = [{
    A rank holds a piece of the full tensor: the full tensor cut by each of
    `cuts` (see `#galv.cut`; at most one per dimension) and then, with a
    `flat` group (ZeRO), flattened, zero-padded to a multiple of the group
    size and cut into that many pieces, of which the rank keeps the one at
    its position in the group.

    ```mlir
    #galv.shard<cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>]>
    #galv.shard<cuts = [<axis = 0, group = <size = 2, stride = 1>>],
                flat = <size = 2, stride = 2>>
    #galv.shard<flat = <size = 4, stride = 1>>
    ```
  }];
  let parameters = (ins
    Galv_CutListParameter<"the dimensions cut, in increasing order">:$cuts,
    OptionalParameter<"::mlir::galv::DeviceGroupAttr",
        "the ZeRO group the cut piece is flattened over">:$flat
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The piece one rank holds of a tensor of type `full`.
    ::mlir::RankedTensorType getLocalType(::mlir::RankedTensorType full) const;
    /// How many pieces the full tensor is cut into (each held by a rank or
    /// by several alike): the product of the cut and flat group sizes.
    int64_t getNumPieces() const;
    /// Whether the cuts fit a tensor of type `full` (the axis in range, the
    /// dimension a multiple of blocks times the group size); if not, says
    /// why through `emitError`.
    ::llvm::LogicalResult
    verifyFits(::mlir::RankedTensorType full,
               ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError)
        const;
  }];
}

def Galv_GradSyncAttr : Galv_Attr<"GradSync", "grad_sync"> {
  let summary = "how the optimizer sums a parameter's gradient";
  let description = [{
    Marks a `galv.get_parameter` (as its `galv.grad_sync` attribute) whose
    gradient is a partial sum over a data-parallel `group`: the optimizer
    all-reduces it (DDP) or reduce-scatters it so that each rank keeps the
    sum of its flat piece (ZeRO-2).

    ```mlir
    #galv.grad_sync<all_reduce, group = <size = 4, stride = 1>>
    #galv.grad_sync<reduce_scatter, group = <size = 2, stride = 2>>
    ```
  }];
  let parameters = (ins
    AttrParameter<"::mlir::galv::GradSyncKind", "all_reduce or reduce_scatter">:
        $kind,
    Galv_DeviceGroupParameter<"the data-parallel group">:$group
  );
  let assemblyFormat = "`<` $kind `,` struct($group) `>`";
}

#endif // GALV_ATTRS_TD
