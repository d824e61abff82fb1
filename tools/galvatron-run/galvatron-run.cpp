//===- galvatron-run.cpp - execute plan.bin -------------------------------===//
//
//   galvatron-run plan.bin --input [NAME=]x.npy ... [--output [NAME=]y.npy]
//                [--expect [NAME=]ref.npy [--rtol X]]
//                [--weights W.safetensors] [--rank R] [--stats]
//
// Inputs bind by name, or in order when no name is given; outputs likewise
// ("output0", ...). Weights come from the file the plan names, next to the
// plan, unless --weights says otherwise.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Npy.h"
#include "galvatron/runtime/PlanFile.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace rt = galvatron::rt;
namespace plan = galvatron::plan;

namespace {

[[noreturn]] void fatal(const std::string &message) {
  std::cerr << "galvatron-run: error: " << message << "\n";
  std::exit(1);
}

void usage() {
  std::cerr << "usage: galvatron-run plan.bin --input [NAME=]x.npy ... "
               "[--output [NAME=]y.npy] [--expect [NAME=]ref.npy [--rtol X]] "
               "[--weights W.safetensors] [--rank R] [--stats]\n";
  std::exit(2);
}

std::string directoryOf(const std::string &path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash + 1);
}

rt::Tensor fromSafetensors(const galvatron::SafetensorsTensor &t,
                           const std::string &name) {
  rt::DType dtype;
  if (t.dtype == "F32")
    dtype = rt::DType::F32;
  else if (t.dtype == "I64")
    dtype = rt::DType::I64;
  else if (t.dtype == "I32")
    dtype = rt::DType::I32;
  else if (t.dtype == "BOOL")
    dtype = rt::DType::Bool;
  else
    fatal("weight '" + name + "' is " + t.dtype +
          "; the CPU backend runs F32, I64, I32 and BOOL");
  rt::Tensor out(dtype, rt::Shape(t.shape.begin(), t.shape.end()));
  std::memcpy(out.bytes.data(), t.data.data(), out.bytes.size());
  return out;
}

} // namespace

int main(int argc, char **argv) {
  std::string planPath, weightsPath;
  std::vector<std::string> inputSpecs, outputSpecs, expectSpecs;
  double rtol = 1e-4;
  int rank = 0;
  bool stats = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage();
      return argv[++i];
    };
    if (arg == "--input")
      inputSpecs.push_back(value());
    else if (arg == "--output")
      outputSpecs.push_back(value());
    else if (arg == "--expect")
      expectSpecs.push_back(value());
    else if (arg == "--rtol")
      rtol = std::atof(value().c_str());
    else if (arg == "--weights")
      weightsPath = value();
    else if (arg == "--rank")
      rank = std::atoi(value().c_str());
    else if (arg == "--stats")
      stats = true;
    else if (arg == "-h" || arg == "--help")
      usage();
    else if (!arg.empty() && arg[0] == '-')
      fatal("unknown option '" + arg + "'");
    else if (planPath.empty())
      planPath = arg;
    else
      usage();
  }
  if (planPath.empty())
    usage();

  std::vector<uint8_t> storage;
  std::string error;
  const plan::Plan *p = rt::loadPlan(planPath, storage, error);
  if (!p)
    fatal(error);
  if (rank < 0 || rank >= p->world_size())
    fatal("rank " + std::to_string(rank) +
          " is outside the plan's world size " +
          std::to_string(p->world_size()));
  const plan::RankProgram &program = *p->ranks()->Get(rank);

  // Weights.
  std::map<std::string, rt::Tensor> weights;
  if (weightsPath.empty() && p->weights_file() && p->weights_file()->size())
    weightsPath = directoryOf(planPath) + p->weights_file()->str();
  if (!weightsPath.empty()) {
    std::map<std::string, galvatron::SafetensorsTensor> raw;
    if (!galvatron::readSafetensors(weightsPath, raw, error))
      fatal(error);
    for (auto &[name, tensor] : raw)
      weights[name] = fromSafetensors(tensor, name);
  }

  // Inputs: NAME=file, or the next unnamed plan input in order.
  std::vector<std::string> inputNames;
  if (program.inputs())
    for (int32_t index : *program.inputs())
      inputNames.push_back(program.tensors()->Get(index)->name()->str());
  std::map<std::string, rt::Tensor> inputs;
  for (size_t i = 0; i < inputSpecs.size(); ++i) {
    std::string spec = inputSpecs[i], name, file = spec;
    size_t eq = spec.find('=');
    if (eq != std::string::npos) {
      name = spec.substr(0, eq);
      file = spec.substr(eq + 1);
    } else if (i < inputNames.size()) {
      name = inputNames[i];
    } else {
      fatal("the plan takes " + std::to_string(inputNames.size()) +
            " inputs; '" + spec + "' is one too many");
    }
    rt::Tensor t;
    if (!rt::readNpy(file, t, error))
      fatal(error);
    // Token files are often int32; the plan's ids are int64.
    if (t.dtype == rt::DType::I32)
      t = rt::cast(t, rt::DType::I64);
    inputs[name] = std::move(t);
  }

  std::map<std::string, rt::Tensor> outputs;
  rt::RunStats runStats;
  if (!rt::runRank(*p, rank, inputs, weights, outputs, runStats, error))
    fatal(error);

  std::vector<std::string> outputNames;
  if (program.outputs())
    for (int32_t index : *program.outputs())
      outputNames.push_back(program.tensors()->Get(index)->name()->str());
  for (size_t i = 0; i < outputSpecs.size(); ++i) {
    std::string spec = outputSpecs[i], name, file = spec;
    size_t eq = spec.find('=');
    if (eq != std::string::npos) {
      name = spec.substr(0, eq);
      file = spec.substr(eq + 1);
    } else if (i < outputNames.size()) {
      name = outputNames[i];
    }
    auto it = outputs.find(name);
    if (it == outputs.end())
      fatal("the plan has no output named '" + name + "'");
    if (!rt::writeNpy(file, it->second, error))
      fatal(error);
  }
  if (stats)
    std::cout << "arena " << runStats.arenaBytes << " bytes (plan), high water "
              << runStats.highWaterBytes << " bytes (measured), peak live "
              << runStats.peakLiveBytes << " bytes\n";
  // --expect [NAME=]ref.npy: max-abs-error / max-abs-reference <= --rtol.
  bool allPass = true;
  for (size_t i = 0; i < expectSpecs.size(); ++i) {
    std::string spec = expectSpecs[i], name, file = spec;
    size_t eq = spec.find('=');
    if (eq != std::string::npos) {
      name = spec.substr(0, eq);
      file = spec.substr(eq + 1);
    } else if (i < outputNames.size()) {
      name = outputNames[i];
    }
    auto it = outputs.find(name);
    if (it == outputs.end())
      fatal("the plan has no output named '" + name + "'");
    rt::Tensor expected;
    if (!rt::readNpy(file, expected, error))
      fatal(error);
    if (expected.shape != it->second.shape)
      fatal("output '" + name + "' is " + rt::shapeString(it->second.shape) +
            ", the reference " + rt::shapeString(expected.shape));
    double maxError = 0, maxReference = 0;
    for (int64_t k = 0; k < expected.size(); ++k) {
      maxError =
          std::max(maxError, std::fabs(it->second.at(k) - expected.at(k)));
      maxReference = std::max(maxReference, std::fabs(expected.at(k)));
    }
    double relative = maxError / std::max(maxReference, 1e-30);
    bool pass = relative <= rtol;
    allPass = allPass && pass;
    std::printf("%s: max abs error %.3e, max abs reference %.3e, relative "
                "%.3e (rtol %.1e): %s\n",
                name.c_str(), maxError, maxReference, relative, rtol,
                pass ? "PASS" : "FAIL");
  }
  return allPass ? 0 : 1;
}
