//===- TrainableSet.h - which initializers an import trains ----*- C++ -*-===//
//
// Every float initializer used to become a trainable parameter, so causal
// masks, rotary tables and ALiBi slopes were updated by AdamW. The rule here
// (docs/ARCHITECTURE.md, "The trainable set") decides by how the graph uses
// an initializer; the state dict and --trainable / --frozen patterns refine
// it.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_IMPORT_TRAINABLESET_H
#define GALVATRON_IMPORT_TRAINABLESET_H

#include "galvatron/Import/ONNX.h"

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringMap.h"

#include <string>

namespace onnx {
class GraphProto;
} // namespace onnx

namespace mlir::galv::onnx_import {

/// Data-movement ops keep a weight a weight: their result is still the
/// parameter's values, in another layout.
bool isDataMovement(StringRef op);

/// How a float initializer enters the IR.
enum class WeightRole { Constant, Frozen, Trainable };

struct InitializerRole {
  WeightRole role = WeightRole::Constant;
  /// Why a parameter is frozen; empty otherwise.
  std::string reason;
};

/// Classifies the float initializers of `graph` (by name). `bytesOf` gives
/// an initializer's data, empty when a shapes-only import has none. The
/// --trainable / --frozen patterns that match no parameter are appended to
/// `unmatched` ("--frozen 'REGEX'").
llvm::StringMap<InitializerRole>
classifyInitializers(const onnx::GraphProto &graph,
                     const ONNXImportOptions &options,
                     llvm::function_ref<StringRef(StringRef)> bytesOf,
                     SmallVectorImpl<std::string> &unmatched);

} // namespace mlir::galv::onnx_import

#endif // GALVATRON_IMPORT_TRAINABLESET_H
