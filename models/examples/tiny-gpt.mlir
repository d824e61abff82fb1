// A two-layer GPT-2-shaped model written by hand in the galv dialect: the form
// the ONNX importer produces after recomposition and layer outlining.
// batch 2, sequence 8, hidden 32, 4 heads of 8, MLP 128, vocabulary 64.
module attributes {
  galv.weights = "tiny-gpt.safetensors",
  galv.plan = #galv.plan<world_size = 4, pp = 2, pp_division = [1, 1],
                         chunks = 2, global_batch = 8,
                         schedule = pipedream_flush, vocab_tp = 2>
} {
  galv.parameter @transformer.wte.weight : tensor<64x32xf32> trainable
  galv.parameter @transformer.wpe.weight : tensor<8x32xf32> trainable
  galv.parameter @transformer.ln_f.weight : tensor<32xf32> trainable
  galv.parameter @transformer.ln_f.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.0.ln_1.weight : tensor<32xf32> trainable
  galv.parameter @transformer.h.0.ln_1.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.0.attn.c_attn.weight : tensor<32x96xf32> trainable
  galv.parameter @transformer.h.0.attn.c_attn.bias : tensor<96xf32> trainable
  galv.parameter @transformer.h.0.attn.c_proj.weight : tensor<32x32xf32> trainable
  galv.parameter @transformer.h.0.attn.c_proj.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.0.ln_2.weight : tensor<32xf32> trainable
  galv.parameter @transformer.h.0.ln_2.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.0.mlp.c_fc.weight : tensor<32x128xf32> trainable
  galv.parameter @transformer.h.0.mlp.c_fc.bias : tensor<128xf32> trainable
  galv.parameter @transformer.h.0.mlp.c_proj.weight : tensor<128x32xf32> trainable
  galv.parameter @transformer.h.0.mlp.c_proj.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.1.ln_1.weight : tensor<32xf32> trainable
  galv.parameter @transformer.h.1.ln_1.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.1.attn.c_attn.weight : tensor<32x96xf32> trainable
  galv.parameter @transformer.h.1.attn.c_attn.bias : tensor<96xf32> trainable
  galv.parameter @transformer.h.1.attn.c_proj.weight : tensor<32x32xf32> trainable
  galv.parameter @transformer.h.1.attn.c_proj.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.1.ln_2.weight : tensor<32xf32> trainable
  galv.parameter @transformer.h.1.ln_2.bias : tensor<32xf32> trainable
  galv.parameter @transformer.h.1.mlp.c_fc.weight : tensor<32x128xf32> trainable
  galv.parameter @transformer.h.1.mlp.c_fc.bias : tensor<128xf32> trainable
  galv.parameter @transformer.h.1.mlp.c_proj.weight : tensor<128x32xf32> trainable
  galv.parameter @transformer.h.1.mlp.c_proj.bias : tensor<32xf32> trainable

  // One GPT-2 block: pre-LN attention and MLP, each with a residual.
  galv.layer_type @gpt2_block(
      %x: tensor<2x8x32xf32>,
      %ln1_w: tensor<32xf32>, %ln1_b: tensor<32xf32>,
      %qkv_w: tensor<32x96xf32>, %qkv_b: tensor<96xf32>,
      %proj_w: tensor<32x32xf32>, %proj_b: tensor<32xf32>,
      %ln2_w: tensor<32xf32>, %ln2_b: tensor<32xf32>,
      %fc_w: tensor<32x128xf32>, %fc_b: tensor<128xf32>,
      %fc2_w: tensor<128x32xf32>, %fc2_b: tensor<32xf32>) -> tensor<2x8x32xf32>
      attributes {
        kind = #galv.layer_kind<decoder>,
        param_names = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight",
                       "attn.c_attn.bias", "attn.c_proj.weight",
                       "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                       "mlp.c_fc.weight", "mlp.c_fc.bias",
                       "mlp.c_proj.weight", "mlp.c_proj.bias"],
        cost = #galv.cost<forward_ms = 0.012, backward_ratio = 2.0,
                          parameter_bytes = 50816, tp_degrees = [1, 2],
                          activation_bytes = [28672, 16384],
                          checkpoint_bytes = 1024>} {
    %h = galv.layer_norm %x, %ln1_w, %ln1_b eps = 1.0e-05 : tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>
    %qkv = galv.linear %h, %qkv_w, %qkv_b layout = in_out : tensor<2x8x32xf32>, tensor<32x96xf32>, tensor<96xf32> -> tensor<2x8x96xf32>
    %q, %k, %v = galv.split %qkv axis = 2 sizes = [32, 32, 32] : tensor<2x8x96xf32> -> tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>
    %q4 = galv.reshape %q : tensor<2x8x32xf32> -> tensor<2x8x4x8xf32>
    %k4 = galv.reshape %k : tensor<2x8x32xf32> -> tensor<2x8x4x8xf32>
    %v4 = galv.reshape %v : tensor<2x8x32xf32> -> tensor<2x8x4x8xf32>
    %qh = galv.transpose %q4 [0, 2, 1, 3] : tensor<2x8x4x8xf32> -> tensor<2x4x8x8xf32>
    %kh = galv.transpose %k4 [0, 2, 1, 3] : tensor<2x8x4x8xf32> -> tensor<2x4x8x8xf32>
    %vh = galv.transpose %v4 [0, 2, 1, 3] : tensor<2x8x4x8xf32> -> tensor<2x4x8x8xf32>
    %o = galv.attention %qh, %kh, %vh causal scale = 0.35355339059327373 : tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32>, tensor<2x4x8x8xf32> -> tensor<2x4x8x8xf32>
    %ot = galv.transpose %o [0, 2, 1, 3] : tensor<2x4x8x8xf32> -> tensor<2x8x4x8xf32>
    %o3 = galv.reshape %ot : tensor<2x8x4x8xf32> -> tensor<2x8x32xf32>
    %a = galv.linear %o3, %proj_w, %proj_b layout = in_out : tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
    %r1 = galv.add %x, %a : tensor<2x8x32xf32>, tensor<2x8x32xf32> -> tensor<2x8x32xf32>
    %h2 = galv.layer_norm %r1, %ln2_w, %ln2_b eps = 1.0e-05 : tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>
    %f = galv.linear %h2, %fc_w, %fc_b layout = in_out : tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<128xf32> -> tensor<2x8x128xf32>
    %g = galv.gelu %f approximate = tanh : tensor<2x8x128xf32>
    %m = galv.linear %g, %fc2_w, %fc2_b layout = in_out : tensor<2x8x128xf32>, tensor<128x32xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
    %r2 = galv.add %r1, %m : tensor<2x8x32xf32>, tensor<2x8x32xf32> -> tensor<2x8x32xf32>
    galv.return %r2 : tensor<2x8x32xf32>
  }

  func.func @forward(%ids: tensor<2x8xi64>) -> tensor<2x8x64xf32> {
    %wte = galv.get_parameter @transformer.wte.weight : tensor<64x32xf32>
    %wpe = galv.get_parameter @transformer.wpe.weight : tensor<8x32xf32>
    %tok = galv.embedding %wte[%ids] : tensor<64x32xf32>, tensor<2x8xi64> -> tensor<2x8x32xf32>
    %h0 = galv.add %tok, %wpe : tensor<2x8x32xf32>, tensor<8x32xf32> -> tensor<2x8x32xf32>

    %a0 = galv.get_parameter @transformer.h.0.ln_1.weight : tensor<32xf32>
    %a1 = galv.get_parameter @transformer.h.0.ln_1.bias : tensor<32xf32>
    %a2 = galv.get_parameter @transformer.h.0.attn.c_attn.weight : tensor<32x96xf32>
    %a3 = galv.get_parameter @transformer.h.0.attn.c_attn.bias : tensor<96xf32>
    %a4 = galv.get_parameter @transformer.h.0.attn.c_proj.weight : tensor<32x32xf32>
    %a5 = galv.get_parameter @transformer.h.0.attn.c_proj.bias : tensor<32xf32>
    %a6 = galv.get_parameter @transformer.h.0.ln_2.weight : tensor<32xf32>
    %a7 = galv.get_parameter @transformer.h.0.ln_2.bias : tensor<32xf32>
    %a8 = galv.get_parameter @transformer.h.0.mlp.c_fc.weight : tensor<32x128xf32>
    %a9 = galv.get_parameter @transformer.h.0.mlp.c_fc.bias : tensor<128xf32>
    %a10 = galv.get_parameter @transformer.h.0.mlp.c_proj.weight : tensor<128x32xf32>
    %a11 = galv.get_parameter @transformer.h.0.mlp.c_proj.bias : tensor<32xf32>
    %h1 = galv.layer @gpt2_block(%h0) params(%a0, %a1, %a2, %a3, %a4, %a5, %a6, %a7, %a8, %a9, %a10, %a11)
        {strategy = #galv.strategy<tp = 2, dp = 1, sp = megatron>}
        : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x96xf32>, tensor<96xf32>, tensor<32x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x128xf32>, tensor<128xf32>, tensor<128x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>

    %b0 = galv.get_parameter @transformer.h.1.ln_1.weight : tensor<32xf32>
    %b1 = galv.get_parameter @transformer.h.1.ln_1.bias : tensor<32xf32>
    %b2 = galv.get_parameter @transformer.h.1.attn.c_attn.weight : tensor<32x96xf32>
    %b3 = galv.get_parameter @transformer.h.1.attn.c_attn.bias : tensor<96xf32>
    %b4 = galv.get_parameter @transformer.h.1.attn.c_proj.weight : tensor<32x32xf32>
    %b5 = galv.get_parameter @transformer.h.1.attn.c_proj.bias : tensor<32xf32>
    %b6 = galv.get_parameter @transformer.h.1.ln_2.weight : tensor<32xf32>
    %b7 = galv.get_parameter @transformer.h.1.ln_2.bias : tensor<32xf32>
    %b8 = galv.get_parameter @transformer.h.1.mlp.c_fc.weight : tensor<32x128xf32>
    %b9 = galv.get_parameter @transformer.h.1.mlp.c_fc.bias : tensor<128xf32>
    %b10 = galv.get_parameter @transformer.h.1.mlp.c_proj.weight : tensor<128x32xf32>
    %b11 = galv.get_parameter @transformer.h.1.mlp.c_proj.bias : tensor<32xf32>
    %h2 = galv.layer @gpt2_block(%h1) params(%b0, %b1, %b2, %b3, %b4, %b5, %b6, %b7, %b8, %b9, %b10, %b11)
        {strategy = #galv.strategy<tp = 1, dp = 2, dp_kind = zero3, checkpoint = true, stage = 1>}
        : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x96xf32>, tensor<96xf32>, tensor<32x32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32xf32>, tensor<32x128xf32>, tensor<128xf32>, tensor<128x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>

    %lnf_w = galv.get_parameter @transformer.ln_f.weight : tensor<32xf32>
    %lnf_b = galv.get_parameter @transformer.ln_f.bias : tensor<32xf32>
    %hf = galv.layer_norm %h2, %lnf_w, %lnf_b eps = 1.0e-05 : tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>
    // The head shares the token embedding (weight tying).
    %logits = galv.linear %hf, %wte : tensor<2x8x32xf32>, tensor<64x32xf32> -> tensor<2x8x64xf32>
    return %logits : tensor<2x8x64xf32>
  }
}
