//===- FoldTransposes.cpp - transposes into GEMM flags --------------------===//
//
// Autodiff writes a weight's gradient as transpose(x) * dy and a matmul's
// operand gradients with transposed operands; GEMM reads either operand
// transposed at no cost, so the explicit copies are folded into the
// matmul's flags.
//
//===----------------------------------------------------------------------===//

#include "galvatron/Transforms/Passes.h"

#include "llvm/ADT/SetVector.h"

namespace mlir::galv {
#define GEN_PASS_DEF_FOLDTRANSPOSES
#include "galvatron/Transforms/Passes.h.inc"
} // namespace mlir::galv

using namespace mlir;
using namespace mlir::galv;

namespace {
/// Whether `t` swaps the last two dimensions and keeps the others in place.
bool swapsLastTwo(TransposeOp t) {
  ArrayRef<int64_t> perm = t.getPermutation();
  int64_t rank = static_cast<int64_t>(perm.size());
  if (rank < 2 || perm[rank - 2] != rank - 1 || perm[rank - 1] != rank - 2)
    return false;
  for (int64_t d = 0; d + 2 < rank; ++d)
    if (perm[d] != d)
      return false;
  return true;
}

struct FoldTransposesPass : galv::impl::FoldTransposesBase<FoldTransposesPass> {
  void runOnOperation() override {
    llvm::SetVector<Operation *> folded;
    getOperation().walk([&](MatmulOp m) {
      for (unsigned i = 0; i < 2; ++i) {
        auto t = m->getOperand(i).getDefiningOp<TransposeOp>();
        if (!t || !swapsLastTwo(t))
          continue;
        m->setOperand(i, t.getInput());
        if (i == 0)
          m.setTransposeLhs(!m.getTransposeLhs());
        else
          m.setTransposeRhs(!m.getTransposeRhs());
        folded.insert(t);
      }
    });
    for (Operation *t : folded)
      if (t->use_empty())
        t->erase();
  }
};
} // namespace
