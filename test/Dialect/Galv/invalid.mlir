// Every verifier error of the galv graph ops.
// RUN: galvatron-opt %s --split-input-file --verify-diagnostics

func.func @broadcast(%a: tensor<2x3xf32>, %b: tensor<3x2xf32>) {
  // expected-error @below {{shapes [2, 3] and [3, 2] do not broadcast}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.add %a, %b : tensor<2x3xf32>, tensor<3x2xf32> -> tensor<2x3xf32>
  return
}

// -----

func.func @wrong_result(%a: tensor<2x3xf32>, %b: tensor<3xf32>) {
  // expected-error @below {{inferred type(s) 'tensor<2x3xf32>' are incompatible with return type(s) of operation 'tensor<2x4xf32>'}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.mul %a, %b : tensor<2x3xf32>, tensor<3xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @mixed_elements(%a: tensor<2x3xf32>, %b: tensor<3xf16>) {
  // expected-error @below {{requires the same element type for all operands}}
  %0 = galv.sub %a, %b : tensor<2x3xf32>, tensor<3xf16> -> tensor<2x3xf32>
  return
}

// -----

func.func @dynamic_shape(%a: tensor<?x3xf32>) {
  // expected-error @below {{operand #0 must be statically shaped tensor of floating-point values, but got 'tensor<?x3xf32>'}}
  %0 = galv.exp %a : tensor<?x3xf32>
  return
}

// -----

func.func @exp_of_int(%a: tensor<3xi64>) {
  // expected-error @below {{operand #0 must be statically shaped tensor of floating-point values, but got 'tensor<3xi64>'}}
  %0 = galv.exp %a : tensor<3xi64>
  return
}

// -----

func.func @and_of_float(%a: tensor<3xf32>) {
  // expected-error @below {{operand #0 must be statically shaped tensor of 1-bit signless integer values}}
  %0 = galv.and %a, %a : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  return
}

// -----

func.func @compare_result(%a: tensor<3xf32>) {
  // expected-error @below {{result #0 must be statically shaped tensor of 1-bit signless integer values}}
  %0 = galv.compare gt %a, %a : tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  return
}

// -----

func.func @where_elements(%c: tensor<3xi1>, %a: tensor<3xf32>, %b: tensor<3xf16>) {
  // expected-error @below {{on_true and on_false element types differ: 'f32' vs 'f16'}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.where %c, %a, %b : tensor<3xi1>, tensor<3xf32>, tensor<3xf16> -> tensor<3xf32>
  return
}

// -----

func.func @where_broadcast(%c: tensor<4xi1>, %a: tensor<3xf32>) {
  // expected-error @below {{shapes [4], [3] and [3] do not broadcast}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.where %c, %a, %a : tensor<4xi1>, tensor<3xf32>, tensor<3xf32> -> tensor<3xf32>
  return
}

// -----

func.func @cast_shape(%a: tensor<3xi64>) {
  // expected-error @below {{requires the same shape for all operands and results}}
  %0 = galv.cast %a : tensor<3xi64> -> tensor<4xf32>
  return
}

// -----

func.func @constant_type() {
  // expected-error @below {{failed to verify that all of {value, result} have same type}}
  %0 = "galv.constant"() {value = dense<1.0> : tensor<2xf32>} : () -> tensor<3xf32>
  return
}

// -----

func.func @matmul_rank(%a: tensor<3xf32>, %b: tensor<3x2xf32>) {
  // expected-error @below {{operands must have rank >= 2, got 1 and 2}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.matmul %a, %b : tensor<3xf32>, tensor<3x2xf32> -> tensor<2xf32>
  return
}

// -----

func.func @matmul_contracting(%a: tensor<2x3xf32>, %b: tensor<4x2xf32>) {
  // expected-error @below {{contracting dimensions differ: 3 vs 4}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.matmul %a, %b : tensor<2x3xf32>, tensor<4x2xf32> -> tensor<2x2xf32>
  return
}

// -----

func.func @matmul_batch(%a: tensor<2x2x3xf32>, %b: tensor<3x3x2xf32>) {
  // expected-error @below {{batch dimensions [2] and [3] do not broadcast}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.matmul %a, %b : tensor<2x2x3xf32>, tensor<3x3x2xf32> -> tensor<2x2x2xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x4xf32>, %w: tensor<4xf32>) {
  // expected-error @below {{weight must have rank 2, got 1}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.linear %x, %w : tensor<2x4xf32>, tensor<4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_input_rank(%x: tensor<f32>, %w: tensor<4x4xf32>) {
  // expected-error @below {{input must have rank >= 1}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.linear %x, %w : tensor<f32>, tensor<4x4xf32> -> tensor<4xf32>
  return
}

// -----

func.func @linear_elements(%x: tensor<2x4xf32>, %w: tensor<8x4xf16>) {
  // expected-error @below {{input and weight element types differ}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.linear %x, %w : tensor<2x4xf32>, tensor<8x4xf16> -> tensor<2x8xf32>
  return
}

// -----

func.func @linear_features(%x: tensor<2x4xf32>, %w: tensor<4x8xf32>) {
  // A [in, out] weight read with the default [out, in] layout.
  // expected-error @below {{input has 4 features but the weight (layout out_in) expects 8}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.linear %x, %w : tensor<2x4xf32>, tensor<4x8xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<2x4xf32>, %w: tensor<8x4xf32>, %b: tensor<4xf32>) {
  // expected-error @below {{bias must be 'tensor<8xf32>', got 'tensor<4xf32>'}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.linear %x, %w, %b : tensor<2x4xf32>, tensor<8x4xf32>, tensor<4xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @reshape_elements(%x: tensor<2x4xf32>) {
  // expected-error @below {{cannot reshape 8 elements into 9}}
  %0 = galv.reshape %x : tensor<2x4xf32> -> tensor<3x3xf32>
  return
}

// -----

func.func @reshape_element_type(%x: tensor<2x4xf32>) {
  // expected-error @below {{requires the same element type for all operands and results}}
  %0 = galv.reshape %x : tensor<2x4xf32> -> tensor<8xf16>
  return
}

// -----

func.func @transpose_size(%x: tensor<2x4xf32>) {
  // expected-error @below {{permutation has 3 entries but the input has rank 2}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.transpose %x [0, 1, 2] : tensor<2x4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @transpose_repeat(%x: tensor<2x4xf32>) {
  // expected-error @below {{permutation [0, 0] is not a permutation of [0, 2)}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.transpose %x [0, 0] : tensor<2x4xf32> -> tensor<2x2xf32>
  return
}

// -----

func.func @slice_entries(%x: tensor<2x4xf32>) {
  // expected-error @below {{starts, limits and steps need 2 entries each (the input rank)}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.slice %x [0] [2] [1] : tensor<2x4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @slice_step(%x: tensor<2x4xf32>) {
  // expected-error @below {{steps[1] must be positive, got 0}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.slice %x [0, 0] [2, 4] [1, 0] : tensor<2x4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @slice_bounds(%x: tensor<2x4xf32>) {
  // expected-error @below {{dimension 1: need 0 <= start 1 <= limit 5 <= 4}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.slice %x [0, 1] [2, 5] [1, 1] : tensor<2x4xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @concat_axis(%x: tensor<2x4xf32>) {
  // expected-error @below {{axis 2 is out of range for rank 2}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.concat %x, %x axis = 2 : tensor<2x4xf32>, tensor<2x4xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @concat_rank(%x: tensor<2x4xf32>, %y: tensor<2x4x1xf32>) {
  // expected-error @below {{input 1 has rank 3, expected 2}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.concat %x, %y axis = 1 : tensor<2x4xf32>, tensor<2x4x1xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @concat_shape(%x: tensor<2x4xf32>, %y: tensor<3x4xf32>) {
  // expected-error @below {{input 1 has shape [3, 4] which differs from [2, 4] outside axis 1}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.concat %x, %y axis = 1 : tensor<2x4xf32>, tensor<3x4xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @concat_empty() {
  // expected-error @below {{expected 1 or more operands, but found 0}}
  %0 = "galv.concat"() {axis = 0 : i64} : () -> tensor<2xf32>
  return
}

// -----

func.func @split_sum(%x: tensor<2x6xf32>) {
  // expected-error @below {{split sizes add up to 5 but dimension 1 has 6}}
  // expected-error @below {{failed to infer returned types}}
  %0:2 = galv.split %x axis = 1 sizes = [2, 3] : tensor<2x6xf32> -> tensor<2x2xf32>, tensor<2x3xf32>
  return
}

// -----

func.func @split_negative(%x: tensor<2x6xf32>) {
  // expected-error @below {{split sizes must be non-negative}}
  // expected-error @below {{failed to infer returned types}}
  %0:2 = galv.split %x axis = 1 sizes = [8, -2] : tensor<2x6xf32> -> tensor<2x8xf32>, tensor<2x2xf32>
  return
}

// -----

func.func @split_axis(%x: tensor<2x6xf32>) {
  // expected-error @below {{axis -3 is out of range for rank 2}}
  // expected-error @below {{failed to infer returned types}}
  %0:2 = galv.split %x axis = -3 sizes = [1, 1] : tensor<2x6xf32> -> tensor<1x6xf32>, tensor<1x6xf32>
  return
}

// -----

func.func @expand_shape(%x: tensor<2x3xf32>) {
  // expected-error @below {{cannot broadcast [2, 3] to [2, 4]}}
  %0 = galv.expand %x : tensor<2x3xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @expand_shrinks(%x: tensor<2x3xf32>) {
  // expected-error @below {{cannot broadcast [2, 3] to [3]}}
  %0 = galv.expand %x : tensor<2x3xf32> -> tensor<3xf32>
  return
}

// -----

func.func @gather_axis(%d: tensor<4x8xf32>, %i: tensor<2xi64>) {
  // expected-error @below {{axis 2 is out of range for rank 2}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.gather %d[%i] axis = 2 : tensor<4x8xf32>, tensor<2xi64> -> tensor<2x8xf32>
  return
}

// -----

func.func @gather_float_indices(%d: tensor<4x8xf32>, %i: tensor<2xf32>) {
  // expected-error @below {{operand #1 must be statically shaped tensor of signless integer values}}
  %0 = galv.gather %d[%i] axis = 0 : tensor<4x8xf32>, tensor<2xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @reduce_axis(%x: tensor<2x4xf32>) {
  // expected-error @below {{axis 2 is out of range for rank 2}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.reduce sum %x axes = [2] : tensor<2x4xf32> -> tensor<2xf32>
  return
}

// -----

func.func @reduce_twice(%x: tensor<2x4xf32>) {
  // expected-error @below {{axis 1 is listed twice}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.reduce sum %x axes = [1, 1] : tensor<2x4xf32> -> tensor<2xf32>
  return
}

// -----

func.func @softmax_axis(%x: tensor<2x4xf32>) {
  // expected-error @below {{axis -3 is out of range for rank 2}}
  %0 = galv.softmax %x axis = -3 : tensor<2x4xf32>
  return
}

// -----

func.func @layer_norm_scale(%x: tensor<2x4xf32>, %g: tensor<2xf32>) {
  // expected-error @below {{scale must be 'tensor<4xf32>' to match the normalised dimension, got 'tensor<2xf32>'}}
  %0 = galv.layer_norm %x, %g eps = 1.0e-05 : tensor<2x4xf32>, tensor<2xf32>
  return
}

// -----

func.func @layer_norm_bias(%x: tensor<2x4xf32>, %g: tensor<4xf32>, %b: tensor<4xf16>) {
  // expected-error @below {{bias must be 'tensor<4xf32>' to match the normalised dimension, got 'tensor<4xf16>'}}
  %0 = galv.layer_norm %x, %g, %b eps = 1.0e-05 : tensor<2x4xf32>, tensor<4xf32>, tensor<4xf16>
  return
}

// -----

func.func @layer_norm_eps(%x: tensor<2x4xf32>, %g: tensor<4xf32>) {
  // expected-error @below {{epsilon must be non-negative}}
  %0 = galv.layer_norm %x, %g eps = -1.0 : tensor<2x4xf32>, tensor<4xf32>
  return
}

// -----

func.func @layer_norm_scalar(%x: tensor<f32>, %g: tensor<4xf32>) {
  // expected-error @below {{input must have rank >= 1}}
  %0 = galv.layer_norm %x, %g eps = 1.0e-05 : tensor<f32>, tensor<4xf32>
  return
}

// -----

func.func @rms_norm_scale(%x: tensor<2x4xf32>, %g: tensor<4x1xf32>) {
  // expected-error @below {{scale must be 'tensor<4xf32>' to match the normalised dimension, got 'tensor<4x1xf32>'}}
  %0 = galv.rms_norm %x, %g eps = 1.0e-06 : tensor<2x4xf32>, tensor<4x1xf32>
  return
}

// -----

func.func @rms_norm_eps(%x: tensor<2x4xf32>, %g: tensor<4xf32>) {
  // expected-error @below {{epsilon must be non-negative}}
  %0 = galv.rms_norm %x, %g eps = -1.0e-06 : tensor<2x4xf32>, tensor<4xf32>
  return
}

// -----

func.func @embedding_table(%t: tensor<4xf32>, %i: tensor<2xi64>) {
  // expected-error @below {{table must have rank 2, got 1}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.embedding %t[%i] : tensor<4xf32>, tensor<2xi64> -> tensor<2x4xf32>
  return
}

// -----

func.func @rotary_rank(%x: tensor<2x8x16xf32>, %c: tensor<8x16xf32>) {
  // expected-error @below {{input must be [batch, heads, seq, head_dim], got 'tensor<2x8x16xf32>'}}
  %0 = galv.rotary %x, %c, %c : tensor<2x8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>
  return
}

// -----

func.func @rotary_cos_sin(%x: tensor<1x2x8x16xf32>, %c: tensor<8x16xf32>, %s: tensor<1x8x16xf32>) {
  // expected-error @below {{cos and sin must have the same type, got 'tensor<8x16xf32>' and 'tensor<1x8x16xf32>'}}
  %0 = galv.rotary %x, %c, %s : tensor<1x2x8x16xf32>, tensor<8x16xf32>, tensor<1x8x16xf32>
  return
}

// -----

func.func @rotary_elements(%x: tensor<1x2x8x16xf32>, %c: tensor<8x16xf16>) {
  // expected-error @below {{cos/sin element type must match the input's}}
  %0 = galv.rotary %x, %c, %c : tensor<1x2x8x16xf32>, tensor<8x16xf16>, tensor<8x16xf16>
  return
}

// -----

func.func @rotary_scalar(%x: tensor<1x2x8x16xf32>, %c: tensor<f32>) {
  // expected-error @below {{cos/sin must have rank >= 1}}
  %0 = galv.rotary %x, %c, %c : tensor<1x2x8x16xf32>, tensor<f32>, tensor<f32>
  return
}

// -----

func.func @rotary_odd(%x: tensor<1x2x8x16xf32>, %c: tensor<8x7xf32>) {
  // expected-error @below {{rotated dimension 7 must be even and at most the head dimension 16}}
  %0 = galv.rotary %x, %c, %c : tensor<1x2x8x16xf32>, tensor<8x7xf32>, tensor<8x7xf32>
  return
}

// -----

func.func @rotary_positions(%x: tensor<1x2x8x16xf32>, %c: tensor<4x16xf32>) {
  // expected-error @below {{cos/sin shape [4, 16] does not broadcast to [1, 2, 8, 16]}}
  %0 = galv.rotary %x, %c, %c : tensor<1x2x8x16xf32>, tensor<4x16xf32>, tensor<4x16xf32>
  return
}

// -----

func.func @attention_rank(%q: tensor<2x8x16xf32>) {
  // expected-error @below {{query, key and value must be [batch, heads, seq, head_dim]}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %q, %q scale = 0.25 : tensor<2x8x16xf32>, tensor<2x8x16xf32>, tensor<2x8x16xf32> -> tensor<2x8x16xf32>
  return
}

// -----

func.func @attention_elements(%q: tensor<1x2x8x16xf32>, %k: tensor<1x2x8x16xf16>) {
  // expected-error @below {{query, key and value element types differ}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %k, %k scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf16>, tensor<1x2x8x16xf16> -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @attention_batch(%q: tensor<1x2x8x16xf32>, %k: tensor<2x2x8x16xf32>) {
  // expected-error @below {{batch sizes differ}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %k, %k scale = 0.25 : tensor<1x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @attention_kv(%q: tensor<1x2x8x16xf32>, %k: tensor<1x2x8x16xf32>, %v: tensor<1x2x4x16xf32>) {
  // expected-error @below {{key 'tensor<1x2x8x16xf32>' and value 'tensor<1x2x4x16xf32>' disagree on heads or sequence length}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %k, %v scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x4x16xf32> -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @attention_groups(%q: tensor<1x4x8x16xf32>, %k: tensor<1x3x8x16xf32>) {
  // expected-error @below {{query heads 4 must be a multiple of key/value heads 3}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %k, %k scale = 0.25 : tensor<1x4x8x16xf32>, tensor<1x3x8x16xf32>, tensor<1x3x8x16xf32> -> tensor<1x4x8x16xf32>
  return
}

// -----

func.func @attention_head_dim(%q: tensor<1x2x8x16xf32>, %k: tensor<1x2x8x8xf32>) {
  // expected-error @below {{query and key head dimensions differ: 16 vs 8}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %k, %k scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x2x8x8xf32>, tensor<1x2x8x8xf32> -> tensor<1x2x8x8xf32>
  return
}

// -----

func.func @attention_causal(%q: tensor<1x2x8x16xf32>, %k: tensor<1x2x4x16xf32>) {
  // expected-error @below {{causal attention needs at least as many keys as queries}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %k, %k causal scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x2x4x16xf32>, tensor<1x2x4x16xf32> -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @attention_mask_type(%q: tensor<1x2x8x16xf32>, %m: tensor<8x8xi64>) {
  // expected-error @below {{mask must be i1 or a float type, got 'i64'}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %q, %q mask %m scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<8x8xi64> -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @attention_grad_type(%q: tensor<1x2x8x16xf32>, %k: tensor<1x1x8x16xf32>, %g: tensor<1x1x8x16xf32>) {
  // expected-error @below {{grad 'tensor<1x1x8x16xf32>' must have the attention result's type 'tensor<1x2x8x16xf32>'}}
  %0:3 = galv.attention_grad %q, %k, %k grad %g scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>, tensor<1x1x8x16xf32>
  return
}

// -----

func.func @attention_grad_mask(%q: tensor<1x2x8x16xf32>, %m: tensor<2x2x8x8xi1>) {
  // expected-error @below {{mask shape [2, 2, 8, 8] does not broadcast to [1, 2, 8, 8]}}
  %0:3 = galv.attention_grad %q, %q, %q grad %q mask %m scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<2x2x8x8xi1>
  return
}

// -----

func.func @attention_mask_shape(%q: tensor<1x2x8x16xf32>, %m: tensor<3x8x8xf32>) {
  // expected-error @below {{mask shape [3, 8, 8] does not broadcast to [1, 2, 8, 8]}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.attention %q, %q, %q mask %m scale = 0.25 : tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<1x2x8x16xf32>, tensor<3x8x8xf32> -> tensor<1x2x8x16xf32>
  return
}

// -----

func.func @cross_entropy_labels(%l: tensor<2x8x100xf32>, %y: tensor<2x7xi64>) {
  // expected-error @below {{labels shape [2, 7] must be the logits shape [2, 8, 100] without its last (class) dimension}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.cross_entropy %l, %y : tensor<2x8x100xf32>, tensor<2x7xi64> -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_reduction(%l: tensor<2x8x100xf32>, %y: tensor<2x8xi64>) {
  // expected-error @below {{reduction must be mean or sum, got max}}
  // expected-error @below {{failed to infer returned types}}
  %0 = galv.cross_entropy %l, %y reduction = max : tensor<2x8x100xf32>, tensor<2x8xi64> -> tensor<f32>
  return
}

// -----

func.func @embedding_grad_shape(%g: tensor<2x8x64xf32>, %i: tensor<2x7xi64>) {
  // expected-error @below {{grad shape [2, 8, 64] must be the ids shape [2, 7] plus a row size}}
  %0 = galv.embedding_grad %g[%i] rows = 10 : tensor<2x8x64xf32>, tensor<2x7xi64> -> tensor<10x64xf32>
  return
}

// -----

func.func @embedding_grad_result(%g: tensor<2x8x64xf32>, %i: tensor<2x8xi64>) {
  // expected-error @below {{result must be 'tensor<10x64xf32>'}}
  %0 = galv.embedding_grad %g[%i] rows = 10 : tensor<2x8x64xf32>, tensor<2x8xi64> -> tensor<11x64xf32>
  return
}

// -----

func.func @embedding_padding_outside(%t: tensor<10x4xf32>, %i: tensor<2x8xi64>) {
  // expected-error @below {{padding_idx 10 outside the vocabulary [0, 10)}}
  %0 = galv.embedding %t[%i] padding_idx = 10 : tensor<10x4xf32>, tensor<2x8xi64> -> tensor<2x8x4xf32>
  return
}

// -----

func.func @embedding_grad_padding_outside(%g: tensor<2x8x4xf32>, %i: tensor<2x8xi64>) {
  // expected-error @below {{padding_idx 20 outside the vocabulary [0, 20)}}
  %0 = galv.embedding_grad %g[%i] rows = 10 padding_idx = 20 vocab_group = <size = 2, stride = 1> : tensor<2x8x4xf32>, tensor<2x8xi64> -> tensor<10x4xf32>
  return
}

// -----

func.func @embedding_group_without_padding(%t: tensor<10x4xf32>, %i: tensor<2x8xi64>) {
  // expected-error @below {{vocab_group without padding_idx}}
  %0 = galv.embedding %t[%i] vocab_group = <size = 2, stride = 1> : tensor<10x4xf32>, tensor<2x8xi64> -> tensor<2x8x4xf32>
  return
}

// -----

func.func @cross_entropy_grad_labels(%l: tensor<2x8x10xf32>, %y: tensor<2x7xi64>, %d: tensor<f32>) {
  // expected-error @below {{labels shape [2, 7] must be the logits shape [2, 8, 10] without its last (class) dimension}}
  %0 = galv.cross_entropy_grad %l, %y, %d : tensor<2x8x10xf32>, tensor<2x7xi64>, tensor<f32>
  return
}

// -----

func.func @cross_entropy_grad_dloss(%l: tensor<2x8x10xf32>, %y: tensor<2x8xi64>, %d: tensor<1xf32>) {
  // expected-error @below {{dloss must be 'tensor<f32>', got 'tensor<1xf32>'}}
  %0 = galv.cross_entropy_grad %l, %y, %d : tensor<2x8x10xf32>, tensor<2x8xi64>, tensor<1xf32>
  return
}

// -----

func.func @cross_entropy_grad_reduction(%l: tensor<2x8x10xf32>, %y: tensor<2x8xi64>, %d: tensor<f32>) {
  // expected-error @below {{reduction must be mean or sum, got max}}
  %0 = galv.cross_entropy_grad %l, %y, %d reduction = max : tensor<2x8x10xf32>, tensor<2x8xi64>, tensor<f32>
  return
}

// -----

func.func @layer_norm_grad_scale(%x: tensor<2x4xf32>, %g: tensor<3xf32>) {
  // expected-error @below {{scale must be 'tensor<4xf32>' to match the normalised dimension, got 'tensor<3xf32>'}}
  %0:3 = galv.layer_norm_grad %x, %g, %x eps = 1.0e-05 : tensor<2x4xf32>, tensor<3xf32>
  return
}

// -----

func.func @rms_norm_grad_eps(%x: tensor<2x4xf32>, %g: tensor<4xf32>) {
  // expected-error @below {{epsilon must be non-negative}}
  %0:2 = galv.rms_norm_grad %x, %g, %x eps = -1.0 : tensor<2x4xf32>, tensor<4xf32>
  return
}

// -----

func.func @rms_norm_grad_types(%x: tensor<2x4xf32>, %g: tensor<4xf32>, %dy: tensor<2x5xf32>) {
  // expected-error @below {{all of {input, dinput, grad} have same type}}
  %0:2 = "galv.rms_norm_grad"(%x, %g, %dy) {epsilon = 1.0e-05 : f64} : (tensor<2x4xf32>, tensor<4xf32>, tensor<2x5xf32>) -> (tensor<2x4xf32>, tensor<4xf32>)
  return
}
