//===- Passes.td - galv pass declarations ------------------*- tablegen -*-===//

#ifndef GALVATRON_TRANSFORMS_PASSES_TD
#define GALVATRON_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def InlineLayers : Pass<"galv-inline-layers", "::mlir::ModuleOp"> {
  let summary = "Inline every layer instance into its caller";
  let description = [{
    Replaces each `galv.layer` with a copy of its layer type's body, the layer
    type's arguments bound to the instance's inputs and parameters, and then
    erases the layer types nobody calls any more. The result is a flat graph,
    the form that per-op analyses and the reference interpreter want. The
    instances' strategies and the module's `galv.plan` describe layers, so they
    go with them: run this before a strategy is assigned or after the passes
    that consume it.

    Before:

    ```mlir
    galv.layer_type @block(%x: tensor<4xf32>, %w: tensor<4xf32>) -> tensor<4xf32>
        attributes {kind = #galv.layer_kind<decoder>, param_names = ["w"]} {
      %y = galv.mul %x, %w : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
      galv.return %y : tensor<4xf32>
    }
    func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
      %w = galv.get_parameter @w0 : tensor<4xf32>
      %y = galv.layer @block(%x) params(%w) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
      return %y : tensor<4xf32>
    }
    ```

    After:

    ```mlir
    func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
      %w = galv.get_parameter @w0 : tensor<4xf32>
      %y = galv.mul %x, %w : tensor<4xf32>, tensor<4xf32> -> tensor<4xf32>
      return %y : tensor<4xf32>
    }
    ```
  }];
  let dependentDialects = ["::mlir::galv::GalvDialect"];
  let options = [
    Option<"keepLayerTypes", "keep-layer-types", "bool", /*default=*/"false",
           "Keep layer types after their last instance is inlined">
  ];
}

#endif // GALVATRON_TRANSFORMS_PASSES_TD
