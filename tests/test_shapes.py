"""The layer table against torchinfo, the arithmetic text, non-square sizes, diagnoses."""
from __future__ import annotations

import pytest
import torch
import torchinfo
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.errors import ShapeError, SpecError
from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.models.arithmetic import output_shape, trace, trace_until_failure
from cnnviz.shapes.summary import parse_size, summarize, summarize_until_failure
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from tests.strategies import custom_specs


@pytest.mark.parametrize("name", list(PRESETS))
def test_summary_equals_torchinfo(name):
    spec = PRESETS[name].spec
    ours = summarize(spec)
    reference = torchinfo.summary(build(spec, "meta"), input_size=ours.input_shape,
                                  device="meta", verbose=0, depth=100)
    leaves = [row for row in reference.summary_list if row.is_leaf_layer]
    assert [(r.class_name, list(r.output_size), r.num_params, r.macs) for r in leaves] == [
        (r.type, [1, *r.output_shape], r.params, r.mult_adds) for r in ours.layers]
    assert [_pair(r.kernel_size) for r in leaves] == [r.kernel for r in ours.layers]
    assert ours.total_params == reference.total_params
    assert ours.trainable_params == reference.trainable_params
    assert ours.mult_adds == reference.total_mult_adds
    assert ours.forward_backward_bytes == reference.total_output_bytes
    assert ours.param_bytes == reference.total_param_bytes


def _pair(kernel):
    if not kernel:
        return None
    return (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)


def where_pytorch_fails(model: torch.nn.Module, shape: tuple[int, int, int]) -> str:
    """The dotted path of the innermost module whose forward PyTorch entered but never left on
    a 1×C×H×W input: where a real forward pass fails. Fails if the forward runs."""
    entered: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(
                lambda _m, _i, key=name: entered.append(key)))
            handles.append(module.register_forward_hook(
                lambda _m, _i, _o, key=name: entered.remove(key)))
    try:
        with pytest.raises((RuntimeError, ValueError)), torch.no_grad():
            model(torch.zeros(1, *shape))
    finally:
        for handle in handles:
            handle.remove()
    assert entered, "PyTorch failed outside every layer"
    return entered[-1]


@settings(max_examples=40)
@given(custom_specs())
def test_traced_shapes_equal_a_real_forward_pass(spec):
    """Every module's output shape from the arithmetic equals the real one, hook by hook."""
    model = build(spec).eval()
    size = spec.input_size
    try:
        rows = trace(model, (spec.in_channels, size, size))
    except ShapeError as exc:
        # PyTorch fails too, and in the layer the arithmetic names
        assert where_pytorch_fails(model, (spec.in_channels, size, size)) == exc.layer
        return
    real = {}
    for name, module in model.named_modules():
        if name:
            module.register_forward_hook(
                lambda _m, _i, out, key=name: real.__setitem__(key, tuple(out.shape[1:])))
    with torch.no_grad():
        model(torch.zeros(1, spec.in_channels, size, size))
    assert {r.name: r.output_shape for r in rows} == real


@settings(max_examples=60)
@given(custom_specs(), st.integers(1, 40), st.integers(1, 40))
def test_non_square_arithmetic_agrees_with_pytorch(spec, height, width):
    model = build(spec).eval()
    try:
        shape = output_shape(model, (spec.in_channels, height, width))
    except ShapeError as exc:
        assert where_pytorch_fails(model, (spec.in_channels, height, width)) == exc.layer
        return
    with torch.no_grad():
        assert tuple(model(torch.zeros(1, spec.in_channels, height, width)).shape[1:]) == shape


@settings(max_examples=25)
@given(custom_specs())
def test_summary_equals_torchinfo_on_random_networks(spec):
    try:
        ours = summarize(spec)
    except ShapeError as exc:
        # torchinfo cannot run it either, and PyTorch stops in the layer the summary names
        with pytest.raises(RuntimeError, match="Failed to run torchinfo"):
            torchinfo.summary(build(spec, "meta"), input_size=(1, spec.in_channels,
                                                               spec.input_size,
                                                               spec.input_size),
                              device="meta", verbose=0)
        size = (spec.in_channels, spec.input_size, spec.input_size)
        assert where_pytorch_fails(build(spec).eval(), size) == exc.layer
        return
    reference = torchinfo.summary(build(spec, "meta"), input_size=ours.input_shape,
                                  device="meta", verbose=0, depth=100)
    leaves = [row for row in reference.summary_list if row.is_leaf_layer]
    assert [(r.class_name, list(r.output_size), r.num_params, r.macs) for r in leaves] == [
        (r.type, [1, *r.output_shape], r.params, r.mult_adds) for r in ours.layers]
    assert (ours.total_params, ours.mult_adds) == (reference.total_params,
                                                   reference.total_mult_adds)


def test_arithmetic_is_written_out_with_the_layers_numbers():
    rows = {r.name: r for r in summarize(PRESETS["notes-alexnet"].spec).rows}
    assert rows["0"].arithmetic == "⌊(224 + 2·1 − 11) / 4⌋ + 1 = 54"
    assert rows["2"].arithmetic == "⌊(54 − 3) / 2⌋ + 1 = 26"
    assert rows["3"].arithmetic == "⌊(26 + 2·2 − 5) / 1⌋ + 1 = 26"
    assert rows["11"].arithmetic == "256·5·5 = 6400"
    assert rows["12"].arithmetic == "6400 → 4096"


def test_ceil_mode_and_dilation_arithmetic():
    spec = CustomSpec(1, 10, 10, (L.Conv(2, 3, dilation=2), L.MaxPool(3, 2, 1, ceil_mode=True)))
    rows = summarize(spec).layers
    assert rows[0].arithmetic == "⌊(10 − 2·(3 − 1) − 1) / 1⌋ + 1 = 6"
    assert rows[1].arithmetic == "⌈(6 + 2·1 − 3) / 2⌉ + 1 = 4"
    # ⌈(5 + 2 − 2) / 2⌉ + 1 = 4, but the fourth window would start in the padding.
    edge = CustomSpec(1, 10, 5, (L.AvgPool(2, 2, 1, ceil_mode=True),))
    assert summarize(edge).layers[0].arithmetic == (
        "⌈(5 + 2·1 − 2) / 2⌉ + 1 − 1 (the last window would start in the padding) = 3")
    with torch.no_grad():
        assert build(spec)(torch.zeros(1, 1, 10, 10)).shape == (1, 2, 4, 4)
        assert build(edge)(torch.zeros(1, 1, 5, 5)).shape == (1, 1, 3, 3)


def test_non_square_sizes():
    s = summarize(PRESETS["nin"].spec, (224, 320))
    assert s.input_shape == (1, 1, 224, 320)
    first = s.layers[0]
    assert first.output_shape == (96, 54, 78)
    assert first.arithmetic == "H: ⌊(224 − 11) / 4⌋ + 1 = 54; W: ⌊(320 − 11) / 4⌋ + 1 = 78"
    with torch.no_grad():
        assert build(PRESETS["nin"].spec).eval()(torch.zeros(1, 1, 224, 320)).shape == (1, 10)


def test_summary_rows_nest_blocks_and_sum_their_leaves():
    s = summarize(PRESETS["resnet18"].spec)
    stages = [r for r in s.rows if r.depth == 1]
    assert [r.name for r in stages] == ["b1", "b2", "b3", "b4", "b5", "head"]
    assert sum(r.params for r in stages) == s.total_params == 11_178_378
    assert sum(r.mult_adds for r in stages) == s.mult_adds
    residual = next(r for r in s.rows if r.name == "b3.0")
    assert residual.type == "Residual" and not residual.is_leaf
    assert [r.name for r in s.rows if r.name.startswith("b3.0.")][:3] == [
        "b3.0.body", "b3.0.body.conv1", "b3.0.body.bn1"]


def test_json_follows_the_contract():
    data = summarize(PRESETS["lenet"].spec).to_json()
    assert list(data) == ["input_shape", "layers", "total_params", "mult_adds"]
    assert data["input_shape"] == [1, 1, 28, 28]
    assert data["layers"][0] == {"name": "b1.0", "type": "Conv2d",
                                 "output_shape": [1, 6, 28, 28], "params": 156}
    assert data["layers"][-1]["output_shape"] == [1, 10]
    assert data["total_params"] == 61_706


@pytest.mark.parametrize("size, layer, reason", [
    (100, "12", "expects 6400 input features but gets 1024 (256×2×2 after Flatten)"),
    (8, "0", "input 8×8 (padded to 10×10) is smaller than kernel 11"),
    (30, "5", "input 2×2 is smaller than kernel 3"),
])
def test_failures_name_the_layer_and_the_arithmetic(size, layer, reason):
    with pytest.raises(ShapeError) as info:
        summarize(PRESETS["notes-alexnet"].spec, size)
    assert (info.value.layer, info.value.reason) == (layer, reason)
    with pytest.raises(RuntimeError):  # and PyTorch agrees that it fails
        build(PRESETS["notes-alexnet"].spec, "meta")(torch.empty(1, 1, size, size,
                                                                 device="meta"))


def test_shape_arithmetic_is_cheap_and_needs_no_weights():
    model = build(PRESETS["densenet121-imagenet"].spec, "meta")
    assert output_shape(model, (3, 224, 224)) == (1000,)


@pytest.mark.parametrize("text, expected", [("224", (224, 224)), ("96x128", (96, 128)),
                                            ("96×128", (96, 128)), ("7X9", (7, 9))])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-3", "3x", "x3", "1x2x3", "abc", "2.5"])
def test_parse_size_rejects(text):
    with pytest.raises(SpecError):
        parse_size(text)


def test_custom_output_not_matching_num_classes_is_noted():
    s = summarize(CustomSpec(1, 10, 8, (L.Conv(4, 3),)))
    assert s.warnings == ["the output is a 4×6×6 feature map, not 10 class scores: end with "
                          "global average pooling and flatten, or flatten and linear"]
    s = summarize(CustomSpec(1, 10, 8, (L.Flatten(), L.Linear(64, 7))))
    assert s.warnings == ["the output has 7 values but num_classes is 10"]
    assert summarize(PRESETS["lenet"].spec).warnings == []


@pytest.mark.parametrize("size, failing", [(100, "12"), (8, "0"), (30, "5")])
def test_a_network_that_stops_keeps_its_rows_up_to_the_failing_layer(size, failing):
    spec = PRESETS["notes-alexnet"].spec
    s = summarize_until_failure(spec, size)
    assert s.failure is not None and s.failure.layer == failing
    assert s.failing_row is s.rows[-1] and s.failing_row.name == failing
    assert s.failing_row.output_shape == ()  # it never produced one
    # the rows before it are those a working size gives, with the shapes at this size
    assert [r.name for r in s.rows] == [str(i) for i in range(int(failing) + 1)]
    with torch.no_grad():
        x = torch.zeros(1, 1, size, size)
        for row, layer in zip(s.rows[:-1], build(spec)):
            x = layer(x)
            assert row.output_shape == tuple(x.shape[1:])
    ran = [r for r in s.layers if r.output_shape]
    assert s.mult_adds == sum(r.mult_adds for r in ran) and s.failing_row.mult_adds == 0
    assert s.total_params == summarize(spec).total_params and s.warnings == []


def test_a_block_that_stops_leaves_its_container_rows_open():
    spec = CustomSpec(1, 10, 8, (L.Conv(4, 3, padding=1), L.DenseBlockLayer(2, 4),
                                 L.MaxPool(8, 8), L.VGGBlockLayer(1, 8)))
    s = summarize_until_failure(spec, 8)  # the VGG block's pool gets a 1×1 map
    assert (s.failure.layer, s.failure.layer_type) == ("3.2", "MaxPool2d")
    assert [(r.name, r.output_shape) for r in s.rows[-4:]] == [
        ("3", ()), ("3.0", (8, 1, 1)), ("3.1", (8, 1, 1)), ("3.2", ())]
    assert s.failing_row is s.rows[-1]
    dense = next(r for r in s.rows if r.type == "DenseBlock")
    assert dense.output_shape == (12, 8, 8)  # the dense block before it ran
    # a whole network gives the same rows either way
    whole = summarize(PRESETS["densenet"].spec)
    again = summarize_until_failure(PRESETS["densenet"].spec)
    assert again.failure is None and again.rows == whole.rows


def test_trace_until_failure_returns_what_trace_raises():
    model = build(PRESETS["notes-alexnet"].spec, "meta")
    rows, failure = trace_until_failure(model, (1, 100, 100))
    with pytest.raises(ShapeError) as info:
        trace(model, (1, 100, 100))
    assert (failure.layer, failure.reason) == (info.value.layer, info.value.reason)
    assert [r.name for r in rows][-1] == "12"
    full, none = trace_until_failure(model, (1, 224, 224))
    assert none is None and [r.output_shape for r in full] == [
        r.output_shape for r in trace(model, (1, 224, 224))]


def test_memory_estimate_counted_by_hand():
    """torchinfo's estimate for batch size 1 in float32 (4 bytes a value): the input with all
    its channels, every output of a layer with parameters twice (values and gradients, as
    torchinfo counts them) and the parameters."""
    spec = CustomSpec(3, 10, 32, (L.Conv(4, 3, padding=1), L.ReLU(), L.MaxPool(2), L.Flatten(),
                                  L.Linear(4 * 16 * 16, 10)))
    s = summarize(spec)
    assert s.input_bytes == 3 * 32 * 32 * 4 == 12_288
    # the conv's 4×32×32 map and the Linear's 10 scores (ReLU and pooling have no parameters)
    assert s.forward_backward_bytes == 2 * 4 * (4 * 32 * 32 + 10) == 32_848
    # conv 4·3·9 + 4 = 112, Linear 1024·10 + 10 = 10,250
    assert s.param_bytes == 4 * (112 + 10_250) == 41_448
    assert s.total_bytes == 12_288 + 32_848 + 41_448
    # a non-square 20×28 input of 3 channels, through global average pooling
    pooled = CustomSpec(3, 10, 32, (L.Conv(4, 3, padding=1), L.AdaptiveAvgPool(1), L.Flatten(),
                                    L.Linear(4, 10)))
    s = summarize(pooled, (20, 28))
    assert s.input_bytes == 3 * 20 * 28 * 4 == 6720
    assert s.forward_backward_bytes == 2 * 4 * (4 * 20 * 28 + 10) == 18_000
    assert s.param_bytes == 4 * (112 + 4 * 10 + 10) == 648
