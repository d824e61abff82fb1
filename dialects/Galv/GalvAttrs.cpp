//===- GalvAttrs.cpp - cost, strategy and plan attributes -----------------===//

#include "Galv/Galv.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

#include <charconv>

using namespace mlir;
using namespace mlir::galv;

#include "Galv/GalvEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "Galv/GalvAttrs.cpp.inc"

void GalvDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Galv/GalvAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Parameter parsing and printing
//===----------------------------------------------------------------------===//

FailureOr<APFloat> mlir::galv::parseDoubleParameter(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return APFloat(value);
}

void mlir::galv::printDoubleParameter(AsmPrinter &printer, double value) {
  // Shortest text that reads back to the same double; always with a '.' or
  // exponent so that it lexes as a float.
  char buffer[32];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  StringRef text(buffer, result.ptr - buffer);
  printer << text;
  if (text.find_first_of(".eEn") == StringRef::npos)
    printer << ".0";
}

FailureOr<bool> mlir::galv::parseBoolParameter(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(),
                          "expected 'true' or 'false'");
}

FailureOr<SmallVector<int64_t>>
mlir::galv::parseI64ArrayParameter(AsmParser &parser) {
  SmallVector<int64_t> values;
  if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
        return parser.parseInteger(values.emplace_back());
      }))
    return failure();
  return values;
}

void mlir::galv::printI64ArrayParameter(AsmPrinter &printer,
                                        ArrayRef<int64_t> values) {
  printer << '[';
  llvm::interleaveComma(values, printer);
  printer << ']';
}

//===----------------------------------------------------------------------===//
// LayerCostAttr
//===----------------------------------------------------------------------===//

LogicalResult
LayerCostAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      APFloat forwardMsValue, APFloat backwardRatioValue,
                      int64_t parameterBytes, ArrayRef<int64_t> tpDegrees,
                      ArrayRef<int64_t> activationBytes,
                      int64_t checkpointBytes) {
  double forwardMs = forwardMsValue.convertToDouble();
  double backwardRatio = backwardRatioValue.convertToDouble();
  if (!(forwardMs >= 0.0) || !std::isfinite(forwardMs))
    return emitError() << "forward_ms must be a finite non-negative number, "
                          "got "
                       << forwardMs;
  if (!(backwardRatio > 0.0) || !std::isfinite(backwardRatio))
    return emitError() << "backward_ratio must be a finite positive number, "
                          "got "
                       << backwardRatio;
  if (parameterBytes < 0)
    return emitError() << "parameter_bytes must be non-negative, got "
                       << parameterBytes;
  if (checkpointBytes < 0)
    return emitError() << "checkpoint_bytes must be non-negative, got "
                       << checkpointBytes;
  if (tpDegrees.empty())
    return emitError() << "tp_degrees must name at least one degree";
  if (tpDegrees.size() != activationBytes.size())
    return emitError() << "tp_degrees has " << tpDegrees.size()
                       << " entries but activation_bytes has "
                       << activationBytes.size();
  for (auto [i, tp] : llvm::enumerate(tpDegrees)) {
    if (tp < 1 || !llvm::isPowerOf2_64(tp))
      return emitError() << "tp_degrees[" << i
                         << "] must be a power of two, got " << tp;
    if (i > 0 && tp <= tpDegrees[i - 1])
      return emitError() << "tp_degrees must be strictly increasing";
    if (activationBytes[i] < 0)
      return emitError() << "activation_bytes[" << i
                         << "] must be non-negative, got "
                         << activationBytes[i];
  }
  return success();
}

std::optional<int64_t> LayerCostAttr::getActivationBytesAt(int64_t tp) const {
  for (auto [degree, bytes] :
       llvm::zip_equal(getTpDegrees(), getActivationBytes()))
    if (degree == tp)
      return bytes;
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// ModelCostAttr
//===----------------------------------------------------------------------===//

LogicalResult ModelCostAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, StringRef hardware,
    StringRef model, StringRef precision, StringRef profile,
    APFloat otherForwardMs, ArrayRef<int64_t> vocabTpDegrees,
    ArrayRef<int64_t> firstParameterBytes, ArrayRef<int64_t> lastParameterBytes,
    ArrayRef<int64_t> firstActivationBytes,
    ArrayRef<int64_t> lastActivationBytes) {
  if (model != "native" && model != "galvatron")
    return emitError() << "model must be native or galvatron, got '" << model
                       << "'";
  if (model == "galvatron" && profile.empty())
    return emitError() << "model galvatron needs a profile";
  if (precision != "fp32" && precision != "bf16")
    return emitError() << "precision must be fp32 or bf16, got '" << precision
                       << "'";
  double ms = otherForwardMs.convertToDouble();
  if (!(ms >= 0.0) || !std::isfinite(ms))
    return emitError() << "other_forward_ms must be a finite non-negative "
                          "number, got "
                       << ms;
  if (vocabTpDegrees.empty())
    return emitError() << "vocab_tp_degrees must name at least one degree";
  for (auto [name, values] : {std::pair<StringRef, ArrayRef<int64_t>>{
                                  "first_parameter_bytes", firstParameterBytes},
                              {"last_parameter_bytes", lastParameterBytes},
                              {"first_activation_bytes", firstActivationBytes},
                              {"last_activation_bytes", lastActivationBytes}}) {
    if (values.size() != vocabTpDegrees.size())
      return emitError() << name << " has " << values.size()
                         << " entries but vocab_tp_degrees has "
                         << vocabTpDegrees.size();
    if (llvm::any_of(values, [](int64_t v) { return v < 0; }))
      return emitError() << name << " must be non-negative";
  }
  for (auto [i, tp] : llvm::enumerate(vocabTpDegrees))
    if (tp < 1 || !llvm::isPowerOf2_64(tp) ||
        (i > 0 && tp <= vocabTpDegrees[i - 1]))
      return emitError() << "vocab_tp_degrees must be increasing powers of "
                            "two";
  return success();
}

//===----------------------------------------------------------------------===//
// StrategyAttr
//===----------------------------------------------------------------------===//

LogicalResult StrategyAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   int64_t tp, int64_t dp, bool tpConsecutive,
                                   DataParallelKind dpKind,
                                   SequenceParallelKind sp, bool checkpoint,
                                   int64_t stage) {
  if (tp < 1 || !llvm::isPowerOf2_64(tp))
    return emitError() << "tp must be a power of two, got " << tp;
  if (dp < 1)
    return emitError() << "dp must be at least 1, got " << dp;
  if (stage < 0)
    return emitError() << "stage must be non-negative, got " << stage;
  if (sp != SequenceParallelKind::none && tp == 1)
    return emitError() << "sequence parallelism (" << stringifyEnum(sp)
                       << ") needs tp > 1";
  if (dpKind != DataParallelKind::ddp && dp == 1)
    return emitError() << stringifyEnum(dpKind)
                       << " shards over data-parallel ranks and needs dp > 1";
  return success();
}

//===----------------------------------------------------------------------===//
// PlanConfigAttr
//===----------------------------------------------------------------------===//

LogicalResult PlanConfigAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, int64_t worldSize, int64_t pp,
    ArrayRef<int64_t> ppDivision, int64_t chunks, int64_t globalBatch,
    PipelineSchedule schedule, DataParallelKind defaultDpKind, int64_t vocabTp,
    SequenceParallelKind vocabSp, bool embedZero3) {
  if (worldSize < 1)
    return emitError() << "world_size must be at least 1, got " << worldSize;
  if (pp < 1 || worldSize % pp != 0)
    return emitError() << "pp must divide world_size " << worldSize << ", got "
                       << pp;
  if (static_cast<int64_t>(ppDivision.size()) != pp)
    return emitError() << "pp_division has " << ppDivision.size()
                       << " stages but pp is " << pp;
  for (auto [i, n] : llvm::enumerate(ppDivision))
    if (n < 1)
      return emitError() << "pp_division[" << i
                         << "] must be at least 1 layer, got " << n;
  if (chunks < 1)
    return emitError() << "chunks must be at least 1, got " << chunks;
  if (globalBatch < 1 || globalBatch % chunks != 0)
    return emitError() << "global_batch " << globalBatch
                       << " must be a positive multiple of chunks " << chunks;
  int64_t perStage = worldSize / pp;
  if (vocabTp < 1 || perStage % vocabTp != 0)
    return emitError() << "vocab_tp " << vocabTp
                       << " must divide the devices per stage " << perStage;
  if (vocabSp != SequenceParallelKind::none && vocabTp == 1)
    return emitError() << "vocab_sp needs vocab_tp > 1";
  (void)schedule;
  (void)defaultDpKind;
  (void)embedZero3;
  return success();
}

int64_t PlanConfigAttr::getNumLayers() const {
  int64_t total = 0;
  for (int64_t n : getPpDivision())
    total += n;
  return total;
}

//===----------------------------------------------------------------------===//
// DeviceGroupAttr
//===----------------------------------------------------------------------===//

LogicalResult
DeviceGroupAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                        int64_t size, int64_t stride) {
  if (size < 1)
    return emitError() << "group size must be at least 1, got " << size;
  if (stride < 1)
    return emitError() << "group stride must be at least 1, got " << stride;
  return success();
}

int64_t DeviceGroupAttr::getPosition(int64_t stageRank) const {
  return (stageRank / getStride()) % getSize();
}

SmallVector<int64_t> DeviceGroupAttr::getMembers(int64_t stageRank) const {
  int64_t first = stageRank - getPosition(stageRank) * getStride();
  SmallVector<int64_t> members;
  for (int64_t k = 0; k < getSize(); ++k)
    members.push_back(first + k * getStride());
  return members;
}

//===----------------------------------------------------------------------===//
// CutAttr
//===----------------------------------------------------------------------===//

LogicalResult CutAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                              int64_t axis, int64_t blocks,
                              DeviceGroupAttr group) {
  if (axis < 0)
    return emitError() << "cut axis must be non-negative, got " << axis;
  if (blocks < 1)
    return emitError() << "cut blocks must be at least 1, got " << blocks;
  if (!group)
    return emitError() << "a cut needs a device group";
  return success();
}

FailureOr<SmallVector<CutAttr>> mlir::galv::parseCutList(AsmParser &parser) {
  SmallVector<CutAttr> cuts;
  if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
        return parser.parseCustomAttributeWithFallback(cuts.emplace_back());
      }))
    return failure();
  return cuts;
}

void mlir::galv::printCutList(AsmPrinter &printer, ArrayRef<CutAttr> cuts) {
  printer << '[';
  llvm::interleaveComma(cuts, printer, [&](CutAttr cut) {
    printer.printStrippedAttrOrType(cut);
  });
  printer << ']';
}

//===----------------------------------------------------------------------===//
// ShardAttr
//===----------------------------------------------------------------------===//

LogicalResult ShardAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                ArrayRef<CutAttr> cuts, DeviceGroupAttr flat) {
  if (cuts.empty() && !flat)
    return emitError() << "a shard needs a cut or a flat group";
  // One cut per dimension, so that the piece's type follows from the cuts.
  for (size_t i = 1; i < cuts.size(); ++i)
    if (cuts[i].getAxis() <= cuts[i - 1].getAxis())
      return emitError() << "shard cut axes must be increasing, got axis "
                         << cuts[i].getAxis() << " after axis "
                         << cuts[i - 1].getAxis();
  return success();
}

LogicalResult
ShardAttr::verifyFits(RankedTensorType full,
                      function_ref<InFlightDiagnostic()> emitError) const {
  for (auto [i, cut] : llvm::enumerate(getCuts())) {
    int64_t axis = cut.getAxis(), size = cut.getGroup().getSize();
    if (axis >= full.getRank())
      return emitError() << "shard cut " << i << " axis " << axis
                         << " is out of range for " << full;
    int64_t pieces = cut.getBlocks() * size;
    if (full.getDimSize(axis) % pieces != 0)
      return emitError() << "shard cut " << i << " does not divide dimension "
                         << axis << " of " << full << " into " << pieces
                         << " equal pieces";
  }
  return success();
}

RankedTensorType ShardAttr::getLocalType(RankedTensorType full) const {
  SmallVector<int64_t> shape(full.getShape());
  for (CutAttr cut : getCuts())
    if (cut.getAxis() < static_cast<int64_t>(shape.size()))
      shape[cut.getAxis()] /= cut.getGroup().getSize();
  if (DeviceGroupAttr flat = getFlat()) {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    shape = {static_cast<int64_t>(llvm::divideCeil(n, flat.getSize()))};
  }
  return RankedTensorType::get(shape, full.getElementType());
}

int64_t ShardAttr::getNumPieces() const {
  int64_t pieces = getFlat() ? getFlat().getSize() : 1;
  for (CutAttr cut : getCuts())
    pieces *= cut.getGroup().getSize();
  return pieces;
}
