//===- galvatron-eval.cpp - run galv IR on the CPU reference kernels ------===//
//
// Evaluates `func.func @forward` of a galv module on .npy inputs with the
// runtime's fp32 kernels, layer instances included, and writes or checks the
// outputs. It is the reference the importer is tested against: its logits
// are compared with PyTorch's for every fixture.
//
//   galvatron-eval model.mlir --input [NAME=]ids.npy ... [--weights W]
//       [--output out.npy] [--expect ref.npy [--rtol 1e-4]]
//
//===----------------------------------------------------------------------===//

#include "Galv/Galv.h"
#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Npy.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"

#include <cmath>

using namespace mlir;
using namespace mlir::galv;
namespace rt = galvatron::rt;

namespace {
llvm::cl::opt<std::string> inputFile(llvm::cl::Positional,
                                     llvm::cl::desc("<model.mlir>"),
                                     llvm::cl::Required);
llvm::cl::list<std::string> inputs("input",
                                   llvm::cl::desc("[NAME=]file.npy, in order"));
llvm::cl::opt<std::string>
    weightsFile("weights",
                llvm::cl::desc("safetensors file (default: galv.weights)"));
llvm::cl::opt<std::string> outputFile("output",
                                      llvm::cl::desc("write result 0 here"));
llvm::cl::opt<std::string>
    expectFile("expect", llvm::cl::desc("compare result 0 with this .npy"));
llvm::cl::opt<double> rtol("rtol", llvm::cl::init(1e-4),
                           llvm::cl::desc("max-abs-error / max-abs-reference"));

[[noreturn]] void fatal(const llvm::Twine &message) {
  llvm::errs() << "galvatron-eval: error: " << message << "\n";
  std::exit(1);
}

rt::DType dtypeOf(Type type) {
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
  fatal("unsupported element type");
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
      for (auto [v, t] : llvm::zip(op.getResults(), results))
        env[v] = std::move(t);
    }
    fatal("block without terminator");
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
        .Case([&](ReduceOp r) {
          auto axes = r.getAxes();
          return one(rt::reduce(static_cast<rt::Reduction>(r.getKind()), in(0),
                                std::vector<int64_t>(axes.begin(), axes.end()),
                                r.getKeepdims()));
        })
        .Case([&](SoftmaxOp s) { return one(rt::softmax(in(0), s.getAxis())); })
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
          if (it == weights.end())
            fatal("parameter '" + g.getName() + "' is not in the weights");
          if (it->second.shape != shapeOf(g.getResult()))
            fatal("parameter '" + g.getName() + "' has shape " +
                  rt::shapeString(it->second.shape) + " in the weights");
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
          fatal("no kernel for '" + other->getName().getStringRef() + "'");
        });
  }

  ModuleOp module;
  std::map<std::string, rt::Tensor> &weights;
};

rt::Tensor toRuntime(const galvatron::SafetensorsTensor &t,
                     const std::string &name) {
  rt::DType dtype;
  if (t.dtype == "F32")
    dtype = rt::DType::F32;
  else if (t.dtype == "I64")
    dtype = rt::DType::I64;
  else
    fatal("weight '" + name + "' has dtype " + t.dtype +
          "; the CPU reference runs f32");
  rt::Tensor out(dtype, rt::Shape(t.shape.begin(), t.shape.end()));
  std::memcpy(out.bytes.data(), t.data.data(), out.bytes.size());
  return out;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::cl::ParseCommandLineOptions(argc, argv, "galv IR evaluator\n");

  MLIRContext context;
  context.loadDialect<GalvDialect, func::FuncDialect>();
  llvm::SourceMgr sourceMgr;
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(inputFile, sourceMgr, &context);
  if (!module)
    return 1;
  auto forward = module->lookupSymbol<func::FuncOp>("forward");
  if (!forward)
    fatal("the module has no func.func @forward");

  std::string weightsPath = weightsFile;
  if (weightsPath.empty())
    if (auto name = (*module)->getAttrOfType<StringAttr>(
            GalvDialect::getWeightsAttrName())) {
      SmallString<256> path(llvm::sys::path::parent_path(inputFile));
      llvm::sys::path::append(path, name.getValue());
      weightsPath = std::string(path);
    }
  std::map<std::string, rt::Tensor> weights;
  if (!weightsPath.empty()) {
    std::map<std::string, galvatron::SafetensorsTensor> raw;
    std::string error;
    if (!galvatron::readSafetensors(weightsPath, raw, error))
      fatal(error);
    for (auto &[name, tensor] : raw)
      weights[name] = toRuntime(tensor, name);
  }

  Block &body = forward.getBody().front();
  if (inputs.size() != body.getNumArguments())
    fatal("@forward takes " + llvm::Twine(body.getNumArguments()) +
          " inputs, " + llvm::Twine(inputs.size()) + " given");
  std::vector<rt::Tensor> args(body.getNumArguments());
  for (auto [i, spec] : llvm::enumerate(inputs)) {
    auto [name, file] = StringRef(spec).split('=');
    unsigned index = i;
    if (!file.empty()) {
      bool found = false;
      for (BlockArgument arg : body.getArguments())
        if (auto argName = forward.getArgAttrOfType<StringAttr>(
                arg.getArgNumber(), "onnx.name");
            argName && argName.getValue() == name) {
          index = arg.getArgNumber();
          found = true;
        }
      if (!found)
        fatal("@forward has no input named '" + name + "'");
    } else {
      file = name;
    }
    std::string error;
    if (!rt::readNpy(file.str(), args[index], error))
      fatal(error);
    if (args[index].shape != shapeOf(body.getArgument(index)))
      fatal("input " + llvm::Twine(index) + " has shape " +
            rt::shapeString(args[index].shape) + ", @forward wants " +
            rt::shapeString(shapeOf(body.getArgument(index))));
    if (args[index].dtype == rt::DType::I32)
      args[index] = rt::cast(args[index], rt::DType::I64);
  }

  Evaluator evaluator(*module, weights);
  std::vector<rt::Tensor> results = evaluator.run(body, std::move(args));
  std::string error;
  if (!outputFile.empty() && !rt::writeNpy(outputFile, results[0], error))
    fatal(error);
  if (!expectFile.empty()) {
    rt::Tensor expected;
    if (!rt::readNpy(expectFile, expected, error))
      fatal(error);
    if (expected.shape != results[0].shape)
      fatal("result shape " + rt::shapeString(results[0].shape) +
            " differs from the expected " + rt::shapeString(expected.shape));
    double maxError = 0, maxReference = 0;
    for (int64_t i = 0; i < expected.size(); ++i) {
      maxError =
          std::max(maxError, std::fabs(results[0].at(i) - expected.at(i)));
      maxReference = std::max(maxReference, std::fabs(expected.at(i)));
    }
    double relative = maxError / std::max(maxReference, 1e-30);
    llvm::outs() << "max abs error " << maxError << ", max abs reference "
                 << maxReference << ", relative " << relative << " (rtol "
                 << rtol << "): " << (relative <= rtol ? "PASS" : "FAIL")
                 << "\n";
    return relative <= rtol ? 0 : 1;
  }
  return 0;
}
