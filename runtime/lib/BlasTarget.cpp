//===- BlasTarget.cpp - pick OpenBLAS's kernels by CPU features -----------===//

#include "galvatron/runtime/BlasTarget.h"

#include <cblas.h>

#include <cctype>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace galvatron::rt {

const char *blasTargetForThisCpu() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16"))
    return "Cooperlake";
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return "Haswell";
#endif
  return nullptr;
}

void restartWithFastBlasIfNeeded(char **argv) {
  if (std::getenv("OPENBLAS_CORETYPE"))
    return; // the user's choice, or this is the restarted process
  std::string core = openblas_get_corename();
  for (char &c : core)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Only the generic fallbacks are corrected; a target OpenBLAS chose on
  // purpose stays.
  if (core != "prescott" && core != "core2" && core != "unknown")
    return;
  const char *target = blasTargetForThisCpu();
  if (!target)
    return;
  setenv("OPENBLAS_CORETYPE", target, /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): go on with the generic kernels.
}

} // namespace galvatron::rt
