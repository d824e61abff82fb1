//===- HFConfig.cpp - what a Hugging Face config.json adds to an import ---===//
//
// ONNX carries neither tied weights nor torch.nn.Embedding's padding_idx.
// A Hugging Face config.json says both: `tie_word_embeddings` and
// `pad_token_id`, which the model classes pass as padding_idx to the token
// embedding (every family except the GPT-2 lineage, BLOOM, Falcon, T5 and
// a few others) and, in RoBERTa's lineage, to the position embedding too
// (their position ids are padding_idx wherever the input is padding).
//
//===----------------------------------------------------------------------===//

#include "galvatron/Import/ONNX.h"

#include "Galv/Galv.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstring>

using namespace mlir;
using namespace mlir::galv;

namespace {

/// Model types whose token embedding is built without padding_idx
/// (transformers' modeling files at 4.x/5.x).
bool tokenTableIgnoresPadding(StringRef modelType) {
  return llvm::is_contained({"bloom",
                             "codegen",
                             "ctrl",
                             "falcon",
                             "falcon_mamba",
                             "gpt2",
                             "gpt_bigcode",
                             "gpt_neo",
                             "gpt_neox",
                             "gpt_neox_japanese",
                             "gptj",
                             "imagegpt",
                             "longt5",
                             "mamba",
                             "mamba2",
                             "mpt",
                             "mt5",
                             "openai-gpt",
                             "reformer",
                             "rwkv",
                             "switch_transformers",
                             "t5",
                             "umt5",
                             "xlnet"},
                            modelType);
}

/// Model types whose position embedding has padding_idx = pad_token_id.
bool positionTableHasPadding(StringRef modelType) {
  return llvm::is_contained({"camembert", "data2vec-text", "esm", "longformer",
                             "luke", "mpnet", "roberta", "roberta-prelayernorm",
                             "xlm-roberta", "xlm-roberta-xl", "xmod"},
                            modelType);
}

/// The ids come straight from a function argument (the input ids), through
/// casts and reshapes at most.
bool idsFromInput(Value ids) {
  while (Operation *def = ids.getDefiningOp()) {
    if (!isa<CastOp, ReshapeOp>(def))
      return false;
    ids = def->getOperand(0);
  }
  return isa<BlockArgument>(ids);
}

/// Model types whose RMS norms scale by `1 + w`.
bool normScalesByOnePlusWeight(StringRef modelType) {
  return llvm::is_contained({"gemma", "gemma2", "gemma3", "gemma3_text"},
                            modelType);
}

/// Every read of `param` only multiplies.
bool onlyMultiplied(ModuleOp module, ParameterOp param) {
  bool read = false, other = false;
  module.walk([&](GetParameterOp get) {
    if (get.getName() != param.getSymName())
      return;
    read = true;
    for (Operation *user : get->getUsers())
      other |= !isa<MulOp>(user);
  });
  return read && !other;
}

int64_t rowsOf(EmbeddingOp e) {
  return cast<RankedTensorType>(e.getTable().getType()).getDimSize(0);
}

} // namespace

FailureOr<HFConfig> mlir::galv::readHFConfig(MLIRContext *context,
                                             StringRef path) {
  auto fail = [&](const Twine &why) {
    return emitError(UnknownLoc::get(context))
           << "--hf-config '" << path << "': " << why;
  };
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return fail(buffer.getError().message());
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse((*buffer)->getBuffer());
  if (!json)
    return fail(llvm::toString(json.takeError()));
  const llvm::json::Object *object = json->getAsObject();
  if (!object)
    return fail("not a JSON object");

  HFConfig config;
  // Hugging Face's default, when the file leaves it out, is to tie.
  if (const llvm::json::Value *tie = object->get("tie_word_embeddings")) {
    if (!tie->getAsBoolean())
      return fail("tie_word_embeddings is not true or false");
    config.tieWordEmbeddings = *tie->getAsBoolean();
  }
  if (std::optional<StringRef> type = object->getString("model_type"))
    config.modelType = type->str();
  // Absent and null both mean none; a list (several pad ids) is not one.
  auto integer = [&](StringRef key,
                     std::optional<int64_t> &out) -> LogicalResult {
    const llvm::json::Value *value = object->get(key);
    if (!value || value->getAsNull())
      return success();
    out = value->getAsInteger();
    if (!out || *out < 0)
      return fail(key + " is not a non-negative integer");
    return success();
  };
  if (failed(integer("pad_token_id", config.padTokenId)) ||
      failed(integer("vocab_size", config.vocabSize)) ||
      failed(integer("max_position_embeddings", config.maxPositionEmbeddings)))
    return failure();
  return config;
}

LogicalResult mlir::galv::applyPaddingIdx(ModuleOp module,
                                          const HFConfig &config) {
  if (!config.padTokenId)
    return success();
  SmallVector<EmbeddingOp> lookups;
  module.walk([&](EmbeddingOp e) { lookups.push_back(e); });
  // The token table: `vocab_size` rows (else the largest table), looked up
  // by the input ids when several tables have that many rows.
  int64_t vocab = config.vocabSize.value_or(0);
  for (EmbeddingOp e : lookups)
    if (!config.vocabSize)
      vocab = std::max(vocab, rowsOf(e));
  bool anyFromInput = llvm::any_of(lookups, [&](EmbeddingOp e) {
    return rowsOf(e) == vocab && idsFromInput(e.getIds());
  });
  bool tokens = !tokenTableIgnoresPadding(config.modelType);
  bool positions = positionTableHasPadding(config.modelType);
  int64_t pad = *config.padTokenId;
  Builder b(module.getContext());
  bool tokenFound = false;
  for (EmbeddingOp e : lookups) {
    bool token =
        rowsOf(e) == vocab && (!anyFromInput || idsFromInput(e.getIds()));
    bool position = !token && config.maxPositionEmbeddings &&
                    rowsOf(e) == *config.maxPositionEmbeddings;
    tokenFound |= token;
    if (!(token && tokens) && !(position && positions))
      continue;
    if (pad >= rowsOf(e))
      return e.emitError() << "pad_token_id " << pad
                           << " of the Hugging Face config is outside this "
                              "embedding table's "
                           << rowsOf(e) << " rows";
    e.setPaddingIdxAttr(b.getI64IntegerAttr(pad));
  }
  // Training would silently differ from PyTorch's.
  if (tokens && !tokenFound)
    emitWarning(module.getLoc())
        << "pad_token_id " << pad << " of the Hugging Face config not applied: "
        << "no embedding lookup of a table with " << vocab
        << " rows (an import with --onnx-raw has none)";
  return success();
}

LogicalResult mlir::galv::unfoldUnitOffsetScales(ModuleOp module,
                                                 ImportedONNX &imported,
                                                 const HFConfig &config) {
  if (!normScalesByOnePlusWeight(config.modelType))
    return success();
  OpBuilder builder(module.getContext());
  for (ParameterOp param : module.getOps<ParameterOp>()) {
    RankedTensorType type = param.getTensorType();
    auto view = imported.weights.find(param.getSymName().str());
    if (!param.getTrainable() || type.getRank() != 1 ||
        !type.getElementType().isF32() || view == imported.weights.end() ||
        !onlyMultiplied(module, param))
      continue;
    std::string &bytes = imported.computedWeights.emplace_back(
        view->second.data, view->second.size);
    for (size_t at = 0; at + sizeof(float) <= bytes.size();
         at += sizeof(float)) {
      float v;
      std::memcpy(&v, &bytes[at], sizeof v);
      v -= 1.0f; // exact for the scales near 1 that norms hold
      std::memcpy(&bytes[at], &v, sizeof v);
    }
    view->second.data = bytes.data();
    module.walk([&](GetParameterOp get) {
      if (get.getName() != param.getSymName())
        return;
      builder.setInsertionPointAfter(get);
      auto one = ConstantOp::create(
          builder, get.getLoc(),
          DenseElementsAttr::get(
              RankedTensorType::get({}, builder.getF32Type()), 1.0f));
      auto sum = AddOp::create(builder, get.getLoc(), get, one);
      get.getResult().replaceAllUsesExcept(sum, sum);
    });
  }
  return success();
}
