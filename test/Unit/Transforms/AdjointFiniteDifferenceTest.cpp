//===- AdjointFiniteDifferenceTest.cpp - adjoints against differences -----===//
//
// Each op's AdjointOpInterface rule, checked numerically: galv-autodiff
// builds @loss_grad for loss = sum(c * op(x)) with x a trainable parameter
// and c a fixed random input; every element of the gradient must match the
// central difference (loss(x + h) - loss(x - h)) / 2h of @loss evaluated on
// the CPU kernels. The reference is arithmetic, not another implementation.
//
//===----------------------------------------------------------------------===//

#include "Galv/Adjoint.h"
#include "Galv/Galv.h"
#include "galvatron/Eval/Evaluator.h"
#include "galvatron/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;
using namespace mlir::galv;
namespace rt = galvatron::rt;

namespace {

struct Case {
  const char *name;
  /// The op applied to %x (tensor<3x5xf32>), its result named %y.
  const char *body;
  /// The fused gradient op galv-autodiff emits for it by default (checked
  /// both ways: present with fused-backward, absent without).
  const char *fusedOp = nullptr;
};

// Keys and values computed from %x (k = x / 2, v = x), so that the
// attention cases check dq, dk and dv at once.
#define GALV_KV_FROM_X                                                         \
  "%half = galv.constant dense<0.5> : tensor<f32>\n"                           \
  "    %xk = galv.mul %x, %half : tensor<3x5xf32>, tensor<f32> -> "            \
  "tensor<3x5xf32>\n"                                                          \
  "    %k = galv.reshape %xk : tensor<3x5xf32> -> tensor<1x1x3x5xf32>\n"       \
  "    %v = galv.reshape %x : tensor<3x5xf32> -> tensor<1x1x3x5xf32>\n"

// q [1, 1, 3, 5] against the three keys, causal.
#define GALV_CAUSAL_ATTENTION                                                  \
  GALV_KV_FROM_X                                                               \
  "    %q = galv.reshape %x : tensor<3x5xf32> -> tensor<1x1x3x5xf32>\n"        \
  "    %a = galv.attention %q, %k, %v causal scale = 0.7 : "                   \
  "tensor<1x1x3x5xf32>, tensor<1x1x3x5xf32>, tensor<1x1x3x5xf32> -> "          \
  "tensor<1x1x3x5xf32>\n"                                                      \
  "    %y = galv.reshape %a : tensor<1x1x3x5xf32> -> tensor<3x5xf32>"

// Three query heads of one query each share the key/value head (their dk
// and dv add up); a bool mask hides key 1 from every query.
#define GALV_GROUPED_MASKED_ATTENTION                                          \
  GALV_KV_FROM_X                                                               \
  "    %q = galv.reshape %x : tensor<3x5xf32> -> tensor<1x3x1x5xf32>\n"        \
  "    %mask = galv.constant dense<[[true, false, true]]> : tensor<1x3xi1>\n"  \
  "    %a = galv.attention %q, %k, %v mask %mask causal scale = 0.7 : "        \
  "tensor<1x3x1x5xf32>, tensor<1x1x3x5xf32>, tensor<1x1x3x5xf32>, "            \
  "tensor<1x3xi1> -> tensor<1x3x1x5xf32>\n"                                    \
  "    %y = galv.reshape %a : tensor<1x3x1x5xf32> -> tensor<3x5xf32>"

// An additive [Sq, Sk] mask (a constant: no gradient of its own).
#define GALV_ADDITIVE_MASK_ATTENTION                                           \
  GALV_KV_FROM_X                                                               \
  "    %q = galv.reshape %x : tensor<3x5xf32> -> tensor<1x1x3x5xf32>\n"        \
  "    %mask = galv.constant dense<[[0.0, -1.0, 0.5], [1.0, 0.0, -2.0], "      \
  "[0.0, 0.3, 0.0]]> : tensor<3x3xf32>\n"                                      \
  "    %a = galv.attention %q, %k, %v mask %mask scale = 0.7 : "               \
  "tensor<1x1x3x5xf32>, tensor<1x1x3x5xf32>, tensor<1x1x3x5xf32>, "            \
  "tensor<3x3xf32> -> tensor<1x1x3x5xf32>\n"                                   \
  "    %y = galv.reshape %a : tensor<1x1x3x5xf32> -> tensor<3x5xf32>"

std::string moduleFor(const Case &c) {
  return std::string(R"(
module {
  galv.parameter @x : tensor<3x5xf32> trainable
  func.func @loss(%c: tensor<3x5xf32>) -> tensor<f32> {
    %x = galv.get_parameter @x : tensor<3x5xf32>
)") + c.body +
         R"(
    %m = galv.mul %y, %c : tensor<3x5xf32>, tensor<3x5xf32> -> tensor<3x5xf32>
    %s = galv.reduce sum %m axes = [0, 1] : tensor<3x5xf32> -> tensor<f32>
    return %s : tensor<f32>
  }
})";
}

rt::Tensor randomTensor(std::mt19937 &rng, float scale) {
  rt::Tensor t(rt::DType::F32, {3, 5});
  std::uniform_real_distribution<float> dist(-scale, scale);
  for (int64_t i = 0; i < t.size(); ++i)
    t.f32()[i] = dist(rng);
  return t;
}

double lossAt(ModuleOp module, const rt::Tensor &x, const rt::Tensor &c) {
  auto out = evaluateForward(module, {{"x", x}}, {c}, "loss");
  EXPECT_TRUE(succeeded(out));
  return succeeded(out) ? (*out)[0].f32()[0] : NAN;
}

class AdjointTest : public ::testing::TestWithParam<Case> {};

/// Whether the module holds an op named `name`.
bool holds(ModuleOp module, StringRef name) {
  bool found = false;
  module.walk(
      [&](Operation *op) { found |= op->getName().getStringRef() == name; });
  return found;
}

void checkAgainstDifferences(const Case &testCase, bool fused) {
  SCOPED_TRACE(fused ? "fused-backward=true" : "fused-backward=false");
  MLIRContext context;
  context.loadDialect<GalvDialect, func::FuncDialect>();
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(moduleFor(testCase), &context);
  ASSERT_TRUE(module);
  PassManager pm(&context);
  AutodiffOptions options;
  options.fusedBackward = fused;
  options.fusedAttention = fused;
  pm.addPass(createAutodiff(options));
  ASSERT_TRUE(succeeded(pm.run(*module)));
  if (testCase.fusedOp) {
    EXPECT_EQ(holds(*module, testCase.fusedOp), fused) << testCase.fusedOp;
  }

  std::mt19937 rng(7);
  rt::Tensor x = randomTensor(rng, 2.0f), c = randomTensor(rng, 1.0f);
  auto grads = evaluateForward(*module, {{"x", x}}, {c}, "loss_grad");
  ASSERT_TRUE(succeeded(grads));
  ASSERT_EQ(grads->size(), 2u);
  const rt::Tensor &g = (*grads)[1];
  const double h = 1e-2;
  for (int64_t i = 0; i < x.size(); ++i) {
    rt::Tensor plus = x, minus = x;
    plus.f32()[i] += h;
    minus.f32()[i] -= h;
    double numeric =
        (lossAt(*module, plus, c) - lossAt(*module, minus, c)) / (2 * h);
    EXPECT_NEAR(g.f32()[i], numeric, 2e-3 * std::max(1.0, std::fabs(numeric)))
        << testCase.name << " element " << i;
  }
}

// A rule that builds an op its operands do not fit gets an error at the
// forward op, not an LLVM abort (as OpTy::create would).
TEST(AdjointBuilderTest, RejectedOperandsAreDiagnostics) {
  MLIRContext context;
  context.loadDialect<GalvDialect, func::FuncDialect>();
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(R"(
    func.func @f(%x: tensor<2x3x4x5xf32>) -> tensor<2x3x4x5xf32> {
      %y = galv.softmax %x axis = -1 : tensor<2x3x4x5xf32> loc("attn")
      return %y : tensor<2x3x4x5xf32>
    })",
                                                             &context);
  ASSERT_TRUE(module);
  auto func = cast<func::FuncOp>(module->getBody()->front());
  Operation *softmax = &func.getBody().front().front();
  std::string message;
  std::optional<Location> at;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    at = diag.getLocation();
    return success();
  });
  OpBuilder b(softmax);
  AdjointBuilder ab(b, func.getLoc());
  ab.forward = softmax;
  auto reduce = ab.create<ReduceOp>(ReduceKind::sum, softmax->getResult(0),
                                    ArrayRef<int64_t>{-1}, true);
  EXPECT_TRUE(failed(reduce));
  EXPECT_EQ(message, "axis -1 is out of range for rank 4");
  EXPECT_EQ(at, softmax->getLoc());
  // Nothing was left behind: the function is as it was.
  EXPECT_EQ(std::distance(func.getBody().front().begin(),
                          func.getBody().front().end()),
            2);
}

TEST_P(AdjointTest, MatchesCentralDifferences) {
  for (bool fused : {true, false})
    checkAgainstDifferences(GetParam(), fused);
}

// A norm whose scale (and bias) are rows of %x too, so that one gradient
// checks every result of the fused gradient op.
#define GALV_NORM_WEIGHTS                                                      \
  "%sc0 = galv.slice %x [0, 0] [1, 5] [1, 1] : tensor<3x5xf32> -> "            \
  "tensor<1x5xf32>\n"                                                          \
  "    %sc = galv.reshape %sc0 : tensor<1x5xf32> -> tensor<5xf32>\n"           \
  "    %bi0 = galv.slice %x [1, 0] [2, 5] [1, 1] : tensor<3x5xf32> -> "        \
  "tensor<1x5xf32>\n"                                                          \
  "    %bi = galv.reshape %bi0 : tensor<1x5xf32> -> tensor<5xf32>\n    "

INSTANTIATE_TEST_SUITE_P(
    Ops, AdjointTest,
    ::testing::Values(
        Case{"log_softmax_last",
             "%y = galv.log_softmax %x axis = -1 : tensor<3x5xf32>"},
        Case{"log_softmax_first",
             "%y = galv.log_softmax %x axis = 0 : tensor<3x5xf32>"},
        Case{"softmax", "%y = galv.softmax %x axis = 1 : tensor<3x5xf32>"},
        Case{"softmax_negative_axis",
             "%y = galv.softmax %x axis = -1 : tensor<3x5xf32>"},
        Case{"concat_negative_axis",
             "%a = galv.slice %x [0, 0] [3, 2] [1, 1] : tensor<3x5xf32> -> "
             "tensor<3x2xf32>\n"
             "    %b = galv.slice %x [0, 2] [3, 5] [1, 1] : tensor<3x5xf32> -> "
             "tensor<3x3xf32>\n"
             "    %y = galv.concat %b, %a axis = -1 : tensor<3x3xf32>, "
             "tensor<3x2xf32> -> tensor<3x5xf32>"},
        // Falcon's keys out of a fused projection: a gather along a later
        // axis, with repeated and negative indices.
        Case{"gather_columns",
             "%i = galv.constant dense<[4, -1, 0, 2, 0]> : tensor<5xi64>\n"
             "    %y = galv.gather %x[%i] axis = -1 : tensor<3x5xf32>, "
             "tensor<5xi64> -> tensor<3x5xf32>"},
        Case{"gather_rows_2d_indices",
             "%i = galv.constant dense<[[-1], [0], [0]]> : tensor<3x1xi64>\n"
             "    %g = galv.gather %x[%i] axis = 0 : tensor<3x5xf32>, "
             "tensor<3x1xi64> -> tensor<3x1x5xf32>\n"
             "    %y = galv.reshape %g : tensor<3x1x5xf32> -> tensor<3x5xf32>"},
        Case{"gelu_tanh",
             "%y = galv.gelu %x approximate = tanh : tensor<3x5xf32>",
             "galv.gelu_grad"},
        Case{"gelu", "%y = galv.gelu %x : tensor<3x5xf32>", "galv.gelu_grad"},
        Case{"silu", "%y = galv.silu %x : tensor<3x5xf32>"},
        Case{"tanh", "%y = galv.tanh %x : tensor<3x5xf32>"},
        Case{"sigmoid", "%y = galv.sigmoid %x : tensor<3x5xf32>"},
        Case{"exp", "%y = galv.exp %x : tensor<3x5xf32>"},
        Case{"erf", "%y = galv.erf %x : tensor<3x5xf32>"},
        Case{"transpose_back",
             "%t = galv.transpose %x [1, 0] : tensor<3x5xf32> -> "
             "tensor<5x3xf32>\n"
             "    %y = galv.transpose %t [1, 0] : tensor<5x3xf32> -> "
             "tensor<3x5xf32>"},
        Case{"max_of_halves",
             "%z = galv.constant dense<0.5> : tensor<f32>\n"
             "    %y = galv.max %x, %z : tensor<3x5xf32>, tensor<f32> -> "
             "tensor<3x5xf32>"},
        Case{"layer_norm",
             GALV_NORM_WEIGHTS
             "%y = galv.layer_norm %x, %sc, %bi eps = 1.0e-05 "
             ": tensor<3x5xf32>, tensor<5xf32>, "
             "tensor<5xf32>",
             "galv.layer_norm_grad"},
        Case{"layer_norm_no_bias",
             GALV_NORM_WEIGHTS "%y = galv.layer_norm %x, %sc eps = 1.0e-05 : "
                               "tensor<3x5xf32>, tensor<5xf32>",
             "galv.layer_norm_grad"},
        Case{"rms_norm",
             GALV_NORM_WEIGHTS "%y = galv.rms_norm %x, %sc eps = 1.0e-06 : "
                               "tensor<3x5xf32>, tensor<5xf32>",
             "galv.rms_norm_grad"},
        // The loss broadcast back to [3, 5]; one label ignored.
        Case{"cross_entropy_mean",
             "%l = galv.constant dense<[1, -100, 4]> : tensor<3xi64>\n"
             "    %e = galv.cross_entropy %x, %l : tensor<3x5xf32>, "
             "tensor<3xi64> -> tensor<f32>\n"
             "    %y = galv.expand %e : tensor<f32> -> tensor<3x5xf32>",
             "galv.cross_entropy_grad"},
        Case{"cross_entropy_sum",
             "%l = galv.constant dense<[1, 4, 0]> : tensor<3xi64>\n"
             "    %e = galv.cross_entropy %x, %l reduction = sum "
             "ignore_index = 4 : tensor<3x5xf32>, tensor<3xi64> -> "
             "tensor<f32>\n"
             "    %y = galv.expand %e : tensor<f32> -> tensor<3x5xf32>",
             "galv.cross_entropy_grad"},
        Case{"attention_causal", GALV_CAUSAL_ATTENTION, "galv.attention_grad"},
        Case{"attention_grouped_masked", GALV_GROUPED_MASKED_ATTENTION,
             "galv.attention_grad"},
        Case{"attention_additive_mask", GALV_ADDITIVE_MASK_ATTENTION,
             "galv.attention_grad"}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return std::string(info.param.name);
    });
#undef GALV_NORM_WEIGHTS

} // namespace
