//===- galvatron-profile.cpp - Galvatron's hardware profiler --------------===//
//
//   mpirun -np N galvatron-profile hardware [--backend cpu|cuda]
//       [--max-mb M] [--quick] [--threads T] [--kernel-ms T] [--cores C]
//       -o hw.json [--galvatron-dir DIR]
//   galvatron-profile model MODEL.mlir --hardware SPEC -o profile.json ...
//       (Model.cpp: the layers' times and memory; no MPI)
//   galvatron-profile show SPEC      (a hw.json, Galvatron's dir, preset:NAME)
//   galvatron-profile presets
//
// Measures the machine(s) the ranks run on (GEMM and memory rates per rank,
// collective bandwidth and latency by group size and layout, the overlap
// coefficient) and writes a hw.json (docs/COSTMODEL.md, "Hardware spec")
// with the raw measurements and, with --galvatron-dir, Galvatron's own
// hardware files. Progress goes to stderr, a summary to stdout (rank 0).
//
//===----------------------------------------------------------------------===//

#include "Measure.h"
#include "Model.h"
#include "galvatron/CostModel/GalvatronCostModel.h"
#include "galvatron/CostModel/Hardware.h"
#include "galvatron/runtime/BlasTarget.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/Tensor.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <unistd.h>

using namespace galvatron;
using namespace galvatron::profile;

namespace {

const char *kUsage =
    "usage: mpirun -np N galvatron-profile hardware [--backend cpu|cuda]\n"
    "           [--max-mb M] [--quick] [--threads T] [--kernel-ms T]\n"
    "           [--cores C] -o hw.json [--galvatron-dir DIR]\n"
    "  --backend     cpu (OpenBLAS, host memory; default) or cuda (cuBLAS)\n"
    "  --max-mb      largest message in MB (default 1024; capped to fit the\n"
    "                node's available memory)\n"
    "  --quick       a short run: small GEMMs, messages of 1-4 MB (tests)\n"
    "  --threads     BLAS/stream threads per rank (default cores / ranks)\n"
    "  --kernel-ms   ms per timed repetition of each kernel class and size\n"
    "                (default 40, 9 repetitions; --quick 10, 5 repetitions)\n"
    "  --cores       the cores a node's ranks share (cpu; default the node's\n"
    "                processors); ranks beyond them also get what a\n"
    "                collective after a burst costs them\n"
    "  -o            the hw.json to write\n"
    "  --galvatron-dir  also write Galvatron's hardware files into DIR\n"
    "       galvatron-profile show SPEC   reads a hardware spec (a hw.json,\n"
    "           a directory of Galvatron's files or preset:NAME) and prints "
    "it\n"
    "       galvatron-profile presets     lists the shipped presets\n"
    "       galvatron-profile model MODEL.mlir --hardware SPEC -o "
    "profile.json ...\n"
    "           profiles a model's layers (galvatron-profile model --help)\n";

bool parseInt(const std::string &text, int &out) {
  char *end = nullptr;
  long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end || value < 1 || value > (1 << 20))
    return false;
  out = int(value);
  return true;
}

/// Reads the command line; false with `error` (empty for --help).
bool parseArgs(int argc, char **argv, Options &options, std::string &error) {
  if (argc < 2 || std::string(argv[1]) != "hardware") {
    error = argc < 2 ? "expected the subcommand 'hardware' or 'model'"
                     : "unknown subcommand '" + std::string(argv[1]) +
                           "' (expected 'hardware')";
    return false;
  }
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc)
        return error = arg + ": missing its value", false;
      out = argv[++i];
      return true;
    };
    std::string text;
    if (arg == "--help" || arg == "-h")
      return error.clear(), false;
    if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--backend") {
      if (!value(options.backend))
        return false;
      if (options.backend != "cpu" && options.backend != "cuda")
        return error = "--backend: expected cpu or cuda, got '" +
                       options.backend + "'",
               false;
    } else if (arg == "--max-mb" || arg == "--threads" ||
               arg == "--kernel-ms" || arg == "--cores") {
      int number = 0;
      if (!value(text))
        return false;
      if (!parseInt(text, number))
        return error =
                   arg + ": expected a positive integer, got '" + text + "'",
               false;
      (arg == "--max-mb"      ? options.maxMb
       : arg == "--threads"   ? options.threads
       : arg == "--kernel-ms" ? options.kernelMs
                              : options.cores) = number;
      options.maxMbGiven |= arg == "--max-mb";
    } else if (arg == "-o") {
      if (!value(options.output))
        return false;
    } else if (arg == "--galvatron-dir") {
      if (!value(options.galvatronDir))
        return false;
    } else {
      return error = "unknown option '" + arg + "'", false;
    }
  }
  if (options.output.empty())
    return error = "-o hw.json is required", false;
  return true;
}

Layout discoverLayout() {
  Layout layout;
  MPI_Comm_rank(MPI_COMM_WORLD, &layout.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &layout.size);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, layout.rank,
                      MPI_INFO_NULL, &node);
  int local = 1;
  MPI_Comm_rank(node, &layout.localRank);
  MPI_Comm_size(node, &local);
  MPI_Comm_free(&node);
  int leader = layout.localRank == 0, fewest = local, most = local;
  MPI_Allreduce(&leader, &layout.nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&local, &fewest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&local, &most, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  layout.ranksPerNode = fewest == most ? local : 0;
  while (layout.commWorld * 2 <= layout.size)
    layout.commWorld *= 2;
  return layout;
}

double memTotalGiB() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kb = 0;
  meminfo >> key >> kb; // "MemTotal: <kB> kB" is the first line.
  return key == "MemTotal:" ? kb / (1024.0 * 1024.0) : 0;
}

/// Galvatron's tables from the samples: bus bandwidth at the largest
/// message, p2p MB / ms, sp_time from consecutive groups; fits per series.
void fillComm(const std::vector<CommSample> &samples,
              costmodel::HardwareSpec &spec, Json &measurements) {
  std::map<std::tuple<std::string, int, bool>, std::vector<const CommSample *>>
      series;
  Json table = Json::array(), fits = Json::array();
  for (const CommSample &s : samples) {
    series[{s.op, s.group, s.consecutive}].push_back(&s);
    table.push_back({{"op", s.op},
                     {"group", s.group},
                     {"consecutive", s.consecutive},
                     {"mb", s.mb},
                     {"ms", s.ms}});
    if (s.consecutive && (s.op == "allreduce" || s.op == "all2all"))
      spec.comm.spTime[s.op][s.group][s.mb] = std::max(s.ms, 1e-6);
  }
  for (auto &[key, points] : series) {
    auto &[op, group, consecutive] = key;
    const CommSample &last = *points.back();
    double share = (group - 1.0) / group;
    double busbw = (op == "allreduce" ? 2 * share
                    : op == "p2p"     ? 1
                                      : share) *
                   last.mb / std::max(last.ms, 1e-9);
    if (op == "allreduce")
      spec.comm.allreduce[{group, consecutive ? 1 : 0}] = busbw;
    if (op == "p2p")
      spec.comm.p2p[group] = busbw;
    std::vector<double> x, y;
    for (const CommSample *p : points)
      x.push_back(p->mb), y.push_back(p->ms);
    double m = 0, c = 0;
    costmodel::fitLine(x, y, m, c);
    fits.push_back({{"op", op},
                    {"group", group},
                    {"consecutive", consecutive},
                    {"latency_ms", std::max(0.0, c)},
                    {"bandwidth_mb_per_ms", m > 0 ? 1 / m : 0.0},
                    {"bus_bandwidth_mb_per_ms_at_largest", busbw}});
  }
  measurements["collectives"] = table;
  measurements["fits"] = fits;
}

std::string hostName() {
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  return name;
}

std::string commandLine(int argc, char **argv, int ranks) {
  std::string text = "mpirun -np " + std::to_string(ranks);
  for (int i = 0; i < argc; ++i)
    text += std::string(" ") + (i == 0 ? "galvatron-profile" : argv[i]);
  return text;
}

/// The device part of the spec; false (on every rank) when it cannot be
/// measured.
bool measureDevice(const Options &options, const Layout &layout,
                   costmodel::HardwareSpec &spec, Json &measurements,
                   std::string &error) {
  costmodel::DeviceRates &device = spec.device;
  if (options.backend == "cpu") {
    device.gemmTflopsFp32 =
        measureGemm(options, layout, measurements["gemm"]) / 1e3;
    device.memoryBandwidthGBs =
        measureStream(options, layout, measurements["memory"]);
    device.memoryGB = memTotalGiB() / std::max(1, layout.size / layout.nodes);
    // The node's processors, not this rank's binding: mpirun may pin each
    // rank to one core, yet the ranks share all of them.
    device.coresPerNode =
        options.cores ? options.cores
                      : static_cast<int>(
                            std::max(1u, std::thread::hardware_concurrency()));
    return true;
  }
  int ok = measureCudaDevice(options, layout, device.gemmTflopsFp32,
                             device.gemmTflopsBf16, device.memoryBandwidthGBs,
                             device.memoryGB, measurements["cuda"], error);
  int all = ok;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all && error.empty())
    error = "another rank has no usable CUDA device";
  return all;
}

int fail(const Layout &layout, const std::string &message, int code) {
  if (layout.rank == 0)
    std::fprintf(stderr, "\ngalvatron-profile: error: %s\n", message.c_str());
  MPI_Finalize();
  return code;
}

void printComm(const costmodel::HardwareSpec &spec);

void printSummary(const costmodel::HardwareSpec &spec, const Json &m) {
  std::printf("GEMM (sgemm, sustained, slowest rank): %.2f GFLOP/s per rank\n",
              spec.device.gemmTflopsFp32 * 1e3);
  if (spec.device.gemmTflopsBf16 > 0)
    std::printf("GEMM (bf16): %.1f TFLOP/s per rank\n",
                spec.device.gemmTflopsBf16);
  std::printf("memory bandwidth (triad, slowest rank): %.2f GB/s per rank\n",
              spec.device.memoryBandwidthGBs);
  printComm(spec);
  if (m.contains("overlap"))
    std::printf("overlap coefficient: %.4f\n", spec.comm.overlapCoefficient);
  for (auto &[burst, extra] : spec.syncExcessMs)
    std::printf("on shared cores, a collective after %.2f ms of computation: "
                "%.3f ms more\n",
                burst, extra);
  for (auto &[bytes, row] : spec.contendedExcessMs)
    for (auto &[callMs, extra] : row)
      std::printf("on shared cores, a %.0f-byte collective while others run "
                  "%.2f ms calls: %.3f ms more\n",
                  bytes, callMs, extra);
}

void printComm(const costmodel::HardwareSpec &spec) {
  for (auto &[key, bw] : spec.comm.allreduce)
    std::printf("allreduce group %d %s: %.3f MB/ms bus bandwidth\n", key.first,
                key.second ? "consecutive" : "strided", bw);
  for (auto &[pp, bw] : spec.comm.p2p)
    std::printf("p2p pp %d: %.3f MB/ms\n", pp, bw);
}

/// `show SPEC` and `presets`: no MPI.
int showOrList(int argc, char **argv) {
  if (std::string(argv[1]) == "presets") {
    std::printf("presets in %s:\n", costmodel::presetDirectory().c_str());
    for (const std::string &name : costmodel::listPresets())
      std::printf("  preset:%s\n", name.c_str());
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "galvatron-profile: error: show takes one spec\n%s",
                 kUsage);
    return 2;
  }
  costmodel::HardwareSpec spec;
  std::string error;
  if (!costmodel::loadHardware(argv[2], spec, error)) {
    std::fprintf(stderr, "galvatron-profile: error: %s\n", error.c_str());
    return 1;
  }
  const costmodel::DeviceRates &d = spec.device;
  std::printf("%s: backend %s, %d node(s) x %d device(s)\n", spec.name.c_str(),
              spec.backend.c_str(), spec.comm.numNodes, spec.comm.gpusPerNode);
  std::printf("source: %s\n", spec.source.c_str());
  std::printf("device: GEMM fp32 %g TFLOP/s, bf16 %g TFLOP/s, memory %g GB/s, "
              "%g GB\n",
              d.gemmTflopsFp32, d.gemmTflopsBf16, d.memoryBandwidthGBs,
              d.memoryGB);
  printComm(spec);
  std::printf("overlap coefficient: %g\nsp_time: %s\n",
              spec.comm.overlapCoefficient,
              spec.comm.spTime.empty() ? "absent" : "present");
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  galvatron::rt::restartWithSpinningKernelThreads(argv);
  galvatron::rt::restartWithFastBlasIfNeeded(argv);
  galvatron::rt::reuseFreedMemory();
  if (argc >= 2 &&
      (std::string(argv[1]) == "show" || std::string(argv[1]) == "presets"))
    return showOrList(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "model")
    return runModelCommand(argc, argv);
  int provided = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  Layout layout = discoverLayout();
  Options options;
  std::string error;
  if (!parseArgs(argc, argv, options, error)) {
    if (error.empty() && layout.rank == 0)
      std::fputs(kUsage, stdout);
    return error.empty() ? (MPI_Finalize(), 0)
                         : fail(layout, error + "\n" + kUsage, 2);
  }
  costmodel::HardwareSpec spec;
  Json measurements = Json::object();
  measurements["command"] = commandLine(argc, argv, layout.size);
  measurements["host"] = hostName();
  measurements["ranks"] = layout.size;
  measurements["nodes"] = layout.nodes;
  measurements["quick"] = options.quick;
  if (!measureDevice(options, layout, spec, measurements, error))
    return fail(layout, error, 1);
  if (options.backend == "cpu") {
    spec.instructionMs =
        measureInstruction(layout, measurements["instruction"]);
    spec.kernelRates = measureKernelRates(
        options, layout, measurements["kernel_rates"], spec.gemmNsPerByte);
  }
  spec.comm.numNodes = layout.ranksPerNode ? layout.nodes : 1;
  spec.comm.gpusPerNode =
      layout.ranksPerNode ? layout.ranksPerNode : layout.size;
  spec.comm.overlapCoefficient = 1.0;
  if (layout.size == 1) {
    measurements["communication"] = "not measured: one rank";
    progress(layout,
             "one rank: no communication entries (run under mpirun "
             "-np N to measure them); overlap coefficient 1 (not "
             "measured)",
             true);
  } else {
    std::string why;
    int cap = messageCapMb(options, layout, why);
    std::vector<int> sizes;
    for (int mb = 1; mb <= (options.quick ? std::min(cap, 4) : cap); mb *= 2)
      sizes.push_back(mb);
    measurements["max_message_mb"] = sizes.back();
    measurements["message_cap"] = why;
    if (why.compare(0, 6, "capped") == 0)
      progress(layout, "messages " + why, true);
    if (layout.commWorld != layout.size)
      measurements["communication_ranks"] = layout.commWorld;
    fillComm(measureCollectives(options, layout, sizes), spec, measurements);
    spec.collectiveLatencyMs =
        measureLatency(options, layout, measurements["latency_ms"]);
    spec.comm.overlapCoefficient = measureOverlap(
        options, layout, std::min(sizes.back(), 64), measurements["overlap"]);
    if (options.backend == "cpu") {
      spec.syncExcessMs =
          measureSyncExcess(options, layout, spec.device.coresPerNode,
                            measurements["sync_excess"]);
      spec.contendedExcessMs =
          measureContendedExcess(options, layout, spec.device.coresPerNode,
                                 measurements["contended_excess"]);
    }
    progress(layout, "done", true);
  }
  int written = 1;
  if (layout.rank == 0) {
    spec.backend = options.backend;
    spec.name = hostName() + "-" + options.backend + "-np" +
                std::to_string(layout.size);
    std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof(date), "%Y-%m-%d", std::gmtime(&now));
    spec.source = "measured by galvatron-profile on " + hostName() + " (" +
                  date + ", " + std::to_string(layout.size) +
                  " ranks): " + measurements["command"].get<std::string>();
    spec.measurements = measurements.dump();
    written = costmodel::writeHardwareJson(options.output, spec, error) &&
              (options.galvatronDir.empty() ||
               costmodel::writeGalvatronHardwareDir(options.galvatronDir, spec,
                                                    error));
    if (written) {
      printSummary(spec, measurements);
      std::printf("wrote %s\n", options.output.c_str());
    }
  }
  MPI_Bcast(&written, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!written)
    return fail(layout, error, 1);
  MPI_Finalize();
  return 0;
}
