// Round trip: every galv graph op prints in its custom form, and that form
// and the generic form both parse back to the same thing.
// RUN: galvatron-opt %s | galvatron-opt | FileCheck %s
// RUN: galvatron-opt %s --mlir-print-op-generic | galvatron-opt | FileCheck %s

// CHECK-LABEL: func.func @elementwise
func.func @elementwise(%a: tensor<2x8x64xf32>, %b: tensor<64xf32>, %i: tensor<2x8xi64>, %m: tensor<2x8xi1>) {
  // CHECK: galv.add %{{.*}}, %{{.*}} : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  %0 = galv.add %a, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.sub %{{.*}}, %{{.*}} : tensor<64xf32>, tensor<2x8x64xf32> -> tensor<2x8x64xf32>
  %1 = galv.sub %b, %a : tensor<64xf32>, tensor<2x8x64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.mul
  %2 = galv.mul %a, %a : tensor<2x8x64xf32>, tensor<2x8x64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.div
  %3 = galv.div %a, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.pow
  %4 = galv.pow %a, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.max
  %5 = galv.max %a, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.min
  %6 = galv.min %a, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.and %{{.*}}, %{{.*}} : tensor<2x8xi1>, tensor<2x8xi1> -> tensor<2x8xi1>
  %7 = galv.and %m, %m : tensor<2x8xi1>, tensor<2x8xi1> -> tensor<2x8xi1>
  // CHECK: galv.or
  %8 = galv.or %m, %m : tensor<2x8xi1>, tensor<2x8xi1> -> tensor<2x8xi1>
  // CHECK: galv.not %{{.*}} : tensor<2x8xi1>
  %9 = galv.not %m : tensor<2x8xi1>
  // CHECK: galv.compare lt %{{.*}}, %{{.*}} : tensor<2x8xi64>, tensor<2x8xi64> -> tensor<2x8xi1>
  %10 = galv.compare lt %i, %i : tensor<2x8xi64>, tensor<2x8xi64> -> tensor<2x8xi1>
  // CHECK: galv.compare eq
  %11 = galv.compare eq %a, %b : tensor<2x8x64xf32>, tensor<64xf32> -> tensor<2x8x64xi1>
  // CHECK: galv.neg %{{.*}} : tensor<2x8xi64>
  %12 = galv.neg %i : tensor<2x8xi64>
  // CHECK: galv.abs
  %13 = galv.abs %a : tensor<2x8x64xf32>
  // CHECK: galv.exp
  %14 = galv.exp %a : tensor<2x8x64xf32>
  // CHECK: galv.log
  %15 = galv.log %a : tensor<2x8x64xf32>
  // CHECK: galv.sqrt
  %16 = galv.sqrt %a : tensor<2x8x64xf32>
  // CHECK: galv.rsqrt
  %17 = galv.rsqrt %a : tensor<2x8x64xf32>
  // CHECK: galv.reciprocal
  %18 = galv.reciprocal %a : tensor<2x8x64xf32>
  // CHECK: galv.tanh
  %19 = galv.tanh %a : tensor<2x8x64xf32>
  // CHECK: galv.erf
  %20 = galv.erf %a : tensor<2x8x64xf32>
  // CHECK: galv.sigmoid
  %21 = galv.sigmoid %a : tensor<2x8x64xf32>
  // CHECK: galv.relu
  %22 = galv.relu %a : tensor<2x8x64xf32>
  // CHECK: galv.silu %{{.*}} : tensor<2x8x64xf32>
  %23 = galv.silu %a : tensor<2x8x64xf32>
  // CHECK: galv.gelu %{{.*}} : tensor<2x8x64xf32>
  %24 = galv.gelu %a : tensor<2x8x64xf32>
  // CHECK: galv.gelu %{{.*}} approximate = tanh : tensor<2x8x64xf32>
  %25 = galv.gelu %a approximate = tanh : tensor<2x8x64xf32>
  // CHECK: galv.where %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8xi1>, tensor<2x8xi64>, tensor<i64> -> tensor<2x8xi64>
  %c = galv.constant dense<0> : tensor<i64>
  %26 = galv.where %m, %i, %c : tensor<2x8xi1>, tensor<2x8xi64>, tensor<i64> -> tensor<2x8xi64>
  // CHECK: galv.cast %{{.*}} : tensor<2x8xi64> -> tensor<2x8xf32>
  %27 = galv.cast %i : tensor<2x8xi64> -> tensor<2x8xf32>
  // CHECK: galv.constant dense<1.000000e+00> : tensor<4xbf16>
  %28 = galv.constant dense<1.0> : tensor<4xbf16>
  return
}

// CHECK-LABEL: func.func @contractions
func.func @contractions(%q: tensor<2x4x8x16xf32>, %kt: tensor<4x16x8xf32>, %x: tensor<2x8x64xf32>, %w: tensor<192x64xf32>, %b: tensor<192xf32>, %w2: tensor<64x256xf32>) {
  // CHECK: galv.matmul %{{.*}}, %{{.*}} : tensor<2x4x8x16xf32>, tensor<4x16x8xf32> -> tensor<2x4x8x8xf32>
  %0 = galv.matmul %q, %kt : tensor<2x4x8x16xf32>, tensor<4x16x8xf32> -> tensor<2x4x8x8xf32>
  // CHECK: galv.linear %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8x64xf32>, tensor<192x64xf32>, tensor<192xf32> -> tensor<2x8x192xf32>
  %1 = galv.linear %x, %w, %b : tensor<2x8x64xf32>, tensor<192x64xf32>, tensor<192xf32> -> tensor<2x8x192xf32>
  // CHECK: galv.linear %{{.*}}, %{{.*}} layout = in_out : tensor<2x8x64xf32>, tensor<64x256xf32> -> tensor<2x8x256xf32>
  %2 = galv.linear %x, %w2 layout = in_out : tensor<2x8x64xf32>, tensor<64x256xf32> -> tensor<2x8x256xf32>
  // The default layout is elided.
  // CHECK: galv.linear %{{.*}}, %{{.*}} : tensor<2x8x64xf32>, tensor<192x64xf32> -> tensor<2x8x192xf32>
  %3 = galv.linear %x, %w layout = out_in : tensor<2x8x64xf32>, tensor<192x64xf32> -> tensor<2x8x192xf32>
  return
}

// CHECK-LABEL: func.func @shapes
func.func @shapes(%x: tensor<2x8x192xf32>, %y: tensor<2x1x8x16xf32>, %t: tensor<16x64xf32>, %i: tensor<2x8xi64>) {
  // CHECK: galv.reshape %{{.*}} : tensor<2x8x192xf32> -> tensor<2x8x12x16xf32>
  %0 = galv.reshape %x : tensor<2x8x192xf32> -> tensor<2x8x12x16xf32>
  // CHECK: galv.transpose %{{.*}} [0, 2, 1, 3] : tensor<2x8x12x16xf32> -> tensor<2x12x8x16xf32>
  %1 = galv.transpose %0 [0, 2, 1, 3] : tensor<2x8x12x16xf32> -> tensor<2x12x8x16xf32>
  // CHECK: galv.slice %{{.*}} [0, 0, 1] [2, 8, 192] [1, 1, 2] : tensor<2x8x192xf32> -> tensor<2x8x96xf32>
  %2 = galv.slice %x [0, 0, 1] [2, 8, 192] [1, 1, 2] : tensor<2x8x192xf32> -> tensor<2x8x96xf32>
  // CHECK: galv.concat %{{.*}}, %{{.*}} axis = -1 : tensor<2x8x96xf32>, tensor<2x8x192xf32> -> tensor<2x8x288xf32>
  %3 = galv.concat %2, %x axis = -1 : tensor<2x8x96xf32>, tensor<2x8x192xf32> -> tensor<2x8x288xf32>
  // CHECK: galv.split %{{.*}} axis = 2 sizes = [64, 64, 64] : tensor<2x8x192xf32> -> tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>
  %4:3 = galv.split %x axis = 2 sizes = [64, 64, 64] : tensor<2x8x192xf32> -> tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>
  // CHECK: galv.expand %{{.*}} : tensor<2x1x8x16xf32> -> tensor<2x4x8x16xf32>
  %5 = galv.expand %y : tensor<2x1x8x16xf32> -> tensor<2x4x8x16xf32>
  // CHECK: galv.gather %{{.*}}[%{{.*}}] axis = 0 : tensor<16x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
  %6 = galv.gather %t[%i] axis = 0 : tensor<16x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
  // CHECK: galv.gather %{{.*}}[%{{.*}}] axis = -1 : tensor<16x64xf32>, tensor<2x8xi64> -> tensor<16x2x8xf32>
  %7 = galv.gather %t[%i] axis = -1 : tensor<16x64xf32>, tensor<2x8xi64> -> tensor<16x2x8xf32>
  return
}

// CHECK-LABEL: func.func @reductions
func.func @reductions(%x: tensor<2x8x64xf32>, %g: tensor<64xf32>, %b: tensor<64xf32>) {
  // CHECK: galv.reduce mean %{{.*}} axes = [2] keepdims : tensor<2x8x64xf32> -> tensor<2x8x1xf32>
  %0 = galv.reduce mean %x axes = [2] keepdims : tensor<2x8x64xf32> -> tensor<2x8x1xf32>
  // CHECK: galv.reduce sum %{{.*}} axes = [0, 1, 2] : tensor<2x8x64xf32> -> tensor<f32>
  %1 = galv.reduce sum %x axes = [0, 1, 2] : tensor<2x8x64xf32> -> tensor<f32>
  // CHECK: galv.reduce max
  %2 = galv.reduce max %x axes = [1] : tensor<2x8x64xf32> -> tensor<2x64xf32>
  // CHECK: galv.reduce min
  %3 = galv.reduce min %x axes = [1] : tensor<2x8x64xf32> -> tensor<2x64xf32>
  // CHECK: galv.reduce prod
  %4 = galv.reduce prod %x axes = [] : tensor<2x8x64xf32> -> tensor<2x8x64xf32>
  // CHECK: galv.softmax %{{.*}} axis = -1 : tensor<2x8x64xf32>
  %5 = galv.softmax %x axis = -1 : tensor<2x8x64xf32>
  // CHECK: galv.layer_norm %{{.*}}, %{{.*}}, %{{.*}} eps = 1.000000e-05 : tensor<2x8x64xf32>, tensor<64xf32>, tensor<64xf32>
  %6 = galv.layer_norm %x, %g, %b eps = 1.0e-05 : tensor<2x8x64xf32>, tensor<64xf32>, tensor<64xf32>
  // CHECK: galv.layer_norm %{{.*}}, %{{.*}} eps = 9.9999999999999995E-7 : tensor<2x8x64xf32>, tensor<64xf32>
  %7 = galv.layer_norm %x, %g eps = 1.0e-06 : tensor<2x8x64xf32>, tensor<64xf32>
  // CHECK: galv.rms_norm %{{.*}}, %{{.*}} eps = 9.9999999999999995E-7 : tensor<2x8x64xf32>, tensor<64xf32>
  %8 = galv.rms_norm %x, %g eps = 1.0e-06 : tensor<2x8x64xf32>, tensor<64xf32>
  // CHECK: %{{.*}}, %{{.*}}, %{{.*}} = galv.layer_norm_grad %{{.*}}, %{{.*}}, %{{.*}} eps = 1.000000e-05 : tensor<2x8x64xf32>, tensor<64xf32>
  %9:3 = galv.layer_norm_grad %x, %g, %6 eps = 1.0e-05 : tensor<2x8x64xf32>, tensor<64xf32>
  // CHECK: %{{.*}}, %{{.*}} = galv.rms_norm_grad %{{.*}}, %{{.*}}, %{{.*}} eps = 9.9999999999999995E-7 : tensor<2x8x64xf32>, tensor<64xf32>
  %10:2 = galv.rms_norm_grad %x, %g, %8 eps = 1.0e-06 : tensor<2x8x64xf32>, tensor<64xf32>
  return
}

// CHECK-LABEL: func.func @transformer
func.func @transformer(%table: tensor<1000x64xf32>, %ids: tensor<2x8xi64>, %q: tensor<2x8x8x16xf32>, %k: tensor<2x2x8x16xf32>, %cos: tensor<8x16xf32>, %sin: tensor<8x16xf32>, %mask: tensor<2x1x1x8xf32>, %bmask: tensor<8x8xi1>, %logits: tensor<2x8x1000xf32>) {
  // CHECK: galv.embedding %{{.*}}[%{{.*}}] : tensor<1000x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
  %0 = galv.embedding %table[%ids] : tensor<1000x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
  // CHECK: galv.embedding_grad %{{.*}}[%{{.*}}] rows = 1000 : tensor<2x8x64xf32>, tensor<2x8xi64> -> tensor<1000x64xf32>
  %eg = galv.embedding_grad %0[%ids] rows = 1000 : tensor<2x8x64xf32>, tensor<2x8xi64> -> tensor<1000x64xf32>
  // CHECK: galv.embedding %{{.*}}[%{{.*}}] padding_idx = 1 : tensor<1000x64xf32>
  %p = galv.embedding %table[%ids] padding_idx = 1 : tensor<1000x64xf32>, tensor<2x8xi64> -> tensor<2x8x64xf32>
  // CHECK: galv.embedding_grad %{{.*}}[%{{.*}}] rows = 1000 padding_idx = 1500 vocab_group = <size = 2, stride = 1> : tensor<2x8x64xf32>
  %pg = galv.embedding_grad %p[%ids] rows = 1000 padding_idx = 1500 vocab_group = <size = 2, stride = 1> : tensor<2x8x64xf32>, tensor<2x8xi64> -> tensor<1000x64xf32>
  // CHECK: galv.rotary %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8x8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>
  %1 = galv.rotary %q, %cos, %sin : tensor<2x8x8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>
  // CHECK: galv.rotary %{{.*}}, %{{.*}}, %{{.*}} interleaved : tensor<2x2x8x16xf32>
  %2 = galv.rotary %k, %cos, %sin interleaved : tensor<2x2x8x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>
  // Grouped-query attention: 8 query heads share 2 key/value heads.
  // CHECK: galv.attention %{{.*}}, %{{.*}}, %{{.*}} causal scale = 2.500000e-01 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> -> tensor<2x8x8x16xf32>
  %3 = galv.attention %1, %2, %k causal scale = 0.25 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32> -> tensor<2x8x8x16xf32>
  // CHECK: galv.attention %{{.*}}, %{{.*}}, %{{.*}} mask %{{.*}} scale = 2.500000e-01 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x1x1x8xf32> -> tensor<2x8x8x16xf32>
  %4 = galv.attention %q, %k, %k mask %mask scale = 0.25 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x1x1x8xf32> -> tensor<2x8x8x16xf32>
  // CHECK: galv.attention %{{.*}}, %{{.*}}, %{{.*}} mask %{{.*}} causal scale
  %5 = galv.attention %q, %k, %k mask %bmask causal scale = 0.25 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<8x8xi1> -> tensor<2x8x8x16xf32>
  // Its gradient: dk and dv at the 2 key/value heads.
  // CHECK: galv.attention_grad %{{.*}}, %{{.*}}, %{{.*}} grad %{{.*}} causal scale = 2.500000e-01 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x8x8x16xf32>
  %g:3 = galv.attention_grad %1, %2, %k grad %3 causal scale = 0.25 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x8x8x16xf32>
  // CHECK: galv.attention_grad %{{.*}}, %{{.*}}, %{{.*}} grad %{{.*}} mask %{{.*}} causal scale = 2.500000e-01 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x8x8x16xf32>, tensor<8x8xi1>
  %h:3 = galv.attention_grad %q, %k, %k grad %5 mask %bmask causal scale = 0.25 : tensor<2x8x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x2x8x16xf32>, tensor<2x8x8x16xf32>, tensor<8x8xi1>
  // CHECK: galv.cross_entropy %{{.*}}, %{{.*}} : tensor<2x8x1000xf32>, tensor<2x8xi64> -> tensor<f32>
  %6 = galv.cross_entropy %logits, %ids : tensor<2x8x1000xf32>, tensor<2x8xi64> -> tensor<f32>
  // CHECK: galv.cross_entropy %{{.*}}, %{{.*}} reduction = sum ignore_index = 0 : tensor<2x8x1000xf32>, tensor<2x8xi64> -> tensor<f32>
  %7 = galv.cross_entropy %logits, %ids reduction = sum ignore_index = 0 : tensor<2x8x1000xf32>, tensor<2x8xi64> -> tensor<f32>
  // CHECK: galv.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x8x1000xf32>, tensor<2x8xi64>, tensor<f32>
  %dl = galv.cross_entropy_grad %logits, %ids, %6 : tensor<2x8x1000xf32>, tensor<2x8xi64>, tensor<f32>
  // CHECK: galv.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} reduction = sum ignore_index = 0 : tensor<2x8x1000xf32>, tensor<2x8xi64>, tensor<f32>
  %ds = galv.cross_entropy_grad %logits, %ids, %7 reduction = sum ignore_index = 0 : tensor<2x8x1000xf32>, tensor<2x8xi64>, tensor<f32>
  return
}

// The instructions of galv-schedule's stage functions, with the attributes
// galv-plan-memory sets.
// CHECK-LABEL: func.func @stage_program
// CHECK-SAME: attributes {galv.arena_bytes = 192 : i64, galv.stage = 1 : i64}
func.func @stage_program(%x: tensor<2x8xf32>) -> tensor<2x8xf32> attributes {galv.arena_bytes = 192 : i64, galv.stage = 1 : i64} {
  // CHECK: galv.recv from = 0 {galv.offsets = array<i64: 0>} : tensor<2x8xf32>
  %0 = galv.recv from = 0 {galv.offsets = array<i64: 0>} : tensor<2x8xf32>
  // CHECK: galv.send %{{.*}} to = 0 {galv.offsets = array<i64: 64>} : tensor<2x8xf32> -> tensor<1xf32>
  %1 = galv.send %0 to = 0 {galv.offsets = array<i64: 64>} : tensor<2x8xf32> -> tensor<1xf32>
  // CHECK: galv.copy %{{.*}} {galv.offsets = array<i64: 128>} : tensor<2x8xf32>
  %2 = galv.copy %x {galv.offsets = array<i64: 128>} : tensor<2x8xf32>
  return %2 : tensor<2x8xf32>
}

// The collectives of a partitioned program: each names its #galv.group,
// written without the #galv.group prefix.
// CHECK-LABEL: func.func @collectives
func.func @collectives(%x: tensor<4x8xf32>, %h: tensor<2x4x4x8xf32>) {
  // CHECK: galv.all_reduce sum %{{.*}} group = <size = 2, stride = 1> : tensor<4x8xf32>
  %0 = galv.all_reduce sum %x group = <size = 2, stride = 1> : tensor<4x8xf32>
  // CHECK: galv.all_reduce mean %{{.*}} group = <size = 4, stride = 2> : tensor<4x8xf32>
  %1 = galv.all_reduce mean %x group = <size = 4, stride = 2> : tensor<4x8xf32>
  // CHECK: galv.all_gather %{{.*}} axis = 0 group = <size = 2, stride = 2> scatter_grad : tensor<4x8xf32> -> tensor<8x8xf32>
  %2 = galv.all_gather %x axis = 0 group = <size = 2, stride = 2> scatter_grad : tensor<4x8xf32> -> tensor<8x8xf32>
  // CHECK: galv.reduce_scatter %{{.*}} axis = 1 group = <size = 4, stride = 1> : tensor<4x8xf32> -> tensor<4x2xf32>
  %3 = galv.reduce_scatter %x axis = 1 group = <size = 4, stride = 1> : tensor<4x8xf32> -> tensor<4x2xf32>
  // CHECK: galv.all_to_all %{{.*}} split = 1 concat = 2 group = <size = 2, stride = 1> : tensor<2x4x4x8xf32> -> tensor<2x2x8x8xf32>
  %4 = galv.all_to_all %h split = 1 concat = 2 group = <size = 2, stride = 1> : tensor<2x4x4x8xf32> -> tensor<2x2x8x8xf32>
  // CHECK: galv.shard_slice %{{.*}} axis = 0 group = <size = 2, stride = 2> : tensor<4x8xf32> -> tensor<2x8xf32>
  %5 = galv.shard_slice %x axis = 0 group = <size = 2, stride = 2> : tensor<4x8xf32> -> tensor<2x8xf32>
  // CHECK: galv.replicate %{{.*}} group = <size = 1, stride = 1> : tensor<4x8xf32>
  %6 = galv.replicate %x group = <size = 1, stride = 1> : tensor<4x8xf32>
  return
}

// A partitioned rank's reads: shards on parameters and inputs, and the
// gradient sync galv-adamw performs.
galv.parameter @qkv : tensor<8x24xf32> trainable
// A frozen parameter says why (the import's rule, a --frozen pattern).
// CHECK: galv.parameter @rotary.cos : tensor<8x4xf32> {galv.frozen = "--frozen 'cos'"}
galv.parameter @rotary.cos : tensor<8x4xf32> {galv.frozen = "--frozen 'cos'"}
// CHECK-LABEL: func.func @shards
// CHECK-SAME: (%{{.*}}: tensor<2x8xi64> {galv.shard = #galv.shard<cuts = [<axis = 0, group = <size = 2, stride = 2>>]>})
func.func @shards(%ids: tensor<2x8xi64> {galv.shard = #galv.shard<cuts = [<axis = 0, blocks = 1, group = <size = 2, stride = 2>>]>}) {
  // CHECK: galv.get_parameter @qkv shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>]> {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 2>>} : tensor<8x12xf32>
  %0 = galv.get_parameter @qkv shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>]> {galv.grad_sync = #galv.grad_sync<all_reduce, group = <size = 2, stride = 2>>} : tensor<8x12xf32>
  // ZeRO-3: the cut piece, flattened over the data-parallel group.
  // CHECK: galv.get_parameter @qkv shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>], flat = <size = 2, stride = 2>> : tensor<48xf32>
  %1 = galv.get_parameter @qkv shard <cuts = [<axis = 1, blocks = 3, group = <size = 2, stride = 1>>], flat = <size = 2, stride = 2>> : tensor<48xf32>
  // CHECK: galv.get_parameter @qkv shard <flat = <size = 4, stride = 1>> : tensor<48xf32>
  %2 = galv.get_parameter @qkv shard <flat = <size = 4, stride = 1>> : tensor<48xf32>
  // CHECK: galv.get_parameter @qkv {galv.grad_sync = #galv.grad_sync<reduce_scatter, group = <size = 4, stride = 1>>} : tensor<8x24xf32>
  %3 = galv.get_parameter @qkv {galv.grad_sync = #galv.grad_sync<reduce_scatter, group = <size = 4, stride = 1>>} : tensor<8x24xf32>
  return
}
