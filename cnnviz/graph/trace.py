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

import threading

import torch
from torch import fx, nn

from cnnviz.errors import Shape


# fx patches torch.nn.Module.__call__ and __getattr__ for the whole process while it traces
# (torch 2.14). With a class on one server, two traces at once (two students opening
# Connections) restored each other's patches out of order, and another thread's forward pass
# (a run training, a Feature maps capture) entered the tracer and failed with "module is not
# installed as a submodule" (found by tests/test_browser_load.py). So traces take turns, and
# the tracer lets every other thread's module calls and attribute reads pass through.
_TRACING = threading.Lock()


class ThreadTracer(fx.Tracer):
    """fx's tracer for the thread that traces only: other threads' module calls (hooks
    included: ``forward`` is the original ``Module.__call__``) and attribute reads pass
    through as if nothing were patched."""

    def trace(self, root, concrete_args=None):
        with _TRACING:
            self._thread = threading.get_ident()
            return super().trace(root, concrete_args)

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def symbolic_graph(model: nn.Module) -> fx.GraphModule:
    """The model's fx graph (tracing runs no tensor code: a meta-device model is fine); safe
    beside other threads' traces and forward passes (see :class:`ThreadTracer`)."""
    tracer = ThreadTracer()
    graph = tracer.trace(model)
    return fx.GraphModule(tracer.root, graph, model.__class__.__name__)


def module_path_order(graph: fx.GraphModule) -> list[str]:
    """The leaf layers' module paths in the order the forward pass calls them."""
    return [str(node.target) for node in graph.graph.nodes if node.op == "call_module"]


class _Shapes(fx.Interpreter):
    """Runs the graph and keeps each node's output shape: fx's ShapeProp without its habit of
    printing a traceback to the server's log for a network that cannot run."""

    def __init__(self, graph: fx.GraphModule):
        super().__init__(graph)
        self.shapes: dict[fx.Node, tuple[int, ...]] = {}

    def run_node(self, n: fx.Node):
        try:
            result = super().run_node(n)
        except Exception as exc:  # noqa: BLE001 - said as one error naming the node
            raise RuntimeError(f"ShapeProp error for: node={n.format_node()}: {exc}") from exc
        if isinstance(result, torch.Tensor):
            self.shapes[n] = tuple(result.shape)
        return result


def fx_shapes(model: nn.Module, input_shape: Shape) -> dict[str, Shape]:
    """Each fx node's output shape for one input ``(C, H, W)`` (batch excluded), found by
    running the fx graph on the meta device; ``call_module`` nodes are keyed by module path,
    the rest by node name (``add``, ``cat_1``…). Raises RuntimeError where PyTorch cannot run
    it (and prints nothing).

    ``model`` must be on the meta device (:func:`cnnviz.models.build_meta`). The batch holds
    two examples, so BatchNorm in training mode has more than one value per channel.
    """
    graph = symbolic_graph(model)
    run = _Shapes(graph)
    run.run(torch.empty(2, *input_shape, device="meta"))
    shapes: dict[str, Shape] = {}
    for node in graph.graph.nodes:
        shape = run.shapes.get(node)
        if node.op == "output" or shape is None:
            continue
        key = str(node.target) if node.op == "call_module" else node.name
        shapes[key] = shape[1:]
    return shapes
