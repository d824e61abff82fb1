//===- HostTensor.cpp - constant folding of ONNX ops ----------------------===//

#include "HostTensor.h"
#include "FoldRules.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/Support/ErrorHandling.h"

#include <cmath>
#include <numeric>

using namespace mlir;
using namespace mlir::galv::onnx_import;

//===----------------------------------------------------------------------===//
// HostTensor
//===----------------------------------------------------------------------===//

int64_t mlir::galv::onnx_import::product(ArrayRef<int64_t> shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1},
                         std::multiplies<int64_t>());
}

int64_t HostTensor::size() const { return product(shape); }

double HostTensor::getDouble(int64_t i) const {
  return isFloat() ? floats[i] : static_cast<double>(ints[i]);
}

int64_t HostTensor::getInt(int64_t i) const {
  if (!isFloat())
    return ints[i];
  double v = floats[i];
  if (v >= 9.2e18)
    return INT64_MAX;
  if (v <= -9.2e18)
    return INT64_MIN;
  return static_cast<int64_t>(v);
}

/// Rounds `value` to what `type` can hold.
static double roundTo(Type type, double value) {
  if (type.isF64())
    return value;
  if (type.isF32())
    return static_cast<float>(value);
  llvm::APFloat f(value);
  bool lost;
  f.convert(cast<FloatType>(type).getFloatSemantics(),
            llvm::APFloat::rmNearestTiesToEven, &lost);
  return f.convertToDouble();
}

static int64_t wrapTo(Type type, int64_t value) {
  unsigned width = type.getIntOrFloatBitWidth();
  if (width == 1)
    return value != 0;
  if (width >= 64)
    return value;
  if (type.isUnsignedInteger())
    return static_cast<int64_t>(static_cast<uint64_t>(value) &
                                ((uint64_t{1} << width) - 1));
  // Two's complement wrap to `width` bits, sign-extended.
  uint64_t mask = (uint64_t{1} << width) - 1;
  uint64_t bits = static_cast<uint64_t>(value) & mask;
  if (bits >> (width - 1))
    bits |= ~mask;
  return static_cast<int64_t>(bits);
}

void HostTensor::set(int64_t i, double value) {
  if (isFloat())
    floats[i] = roundTo(elementType, value);
  else if (elementType.isInteger(1))
    ints[i] = value != 0.0;
  else
    ints[i] = wrapTo(elementType, std::isfinite(value)
                                      ? static_cast<int64_t>(value)
                                      : (value > 0 ? INT64_MAX : INT64_MIN));
}

void HostTensor::setInt(int64_t i, int64_t value) {
  if (isFloat())
    floats[i] = roundTo(elementType, static_cast<double>(value));
  else
    ints[i] = wrapTo(elementType, value);
}

HostTensor HostTensor::filled(Type elementType, ArrayRef<int64_t> shape) {
  HostTensor t;
  t.elementType = elementType;
  t.shape.assign(shape.begin(), shape.end());
  if (t.isFloat())
    t.floats.assign(t.size(), 0.0);
  else
    t.ints.assign(t.size(), 0);
  return t;
}

DenseElementsAttr HostTensor::toAttr() const {
  RankedTensorType type = getType();
  // The common types go in as plain arrays: an APFloat/APInt per element
  // dominates large folds (RoPE tables, attention masks).
  if (elementType.isF32()) {
    SmallVector<float> values(floats.begin(), floats.end());
    return DenseElementsAttr::get(type, ArrayRef<float>(values));
  }
  if (elementType.isF64())
    return DenseElementsAttr::get(type, ArrayRef<double>(floats));
  if (elementType.isSignlessInteger(64))
    return DenseElementsAttr::get(type, ArrayRef<int64_t>(ints));
  if (elementType.isInteger(1)) {
    SmallVector<bool> values(ints.begin(), ints.end());
    return DenseElementsAttr::get(type, ArrayRef<bool>(values));
  }
  if (isFloat()) {
    const auto *semantics = &cast<FloatType>(elementType).getFloatSemantics();
    SmallVector<APFloat> values;
    values.reserve(floats.size());
    for (double v : floats) {
      APFloat f(v);
      bool lost;
      f.convert(*semantics, APFloat::rmNearestTiesToEven, &lost);
      values.push_back(f);
    }
    return DenseElementsAttr::get(type, values);
  }
  unsigned width = elementType.getIntOrFloatBitWidth();
  SmallVector<APInt> values;
  values.reserve(ints.size());
  for (int64_t v : ints)
    values.push_back(APInt(width, static_cast<uint64_t>(v), /*isSigned=*/true,
                           /*implicitTrunc=*/true));
  return DenseElementsAttr::get(type, values);
}

HostTensor HostTensor::fromAttr(DenseElementsAttr attr) {
  auto type = cast<RankedTensorType>(attr.getType());
  HostTensor t = filled(type.getElementType(), type.getShape());
  int64_t i = 0;
  if (t.elementType.isF32()) {
    for (float v : attr.getValues<float>())
      t.floats[i++] = v;
  } else if (t.isFloat()) {
    for (APFloat v : attr.getValues<APFloat>()) {
      bool lost;
      v.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
      t.floats[i++] = v.convertToDouble();
    }
  } else if (t.elementType.isInteger(1)) {
    for (bool v : attr.getValues<bool>())
      t.ints[i++] = v;
  } else {
    bool isUnsigned = t.elementType.isUnsignedInteger();
    for (const APInt &v : attr.getValues<APInt>())
      t.ints[i++] = isUnsigned ? static_cast<int64_t>(v.getZExtValue())
                               : v.getSExtValue();
  }
  return t;
}
//===----------------------------------------------------------------------===//
// Index helpers
//===----------------------------------------------------------------------===//

SmallVector<int64_t>
mlir::galv::onnx_import::stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

int64_t mlir::galv::onnx_import::broadcastSource(ArrayRef<int64_t> outIndex,
                                                 ArrayRef<int64_t> inShape) {
  int64_t offset = outIndex.size() - inShape.size();
  int64_t flat = 0;
  for (size_t d = 0; d < inShape.size(); ++d)
    flat = flat * inShape[d] + (inShape[d] == 1 ? 0 : outIndex[d + offset]);
  return flat;
}

BroadcastCursor::BroadcastCursor(ArrayRef<int64_t> outShape,
                                 ArrayRef<ArrayRef<int64_t>> inShapes)
    : shape(outShape), index(outShape.size(), 0), offsets(inShapes.size(), 0) {
  for (ArrayRef<int64_t> in : inShapes) {
    SmallVector<int64_t> own = stridesOf(in);
    SmallVector<int64_t> step(shape.size(), 0);
    size_t lead = shape.size() - in.size();
    for (size_t d = 0; d < in.size(); ++d)
      if (in[d] != 1)
        step[lead + d] = own[d];
    steps.push_back(std::move(step));
  }
}

void BroadcastCursor::next() {
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    for (size_t k = 0; k < offsets.size(); ++k)
      offsets[k] += steps[k][d];
    if (++index[d] < shape[d])
      return;
    // Carry: rewind this dimension.
    for (size_t k = 0; k < offsets.size(); ++k)
      offsets[k] -= steps[k][d] * shape[d];
    index[d] = 0;
  }
}

void mlir::galv::onnx_import::unflatten(int64_t flat, ArrayRef<int64_t> shape,
                                        SmallVectorImpl<int64_t> &index) {
  index.resize(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
}

std::optional<SmallVector<int64_t>>
mlir::galv::onnx_import::broadcast(ArrayRef<ArrayRef<int64_t>> shapes) {
  size_t rank = 0;
  for (auto s : shapes)
    rank = std::max(rank, s.size());
  SmallVector<int64_t> out(rank, 1);
  for (auto s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t &o = out[rank - s.size() + i];
      if (s[i] == o || s[i] == 1)
        continue;
      if (o != 1)
        return std::nullopt;
      o = s[i];
    }
  return out;
}

SmallVector<int64_t> mlir::galv::onnx_import::intsOf(const HostTensor &t) {
  SmallVector<int64_t> v;
  for (int64_t i = 0; i < t.size(); ++i)
    v.push_back(t.getInt(i));
  return v;
}

//===----------------------------------------------------------------------===//
// Folder
//===----------------------------------------------------------------------===//

bool Folder::fail(const Twine &message) {
  error = message.str();
  return false;
}

bool Folder::shapeOk(ArrayRef<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return fail("negative dimension " + Twine(d));
    if (d > 0 && count > kMaxFoldElements / d)
      return fail("result too large to fold");
    count *= d;
  }
  return true;
}

bool Folder::axisOk(int64_t &axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    return fail("axis " + Twine(axis) + " out of range for rank " +
                Twine(rank));
  if (axis < 0)
    axis += rank;
  return true;
}

bool Folder::elementwise(Type resultType,
                         const std::function<double(ArrayRef<double>)> &floatFn,
                         const std::function<int64_t(ArrayRef<int64_t>)> &intFn,
                         size_t arity) {
  FoldInputs in = arity ? this->in.take_front(arity) : this->in;
  SmallVector<ArrayRef<int64_t>> shapes;
  for (const HostTensor *t : in)
    shapes.push_back(t->shape);
  auto shape = broadcast(shapes);
  if (!shape)
    return fail("operand shapes do not broadcast");
  if (!shapeOk(*shape))
    return false;
  HostTensor r = HostTensor::filled(resultType, *shape);
  bool useFloat = in[0]->isFloat();
  SmallVector<double> fargs(in.size());
  SmallVector<int64_t> iargs(in.size());
  BroadcastCursor cursor(*shape, shapes);
  for (int64_t i = 0; i < r.size(); ++i, cursor.next()) {
    for (size_t k = 0; k < in.size(); ++k) {
      int64_t src = cursor.source(k);
      if (useFloat)
        fargs[k] = in[k]->getDouble(src);
      else
        iargs[k] = in[k]->getInt(src);
    }
    if (useFloat)
      r.set(i, floatFn(fargs));
    else
      r.setInt(i, intFn(iargs));
  }
  out.push_back(std::move(r));
  return true;
}

bool Folder::binary(const std::function<double(double, double)> &f,
                    const std::function<int64_t(int64_t, int64_t)> &g,
                    bool boolResult) {
  if (in[0]->elementType != in[1]->elementType)
    return fail("operand element types differ");
  Type type = boolResult ? IntegerType::get(context, 1) : in[0]->elementType;
  return elementwise(
      type, [&](ArrayRef<double> a) { return f(a[0], a[1]); },
      [&](ArrayRef<int64_t> a) { return g(a[0], a[1]); }, 2);
}

bool Folder::unary(const std::function<double(double)> &f) {
  if (!in[0]->isFloat())
    return fail("needs a floating-point input");
  return elementwise(
      in[0]->elementType, [&](ArrayRef<double> a) { return f(a[0]); },
      [](ArrayRef<int64_t>) { return int64_t{0}; }, 1);
}

bool Folder::gatherElements(ArrayRef<int64_t> shape,
                            const std::function<int64_t(int64_t)> &source) {
  if (!shapeOk(shape))
    return false;
  HostTensor r = HostTensor::filled(in[0]->elementType, shape);
  for (int64_t i = 0; i < r.size(); ++i) {
    int64_t s = source(i);
    if (r.isFloat())
      r.floats[i] = in[0]->floats[s];
    else
      r.ints[i] = in[0]->ints[s];
  }
  out.push_back(std::move(r));
  return true;
}

bool Folder::reshapeTo(ArrayRef<int64_t> shape) {
  if (product(shape) != in[0]->size())
    return fail("reshape changes the element count");
  HostTensor r = *in[0];
  r.shape.assign(shape.begin(), shape.end());
  out.push_back(std::move(r));
  return true;
}

std::optional<SmallVector<int64_t>>
Folder::axesFromInputOrAttr(size_t inputIndex) {
  if (in.size() > inputIndex && in[inputIndex])
    return intsOf(*in[inputIndex]);
  return attrs.getInts("axes");
}

//===----------------------------------------------------------------------===//
// FoldTable
//===----------------------------------------------------------------------===//

void FoldTable::insert(StringRef opType, FoldInfo info) {
  if (!rules.try_emplace(opType, info).second)
    llvm::report_fatal_error("ONNX op '" + opType +
                             "' has two constant folding rules");
}

void FoldTable::add(StringRef opType, FoldRule rule, unsigned requiredInputs) {
  FoldInfo info;
  info.rule = rule;
  info.requiredInputs = requiredInputs;
  insert(opType, info);
}

void FoldTable::addVariadic(StringRef opType, FoldRule rule) {
  FoldInfo info;
  info.rule = rule;
  info.variadic = true;
  insert(opType, info);
}

const FoldInfo *FoldTable::lookup(StringRef opType) const {
  auto it = rules.find(opType);
  return it == rules.end() ? nullptr : &it->second;
}

const FoldTable &FoldTable::get() {
  // Built explicitly, not by static registrars the linker could drop from
  // the static library (see OpTable::get).
  static const FoldTable table = [] {
    FoldTable t;
    registerConstantFolds(t);
    registerElementwiseFolds(t);
    registerDataMovementFolds(t);
    registerContractionFolds(t);
    registerReductionFolds(t);
    return t;
  }();
  return table;
}

bool mlir::galv::onnx_import::isFoldableONNXOp(StringRef opType) {
  return FoldTable::get().lookup(opType) != nullptr;
}

bool mlir::galv::onnx_import::foldONNXOp(StringRef opType, FoldInputs inputs,
                                         const FoldAttributes &attrs,
                                         MLIRContext *context,
                                         SmallVectorImpl<HostTensor> &outputs,
                                         std::string &error) {
  Folder folder{opType, inputs, attrs, context, outputs, error};
  const FoldInfo *info = FoldTable::get().lookup(opType);
  size_t required = info ? info->requiredInputs : 1;
  // Variadic ops need every input they list.
  if (info && info->variadic)
    required = std::max<size_t>(required, inputs.size());
  if (inputs.size() < required)
    return folder.fail("needs " + Twine(required) + " inputs, got " +
                       Twine(inputs.size()));
  for (size_t i = 0; i < required; ++i)
    if (!inputs[i])
      return folder.fail("input " + Twine(i) + " is missing");
  if (!info)
    return folder.fail("no constant folder for " + opType);
  return info->rule(folder);
}
