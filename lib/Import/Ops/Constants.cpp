//===- Constants.cpp - ONNX ops known from attributes and types -----------===//
//
// Constant, Shape and Size never need their input's value: their results
// are host constants, computed from the node's attributes or from the
// (static) type of the input. ConstantOfShape and Range build constants
// from constant inputs: they are only ever folded.
//
//===----------------------------------------------------------------------===//

#include "../FoldRules.h"
#include "../OpTable.h"

#include <onnx/onnx_pb.h>

#include <cmath>

using namespace mlir;
using namespace mlir::galv::onnx_import;

static LogicalResult importConstant(OpContext &ctx) {
  if (ctx.node.attribute_size() != 1)
    return ctx.error() << ctx.describe() << " needs exactly one attribute";
  const onnx::AttributeProto &attr = ctx.node.attribute(0);
  Builder &b = ctx.builder;
  HostTensor t;
  if (attr.name() == "value" && attr.type() == onnx::AttributeProto::TENSOR) {
    auto value = ctx.hostTensor(attr.t());
    if (failed(value))
      return failure();
    t = std::move(*value);
  } else if (attr.name() == "value_float") {
    t = HostTensor::filled(b.getF32Type(), {});
    t.set(0, attr.f());
  } else if (attr.name() == "value_int") {
    t = HostTensor::filled(b.getI64Type(), {});
    t.setInt(0, attr.i());
  } else if (attr.name() == "value_floats") {
    t = HostTensor::filled(b.getF32Type(), {attr.floats_size()});
    for (int i = 0; i < attr.floats_size(); ++i)
      t.set(i, attr.floats(i));
  } else if (attr.name() == "value_ints") {
    t = HostTensor::filled(b.getI64Type(), {attr.ints_size()});
    for (int i = 0; i < attr.ints_size(); ++i)
      t.setInt(i, attr.ints(i));
  } else {
    return ctx.error() << ctx.describe() << " attribute '" << attr.name()
                       << "' of type " << attrTypeName(attr.type())
                       << " is not supported";
  }
  ctx.setConstant(0, std::move(t));
  return success();
}

static LogicalResult importShape(OpContext &ctx) {
  if (!ctx.hasInput(0))
    return ctx.error() << ctx.describe() << " needs an input";
  ArrayRef<int64_t> shape = ctx.inputs[0]->type.getShape();
  int64_t rank = shape.size();
  auto start = ctx.intAttr("start");
  auto end = ctx.intAttr("end");
  if (failed(start) || failed(end))
    return failure();
  int64_t s = start->value_or(0), e = end->value_or(rank);
  s = std::clamp<int64_t>(s < 0 ? s + rank : s, 0, rank);
  e = std::clamp<int64_t>(e < 0 ? e + rank : e, 0, rank);
  HostTensor t = HostTensor::filled(ctx.builder.getI64Type(),
                                    {std::max<int64_t>(e - s, 0)});
  for (int64_t i = s; i < e; ++i)
    t.setInt(i - s, shape[i]);
  ctx.setConstant(0, std::move(t));
  return success();
}

static LogicalResult importSize(OpContext &ctx) {
  if (!ctx.hasInput(0))
    return ctx.error() << ctx.describe() << " needs an input";
  HostTensor t = HostTensor::filled(ctx.builder.getI64Type(), {});
  t.setInt(0, ctx.inputs[0]->type.getNumElements());
  ctx.setConstant(0, std::move(t));
  return success();
}

void mlir::galv::onnx_import::registerConstantOps(OpTable &table) {
  table.addFromTypes("Constant", importConstant);
  table.addFromTypes("Shape", importShape);
  table.addFromTypes("Size", importSize);
}

//===----------------------------------------------------------------------===//
// Folding on constants
//===----------------------------------------------------------------------===//

static bool foldConstantOfShape(Folder &f) {
  SmallVector<int64_t> shape = intsOf(*f.in[0]);
  if (!f.shapeOk(shape))
    return false;
  std::optional<HostTensor> value = f.attrs.getTensor("value");
  if (value && value->size() != 1)
    return f.fail("ConstantOfShape value must hold one element");
  Type type = value ? value->elementType : Float32Type::get(f.context);
  HostTensor r = HostTensor::filled(type, shape);
  for (int64_t i = 0; value && i < r.size(); ++i) {
    if (r.isFloat())
      r.floats[i] = value->getDouble(0);
    else
      r.ints[i] = value->getInt(0);
  }
  f.out.push_back(std::move(r));
  return true;
}

static bool foldRange(Folder &f) {
  FoldInputs in = f.in;
  HostTensor r;
  if (in[0]->size() != 1 || in[1]->size() != 1 || in[2]->size() != 1)
    return f.fail("Range takes scalars");
  double start = in[0]->getDouble(0), limit = in[1]->getDouble(0),
         delta = in[2]->getDouble(0);
  if (delta == 0)
    return f.fail("Range delta is 0");
  double steps = std::ceil((limit - start) / delta);
  if (!(steps < static_cast<double>(Folder::kMaxFoldElements)))
    return f.fail("Range too long to fold");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(steps));
  r = HostTensor::filled(in[0]->elementType, {n});
  for (int64_t i = 0; i < n; ++i)
    r.set(i, start + i * delta);
  f.out.push_back(std::move(r));
  return true;
}

void mlir::galv::onnx_import::registerConstantFolds(FoldTable &table) {
  table.add("ConstantOfShape", foldConstantOfShape);
  table.add("Range", foldRange, 3);
}
