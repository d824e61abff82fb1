"""Drops the dynamo exporter's per-node debugging metadata from ONNX files.

torch.onnx.export(..., dynamo=True) annotates every node with its Python
stack trace, FX node, class hierarchy and namespace: most of a small
export's bytes, and the traces name the exporting machine's files. The
importer reads only `pkg.torch.onnx.name_scopes` (a node's module scope,
for its location), which is kept; the graph is untouched.

usage: python3 models/strip_node_metadata.py MODEL.onnx...
"""
import sys

import onnx

KEPT = {"pkg.torch.onnx.name_scopes"}


def nodes(graph):
    """Yield all nodes in graph, including subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from nodes(g)


def strip(path):
    """Rewrites `path` in place; returns (bytes before, bytes after)."""
    model = onnx.load(str(path), load_external_data=False)
    before = model.ByteSize()
    for node in nodes(model.graph):
        kept = [p for p in node.metadata_props if p.key in KEPT]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(model, str(path))
    return before, model.ByteSize()


def main(argv):
    for path in argv:
        before, after = strip(path)
        print(f"{path}: {before} -> {after} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
