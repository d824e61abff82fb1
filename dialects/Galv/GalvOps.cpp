//===- GalvOps.cpp - galv op verifiers, shape inference and folders -------===//

#include "Galv/Builders.h"
#include "Galv/Galv.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/FunctionImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"

using namespace mlir;
using namespace mlir::galv;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

FailureOr<SmallVector<int64_t>>
mlir::galv::broadcastShapes(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  size_t rank = std::max(lhs.size(), rhs.size());
  SmallVector<int64_t> result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t l = i < lhs.size() ? lhs[lhs.size() - 1 - i] : 1;
    int64_t r = i < rhs.size() ? rhs[rhs.size() - 1 - i] : 1;
    if (l != r && l != 1 && r != 1)
      return failure();
    result[rank - 1 - i] = l == 1 ? r : l;
  }
  return result;
}

static RankedTensorType tensorOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

static std::string shapeString(ArrayRef<int64_t> shape) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << '[';
  llvm::interleaveComma(shape, os);
  os << ']';
  return text;
}

/// Normalises `axis` in [-rank, rank) to [0, rank).
static FailureOr<int64_t> normaliseAxis(std::optional<Location> loc,
                                        StringRef what, int64_t axis,
                                        int64_t rank) {
  if (axis < -rank || axis >= rank)
    return emitOptionalError(loc, what, " ", axis, " is out of range for rank ",
                             rank);
  return axis < 0 ? axis + rank : axis;
}

template <typename Adaptor>
static LogicalResult inferBroadcast(std::optional<Location> loc,
                                    Adaptor adaptor, Type elementType,
                                    SmallVectorImpl<Type> &inferred) {
  RankedTensorType lhs = tensorOf(adaptor.getLhs());
  RankedTensorType rhs = tensorOf(adaptor.getRhs());
  auto shape = broadcastShapes(lhs.getShape(), rhs.getShape());
  if (failed(shape))
    return emitOptionalError(loc, "shapes ", shapeString(lhs.getShape()),
                             " and ", shapeString(rhs.getShape()),
                             " do not broadcast");
  inferred.push_back(RankedTensorType::get(*shape, elementType));
  return success();
}

#define GALV_BROADCAST_INFER(OP)                                               \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *, std::optional<Location> loc, Adaptor adaptor,             \
      SmallVectorImpl<Type> &inferred) {                                       \
    return inferBroadcast(                                                     \
        loc, adaptor, tensorOf(adaptor.getLhs()).getElementType(), inferred);  \
  }
GALV_BROADCAST_INFER(AddOp)
GALV_BROADCAST_INFER(SubOp)
GALV_BROADCAST_INFER(MulOp)
GALV_BROADCAST_INFER(DivOp)
GALV_BROADCAST_INFER(PowOp)
GALV_BROADCAST_INFER(MaxOp)
GALV_BROADCAST_INFER(MinOp)
GALV_BROADCAST_INFER(AndOp)
GALV_BROADCAST_INFER(OrOp)
#undef GALV_BROADCAST_INFER

LogicalResult CompareOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &inferred) {
  return inferBroadcast(loc, adaptor, IntegerType::get(context, 1), inferred);
}

LogicalResult WhereOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  RankedTensorType cond = tensorOf(adaptor.getCondition());
  RankedTensorType onTrue = tensorOf(adaptor.getOnTrue());
  RankedTensorType onFalse = tensorOf(adaptor.getOnFalse());
  if (onTrue.getElementType() != onFalse.getElementType())
    return emitOptionalError(loc, "on_true and on_false element types differ: ",
                             onTrue.getElementType(), " vs ",
                             onFalse.getElementType());
  auto values = broadcastShapes(onTrue.getShape(), onFalse.getShape());
  FailureOr<SmallVector<int64_t>> shape = failure();
  if (succeeded(values))
    shape = broadcastShapes(cond.getShape(), *values);
  if (failed(shape))
    return emitOptionalError(loc, "shapes ", shapeString(cond.getShape()), ", ",
                             shapeString(onTrue.getShape()), " and ",
                             shapeString(onFalse.getShape()),
                             " do not broadcast");
  inferred.push_back(RankedTensorType::get(*shape, onTrue.getElementType()));
  return success();
}

/// x + 0 -> x and x * 1 -> x, when the constant does not broadcast x to a
/// bigger shape.
static Value foldIdentityOperand(Value lhs, Value rhs, Attribute lhsAttr,
                                 Attribute rhsAttr, Type resultType,
                                 double identity) {
  auto isIdentity = [&](Attribute attr) {
    auto splat = dyn_cast_or_null<SplatElementsAttr>(attr);
    if (!splat)
      return false;
    if (isa<FloatType>(splat.getElementType()))
      return splat.getSplatValue<APFloat>().convertToDouble() == identity;
    return splat.getElementType().isSignlessInteger() &&
           !splat.getElementType().isInteger(1) &&
           splat.getSplatValue<APInt>().getSExtValue() ==
               static_cast<int64_t>(identity);
  };
  if (isIdentity(rhsAttr) && lhs.getType() == resultType)
    return lhs;
  if (isIdentity(lhsAttr) && rhs.getType() == resultType)
    return rhs;
  return Value();
}

OpFoldResult AddOp::fold(FoldAdaptor adaptor) {
  return foldIdentityOperand(getLhs(), getRhs(), adaptor.getLhs(),
                             adaptor.getRhs(), getType(), 0.0);
}

OpFoldResult MulOp::fold(FoldAdaptor adaptor) {
  return foldIdentityOperand(getLhs(), getRhs(), adaptor.getLhs(),
                             adaptor.getRhs(), getType(), 1.0);
}

//===----------------------------------------------------------------------===//
// CastOp / ConstantOp
//===----------------------------------------------------------------------===//

OpFoldResult CastOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

//===----------------------------------------------------------------------===//
// MatmulOp / LinearOp
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  RankedTensorType lhs = tensorOf(adaptor.getLhs());
  RankedTensorType rhs = tensorOf(adaptor.getRhs());
  if (lhs.getRank() < 2 || rhs.getRank() < 2)
    return emitOptionalError(loc, "operands must have rank >= 2, got ",
                             lhs.getRank(), " and ", rhs.getRank());
  ArrayRef<int64_t> l = lhs.getShape(), r = rhs.getShape();
  bool tl = adaptor.getTransposeLhs(), tr = adaptor.getTransposeRhs();
  int64_t m = tl ? l.back() : l[l.size() - 2];
  int64_t k = tl ? l[l.size() - 2] : l.back();
  int64_t kr = tr ? r.back() : r[r.size() - 2];
  int64_t n = tr ? r[r.size() - 2] : r.back();
  if (k != kr)
    return emitOptionalError(loc, "contracting dimensions differ: ", k, " vs ",
                             kr);
  auto batch = broadcastShapes(l.drop_back(2), r.drop_back(2));
  if (failed(batch))
    return emitOptionalError(loc, "batch dimensions ",
                             shapeString(l.drop_back(2)), " and ",
                             shapeString(r.drop_back(2)), " do not broadcast");
  SmallVector<int64_t> shape = *batch;
  shape.push_back(m);
  shape.push_back(n);
  inferred.push_back(RankedTensorType::get(shape, lhs.getElementType()));
  return success();
}

LogicalResult LinearOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  RankedTensorType input = tensorOf(adaptor.getInput());
  RankedTensorType weight = tensorOf(adaptor.getWeight());
  if (input.getRank() < 1)
    return emitOptionalError(loc, "input must have rank >= 1");
  if (weight.getRank() != 2)
    return emitOptionalError(loc, "weight must have rank 2, got ",
                             weight.getRank());
  if (input.getElementType() != weight.getElementType())
    return emitOptionalError(loc, "input and weight element types differ");
  bool outIn = adaptor.getLayout() == WeightLayout::out_in;
  int64_t inFeatures = weight.getDimSize(outIn ? 1 : 0);
  int64_t outFeatures = weight.getDimSize(outIn ? 0 : 1);
  if (input.getShape().back() != inFeatures)
    return emitOptionalError(loc, "input has ", input.getShape().back(),
                             " features but the weight (layout ",
                             stringifyEnum(adaptor.getLayout()), ") expects ",
                             inFeatures);
  if (Value bias = adaptor.getBias()) {
    RankedTensorType biasType = tensorOf(bias);
    if (biasType.getShape() != ArrayRef<int64_t>{outFeatures} ||
        biasType.getElementType() != input.getElementType())
      return emitOptionalError(
          loc, "bias must be ",
          RankedTensorType::get({outFeatures}, input.getElementType()),
          ", got ", biasType);
  }
  SmallVector<int64_t> shape(input.getShape());
  shape.back() = outFeatures;
  inferred.push_back(RankedTensorType::get(shape, input.getElementType()));
  return success();
}

int64_t LinearOp::getInFeatures() {
  return getWeight().getType().getDimSize(
      getLayout() == WeightLayout::out_in ? 1 : 0);
}

int64_t LinearOp::getOutFeatures() {
  return getWeight().getType().getDimSize(
      getLayout() == WeightLayout::out_in ? 0 : 1);
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::verify() {
  if (getInput().getType().getNumElements() != getType().getNumElements())
    return emitOpError() << "cannot reshape "
                         << getInput().getType().getNumElements()
                         << " elements into " << getType().getNumElements();
  return success();
}

OpFoldResult ReshapeOp::fold(FoldAdaptor adaptor) {
  if (getInput().getType() == getType())
    return getInput();
  // reshape(reshape(x)) -> reshape(x).
  if (auto producer = getInput().getDefiningOp<ReshapeOp>()) {
    getInputMutable().assign(producer.getInput());
    return getResult();
  }
  if (auto dense = dyn_cast_or_null<DenseElementsAttr>(adaptor.getInput()))
    return dense.reshape(getType());
  return {};
}

LogicalResult ExpandOp::verify() {
  auto shape =
      broadcastShapes(getInput().getType().getShape(), getType().getShape());
  if (failed(shape) || ArrayRef<int64_t>(*shape) != getType().getShape())
    return emitOpError() << "cannot broadcast "
                         << shapeString(getInput().getType().getShape())
                         << " to " << shapeString(getType().getShape());
  return success();
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  RankedTensorType input = tensorOf(adaptor.getInput());
  ArrayRef<int64_t> perm = adaptor.getPermutation();
  if (static_cast<int64_t>(perm.size()) != input.getRank())
    return emitOptionalError(loc, "permutation has ", perm.size(),
                             " entries but the input has rank ",
                             input.getRank());
  SmallVector<bool> seen(perm.size(), false);
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= input.getRank() || seen[p])
      return emitOptionalError(loc, "permutation ", shapeString(perm),
                               " is not a permutation of [0, ", input.getRank(),
                               ")");
    seen[p] = true;
    shape.push_back(input.getDimSize(p));
  }
  inferred.push_back(RankedTensorType::get(shape, input.getElementType()));
  return success();
}

OpFoldResult TransposeOp::fold(FoldAdaptor) {
  ArrayRef<int64_t> perm = getPermutation();
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return getInput();
  // transpose(transpose(x, p), q) -> transpose(x, p o q).
  if (auto producer = getInput().getDefiningOp<TransposeOp>()) {
    ArrayRef<int64_t> inner = producer.getPermutation();
    SmallVector<int64_t> composed;
    for (int64_t p : perm)
      composed.push_back(inner[p]);
    getInputMutable().assign(producer.getInput());
    setPermutation(composed);
    if (llvm::equal(composed, llvm::seq<int64_t>(0, composed.size())))
      return getInput();
    return getResult();
  }
  return {};
}

LogicalResult SliceOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  RankedTensorType input = tensorOf(adaptor.getInput());
  ArrayRef<int64_t> starts = adaptor.getStarts(), limits = adaptor.getLimits(),
                    steps = adaptor.getSteps();
  int64_t rank = input.getRank();
  if (static_cast<int64_t>(starts.size()) != rank ||
      static_cast<int64_t>(limits.size()) != rank ||
      static_cast<int64_t>(steps.size()) != rank)
    return emitOptionalError(loc, "starts, limits and steps need ", rank,
                             " entries each (the input rank)");
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    if (steps[d] < 1)
      return emitOptionalError(loc, "steps[", d, "] must be positive, got ",
                               steps[d]);
    if (starts[d] < 0 || starts[d] > limits[d] ||
        limits[d] > input.getDimSize(d))
      return emitOptionalError(loc, "dimension ", d, ": need 0 <= start ",
                               starts[d], " <= limit ", limits[d],
                               " <= ", input.getDimSize(d));
    shape.push_back(llvm::divideCeil(limits[d] - starts[d], steps[d]));
  }
  inferred.push_back(RankedTensorType::get(shape, input.getElementType()));
  return success();
}

OpFoldResult SliceOp::fold(FoldAdaptor) {
  if (getInput().getType() == getType())
    return getInput();
  return {};
}

LogicalResult ConcatOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  if (adaptor.getInputs().empty())
    return emitOptionalError(loc, "needs at least one input");
  RankedTensorType first = tensorOf(adaptor.getInputs().front());
  auto axis = normaliseAxis(loc, "axis", adaptor.getAxis(), first.getRank());
  if (failed(axis))
    return failure();
  SmallVector<int64_t> shape(first.getShape());
  shape[*axis] = 0;
  for (auto [i, value] : llvm::enumerate(adaptor.getInputs())) {
    RankedTensorType type = tensorOf(value);
    if (type.getRank() != first.getRank())
      return emitOptionalError(loc, "input ", i, " has rank ", type.getRank(),
                               ", expected ", first.getRank());
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (d != *axis && type.getDimSize(d) != first.getDimSize(d))
        return emitOptionalError(
            loc, "input ", i, " has shape ", shapeString(type.getShape()),
            " which differs from ", shapeString(first.getShape()),
            " outside axis ", *axis);
    shape[*axis] += type.getDimSize(*axis);
  }
  inferred.push_back(RankedTensorType::get(shape, first.getElementType()));
  return success();
}

LogicalResult SplitOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &inferred) {
  RankedTensorType input = tensorOf(adaptor.getInput());
  auto axis = normaliseAxis(loc, "axis", adaptor.getAxis(), input.getRank());
  if (failed(axis))
    return failure();
  int64_t total = 0;
  for (int64_t size : adaptor.getSizes()) {
    if (size < 0)
      return emitOptionalError(loc, "split sizes must be non-negative");
    total += size;
  }
  if (total != input.getDimSize(*axis))
    return emitOptionalError(loc, "split sizes add up to ", total,
                             " but dimension ", *axis, " has ",
                             input.getDimSize(*axis));
  for (int64_t size : adaptor.getSizes()) {
    SmallVector<int64_t> shape(input.getShape());
    shape[*axis] = size;
    inferred.push_back(RankedTensorType::get(shape, input.getElementType()));
  }
  return success();
}

Value mlir::galv::nonNegativeIndices(OpBuilder &b, Location loc, Value indices,
                                     int64_t size) {
  DenseIntElementsAttr known;
  if (matchPattern(indices, m_Constant(&known)) &&
      llvm::none_of(known.getValues<APInt>(),
                    [](const APInt &v) { return v.isNegative(); }))
    return indices;
  Type element = cast<RankedTensorType>(indices.getType()).getElementType();
  auto scalar = [&](int64_t v) -> Value {
    auto type = RankedTensorType::get({}, element);
    return ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, b.getIntegerAttr(element, v)));
  };
  Value negative =
      CompareOp::create(b, loc, ComparePredicate::lt, indices, scalar(0));
  Value shifted = AddOp::create(b, loc, indices, scalar(size));
  return WhereOp::create(b, loc, negative, shifted, indices);
}

LogicalResult GatherOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  RankedTensorType data = tensorOf(adaptor.getData());
  RankedTensorType indices = tensorOf(adaptor.getIndices());
  auto axis = normaliseAxis(loc, "axis", adaptor.getAxis(), data.getRank());
  if (failed(axis))
    return failure();
  SmallVector<int64_t> shape(data.getShape().take_front(*axis));
  llvm::append_range(shape, indices.getShape());
  llvm::append_range(shape, data.getShape().drop_front(*axis + 1));
  inferred.push_back(RankedTensorType::get(shape, data.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Reductions and normalisation
//===----------------------------------------------------------------------===//

LogicalResult ReduceOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  RankedTensorType input = tensorOf(adaptor.getInput());
  SmallVector<bool> reduced(input.getRank(), false);
  for (int64_t axis : adaptor.getAxes()) {
    if (axis < 0 || axis >= input.getRank())
      return emitOptionalError(loc, "axis ", axis, " is out of range for rank ",
                               input.getRank());
    if (reduced[axis])
      return emitOptionalError(loc, "axis ", axis, " is listed twice");
    reduced[axis] = true;
  }
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < input.getRank(); ++d) {
    if (!reduced[d])
      shape.push_back(input.getDimSize(d));
    else if (adaptor.getKeepdims())
      shape.push_back(1);
  }
  inferred.push_back(RankedTensorType::get(shape, input.getElementType()));
  return success();
}

LogicalResult SoftmaxOp::verify() {
  if (failed(normaliseAxis(getLoc(), "axis", getAxis(),
                           getInput().getType().getRank())))
    return failure();
  return success();
}

LogicalResult LogSoftmaxOp::verify() {
  return normaliseAxis(getLoc(), "axis", getAxis(),
                       getInput().getType().getRank());
}

LogicalResult ArgMaxOp::inferReturnTypes(MLIRContext *context,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &inferred) {
  RankedTensorType input = tensorOf(adaptor.getInput());
  FailureOr<int64_t> axis =
      normaliseAxis(loc, "axis", adaptor.getAxis(), input.getRank());
  if (failed(axis))
    return failure();
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < input.getRank(); ++d) {
    if (d != *axis)
      shape.push_back(input.getDimSize(d));
    else if (adaptor.getKeepdims())
      shape.push_back(1);
  }
  inferred.push_back(
      RankedTensorType::get(shape, IntegerType::get(context, 64)));
  return success();
}

/// Checks that `scale` is a vector as long as the last dimension of `input`.
static LogicalResult verifyNormWeight(Operation *op, StringRef name,
                                      RankedTensorType input,
                                      RankedTensorType weight) {
  if (input.getRank() < 1)
    return op->emitOpError() << "input must have rank >= 1";
  int64_t features = input.getShape().back();
  if (weight.getShape() != ArrayRef<int64_t>{features} ||
      weight.getElementType() != input.getElementType())
    return op->emitOpError()
           << name << " must be "
           << RankedTensorType::get({features}, input.getElementType())
           << " to match the normalised dimension, got " << weight;
  return success();
}

/// A norm's (or its gradient's) scale and epsilon.
template <typename NormOp> static LogicalResult verifyNorm(NormOp op) {
  if (failed(verifyNormWeight(op, "scale", op.getInput().getType(),
                              op.getScale().getType())))
    return failure();
  if (op.getEpsilon().convertToDouble() < 0.0)
    return op.emitOpError() << "epsilon must be non-negative";
  return success();
}

LogicalResult LayerNormOp::verify() {
  if (getBias() && failed(verifyNormWeight(*this, "bias", getInput().getType(),
                                           getBias().getType())))
    return failure();
  return verifyNorm(*this);
}

LogicalResult RmsNormOp::verify() { return verifyNorm(*this); }

LogicalResult AddNormOp::verify() {
  if (getRms() && getBias())
    return emitOpError() << "an RMS norm takes no bias";
  if (getBias() && failed(verifyNormWeight(*this, "bias", getInput().getType(),
                                           getBias().getType())))
    return failure();
  return verifyNorm(*this);
}

//===----------------------------------------------------------------------===//
// Transformer ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  RankedTensorType table = tensorOf(adaptor.getTable());
  RankedTensorType ids = tensorOf(adaptor.getIds());
  if (table.getRank() != 2)
    return emitOptionalError(loc, "table must have rank 2, got ",
                             table.getRank());
  SmallVector<int64_t> shape(ids.getShape());
  shape.push_back(table.getDimSize(1));
  inferred.push_back(RankedTensorType::get(shape, table.getElementType()));
  return success();
}

/// torch.nn.Embedding's padding_idx: a vocabulary id, so within the rows of
/// every rank's block of a table split over `group`.
static LogicalResult verifyPaddingIdx(Operation *op,
                                      std::optional<uint64_t> padding,
                                      DeviceGroupAttr group, int64_t rows) {
  if (!padding) {
    if (group)
      return op->emitOpError("vocab_group without padding_idx");
    return success();
  }
  int64_t vocab = rows * (group ? group.getSize() : 1);
  int64_t id = static_cast<int64_t>(*padding);
  if (id < 0 || id >= vocab)
    return op->emitOpError() << "padding_idx " << id
                             << " outside the vocabulary [0, " << vocab << ")";
  return success();
}

LogicalResult EmbeddingOp::verify() {
  return verifyPaddingIdx(
      *this, getPaddingIdx(), getVocabGroupAttr(),
      cast<RankedTensorType>(getTable().getType()).getDimSize(0));
}

LogicalResult AdamWUpdateOp::verify() {
  if (getLr().getType().getRank() != 0)
    return emitOpError() << "lr and step must be scalars, got "
                         << getLr().getType();
  return success();
}

LogicalResult EmbeddingGradOp::verify() {
  RankedTensorType grad = getGrad().getType(), ids = getIds().getType();
  if (grad.getRank() != ids.getRank() + 1 ||
      grad.getShape().drop_back() != ids.getShape())
    return emitOpError() << "grad shape " << shapeString(grad.getShape())
                         << " must be the ids shape "
                         << shapeString(ids.getShape()) << " plus a row size";
  SmallVector<int64_t> table = {static_cast<int64_t>(getRows()),
                                grad.getShape().back()};
  if (static_cast<int64_t>(getRows()) < 1 ||
      getType().getShape() != ArrayRef<int64_t>(table) ||
      getType().getElementType() != grad.getElementType())
    return emitOpError() << "result must be "
                         << RankedTensorType::get(table, grad.getElementType());
  return verifyPaddingIdx(*this, getPaddingIdx(), getVocabGroupAttr(),
                          static_cast<int64_t>(getRows()));
}

LogicalResult RotaryOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType cos = getCos().getType(), sin = getSin().getType();
  if (input.getRank() != 4)
    return emitOpError() << "input must be [batch, heads, seq, head_dim], got "
                         << input;
  if (cos != sin)
    return emitOpError() << "cos and sin must have the same type, got " << cos
                         << " and " << sin;
  if (cos.getElementType() != input.getElementType())
    return emitOpError() << "cos/sin element type must match the input's";
  if (cos.getRank() < 1)
    return emitOpError() << "cos/sin must have rank >= 1";
  int64_t rotated = cos.getShape().back();
  if (rotated < 2 || rotated % 2 != 0 || rotated > input.getShape().back())
    return emitOpError() << "rotated dimension " << rotated
                         << " must be even and at most the head dimension "
                         << input.getShape().back();
  SmallVector<int64_t> target(input.getShape());
  target.back() = rotated;
  auto shape = broadcastShapes(cos.getShape(), target);
  if (failed(shape) || ArrayRef<int64_t>(*shape) != ArrayRef<int64_t>(target))
    return emitOpError() << "cos/sin shape " << shapeString(cos.getShape())
                         << " does not broadcast to " << shapeString(target);
  return success();
}

/// The result type of attention over `q`, `k`, `v` (and `mask`), or a
/// failure reported at `loc`; galv.attention_grad checks the same operands.
template <typename Adaptor>
static FailureOr<RankedTensorType>
attentionResultType(std::optional<Location> loc, Adaptor adaptor) {
  RankedTensorType q = tensorOf(adaptor.getQuery());
  RankedTensorType k = tensorOf(adaptor.getKey());
  RankedTensorType v = tensorOf(adaptor.getValue());
  if (q.getRank() != 4 || k.getRank() != 4 || v.getRank() != 4)
    return emitOptionalError(
        loc, "query, key and value must be [batch, heads, seq, head_dim]");
  if (q.getElementType() != k.getElementType() ||
      q.getElementType() != v.getElementType())
    return emitOptionalError(loc, "query, key and value element types differ");
  int64_t batch = q.getDimSize(0), heads = q.getDimSize(1);
  int64_t kvHeads = k.getDimSize(1);
  if (k.getDimSize(0) != batch || v.getDimSize(0) != batch)
    return emitOptionalError(loc, "batch sizes differ");
  if (v.getDimSize(1) != kvHeads || v.getDimSize(2) != k.getDimSize(2))
    return emitOptionalError(loc, "key ", k, " and value ", v,
                             " disagree on heads or sequence length");
  if (kvHeads < 1 || heads % kvHeads != 0)
    return emitOptionalError(loc, "query heads ", heads,
                             " must be a multiple of key/value heads ",
                             kvHeads);
  if (q.getDimSize(3) != k.getDimSize(3))
    return emitOptionalError(loc, "query and key head dimensions differ: ",
                             q.getDimSize(3), " vs ", k.getDimSize(3));
  int64_t sq = q.getDimSize(2), sk = k.getDimSize(2);
  if (adaptor.getCausal() && sk < sq)
    return emitOptionalError(loc, "causal attention needs at least as many "
                                  "keys as queries");
  if (Value mask = adaptor.getMask()) {
    RankedTensorType maskType = tensorOf(mask);
    Type elem = maskType.getElementType();
    // A float mask is added to the scores, which are fp32 whatever the
    // operands (a bf16 program keeps its additive masks fp32).
    if (!elem.isInteger(1) && !isa<FloatType>(elem))
      return emitOptionalError(loc, "mask must be i1 or a float type, got ",
                               elem);
    SmallVector<int64_t> scores = {batch, heads, sq, sk};
    auto shape = broadcastShapes(maskType.getShape(), scores);
    if (failed(shape) || ArrayRef<int64_t>(*shape) != ArrayRef<int64_t>(scores))
      return emitOptionalError(loc, "mask shape ",
                               shapeString(maskType.getShape()),
                               " does not broadcast to ", shapeString(scores));
  }
  return RankedTensorType::get({batch, heads, sq, v.getDimSize(3)},
                               q.getElementType());
}

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  FailureOr<RankedTensorType> result = attentionResultType(loc, adaptor);
  if (failed(result))
    return failure();
  inferred.push_back(*result);
  return success();
}

LogicalResult
AttentionGradOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                  Adaptor adaptor,
                                  SmallVectorImpl<Type> &inferred) {
  FailureOr<RankedTensorType> result = attentionResultType(loc, adaptor);
  if (failed(result))
    return failure();
  if (tensorOf(adaptor.getGrad()) != *result)
    return emitOptionalError(loc, "grad ", tensorOf(adaptor.getGrad()),
                             " must have the attention result's type ",
                             *result);
  for (Value operand :
       {adaptor.getQuery(), adaptor.getKey(), adaptor.getValue()})
    inferred.push_back(operand.getType());
  return success();
}

int64_t AttentionOp::getNumHeads() {
  return getQuery().getType().getDimSize(1);
}
int64_t AttentionOp::getNumKvHeads() {
  return getKey().getType().getDimSize(1);
}

LogicalResult
CrossEntropyOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                 Adaptor adaptor,
                                 SmallVectorImpl<Type> &inferred) {
  RankedTensorType logits = tensorOf(adaptor.getLogits());
  RankedTensorType labels = tensorOf(adaptor.getLabels());
  if (logits.getRank() < 1 ||
      logits.getShape().drop_back() != labels.getShape())
    return emitOptionalError(
        loc, "labels shape ", shapeString(labels.getShape()),
        " must be the logits shape ", shapeString(logits.getShape()),
        " without its last (class) dimension");
  switch (adaptor.getReduction()) {
  case ReduceKind::mean:
  case ReduceKind::sum:
    inferred.push_back(RankedTensorType::get({}, logits.getElementType()));
    return success();
  default:
    return emitOptionalError(loc, "reduction must be mean or sum, got ",
                             stringifyEnum(adaptor.getReduction()));
  }
}

LogicalResult CrossEntropyGradOp::verify() {
  RankedTensorType logits = getLogits().getType();
  RankedTensorType labels = getLabels().getType();
  if (logits.getRank() < 1 ||
      logits.getShape().drop_back() != labels.getShape())
    return emitOpError() << "labels shape " << shapeString(labels.getShape())
                         << " must be the logits shape "
                         << shapeString(logits.getShape())
                         << " without its last (class) dimension";
  if (getReduction() != ReduceKind::mean && getReduction() != ReduceKind::sum)
    return emitOpError() << "reduction must be mean or sum, got "
                         << stringifyEnum(getReduction());
  RankedTensorType dloss = getDloss().getType();
  if (dloss.getRank() != 0 || dloss.getElementType() != logits.getElementType())
    return emitOpError() << "dloss must be "
                         << RankedTensorType::get({}, logits.getElementType())
                         << ", got " << dloss;
  return success();
}

LogicalResult LayerNormGradOp::verify() { return verifyNorm(*this); }
LogicalResult RmsNormGradOp::verify() { return verifyNorm(*this); }

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

LogicalResult
GetParameterOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto param =
      symbolTable.lookupNearestSymbolFrom<ParameterOp>(*this, getNameAttr());
  if (!param)
    return emitOpError() << "'" << getName()
                         << "' does not name a galv.parameter";
  Type expected = param.getType();
  if (auto shard = getShardAttr()) {
    RankedTensorType full = param.getTensorType();
    if (failed(shard.verifyFits(full, [&] { return emitOpError(); })))
      return failure();
    expected = shard.getLocalType(full);
  }
  if (expected == getType())
    return success();
  if (getShardAttr())
    return emitOpError() << "type " << getType() << " is not the shard "
                         << expected << " of parameter '" << getName()
                         << "' declared as " << param.getType();
  return emitOpError() << "type " << getType() << " differs from parameter '"
                       << getName() << "' declared as " << param.getType();
}

//===----------------------------------------------------------------------===//
// Layers
//===----------------------------------------------------------------------===//

ParseResult LayerTypeOp::parse(OpAsmParser &parser, OperationState &result) {
  auto buildType = [](Builder &builder, ArrayRef<Type> inputs,
                      ArrayRef<Type> results,
                      function_interface_impl::VariadicFlag, std::string &) {
    return builder.getFunctionType(inputs, results);
  };
  return function_interface_impl::parseFunctionOp(
      parser, result, /*allowVariadic=*/false,
      getFunctionTypeAttrName(result.name), buildType,
      getArgAttrsAttrName(result.name), getResAttrsAttrName(result.name));
}

void LayerTypeOp::print(OpAsmPrinter &printer) {
  function_interface_impl::printFunctionOp(
      printer, *this, /*isVariadic=*/false, getFunctionTypeAttrName(),
      getArgAttrsAttrName(), getResAttrsAttrName());
}

LogicalResult LayerTypeOp::verify() {
  FunctionType type = getFunctionType();
  if (getNumParams() > type.getNumInputs())
    return emitOpError() << "names " << getNumParams()
                         << " parameters but has only " << type.getNumInputs()
                         << " arguments";
  if (getNumActivationInputs() == 0)
    return emitOpError() << "needs at least one activation input before its "
                         << getNumParams() << " parameters";
  if (type.getNumResults() == 0)
    return emitOpError() << "must return at least one activation";
  for (Type t : llvm::concat<const Type>(type.getInputs(), type.getResults())) {
    auto tensor = dyn_cast<RankedTensorType>(t);
    if (!tensor || !tensor.hasStaticShape())
      return emitOpError() << "arguments and results must be statically "
                              "shaped tensors, got "
                           << t;
  }
  llvm::StringSet<> names;
  for (Attribute name : getParamNames()) {
    StringRef text = cast<StringAttr>(name).getValue();
    if (text.empty())
      return emitOpError() << "parameter names must not be empty";
    if (!names.insert(text).second)
      return emitOpError() << "parameter name '" << text << "' repeats";
  }
  if (getBody().front().getNumArguments() != type.getNumInputs())
    return emitOpError() << "entry block has "
                         << getBody().front().getNumArguments()
                         << " arguments but the type has "
                         << type.getNumInputs();
  return success();
}

LogicalResult ReturnOp::verify() {
  auto layerType = cast<LayerTypeOp>((*this)->getParentOp());
  ArrayRef<Type> expected = layerType.getFunctionType().getResults();
  if (getOperands().getTypes() != TypeRange(expected))
    return emitOpError() << "returns " << getOperands().getTypes()
                         << " but layer type @" << layerType.getSymName()
                         << " declares " << TypeRange(expected);
  return success();
}

LogicalResult LayerOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto layerType = symbolTable.lookupNearestSymbolFrom<LayerTypeOp>(
      *this, getLayerTypeAttr());
  if (!layerType)
    return emitOpError() << "'" << getLayerType()
                         << "' does not name a galv.layer_type";
  if (getParams().size() != layerType.getNumParams())
    return emitOpError() << "passes " << getParams().size()
                         << " parameters but layer type @" << getLayerType()
                         << " takes " << layerType.getNumParams();
  FunctionType type = layerType.getFunctionType();
  if (getOperandTypes() != TypeRange(type.getInputs()))
    return emitOpError() << "operand types " << getOperandTypes()
                         << " differ from layer type @" << getLayerType()
                         << " inputs " << TypeRange(type.getInputs());
  if (getResultTypes() != TypeRange(type.getResults()))
    return emitOpError() << "result types " << getResultTypes()
                         << " differ from layer type @" << getLayerType()
                         << " results " << TypeRange(type.getResults());
  return success();
}

#define GET_OP_CLASSES
#include "Galv/GalvOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Communication
//===----------------------------------------------------------------------===//

LogicalResult AllToAllOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &inferred) {
  RankedTensorType input = tensorOf(adaptor.getInput());
  DeviceGroupAttr group = adaptor.getGroupAttr();
  int64_t split = adaptor.getSplitAxis(), concat = adaptor.getConcatAxis();
  if (!group)
    return emitOptionalError(loc, "needs a device group");
  if (split < 0 || split >= input.getRank() || concat < 0 ||
      concat >= input.getRank())
    return emitOptionalError(loc, "axes out of range for rank ",
                             input.getRank());
  SmallVector<int64_t> shape(input.getShape());
  int64_t size = group.getSize();
  if (shape[split] % size != 0)
    return emitOptionalError(loc, "dimension ", split, " of ",
                             shapeString(input.getShape()),
                             " does not split into ", size, " pieces");
  shape[split] /= size;
  shape[concat] *= size;
  inferred.push_back(RankedTensorType::get(shape, input.getElementType()));
  return success();
}

/// The type after multiplying (gather) or dividing (scatter, slice) `axis`
/// by the group size.
static LogicalResult inferGroupResize(std::optional<Location> loc,
                                      RankedTensorType input, int64_t axis,
                                      DeviceGroupAttr group, bool gather,
                                      SmallVectorImpl<Type> &inferred) {
  if (!group)
    return emitOptionalError(loc, "needs a device group");
  if (axis < 0 || axis >= input.getRank())
    return emitOptionalError(loc, "axis ", axis, " is out of range for rank ",
                             input.getRank());
  SmallVector<int64_t> shape(input.getShape());
  int64_t size = group.getSize();
  if (gather) {
    shape[axis] *= size;
  } else {
    if (shape[axis] % size != 0)
      return emitOptionalError(loc, "dimension ", axis, " of ",
                               shapeString(input.getShape()),
                               " does not split into ", size, " pieces");
    shape[axis] /= size;
  }
  inferred.push_back(RankedTensorType::get(shape, input.getElementType()));
  return success();
}

LogicalResult AllGatherOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &inferred) {
  return inferGroupResize(loc, tensorOf(adaptor.getInput()), adaptor.getAxis(),
                          adaptor.getGroupAttr(), true, inferred);
}

LogicalResult
ReduceScatterOp::inferReturnTypes(MLIRContext *, std::optional<Location> loc,
                                  Adaptor adaptor,
                                  SmallVectorImpl<Type> &inferred) {
  return inferGroupResize(loc, tensorOf(adaptor.getInput()), adaptor.getAxis(),
                          adaptor.getGroupAttr(), false, inferred);
}

LogicalResult ShardSliceOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &inferred) {
  return inferGroupResize(loc, tensorOf(adaptor.getInput()), adaptor.getAxis(),
                          adaptor.getGroupAttr(), false, inferred);
}
