//===- HostTensor.cpp - constant folding of ONNX ops ----------------------===//

#include "HostTensor.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/APFloat.h"

#include <cmath>
#include <numeric>

using namespace mlir;
using namespace mlir::galv::onnx_import;

//===----------------------------------------------------------------------===//
// HostTensor
//===----------------------------------------------------------------------===//

static int64_t product(ArrayRef<int64_t> shape) {
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
  if (isFloat()) {
    auto semantics = &cast<FloatType>(elementType).getFloatSemantics();
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
  if (t.isFloat()) {
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

static SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

/// Flat index into a tensor of `inShape` broadcast to `outShape` for the
/// multi-index `outIndex`.
static int64_t broadcastSource(ArrayRef<int64_t> outIndex,
                               ArrayRef<int64_t> inShape) {
  int64_t offset = outIndex.size() - inShape.size();
  int64_t flat = 0;
  for (size_t d = 0; d < inShape.size(); ++d)
    flat = flat * inShape[d] + (inShape[d] == 1 ? 0 : outIndex[d + offset]);
  return flat;
}

static void unflatten(int64_t flat, ArrayRef<int64_t> shape,
                      SmallVectorImpl<int64_t> &index) {
  index.resize(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    index[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
}

static std::optional<SmallVector<int64_t>>
broadcast(ArrayRef<ArrayRef<int64_t>> shapes) {
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

static int64_t normAxis(int64_t axis, int64_t rank) {
  return axis < 0 ? axis + rank : axis;
}

static SmallVector<int64_t> intsOf(const HostTensor &t) {
  SmallVector<int64_t> v;
  for (int64_t i = 0; i < t.size(); ++i)
    v.push_back(t.getInt(i));
  return v;
}

//===----------------------------------------------------------------------===//
// Folding
//===----------------------------------------------------------------------===//

namespace {
using Inputs = ArrayRef<const HostTensor *>;

struct Folder {
  StringRef op;
  Inputs in;
  const FoldAttributes &attrs;
  MLIRContext *context;
  SmallVectorImpl<HostTensor> &out;
  std::string &error;

  bool fail(const Twine &message) {
    error = message.str();
    return false;
  }

  /// Folding is for shape computations and small tables; anything larger
  /// (or malformed) stays IR or is refused.
  bool shapeOk(ArrayRef<int64_t> shape) {
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
  static constexpr int64_t kMaxFoldElements = int64_t{1} << 26;

  /// Normalises `axis` for a tensor of `rank`; fails when out of range.
  bool axisOk(int64_t &axis, int64_t rank) {
    if (axis < -rank || axis >= rank)
      return fail("axis " + Twine(axis) + " out of range for rank " +
                  Twine(rank));
    if (axis < 0)
      axis += rank;
    return true;
  }

  /// Applies an elementwise function to the first `arity` inputs (all of
  /// them for variadic ops), broadcasting.
  bool elementwise(Type resultType,
                   const std::function<double(ArrayRef<double>)> &floatFn,
                   const std::function<int64_t(ArrayRef<int64_t>)> &intFn,
                   size_t arity = 0) {
    Inputs in = arity ? this->in.take_front(arity) : this->in;
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
    SmallVector<int64_t> index;
    SmallVector<double> fargs(in.size());
    SmallVector<int64_t> iargs(in.size());
    for (int64_t i = 0; i < r.size(); ++i) {
      unflatten(i, *shape, index);
      for (size_t k = 0; k < in.size(); ++k) {
        int64_t src = broadcastSource(index, in[k]->shape);
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

  bool binary(const std::function<double(double, double)> &f,
              const std::function<int64_t(int64_t, int64_t)> &g,
              bool boolResult = false) {
    if (in[0]->elementType != in[1]->elementType)
      return fail("operand element types differ");
    Type type = boolResult ? IntegerType::get(context, 1) : in[0]->elementType;
    return elementwise(
        type, [&](ArrayRef<double> a) { return f(a[0], a[1]); },
        [&](ArrayRef<int64_t> a) { return g(a[0], a[1]); }, 2);
  }

  bool unary(const std::function<double(double)> &f) {
    if (!in[0]->isFloat())
      return fail("needs a floating-point input");
    return elementwise(
        in[0]->elementType, [&](ArrayRef<double> a) { return f(a[0]); },
        [](ArrayRef<int64_t>) { return int64_t{0}; }, 1);
  }

  /// Copies elements of in[0] into a new tensor of `shape`, element `i`
  /// coming from flat source index `source(i)`.
  bool gatherElements(ArrayRef<int64_t> shape,
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

  bool reshapeTo(ArrayRef<int64_t> shape) {
    if (product(shape) != in[0]->size())
      return fail("reshape changes the element count");
    HostTensor r = *in[0];
    r.shape.assign(shape.begin(), shape.end());
    out.push_back(std::move(r));
    return true;
  }

  std::optional<SmallVector<int64_t>> axesFromInputOrAttr(size_t inputIndex) {
    if (in.size() > inputIndex && in[inputIndex])
      return intsOf(*in[inputIndex]);
    return attrs.getInts("axes");
  }

  bool run();
};
} // namespace

/// How many leading inputs `op` cannot do without.
static size_t requiredInputs(StringRef op) {
  if (llvm::is_contained({"Where", "Range", "Slice"}, op))
    return 3;
  if (llvm::is_contained({"Add",
                          "Sub",
                          "Mul",
                          "Div",
                          "Mod",
                          "Pow",
                          "Equal",
                          "Less",
                          "LessOrEqual",
                          "Greater",
                          "GreaterOrEqual",
                          "And",
                          "Or",
                          "Reshape",
                          "Expand",
                          "Tile",
                          "Gather",
                          "GatherND",
                          "MatMul",
                          "CumSum"},
                         op))
    return 2;
  return 1;
}

bool Folder::run() {
  using F = double;
  using I = int64_t;
  size_t required = requiredInputs(op);
  // Variadic ops need every input they list.
  if (llvm::is_contained({"Max", "Min", "Concat"}, op))
    required = std::max<size_t>(required, in.size());
  if (in.size() < required)
    return fail("needs " + Twine(required) + " inputs, got " +
                Twine(in.size()));
  for (size_t i = 0; i < required; ++i)
    if (!in[i])
      return fail("input " + Twine(i) + " is missing");
  if (op == "Identity") {
    out.push_back(*in[0]);
    return true;
  }
  if (op == "Add")
    return binary([](F a, F b) { return a + b; },
                  [](I a, I b) { return a + b; });
  if (op == "Sub")
    return binary([](F a, F b) { return a - b; },
                  [](I a, I b) { return a - b; });
  if (op == "Mul")
    return binary([](F a, F b) { return a * b; },
                  [](I a, I b) { return a * b; });
  if (op == "Div") {
    for (int64_t i = 0; !in[1]->isFloat() && i < in[1]->size(); ++i)
      if (in[1]->ints[i] == 0)
        return fail("integer division by zero");
    // b = -1 negates (with wrap-around: INT64_MIN / -1 would trap).
    return binary([](F a, F b) { return a / b; },
                  [](I a, I b) {
                    return b == -1
                               ? static_cast<I>(0 - static_cast<uint64_t>(a))
                               : a / b;
                  });
  }
  if (op == "Mod") {
    for (int64_t i = 0; !in[1]->isFloat() && i < in[1]->size(); ++i)
      if (in[1]->ints[i] == 0)
        return fail("integer modulo by zero");
    // Integer Mod takes the sign of the divisor, like Python, unless
    // fmod = 1 asks for C's (the dividend's) sign; floats need fmod = 1.
    bool cStyle = attrs.getInt("fmod").value_or(0) != 0;
    return binary([](F a, F b) { return std::fmod(a, b); },
                  [cStyle](I a, I b) {
                    I r = b == -1 ? 0 : a % b;
                    if (cStyle)
                      return r;
                    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
                  });
  }
  if (op == "Pow")
    return elementwise(
        in[0]->elementType, [](ArrayRef<F> a) { return std::pow(a[0], a[1]); },
        [](ArrayRef<I> a) {
          return static_cast<I>(
              std::pow(static_cast<F>(a[0]), static_cast<F>(a[1])));
        },
        2);
  if (op == "Max" || op == "Min") {
    bool isMax = op == "Max";
    return elementwise(
        in[0]->elementType,
        [isMax](ArrayRef<F> a) {
          F r = a[0];
          for (F v : a.drop_front())
            r = isMax ? std::max(r, v) : std::min(r, v);
          return r;
        },
        [isMax](ArrayRef<I> a) {
          I r = a[0];
          for (I v : a.drop_front())
            r = isMax ? std::max(r, v) : std::min(r, v);
          return r;
        });
  }
  if (op == "Equal")
    return binary([](F a, F b) -> F { return a == b; },
                  [](I a, I b) -> I { return a == b; }, true);
  if (op == "Less")
    return binary([](F a, F b) -> F { return a < b; },
                  [](I a, I b) -> I { return a < b; }, true);
  if (op == "LessOrEqual")
    return binary([](F a, F b) -> F { return a <= b; },
                  [](I a, I b) -> I { return a <= b; }, true);
  if (op == "Greater")
    return binary([](F a, F b) -> F { return a > b; },
                  [](I a, I b) -> I { return a > b; }, true);
  if (op == "GreaterOrEqual")
    return binary([](F a, F b) -> F { return a >= b; },
                  [](I a, I b) -> I { return a >= b; }, true);
  if (op == "And")
    return binary([](F a, F b) -> F { return a && b; },
                  [](I a, I b) -> I { return a && b; }, true);
  if (op == "Or")
    return binary([](F a, F b) -> F { return a || b; },
                  [](I a, I b) -> I { return a || b; }, true);
  if (op == "Not")
    return elementwise(
        in[0]->elementType, [](ArrayRef<F> a) -> F { return !a[0]; },
        [](ArrayRef<I> a) -> I { return !a[0]; }, 1);
  if (op == "Neg")
    return elementwise(
        in[0]->elementType, [](ArrayRef<F> a) { return -a[0]; },
        [](ArrayRef<I> a) { return -a[0]; }, 1);
  if (op == "Abs")
    return elementwise(
        in[0]->elementType, [](ArrayRef<F> a) { return std::fabs(a[0]); },
        [](ArrayRef<I> a) { return a[0] < 0 ? -a[0] : a[0]; }, 1);
  if (op == "Sqrt")
    return unary([](F a) { return std::sqrt(a); });
  if (op == "Reciprocal")
    return unary([](F a) { return 1.0 / a; });
  if (op == "Exp")
    return unary([](F a) { return std::exp(a); });
  if (op == "Log")
    return unary([](F a) { return std::log(a); });
  if (op == "Cos")
    return unary([](F a) { return std::cos(a); });
  if (op == "Sin")
    return unary([](F a) { return std::sin(a); });
  if (op == "Tanh")
    return unary([](F a) { return std::tanh(a); });
  if (op == "Erf")
    return unary([](F a) { return std::erf(a); });
  if (op == "Sigmoid")
    return unary([](F a) { return 1.0 / (1.0 + std::exp(-a)); });
  if (op == "Relu")
    return unary([](F a) { return a > 0 ? a : 0.0; });
  if (op == "Floor")
    return unary([](F a) { return std::floor(a); });
  if (op == "Ceil")
    return unary([](F a) { return std::ceil(a); });
  if (op == "Where") {
    SmallVector<ArrayRef<int64_t>> shapes = {in[0]->shape, in[1]->shape,
                                             in[2]->shape};
    auto shape = broadcast(shapes);
    if (!shape)
      return fail("operand shapes do not broadcast");
    HostTensor r = HostTensor::filled(in[1]->elementType, *shape);
    SmallVector<int64_t> index;
    for (int64_t i = 0; i < r.size(); ++i) {
      unflatten(i, *shape, index);
      const HostTensor *pick =
          in[0]->getInt(broadcastSource(index, in[0]->shape)) ? in[1] : in[2];
      int64_t src = broadcastSource(index, pick->shape);
      if (r.isFloat())
        r.floats[i] = pick->floats[src];
      else
        r.ints[i] = pick->ints[src];
    }
    out.push_back(std::move(r));
    return true;
  }
  if (op == "Cast") {
    Type to = attrs.getElementType("to");
    if (!to)
      return fail("unsupported target type");
    HostTensor r = HostTensor::filled(to, in[0]->shape);
    for (int64_t i = 0; i < r.size(); ++i) {
      if (in[0]->isFloat())
        r.set(i, in[0]->floats[i]);
      else
        r.setInt(i, in[0]->ints[i]);
    }
    out.push_back(std::move(r));
    return true;
  }
  if (op == "Reshape") {
    SmallVector<int64_t> target = intsOf(*in[1]);
    bool allowZero = attrs.getInt("allowzero").value_or(0) != 0;
    int64_t known = 1, inferAt = -1;
    for (size_t d = 0; d < target.size(); ++d) {
      if (target[d] == 0 && !allowZero) {
        if (d >= in[0]->shape.size())
          return fail("a 0 in the shape has no input dimension to copy");
        target[d] = in[0]->shape[d];
      }
      if (target[d] < -1)
        return fail("negative dimension in the shape");
      if (target[d] == -1) {
        if (inferAt >= 0)
          return fail("more than one -1 in the shape");
        inferAt = d;
      } else {
        known *= target[d];
      }
    }
    if (inferAt >= 0) {
      if (known == 0 || in[0]->size() % known != 0)
        return fail("cannot infer the -1 dimension");
      target[inferAt] = in[0]->size() / known;
    }
    return reshapeTo(target);
  }
  if (op == "Flatten") {
    int64_t rank = in[0]->shape.size();
    int64_t axis = attrs.getInt("axis").value_or(1);
    if (axis < -rank || axis > rank)
      return fail("Flatten axis out of range");
    axis = normAxis(axis, rank);
    int64_t outer = product(ArrayRef<int64_t>(in[0]->shape).take_front(axis));
    return reshapeTo({outer, in[0]->size() / std::max<int64_t>(outer, 1)});
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    auto axes = axesFromInputOrAttr(1);
    SmallVector<int64_t> shape(in[0]->shape);
    if (op == "Unsqueeze") {
      if (!axes)
        return fail("missing axes");
      int64_t rank = shape.size() + axes->size();
      SmallVector<int64_t> sorted;
      for (int64_t a : *axes) {
        if (!axisOk(a, rank))
          return false;
        sorted.push_back(a);
      }
      llvm::sort(sorted);
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
        return fail("repeated axis");
      for (int64_t a : sorted)
        shape.insert(shape.begin() + a, 1);
    } else {
      SmallVector<int64_t> kept;
      int64_t rank = shape.size();
      for (int64_t d = 0; d < rank; ++d) {
        bool drop = axes ? llvm::is_contained(*axes, d) ||
                               llvm::is_contained(*axes, d - rank)
                         : shape[d] == 1;
        if (drop && shape[d] != 1)
          return fail("squeezed dimension is not 1");
        if (!drop)
          kept.push_back(shape[d]);
      }
      shape = kept;
    }
    return reshapeTo(shape);
  }
  if (op == "Concat") {
    int64_t rank = in[0]->shape.size();
    int64_t axis = attrs.getInt("axis").value_or(0);
    if (!axisOk(axis, rank))
      return false;
    SmallVector<int64_t> shape(in[0]->shape);
    shape[axis] = 0;
    for (const HostTensor *t : in) {
      if (static_cast<int64_t>(t->shape.size()) != rank)
        return fail("Concat inputs differ in rank");
      for (int64_t d = 0; d < rank; ++d)
        if (d != axis && t->shape[d] != in[0]->shape[d])
          return fail("Concat inputs differ outside the axis");
      shape[axis] += t->shape[axis];
    }
    if (!shapeOk(shape))
      return false;
    HostTensor r = HostTensor::filled(in[0]->elementType, shape);
    int64_t outer = product(ArrayRef<int64_t>(shape).take_front(axis));
    int64_t pos = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (const HostTensor *t : in) {
        int64_t chunk = t->size() / std::max<int64_t>(outer, 1);
        for (int64_t k = 0; k < chunk; ++k, ++pos) {
          if (r.isFloat())
            r.floats[pos] = t->getDouble(o * chunk + k);
          else
            r.ints[pos] = t->getInt(o * chunk + k);
        }
      }
    out.push_back(std::move(r));
    return true;
  }
  if (op == "Gather") {
    int64_t rank = in[0]->shape.size();
    int64_t axis = attrs.getInt("axis").value_or(0);
    if (!axisOk(axis, rank))
      return false;
    ArrayRef<int64_t> data = in[0]->shape;
    SmallVector<int64_t> shape(data.take_front(axis));
    llvm::append_range(shape, in[1]->shape);
    llvm::append_range(shape, data.drop_front(axis + 1));
    int64_t inner = product(data.drop_front(axis + 1));
    int64_t numIndices = in[1]->size();
    for (int64_t k = 0; k < numIndices; ++k) {
      int64_t idx = in[1]->getInt(k);
      if (idx < -data[axis] || idx >= data[axis])
        return fail("index " + Twine(idx) + " out of range");
    }
    return gatherElements(shape, [&](int64_t i) {
      int64_t innerPos = i % inner;
      int64_t rest = i / inner;
      int64_t k = rest % numIndices;
      int64_t outerPos = rest / numIndices;
      int64_t idx = in[1]->getInt(k);
      if (idx < 0)
        idx += data[axis];
      return (outerPos * data[axis] + idx) * inner + innerPos;
    });
  }
  if (op == "GatherND") {
    const HostTensor &data = *in[0], &indices = *in[1];
    int64_t batch = attrs.getInt("batch_dims").value_or(0);
    int64_t q = indices.shape.size(), r = data.shape.size();
    if (q < 1 || batch >= std::min(q, r))
      return fail("bad GatherND ranks");
    int64_t k = indices.shape.back();
    if (k > r - batch)
      return fail("GatherND index tuples are longer than the data rank");
    // Output: indices.shape[:-1] + data.shape[batch + k:].
    SmallVector<int64_t> shape(ArrayRef<int64_t>(indices.shape).drop_back());
    ArrayRef<int64_t> sliceShape =
        ArrayRef<int64_t>(data.shape).drop_front(batch + k);
    llvm::append_range(shape, sliceShape);
    int64_t sliceSize = product(sliceShape);
    int64_t tuples = indices.size() / std::max<int64_t>(k, 1);
    int64_t tuplesPerBatch =
        tuples /
        std::max<int64_t>(
            product(ArrayRef<int64_t>(indices.shape).take_front(batch)), 1);
    SmallVector<int64_t> dataStrides = stridesOf(data.shape);
    for (int64_t t = 0; t < tuples; ++t)
      for (int64_t j = 0; j < k; ++j) {
        int64_t idx = indices.getInt(t * k + j), dim = data.shape[batch + j];
        if (idx < -dim || idx >= dim)
          return fail("GatherND index " + Twine(idx) + " out of range");
      }
    return gatherElements(shape, [&](int64_t i) {
      int64_t t = i / std::max<int64_t>(sliceSize, 1);
      int64_t within = i % std::max<int64_t>(sliceSize, 1);
      int64_t b = t / std::max<int64_t>(tuplesPerBatch, 1);
      SmallVector<int64_t> batchIndex;
      unflatten(b, ArrayRef<int64_t>(data.shape).take_front(batch), batchIndex);
      int64_t src = 0;
      for (int64_t d = 0; d < batch; ++d)
        src += batchIndex[d] * dataStrides[d];
      for (int64_t j = 0; j < k; ++j) {
        int64_t idx = indices.getInt(t * k + j), dim = data.shape[batch + j];
        src += (idx < 0 ? idx + dim : idx) * dataStrides[batch + j];
      }
      return src + within;
    });
  }
  if (op == "Slice") {
    SmallVector<int64_t> starts = intsOf(*in[1]), ends = intsOf(*in[2]);
    int64_t rank = in[0]->shape.size();
    SmallVector<int64_t> axes, steps;
    if (in.size() > 3 && in[3])
      axes = intsOf(*in[3]);
    else
      for (size_t i = 0; i < starts.size(); ++i)
        axes.push_back(i);
    if (in.size() > 4 && in[4])
      steps = intsOf(*in[4]);
    else
      steps.assign(starts.size(), 1);
    SmallVector<int64_t> begin(rank, 0), step(rank, 1), shape(in[0]->shape);
    if (axes.size() != starts.size() || ends.size() != starts.size() ||
        steps.size() != starts.size())
      return fail("starts, ends, axes and steps differ in length");
    for (size_t k = 0; k < axes.size(); ++k) {
      int64_t a = axes[k];
      if (!axisOk(a, rank))
        return false;
      int64_t dim = in[0]->shape[a];
      if (steps[k] == 0)
        return fail("slice step 0");
      auto clampIndex = [&](int64_t v, int64_t lo, int64_t hi) {
        if (v < 0)
          v = v <= INT64_MIN + dim ? lo : v + dim;
        return std::clamp(v, lo, hi);
      };
      int64_t s, e;
      if (steps[k] > 0) {
        s = clampIndex(starts[k], 0, dim);
        e = clampIndex(ends[k], 0, dim);
        shape[a] = e > s ? (e - s + steps[k] - 1) / steps[k] : 0;
      } else {
        s = clampIndex(starts[k], -1, dim - 1);
        e = clampIndex(ends[k], -1, dim - 1);
        shape[a] = s > e ? (s - e - steps[k] - 1) / -steps[k] : 0;
      }
      begin[a] = s;
      step[a] = steps[k];
    }
    SmallVector<int64_t> inStrides = stridesOf(in[0]->shape), index;
    return gatherElements(shape, [&](int64_t i) {
      unflatten(i, shape, index);
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += (begin[d] + index[d] * step[d]) * inStrides[d];
      return src;
    });
  }
  if (op == "Transpose") {
    int64_t rank = in[0]->shape.size();
    SmallVector<int64_t> perm;
    if (auto p = attrs.getInts("perm"))
      perm = *p;
    else
      for (int64_t d = rank - 1; d >= 0; --d)
        perm.push_back(d);
    SmallVector<int64_t> shape, inStrides = stridesOf(in[0]->shape), index;
    SmallVector<bool> seen(rank, false);
    if (static_cast<int64_t>(perm.size()) != rank)
      return fail("perm does not match the rank");
    for (int64_t p : perm) {
      if (p < 0 || p >= rank || seen[p])
        return fail("perm is not a permutation");
      seen[p] = true;
      shape.push_back(in[0]->shape[p]);
    }
    return gatherElements(shape, [&](int64_t i) {
      unflatten(i, shape, index);
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += index[d] * inStrides[perm[d]];
      return src;
    });
  }
  if (op == "Expand") {
    SmallVector<int64_t> target = intsOf(*in[1]);
    SmallVector<ArrayRef<int64_t>> shapes = {in[0]->shape, target};
    auto shape = broadcast(shapes);
    if (!shape)
      return fail("cannot expand to the requested shape");
    SmallVector<int64_t> index;
    return gatherElements(*shape, [&](int64_t i) {
      unflatten(i, *shape, index);
      return broadcastSource(index, in[0]->shape);
    });
  }
  if (op == "Tile") {
    SmallVector<int64_t> repeats = intsOf(*in[1]), shape, index;
    if (repeats.size() != in[0]->shape.size())
      return fail("Tile repeats do not match the rank");
    for (size_t d = 0; d < repeats.size(); ++d) {
      if (repeats[d] < 0 ||
          (repeats[d] > 0 && in[0]->shape[d] > kMaxFoldElements / repeats[d]))
        return fail("bad Tile repeats");
      shape.push_back(in[0]->shape[d] * repeats[d]);
    }
    SmallVector<int64_t> inStrides = stridesOf(in[0]->shape);
    return gatherElements(shape, [&](int64_t i) {
      unflatten(i, shape, index);
      int64_t src = 0;
      for (size_t d = 0; d < shape.size(); ++d)
        src += (index[d] % in[0]->shape[d]) * inStrides[d];
      return src;
    });
  }
  if (op == "ConstantOfShape") {
    SmallVector<int64_t> shape = intsOf(*in[0]);
    if (!shapeOk(shape))
      return false;
    std::optional<HostTensor> value = attrs.getTensor("value");
    if (value && value->size() != 1)
      return fail("ConstantOfShape value must hold one element");
    Type type = value ? value->elementType : Float32Type::get(context);
    HostTensor r = HostTensor::filled(type, shape);
    for (int64_t i = 0; value && i < r.size(); ++i) {
      if (r.isFloat())
        r.floats[i] = value->getDouble(0);
      else
        r.ints[i] = value->getInt(0);
    }
    out.push_back(std::move(r));
    return true;
  }
  if (op == "Range") {
    HostTensor r;
    if (in[0]->size() != 1 || in[1]->size() != 1 || in[2]->size() != 1)
      return fail("Range takes scalars");
    double start = in[0]->getDouble(0), limit = in[1]->getDouble(0),
           delta = in[2]->getDouble(0);
    if (delta == 0)
      return fail("Range delta is 0");
    double steps = std::ceil((limit - start) / delta);
    if (!(steps < static_cast<double>(kMaxFoldElements)))
      return fail("Range too long to fold");
    int64_t n = std::max<int64_t>(0, static_cast<int64_t>(steps));
    r = HostTensor::filled(in[0]->elementType, {n});
    for (int64_t i = 0; i < n; ++i)
      r.set(i, start + i * delta);
    out.push_back(std::move(r));
    return true;
  }
  if (op == "Trilu") {
    if (in.size() > 1 && in[1] && in[1]->size() != 1)
      return fail("Trilu k must be one value");
    int64_t k = in.size() > 1 && in[1] ? in[1]->getInt(0) : 0;
    bool upper = attrs.getInt("upper").value_or(1) != 0;
    int64_t rank = in[0]->shape.size();
    if (rank < 2)
      return fail("Trilu needs rank >= 2");
    HostTensor r = *in[0];
    int64_t rows = r.shape[rank - 2], cols = r.shape[rank - 1];
    for (int64_t i = 0; i < r.size(); ++i) {
      int64_t col = i % cols, row = (i / cols) % rows;
      bool keep = upper ? col - row >= k : col - row <= k;
      if (!keep)
        r.setInt(i, 0);
    }
    out.push_back(std::move(r));
    return true;
  }
  if (op == "MatMul") {
    // numpy matmul: 1-D operands gain (and then lose) a unit dimension, and
    // batch dimensions broadcast.
    HostTensor a = *in[0], b = *in[1];
    bool vecA = a.shape.size() == 1, vecB = b.shape.size() == 1;
    if (a.shape.empty() || b.shape.empty())
      return fail("MatMul of a scalar");
    if (vecA)
      a.shape.insert(a.shape.begin(), 1);
    if (vecB)
      b.shape.push_back(1);
    int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back();
    int64_t n = b.shape.back();
    if (b.shape[b.shape.size() - 2] != k)
      return fail("MatMul contracting dimensions differ");
    SmallVector<ArrayRef<int64_t>> batches = {
        ArrayRef<int64_t>(a.shape).drop_back(2),
        ArrayRef<int64_t>(b.shape).drop_back(2)};
    auto batch = broadcast(batches);
    if (!batch)
      return fail("MatMul batch dimensions do not broadcast");
    SmallVector<int64_t> shape(*batch);
    shape.push_back(m);
    shape.push_back(n);
    if (!shapeOk(shape))
      return false;
    HostTensor r = HostTensor::filled(a.elementType, shape);
    int64_t batchCount = product(*batch);
    SmallVector<int64_t> index;
    for (int64_t p = 0; p < batchCount; ++p) {
      unflatten(p, *batch, index);
      int64_t offA = broadcastSource(index, batches[0]) * m * k;
      int64_t offB = broadcastSource(index, batches[1]) * k * n;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double sum = 0;
          for (int64_t q = 0; q < k; ++q)
            sum +=
                a.getDouble(offA + i * k + q) * b.getDouble(offB + q * n + j);
          r.set((p * m + i) * n + j, sum);
        }
    }
    if (vecB)
      r.shape.pop_back();
    if (vecA)
      r.shape.erase(r.shape.end() - (vecB ? 1 : 2));
    out.push_back(std::move(r));
    return true;
  }
  if (op == "CumSum") {
    int64_t rank = in[0]->shape.size();
    if (in[1]->size() != 1)
      return fail("CumSum axis must be one value");
    int64_t axis = in[1]->getInt(0);
    if (!axisOk(axis, rank))
      return false;
    bool exclusive = attrs.getInt("exclusive").value_or(0) != 0;
    bool reverse = attrs.getInt("reverse").value_or(0) != 0;
    HostTensor r = *in[0];
    int64_t dim = r.shape[axis];
    int64_t inner = product(ArrayRef<int64_t>(r.shape).drop_front(axis + 1));
    int64_t outer = r.size() / std::max<int64_t>(dim * inner, 1);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in2 = 0; in2 < inner; ++in2) {
        double sum = 0;
        for (int64_t j = 0; j < dim; ++j) {
          int64_t jj = reverse ? dim - 1 - j : j;
          int64_t idx = (o * dim + jj) * inner + in2;
          double v = in[0]->getDouble(idx);
          if (exclusive) {
            r.set(idx, sum);
            sum += v;
          } else {
            sum += v;
            r.set(idx, sum);
          }
        }
      }
    out.push_back(std::move(r));
    return true;
  }
  if (op == "Split") {
    int64_t rank = in[0]->shape.size();
    int64_t axis = attrs.getInt("axis").value_or(0);
    if (!axisOk(axis, rank))
      return false;
    SmallVector<int64_t> sizes;
    if (in.size() > 1 && in[1]) {
      sizes = intsOf(*in[1]);
    } else if (auto s = attrs.getInts("split")) {
      sizes = *s;
    } else {
      int64_t n = attrs.getInt("num_outputs").value_or(attrs.numOutputs);
      int64_t dim = in[0]->shape[axis];
      if (n < 1)
        return fail("Split into no pieces");
      int64_t piece = (dim + n - 1) / n;
      for (int64_t k = 0; k < n; ++k)
        sizes.push_back(std::max<int64_t>(0, std::min(piece, dim - k * piece)));
    }
    int64_t total = 0;
    for (int64_t size : sizes) {
      if (size < 0)
        return fail("negative split size");
      total += size;
    }
    if (total != in[0]->shape[axis])
      return fail("split sizes do not add up to the dimension");
    int64_t offset = 0;
    SmallVector<int64_t> inStrides = stridesOf(in[0]->shape), index;
    for (int64_t size : sizes) {
      SmallVector<int64_t> shape(in[0]->shape);
      shape[axis] = size;
      HostTensor piece = HostTensor::filled(in[0]->elementType, shape);
      for (int64_t i = 0; i < piece.size(); ++i) {
        unflatten(i, shape, index);
        int64_t src = 0;
        for (int64_t d = 0; d < rank; ++d)
          src += (index[d] + (d == axis ? offset : 0)) * inStrides[d];
        if (piece.isFloat())
          piece.floats[i] = in[0]->floats[src];
        else
          piece.ints[i] = in[0]->ints[src];
      }
      out.push_back(std::move(piece));
      offset += size;
    }
    return true;
  }
  if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceMax" ||
      op == "ReduceMin" || op == "ReduceProd") {
    int64_t rank = in[0]->shape.size();
    auto axes = axesFromInputOrAttr(1);
    bool keep = attrs.getInt("keepdims").value_or(1) != 0;
    bool noAxes = !axes || axes->empty();
    bool noop = attrs.getInt("noop_with_empty_axes").value_or(0) != 0;
    // No axes reduces everything, or nothing with noop_with_empty_axes.
    SmallVector<bool> reduced(rank, noAxes && !noop);
    for (int64_t a : axes.value_or(SmallVector<int64_t>{})) {
      if (!axisOk(a, rank))
        return false;
      reduced[a] = true;
    }
    SmallVector<int64_t> keptShape, outShape, index;
    for (int64_t d = 0; d < rank; ++d) {
      keptShape.push_back(reduced[d] ? 1 : in[0]->shape[d]);
      if (!reduced[d] || keep)
        outShape.push_back(keptShape.back());
    }
    int64_t outCount = product(keptShape);
    std::vector<double> acc(outCount, op == "ReduceProd" ? 1.0 : 0.0);
    std::vector<int64_t> count(outCount, 0);
    for (int64_t i = 0; i < in[0]->size(); ++i) {
      unflatten(i, in[0]->shape, index);
      int64_t o = broadcastSource(index, keptShape);
      double v = in[0]->getDouble(i);
      if (op == "ReduceMax")
        acc[o] = count[o] ? std::max(acc[o], v) : v;
      else if (op == "ReduceMin")
        acc[o] = count[o] ? std::min(acc[o], v) : v;
      else if (op == "ReduceProd")
        acc[o] *= v;
      else
        acc[o] += v;
      ++count[o];
    }
    HostTensor r = HostTensor::filled(in[0]->elementType, outShape);
    for (int64_t o = 0; o < outCount; ++o)
      r.set(o, op == "ReduceMean" ? acc[o] / std::max<int64_t>(count[o], 1)
                                  : acc[o]);
    out.push_back(std::move(r));
    return true;
  }
  return fail("no constant folder for " + op);
}

static const char *const kFoldable[] = {"Identity",
                                        "Add",
                                        "Sub",
                                        "Mul",
                                        "Div",
                                        "Mod",
                                        "Pow",
                                        "Max",
                                        "Min",
                                        "Equal",
                                        "Less",
                                        "LessOrEqual",
                                        "Greater",
                                        "GreaterOrEqual",
                                        "And",
                                        "Or",
                                        "Not",
                                        "Neg",
                                        "Abs",
                                        "Sqrt",
                                        "Reciprocal",
                                        "Exp",
                                        "Log",
                                        "Cos",
                                        "Sin",
                                        "Tanh",
                                        "Erf",
                                        "Sigmoid",
                                        "Relu",
                                        "Floor",
                                        "Ceil",
                                        "Where",
                                        "Cast",
                                        "Reshape",
                                        "Flatten",
                                        "Unsqueeze",
                                        "Squeeze",
                                        "Concat",
                                        "Gather",
                                        "GatherND",
                                        "Slice",
                                        "Transpose",
                                        "Expand",
                                        "Tile",
                                        "ConstantOfShape",
                                        "Range",
                                        "Trilu",
                                        "MatMul",
                                        "CumSum",
                                        "Split",
                                        "ReduceSum",
                                        "ReduceMean",
                                        "ReduceMax",
                                        "ReduceMin",
                                        "ReduceProd"};

bool mlir::galv::onnx_import::isFoldableONNXOp(StringRef opType) {
  return llvm::is_contained(kFoldable, opType);
}

bool mlir::galv::onnx_import::foldONNXOp(StringRef opType, Inputs inputs,
                                         const FoldAttributes &attrs,
                                         MLIRContext *context,
                                         SmallVectorImpl<HostTensor> &outputs,
                                         std::string &error) {
  Folder folder{opType, inputs, attrs, context, outputs, error};
  return folder.run();
}
