//===- Checkpoint.cpp - training checkpoints ------------------------------===//

#include "galvatron/runtime/Checkpoint.h"
#include "galvatron/Support/AtomicFile.h"
#include "galvatron/Support/Safetensors.h"
#include "galvatron/runtime/Weights.h"

#include <cstdio>

namespace galvatron::rt {

static bool startsWith(const std::string &s, const std::string &prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool saveCheckpoint(const std::string &dir, const CheckpointState &state,
                    std::string &error) {
  std::map<std::string, SafetensorsTensor> model, optimizer;
  for (const auto &[name, t] : state.tensors) {
    SafetensorsTensor out;
    out.dtype = "F32";
    out.shape.assign(t.shape.begin(), t.shape.end());
    out.data.assign(t.bytes.begin(), t.bytes.end());
    if (startsWith(name, "param:"))
      model[name.substr(6)] = std::move(out);
    else
      optimizer[name] = std::move(out);
  }
  if (!writeSafetensors(dir + "/model.safetensors", model, error,
                        {{"format", "pt"}}) ||
      !writeSafetensors(dir + "/optimizer.safetensors", optimizer, error))
    return false;
  // The step file goes last and atomically: a checkpoint without it (or with
  // an older one) is never mistaken for a finished one.
  std::string text = "{\"step\": " + std::to_string(state.step) + "}\n";
  return writeFileAtomically(dir + "/trainer.json",
                             {{text.data(), text.size()}}, error);
}

bool loadCheckpoint(const std::string &dir, CheckpointState &state,
                    std::string &error) {
  std::map<std::string, Tensor> model, optimizer;
  if (!loadTensors(dir + "/model.safetensors", model, error) ||
      !loadTensors(dir + "/optimizer.safetensors", optimizer, error))
    return false;
  for (auto &[name, t] : model)
    state.tensors["param:" + name] = std::move(t);
  for (auto &[name, t] : optimizer)
    state.tensors[name] = std::move(t);
  FILE *f = std::fopen((dir + "/trainer.json").c_str(), "r");
  int saved = 0;
  bool ok = f && std::fscanf(f, " {\"step\": %d}", &saved) == 1;
  if (f)
    std::fclose(f);
  if (!ok) {
    error = "no finished checkpoint in " + dir;
    return false;
  }
  state.step = saved;
  return true;
}

} // namespace galvatron::rt
