// Used by log-softmax-argmax.test.
module {
  func.func @forward(%x: tensor<3x4xf32> {onnx.name = "x"}) -> (tensor<3x4xf32>, tensor<3xi64>, tensor<1x4xi64>) {
    %l = galv.log_softmax %x axis = 1 : tensor<3x4xf32>
    %a = galv.argmax %x axis = -1 : tensor<3x4xf32> -> tensor<3xi64>
    %b = galv.argmax %x axis = 0 keepdims select_last_index : tensor<3x4xf32> -> tensor<1x4xi64>
    return %l, %a, %b : tensor<3x4xf32>, tensor<3xi64>, tensor<1x4xi64>
  }
}
