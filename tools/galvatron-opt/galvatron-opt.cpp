//===- galvatron-opt.cpp - run galv passes on MLIR files ------------------===//

#include "galvatron/InitAllGalvatron.h"
#include "galvatron/Support/FileChecks.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "llvm/Support/raw_ostream.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::galv::registerAllGalvatronDialects(registry);
  mlir::galv::registerAllGalvatronPasses();

  auto [input, output] = mlir::registerAndParseCLIOptions(
      argc, argv, "galvatron optimizer driver\n", registry);
  // MlirOptMain truncates -o before it has read all of the input.
  std::string error =
      galvatron::findOutputOverInput({{"-o", output}}, {{"the input", input}});
  if (!error.empty()) {
    llvm::errs() << "galvatron-opt: error: " << error << "\n";
    return 1;
  }
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, input, output, registry));
}
