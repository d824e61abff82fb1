//===- GalvAutocast.cpp - where each op computes under mixed precision ----===//
//
// The AutocastOpInterface rules, after PyTorch's CUDA autocast lists: matrix
// products and attention run in bf16 (tensor cores, half the bytes); ops
// whose range or accumulation bf16 would hurt (norm statistics, softmax,
// losses, sums, exp, log, pow) run in fp32. Every other op follows its
// operands (galv-autocast).
//
//===----------------------------------------------------------------------===//

#include "Galv/Galv.h"

using namespace mlir;
using namespace mlir::galv;

AutocastPolicy MatmulOp::getAutocastPolicy() { return AutocastPolicy::Lower; }
AutocastPolicy LinearOp::getAutocastPolicy() { return AutocastPolicy::Lower; }
AutocastPolicy AttentionOp::getAutocastPolicy() {
  return AutocastPolicy::Lower;
}
// The mask is added to fp32 scores (a bf16 -inf bias would saturate).
bool AttentionOp::autocastsOperand(unsigned index) { return index < 3; }

AutocastPolicy LayerNormOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy RmsNormOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy SoftmaxOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy LogSoftmaxOp::getAutocastPolicy() {
  return AutocastPolicy::Full;
}
AutocastPolicy CrossEntropyOp::getAutocastPolicy() {
  return AutocastPolicy::Full;
}
AutocastPolicy ReduceOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy ExpOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy LogOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy PowOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy RsqrtOp::getAutocastPolicy() { return AutocastPolicy::Full; }
AutocastPolicy ReciprocalOp::getAutocastPolicy() {
  return AutocastPolicy::Full;
}
