//===- CollectiveCheck.h - ranks agree on their collectives -----*- C++ -*-===//

#ifndef GALVATRON_RUNTIME_COLLECTIVECHECK_H
#define GALVATRON_RUNTIME_COLLECTIVECHECK_H

#include "galvatron/runtime/Comm.h"
#include "galvatron/runtime/plan_generated.h"

#include <cstdint>
#include <string>

namespace galvatron::rt {

/// A digest of the collectives `program` runs over plan group `group`, in
/// order: opcode, attributes, and the input's dtype and element count.
uint64_t collectiveDigest(const plan::RankProgram &program, int group);

/// Before the first step: every group of more than one rank compares its
/// members' digests (one all-gather per group, in group order, so the checks
/// cannot deadlock). Programs that disagree would hang or corrupt memory
/// inside MPI; they are refused naming the group and the ranks that differ.
bool checkCollectiveSequences(const plan::Plan &plan,
                              const plan::RankProgram &program,
                              Communicator &comm, std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_COLLECTIVECHECK_H
