//===- ImportRegistration.cpp - galvatron-translate --import-onnx ---------===//

#include "galvatron/Import/ONNX.h"
#include "galvatron/Support/FileChecks.h"
#include "galvatron/Transforms/Passes.h"

#include "Galv/Galv.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/SourceMgr.h"

#include <chrono>
#include <sys/resource.h>

using namespace mlir;
using namespace mlir::galv;

namespace {
struct ImportFlags {
  llvm::cl::OptionCategory category{"ONNX import options (--import-onnx)"};
  llvm::cl::opt<int64_t> batchSize{
      "batch-size", llvm::cl::desc("value of the symbolic batch dimension"),
      llvm::cl::init(0), llvm::cl::cat(category)};
  llvm::cl::opt<int64_t> seqLen{
      "seq-len", llvm::cl::desc("value of the symbolic sequence dimension"),
      llvm::cl::init(0), llvm::cl::cat(category)};
  llvm::cl::list<std::string> dims{
      "dim", llvm::cl::desc("NAME=VALUE for any symbolic dimension"),
      llvm::cl::cat(category)};
  llvm::cl::opt<std::string> weightsOut{
      "weights-out",
      llvm::cl::desc("safetensors file for the weights (default: beside the "
                     "output, named after it)"),
      llvm::cl::init(""), llvm::cl::cat(category)};
  llvm::cl::opt<std::string> stateDict{
      "state-dict",
      llvm::cl::desc("safetensors state dict of the exported model: "
                     "parameters take its names (undoing exporters' renamed "
                     "and transposed copies, re-tying shared weights), and "
                     "only the weights it holds are trainable"),
      llvm::cl::init(""), llvm::cl::cat(category)};
  llvm::cl::opt<std::string> hfConfig{
      "hf-config",
      llvm::cl::desc("the model's Hugging Face config.json (default: "
                     "config.json beside the model, if there is one): with "
                     "tie_word_embeddings (true unless it says false), "
                     "copies of the embedding tables are tied back to them; "
                     "pad_token_id is the embeddings' padding_idx (no "
                     "gradient for that row) where Hugging Face sets it"),
      llvm::cl::init(""), llvm::cl::cat(category)};
  llvm::cl::list<std::string> trainable{
      "trainable",
      llvm::cl::desc("REGEX: parameters whose name (state-dict name when "
                     "--state-dict gives one) matches are trained; with "
                     "--frozen, applied in order after the import's rule"),
      llvm::cl::cat(category)};
  llvm::cl::list<std::string> frozen{
      "frozen",
      llvm::cl::desc("REGEX: parameters whose name matches are frozen (no "
                     "gradient, no optimizer state, never updated)"),
      llvm::cl::cat(category)};
  llvm::cl::opt<bool> shapesOnly{
      "shapes-only",
      llvm::cl::desc("import a model whose weights are absent (external data "
                     "never written, or no data): parameters keep their "
                     "names, types and shapes, no weights file is written, "
                     "and the module (marked galv.shapes_only) can be "
                     "planned but not run"),
      llvm::cl::init(false), llvm::cl::cat(category)};
  llvm::cl::opt<bool> timing{
      "onnx-import-timing",
      llvm::cl::desc("print the time and memory each import phase took"),
      llvm::cl::init(false), llvm::cl::cat(category)};
  llvm::cl::opt<bool> raw{
      "onnx-raw",
      llvm::cl::desc("stop after the one-to-one op mapping and folding: no "
                     "recomposition or layer outlining"),
      llvm::cl::init(false), llvm::cl::cat(category)};
};
ImportFlags *flags = nullptr;

/// The value of -o, or "" when it is standard output.
std::string outputPath() {
  auto &options = llvm::cl::getRegisteredOptions();
  auto it = options.find("o");
  if (it != options.end())
    if (auto *out = static_cast<llvm::cl::opt<std::string> *>(it->second))
      if (out->getValue() != "-")
        return out->getValue();
  return "";
}

/// Where the weights go: --weights-out, else beside `-o` with the suffix
/// .safetensors, else beside the input.
std::string weightsPath(StringRef inputPath) {
  if (!flags->weightsOut.empty())
    return flags->weightsOut;
  std::string base = outputPath();
  if (base.empty())
    base = inputPath.str();
  SmallString<256> path(base);
  llvm::sys::path::replace_extension(path, ".safetensors");
  return std::string(path);
}

/// Writes the weights the cleaned-up module still declares beside the IR and
/// names the file in the module's galv.weights attribute.
LogicalResult writeWeights(ImportedONNX &imported, StringRef inputPath) {
  ModuleOp module = *imported.module;
  MLIRContext *context = module.getContext();
  std::string path = weightsPath(inputPath);
  // The weights replace whatever is at `path`: never a file this import
  // reads, nor the IR output.
  std::vector<galvatron::NamedFile> inputs = {
      {"the input model", inputPath.str()},
      {"--state-dict", flags->stateDict},
      {"--hf-config", flags->hfConfig},
      {"-o", outputPath()}};
  for (const std::string &file : imported.dataFiles)
    inputs.push_back({"the model's external data", file});
  std::string clash = galvatron::findOutputOverInput(
      {{flags->weightsOut.empty() ? "the weights file" : "--weights-out",
        path}},
      inputs);
  if (!clash.empty())
    return emitError(UnknownLoc::get(context)) << clash;
  module->setAttr(GalvDialect::getWeightsAttrName(),
                  StringAttr::get(context, llvm::sys::path::filename(path)));
  // Keep only the parameters the cleaned-up IR still declares.
  std::map<std::string, galvatron::SafetensorsView> kept;
  for (auto param : module.getOps<ParameterOp>()) {
    auto it = imported.weights.find(param.getSymName().str());
    if (it != imported.weights.end())
      kept.insert(*it);
  }
  std::string error;
  if (!galvatron::writeSafetensors(path, kept, error))
    return emitError(UnknownLoc::get(context)) << error;
  return success();
}

/// --trainable and --frozen in command-line order.
LogicalResult readTrainablePatterns(MLIRContext *context,
                                    ONNXImportOptions &options) {
  SmallVector<std::pair<unsigned, ONNXImportOptions::TrainablePattern>> all;
  auto add = [&](llvm::cl::list<std::string> &list, bool isTrainable) {
    for (unsigned i = 0; i < list.size(); ++i)
      all.push_back({list.getPosition(i), {isTrainable, list[i]}});
  };
  add(flags->trainable, true);
  add(flags->frozen, false);
  llvm::sort(all,
             [](const auto &a, const auto &b) { return a.first < b.first; });
  for (auto &[position, pattern] : all) {
    std::string error;
    if (!llvm::Regex(pattern.regex).isValid(error))
      return emitError(UnknownLoc::get(context))
             << (pattern.trainable ? "--trainable" : "--frozen") << " '"
             << pattern.regex << "' is not a regular expression: " << error;
    options.trainablePatterns.push_back(pattern);
  }
  return success();
}

/// The Hugging Face config: --hf-config, else config.json beside the
/// model, else none.
FailureOr<std::optional<HFConfig>> findHFConfig(MLIRContext *context,
                                                StringRef inputPath) {
  std::string path = flags->hfConfig;
  if (path.empty()) {
    SmallString<256> beside(llvm::sys::path::parent_path(inputPath));
    llvm::sys::path::append(beside, "config.json");
    if (!llvm::sys::fs::exists(beside))
      return std::optional<HFConfig>();
    path = std::string(beside);
  }
  FailureOr<HFConfig> config = readHFConfig(context, path);
  if (failed(config))
    return failure();
  return std::optional<HFConfig>(*config);
}

/// --shapes-only imports have no bytes: options that write or compare them
/// are refused.
LogicalResult checkShapesOnlyFlags(MLIRContext *context) {
  if (!flags->shapesOnly)
    return success();
  if (!flags->weightsOut.empty())
    return emitError(UnknownLoc::get(context))
           << "--weights-out cannot be used with --shapes-only: a "
              "shapes-only import has no weights to write";
  if (!flags->stateDict.empty())
    return emitError(UnknownLoc::get(context))
           << "--state-dict cannot be used with --shapes-only: parameters "
              "are matched to the state dict by their bytes, which a "
              "shapes-only import does not have";
  return success();
}

OwningOpRef<Operation *> translate(llvm::SourceMgr &sourceMgr,
                                   MLIRContext *context) {
  const llvm::MemoryBuffer *buffer =
      sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID());
  StringRef inputPath = buffer->getBufferIdentifier();

  if (failed(checkShapesOnlyFlags(context)))
    return nullptr;
  ONNXImportOptions options;
  options.shapesOnly = flags->shapesOnly;
  options.batchSize = flags->batchSize;
  options.seqLen = flags->seqLen;
  for (const std::string &dim : flags->dims) {
    auto [name, value] = StringRef(dim).split('=');
    int64_t number;
    if (name.empty() || value.getAsInteger(10, number) || number <= 0) {
      emitError(UnknownLoc::get(context))
          << "--dim expects NAME=VALUE with a positive VALUE, got '" << dim
          << "'";
      return nullptr;
    }
    options.namedDims[name.str()] = number;
  }

  if (failed(readTrainablePatterns(context, options)))
    return nullptr;
  // The state dict decides the trainable set during the import.
  std::map<std::string, galvatron::SafetensorsTensor> stateDict;
  if (!flags->stateDict.empty()) {
    std::string error;
    if (!galvatron::readSafetensors(flags->stateDict, stateDict, error)) {
      emitError(UnknownLoc::get(context)) << "--state-dict: " << error;
      return nullptr;
    }
    options.stateDict = &stateDict;
  }

  auto seconds = [](auto since) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         since)
        .count();
  };
  std::unique_ptr<ImportedONNX> imported =
      importONNX(context, buffer->getBuffer(), inputPath, options);
  if (!imported)
    return nullptr;
  OwningOpRef<ModuleOp> &module = imported->module;
  if (flags->shapesOnly)
    (*module)->setAttr(GalvDialect::getShapesOnlyAttrName(),
                       UnitAttr::get(context));

  if (!flags->stateDict.empty() &&
      failed(applyStateDictNames(*module, *imported, stateDict)))
    return nullptr;
  FailureOr<std::optional<HFConfig>> config = findHFConfig(context, inputPath);
  if (failed(config))
    return nullptr;
  if (*config && (*config)->tieWordEmbeddings && !flags->shapesOnly &&
      failed(tieEmbeddings(*module, *imported)))
    return nullptr;
  // Before norms are recomposed: their scales are still multiplications.
  if (*config && !flags->shapesOnly &&
      failed(unfoldUnitOffsetScales(*module, *imported, **config)))
    return nullptr;

  auto cleanupStart = std::chrono::steady_clock::now();
  if (!flags->raw) {
    PassManager pm(context);
    buildImportCleanupPipeline(pm);
    if (failed(pm.run(*module)))
      return nullptr;
  }
  double cleanupSeconds = seconds(cleanupStart);
  // On the recomposed embeddings (a raw import has only gathers).
  if (*config && failed(applyPaddingIdx(*module, **config)))
    return nullptr;

  auto writeStart = std::chrono::steady_clock::now();
  if (!flags->shapesOnly && failed(writeWeights(*imported, inputPath)))
    return nullptr;
  double writeSeconds = seconds(writeStart);
  if (flags->timing) {
    const ONNXImportTimings &t = imported->timings;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    llvm::errs() << llvm::format(
        "import timing: parse %.3f s, weights read %.3f s, graph %.3f s, "
        "clean-up %.3f s, weights written %.3f s (%.1f MB); peak RSS %.1f "
        "MB\n",
        t.parseSeconds, t.weightReadSeconds, t.graphSeconds, cleanupSeconds,
        writeSeconds, t.weightBytes / 1e6, usage.ru_maxrss / 1024.0);
  }
  return OwningOpRef<Operation *>(module.release());
}
} // namespace

void mlir::galv::registerONNXImportTranslation() {
  static ImportFlags importFlags;
  flags = &importFlags;
  static TranslateToMLIRRegistration registration(
      "import-onnx",
      "import an ONNX model (binary, or protobuf text with .pbtxt) into galv "
      "IR and write its weights as safetensors (none with --shapes-only)",
      translate, [](DialectRegistry &registry) {
        registry.insert<GalvDialect, func::FuncDialect>();
      });
}
