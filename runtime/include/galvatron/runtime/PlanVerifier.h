//===- PlanVerifier.h - per-instruction checks of a plan --------*- C++ -*-===//

#ifndef GALVATRON_RUNTIME_PLANVERIFIER_H
#define GALVATRON_RUNTIME_PLANVERIFIER_H

#include "galvatron/runtime/plan_generated.h"

#include <string>

namespace galvatron::rt {

/// Checks a compute instruction against what its kernel assumes: operand
/// and attribute counts, axes and permutations, shapes that follow from the
/// inputs. Fails with `error` saying why.
bool checkInstruction(
    const plan::Instruction &inst,
    const flatbuffers::Vector<flatbuffers::Offset<plan::Tensor>> &tensors,
    std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_PLANVERIFIER_H
