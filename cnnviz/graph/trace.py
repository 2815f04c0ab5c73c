"""torch.fx is the graph of record: every network cnnviz builds traces symbolically.

:func:`symbolic_graph` gives the ``torch.fx.GraphModule`` of a model; its ``call_module``
nodes name the leaf layers by the same dotted module paths as the layer table
(``b2.0.body.conv1``), in execution order, and its ``call_function`` nodes are the additions
of residual blocks and the concatenations of Inception and dense blocks. :func:`fx_shapes`
runs fx's shape propagation on the meta device: the reference the size arithmetic is tested
against. The Connections page's graph (:mod:`cnnviz.graph.connections`) is read from it,
and the Feature maps capture hooks its ``call_module`` paths.
"""
from __future__ import annotations

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from cnnviz.errors import Shape


def symbolic_graph(model: nn.Module) -> fx.GraphModule:
    """The model's fx graph (tracing runs no tensor code: a meta-device model is fine)."""
    return fx.symbolic_trace(model)


def module_path_order(graph: fx.GraphModule) -> list[str]:
    """The leaf layers' module paths in the order the forward pass calls them."""
    return [str(node.target) for node in graph.graph.nodes if node.op == "call_module"]


def fx_shapes(model: nn.Module, input_shape: Shape) -> dict[str, Shape]:
    """Each fx node's output shape for one input ``(C, H, W)`` (batch excluded), found by
    fx's ShapeProp on the meta device; ``call_module`` nodes are keyed by module path, the
    rest by node name (``add``, ``cat_1``…). Raises RuntimeError where PyTorch cannot run it.

    ``model`` must be on the meta device (:func:`cnnviz.models.build_meta`). The batch holds
    two examples, so BatchNorm in training mode has more than one value per channel.
    """
    graph = symbolic_graph(model)
    ShapeProp(graph).propagate(torch.empty(2, *input_shape, device="meta"))
    shapes: dict[str, Shape] = {}
    for node in graph.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if node.op == "output" or meta is None:
            continue
        key = str(node.target) if node.op == "call_module" else node.name
        shapes[key] = tuple(meta.shape[1:])
    return shapes
