// Used by galvatron-run-errors.test: y = tanh(x) * 2.
module {
  func.func @forward(%x: tensor<2x3xf32> {onnx.name = "x"}) -> tensor<2x3xf32> {
    %two = galv.constant dense<2.0> : tensor<f32>
    %t = galv.tanh %x : tensor<2x3xf32>
    %y = galv.mul %t, %two : tensor<2x3xf32>, tensor<f32> -> tensor<2x3xf32>
    return %y : tensor<2x3xf32>
  }
}
