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
#include "galvatron/Eval/Evaluator.h"
#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/Weights.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
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
llvm::cl::opt<std::string> functionName(
    "function", llvm::cl::init("forward"),
    llvm::cl::desc("the function to run (forward, loss, loss_grad, ...)"));
llvm::cl::opt<std::string> expectGrads(
    "expect-grads",
    llvm::cl::desc("safetensors of reference gradients: results carrying "
                   "galv.grad_of are compared with the tensor of that name"));
llvm::cl::opt<double> rtol("rtol", llvm::cl::init(1e-4),
                           llvm::cl::desc("max-abs-error / max-abs-reference"));

[[noreturn]] void fatal(const llvm::Twine &message) {
  llvm::errs() << "galvatron-eval: error: " << message << "\n";
  std::exit(1);
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
  auto forward = module->lookupSymbol<func::FuncOp>(functionName);
  if (!forward)
    fatal("the module has no func.func @" + functionName);

  std::string weightsPath = weightsFile;
  if (weightsPath.empty())
    if (auto name = (*module)->getAttrOfType<StringAttr>(
            GalvDialect::getWeightsAttrName())) {
      SmallString<256> path(llvm::sys::path::parent_path(inputFile));
      llvm::sys::path::append(path, name.getValue());
      weightsPath = std::string(path);
    }
  if (weightsPath.empty() &&
      (*module)->hasAttr(GalvDialect::getShapesOnlyAttrName()))
    fatal(inputFile + " is a shapes-only import (galvatron-translate "
                      "--shapes-only), which has no weights: evaluating it "
                      "needs them; import the model with its weights, or "
                      "give --weights W.safetensors");
  std::map<std::string, rt::Tensor> weights;
  if (!weightsPath.empty()) {
    std::string error;
    if (!rt::loadTensors(weightsPath, weights, error))
      fatal(error);
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
  }

  auto evaluated =
      evaluateForward(*module, weights, std::move(args), functionName);
  if (failed(evaluated))
    return 1;
  std::vector<rt::Tensor> results = std::move(*evaluated);
  std::string error;
  if (!outputFile.empty() && !rt::writeNpy(outputFile, results[0], error))
    fatal(error);
  auto relativeError = [](const rt::Tensor &got, const rt::Tensor &want) {
    double maxError = 0, maxReference = 0;
    for (int64_t i = 0; i < want.size(); ++i) {
      maxError = std::max(maxError, std::fabs(got.at(i) - want.at(i)));
      maxReference = std::max(maxReference, std::fabs(want.at(i)));
    }
    return std::make_pair(maxError, maxReference);
  };
  bool gradsPass = true;
  if (!expectGrads.empty()) {
    std::map<std::string, rt::Tensor> raw;
    if (!rt::loadTensors(expectGrads, raw, error))
      fatal(error);
    double worst = 0;
    int compared = 0;
    for (unsigned i = 0; i < forward.getNumResults(); ++i) {
      auto name = forward.getResultAttrOfType<StringAttr>(i, "galv.grad_of");
      if (!name)
        continue;
      auto it = raw.find(name.str());
      if (it == raw.end())
        fatal("no reference gradient for '" + name.getValue() + "'");
      const rt::Tensor &want = it->second;
      if (want.shape != results[i].shape)
        fatal("gradient of '" + name.getValue() + "' has shape " +
              rt::shapeString(results[i].shape) + ", the reference " +
              rt::shapeString(want.shape));
      auto [maxError, maxReference] = relativeError(results[i], want);
      double relative = maxError / std::max(maxReference, 1e-30);
      worst = std::max(worst, relative);
      ++compared;
      if (relative > rtol) {
        gradsPass = false;
        llvm::outs() << "gradient of " << name.getValue() << ": relative "
                     << relative << " FAIL\n";
      }
    }
    llvm::outs() << compared << " gradients, worst relative error " << worst
                 << " (rtol " << rtol << "): " << (gradsPass ? "PASS" : "FAIL")
                 << "\n";
  }
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
    return relative <= rtol && gradsPass ? 0 : 1;
  }
  return gradsPass ? 0 : 1;
}
