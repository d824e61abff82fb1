//===- KernelRates.cpp - the runtime's kernels by class and size ----------===//
//
// A kernel's time per byte is not one number: a small call is dominated by
// its start-up (an OpenMP region, a row loop that does not vectorise), a
// large one by memory. So each class is timed through the runtime's own
// kernel, writing into preallocated buffers as the executor does, at work
// sizes from a few KB to 16 MB (FLOPs from 10^5 to 10^9 for the
// contractions), and the estimate interpolates between them.
//
//===----------------------------------------------------------------------===//

#include "Measure.h"

#include "galvatron/CostModel/Hardware.h"
#include "galvatron/runtime/AttentionKernels.h"
#include "galvatron/runtime/FusedKernels.h"
#include "galvatron/runtime/Kernels.h"
#include "galvatron/runtime/OptimizerKernels.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>

namespace galvatron {
namespace profile {

namespace {

/// Buffers that live as long as one probe's calls.
struct Buffers {
  std::vector<std::unique_ptr<rt::Tensor>> owned;
  size_t bytes = 0;
  rt::Tensor &make(rt::DType dtype, rt::Shape shape, float fill = 0.01f) {
    owned.push_back(std::make_unique<rt::Tensor>(dtype, std::move(shape)));
    rt::Tensor &t = *owned.back();
    bytes += t.bytes.size();
    if (dtype == rt::DType::F32) {
      float *p = reinterpret_cast<float *>(t.bytes.data());
      for (size_t i = 0; i < t.bytes.size() / 4; ++i)
        p[i] = fill * float(int(i % 97) - 48);
    } else {
      std::fill(t.bytes.begin(), t.bytes.end(), 0);
    }
    return t;
  }
};

/// One timed call: the kernel and the work it does (bytes read and written
/// as PlanMeasure counts them, or FLOPs).
struct Probe {
  std::function<void()> run;
  double work = 0;
  /// Attention's (batch, head) pairs: its rate is keyed per pair.
  double pairs = 1;
};

double floatBytes(const rt::Tensor &t) { return double(t.bytes.size()); }

/// A memory-bound class at `n` floats ([n / cols, cols]).
Probe boundProbe(const std::string &kind, int64_t n, Buffers &b) {
  using rt::DType;
  int64_t cols = std::min<int64_t>(
              n, kind.rfind("cross_entropy", 0) == 0 ? 1024 : 256),
          rows = n / cols;
  rt::Tensor &x = b.make(DType::F32, {rows, cols});
  rt::Tensor &y = b.make(DType::F32, {rows, cols});
  rt::Tensor &out = b.make(DType::F32, {rows, cols});
  double bytes = floatBytes(x);
  Probe p;
  if (kind == "elementwise") {
    p.run = [&] {
      rt::TensorView o(out);
      rt::binary(rt::Binary::Add, x, y, o);
    };
    p.work = 3 * bytes;
  } else if (kind == "transcendental") {
    p.run = [&] {
      rt::TensorView o(out);
      rt::unary(rt::Unary::GeluTanh, x, o);
    };
    p.work = 2 * bytes;
  } else if (kind == "activation_grad") {
    p.run = [&] {
      rt::TensorView o(out);
      rt::geluGrad(x, y, true, o);
    };
    p.work = 3 * bytes;
  } else if (kind == "movement") {
    // Contiguous rows, as slices, concatenations and lookups move them.
    rt::Tensor &half =
        b.make(DType::F32, {rows, std::max<int64_t>(1, cols / 2)});
    p.run = [&] {
      rt::TensorView o(half);
      rt::slice(x, {0, 0}, {1, 1}, o);
    };
    p.work = 2 * floatBytes(half);
  } else if (kind == "transpose") {
    rt::Tensor &t = b.make(DType::F32, {cols, rows});
    p.run = [&] {
      rt::TensorView o(t);
      rt::transpose(x, {1, 0}, o);
    };
    p.work = 2 * bytes;
  } else if (kind == "reduction") {
    rt::Tensor &r = b.make(DType::F32, {rows, 1});
    p.run = [&] {
      rt::TensorView o(r);
      rt::reduce(rt::Reduction::Sum, x, {1}, o);
    };
    p.work = bytes + floatBytes(r);
  } else if (kind == "normalisation" || kind == "norm_grad") {
    rt::Tensor &scale = b.make(DType::F32, {cols}, 0.02f);
    rt::Tensor &bias = b.make(DType::F32, {cols});
    rt::Tensor &ds = b.make(DType::F32, {cols});
    rt::Tensor &db = b.make(DType::F32, {cols});
    if (kind == "normalisation") {
      p.run = [&] {
        rt::TensorView o(out), bv(bias);
        rt::layerNorm(x, scale, &bv, 1e-5, o);
      };
      p.work = 2 * bytes + 2 * floatBytes(scale);
    } else {
      p.run = [&] {
        rt::TensorView o(out), dsv(ds), dbv(db);
        rt::layerNormGrad(x, scale, y, 1e-5, o, dsv, dbv);
      };
      // x, dy and dx; scale, dscale and dbias, as PlanMeasure counts them.
      p.work = 3 * bytes + 3 * floatBytes(scale);
    }
  } else if (kind == "cross_entropy" || kind == "cross_entropy_grad") {
    rt::Tensor &labels = b.make(DType::I64, {rows});
    rt::Tensor &loss = b.make(DType::F32, {});
    rt::Tensor &dloss = b.make(DType::F32, {}, 1.0f);
    if (kind == "cross_entropy") {
      p.run = [&] {
        rt::TensorView l(loss);
        rt::crossEntropy(x, labels, true, -100, l);
      };
      p.work = bytes + floatBytes(labels) + 4;
    } else {
      p.run = [&] {
        rt::TensorView o(out);
        rt::crossEntropyGrad(x, labels, dloss, true, -100, o);
      };
      p.work = 2 * bytes + floatBytes(labels) + 4;
    }
  } else if (kind == "optimizer") {
    // In place, as the executor updates the trainer's state.
    rt::Tensor &m = b.make(DType::F32, {rows, cols});
    rt::Tensor &v = b.make(DType::F32, {rows, cols}, 0.0001f);
    for (int64_t i = 0; i < n; ++i)
      v.f32()[i] = std::abs(v.f32()[i]);
    p.run = [&, n] {
      rt::adamwUpdate({0.9, 0.999, 1e-8, 0.01}, n, x.f32(), y.f32(), m.f32(),
                      v.f32(), 1e-3f, 3.0f, x.f32(), m.f32(), v.f32());
    };
    p.work = 7 * bytes + 2 * 4;
  }
  return p;
}

/// A contraction of about `scale`^3 x 8 FLOPs.
Probe flopProbe(const std::string &kind, int64_t s, Buffers &b) {
  using rt::DType;
  Probe p;
  if (kind == "gemm" || kind == "gemm_skinny") {
    // Shaped like a Transformer's linear: many token rows, a hidden width;
    // or, skinny, as its head: the FLOPs of the first at 2.25x the bytes.
    bool skinny = kind == "gemm_skinny";
    int64_t m = skinny ? s : 4 * s, n = skinny ? 16 * s : s,
            k = skinny ? s / 4 : s;
    rt::Tensor &a = b.make(DType::F32, {m, k});
    rt::Tensor &w = b.make(DType::F32, {k, n});
    rt::Tensor &c = b.make(DType::F32, {m, n});
    p.run = [&a, &w, &c, m, n, k] {
      rt::gemm(false, false, m, n, k, 1.0f, a.f32(), k, w.f32(), n, 0.0f,
               c.f32(), n);
    };
    p.work = 2.0 * m * n * k;
    return p;
  }
  // Causal attention over 4 heads of 32 at sequence s; FLOPs as
  // PlanMeasure counts them (the causal half skipped). The rate is keyed by
  // the FLOPs of one (batch, head) pair: it follows the sequence, and
  // PlanMeasure reads it at a step's sequence whatever its batch and heads.
  rt::AttentionDims dims{1, 4, 4, s, s, 32, 32};
  rt::Shape shape = {1, 4, s, 32};
  rt::Tensor &q = b.make(DType::F32, shape), &k = b.make(DType::F32, shape),
             &v = b.make(DType::F32, shape), &o = b.make(DType::F32, shape);
  double qElements = 4.0 * s * 32;
  p.pairs = 4;
  if (kind == "attention") {
    p.run = [&, dims] {
      rt::attentionForward(dims, q.f32(), k.f32(), v.f32(), {}, true, 0.17f,
                           o.f32());
    };
    p.work = 0.5 * 4 * qElements * s;
  } else {
    rt::Tensor &dq = b.make(DType::F32, shape), &dk = b.make(DType::F32, shape),
               &dv = b.make(DType::F32, shape);
    p.run = [&, dims] {
      rt::attentionBackward(dims, q.f32(), k.f32(), v.f32(), o.f32(), {}, true,
                            0.17f, dq.f32(), dk.f32(), dv.f32());
    };
    p.work = 0.5 * 10 * qElements * s;
  }
  return p;
}

/// The "gemm" probe's scales, and one on each side of where gemm() starts
/// to split its rows across the kernel threads: its rate steps there
/// (twice as fast on two threads), and interpolating across the step from
/// the scales either side of it priced a 512 x 512 x 128 GEMM on two
/// threads 1.5x what it took.
void addThreadingStep(std::vector<int64_t> &scales) {
  // The probe multiplies (4 s x s) by (s x s): 4 s^3 multiply-adds.
  auto below = int64_t(std::cbrt(double(rt::kThreadedGemmMultiplyAdds) / 4));
  while (4 * below * below * below > rt::kThreadedGemmMultiplyAdds)
    --below;
  int64_t above = below + below / 8;
  scales.push_back(below);
  scales.push_back(above);
  std::sort(scales.begin(), scales.end());
  scales.erase(std::unique(scales.begin(), scales.end()), scales.end());
}

/// One probe's calls, taking turns on enough copies of their buffers to
/// fill 64 MB: a training step's tensors do not stay in cache from one use
/// to the next (its arena alone is tens of MB).
struct ProbeSet {
  std::vector<Buffers> buffers;
  std::vector<Probe> copies;
  /// One copy's buffers (bytes).
  double bytes = 0;
  size_t next = 0;
  void call() { copies[next++ % copies.size()].run(); }
  const Probe &first() const { return copies.front(); }
};

std::unique_ptr<ProbeSet> makeProbes(const std::string &kind, int64_t scale) {
  bool flops = costmodel::kernelCountsFlops(kind) || kind == "gemm_skinny";
  auto set = std::make_unique<ProbeSet>();
  auto probe = [&](Buffers &b) {
    return flops ? flopProbe(kind, scale, b) : boundProbe(kind, scale, b);
  };
  set->buffers.resize(1);
  set->copies.push_back(probe(set->buffers[0]));
  set->bytes = double(set->buffers[0].bytes);
  size_t count = std::clamp<size_t>(
      (size_t(64) << 20) / std::max<size_t>(set->buffers[0].bytes, 1), 1, 64);
  // Tensors live behind unique_ptrs: growing the vector moves none of them.
  set->buffers.resize(count);
  for (size_t c = 1; c < count; ++c)
    set->copies.push_back(probe(set->buffers[c]));
  return set;
}

/// Calls that take about `targetMs`, the fewest any rank needs. They
/// double until they take the target: one slow call (the scheduler's) does
/// not set the count.
int callsFor(ProbeSet &set, double targetMs) {
  set.call();
  int calls = 1;
  for (;; calls *= 2) {
    double start = MPI_Wtime();
    for (int i = 0; i < calls; ++i)
      set.call();
    if ((MPI_Wtime() - start) * 1e3 >= targetMs || calls >= 1 << 14)
      break;
  }
  MPI_Allreduce(MPI_IN_PLACE, &calls, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return calls;
}

/// ms per call over `calls` calls, every rank starting at once.
double timeCalls(ProbeSet &set, int calls) {
  MPI_Barrier(MPI_COMM_WORLD);
  double start = MPI_Wtime();
  for (int i = 0; i < calls; ++i)
    set.call();
  return (MPI_Wtime() - start) * 1e3 / calls;
}

/// A GEMM's time per byte beyond the "gemm" probe's: skinny GEMMs of the
/// FLOPs of the square-ish probes at the two largest scales, their extra
/// time over their extra bytes (costmodel::gemmProbeBytes). The two shapes
/// take turns, twice as many repetitions as a rate's: the result is a
/// difference of two times, so the machine's drift from one second to the
/// next would enter it whole if they were timed one after the other (it
/// read 0.07 to 0.25 ns a byte on four profiles a minute apart, and the
/// 50257-word head's GEMMs carry 97 MB beyond their probe's).
double measureGemmBytes(double targetMs, int repetitions, Json &out) {
  double perByte = 0;
  for (int64_t scale : {256, 512}) {
    std::unique_ptr<ProbeSet> square = makeProbes("gemm", scale),
                              skinny = makeProbes("gemm_skinny", scale);
    int squareCalls = callsFor(*square, targetMs),
        skinnyCalls = callsFor(*skinny, targetMs);
    std::vector<double> squareRuns, skinnyRuns;
    for (int r = 0; r < 2 * repetitions; ++r) {
      squareRuns.push_back(timeCalls(*square, squareCalls));
      skinnyRuns.push_back(timeCalls(*skinny, skinnyCalls));
    }
    double squareMs = slowestRankMedian(std::move(squareRuns));
    double skinnyMs = slowestRankMedian(std::move(skinnyRuns));
    perByte +=
        (skinnyMs - squareMs) * 1e6 / (skinny->bytes - square->bytes) / 2;
    out["gemm_skinny"].push_back({{"flops", square->first().work},
                                  {"square_ms", squareMs},
                                  {"square_bytes", square->bytes},
                                  {"skinny_ms", skinnyMs},
                                  {"skinny_bytes", skinny->bytes}});
  }
  return std::max(0.0, perByte);
}

} // namespace

KernelRates measureKernelRates(const Options &options, const Layout &layout,
                               Json &out, double &gemmNsPerByte) {
  // Repetitions of at least 40 ms, 9 of them: this machine's speed drifts
  // over tenths of a second.
  double targetMs = options.kernelMs ? options.kernelMs
                    : options.quick  ? 10
                                     : 40;
  int repetitions = options.quick && !options.kernelMs ? 5 : 9;
  // The repetitions are spread over passes through every class and size:
  // a second in which the machine stalls (one profile read a 256 KB add
  // 270x slower, on all 9 of its back-to-back repetitions) then costs a
  // point a third of its repetitions, which its median outvotes.
  constexpr int kPasses = 3;
  int perPass = (repetitions + kPasses - 1) / kPasses;
  struct Point {
    std::string kind;
    int64_t scale;
    int calls = 0;
    double key = 0, work = 0;
    std::vector<double> runs;
  };
  std::vector<Point> points;
  for (const std::string &kind : costmodel::kernelClasses()) {
    // Floats 1K..4M (4 KB..16 MB); contraction scales 16..512.
    std::vector<int64_t> scales =
        costmodel::kernelCountsFlops(kind)
            ? std::vector<int64_t>{16, 32, 64, 128, 256, 512}
            : std::vector<int64_t>{1 << 10, 1 << 12, 1 << 14, 1 << 16,
                                   1 << 18, 1 << 20, 1 << 22};
    if (kind == "gemm")
      addThreadingStep(scales);
    for (int64_t scale : scales)
      points.push_back({kind, scale});
  }
  for (int pass = 0; pass < kPasses; ++pass)
    for (Point &point : points) {
      progress(layout, "kernel rates: " + point.kind + " (pass " +
                           std::to_string(pass + 1) + " of " +
                           std::to_string(kPasses) + ")");
      std::unique_ptr<ProbeSet> set = makeProbes(point.kind, point.scale);
      if (!point.calls) {
        point.calls = callsFor(*set, targetMs);
        point.work = set->first().work;
        point.key = point.work / set->first().pairs;
      }
      for (int r = 0; r < perPass; ++r)
        point.runs.push_back(timeCalls(*set, point.calls));
    }
  KernelRates rates;
  for (Point &point : points) {
    double nsPerUnit =
        slowestRankMedian(std::move(point.runs)) * 1e6 / point.work;
    rates[point.kind].push_back({point.key, nsPerUnit});
    out[point.kind].push_back({point.key, nsPerUnit});
  }
  progress(layout, "kernel rates: gemm bytes");
  gemmNsPerByte = measureGemmBytes(targetMs, repetitions, out);
  out["what"] =
      "ns per unit of work (bytes read and written; FLOPs for "
      "gemm and attention) by work per call (attention: per batch and "
      "head), the runtime's own kernels into preallocated buffers filling "
      "64 MB in turns, the slowest rank's median of repetitions spread "
      "over " +
      std::to_string(kPasses) + " passes through every class and size";
  return rates;
}

} // namespace profile
} // namespace galvatron
