//===- Hardware.h - Hardware specs: device rates and comm profile -*- C++
//-*-===//
//
// A cluster as the planner sees it: per-device compute and memory rates plus
// Galvatron's communication profile (all-reduce and p2p bandwidth tables, the
// overlap coefficient, optionally sp_time's collective times). Stored as one
// hw.json file ("galvatron-hardware/1", docs/COSTMODEL.md "Hardware spec"),
// convertible to and from Galvatron's own file set, and shipped as presets
// under presets/hardware. Plain C++ (no MLIR).
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_COSTMODEL_HARDWARE_H
#define GALVATRON_COSTMODEL_HARDWARE_H

#include "galvatron/CostModel/Profiles.h"

#include <map>
#include <string>
#include <vector>

namespace galvatron {
namespace costmodel {

/// Per-device compute and memory rates.
struct DeviceRates {
  double gemmTflopsFp32 = 0;     ///< Sustained dense GEMM, TFLOP/s.
  double gemmTflopsBf16 = 0;     ///< 0 = no bf16 (CPU): use fp32.
  double memoryBandwidthGBs = 0; ///< Sustained device-memory bandwidth, GB/s.
  double memoryGB = 0;           ///< Device memory capacity.
  /// CPU backend: the cores a node's ranks share (more ranks than cores
  /// take turns on them). 0: every device computes on its own.
  int coresPerNode = 0;
};

/// A cluster: device rates plus Galvatron's communication profile.
struct HardwareSpec {
  std::string name, source, backend; ///< backend: "cpu" | "cuda".
  DeviceRates device;
  HardwareProfile comm; ///< numNodes, gpusPerNode, allreduce, p2p, overlap,
                        ///< spTime.
  /// Time (ms) of one collective on `group` devices of `bytes` bytes,
  /// op = "allreduce" | "allgather" | "reducescatter" | "all2all" | "p2p";
  /// from spTime's fits when present, else from the bandwidth tables.
  /// `bytes` is the whole buffer (the gathered one for all-gather, the input
  /// of reduce-scatter). 0 for a group of one or no bytes; NaN when the
  /// profile has no entry to price the op with (or the op is unknown).
  double collectiveMs(const std::string &op, int group, bool consecutive,
                      double bytes) const;
  /// Fixed costs the bandwidth tables miss ("latency" of hw.json, optional):
  /// the time the runtime spends on one instruction whatever its size, and
  /// the time of a small (4 KB) collective by group size. 0 / empty: none.
  double instructionMs = 0;
  std::map<int, double> collectiveLatencyMs;
  /// A small collective's start-up time on `group` ranks: the entry for the
  /// smallest measured group at least that large (the largest when none
  /// is), 0 when none was measured.
  double startupMs(int group) const;
  /// The runtime's kernels by class (kernelClasses()): nanoseconds per unit
  /// of work (a byte read or written; a FLOP for "gemm", "attention" and
  /// "attention_grad") measured at increasing work per call, as (work,
  /// ns per unit) pairs in increasing work; empty: not measured.
  std::map<std::string, std::vector<std::pair<double, double>>> kernelRates;
  /// A GEMM's time per byte of operands and result beyond those of the
  /// profiler's probe of equal FLOPs ("latency.gemm_ns_per_byte"; 0: none):
  /// a [512, 128] x [128, 8192] GEMM moves 2.3x the bytes of a [2048, 512]
  /// x [512, 512] one of equal FLOPs and takes 1.15x its time.
  double gemmNsPerByte = 0;
  /// Where a node's ranks outnumber its cores: what one collective costs
  /// beyond its own time after a burst of computation, as (burst ms on a
  /// whole core, extra ms) pairs in increasing burst ("latency.
  /// sync_excess_ms"; empty: none). Ranks that meet at a collective after
  /// computing in turns on shared cores lose time the rates measured with
  /// every rank busy at once do not show (galvatron-profile measures it
  /// with GEMM bursts between all-reduces).
  std::vector<std::pair<double, double>> syncExcessMs;
  /// The extra ms of a collective after a `burstMs` burst: linear from 0
  /// to the first pair and between pairs, the last pair's beyond it.
  double syncExcessAt(double burstMs) const;
  /// Where a node's ranks outnumber its cores: what a collective costs
  /// beyond its own time while ranks of its node outside its group compute,
  /// by the collective's bytes and then as (the computing ranks' kernel call,
  /// ms on a whole core; extra ms) pairs in increasing call ("latency.
  /// contended_excess_ms"; empty: none). Its members progress only while
  /// each holds a core, and a computing rank gives its core up only between
  /// calls: two ranks of four on two cores all-reducing 128 KB took 1.3-1.8,
  /// 7.3-7.6 and 16.5-16.8 ms an all-reduce while the other two ran GEMMs of
  /// about 0.4, 3 and 25 ms, 0.1 ms while those slept.
  std::map<double, std::vector<std::pair<double, double>>> contendedExcessMs;
  /// The extra ms of a collective of `bytes` while others run calls of
  /// `callMs`: the row of the largest measured size not above `bytes` (the
  /// smallest below it; the runtime's small and large collectives wait
  /// differently), linear from 0 to its first pair and between pairs, the
  /// last pair's beyond it.
  double contendedExcessAt(double bytes, double callMs) const;
  /// ns per unit of work of one call of `work` units of class `kind`:
  /// interpolated between the measured sizes on log scales, the end rates
  /// beyond them; a class not measured falls back to its coarser class
  /// (kernelFallback) and then to -1.
  double kernelNsPerUnit(const std::string &kind, double work) const;
  /// The raw profiler measurements ("measurements" of hw.json) as JSON text,
  /// kept verbatim; empty when absent.
  std::string measurements;
};

/// The bytes (operands and result, f32) of the profiler's "gemm" probe of
/// `flops` FLOPs: [4 s, s] x [s, s], 8 s^3 FLOPs and 36 s^2 bytes.
double gemmProbeBytes(double flops);

/// The kernel classes of `kernelRates`, and for each the class whose rate
/// stands in for it when a spec lacks it ("" for none).
const std::vector<std::string> &kernelClasses();
std::string kernelFallback(const std::string &kind);
/// True for the classes whose work is counted in FLOPs (else bytes).
bool kernelCountsFlops(const std::string &kind);

bool readHardwareJson(const std::string &path, HardwareSpec &out,
                      std::string &error);
bool writeHardwareJson(const std::string &path, const HardwareSpec &in,
                       std::string &error);
/// Writes Galvatron's files (allreduce_bandwidth_*, p2p_bandwidth_*,
/// overlap_coefficient.json, sp_time_*) into dir.
bool writeGalvatronHardwareDir(const std::string &dir, const HardwareSpec &in,
                               std::string &error);
/// spec: a hw.json path | a directory of Galvatron's files (nodes and gpus
/// per node from the file names; device rates 0) | "preset:NAME". A path to
/// one allreduce_bandwidth_<N>nodes_<G>gpus_per_node.json file selects that
/// cluster shape in a directory holding several.
bool loadHardware(const std::string &spec, HardwareSpec &out,
                  std::string &error);
std::vector<std::string> listPresets(); ///< Names of the shipped presets.
/// Where presets are read from: $GALVATRON_PRESET_DIR when set, else the
/// source tree's presets/hardware.
std::string presetDirectory();

} // namespace costmodel
} // namespace galvatron

#endif // GALVATRON_COSTMODEL_HARDWARE_H
