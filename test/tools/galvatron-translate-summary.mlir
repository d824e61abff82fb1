// RUN: galvatron-translate --galv-layer-summary %s | FileCheck %s
// RUN: galvatron-translate --galv-layer-summary %galvatron_src_root/models/examples/tiny-gpt.mlir | FileCheck %s --check-prefix=GPT

// CHECK: layer  type   {{ *}}stage  strategy {{ *}}params {{ *}}bytes
// CHECK-NEXT: 0      block {{ *}}0      tp2s dp1 {{ *}}4 {{ *}}16
// CHECK-NEXT: 1      block_half {{ *}}1      tp1 dp2 zero3 ckpt {{ *}}2 {{ *}}8
// CHECK-NEXT: layers: 2, parameters in layers: 6, other parameters: 3, all parameters: 9 (36 bytes)

// GPT: 0      gpt2_block {{ *}}0      tp2 dp1 sp-megatron {{ *}}12704 {{ *}}50816
// GPT-NEXT: 1      gpt2_block {{ *}}1      tp1 dp2 zero3 ckpt {{ *}}12704 {{ *}}50816
// GPT-NEXT: layers: 2, parameters in layers: 25408, other parameters: 2368, all parameters: 27776 (111104 bytes)
module {
  galv.parameter @a : tensor<4xf32>
  galv.parameter @b : tensor<2xf32>
  galv.parameter @c : tensor<3xf32>
  galv.layer_type @block(%x: tensor<2xf32>, %w: tensor<4xf32>) -> tensor<2xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"]} {
    galv.return %x : tensor<2xf32>
  }
  galv.layer_type @block_half(%x: tensor<2xf32>, %w: tensor<2xf32>) -> tensor<2xf32> attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"]} {
    galv.return %x : tensor<2xf32>
  }
  func.func @forward(%x: tensor<2xf32>) -> tensor<2xf32> {
    %a = galv.get_parameter @a : tensor<4xf32>
    %b = galv.get_parameter @b : tensor<2xf32>
    %0 = galv.layer @block(%x) params(%a) {strategy = #galv.strategy<tp = 2, dp = 1, tp_consecutive = false>} : (tensor<2xf32>, tensor<4xf32>) -> tensor<2xf32>
    %1 = galv.layer @block_half(%0) params(%b) {strategy = #galv.strategy<tp = 1, dp = 2, tp_consecutive = false, dp_kind = zero3, checkpoint = true, stage = 1>} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
    return %1 : tensor<2xf32>
  }
}
