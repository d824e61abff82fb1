//===- PlanFile.h - plan.bin container: header, checksum, verification ----===//

#ifndef GALVATRON_RUNTIME_PLANFILE_H
#define GALVATRON_RUNTIME_PLANFILE_H

#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Tensor.h"
#include "galvatron/runtime/plan_generated.h"

#include <cstdint>
#include <string>
#include <vector>

namespace galvatron::rt {

/// The plan.bin format version this runtime reads and the compiler writes.
/// 2: tensors carry shards, rank programs their pipeline stage.
/// 3: LogSoftmax and ArgMax opcodes (later opcodes renumbered).
/// 4: typed attribute tables per opcode instead of ints / floats; input
///    roles, feedback pairs and the vocabulary size.
/// 5: Matmul transpose flags; fused backward and optimizer opcodes.
constexpr uint32_t kPlanFormatVersion = 5;
/// "GALVPLAN" + u32 version + u32 CRC-32 of the FlatBuffer that follows.
constexpr size_t kPlanHeaderBytes = 16;

uint32_t crc32(const uint8_t *data, size_t size);

/// A plan tensor's runtime dtype and (this rank's) shape.
DType toDType(plan::DType dtype);
Shape shapeOf(const plan::Tensor &tensor);

/// Whether `opcode` communicates (its attributes name a device group).
bool isCommunication(plan::Opcode opcode);

/// An attribute vector as int64s; absent reads as empty.
template <typename T>
std::vector<int64_t> int64s(const flatbuffers::Vector<T> *v) {
  return v ? std::vector<int64_t>(v->begin(), v->end())
           : std::vector<int64_t>();
}

/// The elementwise kind a binary (Add .. Or) or unary (Neg .. GeluTanh)
/// opcode computes, for every backend's dispatch; false for other opcodes.
bool binaryKindOf(plan::Opcode opcode, Binary &kind);
bool unaryKindOf(plan::Opcode opcode, Unary &kind);

/// The attribute table `opcode` carries (NONE: it takes no attributes).
plan::InstructionAttrs attrsTypeOf(plan::Opcode opcode);

/// The index in Plan.groups that a communication instruction's attributes
/// name, or -1 (not communication, or no attributes).
int64_t groupOf(const plan::Instruction &inst);

/// Whether `inst` is a copy the memory planner placed on its own input (a
/// reshape that aliases its operand): it moves no bytes, and its output is
/// the same live buffer as its input.
bool isAliasingCopy(const plan::RankProgram &program,
                    const plan::Instruction &inst);

/// Each tensor's buffer (itself, or the operand of the aliasing copies that
/// led to it) and the last instruction that reads each buffer (-1: none;
/// INT64_MAX: a program output), as the executor counts live bytes.
void bufferLifetimes(const plan::RankProgram &program,
                     std::vector<int32_t> &bufferOf,
                     std::vector<int64_t> &lastUse);

/// The most arena bytes live at once when `program` runs, counted as the
/// executor counts them as it runs (RunStats::peakLiveBytes): a buffer
/// lives from its first write to its last read (through any aliasing copy
/// of it), the program's outputs to the end, results nobody reads not past
/// their instruction.
uint64_t peakLiveBytes(const plan::RankProgram &program);

/// Whether an input of `role` is training state (parameter or moment).
bool isState(plan::Role role);

/// Prepends the header to a finished FlatBuffer.
std::vector<uint8_t> wrapPlan(const uint8_t *flatbuffer, size_t size);

/// Reads and validates `path`: header, version, checksum, the FlatBuffers
/// verifier, then the plan's own invariants (tensor indices, sizes and
/// offsets in range, instruction arity). Returns null with `error` set.
const plan::Plan *loadPlan(const std::string &path,
                           std::vector<uint8_t> &storage, std::string &error);

/// The same checks on bytes already in memory.
const plan::Plan *verifyPlan(const std::vector<uint8_t> &bytes,
                             std::string &error);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_PLANFILE_H
