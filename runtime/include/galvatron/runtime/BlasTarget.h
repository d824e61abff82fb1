//===- BlasTarget.h - pick OpenBLAS's kernels by CPU features ---*- C++ -*-===//
//
// OpenBLAS built with DYNAMIC_ARCH picks its kernels from the CPU model when
// the library loads. A model its table does not know (a newer server CPU, or
// a virtual CPU that reports a generic model) gets the Prescott (SSE3)
// kernels: on this project's VMs, whose vCPUs have AVX-512, that made sgemm
// 4-6x slower (28 against 128-171 GFLOP/s at 512x1024x256). The choice is
// made before main runs, from OPENBLAS_CORETYPE, so correcting it means
// starting the process again with the variable set.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_RUNTIME_BLASTARGET_H
#define GALVATRON_RUNTIME_BLASTARGET_H

namespace galvatron::rt {

/// The OpenBLAS target this CPU's features support ("Cooperlake",
/// "SkylakeX", "Haswell"), or null when none beyond the generic one.
const char *blasTargetForThisCpu();

/// When OPENBLAS_CORETYPE is unset and OpenBLAS fell back to its generic
/// kernels on a CPU that supports better ones, executes this program again
/// (same pid, arguments and environment, plus OPENBLAS_CORETYPE). Returns
/// when nothing needs changing or the exec failed. Call it first in main,
/// before MPI is initialised or threads are started.
void restartWithFastBlasIfNeeded(char **argv);

} // namespace galvatron::rt

#endif // GALVATRON_RUNTIME_BLASTARGET_H
