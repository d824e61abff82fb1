//===- galvatron-translate.cpp - translations in and out of galv ----------===//
//
// --import-onnx brings a model in, --emit-plan writes plan.bin and
// --decode-plan reads it back, --galv-layer-summary prints a table of a
// model's layers (all registered by InitAllGalvatron.h).
//
//===----------------------------------------------------------------------===//

#include "galvatron/InitAllGalvatron.h"
#include "galvatron/Support/FileChecks.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/Timing.h"
#include "mlir/Tools/mlir-translate/MlirTranslateMain.h"
#include "mlir/Tools/mlir-translate/Translation.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/raw_ostream.h"

namespace {

/// The files a command line names that -o must not overwrite: the input,
/// --state-dict and --hf-config. mlirTranslateMain truncates -o right after
/// opening the input, before any translation runs (an ONNX model is still
/// mapped from disk then), so they are found here from argv, the way llvm::cl
/// reads it.
std::string findOutputOverInput(int argc, char **argv) {
  // Which options take their value from the next argument: ours and MLIR's
  // are in the registry; mlirTranslateMain registers its own (-o,
  // --output-split-marker; the rest are flags) only once it runs.
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerTranslationCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  auto &registered = llvm::cl::getRegisteredOptions();
  auto takesNext = [&](llvm::StringRef name) {
    if (name == "o" || name == "output-split-marker")
      return true;
    auto it = registered.find(name);
    return it != registered.end() &&
           it->second->getValueExpectedFlag() == llvm::cl::ValueRequired;
  };
  std::string input = "-", output = "-", stateDict, hfConfig;
  bool positionalOnly = false, sawInput = false;
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef arg = argv[i];
    if (positionalOnly || arg == "-" || !arg.starts_with("-")) {
      if (!sawInput)
        input = arg.str();
      sawInput = true;
      continue;
    }
    if (arg == "--") {
      positionalOnly = true;
      continue;
    }
    auto [name, value] = arg.ltrim('-').split('=');
    if (!arg.contains('=') && takesNext(name) && i + 1 < argc)
      value = argv[++i];
    if (name == "o")
      output = value.str();
    else if (name == "state-dict")
      stateDict = value.str();
    else if (name == "hf-config")
      hfConfig = value.str();
  }
  return galvatron::findOutputOverInput({{"-o", output}},
                                        {{"the input", input},
                                         {"--state-dict", stateDict},
                                         {"--hf-config", hfConfig}});
}

} // namespace

int main(int argc, char **argv) {
  mlir::galv::registerAllGalvatronTranslations();
  std::string error = findOutputOverInput(argc, argv);
  if (!error.empty()) {
    llvm::errs() << "galvatron-translate: error: " << error << "\n";
    return 1;
  }
  return mlir::failed(
      mlir::mlirTranslateMain(argc, argv, "galvatron translation driver\n"));
}
