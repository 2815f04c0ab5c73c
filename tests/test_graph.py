"""torch.fx is the graph of record: every preset and every generated spec of every family traces,
its module paths are the layer table's names, and the size arithmetic equals fx's shape
propagation on the meta device and real forward passes."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnviz.errors import ShapeError, SpecError
from cnnviz.graph.trace import fx_shapes, module_path_order, symbolic_graph
from cnnviz.models import build, build_meta
from cnnviz.models.arithmetic import output_shape, trace
from cnnviz.presets import PRESETS
from tests.strategies import FAMILY_STRATEGIES


def _check_against_fx(spec, size: int) -> None:
    """At a size the arithmetic accepts: same leaf layers, same order, same shapes as fx."""
    model = build_meta(spec)
    shape = (spec.in_channels, size, size)
    rows = trace(model, shape)
    leaves = [r for r in rows if r.is_leaf]
    assert module_path_order(symbolic_graph(model)) == [r.name for r in leaves]
    by_fx = fx_shapes(model, shape)
    assert {r.name: r.output_shape for r in leaves} == {r.name: by_fx[r.name] for r in leaves}
    assert by_fx[next(reversed(by_fx))] == output_shape(model, shape)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_traces_with_fx_and_its_shapes_are_the_arithmetics(name):
    spec = PRESETS[name].spec
    _check_against_fx(spec, spec.input_size)


def test_a_network_that_cannot_run_raises_naming_its_node_and_prints_nothing(capfd):
    model = build_meta(PRESETS["notes-alexnet"].spec)  # Linear(6400) after Flatten: one band
    with pytest.raises(RuntimeError, match=r"ShapeProp error for: node=.*call_module.*reduction dim"):
        fx_shapes(model, (1, 300, 300))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_fx_graph_shows_additions_and_concatenations():
    """The operations the connections view draws are nodes of the fx graph."""
    ops = {name: [str(n.target.__name__) for n in symbolic_graph(build_meta(PRESETS[name].spec))
                  .graph.nodes if n.op == "call_function"]
           for name in ("resnet18", "densenet", "googlenet", "vgg")}
    assert ops["resnet18"].count("add") == 8      # one per residual block
    assert ops["densenet"].count("cat") == 16     # one per conv block of the 4 dense blocks
    assert ops["googlenet"].count("cat") == 9     # one per Inception block
    assert ops["vgg"] == []                       # a plain chain


def _real_forward(model: torch.nn.Module, channels: int, n: int):
    """The output shape of a real CPU forward pass at n×n, or None where PyTorch refuses."""
    try:
        with torch.no_grad():
            return tuple(model(torch.zeros(2, channels, n, n)).shape[1:])
    except (RuntimeError, ValueError):
        return None


def _arithmetic(model: torch.nn.Module, channels: int, n: int):
    try:
        return output_shape(model, (channels, n, n))
    except ShapeError:
        return None


@pytest.mark.parametrize("family", list(FAMILY_STRATEGIES))
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_specs_trace_and_match_real_forward_passes(family, data):
    spec = data.draw(FAMILY_STRATEGIES[family], label="spec")
    try:
        model = build(spec).eval()
    except SpecError as exc:
        # Families that size their first Linear from input_size refuse sizes that are too small
        # for their convolutions; nothing else may fail to build.
        assert [p.path for p in exc.problems] == ["input_size"], exc
        assume(False)
    assert type(model) is torch.nn.Sequential
    symbolic_graph(build_meta(spec))  # every generated spec traces
    other = data.draw(st.integers(1, 96), label="other size")
    for n in (spec.input_size, other):
        by_arithmetic = _arithmetic(model, spec.in_channels, n)
        assert by_arithmetic == _real_forward(model, spec.in_channels, n), n
        if by_arithmetic is not None:
            _check_against_fx(spec, n)


def test_traces_take_turns_and_other_threads_run_untouched_beside_them():
    """fx patches torch.nn.Module for the whole process while it traces: a class on one server
    traced in one session while another trained or traced (found under load, issue 12)."""
    import threading

    traced = {name: build(PRESETS[name].spec, device="meta")
              for name in ("lenet", "resnet18", "googlenet", "densenet")}
    alone = {name: module_path_order(symbolic_graph(m)) for name, m in traced.items()}
    other = build(PRESETS["lenet"].spec)
    hooked = []
    other.b1.register_forward_hook(lambda *args: hooked.append(1))
    stop, failures, graphs = threading.Event(), [], []

    def trace_all():
        while not stop.is_set():
            for name, model in traced.items():
                try:
                    graphs.append(module_path_order(symbolic_graph(model)) == alone[name])
                except Exception as exc:  # noqa: BLE001 - counted, then asserted on
                    failures.append(f"trace {name}: {type(exc).__name__}: {exc}")

    tracers = [threading.Thread(target=trace_all) for _ in range(2)]
    for t in tracers:
        t.start()
    x = torch.randn(4, 1, 28, 28)
    try:
        for _ in range(300):
            try:
                other(x)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"forward: {type(exc).__name__}: {exc}")
    finally:
        stop.set()
        for t in tracers:
            t.join()
    assert failures == []
    assert len(hooked) == 300  # the other thread's hooks still ran (the capture relies on them)
    assert graphs and all(graphs)
    other(x)  # and nothing is left patched
