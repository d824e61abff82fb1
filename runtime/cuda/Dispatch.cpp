//===- Dispatch.cpp - a plan instruction as CUDA kernel launches ----------===//
//
// The CUDA counterpart of the CPU executor's kernel groups: the attribute
// table each opcode carries (plan.fbs), read as the CPU executor reads it,
// and the launcher that runs it.
//
//===----------------------------------------------------------------------===//

#include "Dispatch.h"

#include "galvatron/runtime/PlanFile.h"

namespace galvatron::rt::cuda {
namespace {

using O = plan::Opcode;

/// What a group of launchers made of an instruction: not its opcode, or the
/// launch's error.
struct Outcome {
  bool mine = true;
  cudaError_t error = cudaSuccess;
};
const Outcome kNotMine = {false, cudaSuccess};

Outcome elementwise(const plan::Instruction &inst, std::vector<DeviceView> &in,
                    std::vector<DeviceView> &out, cudaStream_t s) {
  Binary binaryKind;
  if (binaryKindOf(inst.opcode(), binaryKind))
    return {true, binary(binaryKind, in[0], in[1], out[0], s)};
  Unary unaryKind;
  if (unaryKindOf(inst.opcode(), unaryKind))
    return {true, unary(unaryKind, in[0], out[0], s)};
  switch (inst.opcode()) {
  case O::Compare: {
    static const Binary kinds[] = {Binary::Eq, Binary::Ne, Binary::Lt,
                                   Binary::Le, Binary::Gt, Binary::Ge};
    int p = static_cast<int>(inst.attrs_as_CompareAttrs()->predicate());
    if (p < 0 || p > 5)
      return {true, cudaErrorInvalidValue};
    return {true, binary(kinds[p], in[0], in[1], out[0], s)};
  }
  case O::Where:
    return {true, where(in[0], in[1], in[2], out[0], s)};
  case O::Cast:
    return {true, cast(in[0], out[0], s)};
  default:
    return kNotMine;
  }
}

Outcome movement(const plan::Instruction &inst, std::vector<DeviceView> &in,
                 std::vector<DeviceView> &out, cudaStream_t s) {
  switch (inst.opcode()) {
  case O::Copy:
    return {true, copy(in[0], out[0], s)};
  case O::Transpose:
    return {true,
            transpose(in[0], int64s(inst.attrs_as_TransposeAttrs()->perm()),
                      out[0], s)};
  case O::Slice: {
    const auto *a = inst.attrs_as_SliceAttrs();
    return {true,
            slice(in[0], int64s(a->starts()), int64s(a->steps()), out[0], s)};
  }
  case O::Concat:
    return {true, concat(in, inst.attrs_as_AxisAttrs()->axis(), out[0], s)};
  case O::Split:
    return {true, split(in[0], inst.attrs_as_AxisAttrs()->axis(), out, s)};
  case O::Expand:
    return {true, expand(in[0], out[0], s)};
  case O::Gather:
    return {true,
            gather(in[0], in[1], inst.attrs_as_AxisAttrs()->axis(), out[0], s)};
  case O::Embedding:
    return {true, embedding(in[0], in[1], out[0], s)};
  case O::EmbeddingGrad:
    return {true,
            embeddingGrad(in[0], in[1],
                          inst.attrs_as_EmbeddingGradAttrs()->padding_idx(),
                          out[0], s)};
  default:
    return kNotMine;
  }
}

Outcome rows(const plan::Instruction &inst, std::vector<DeviceView> &in,
             std::vector<DeviceView> &out, cudaStream_t s) {
  switch (inst.opcode()) {
  case O::Matmul: {
    const auto *a = inst.attrs_as_MatmulAttrs();
    return {true, matmul(in[0], in[1], a->transpose_lhs(), a->transpose_rhs(),
                         out[0], s)};
  }
  case O::Linear:
    return {true, linear(in[0], in[1], in.size() > 2 ? &in[2] : nullptr,
                         inst.attrs_as_LinearAttrs()->layout() ==
                             plan::WeightLayout::OutIn,
                         out[0], s)};
  case O::Reduce: {
    const auto *a = inst.attrs_as_ReduceAttrs();
    return {true, reduce(static_cast<Reduction>(a->kind()), in[0],
                         int64s(a->axes()), out[0], s)};
  }
  case O::Softmax:
    return {true, softmax(in[0], inst.attrs_as_AxisAttrs()->axis(), out[0], s)};
  case O::LogSoftmax:
    return {true,
            logSoftmax(in[0], inst.attrs_as_AxisAttrs()->axis(), out[0], s)};
  case O::ArgMax: {
    const auto *a = inst.attrs_as_ArgMaxAttrs();
    return {true, argMax(in[0], a->axis(), a->select_last_index(), out[0], s)};
  }
  case O::LayerNorm:
    return {true, layerNorm(in[0], in[1], in.size() > 2 ? &in[2] : nullptr,
                            inst.attrs_as_NormAttrs()->eps(), out[0], s)};
  case O::RmsNorm:
    return {true,
            rmsNorm(in[0], in[1], inst.attrs_as_NormAttrs()->eps(), out[0], s)};
  case O::AddLayerNorm:
  case O::AddRmsNorm:
    return {true, addNorm(in[0], in[1], in[2], in.size() > 3 ? &in[3] : nullptr,
                          inst.opcode() == O::AddRmsNorm,
                          inst.attrs_as_NormAttrs()->eps(), out[0], out[1], s)};
  case O::Rotary:
    return {true,
            rotary(in[0], in[1], in[2],
                   inst.attrs_as_RotaryAttrs()->interleaved(), out[0], s)};
  case O::Attention: {
    const auto *a = inst.attrs_as_AttentionAttrs();
    return {true,
            attention(in[0], in[1], in[2], in.size() > 3 ? &in[3] : nullptr,
                      a->causal(), a->scale(), out[0], s)};
  }
  case O::CrossEntropy: {
    const auto *a = inst.attrs_as_CrossEntropyAttrs();
    return {true,
            crossEntropy(in[0], in[1], a->reduction() == plan::Reduction::Mean,
                         a->ignore_index(), out[0], s)};
  }
  default:
    return kNotMine;
  }
}

Outcome fused(const plan::Instruction &inst, std::vector<DeviceView> &in,
              std::vector<DeviceView> &out, cudaStream_t s) {
  switch (inst.opcode()) {
  case O::CrossEntropyGrad: {
    const auto *a = inst.attrs_as_CrossEntropyAttrs();
    return {true, crossEntropyGrad(in[0], in[1], in[2],
                                   a->reduction() == plan::Reduction::Mean,
                                   a->ignore_index(), out[0], s)};
  }
  case O::LayerNormGrad:
    return {true,
            layerNormGrad(in[0], in[1], in[2], inst.attrs_as_NormAttrs()->eps(),
                          out[0], out[1], out[2], s)};
  case O::RmsNormGrad:
    return {true,
            rmsNormGrad(in[0], in[1], in[2], inst.attrs_as_NormAttrs()->eps(),
                        out[0], out[1], s)};
  case O::GeluGrad:
  case O::GeluTanhGrad:
    return {true, geluGrad(in[0], in[1], inst.opcode() == O::GeluTanhGrad,
                           out[0], s)};
  case O::AttentionGrad: {
    const auto *a = inst.attrs_as_AttentionAttrs();
    return {true, attentionGrad(in[0], in[1], in[2], in[3],
                                in.size() > 4 ? &in[4] : nullptr, a->causal(),
                                a->scale(), out[0], out[1], out[2], s)};
  }
  case O::AdamWUpdate: {
    const auto *a = inst.attrs_as_AdamWAttrs();
    return {true, adamwUpdate(a->beta1(), a->beta2(), a->epsilon(),
                              a->weight_decay(), in[0], in[1], in[2], in[3],
                              in[4], in[5], out[0], out[1], out[2], s)};
  }
  default:
    return kNotMine;
  }
}

} // namespace

bool dispatch(const plan::Instruction &inst, std::vector<DeviceView> &in,
              std::vector<DeviceView> &out, cudaStream_t stream,
              std::string &error) {
  // The plan verifier checked operand counts and attribute tables.
  for (auto group : {elementwise, movement, rows, fused}) {
    Outcome outcome = group(inst, in, out, stream);
    if (!outcome.mine)
      continue;
    if (outcome.error == cudaSuccess)
      return true;
    error = cudaGetErrorString(outcome.error);
    if (outcome.error == cudaErrorUnknown ||
        (inst.opcode() == O::Matmul || inst.opcode() == O::Linear))
      error += std::string(" (") + gemmErrorDetail() + ")";
    else if (outcome.error == cudaErrorNotSupported)
      error += " (its operand types or rank are not supported on CUDA)";
    return false;
  }
  error = "no CUDA kernel for this instruction";
  return false;
}

} // namespace galvatron::rt::cuda
