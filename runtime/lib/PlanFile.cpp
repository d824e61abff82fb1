//===- PlanFile.cpp - plan.bin container: header, checksum, verification --===//

#include "galvatron/runtime/PlanFile.h"
#include "galvatron/runtime/PlanVerifier.h"

#include "galvatron/Support/FileChecks.h"
#include "galvatron/runtime/Shard.h"
#include "galvatron/runtime/Tensor.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>

namespace galvatron::rt {

uint32_t crc32(const uint8_t *data, size_t size) {
  static uint32_t table[256] = {};
  if (!table[1])
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i)
    crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

static void putU32(std::vector<uint8_t> &out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

static uint32_t getU32(const uint8_t *p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

std::vector<uint8_t> wrapPlan(const uint8_t *flatbuffer, size_t size) {
  std::vector<uint8_t> out(reinterpret_cast<const uint8_t *>("GALVPLAN"),
                           reinterpret_cast<const uint8_t *>("GALVPLAN") + 8);
  putU32(out, kPlanFormatVersion);
  putU32(out, crc32(flatbuffer, size));
  out.insert(out.end(), flatbuffer, flatbuffer + size);
  return out;
}

static size_t dtypeBytes(plan::DType dtype) {
  switch (dtype) {
  case plan::DType::F32:
  case plan::DType::I32:
    return 4;
  case plan::DType::F64:
  case plan::DType::I64:
    return 8;
  case plan::DType::Bool:
    return 1;
  case plan::DType::BF16:
    return 2;
  }
  return 0;
}

DType toDType(plan::DType dtype) {
  switch (dtype) {
  case plan::DType::F32:
    return DType::F32;
  case plan::DType::F64:
    return DType::F64;
  case plan::DType::I64:
    return DType::I64;
  case plan::DType::I32:
    return DType::I32;
  case plan::DType::Bool:
    return DType::Bool;
  case plan::DType::BF16:
    return DType::BF16;
  }
  return DType::F32;
}

Shape shapeOf(const plan::Tensor &tensor) {
  return Shape(tensor.shape()->begin(), tensor.shape()->end());
}

bool binaryKindOf(plan::Opcode opcode, Binary &kind) {
  using O = plan::Opcode;
  static const std::pair<O, Binary> binaries[] = {
      {O::Add, Binary::Add}, {O::Sub, Binary::Sub}, {O::Mul, Binary::Mul},
      {O::Div, Binary::Div}, {O::Pow, Binary::Pow}, {O::Max, Binary::Max},
      {O::Min, Binary::Min}, {O::And, Binary::And}, {O::Or, Binary::Or}};
  for (auto [op, k] : binaries)
    if (opcode == op)
      return kind = k, true;
  return false;
}

bool unaryKindOf(plan::Opcode opcode, Unary &kind) {
  using O = plan::Opcode;
  static const std::pair<O, Unary> unaries[] = {
      {O::Neg, Unary::Neg},          {O::Not, Unary::Not},
      {O::Abs, Unary::Abs},          {O::Exp, Unary::Exp},
      {O::Log, Unary::Log},          {O::Sqrt, Unary::Sqrt},
      {O::Rsqrt, Unary::Rsqrt},      {O::Reciprocal, Unary::Reciprocal},
      {O::Tanh, Unary::Tanh},        {O::Erf, Unary::Erf},
      {O::Sigmoid, Unary::Sigmoid},  {O::Relu, Unary::Relu},
      {O::Silu, Unary::Silu},        {O::Gelu, Unary::Gelu},
      {O::GeluTanh, Unary::GeluTanh}};
  for (auto [op, k] : unaries)
    if (opcode == op)
      return kind = k, true;
  return false;
}

bool isCommunication(plan::Opcode opcode) {
  using O = plan::Opcode;
  switch (opcode) {
  case O::AllReduce:
  case O::AllGather:
  case O::ReduceScatter:
  case O::AllToAll:
  case O::Broadcast:
  case O::Send:
  case O::Recv:
    return true;
  default:
    return false;
  }
}

plan::InstructionAttrs attrsTypeOf(plan::Opcode opcode) {
  using O = plan::Opcode;
  using A = plan::InstructionAttrs;
  switch (opcode) {
  case O::Compare:
    return A::CompareAttrs;
  case O::Linear:
    return A::LinearAttrs;
  case O::Transpose:
    return A::TransposeAttrs;
  case O::Slice:
    return A::SliceAttrs;
  case O::Concat:
  case O::Split:
  case O::Gather:
  case O::Softmax:
  case O::LogSoftmax:
    return A::AxisAttrs;
  case O::ArgMax:
    return A::ArgMaxAttrs;
  case O::Reduce:
    return A::ReduceAttrs;
  case O::LayerNorm:
  case O::RmsNorm:
  case O::LayerNormGrad:
  case O::RmsNormGrad:
  case O::AddLayerNorm:
  case O::AddRmsNorm:
    return A::NormAttrs;
  case O::Rotary:
    return A::RotaryAttrs;
  case O::Attention:
  case O::AttentionGrad:
    return A::AttentionAttrs;
  case O::CrossEntropy:
  case O::CrossEntropyGrad:
    return A::CrossEntropyAttrs;
  case O::EmbeddingGrad:
    return A::EmbeddingGradAttrs;
  case O::Matmul:
    return A::MatmulAttrs;
  case O::AdamWUpdate:
    return A::AdamWAttrs;
  case O::AllReduce:
    return A::AllReduceAttrs;
  case O::AllGather:
  case O::ReduceScatter:
    return A::CollectiveAxisAttrs;
  case O::AllToAll:
    return A::AllToAllAttrs;
  case O::Broadcast:
    return A::BroadcastAttrs;
  case O::Send:
  case O::Recv:
    return A::PeerAttrs;
  default:
    return A::NONE;
  }
}

bool isAliasingCopy(const plan::RankProgram &program,
                    const plan::Instruction &inst) {
  if (inst.opcode() != plan::Opcode::Copy || !inst.inputs() ||
      !inst.outputs() || inst.inputs()->size() != 1 ||
      inst.outputs()->size() != 1)
    return false;
  auto tensor = [&](int32_t index) -> const plan::Tensor * {
    if (index < 0 || index >= static_cast<int32_t>(program.tensors()->size()))
      return nullptr;
    return program.tensors()->Get(index);
  };
  const plan::Tensor *in = tensor(inst.inputs()->Get(0));
  const plan::Tensor *out = tensor(inst.outputs()->Get(0));
  return in && out && in->storage() == plan::Storage::Arena &&
         out->storage() == plan::Storage::Arena &&
         in->offset() == out->offset() && in->bytes() == out->bytes();
}

void bufferLifetimes(const plan::RankProgram &program,
                     std::vector<int32_t> &bufferOf,
                     std::vector<int64_t> &lastUse) {
  const auto &insts = *program.instructions();
  bufferOf.resize(program.tensors()->size());
  std::iota(bufferOf.begin(), bufferOf.end(), 0);
  lastUse.assign(program.tensors()->size(), -1);
  for (size_t i = 0; i < insts.size(); ++i) {
    for (int32_t t : *insts.Get(i)->inputs())
      lastUse[bufferOf[t]] = static_cast<int64_t>(i);
    if (isAliasingCopy(program, *insts.Get(i)))
      bufferOf[insts.Get(i)->outputs()->Get(0)] =
          bufferOf[insts.Get(i)->inputs()->Get(0)];
  }
  if (program.outputs())
    for (int32_t t : *program.outputs())
      lastUse[bufferOf[t]] = INT64_MAX;
}

uint64_t peakLiveBytes(const plan::RankProgram &program) {
  const auto &tensors = *program.tensors();
  const auto &insts = *program.instructions();
  auto arena = [&](int32_t t) {
    return tensors.Get(t)->storage() == plan::Storage::Arena;
  };
  std::vector<int32_t> bufferOf;
  std::vector<int64_t> lastUse;
  bufferLifetimes(program, bufferOf, lastUse);
  std::vector<bool> written(tensors.size(), false);
  uint64_t live = 0, peak = 0;
  for (size_t i = 0; i < insts.size(); ++i) {
    const plan::Instruction &inst = *insts.Get(i);
    for (int32_t t : *inst.outputs())
      if (arena(t) && bufferOf[t] == t && !written[t]) {
        written[t] = true;
        live += tensors.Get(t)->bytes();
        peak = std::max(peak, live);
      }
    for (int32_t input : *inst.inputs()) {
      int32_t t = bufferOf[input];
      if (lastUse[t] == static_cast<int64_t>(i) && arena(t))
        live -= tensors.Get(t)->bytes(), lastUse[t] = -2;
    }
    for (int32_t t : *inst.outputs())
      if (bufferOf[t] == t && lastUse[t] == -1 && arena(t))
        live -= tensors.Get(t)->bytes(), lastUse[t] = -2;
  }
  return peak;
}

int64_t groupOf(const plan::Instruction &inst) {
  if (const auto *a = inst.attrs_as_AllReduceAttrs())
    return a->group();
  if (const auto *a = inst.attrs_as_CollectiveAxisAttrs())
    return a->group();
  if (const auto *a = inst.attrs_as_AllToAllAttrs())
    return a->group();
  if (const auto *a = inst.attrs_as_BroadcastAttrs())
    return a->group();
  if (const auto *a = inst.attrs_as_PeerAttrs())
    return a->group();
  return -1;
}

bool isState(plan::Role role) {
  return role == plan::Role::Parameter || role == plan::Role::AdamM ||
         role == plan::Role::AdamV;
}

/// A collective's output shape follows from its input's, the group size and
/// its axes (plan.fbs states the semantics); checked here so that a plan
/// the compiler got wrong fails before anything runs.
static bool checkCollective(
    const plan::Instruction &inst,
    const flatbuffers::Vector<flatbuffers::Offset<plan::Tensor>> &tensors,
    int64_t n, std::string &error) {
  using O = plan::Opcode;
  O op = inst.opcode();
  // A position in the group: a Broadcast's root, a Send's or Recv's peer.
  int64_t position = -1;
  if (const auto *b = inst.attrs_as_BroadcastAttrs())
    position = b->root();
  if (const auto *p = inst.attrs_as_PeerAttrs())
    position = p->peer();
  if (op == O::Send || op == O::Recv || op == O::Broadcast) {
    if (position < 0 || position >= n)
      return error = std::string(op == O::Broadcast ? "root " : "peer ") +
                     std::to_string(position) +
                     " is not a position in a group of " + std::to_string(n),
             false;
    if (op != O::Broadcast)
      return true;
  }
  if (const auto *r = inst.attrs_as_AllReduceAttrs())
    if (r->reduction() < plan::Reduction::MIN ||
        r->reduction() > plan::Reduction::MAX)
      return error = "reduction " +
                     std::to_string(static_cast<int>(r->reduction())) +
                     " is none of sum, mean, max, min, prod",
             false;
  if (inst.inputs()->size() < 1)
    return error = "needs an input", false;
  auto shapeOf = [&](int32_t index) {
    const auto *shape = tensors.Get(index)->shape();
    return Shape(shape->begin(), shape->end());
  };
  Shape in = shapeOf(inst.inputs()->Get(0)), want = in;
  int64_t rank = static_cast<int64_t>(in.size());
  auto axis = [&](int64_t &x) {
    if (x < 0)
      x += rank;
    return x >= 0 && x < rank;
  };
  if (op == O::AllGather || op == O::ReduceScatter || op == O::AllToAll) {
    int64_t first, second;
    if (const auto *a = inst.attrs_as_AllToAllAttrs()) {
      first = a->split_axis();
      second = a->concat_axis();
    } else {
      first = second = inst.attrs_as_CollectiveAxisAttrs()->axis();
    }
    if (!axis(first) || !axis(second))
      return error = "an axis is out of range for " + shapeString(in), false;
    if (op == O::AllGather) {
      want[first] *= n;
    } else {
      if (in[first] % n != 0)
        return error = "axis " + std::to_string(first) + " of " +
                       shapeString(in) + " does not split into " +
                       std::to_string(n) + " pieces",
               false;
      want[first] /= n;
      if (op == O::AllToAll)
        want[second] *= n;
    }
  }
  Shape out = shapeOf(inst.outputs()->Get(0));
  if (out != want)
    return error = "gives " + shapeString(want) + " but its output is " +
                   shapeString(out),
           false;
  return true;
}

/// Whether a vector of 8-byte elements is 8-byte aligned: the FlatBuffers
/// verifier checks only the length field's 4-byte alignment, and reading a
/// misaligned long is undefined behaviour (found by the plan fuzzer).
template <typename T> static bool aligned(const flatbuffers::Vector<T> *v) {
  // An empty vector has no elements to read (writers leave it unaligned).
  return !v || v->size() == 0 ||
         reinterpret_cast<uintptr_t>(v->data()) % alignof(T) == 0;
}

/// Every vector of 8-byte elements in the rank's program is aligned.
static bool checkAlignment(const plan::RankProgram &rank) {
  for (const plan::Tensor *t : *rank.tensors())
    if (!aligned(t->shape()) ||
        (t->shard() && !aligned(t->shard()->full_shape())))
      return false;
  for (const plan::Instruction *inst : *rank.instructions())
    if (const plan::SliceAttrs *slice = inst->attrs_as_SliceAttrs())
      if (!aligned(slice->starts()) || !aligned(slice->limits()) ||
          !aligned(slice->steps()))
        return false;
  return true;
}

/// The instruction carries its opcode's attribute table (plan.fbs), so
/// that the executor and the verifier read the fields they expect.
static bool checkAttrsTable(const plan::Instruction &inst, std::string &error) {
  plan::InstructionAttrs want = attrsTypeOf(inst.opcode());
  plan::InstructionAttrs got = inst.attrs_type();
  auto tableName = [](plan::InstructionAttrs type) {
    const char *name = plan::EnumNameInstructionAttrs(type);
    return type == plan::InstructionAttrs::NONE ? std::string("no attributes")
           : *name
               ? std::string(name)
               : "attribute table " + std::to_string(static_cast<int>(type));
  };
  if (got != want)
    return error = "carries " + tableName(got) + ", but " +
                   plan::EnumNameOpcode(inst.opcode()) + " takes " +
                   tableName(want),
           false;
  if (want != plan::InstructionAttrs::NONE && !inst.attrs())
    return error = "names " + tableName(want) + " but holds no table", false;
  return true;
}

/// Roles belong to inputs: the state names its parameter, and the
/// schedule's learning rate and step are f32 scalars (the trainer feeds
/// them so).
static bool checkRoles(const plan::RankProgram &rank, std::string &error) {
  std::vector<bool> input(rank.tensors()->size(), false);
  if (rank.inputs())
    for (int32_t index : *rank.inputs())
      input[index] = true;
  for (size_t i = 0; i < rank.tensors()->size(); ++i) {
    const plan::Tensor *t = rank.tensors()->Get(i);
    plan::Role role = t->role();
    std::string name = "tensor " + std::to_string(i);
    if (role < plan::Role::MIN || role > plan::Role::MAX)
      return error = name + " has an unknown role " +
                     std::to_string(static_cast<int>(role)),
             false;
    if (role == plan::Role::Data)
      continue;
    std::string roleName = plan::EnumNameRole(role);
    if (!input[i] || t->storage() != plan::Storage::Input)
      return error = name + " has role " + roleName + " but is no input", false;
    if (isState(role) && (!t->param_name() || !t->param_name()->size()))
      return error = "input '" + t->name()->str() + "' (" + roleName +
                     ") names no parameter",
             false;
    if (!isState(role) &&
        (t->dtype() != plan::DType::F32 || t->shape()->size() != 0))
      return error = "input '" + t->name()->str() + "' (" + roleName +
                     ") must be an f32 scalar",
             false;
  }
  return true;
}

/// Each feedback pair joins an output to a state input of the same type
/// and shape, and no state input is fed back twice. (One fed by none keeps
/// its value: a pipeline stage that only hands a parameter on.)
static bool checkFeedback(const plan::RankProgram &rank, std::string &error) {
  size_t inputs = rank.inputs() ? rank.inputs()->size() : 0;
  size_t outputs = rank.outputs() ? rank.outputs()->size() : 0;
  std::vector<int> fed(inputs, 0);
  if (rank.feedback())
    for (size_t k = 0; k < rank.feedback()->size(); ++k) {
      const plan::Feedback *f = rank.feedback()->Get(k);
      std::string pair = "feedback " + std::to_string(k) + " (output " +
                         std::to_string(f->output()) + " -> input " +
                         std::to_string(f->input()) + ")";
      if (f->output() < 0 || static_cast<size_t>(f->output()) >= outputs ||
          f->input() < 0 || static_cast<size_t>(f->input()) >= inputs)
        return error = pair + " is out of range", false;
      const plan::Tensor *out =
          rank.tensors()->Get(rank.outputs()->Get(f->output()));
      const plan::Tensor *in =
          rank.tensors()->Get(rank.inputs()->Get(f->input()));
      if (!isState(in->role()))
        return error = pair + " feeds an input that is not training state",
               false;
      if (out->dtype() != in->dtype() ||
          !std::equal(out->shape()->begin(), out->shape()->end(),
                      in->shape()->begin(), in->shape()->end()))
        return error = pair + " joins tensors of different types", false;
      ++fed[f->input()];
    }
  for (size_t i = 0; i < inputs; ++i) {
    const plan::Tensor *t = rank.tensors()->Get(rank.inputs()->Get(i));
    if (fed[i] > 1)
      return error = "state input '" + t->name()->str() + "' (" +
                     plan::EnumNameRole(t->role()) + " of '" +
                     t->param_name()->str() + "') is fed back by " +
                     std::to_string(fed[i]) + " outputs",
             false;
  }
  return true;
}

/// Invariants the FlatBuffers verifier cannot know.
static bool checkRank(const plan::Plan &p, const plan::RankProgram &rank,
                      std::string &error) {
  std::string where = "rank " + std::to_string(rank.rank()) + ": ";
  auto *tensors = rank.tensors();
  if (!tensors || !rank.instructions())
    return error = where + "program has no tensors or instructions", false;
  if (!checkAlignment(rank))
    return error = where + "a shape or attribute vector is misaligned", false;
  uint64_t constants = p.constants() ? p.constants()->size() : 0;
  for (size_t i = 0; i < tensors->size(); ++i) {
    const plan::Tensor *t = tensors->Get(i);
    std::string name = "tensor " + std::to_string(i);
    size_t width = dtypeBytes(t->dtype());
    if (!width || !t->shape())
      return error = where + name + " has no valid dtype or shape", false;
    if (t->storage() < plan::Storage::MIN || t->storage() > plan::Storage::MAX)
      return error = where + name + " has an unknown storage kind", false;
    uint64_t count = 1;
    for (int64_t d : *t->shape()) {
      if (d < 0 || (d > 0 && count > (uint64_t{1} << 40) / d))
        return error = where + name + " has a bad shape", false;
      count *= d;
    }
    if (t->bytes() != count * width)
      return error = where + name + " states " + std::to_string(t->bytes()) +
                     " bytes but its shape needs " +
                     std::to_string(count * width),
             false;
    uint64_t limit = t->storage() == plan::Storage::Arena ? rank.arena_bytes()
                     : t->storage() == plan::Storage::Constant ? constants
                                                               : UINT64_MAX;
    if (t->storage() == plan::Storage::Arena ||
        t->storage() == plan::Storage::Constant)
      if (t->offset() > limit || t->bytes() > limit - t->offset())
        return error = where + name + " lies outside its " +
                       (t->storage() == plan::Storage::Arena ? "arena"
                                                             : "constants"),
               false;
    if ((t->storage() == plan::Storage::Input ||
         t->storage() == plan::Storage::Weight) &&
        !t->name())
      return error = where + name + " is bound by name but has none", false;
    if (t->shard()) {
      Shape local, own(t->shape()->begin(), t->shape()->end());
      std::string why;
      if (!t->shard()->full_shape())
        return error = where + name + "'s shard has no full shape", false;
      for (int64_t d : *t->shard()->full_shape())
        if (d < 0 || d > (int64_t{1} << 40))
          return error = where + name + "'s shard has a bad full shape", false;
      if (!shardShape(*t->shard(), local, why))
        return error = where + name + ": " + why, false;
      if (local != own)
        return error = where + name + " is " + shapeString(own) +
                       ", but its shard of " +
                       shapeString(shardFullShape(*t->shard())) + " gives " +
                       shapeString(local),
               false;
    }
  }
  auto inRange = [&](const flatbuffers::Vector<int32_t> *indices) {
    if (!indices)
      return true;
    for (int32_t i : *indices)
      if (i < 0 || static_cast<size_t>(i) >= tensors->size())
        return false;
    return true;
  };
  if (!inRange(rank.inputs()) || !inRange(rank.outputs()))
    return error = where + "an input or output index is out of range", false;
  if (!checkRoles(rank, error) || !checkFeedback(rank, error)) {
    error = where + error;
    return false;
  }
  for (size_t i = 0; i < rank.instructions()->size(); ++i) {
    const plan::Instruction *inst = rank.instructions()->Get(i);
    const char *name = plan::EnumNameOpcode(inst->opcode());
    std::string what = "instruction " + std::to_string(i) + " (" + name + ")";
    if (!*name)
      return error = where + "instruction " + std::to_string(i) +
                     " has an unknown opcode",
             false;
    if (!inRange(inst->inputs()) || !inRange(inst->outputs()) ||
        !inst->inputs() || !inst->outputs() || inst->outputs()->size() == 0)
      return error = where + what + " refers to tensors out of range", false;
    if (!checkAttrsTable(*inst, error))
      return error = where + what + " " + error, false;
    // Communication names a device group that must exist and hold the rank.
    if (isCommunication(inst->opcode())) {
      int64_t group = groupOf(*inst);
      if (!p.groups() || group < 0 ||
          group >= static_cast<int64_t>(p.groups()->size()))
        return error = where + what + " names no valid device group", false;
      const auto *ranks = p.groups()->Get(group)->ranks();
      if (!ranks ||
          std::find(ranks->begin(), ranks->end(), rank.rank()) == ranks->end())
        return error = where + what + " uses group " + std::to_string(group) +
                       ", which does not contain this rank",
               false;
      if (!checkCollective(*inst, *tensors, ranks->size(), error)) {
        error = where + what + " over group " + std::to_string(group) + ": " +
                error;
        return false;
      }
    } else if (std::any_of(inst->outputs()->begin(), inst->outputs()->end(),
                           [&](int32_t t) {
                             return tensors->Get(t)->storage() !=
                                    plan::Storage::Arena;
                           })) {
      // Results are written to the arena; anything else would be lost or
      // overwrite an input, a weight or a constant.
      return error = where + what + " writes a tensor outside the arena", false;
    } else if (!checkInstruction(*inst, *tensors, error)) {
      error = where + what + ": " + error;
      return false;
    }
  }
  return true;
}

const plan::Plan *verifyPlan(const std::vector<uint8_t> &bytes,
                             std::string &error) {
  if (bytes.size() < kPlanHeaderBytes ||
      std::memcmp(bytes.data(), "GALVPLAN", 8) != 0)
    return error = "not a galvatron plan (bad magic or too short)", nullptr;
  uint32_t version = getU32(bytes.data() + 8);
  if (version != kPlanFormatVersion)
    return error = "plan format version " + std::to_string(version) +
                   " is not the version " + std::to_string(kPlanFormatVersion) +
                   " this runtime reads: re-emit the plan with this "
                   "galvatron-translate (--emit-plan)",
           nullptr;
  const uint8_t *payload = bytes.data() + kPlanHeaderBytes;
  size_t size = bytes.size() - kPlanHeaderBytes;
  uint32_t stored = getU32(bytes.data() + 12), actual = crc32(payload, size);
  if (stored != actual)
    return error = "checksum mismatch (stored " + std::to_string(stored) +
                   ", computed " + std::to_string(actual) +
                   "): the plan is truncated or corrupt",
           nullptr;
  flatbuffers::Verifier verifier(payload, size);
  if (!plan::VerifyPlanBuffer(verifier))
    return error = "the plan fails FlatBuffers verification", nullptr;
  const plan::Plan *p = plan::GetPlan(payload);
  if (!p->ranks() || p->ranks()->size() == 0 || p->world_size() < 1 ||
      static_cast<int>(p->ranks()->size()) != p->world_size())
    return error = "the plan needs one program per rank of its world size",
           nullptr;
  if (p->vocab_size() < 0)
    return error = "the plan's vocabulary size " +
                   std::to_string(p->vocab_size()) + " is negative",
           nullptr;
  // Groups name distinct ranks of the world; programs cover each rank once.
  if (p->groups())
    for (size_t g = 0; g < p->groups()->size(); ++g) {
      const auto *ranks = p->groups()->Get(g)->ranks();
      std::vector<bool> seen(p->world_size());
      if (ranks)
        for (int32_t r : *ranks) {
          if (r < 0 || r >= p->world_size() || seen[r])
            return error = "device group " + std::to_string(g) +
                           " names rank " + std::to_string(r) +
                           (r < 0 || r >= p->world_size()
                                ? ", outside the world size " +
                                      std::to_string(p->world_size())
                                : " twice"),
                   nullptr;
          seen[r] = true;
        }
    }
  std::vector<bool> covered(p->world_size());
  for (const plan::RankProgram *rank : *p->ranks()) {
    int r = rank->rank();
    if (r < 0 || r >= p->world_size() || covered[r])
      return error = "the plan has " +
                     std::string(
                         r < 0 || r >= p->world_size()
                             ? "a program for rank " + std::to_string(r) +
                                   ", outside its world size"
                             : "two programs for rank " + std::to_string(r)),
             nullptr;
    covered[r] = true;
    if (!checkRank(*p, *rank, error))
      return nullptr;
  }
  return p;
}

const plan::Plan *loadPlan(const std::string &path,
                           std::vector<uint8_t> &storage, std::string &error) {
  // A directory or a device (/dev/zero) is no plan: refuse it before reading
  // it whole.
  if (std::string reason = notRegularFileReason(path); !reason.empty())
    return error = reason, nullptr;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return error = "cannot open '" + path + "'", nullptr;
  storage.assign(std::istreambuf_iterator<char>(in),
                 std::istreambuf_iterator<char>());
  const plan::Plan *p = verifyPlan(storage, error);
  if (!p)
    error = path + ": " + error;
  return p;
}

} // namespace galvatron::rt
