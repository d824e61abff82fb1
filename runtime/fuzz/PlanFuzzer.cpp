//===- PlanFuzzer.cpp - libFuzzer target for plan.bin ---------------------===//
//
// The input is a plan's FlatBuffer; the target seals it with a valid header
// (magic, version, CRC-32) so the fuzzer reaches past the checksum, then
// verifies it and, when it verifies, runs rank 0's program on zero-filled
// inputs and weights of the declared shapes. Every plan must either be
// refused with an error or run: no crash, no read outside a tensor (ASan,
// UBSan). scripts/fuzz-plan.sh builds and runs it.
//
//===----------------------------------------------------------------------===//

#include "galvatron/runtime/Executor.h"
#include "galvatron/runtime/PlanFile.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rt = galvatron::rt;
namespace plan = galvatron::plan;

namespace {

/// Harness limit (not the runtime's): plans that ask for more memory than a
/// fuzzer iteration should allocate are skipped.
constexpr uint64_t kMaxBytes = 64ull << 20;

bool declaredShape(const plan::Tensor &t, rt::Shape &shape) {
  const auto *dims = t.shard() && t.shard()->full_shape()
                         ? t.shard()->full_shape()
                         : t.shape();
  uint64_t count = 1;
  if (dims)
    for (int64_t d : *dims) {
      if (d < 0 || d > static_cast<int64_t>(kMaxBytes) ||
          (count *= static_cast<uint64_t>(d)) > kMaxBytes / 8)
        return false;
      shape.push_back(d);
    }
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<uint8_t> sealed = rt::wrapPlan(data, size);
  std::string error;
  const plan::Plan *p = rt::verifyPlan(sealed, error);
  if (!p)
    return 0;
  const plan::RankProgram *program = rt::findRankProgram(*p, 0);
  if (!program || program->arena_bytes() > kMaxBytes)
    return 0;
  std::map<std::string, rt::Tensor> inputs, weights;
  for (const plan::Tensor *t : *program->tensors()) {
    if (t->storage() != plan::Storage::Input &&
        t->storage() != plan::Storage::Weight)
      continue;
    rt::Shape shape;
    if (!t->name() || !declaredShape(*t, shape))
      return 0;
    auto &bound = t->storage() == plan::Storage::Input ? inputs : weights;
    bound[t->name()->str()] = rt::Tensor(rt::toDType(t->dtype()), shape);
  }
  std::map<std::string, rt::Tensor> outputs;
  rt::RunStats stats;
  rt::runRank(*p, 0, inputs, weights, outputs, stats, error);
  return 0;
}
