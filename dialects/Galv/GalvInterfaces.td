//===- GalvInterfaces.td - per-op rules of the galv dialect -*- tablegen -*-===//
//
// Every rule about an op lives beside the op, behind one of these
// interfaces: how it partitions under a strategy, its adjoint, its cost and
// its plan instruction. Passes (galv-partition, galv-autodiff, the cost
// model) and the plan emitter are drivers over them, so adding an op means
// its ODS entry, its rules and its kernel, not a case in every pass.
//
//===----------------------------------------------------------------------===//

#ifndef GALV_INTERFACES_TD
#define GALV_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Galv_PartitionOpInterface : OpInterface<"PartitionOpInterface"> {
  let description = [{
    How an op runs on one rank of a pipeline stage under its layer's
    strategy, in the spirit of upstream MLIR's `ShardingInterface`: the op
    first conforms its operands to the layouts it accepts (gathering,
    slicing or exchanging pieces through the `PartitionState`), then
    rewrites itself to its local form and records the layout of each
    result. An op that cannot run partitioned returns a diagnostic saying
    why.
  }];
  let cppNamespace = "::mlir::galv";
  let methods = [
    InterfaceMethod<[{
        Rewrites this op (and what it needs around it) for one rank under
        `axes`, recording result layouts in `state`.
      }], "::llvm::LogicalResult", "partition",
      (ins "::mlir::galv::PartitionState &":$state,
           "const ::mlir::galv::Axes &":$axes)>,
  ];
}

def Galv_AdjointOpInterface : OpInterface<"AdjointOpInterface"> {
  let description = [{
    Reverse-mode rule: given the adjoints of the op's results (null where a
    result has none), builds galv ops that compute the adjoints of the
    operands that need one and hands them to `AdjointBuilder::accumulate`.
    Ops without a derivative refuse with the reason.
  }];
  let cppNamespace = "::mlir::galv";
  let methods = [
    InterfaceMethod<[{
        Emits the adjoints of this op's operands from `resultGrads`.
      }], "::llvm::LogicalResult", "buildAdjoint",
      (ins "::mlir::galv::AdjointBuilder &":$builder,
           "::llvm::ArrayRef<::mlir::Value>":$resultGrads)>,
  ];
}

def Galv_CostOpInterface : OpInterface<"CostOpInterface"> {
  let description = [{
    The work an op does as its types say: floating-point operations and
    bytes read and written. On a partitioned program the types are one
    rank's pieces, so the cost per tensor-parallel degree is the cost of the
    program partitioned at that degree. Elementwise ops count one
    operation per result element and every operand and result once.
  }];
  let cppNamespace = "::mlir::galv";
  let methods = [
    InterfaceMethod<[{
        FLOPs and bytes of one execution of this op.
      }], "::mlir::galv::OpCost", "getCost", (ins)>,
  ];
}

def Galv_PlanOpInterface : OpInterface<"PlanOpInterface"> {
  let description = [{
    The plan.bin instruction that runs this op: its opcode and attributes
    (the per-opcode attribute layout is in runtime/schema/plan.fbs). Ops the
    emitter maps to storage or to point-to-point messages instead
    (parameters, constants, replicas, stage transfers) refuse with the
    reason.
  }];
  let cppNamespace = "::mlir::galv";
  let methods = [
    InterfaceMethod<[{
        Fills `instruction` with this op's opcode and attributes.
      }], "::llvm::LogicalResult", "lowerToPlan",
      (ins "::mlir::galv::PlanInstruction &":$instruction)>,
  ];
}

def Galv_AutocastOpInterface : OpInterface<"AutocastOpInterface"> {
  let description = [{
    Where the op computes in a mixed-precision (bf16) program, as PyTorch's
    autocast decides it: GEMMs and attention take their operands in the
    lower precision, norms, softmax, losses, reductions and exp/log keep
    fp32. galv-autocast converts the operands the op names; ops without
    this interface compute in the widest floating type of their operands.
  }];
  let cppNamespace = "::mlir::galv";
  let methods = [
    InterfaceMethod<[{
        The precision this op computes in.
      }], "::mlir::galv::AutocastPolicy", "getAutocastPolicy", (ins)>,
    InterfaceMethod<[{
        Whether floating operand `index` is converted to that precision
        (an operand that is not, such as an additive mask, keeps its type).
      }], "bool", "autocastsOperand", (ins "unsigned":$index), [{}],
      [{ return true; }]>,
  ];
}

#endif // GALV_INTERFACES_TD
