//===- GalvOps.td - galv graph, parameter and layer ops ----*- tablegen -*-===//

#ifndef GALV_OPS_TD
#define GALV_OPS_TD

include "Galv/GalvAttrs.td"
include "Galv/GalvInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/SymbolInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/FunctionInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class Galv_Op<string mnemonic, list<Trait> traits = []>
    : Op<Galv_Dialect, mnemonic, traits>;

// An op that runs in a program (as opposed to the module structure:
// parameters, layer types and instances). Each states its partitioning,
// adjoint, cost and plan instruction beside its other rules.
class Galv_ComputeOp<string mnemonic, list<Trait> traits = []>
    : Galv_Op<mnemonic, !listconcat(traits, [
          DeclareOpInterfaceMethods<Galv_PartitionOpInterface>,
          DeclareOpInterfaceMethods<Galv_AdjointOpInterface>,
          DeclareOpInterfaceMethods<Galv_CostOpInterface>,
          DeclareOpInterfaceMethods<Galv_PlanOpInterface>])>;

// Every galv tensor has a static shape.
def Galv_Tensor : StaticShapeTensorOf<[AnyType]>;
def Galv_FloatTensor : StaticShapeTensorOf<[AnyFloat]>;
def Galv_IntTensor : StaticShapeTensorOf<[AnySignlessInteger]>;
def Galv_BoolTensor : StaticShapeTensorOf<[I1]>;

//===----------------------------------------------------------------------===//
// Elementwise ops
//===----------------------------------------------------------------------===//

class Galv_BinaryOp<string mnemonic, string desc, list<Trait> traits = []>
    : Galv_ComputeOp<mnemonic, !listconcat(traits,
          [Pure, InferTypeOpAdaptor, SameOperandsElementType])> {
  let summary = desc # " with numpy broadcasting";
  let description = [{
    Elementwise `}] # desc # [{` of two tensors of the same element type.
    Shapes broadcast as in numpy and ONNX: dimensions align from the right and
    a dimension of 1 stretches to the other operand's.

    ```mlir
    %r = galv.}] # mnemonic # [{ %a, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$lhs, Galv_Tensor:$rhs);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def Galv_AddOp : Galv_BinaryOp<"add", "addition", [Commutative]> {
  let hasFolder = 1;
}
def Galv_SubOp : Galv_BinaryOp<"sub", "subtraction">;
def Galv_MulOp : Galv_BinaryOp<"mul", "multiplication", [Commutative]> {
  let hasFolder = 1;
}
def Galv_DivOp : Galv_BinaryOp<"div", "division">;
def Galv_PowOp : Galv_BinaryOp<"pow", "power",
    [DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]>;
def Galv_MaxOp : Galv_BinaryOp<"max", "maximum", [Commutative]>;
def Galv_MinOp : Galv_BinaryOp<"min", "minimum", [Commutative]>;
def Galv_AndOp : Galv_BinaryOp<"and", "logical and of i1 tensors",
    [Commutative]> {
  let arguments = (ins Galv_BoolTensor:$lhs, Galv_BoolTensor:$rhs);
  let results = (outs Galv_BoolTensor:$result);
}
def Galv_OrOp : Galv_BinaryOp<"or", "logical or of i1 tensors",
    [Commutative]> {
  let arguments = (ins Galv_BoolTensor:$lhs, Galv_BoolTensor:$rhs);
  let results = (outs Galv_BoolTensor:$result);
}

def Galv_CompareOp : Galv_ComputeOp<"compare",
    [Pure, InferTypeOpAdaptor, SameOperandsElementType]> {
  let summary = "elementwise comparison with broadcasting, giving i1";
  let description = [{
    ```mlir
    %m = galv.compare lt %a, %b : tensor<8x8xi64>, tensor<8x8xi64> -> tensor<8x8xi1>
    ```
  }];
  let arguments = (ins Galv_ComparePredicateAttr:$predicate, Galv_Tensor:$lhs,
                       Galv_Tensor:$rhs);
  let results = (outs Galv_BoolTensor:$result);
  let assemblyFormat = [{
    `` $predicate $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->`
    type($result)
  }];
}

class Galv_UnaryOp<string mnemonic, string desc, list<Trait> traits = []>
    : Galv_ComputeOp<mnemonic, !listconcat(traits,
          [Pure, SameOperandsAndResultType])> {
  let summary = desc;
  let description = [{
    Elementwise `}] # desc # [{`.

    ```mlir
    %r = galv.}] # mnemonic # [{ %x : tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def Galv_NegOp : Galv_UnaryOp<"neg", "negation"> {
  let arguments = (ins Galv_Tensor:$input);
  let results = (outs Galv_Tensor:$result);
}
def Galv_NotOp : Galv_UnaryOp<"not", "logical not"> {
  let arguments = (ins Galv_BoolTensor:$input);
  let results = (outs Galv_BoolTensor:$result);
}
def Galv_AbsOp : Galv_UnaryOp<"abs", "absolute value"> {
  let arguments = (ins Galv_Tensor:$input);
  let results = (outs Galv_Tensor:$result);
}
def Galv_ExpOp : Galv_UnaryOp<"exp", "exponential",
    [DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]>;
def Galv_LogOp : Galv_UnaryOp<"log", "natural logarithm",
    [DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]>;
def Galv_SqrtOp : Galv_UnaryOp<"sqrt", "square root">;
def Galv_RsqrtOp : Galv_UnaryOp<"rsqrt", "reciprocal square root",
    [DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]>;
def Galv_ReciprocalOp : Galv_UnaryOp<"reciprocal", "reciprocal",
    [DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]>;
def Galv_TanhOp : Galv_UnaryOp<"tanh", "hyperbolic tangent">;
def Galv_ErfOp : Galv_UnaryOp<"erf", "Gauss error function">;
def Galv_SigmoidOp : Galv_UnaryOp<"sigmoid", "logistic sigmoid">;
def Galv_ReluOp : Galv_UnaryOp<"relu", "rectified linear unit">;
def Galv_SiluOp : Galv_UnaryOp<"silu", "SiLU (swish): x * sigmoid(x)">;

def Galv_GeluOp : Galv_ComputeOp<"gelu", [Pure, SameOperandsAndResultType]> {
  let summary = "GELU activation, exact (erf) or tanh-approximated";
  let description = [{
    `approximate = none` is `0.5 x (1 + erf(x / sqrt(2)))` (BERT);
    `approximate = tanh` is `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`
    (GPT-2's `gelu_new`).

    ```mlir
    %r = galv.gelu %x approximate = tanh : tensor<2x8x256xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input,
      DefaultValuedAttr<Galv_GeluApproximationAttr,
                        "::mlir::galv::GeluApproximation::none">:$approximate);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $input (`approximate` `=` `` $approximate^)? attr-dict `:` type($input)
  }];
}

def Galv_WhereOp : Galv_ComputeOp<"where", [Pure, InferTypeOpAdaptor]> {
  let summary = "elementwise select with broadcasting";
  let description = [{
    `cond ? on_true : on_false`, all three broadcast together; the two value
    operands share an element type.

    ```mlir
    %r = galv.where %m, %a, %b : tensor<1x1x8x8xi1>, tensor<2x4x8x8xf32>, tensor<f32> -> tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins Galv_BoolTensor:$condition, Galv_Tensor:$on_true,
                       Galv_Tensor:$on_false);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $condition `,` $on_true `,` $on_false attr-dict `:` type($condition) `,`
    type($on_true) `,` type($on_false) `->` type($result)
  }];
}

def Galv_CastOp : Galv_ComputeOp<"cast", [Pure, SameOperandsAndResultShape]> {
  let summary = "element type conversion";
  let description = [{
    Converts each element to the result's element type (float/int/i1, as
    ONNX Cast does).

    ```mlir
    %r = galv.cast %mask : tensor<2x8xi64> -> tensor<2x8xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasFolder = 1;
}

def Galv_ConstantOp : Galv_ComputeOp<"constant",
    [ConstantLike, Pure, AllTypesMatch<["value", "result"]>]> {
  let summary = "a constant tensor";
  let description = [{
    ```mlir
    %c = galv.constant dense<1.0e-05> : tensor<f32>
    ```
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

def Galv_MatmulOp : Galv_ComputeOp<"matmul",
    [Pure, InferTypeOpAdaptor, SameOperandsElementType, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "batched matrix product with broadcast batch dimensions";
  let description = [{
    `[..., M, K] x [..., K, N] -> [..., M, N]`; both operands have rank >= 2
    and the leading (batch) dimensions broadcast as in numpy.
    `transpose_lhs` / `transpose_rhs` read that operand with its last two
    dimensions swapped (`[..., K, M]`, `[..., N, K]`), as GEMM's transpose
    flags do; galv-fold-transposes sets them in place of explicit
    transposes once partitioning and autodiff are done.

    ```mlir
    %s = galv.matmul %q, %kt : tensor<2x4x8x16xf32>, tensor<2x4x16x8xf32> -> tensor<2x4x8x8xf32>
    %dw = galv.matmul %x, %dy {transpose_lhs} : tensor<512x64xf32>, tensor<512x256xf32> -> tensor<64x256xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$lhs, Galv_FloatTensor:$rhs,
                       UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs) `->` type($result)
  }];
}

def Galv_LinearOp : Galv_ComputeOp<"linear",
    [Pure, InferTypeOpAdaptor, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "fully connected layer: x W^T + b";
  let description = [{
    `input [..., K]`, `weight [N, K]` (layout `out_in`, as torch.nn.Linear
    stores it) or `[K, N]` (layout `in_out`, as GPT-2's Conv1D and ONNX MatMul
    initializers store it), optional `bias [N]`; result `[..., N]`. Tensor
    parallelism splits the output dimension (column parallel) or the input
    dimension (row parallel) of the weight.

    ```mlir
    %y = galv.linear %x, %w, %b : tensor<2x8x64xf32>, tensor<192x64xf32>, tensor<192xf32> -> tensor<2x8x192xf32>
    %z = galv.linear %x, %w2 layout = in_out : tensor<2x8x64xf32>, tensor<64x256xf32> -> tensor<2x8x256xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$weight,
      Optional<Galv_FloatTensor>:$bias,
      DefaultValuedAttr<Galv_WeightLayoutAttr,
                        "::mlir::galv::WeightLayout::out_in">:$layout);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`,` $bias^)? (`layout` `=` `` $layout^)? attr-dict `:`
    type($input) `,` type($weight) (`,` type($bias)^)? `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// Number of input features K.
    int64_t getInFeatures();
    /// Number of output features N.
    int64_t getOutFeatures();
  }];
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

def Galv_ReshapeOp : Galv_ComputeOp<"reshape", [Pure, SameOperandsAndResultElementType]> {
  let summary = "reinterpret a tensor with another static shape";
  let description = [{
    ```mlir
    %r = galv.reshape %x : tensor<2x8x64xf32> -> tensor<2x8x4x16xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
  let hasFolder = 1;
}

def Galv_TransposeOp : Galv_ComputeOp<"transpose", [Pure, InferTypeOpAdaptor]> {
  let summary = "permute dimensions";
  let description = [{
    Result dimension `i` is input dimension `permutation[i]`.

    ```mlir
    %r = galv.transpose %x [0, 2, 1, 3] : tensor<2x8x4x16xf32> -> tensor<2x4x8x16xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, DenseI64ArrayAttr:$permutation);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $input $permutation attr-dict `:` type($input) `->` type($result)
  }];
  let hasFolder = 1;
}

def Galv_SliceOp : Galv_ComputeOp<"slice", [Pure, InferTypeOpAdaptor]> {
  let summary = "strided slice with static bounds on every dimension";
  let description = [{
    For every dimension `d`: elements `starts[d], starts[d] + steps[d], ...`
    below `limits[d]`; `0 <= starts[d] <= limits[d] <= dim(d)`, `steps[d] > 0`.

    ```mlir
    %r = galv.slice %x [0, 0, 0] [2, 8, 32] [1, 1, 1] : tensor<2x8x64xf32> -> tensor<2x8x32xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, DenseI64ArrayAttr:$starts,
                       DenseI64ArrayAttr:$limits, DenseI64ArrayAttr:$steps);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $input $starts $limits $steps attr-dict `:` type($input) `->`
    type($result)
  }];
  let hasFolder = 1;
}

def Galv_ConcatOp : Galv_ComputeOp<"concat",
    [Pure, InferTypeOpAdaptor, SameOperandsElementType]> {
  let summary = "concatenate tensors along a dimension";
  let description = [{
    ```mlir
    %r = galv.concat %a, %b axis = 3 : tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32> -> tensor<2x4x8x16xf32>
    ```
  }];
  let arguments = (ins Variadic<Galv_Tensor>:$inputs, I64Attr:$axis);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $inputs `axis` `=` $axis attr-dict `:` type($inputs) `->` type($result)
  }];
}

def Galv_SplitOp : Galv_ComputeOp<"split", [Pure, InferTypeOpAdaptor]> {
  let summary = "split a tensor into pieces along a dimension";
  let description = [{
    ```mlir
    %q, %k, %v = galv.split %x axis = 2 sizes = [64, 64, 64] : tensor<2x8x192xf32> -> tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$axis,
                       DenseI64ArrayAttr:$sizes);
  let results = (outs Variadic<Galv_Tensor>:$results);
  let assemblyFormat = [{
    $input `axis` `=` $axis `sizes` `=` $sizes attr-dict `:` type($input)
    `->` type($results)
  }];
}

def Galv_ExpandOp : Galv_ComputeOp<"expand", [Pure, SameOperandsAndResultElementType]> {
  let summary = "broadcast a tensor to a larger shape";
  let description = [{
    Materialises numpy broadcasting of `input` to the result shape (ONNX
    Expand with a static shape).

    ```mlir
    %r = galv.expand %x : tensor<2x1x8x16xf32> -> tensor<2x4x8x16xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def Galv_GatherOp : Galv_ComputeOp<"gather", [Pure, InferTypeOpAdaptor]> {
  let summary = "take slices of data along an axis at the given indices";
  let description = [{
    ONNX Gather: result shape is `data.shape[:axis] + indices.shape +
    data.shape[axis+1:]`. Negative indices count from the end.

    ```mlir
    %r = galv.gather %data[%idx] axis = 0 : tensor<16x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$data, Galv_IntTensor:$indices,
                       I64Attr:$axis);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $data `[` $indices `]` `axis` `=` $axis attr-dict `:` type($data) `,`
    type($indices) `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Reductions and normalisation
//===----------------------------------------------------------------------===//

def Galv_ReduceOp : Galv_ComputeOp<"reduce",
    [Pure, InferTypeOpAdaptor, SameOperandsAndResultElementType, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "reduce over a set of dimensions";
  let description = [{
    ```mlir
    %m = galv.reduce mean %x axes = [2] keepdims : tensor<2x8x64xf32> -> tensor<2x8x1xf32>
    %s = galv.reduce sum %x axes = [0, 1, 2] : tensor<2x8x64xf32> -> tensor<f32>
    ```
  }];
  let arguments = (ins Galv_ReduceKindAttr:$kind, Galv_Tensor:$input,
                       DenseI64ArrayAttr:$axes, UnitAttr:$keepdims);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    `` $kind $input `axes` `=` $axes (`keepdims` $keepdims^)? attr-dict `:`
    type($input) `->` type($result)
  }];
}

def Galv_SoftmaxOp : Galv_ComputeOp<"softmax",
    [Pure, SameOperandsAndResultType, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "softmax along one dimension";
  let description = [{
    ```mlir
    %p = galv.softmax %s axis = 3 : tensor<2x4x8x8xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = "$input `axis` `=` $axis attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Galv_LogSoftmaxOp : Galv_ComputeOp<"log_softmax",
    [Pure, SameOperandsAndResultType, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "logarithm of the softmax along one dimension";
  let description = [{
    `x - max - log(sum(exp(x - max)))` along `axis` (ONNX LogSoftmax,
    `torch.log_softmax`), computed without forming the softmax, so that
    large negative log-probabilities do not underflow to `-inf`.

    ```mlir
    %l = galv.log_softmax %logits axis = -1 : tensor<2x8x50xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = "$input `axis` `=` $axis attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def Galv_ArgMaxOp : Galv_ComputeOp<"argmax", [Pure, InferTypeOpAdaptor]> {
  let summary = "index of the largest element along one dimension";
  let description = [{
    The position (i64) of the maximum along `axis`, the first one on ties
    unless `select_last_index` (ONNX ArgMax); `keepdims` keeps the reduced
    dimension as 1. Integer results carry no gradient.

    ```mlir
    %i = galv.argmax %logits axis = -1 : tensor<2x8x50xf32> -> tensor<2x8xi64>
    %j = galv.argmax %x axis = 0 keepdims select_last_index : tensor<4x3xf32> -> tensor<1x3xi64>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$axis, UnitAttr:$keepdims,
                       UnitAttr:$select_last_index);
  let results = (outs TensorOf<[I64]>:$result);
  let assemblyFormat = [{
    $input `axis` `=` $axis (`keepdims` $keepdims^)?
    (`select_last_index` $select_last_index^)? attr-dict `:` type($input)
    `->` type($result)
  }];
}

def Galv_LayerNormOp : Galv_ComputeOp<"layer_norm",
    [Pure, AllTypesMatch<["input", "result"]>, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "layer normalisation over the last dimension";
  let description = [{
    `(x - mean) / sqrt(var + epsilon) * scale + bias` with mean and (biased)
    variance over the last dimension; `scale` and the optional `bias` have the
    shape of that dimension.

    ```mlir
    %y = galv.layer_norm %x, %g, %b eps = 1.0e-05 : tensor<2x8x64xf32>, tensor<64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$scale,
                       Optional<Galv_FloatTensor>:$bias, F64Attr:$epsilon);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale (`,` $bias^)? `eps` `=` $epsilon attr-dict `:`
    type($input) `,` type($scale) (`,` type($bias)^)?
  }];
  let hasVerifier = 1;
}

def Galv_RmsNormOp : Galv_ComputeOp<"rms_norm",
    [Pure, AllTypesMatch<["input", "result"]>, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "RMS normalisation over the last dimension (LLaMA)";
  let description = [{
    `x / sqrt(mean(x^2) + epsilon) * scale` over the last dimension.

    ```mlir
    %y = galv.rms_norm %x, %g eps = 1.0e-06 : tensor<2x8x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$scale,
                       F64Attr:$epsilon);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $scale `eps` `=` $epsilon attr-dict `:` type($input) `,`
    type($scale)
  }];
  let hasVerifier = 1;
}

def Galv_AddNormOp : Galv_ComputeOp<"add_norm",
    [Pure, AllTypesMatch<["input", "residual", "sum", "result"]>]> {
  let summary = "a residual add fused with the norm that reads it";
  let description = [{
    `sum = input + residual`, then `result` = the layer norm of `sum` with
    `scale` and the optional `bias` (or, with `rms`, its RMS norm with
    `scale`), in one pass over each row: the sum is read once instead of
    written by one kernel and read back by the next. galv-fuse-residual-norm
    makes it of a `galv.add` whose result a norm reads, once partitioning
    and autodiff are done; its adjoint is the two ops' (the norm's fused
    gradient op, and the sum's adjoint to both addends), and partitioning
    refuses it (partition the add and the norm).

    ```mlir
    %s, %y = galv.add_norm %x, %r, %g, %b eps = 1.0e-05 : tensor<2x8x64xf32>, tensor<64xf32>, tensor<64xf32>
    %s2, %y2 = galv.add_norm %x, %r, %g rms eps = 1.0e-06 : tensor<2x8x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$residual,
                       Galv_FloatTensor:$scale,
                       Optional<Galv_FloatTensor>:$bias, UnitAttr:$rms,
                       F64Attr:$epsilon);
  let results = (outs Galv_FloatTensor:$sum, Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $residual `,` $scale (`,` $bias^)? (`rms` $rms^)? `eps` `=`
    $epsilon attr-dict `:` type($input) `,` type($scale) (`,` type($bias)^)?
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Transformer ops
//===----------------------------------------------------------------------===//

def Galv_EmbeddingOp : Galv_ComputeOp<"embedding", [Pure, InferTypeOpAdaptor]> {
  let summary = "token embedding lookup";
  let description = [{
    `table [V, D]`, integer `ids [...]` in `[0, V)` -> `[..., D]`. Vocabulary
    tensor parallelism splits `V`.

    `padding_idx` is torch.nn.Embedding's: lookups of that id read the row
    but give it no gradient (ONNX cannot carry it; the importer takes it
    from the Hugging Face config). With `vocab_group` the table is this
    rank's block of a vocabulary split over the group (block k of size V at
    the rank's position k), `ids` index the block, and `padding_idx` is a
    vocabulary id: the block's row `padding_idx - k * V`, if it holds it.

    ```mlir
    %h = galv.embedding %wte[%ids] : tensor<1000x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
    %p = galv.embedding %wte[%ids] padding_idx = 1 : tensor<1000x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$table, Galv_IntTensor:$ids,
                       OptionalAttr<I64Attr>:$padding_idx,
                       OptionalAttr<Galv_DeviceGroupAttr>:$vocab_group);
  let results = (outs Galv_FloatTensor:$result);
  let builders = [OpBuilder<(ins "Value":$table, "Value":$ids), [{
    build($_builder, $_state, table, ids, IntegerAttr(), DeviceGroupAttr());
  }]>];
  let assemblyFormat = [{
    $table `[` $ids `]` (`padding_idx` `=` $padding_idx^)?
    (`vocab_group` `=` $vocab_group^)? attr-dict `:` type($table) `,`
    type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Galv_EmbeddingGradOp : Galv_ComputeOp<"embedding_grad", [Pure]> {
  let summary = "gradient of an embedding lookup with respect to the table";
  let description = [{
    Scatters the rows of `grad [..., D]` into a zero `[rows, D]` table at the
    positions `ids [...]` name, adding rows that share an id: what autodiff
    emits for `galv.embedding` (and row gathers). The row `padding_idx`
    names (as `galv.embedding`'s, with `vocab_group`) stays zero.

    ```mlir
    %dw = galv.embedding_grad %g[%ids] rows = 1000 : tensor<2x8x64xf32>, tensor<2x8xi64> -> tensor<1000x64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$grad, Galv_IntTensor:$ids,
                       I64Attr:$rows, OptionalAttr<I64Attr>:$padding_idx,
                       OptionalAttr<Galv_DeviceGroupAttr>:$vocab_group);
  let results = (outs Galv_FloatTensor:$result);
  let builders = [OpBuilder<(ins "Type":$result, "Value":$grad, "Value":$ids,
                                 "int64_t":$rows), [{
    build($_builder, $_state, result, grad, ids, rows, IntegerAttr(),
          DeviceGroupAttr());
  }]>];
  let assemblyFormat = [{
    $grad `[` $ids `]` `rows` `=` $rows (`padding_idx` `=` $padding_idx^)?
    (`vocab_group` `=` $vocab_group^)? attr-dict `:` type($grad) `,`
    type($ids) `->` type($result)
  }];
  let hasVerifier = 1;
}

def Galv_AdamWUpdateOp : Galv_ComputeOp<"adamw_update", [Pure,
    AllTypesMatch<["param", "grad", "m", "v", "new_param", "new_m", "new_v"]>,
    AllTypesMatch<["lr", "step"]>]> {
  let summary = "one AdamW step of one parameter, fused";
  let description = [{
    `param`, `grad`, the moments `m`, `v` (one shape), the learning rate
    `lr` and the step number `step` (scalars, from 1) -> the new parameter
    and moments, as torch.optim.AdamW computes them:
    `m' = b1 m + (1 - b1) g`, `v' = b2 v + (1 - b2) g^2`,
    `p' = p (1 - lr wd) - lr (m' / (1 - b1^step)) / (sqrt(v' / (1 - b2^step)) + eps)`.
    galv-adamw emits it (or the same arithmetic as separate elementwise ops
    with `fused=false`); it comes after partitioning and autodiff, so it
    has neither a partition rule nor a gradient.

    ```mlir
    %p2, %m2, %v2 = galv.adamw_update %p, %g, %m, %v, %lr, %t beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.01 : tensor<64x64xf32>, tensor<f32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$param, Galv_FloatTensor:$grad,
                       Galv_FloatTensor:$m, Galv_FloatTensor:$v,
                       Galv_FloatTensor:$lr, Galv_FloatTensor:$step,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$epsilon,
                       F64Attr:$weight_decay);
  let results = (outs Galv_FloatTensor:$new_param, Galv_FloatTensor:$new_m,
                      Galv_FloatTensor:$new_v);
  let assemblyFormat = [{
    $param `,` $grad `,` $m `,` $v `,` $lr `,` $step `beta1` `=` $beta1 `,`
    `beta2` `=` $beta2 `,` `eps` `=` $epsilon `,` `weight_decay` `=`
    $weight_decay attr-dict `:` type($param) `,` type($lr)
  }];
  let hasVerifier = 1;
}

def Galv_RotaryOp : Galv_ComputeOp<"rotary",
    [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "rotary position embedding (RoPE)";
  let description = [{
    `input [B, H, S, D]`; `cos` and `sin` broadcast to `[B, H, S, R]` with
    `R <= D` even: the first `R` features rotate, the rest pass through.
    Non-interleaved (Hugging Face LLaMA's `rotate_half`): feature `i` pairs
    with `i + R/2`. Interleaved (GPT-J): feature `2i` pairs with `2i + 1`.

    ```mlir
    %q2 = galv.rotary %q, %cos, %sin : tensor<2x4x8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$cos,
                       Galv_FloatTensor:$sin, UnitAttr:$interleaved);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $cos `,` $sin (`interleaved` $interleaved^)? attr-dict `:`
    type($input) `,` type($cos) `,` type($sin)
  }];
  let hasVerifier = 1;
}

def Galv_AttentionOp : Galv_ComputeOp<"attention", [Pure, InferTypeOpAdaptor,
    DeclareOpInterfaceMethods<Galv_AutocastOpInterface, ["autocastsOperand"]>]> {
  let summary = "scaled dot-product attention with grouped KV heads";
  let description = [{
    `softmax(q k^T * scale + mask) v` per head. `q [B, H, Sq, D]`,
    `k [B, Hkv, Sk, D]`, `v [B, Hkv, Sk, Dv]` with `H % Hkv == 0` (grouped
    query attention when `Hkv < H`); result `[B, H, Sq, Dv]`. `causal` masks
    key positions after the query's (aligned to the end when `Sk > Sq`). The
    optional mask broadcasts to `[B, H, Sq, Sk]`: additive when float, keep
    where true when i1. Tensor parallelism splits heads.

    ```mlir
    %o = galv.attention %q, %k, %v causal scale = 2.500000e-01 : tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32> -> tensor<2x4x8x16xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$query, Galv_FloatTensor:$key,
                       Galv_FloatTensor:$value, Optional<Galv_Tensor>:$mask,
                       UnitAttr:$causal, F64Attr:$scale);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $query `,` $key `,` $value (`mask` $mask^)? (`causal` $causal^)? `scale`
    `=` $scale attr-dict `:` type($query) `,` type($key) `,` type($value)
    (`,` type($mask)^)? `->` type($result)
  }];
  let extraClassDeclaration = [{
    int64_t getNumHeads();
    int64_t getNumKvHeads();
  }];
}

def Galv_AttentionGradOp : Galv_ComputeOp<"attention_grad",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "gradients of galv.attention with respect to q, k and v";
  let description = [{
    Given the operands of a `galv.attention` (same `causal`, `scale` and
    optional `mask`) and the adjoint `grad [B, H, Sq, Dv]` of its result,
    returns `dq [B, H, Sq, D]`, `dk [B, Hkv, Sk, D]` and
    `dv [B, Hkv, Sk, Dv]` (grouped query heads summed into their key/value
    head). What autodiff emits for `galv.attention`, so that a backend can
    recompute the probabilities tile by tile instead of keeping them.

    ```mlir
    %dq, %dk, %dv = galv.attention_grad %q, %k, %v grad %g causal scale = 2.500000e-01 : tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>, tensor<2x4x8x16xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$query, Galv_FloatTensor:$key,
                       Galv_FloatTensor:$value, Galv_FloatTensor:$grad,
                       Optional<Galv_Tensor>:$mask, UnitAttr:$causal,
                       F64Attr:$scale);
  let results = (outs Galv_FloatTensor:$query_grad,
                      Galv_FloatTensor:$key_grad,
                      Galv_FloatTensor:$value_grad);
  let assemblyFormat = [{
    $query `,` $key `,` $value `grad` $grad (`mask` $mask^)?
    (`causal` $causal^)? `scale` `=` $scale attr-dict `:` type($query) `,`
    type($key) `,` type($value) `,` type($grad) (`,` type($mask)^)?
  }];
}

def Galv_CrossEntropyOp : Galv_ComputeOp<"cross_entropy",
    [Pure, InferTypeOpAdaptor, DeclareOpInterfaceMethods<Galv_AutocastOpInterface>]> {
  let summary = "softmax cross-entropy against integer labels";
  let description = [{
    `logits [..., V]`, `labels [...]`. Positions whose label equals
    `ignore_index` contribute nothing. `reduction = mean` averages over the
    positions that count, `sum` adds them (both give a rank-0 tensor), `none`
    keeps the per-position losses.

    ```mlir
    %l = galv.cross_entropy %logits, %labels : tensor<2x8x1000xf32>, tensor<2x8xi64> -> tensor<f32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$logits, Galv_IntTensor:$labels,
      DefaultValuedAttr<Galv_ReduceKindAttr,
                        "::mlir::galv::ReduceKind::mean">:$reduction,
      DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $labels (`reduction` `=` `` $reduction^)?
    (`ignore_index` `=` $ignore_index^)? attr-dict `:` type($logits) `,`
    type($labels) `->` type($result)
  }];
}

//===----------------------------------------------------------------------===//
// Fused backward ops (galv-autodiff emits them; fused-backward=false gives
// the same gradients as chains of the ops above)
//===----------------------------------------------------------------------===//

def Galv_CrossEntropyGradOp : Galv_ComputeOp<"cross_entropy_grad",
    [Pure, AllTypesMatch<["logits", "result"]>]> {
  let summary = "gradient of galv.cross_entropy with respect to the logits";
  let description = [{
    `(softmax(logits) - one_hot(labels)) * dloss`, divided by the number of
    positions whose label is not `ignore_index` when `reduction = mean`;
    rows of ignored positions are zero. `dloss` is the loss's rank-0
    adjoint. One pass over each row of `logits [..., V]`.

    ```mlir
    %d = galv.cross_entropy_grad %logits, %labels, %dl : tensor<2x8x1000xf32>, tensor<2x8xi64>, tensor<f32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$logits, Galv_IntTensor:$labels,
      Galv_FloatTensor:$dloss,
      DefaultValuedAttr<Galv_ReduceKindAttr,
                        "::mlir::galv::ReduceKind::mean">:$reduction,
      DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $labels `,` $dloss (`reduction` `=` `` $reduction^)?
    (`ignore_index` `=` $ignore_index^)? attr-dict `:` type($logits) `,`
    type($labels) `,` type($dloss)
  }];
  let hasVerifier = 1;
}

def Galv_LayerNormGradOp : Galv_ComputeOp<"layer_norm_grad",
    [Pure, AllTypesMatch<["input", "dinput", "grad"]>,
     AllTypesMatch<["scale", "dscale", "dbias"]>]> {
  let summary = "gradients of galv.layer_norm";
  let description = [{
    From the forward's `input [..., D]` and `scale [D]` and the result's
    adjoint `grad`: the input's adjoint, and the scale's and bias's (sums
    over every row of `grad * xhat` and of `grad`). Mean and reciprocal
    standard deviation are recomputed per row.

    ```mlir
    %dx, %dg, %db = galv.layer_norm_grad %x, %g, %dy eps = 1.0e-05 : tensor<2x8x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$scale,
                       Galv_FloatTensor:$grad, F64Attr:$epsilon);
  let results = (outs Galv_FloatTensor:$dinput, Galv_FloatTensor:$dscale,
                      Galv_FloatTensor:$dbias);
  let assemblyFormat = [{
    $input `,` $scale `,` $grad `eps` `=` $epsilon attr-dict `:`
    type($input) `,` type($scale)
  }];
  let hasVerifier = 1;
}

def Galv_GeluGradOp : Galv_ComputeOp<"gelu_grad",
    [Pure, AllTypesMatch<["input", "grad", "dinput"]>]> {
  let summary = "gradient of galv.gelu";
  let description = [{
    From the forward's `input` and the result's adjoint `grad`: the input's
    adjoint, `grad * gelu'(x)` (the erf or tanh form, as `approximate`
    says), in one pass instead of the dozen elementwise ops of its formula.

    ```mlir
    %dx = galv.gelu_grad %x, %dy approximate = tanh : tensor<2x8x256xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$grad,
      DefaultValuedAttr<Galv_GeluApproximationAttr,
                        "::mlir::galv::GeluApproximation::none">:$approximate);
  let results = (outs Galv_FloatTensor:$dinput);
  let assemblyFormat = [{
    $input `,` $grad (`approximate` `=` `` $approximate^)? attr-dict `:`
    type($input)
  }];
}

def Galv_RmsNormGradOp : Galv_ComputeOp<"rms_norm_grad",
    [Pure, AllTypesMatch<["input", "dinput", "grad"]>,
     AllTypesMatch<["scale", "dscale"]>]> {
  let summary = "gradients of galv.rms_norm";
  let description = [{
    From the forward's `input [..., D]` and `scale [D]` and the result's
    adjoint `grad`: the input's adjoint and the scale's (the sum over every
    row of `grad * x / rms`). The RMS is recomputed per row.

    ```mlir
    %dx, %dg = galv.rms_norm_grad %x, %g, %dy eps = 1.0e-06 : tensor<2x8x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_FloatTensor:$scale,
                       Galv_FloatTensor:$grad, F64Attr:$epsilon);
  let results = (outs Galv_FloatTensor:$dinput, Galv_FloatTensor:$dscale);
  let assemblyFormat = [{
    $input `,` $scale `,` $grad `eps` `=` $epsilon attr-dict `:`
    type($input) `,` type($scale)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Communication (the partitioned, per-rank program)
//===----------------------------------------------------------------------===//

// An op among the ranks of a device group within a pipeline stage (see
// #galv.group, which verifies itself).
class Galv_GroupOp<string mnemonic, list<Trait> traits = []>
    : Galv_ComputeOp<mnemonic, traits>;

def Galv_AllReduceOp : Galv_GroupOp<"all_reduce",
    [Pure, SameOperandsAndResultType]> {
  let summary = "reduce a tensor over a device group, result on every rank";
  let description = [{
    Megatron's `g`: the result is the same on every rank of the group, so its
    gradient flows back unchanged (scaled by 1/size for `mean`). `max` and
    `min` pass no gradient back: they only stabilize a log-sum-exp (the
    vocabulary-parallel cross-entropy), where the gradient through the
    stabilizer cancels.

    ```mlir
    %y = galv.all_reduce sum %x group = <size = 2, stride = 1> : tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Galv_ReduceKindAttr:$kind, Galv_FloatTensor:$input,
                       Galv_DeviceGroupAttr:$group);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    `` $kind $input `group` `=` $group attr-dict `:` type($input)
  }];
}

def Galv_AllGatherOp : Galv_GroupOp<"all_gather",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "concatenate the pieces of a group along an axis";
  let description = [{
    Every rank gets the pieces of all ranks of the group concatenated along
    `axis` in group order. With `scatter_grad` the gathered value is used
    differently on each rank (a ZeRO-3 parameter, Megatron-SP's gather before
    a column-parallel linear) and its gradient is reduce-scattered; without,
    it is used alike everywhere and each rank keeps its slice of the gradient.

    ```mlir
    %y = galv.all_gather %x axis = 0 group = <size = 2, stride = 1> scatter_grad : tensor<4x8xf32> -> tensor<8x8xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$axis,
                       Galv_DeviceGroupAttr:$group, UnitAttr:$scatter_grad);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $input `axis` `=` $axis `group` `=` $group (`scatter_grad` $scatter_grad^)?
    attr-dict `:` type($input) `->` type($result)
  }];
}

def Galv_ReduceScatterOp : Galv_GroupOp<"reduce_scatter",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "sum over a group, each rank keeps its piece along an axis";
  let description = [{
    ```mlir
    %y = galv.reduce_scatter %x axis = 0 group = <size = 2, stride = 1> : tensor<8x8xf32> -> tensor<4x8xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, I64Attr:$axis,
                       Galv_DeviceGroupAttr:$group);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = [{
    $input `axis` `=` $axis `group` `=` $group attr-dict `:` type($input) `->`
    type($result)
  }];
}

def Galv_AllToAllOp : Galv_GroupOp<"all_to_all",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "trade pieces: split one axis, gather another";
  let description = [{
    Each rank splits its input into group-size pieces along `split_axis`,
    sends piece k to the k-th rank of the group, and concatenates what it
    receives along `concat_axis` (Ulysses sequence parallelism: from a split
    sequence to split heads and back).

    ```mlir
    %y = galv.all_to_all %x split = 1 concat = 2 group = <size = 2, stride = 1> : tensor<2x4x4x8xf32> -> tensor<2x2x8x8xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$split_axis,
                       I64Attr:$concat_axis, Galv_DeviceGroupAttr:$group);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $input `split` `=` $split_axis `concat` `=` $concat_axis `group` `=`
    $group attr-dict `:` type($input) `->` type($result)
  }];
}

def Galv_ShardSliceOp : Galv_GroupOp<"shard_slice",
    [Pure, InferTypeOpAdaptor]> {
  let summary = "this rank's piece of a tensor every rank of a group holds";
  let description = [{
    No communication: the input is the same on every rank of the group and
    each keeps the piece at its group index along `axis`.

    ```mlir
    %y = galv.shard_slice %x axis = 0 group = <size = 2, stride = 2> : tensor<8x8xi64> -> tensor<4x8xi64>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$axis,
                       Galv_DeviceGroupAttr:$group);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $input `axis` `=` $axis `group` `=` $group attr-dict `:` type($input) `->`
    type($result)
  }];
}

def Galv_StageTransferOp : Galv_ComputeOp<"stage_transfer",
    [Pure, SameOperandsAndResultType]> {
  let summary = "pass a value from one pipeline stage to another";
  let description = [{
    Each rank of stage `from` sends its piece to the rank at the same
    position in stage `to`, where the result lives (activations forward,
    their gradients back: the adjoint is the transfer the other way).

    ```mlir
    %h = galv.stage_transfer %x from = 0 to = 1 : tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$from, I64Attr:$to);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = [{
    $input `from` `=` $from `to` `=` $to attr-dict `:` type($input)
  }];
}

def Galv_StageBroadcastOp : Galv_ComputeOp<"stage_broadcast",
    [Pure, SameOperandsAndResultType]> {
  let summary = "a value of one pipeline stage, on every stage";
  let description = [{
    The loss is computed by the last stage; every rank reports it. Its
    gradient is the source's own (the copies are not summed).

    ```mlir
    %l = galv.stage_broadcast %loss from = 1 : tensor<f32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$from);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "$input `from` `=` $from attr-dict `:` type($input)";
}

def Galv_ReplicateOp : Galv_GroupOp<"replicate",
    [Pure, SameOperandsAndResultType]> {
  let summary = "identity whose gradient is summed over a group";
  let description = [{
    Megatron's `f`: a value that every rank of the group holds alike enters a
    computation that differs per rank (a column-parallel linear), so the
    gradients the ranks compute for it are partial sums.

    ```mlir
    %y = galv.replicate %x group = <size = 2, stride = 1> : tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins Galv_FloatTensor:$input, Galv_DeviceGroupAttr:$group);
  let results = (outs Galv_FloatTensor:$result);
  let assemblyFormat = "$input `group` `=` $group attr-dict `:` type($input)";
}

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

def Galv_ParameterOp : Galv_Op<"parameter",
    [Symbol, HasParent<"::mlir::ModuleOp">]> {
  let summary = "declare a named model parameter";
  let description = [{
    A weight of the model under the name it has in the model's state dict (the
    ONNX initializer name). Its bytes live in the safetensors file named by the
    module attribute `galv.weights`. `trainable` parameters get gradients and
    optimizer state; the others are frozen (buffers such as rotary tables and
    masks): read like any weight and carried into plans and checkpoints, but
    never updated. The importer says why in `galv.frozen`.

    ```mlir
    galv.parameter @"transformer.wte.weight" : tensor<1000x64xf32> trainable
    galv.parameter @rotary.cos : tensor<8x4xf32> {galv.frozen = "rule: ..."}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<Galv_Tensor>:$type, UnitAttr:$trainable);
  let assemblyFormat = [{
    $sym_name `:` $type (`trainable` $trainable^)? attr-dict
  }];
  let extraClassDeclaration = [{
    ::mlir::RankedTensorType getTensorType() {
      return ::llvm::cast<::mlir::RankedTensorType>(getType());
    }
  }];
}

def Galv_GetParameterOp : Galv_ComputeOp<"get_parameter",
    [Pure, DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "read a declared parameter";
  let description = [{
    With `shard`, this rank reads its piece of the parameter (after
    partitioning); the result has the piece's type.

    ```mlir
    %w = galv.get_parameter @"transformer.wte.weight" : tensor<1000x64xf32>
    %q = galv.get_parameter @"h.0.attn.c_attn.weight"
        shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>]>
        : tensor<64x96xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$name,
                       OptionalAttr<Galv_ShardAttr>:$shard);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "$name (`shard` $shard^)? attr-dict `:` type($result)";
  let builders = [OpBuilder<(ins "::mlir::Type":$type,
                                 "::mlir::FlatSymbolRefAttr":$name), [{
    build($_builder, $_state, type, name, ShardAttr());
  }]>];
}

//===----------------------------------------------------------------------===//
// Layers
//===----------------------------------------------------------------------===//

def Galv_LayerTypeOp : Galv_Op<"layer_type", [
    FunctionOpInterface, IsolatedFromAbove, HasParent<"::mlir::ModuleOp">,
    SingleBlockImplicitTerminator<"::mlir::galv::ReturnOp">]> {
  let summary = "the body shared by structurally identical layers";
  let description = [{
    One Transformer block, outlined. The leading arguments are the layer's
    activations, the trailing `param_names.size()` arguments its parameters;
    `param_names` names each parameter relative to the layer (for example
    `attn.c_attn.weight`). Layer instances (`galv.layer`) call it. The
    optional `cost` holds the cost-model inputs for this type.

    ```mlir
    galv.layer_type @block(%x: tensor<2x8x64xf32>, %g: tensor<64xf32>)
        -> tensor<2x8x64xf32>
        attributes {kind = #galv.layer_kind<decoder>, param_names = ["ln.weight"]} {
      %y = galv.rms_norm %x, %g eps = 1.0e-06 : tensor<2x8x64xf32>, tensor<64xf32>
      galv.return %y : tensor<2x8x64xf32>
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,
                       TypeAttrOf<FunctionType>:$function_type,
                       OptionalAttr<DictArrayAttr>:$arg_attrs,
                       OptionalAttr<DictArrayAttr>:$res_attrs,
                       Galv_LayerKindAttr:$kind,
                       StrArrayAttr:$param_names,
                       OptionalAttr<Galv_LayerCostAttr>:$cost);
  let regions = (region SizedRegion<1>:$body);
  let hasCustomAssemblyFormat = 1;
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::Region *getCallableRegion() { return &getBody(); }
    ::llvm::ArrayRef<::mlir::Type> getArgumentTypes() {
      return getFunctionType().getInputs();
    }
    ::llvm::ArrayRef<::mlir::Type> getResultTypes() {
      return getFunctionType().getResults();
    }
    unsigned getNumParams() { return getParamNames().size(); }
    unsigned getNumActivationInputs() {
      return getFunctionType().getNumInputs() - getNumParams();
    }
  }];
}

def Galv_ReturnOp : Galv_Op<"return",
    [Pure, HasParent<"LayerTypeOp">, Terminator, ReturnLike]> {
  let summary = "return the outputs of a layer type";
  let arguments = (ins Variadic<AnyType>:$operands);
  let builders = [OpBuilder<(ins), [{ build($_builder, $_state, {}); }]>];
  let assemblyFormat = "attr-dict ($operands^ `:` type($operands))?";
  let hasVerifier = 1;
}

def Galv_LayerOp : Galv_Op<"layer", [AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<SymbolUserOpInterface>]> {
  let summary = "one layer instance: a call of a layer type";
  let description = [{
    Runs the layer type `type` on `inputs` (activations) with this instance's
    `params` (usually `galv.get_parameter` results). `strategy` is the parallel
    strategy of this instance; layers are numbered in program order.

    ```mlir
    %h1 = galv.layer @block(%h0) params(%g0) {strategy = #galv.strategy<tp = 2, dp = 1>} : (tensor<2x8x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins FlatSymbolRefAttr:$layer_type,
                       Variadic<Galv_Tensor>:$inputs,
                       Variadic<Galv_Tensor>:$params,
                       OptionalAttr<Galv_StrategyAttr>:$strategy);
  let results = (outs Variadic<Galv_Tensor>:$results);
  let assemblyFormat = [{
    $layer_type `(` $inputs `)` `params` `(` $params `)` attr-dict `:`
    functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Stage programs (galv-schedule)
//===----------------------------------------------------------------------===//

// The ops below only appear in the per-stage functions galv-schedule builds:
// they are instructions of one rank's program, not graph ops, so no
// partition, adjoint or cost rule applies and --emit-plan lowers them itself.

def Galv_SendOp : Galv_Op<"send"> {
  let summary = "send a value to the same position in another stage";
  let description = [{
    The sending end of a `galv.stage_transfer` (or of a
    `galv.stage_broadcast`, once per other stage): each rank sends its piece
    to the rank at its position in stage `to`. The result is a one-element
    token that nothing reads; it stands for the plan instruction's output,
    which takes an arena slot like any other.

    ```mlir
    %t = galv.send %x to = 1 : tensor<2x8x64xf32> -> tensor<1xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input, I64Attr:$to);
  let results = (outs 1DTensorOf<[F32]>:$token);
  let assemblyFormat = [{
    $input `to` `=` $to attr-dict `:` type($input) `->` type($token)
  }];
  let builders = [OpBuilder<(ins "::mlir::Value":$input, "int64_t":$to), [{
    build($_builder, $_state,
          ::mlir::RankedTensorType::get({1}, $_builder.getF32Type()), input,
          to);
  }]>];
}

def Galv_RecvOp : Galv_Op<"recv"> {
  let summary = "receive a value from the same position in another stage";
  let description = [{
    The receiving end of a `galv.stage_transfer` or `galv.stage_broadcast`:
    the piece the rank at this rank's position in stage `from` sends.

    ```mlir
    %x = galv.recv from = 0 : tensor<2x8x64xf32>
    ```
  }];
  let arguments = (ins I64Attr:$from);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "`from` `=` $from attr-dict `:` type($result)";
}

def Galv_CopyOp : Galv_Op<"copy", [SameOperandsAndResultType]> {
  let summary = "a fresh arena copy of a value";
  let description = [{
    A stage function's results live in the arena until the program ends.
    galv-schedule copies a result that is an input, a weight or a constant,
    or that an earlier result already returns, into a buffer of its own.

    ```mlir
    %y = galv.copy %x : tensor<2x3xf32>
    ```
  }];
  let arguments = (ins Galv_Tensor:$input);
  let results = (outs Galv_Tensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

#endif // GALV_OPS_TD
