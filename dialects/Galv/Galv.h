//===- Galv.h - the galv dialect --------------------------------*- C++ -*-===//
//
// Public header of the galv dialect: the dialect, its enums, attributes and
// ops.
//
//===----------------------------------------------------------------------===//

#ifndef GALV_GALV_H
#define GALV_GALV_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "Galv/GalvEnums.h.inc"

namespace mlir {
class AsmParser;
class AsmPrinter;
namespace galv {
// Parameter parsers and printers used by the generated attribute code.
FailureOr<llvm::APFloat> parseDoubleParameter(AsmParser &parser);
void printDoubleParameter(AsmPrinter &printer, double value);
FailureOr<bool> parseBoolParameter(AsmParser &parser);
FailureOr<SmallVector<int64_t>> parseI64ArrayParameter(AsmParser &parser);
void printI64ArrayParameter(AsmPrinter &printer, ArrayRef<int64_t> values);
} // namespace galv
} // namespace mlir

#define GET_ATTRDEF_CLASSES
#include "Galv/GalvAttrs.h.inc"

namespace mlir::galv {
// The bracketed cut list of #galv.shard.
FailureOr<SmallVector<CutAttr>> parseCutList(AsmParser &parser);
void printCutList(AsmPrinter &printer, ArrayRef<CutAttr> cuts);
} // namespace mlir::galv

#include "Galv/GalvDialect.h.inc"

#include "Galv/GalvInterfaces.h"

#define GET_OP_CLASSES
#include "Galv/GalvOps.h.inc"

namespace mlir::galv {
/// Broadcasts two static shapes as numpy does; fails when a pair of
/// dimensions differs and neither is 1.
FailureOr<SmallVector<int64_t>> broadcastShapes(ArrayRef<int64_t> lhs,
                                                ArrayRef<int64_t> rhs);
/// An axis attribute in [-rank, rank) as a dimension in [0, rank). Axis
/// attributes are stored as I64Attr, whose getters return them unsigned.
inline int64_t normalizedAxis(uint64_t axis, int64_t rank) {
  int64_t a = static_cast<int64_t>(axis);
  return a < 0 ? a + rank : a;
}
} // namespace mlir::galv

#endif // GALV_GALV_H
