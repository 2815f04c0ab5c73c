"""Converting a family's network into ``custom`` layers gives the same network: the same
layers, shapes and parameter counts, stage by stage, at every input size."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnviz.errors import ShapeError, SpecError
from cnnviz.models import blocks, build, build_meta
from cnnviz.models.arithmetic import output_shape
from cnnviz.models.convert import conversion_note, custom_stages, to_custom
from cnnviz.presets import BOOK_PRESETS, PRESETS
from cnnviz.shapes.sizes import valid_sizes
from cnnviz.shapes.summary import summarize
from cnnviz.specs import (CustomSpec, ResNetSpec, load_spec_file, spec_from_dict, spec_to_dict,
                          spec_to_json)
from cnnviz.specs import custom as L
from tests.strategies import FAMILY_STRATEGIES

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "docs" / "examples").glob("*.json"))
FAMILY_PRESETS = [name for name, p in PRESETS.items() if p.spec.family != "custom"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shape_at(model: nn.Module, channels: int, n: int):
    """The output shape at n×n, or None where the network does not run."""
    try:
        return output_shape(model, (channels, n, n))
    except ShapeError:
        return None


def sizes(spec):
    report = valid_sizes(spec, 256)
    return report.valid, report.max


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_converts_to_the_same_network(name):
    spec = PRESETS[name].spec
    custom = to_custom(spec)
    assert type(custom) is CustomSpec
    assert (custom.in_channels, custom.num_classes, custom.input_size) == (
        spec.in_channels, spec.num_classes, spec.input_size)
    ours, theirs = build_meta(custom), build_meta(spec)
    assert n_params(ours) == n_params(theirs)
    assert shape_at(ours, spec.in_channels, spec.input_size) == shape_at(
        theirs, spec.in_channels, spec.input_size) is not None
    assert sizes(custom) == sizes(spec)
    # The layer table: the same leaf layers, in order, with the same shapes and parameters.
    table, reference = summarize(custom), summarize(spec)
    assert len(table.layers) == len(reference.layers)
    assert [(r.type, r.output_shape, r.params) for r in table.layers] == [
        (r.type, r.output_shape, r.params) for r in reference.layers]
    assert table.total_params == reference.total_params
    # The conversion is a valid config: it survives JSON.
    assert spec_from_dict(json.loads(spec_to_json(custom))) == custom


@pytest.mark.parametrize("name", FAMILY_PRESETS)
def test_every_stage_converts_to_layers_with_its_shape_and_parameters(name):
    spec = PRESETS[name].spec
    stages = custom_stages(spec)
    family_model = build_meta(spec)
    assert [n for n, _ in stages] == [n for n, _ in family_model.named_children()]
    custom_model = build_meta(to_custom(spec))
    children = list(custom_model.children())
    start = 0
    shape = reference = (spec.in_channels, spec.input_size, spec.input_size)
    for (stage_name, layers), family_stage in zip(stages, family_model.children()):
        part = nn.Sequential(*children[start:start + len(layers)])
        start += len(layers)
        assert n_params(part) == n_params(family_stage), stage_name
        shape, reference = output_shape(part, shape), output_shape(family_stage, reference)
        assert shape == reference, stage_name
    assert start == len(children)


@pytest.mark.parametrize("name", list(BOOK_PRESETS))
def test_a_converted_book_network_computes_the_same_function(name):
    """Built from the same seed, the two have equal weights in the same order, and a forward
    pass gives the same scores: the conversion is the network, not a look-alike."""
    spec = PRESETS[name].spec
    torch.manual_seed(0)
    theirs = build(spec).eval()
    torch.manual_seed(0)
    ours = build(to_custom(spec)).eval()
    mine, reference = list(ours.state_dict().values()), list(theirs.state_dict().values())
    assert [t.shape for t in mine] == [t.shape for t in reference]
    assert all(torch.equal(a, b) for a, b in zip(mine, reference))
    x = torch.randn(2, spec.in_channels, spec.input_size, spec.input_size)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("name", [n for n, p in PRESETS.items() if p.spec.family == "custom"])
def test_converting_a_custom_spec_gives_itself(name):
    spec = PRESETS[name].spec
    assert to_custom(spec) is spec
    assert [layer for _, stage in custom_stages(spec) for layer in stage] == list(spec.layers)


@pytest.mark.parametrize("family", [f for f in FAMILY_STRATEGIES if f != "custom"])
@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_specs_convert_to_the_same_network(family, data):
    spec = data.draw(FAMILY_STRATEGIES[family], label="spec")
    try:
        theirs = build_meta(spec)
    except SpecError as exc:  # both refuse: the conversion cannot size the Linear either
        with pytest.raises(SpecError) as info:
            to_custom(spec)
        # The same problem; the failing layer is named as each model names it (b2.0, 4).
        assert [p.path for p in info.value.problems] == [p.path for p in exc.problems]
        assert [p.message.split(":")[0] for p in info.value.problems] == [
            p.message.split(":")[0] for p in exc.problems]
        return
    ours = build_meta(to_custom(spec))
    assert n_params(ours) == n_params(theirs)
    assert shape_at(ours, spec.in_channels, spec.input_size) == shape_at(
        theirs, spec.in_channels, spec.input_size)
    other = data.draw(st.integers(1, 96), label="other size")
    assert shape_at(ours, spec.in_channels, other) == shape_at(theirs, spec.in_channels, other)


def test_a_network_too_long_for_a_custom_list_says_so():
    spec = ResNetSpec(stages=((64, 8),) * 4)  # stem 4 layers, 256 residual blocks, head 3
    with pytest.raises(SpecError, match=r"^as custom layers it would break a bound: layers: "
                                        r"at most 200 items, got 263$"):
        to_custom(spec)


def test_the_note_counts_the_parameters_of_both():
    spec = PRESETS["resnet18"].spec
    assert conversion_note(spec, to_custom(spec)) == (
        "Converted: this ResNet is now 15 custom layers and blocks, the same network with the "
        "same 11,178,378 parameters. Every layer is yours to edit.")
    other = PRESETS["notes-nin"].spec
    assert "1,992,166 parameters instead of 11,178,378" in conversion_note(spec, other)


# --- configs written before the block options existed ----------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_config_loads_and_converts_with_its_parameter_count(path):
    spec = load_spec_file(path)
    preset = next(p.spec for p in PRESETS.values() if p.spec == spec)  # each is a preset
    assert n_params(build_meta(to_custom(spec))) == n_params(build_meta(preset))


# Each block as a config wrote it before its options existed, and the block the builder made
# then: the shared factory with its defaults.
OLD_BLOCKS = [
    ({"type": "vgg_block", "num_convs": 2, "out_channels": 8},
     lambda c: blocks.VGGBlock(2, c, 8)),
    ({"type": "nin_block", "out_channels": 8, "kernel": 3, "stride": 1, "padding": 1},
     lambda c: blocks.NiNBlock(c, 8, 3, 1, 1)),
    ({"type": "inception", "c1": 4, "c2": [4, 8], "c3": [2, 4], "c4": 4},
     lambda c: blocks.inception(c, 4, (4, 8), (2, 4), 4)),
    ({"type": "residual", "num_channels": 8, "use_1x1conv": True, "strides": 2},
     lambda c: blocks.residual(c, 8, use_1x1conv=True, strides=2)),
    ({"type": "dense_block", "num_convs": 2, "growth_rate": 4},
     lambda c: blocks.dense_block(2, c, 4)),
    ({"type": "transition", "out_channels": 4}, lambda c: blocks.Transition(c, 4)),
]


@pytest.mark.parametrize("layer, old", OLD_BLOCKS, ids=[d["type"] for d, _ in OLD_BLOCKS])
def test_a_block_without_the_new_options_builds_as_before(layer, old):
    spec = spec_from_dict({"family": "custom", "in_channels": 3, "layers": [layer]})
    [built] = build_meta(spec).children()
    with torch.device("meta"):
        expected = old(3)
    assert repr(built) == repr(expected)  # same layers, biases, eps, ceil modes
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in expected.state_dict().items()}
    written = spec_to_dict(spec)["layers"][0]
    assert {k: written[k] for k in layer} == layer  # the old keys keep their values


@pytest.mark.parametrize("layer, factory", [
    (L.VGGBlockLayer(2, 8, "gelu", True),
     lambda c: blocks.VGGBlock(2, c, 8, act="gelu", batch_norm=True)),
    (L.NiNBlockLayer(8, 3, 1, 1, "sigmoid", True),
     lambda c: blocks.NiNBlock(c, 8, 3, 1, 1, act="sigmoid", batch_norm=True)),
    (L.InceptionLayer(4, (4, 8), (2, 4), 4, 3, True, True),
     lambda c: blocks.inception(c, 4, (4, 8), (2, 4), 4, branch3_kernel=3, batch_norm=True,
                                ceil_mode=True)),
    (L.ResidualLayer(8, True, 2, True, False, True),
     lambda c: blocks.residual(c, 8, use_1x1conv=True, strides=2, bottleneck=True, bias=False,
                               shortcut_batch_norm=True)),
    (L.DenseBlockLayer(2, 4, 4, False),
     lambda c: blocks.dense_block(2, c, 4, bottleneck_size=4, bias=False)),
    (L.TransitionLayer(4, False), lambda c: blocks.Transition(c, 4, bias=False)),
], ids=lambda v: getattr(v, "type", ""))
def test_every_block_option_reaches_the_shared_factory(layer, factory):
    [built] = build_meta(CustomSpec(3, 10, 32, (layer,))).children()
    with torch.device("meta"):
        expected = factory(3)
    assert repr(built) == repr(expected)


def test_a_bottleneck_residual_needs_a_projection_for_its_4x_channels():
    with pytest.raises(SpecError, match=r"^layers\[1\]\.use_1x1conv: must be true when the "
                                        r"input channels \(16\) differ from 4 × num_channels "
                                        r"\(64\): x and f\(x\) must have one shape to be added$"):
        build_meta(CustomSpec(layers=(L.Conv(16, 3), L.ResidualLayer(16, bottleneck=True))))
    # 4 × 4 = 16 channels in and out: the identity shortcut fits
    built = build_meta(CustomSpec(layers=(L.Conv(16, 3), L.ResidualLayer(4, bottleneck=True))))
    assert output_shape(built, (1, 8, 8)) == (16, 6, 6)
