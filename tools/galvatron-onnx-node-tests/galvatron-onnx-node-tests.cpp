//===- galvatron-onnx-node-tests.cpp - ONNX's node tests on galvatron -----===//
//
// Runs the ONNX backend node tests (Debian's libonnx-testdata: one model per
// operator case plus reference inputs and outputs as TensorProto files)
// through the importer and the CPU reference kernels, and compares with the
// reference outputs (|got - want| <= atol + rtol |want|, rtol 1e-3, atol
// 1e-5; exact for integers and booleans).
//
// A test whose model the importer refuses (an op, attribute or element type
// galvatron does not take) is SKIPPED with the importer's reason; a model
// that imports must compute the reference outputs, or the test FAILS.
//
//   galvatron-onnx-node-tests [DATA_DIR] [--filter SUBSTRING] [--quiet]
//
//===----------------------------------------------------------------------===//

#include "galvatron/Eval/Evaluator.h"
#include "galvatron/Import/ONNX.h"
#include "galvatron/runtime/Kernels.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <iostream>

using namespace mlir;
namespace rt = galvatron::rt;

namespace {

std::optional<rt::DType> dtypeOf(int32_t onnxType) {
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    return rt::DType::F32;
  case onnx::TensorProto::DOUBLE:
    return rt::DType::F64;
  case onnx::TensorProto::INT64:
    return rt::DType::I64;
  case onnx::TensorProto::INT32:
    return rt::DType::I32;
  case onnx::TensorProto::BOOL:
    return rt::DType::Bool;
  default:
    return std::nullopt;
  }
}

/// A TensorProto file as a runtime tensor; nullopt with `why` when its
/// element type has no runtime counterpart.
std::optional<rt::Tensor> readTensorFile(const std::string &path,
                                         std::string &why) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false);
  onnx::TensorProto proto;
  if (!buffer || !proto.ParseFromArray((*buffer)->getBufferStart(),
                                       (*buffer)->getBufferSize())) {
    why = "cannot read " + path;
    return std::nullopt;
  }
  std::optional<rt::DType> dtype = dtypeOf(proto.data_type());
  if (!dtype) {
    why = "reference data of ONNX type " + std::to_string(proto.data_type());
    return std::nullopt;
  }
  rt::Tensor t(*dtype, rt::Shape(proto.dims().begin(), proto.dims().end()));
  if (proto.has_raw_data()) {
    if (proto.raw_data().size() != t.bytes.size()) {
      why = "reference data size mismatch in " + path;
      return std::nullopt;
    }
    std::memcpy(t.bytes.data(), proto.raw_data().data(), t.bytes.size());
    return t;
  }
  for (int64_t i = 0; i < t.size(); ++i) {
    switch (*dtype) {
    case rt::DType::F32:
      t.set(i, proto.float_data(i));
      break;
    case rt::DType::F64:
      t.set(i, proto.double_data(i));
      break;
    case rt::DType::I64:
      t.i64()[i] = proto.int64_data(i);
      break;
    default:
      t.set(i, proto.int32_data(i));
      break;
    }
  }
  return t;
}

std::optional<rt::Tensor> fromView(const galvatron::SafetensorsView &view) {
  rt::DType dtype;
  if (view.dtype == "F32")
    dtype = rt::DType::F32;
  else if (view.dtype == "F64")
    dtype = rt::DType::F64;
  else if (view.dtype == "I64")
    dtype = rt::DType::I64;
  else if (view.dtype == "I32")
    dtype = rt::DType::I32;
  else if (view.dtype == "BOOL")
    dtype = rt::DType::Bool;
  else
    return std::nullopt;
  rt::Tensor t(dtype, rt::Shape(view.shape.begin(), view.shape.end()));
  std::memcpy(t.bytes.data(), view.data, t.bytes.size());
  return t;
}

bool isFloating(rt::DType d) {
  return d == rt::DType::F32 || d == rt::DType::F64;
}

/// Empty when `got` matches `want`, else a description of the difference.
std::string compare(const rt::Tensor &got, const rt::Tensor &want) {
  if (got.shape != want.shape)
    return "shape " + rt::shapeString(got.shape) + " instead of " +
           rt::shapeString(want.shape);
  bool exact = !isFloating(want.dtype);
  for (int64_t i = 0; i < want.size(); ++i) {
    double g = got.at(i), w = want.at(i);
    if (std::isnan(w) && std::isnan(g))
      continue;
    if (std::isinf(w) && g == w)
      continue;
    bool ok = exact ? g == w : std::fabs(g - w) <= 1e-5 + 1e-3 * std::fabs(w);
    if (!ok)
      return "element " + std::to_string(i) + " is " + std::to_string(g) +
             ", expected " + std::to_string(w);
  }
  return "";
}

} // namespace

int main(int argc, char **argv) {
  std::string dataDir = "/usr/share/libonnx-testdata/data/node", filter;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--filter" && i + 1 < argc)
      filter = argv[++i];
    else if (arg == "--quiet")
      quiet = true;
    else
      dataDir = arg;
  }
  std::vector<std::string> tests;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dataDir, ec), end; it != end && !ec;
       it.increment(ec))
    if (llvm::StringRef name = llvm::sys::path::filename(it->path());
        name.contains(filter))
      tests.push_back(it->path());
  if (ec || tests.empty()) {
    std::cerr << "galvatron-onnx-node-tests: no tests under '" << dataDir
              << "'\n";
    return 2;
  }
  std::sort(tests.begin(), tests.end());

  MLIRContext context;
  int passed = 0, failures = 0, skipped = 0;
  for (const std::string &dir : tests) {
    std::string name = llvm::sys::path::filename(dir).str();
    std::string modelPath = dir + "/model.onnx";
    std::string diagnostic;
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      if (diagnostic.empty())
        diagnostic = diag.str();
      return success();
    });
    auto buffer = llvm::MemoryBuffer::getFile(modelPath, /*IsText=*/false);
    if (!buffer)
      continue;
    auto report = [&](const char *verdict, const std::string &why) {
      if (!quiet || std::strcmp(verdict, "PASS") != 0)
        std::cout << verdict << " " << name << (why.empty() ? "" : ": ") << why
                  << "\n";
    };
    std::unique_ptr<galv::ImportedONNX> imported = galv::importONNX(
        &context, (*buffer)->getBuffer(), modelPath, galv::ONNXImportOptions());
    if (!imported) {
      ++skipped;
      report("SKIP", diagnostic);
      continue;
    }
    std::map<std::string, rt::Tensor> weights;
    std::string why;
    for (auto &[param, view] : imported->weights) {
      std::optional<rt::Tensor> t = fromView(view);
      if (!t) {
        why = "weight of type " + view.dtype;
        break;
      }
      weights[param] = std::move(*t);
    }
    // Every test_data_set_N directory is one case.
    bool anyCase = false, caseFailed = false, caseSkipped = !why.empty();
    for (int set = 0; !caseSkipped && !caseFailed; ++set) {
      std::string setDir = dir + "/test_data_set_" + std::to_string(set);
      if (!llvm::sys::fs::is_directory(setDir))
        break;
      anyCase = true;
      // input_0.pb, input_1.pb, ... (likewise output_K.pb) until one is
      // missing; false if one cannot be read (`why` says why).
      auto readNumbered = [&](const char *prefix,
                              std::vector<rt::Tensor> &tensors) {
        for (int k = 0;; ++k) {
          std::string file = setDir + "/" + prefix + std::to_string(k) + ".pb";
          if (!llvm::sys::fs::exists(file))
            return true;
          std::optional<rt::Tensor> t = readTensorFile(file, why);
          if (!t)
            return false;
          tensors.push_back(std::move(*t));
        }
      };
      std::vector<rt::Tensor> inputs, expected;
      if (!readNumbered("input_", inputs) ||
          !readNumbered("output_", expected)) {
        caseSkipped = true;
        break;
      }
      diagnostic.clear();
      auto results =
          galv::evaluateForward(*imported->module, weights, std::move(inputs));
      if (failed(results)) {
        // Element types the CPU backend lacks are not failures of the ops.
        if (llvm::StringRef(diagnostic).contains("has no element type")) {
          why = diagnostic;
          caseSkipped = true;
        } else {
          why = "evaluation: " + diagnostic;
          caseFailed = true;
        }
        break;
      }
      if (results->size() < expected.size()) {
        why = "produced " + std::to_string(results->size()) + " outputs";
        caseFailed = true;
        break;
      }
      for (size_t k = 0; k < expected.size() && !caseFailed; ++k) {
        std::string difference = compare((*results)[k], expected[k]);
        if (!difference.empty()) {
          why = "output " + std::to_string(k) + ": " + difference;
          caseFailed = true;
        }
      }
    }
    if (caseSkipped || !anyCase) {
      ++skipped;
      report("SKIP", anyCase ? why : "no test data");
    } else if (caseFailed) {
      ++failures;
      report("FAIL", why);
    } else {
      ++passed;
      report("PASS", "");
    }
  }
  std::cout << passed << " passed, " << failures << " failed, " << skipped
            << " skipped\n";
  return failures == 0 ? 0 : 1;
}
