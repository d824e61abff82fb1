//===- ONNX.h - import ONNX models into the galv dialect --------*- C++ -*-===//

#ifndef GALVATRON_IMPORT_ONNX_H
#define GALVATRON_IMPORT_ONNX_H

#include "galvatron/Support/Safetensors.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::galv {

struct ONNXImportOptions {
  /// Values for symbolic dimensions: the batch dimension (dimension 0 of the
  /// inputs, or any named like "batch"), the sequence dimension (dimension 1,
  /// or named like "seq"/"sequence"/"length"), and any by name.
  int64_t batchSize = 0;
  int64_t seqLen = 0;
  std::map<std::string, int64_t> namedDims;
  /// Accept initializers whose data is absent (an external-data file that
  /// does not exist, or no data at all): they keep their name, type and
  /// shape, and only folding that needs their values fails.
  bool shapesOnly = false;
  /// --trainable / --frozen: a regular expression over a parameter's name
  /// (its state-dict name when it has one), applied in order after the rule.
  struct TrainablePattern {
    bool trainable;
    std::string regex;
  };
  std::vector<TrainablePattern> trainablePatterns;
  /// The model's state dict (--state-dict): only the weights it holds,
  /// directly or transposed, are trainable. Must outlive the import.
  const std::map<std::string, galvatron::SafetensorsTensor> *stateDict =
      nullptr;
};

/// Seconds spent in each phase of an import, and what it moved.
struct ONNXImportTimings {
  double parseSeconds = 0;      // protobuf decoding
  double weightReadSeconds = 0; // initializer and external-data reading
  double graphSeconds = 0;      // nodes to IR, folding included
  uint64_t weightBytes = 0;     // bytes of the weights the IR declares
};

/// An imported model: the IR, and its weights as views into `storage` (the
/// parsed model and its mapped external-data files), which must outlive them.
struct ImportedONNX {
  OwningOpRef<ModuleOp> module;
  std::map<std::string, galvatron::SafetensorsView> weights;
  std::shared_ptr<void> storage;
  /// Weights the import computed (a folded `1 + w` unfolded to w); a deque,
  /// so that `weights` can view them.
  std::deque<std::string> computedWeights;
  /// The external-data files the weights were read from.
  std::vector<std::string> dataFiles;
  ONNXImportTimings timings;
};

/// Imports the ONNX model in `bytes` (a binary ModelProto, or protobuf text
/// format when `path` ends in .pbtxt/.textproto/.txt) into a module holding
/// `func.func @forward` over galv ops. `path` locates external data and names
/// the model in diagnostics. Weights the IR reads become galv.parameter ops
/// and are listed in `weights`, keyed by initializer name; no weight bytes
/// are copied (under `shapesOnly`, weights without data are left out of
/// `weights`). Shape computations are folded away. Returns null after
/// emitting a diagnostic.
std::unique_ptr<ImportedONNX> importONNX(MLIRContext *context, StringRef bytes,
                                         StringRef path,
                                         const ONNXImportOptions &options);

/// State-dict tensors by their bytes, 2-D ones by their transposed bytes
/// and f32 vectors by the bytes of `1 + w`: how an exporter's renamed,
/// transposed or folded copy of a weight (Gemma's norm scales, `1 + w`
/// folded by the exporter) is traced back to its state-dict name.
class StateDictIndex {
public:
  explicit StateDictIndex(
      const std::map<std::string, galvatron::SafetensorsTensor> &stateDict);
  /// The names of the tensors holding exactly `bytes`, or them transposed.
  using Range =
      std::pair<std::multimap<std::string, std::string>::const_iterator,
                std::multimap<std::string, std::string>::const_iterator>;
  Range direct(const std::string &bytes) const {
    return byBytes.equal_range(bytes);
  }
  Range transposed(const std::string &bytes) const {
    return byTransposed.equal_range(bytes);
  }
  Range plusOne(const std::string &bytes) const {
    return byPlusOne.equal_range(bytes);
  }
  /// The first name holding `bytes`, directly, transposed or plus one, or
  /// "".
  std::string nameOf(const std::string &bytes) const;

private:
  std::multimap<std::string, std::string> byBytes, byTransposed, byPlusOne;
};

/// Renames imported parameters after the model's state dict: a parameter
/// whose bytes equal a state-dict tensor takes that name; one equal to a
/// state-dict tensor transposed is read through a transpose of it, one equal
/// to `1 + w` as `1 + w`, a trainable one made of a matrix's rows as those
/// rows looked up; duplicates collapse into one parameter, under the name
/// named_parameters() gives tied weights. `stateDict` must outlive
/// `imported`'s views.
LogicalResult applyStateDictNames(
    ModuleOp module, ImportedONNX &imported,
    const std::map<std::string, galvatron::SafetensorsTensor> &stateDict);

/// Ties copies of the embedding tables back to them (Hugging Face's
/// `tie_word_embeddings`, for an import without the state dict): a parameter
/// holding the bytes of a table that a gather along axis 0 reads, directly
/// or transposed (an exporter's copy of the output projection), is read from
/// that table instead.
LogicalResult tieEmbeddings(ModuleOp module, ImportedONNX &imported);

/// What ONNX cannot carry, from the model's Hugging Face config.json.
struct HFConfig {
  std::string modelType;
  /// Hugging Face's default when the file does not say.
  bool tieWordEmbeddings = true;
  std::optional<int64_t> padTokenId, vocabSize, maxPositionEmbeddings;
};

/// Reads the config.json at `path`; emits a diagnostic naming it (as
/// --hf-config) and fails when it is not a JSON object or a key it uses has
/// the wrong type.
FailureOr<HFConfig> readHFConfig(MLIRContext *context, StringRef path);

/// Gives the embedding lookups Hugging Face builds with padding_idx (the
/// token table, unless the model type builds it without; RoBERTa's lineage's
/// position table) the config's pad_token_id as galv.embedding's
/// padding_idx. Fails with a diagnostic when the id is outside the table.
LogicalResult applyPaddingIdx(ModuleOp module, const HFConfig &config);

/// Gemma's norms scale by `1 + w`, which the exporters fold into one
/// constant: without the state dict, AdamW would update and decay `1 + w`.
/// For the model types that do, a trainable vector read only by
/// multiplications (a norm scale before recomposition) holding v is made to
/// hold v - 1 and be read as `1 + it`: the forward is unchanged and the
/// optimizer sees w, as PyTorch's does.
LogicalResult unfoldUnitOffsetScales(ModuleOp module, ImportedONNX &imported,
                                     const HFConfig &config);

/// Registers `--import-onnx` with galvatron-translate.
void registerONNXImportTranslation();

} // namespace mlir::galv

#endif // GALVATRON_IMPORT_ONNX_H
