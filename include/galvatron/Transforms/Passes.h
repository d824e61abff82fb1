//===- Passes.h - galv passes -----------------------------------*- C++ -*-===//

#ifndef GALVATRON_TRANSFORMS_PASSES_H
#define GALVATRON_TRANSFORMS_PASSES_H

#include "Galv/Galv.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::galv {
#define GEN_PASS_DECL
#include "galvatron/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "galvatron/Transforms/Passes.h.inc"

/// The clean-up after ONNX import: folding, recomposition of the ops the
/// strategy passes reason about, and layer outlining.
void buildImportCleanupPipeline(OpPassManager &pm);

/// The precision a pipeline's program computes in.
enum class Precision {
  fp32,
  /// Mixed: bf16 GEMMs and attention, fp32 elsewhere and in the optimizer.
  bf16,
};

/// The values of both pipelines' `precision=` option.
inline auto precisionValues() {
  return llvm::cl::values(
      clEnumValN(Precision::fp32, "fp32", "fp32 throughout"),
      clEnumValN(Precision::bf16, "bf16",
                 "bf16 where PyTorch's autocast uses it (galv-autocast)"));
}

struct InferencePipelineOptions
    : public PassPipelineOptions<InferencePipelineOptions> {
  Option<Precision> precision{
      *this, "precision", llvm::cl::desc("Compute precision"),
      llvm::cl::init(Precision::fp32), precisionValues()};
  Option<bool> fuseNorms{
      *this, "fuse-norms",
      llvm::cl::desc("Fuse residual adds with the norms that read them "
                     "(galv-fuse-residual-norm)"),
      llvm::cl::init(true)};
};

/// From imported galv IR to what --emit-plan serialises for a forward pass:
/// one flat @forward (layers inlined), folded and deduplicated, then its
/// stages assigned, scheduled (@forward_stage0) and its memory planned.
void buildInferencePipeline(OpPassManager &pm,
                            const InferencePipelineOptions &options = {});

/// The optimizer's hyper-parameters, as options of --galv-training-pipeline.
/// The learning rate and its schedule are runtime inputs of @train_step.
struct TrainingPipelineOptions
    : public PassPipelineOptions<TrainingPipelineOptions> {
  Option<Precision> precision{
      *this, "precision",
      llvm::cl::desc("Compute precision (bf16 keeps fp32 master weights and "
                     "Adam moments)"),
      llvm::cl::init(Precision::fp32), precisionValues()};
  Option<double> beta1{*this, "beta1", llvm::cl::desc("AdamW beta1"),
                       llvm::cl::init(0.9)};
  Option<double> beta2{*this, "beta2", llvm::cl::desc("AdamW beta2"),
                       llvm::cl::init(0.999)};
  Option<double> epsilon{*this, "eps", llvm::cl::desc("AdamW epsilon"),
                         llvm::cl::init(1e-8)};
  Option<double> weightDecay{*this, "weight-decay",
                             llvm::cl::desc("Decoupled weight decay"),
                             llvm::cl::init(0.01)};
  Option<double> clipNorm{
      *this, "clip-norm",
      llvm::cl::desc("Clip gradients to this global L2 norm (0: off)"),
      llvm::cl::init(0.0)};
  Option<unsigned> microBatches{
      *this, "micro-batches",
      llvm::cl::desc("Micro-batches per step (gradient accumulation); the "
                     "imported batch size is the micro-batch size"),
      llvm::cl::init(1)};
  Option<bool> fusedAdamW{
      *this, "fused-adamw",
      llvm::cl::desc("One fused galv.adamw_update per parameter"),
      llvm::cl::init(true)};
  Option<bool> fuseNorms{
      *this, "fuse-norms",
      llvm::cl::desc("Fuse residual adds with the norms that read them "
                     "(galv-fuse-residual-norm)"),
      llvm::cl::init(true)};
  Option<bool> foldTransposes{
      *this, "fold-transposes",
      llvm::cl::desc("Fold transposes into GEMM flags (galv-fold-transposes)"),
      llvm::cl::init(true)};
  Option<bool> fusedBackward{
      *this, "fused-backward",
      llvm::cl::desc("Fused gradient ops for the loss and the norms (false: "
                     "the decomposed chains, as a baseline)"),
      llvm::cl::init(true)};
  Option<bool> fusedAttention{
      *this, "fused-attention",
      llvm::cl::desc("Differentiate attention as one galv.attention_grad "
                     "(false: matmuls and a softmax over the scores)"),
      llvm::cl::init(true)};
};

/// The layers inlined, then the loss, partitioning, reverse-mode gradients
/// and one AdamW step as @train_step, then its stages assigned, one
/// function per stage in schedule order, and their memory planned
/// (serialise it with --emit-plan --plan-function=train_step).
void buildTrainingPipeline(OpPassManager &pm,
                           const TrainingPipelineOptions &options);
} // namespace mlir::galv

#endif // GALVATRON_TRANSFORMS_PASSES_H
