//===- Evaluator.cpp - run galv IR on the runtime's CPU kernels -----------===//

#include "galvatron/Eval/Evaluator.h"

#include "Galv/Galv.h"
#include "galvatron/runtime/Kernels.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::galv;
namespace rt = galvatron::rt;

std::optional<rt::DType> mlir::galv::runtimeDType(Type type) {
  if (type.isF32())
    return rt::DType::F32;
  if (type.isF64())
    return rt::DType::F64;
  if (type.isInteger(64))
    return rt::DType::I64;
  if (type.isInteger(32))
    return rt::DType::I32;
  if (type.isInteger(1))
    return rt::DType::Bool;
  return std::nullopt;
}

namespace {

/// Set by the first failure; evaluation stops there.
thread_local std::string evalError;

rt::DType dtypeOf(Type type) {
  if (std::optional<rt::DType> d = runtimeDType(type))
    return *d;
  if (evalError.empty()) {
    std::string text;
    llvm::raw_string_ostream os(text);
    os << "the CPU backend has no element type " << type;
    evalError = text;
  }
  return rt::DType::F32;
}

rt::Shape shapeOf(Value v) {
  auto shape = cast<RankedTensorType>(v.getType()).getShape();
  return rt::Shape(shape.begin(), shape.end());
}

rt::Tensor fromAttr(DenseElementsAttr attr) {
  auto type = cast<RankedTensorType>(attr.getType());
  rt::Tensor t(dtypeOf(type.getElementType()),
               rt::Shape(type.getShape().begin(), type.getShape().end()));
  int64_t i = 0;
  if (isa<FloatType>(type.getElementType())) {
    for (APFloat v : attr.getValues<APFloat>())
      t.set(i++, v.convertToDouble());
  } else if (type.getElementType().isInteger(1)) {
    for (bool v : attr.getValues<bool>())
      t.set(i++, v);
  } else {
    for (const APInt &v : attr.getValues<APInt>())
      t.set(i++, static_cast<double>(v.getSExtValue()));
  }
  return t;
}

class Evaluator {
public:
  Evaluator(ModuleOp module, std::map<std::string, rt::Tensor> &weights)
      : module(module), weights(weights) {}

  std::vector<rt::Tensor> run(Block &block, std::vector<rt::Tensor> args) {
    if (!evalError.empty())
      return {};
    DenseMap<Value, rt::Tensor> env;
    for (auto [arg, t] : llvm::zip(block.getArguments(), args))
      env[arg] = std::move(t);
    for (Operation &op : block) {
      if (op.hasTrait<OpTrait::IsTerminator>()) {
        std::vector<rt::Tensor> results;
        for (Value v : op.getOperands())
          results.push_back(env.at(v));
        return results;
      }
      std::vector<rt::Tensor> results = eval(op, env);
      if (!evalError.empty())
        return {};
      for (auto [v, t] : llvm::zip(op.getResults(), results))
        env[v] = std::move(t);
    }
    evalError = "block without terminator";
    return {};
  }

private:
  std::vector<rt::Tensor> eval(Operation &op,
                               DenseMap<Value, rt::Tensor> &env) {
    auto in = [&](unsigned i) -> const rt::Tensor & {
      return env.at(op.getOperand(i));
    };
    auto one = [](rt::Tensor t) {
      return std::vector<rt::Tensor>{std::move(t)};
    };
    using B = rt::Binary;
    using U = rt::Unary;
    auto bin = [&](B kind) { return one(rt::binary(kind, in(0), in(1))); };
    auto un = [&](U kind) { return one(rt::unary(kind, in(0))); };
    return llvm::TypeSwitch<Operation *, std::vector<rt::Tensor>>(&op)
        .Case([&](AddOp) { return bin(B::Add); })
        .Case([&](SubOp) { return bin(B::Sub); })
        .Case([&](MulOp) { return bin(B::Mul); })
        .Case([&](DivOp) { return bin(B::Div); })
        .Case([&](PowOp) { return bin(B::Pow); })
        .Case([&](MaxOp) { return bin(B::Max); })
        .Case([&](MinOp) { return bin(B::Min); })
        .Case([&](AndOp) { return bin(B::And); })
        .Case([&](OrOp) { return bin(B::Or); })
        .Case([&](CompareOp c) {
          static const B kinds[] = {B::Eq, B::Ne, B::Lt, B::Le, B::Gt, B::Ge};
          return bin(kinds[static_cast<int>(c.getPredicate())]);
        })
        .Case([&](NegOp) { return un(U::Neg); })
        .Case([&](NotOp) { return un(U::Not); })
        .Case([&](AbsOp) { return un(U::Abs); })
        .Case([&](ExpOp) { return un(U::Exp); })
        .Case([&](LogOp) { return un(U::Log); })
        .Case([&](SqrtOp) { return un(U::Sqrt); })
        .Case([&](RsqrtOp) { return un(U::Rsqrt); })
        .Case([&](ReciprocalOp) { return un(U::Reciprocal); })
        .Case([&](TanhOp) { return un(U::Tanh); })
        .Case([&](ErfOp) { return un(U::Erf); })
        .Case([&](SigmoidOp) { return un(U::Sigmoid); })
        .Case([&](ReluOp) { return un(U::Relu); })
        .Case([&](SiluOp) { return un(U::Silu); })
        .Case([&](GeluOp g) {
          return un(g.getApproximate() == GeluApproximation::tanh ? U::GeluTanh
                                                                  : U::Gelu);
        })
        .Case([&](WhereOp) { return one(rt::where(in(0), in(1), in(2))); })
        .Case([&](CastOp c) {
          return one(rt::cast(in(0), dtypeOf(c.getType().getElementType())));
        })
        .Case([&](ConstantOp c) {
          return one(fromAttr(cast<DenseElementsAttr>(c.getValue())));
        })
        .Case([&](MatmulOp) { return one(rt::matmul(in(0), in(1))); })
        .Case([&](LinearOp l) {
          const rt::Tensor *bias = l.getBias() ? &env.at(l.getBias()) : nullptr;
          return one(rt::linear(in(0), in(1), bias,
                                l.getLayout() == WeightLayout::out_in));
        })
        .Case([&](ReshapeOp r) {
          return one(rt::reshape(in(0), shapeOf(r.getResult())));
        })
        .Case([&](TransposeOp t) {
          auto perm = t.getPermutation();
          return one(rt::transpose(
              in(0), std::vector<int64_t>(perm.begin(), perm.end())));
        })
        .Case([&](SliceOp s) {
          auto vec = [](ArrayRef<int64_t> a) {
            return std::vector<int64_t>(a.begin(), a.end());
          };
          return one(rt::slice(in(0), vec(s.getStarts()), vec(s.getLimits()),
                               vec(s.getSteps())));
        })
        .Case([&](ConcatOp c) {
          std::vector<const rt::Tensor *> parts;
          for (Value v : c.getInputs())
            parts.push_back(&env.at(v));
          return one(rt::concat(parts, c.getAxis()));
        })
        .Case([&](SplitOp s) {
          auto sizes = s.getSizes();
          return rt::split(in(0), s.getAxis(),
                           std::vector<int64_t>(sizes.begin(), sizes.end()));
        })
        .Case([&](ExpandOp e) {
          return one(rt::expand(in(0), shapeOf(e.getResult())));
        })
        .Case([&](GatherOp g) {
          return one(rt::gather(in(0), in(1), g.getAxis()));
        })
        .Case([&](EmbeddingOp) { return one(rt::embedding(in(0), in(1))); })
        .Case([&](EmbeddingGradOp e) {
          return one(rt::embeddingGrad(in(0), in(1), e.getRows()));
        })
        .Case([&](ReduceOp r) {
          auto axes = r.getAxes();
          return one(rt::reduce(static_cast<rt::Reduction>(r.getKind()), in(0),
                                std::vector<int64_t>(axes.begin(), axes.end()),
                                r.getKeepdims()));
        })
        .Case([&](SoftmaxOp s) { return one(rt::softmax(in(0), s.getAxis())); })
        .Case([&](LogSoftmaxOp s) {
          return one(rt::logSoftmax(in(0), s.getAxis()));
        })
        .Case([&](ArgMaxOp a) {
          return one(rt::argMax(in(0), a.getAxis(), a.getKeepdims(),
                                a.getSelectLastIndex()));
        })
        .Case([&](LayerNormOp l) {
          const rt::Tensor *bias = l.getBias() ? &env.at(l.getBias()) : nullptr;
          return one(rt::layerNorm(in(0), in(1), bias,
                                   l.getEpsilon().convertToDouble()));
        })
        .Case([&](RmsNormOp r) {
          return one(
              rt::rmsNorm(in(0), in(1), r.getEpsilon().convertToDouble()));
        })
        .Case([&](RotaryOp r) {
          return one(rt::rotary(in(0), in(1), in(2), r.getInterleaved()));
        })
        .Case([&](AttentionOp a) {
          const rt::Tensor *mask = a.getMask() ? &env.at(a.getMask()) : nullptr;
          return one(rt::attention(in(0), in(1), in(2), mask, a.getCausal(),
                                   a.getScale().convertToDouble()));
        })
        .Case([&](CrossEntropyOp c) {
          return one(rt::crossEntropy(in(0), in(1),
                                      c.getReduction() == ReduceKind::mean,
                                      c.getIgnoreIndex()));
        })
        .Case([&](GetParameterOp g) {
          auto it = weights.find(g.getName().str());
          if (it == weights.end()) {
            evalError =
                "parameter '" + g.getName().str() + "' is not in the weights";
            return std::vector<rt::Tensor>{};
          }
          if (it->second.shape != shapeOf(g.getResult())) {
            evalError = "parameter '" + g.getName().str() + "' has shape " +
                        rt::shapeString(it->second.shape) + " in the weights";
            return std::vector<rt::Tensor>{};
          }
          return one(it->second);
        })
        .Case([&](LayerOp l) {
          auto layerType = module.lookupSymbol<LayerTypeOp>(l.getLayerType());
          std::vector<rt::Tensor> args;
          for (Value v : l.getOperands())
            args.push_back(env.at(v));
          return run(layerType.getBody().front(), std::move(args));
        })
        .Default([&](Operation *other) -> std::vector<rt::Tensor> {
          evalError =
              "no kernel for '" + other->getName().getStringRef().str() + "'";
          return {};
        });
  }

  ModuleOp module;
  std::map<std::string, rt::Tensor> &weights;
};

} // namespace

FailureOr<std::vector<rt::Tensor>> mlir::galv::evaluateForward(
    ModuleOp module, const std::map<std::string, rt::Tensor> &weights,
    std::vector<rt::Tensor> inputs, StringRef function) {
  evalError.clear();
  auto forward = module.lookupSymbol<func::FuncOp>(function);
  if (!forward || forward.isExternal())
    return module.emitError("the module has no func.func @") << function;
  Block &body = forward.getBody().front();
  if (inputs.size() != body.getNumArguments())
    return module.emitError("@forward takes ")
           << body.getNumArguments() << " inputs, " << inputs.size()
           << " given";
  for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
    auto type = cast<RankedTensorType>(arg.getType());
    rt::Shape shape(type.getShape().begin(), type.getShape().end());
    if (inputs[i].shape != shape)
      return module.emitError("input ")
             << i << " has shape " << rt::shapeString(inputs[i].shape)
             << ", @forward wants " << rt::shapeString(shape);
    std::optional<rt::DType> dtype = runtimeDType(type.getElementType());
    if (dtype && inputs[i].dtype != *dtype)
      inputs[i] = rt::cast(inputs[i], *dtype);
  }
  // The evaluator keeps a non-const reference for layer lookups only.
  auto &mutableWeights =
      const_cast<std::map<std::string, rt::Tensor> &>(weights);
  Evaluator evaluator(module, mutableWeights);
  std::vector<rt::Tensor> results = evaluator.run(body, std::move(inputs));
  if (!evalError.empty())
    return module.emitError(evalError);
  return results;
}
