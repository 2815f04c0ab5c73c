"""Specs: exact JSON round trip for every family, and validation that reports every problem."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.errors import SpecError
from cnnviz.presets import PRESETS
from cnnviz.specs import (SPEC_CLASSES, CustomSpec, spec_from_dict, spec_from_json,
                          spec_to_dict, spec_to_json, validate)
from cnnviz.specs import custom as L
from tests.strategies import custom_specs


def problems_of(data) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_round_trip_through_json_text(name):
    spec = PRESETS[name].spec
    text = spec_to_json(spec)
    assert spec_from_json(text) == spec
    assert spec_to_json(spec_from_json(text)) == text
    assert validate(spec) == []


@pytest.mark.parametrize("family", [f for f in SPEC_CLASSES if f != "custom"])
def test_every_family_default_round_trips_and_names_its_family(family):
    spec = SPEC_CLASSES[family]()
    data = spec_to_dict(spec)
    assert next(iter(data)) == "family" and data["family"] == family
    assert spec_from_dict(json.loads(json.dumps(data))) == spec


@settings(max_examples=60)
@given(custom_specs())
def test_random_custom_specs_round_trip(spec):
    assert spec_from_json(spec_to_json(spec)) == spec


@given(st.sampled_from([f for f in SPEC_CLASSES if f != "custom"]), st.integers(1, 4),
       st.integers(1, 1000), st.integers(1, 512))
def test_changed_knobs_round_trip(family, in_channels, num_classes, input_size):
    spec = SPEC_CLASSES[family](in_channels=in_channels, num_classes=num_classes,
                                input_size=input_size)
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_every_block_option_round_trips():
    spec = CustomSpec(in_channels=3, layers=(
        L.VGGBlockLayer(2, 8, "gelu", True), L.NiNBlockLayer(8, 3, 1, 1, "sigmoid", True),
        L.InceptionLayer(4, (4, 8), (2, 4), 4, 3, True, True),
        L.ResidualLayer(8, True, 2, True, False, True), L.DenseBlockLayer(2, 4, 4, False),
        L.TransitionLayer(4, False), L.BatchNorm()))
    data = json.loads(spec_to_json(spec))
    assert data["layers"][3] == {"type": "residual", "num_channels": 8, "use_1x1conv": True,
                                 "strides": 2, "bottleneck": True, "bias": False,
                                 "shortcut_batch_norm": True}
    assert spec_from_dict(data) == spec


def test_a_block_config_without_the_options_takes_the_books_block():
    [vgg, nin, inception, residual, dense, transition] = spec_from_dict({
        "family": "custom", "layers": [
            {"type": "vgg_block", "num_convs": 1, "out_channels": 8},
            {"type": "nin_block", "out_channels": 8, "kernel": 3},
            {"type": "inception", "c1": 1, "c2": [1, 1], "c3": [1, 1], "c4": 1},
            {"type": "residual", "num_channels": 8, "use_1x1conv": True},
            {"type": "dense_block", "num_convs": 1, "growth_rate": 8},
            {"type": "transition", "out_channels": 8}]}).layers
    assert (vgg.activation, vgg.batch_norm, nin.activation, nin.batch_norm) == (
        "relu", False, "relu", False)
    assert (inception.branch3_kernel, inception.batch_norm, inception.ceil_mode) == (
        5, False, False)
    assert (residual.bottleneck, residual.bias, residual.shortcut_batch_norm) == (
        False, True, False)
    assert (dense.bottleneck_size, dense.bias, transition.bias) == (0, True, True)


def test_missing_keys_take_the_book_defaults():
    assert spec_from_dict({"family": "resnet"}) == SPEC_CLASSES["resnet"]()
    assert spec_from_dict({"family": "vgg", "input_size": 96}).arch[0] == (1, 16)


def test_every_problem_is_reported_with_its_path():
    found = problems_of({"family": "custom", "layers": [
        {"type": "conv", "kernal": 3, "out_channels": 4},
        {"type": "max_pool", "kernel": 3, "padding": 2},
        {"type": "conv", "out_channels": 0, "kernel": -1},
        {"type": "residual", "num_channels": 8, "strides": 2},
        {"type": "linear", "in_features": "6400", "out_features": True},
        {"type": "bogus"},
    ], "extra": 1})
    assert found == [
        "extra: unknown key (known keys: in_channels, num_classes, input_size, layers)",
        "layers[0].kernal: unknown key (known keys: out_channels, kernel, stride, padding, "
        "dilation, bias)",
        "layers[0].kernel: required",
        "layers[1].padding: must be at most half the kernel (1), got 2",
        "layers[2].out_channels: must be ≥ 1, got 0",
        "layers[2].kernel: must be ≥ 1, got -1",
        "layers[3].use_1x1conv: must be true when strides ≠ 1: the shortcut must shrink like "
        "the main path",
        'layers[4].in_features: must be an integer, got "6400"',
        "layers[4].out_features: must be an integer, got true",
        "layers[5].type: must be one of adaptive_avg_pool, avg_pool, batchnorm, conv, "
        'dense_block, dropout, flatten, gelu, inception, linear, max_pool, nin_block, relu, '
        'residual, sigmoid, transition, vgg_block; got "bogus"',
    ]


@pytest.mark.parametrize("data, expected", [
    ({"family": "vgg", "arch": [[0, 16], [2, 32]]}, "arch[0][0]: must be ≥ 1, got 0"),
    ({"family": "vgg", "arch": [[1, 16, 3]]}, "arch[0]: must be a list of 2 items, got 3"),
    ({"family": "vgg", "arch": []}, "arch: must not be empty"),
    ({"family": "alexnet", "dropout": 1.0}, "dropout: must be < 1.0, got 1.0"),
    ({"family": "alexnet", "activation": "tanh"},
     'activation: must be one of relu, sigmoid, gelu; got "tanh"'),
    ({"family": "densenet", "compression": 0}, "compression: must be > 0.0, got 0.0"),
    ({"family": "googlenet", "branch3_kernel": 4},
     "branch3_kernel: must be odd so the four paths keep one size"),
    ({"family": "googlenet", "b3": [{"c1": 1, "c2": [1], "c3": [1, 1], "c4": 1}]},
     "b3[0].c2: must be a list of 2 items, got 1"),
    ({"family": "lenet", "convs": [{"out_channels": 6}]}, "convs[0].kernel: required"),
    ({"family": "resnet", "block": "wide"},
     'block: must be one of basic, bottleneck; got "wide"'),
    ({"family": "nope"}, "family: must be one of alexnet, custom, densenet, googlenet, lenet, "
                         'nin, resnet, vgg; got "nope"'),
    ({}, "family: must be one of alexnet, custom, densenet, googlenet, lenet, nin, resnet, "
         "vgg; it is missing"),
    ({"family": None}, "family: must be one of alexnet, custom, densenet, googlenet, lenet, "
                       "nin, resnet, vgg; got null"),
    ({"family": "custom"}, "layers: must not be empty"),
    ([1, 2], "must be an object, got [1, 2]"),
    ({"family": "custom", "layers": []}, "layers: must not be empty"),
    ({"family": "custom", "layers": {"type": "relu"}},
     'layers: must be a list, got {"type": "relu"}'),
    ({"family": "lenet", "dropout": float("nan")}, "dropout: must be a number, got NaN"),
    ({"family": "alexnet", "dropout": 10 ** 400}, "dropout: must be a number, got 1000000"
                                                   "000000000000000000000000000000..."),
    ({"family": []}, "family: must be one of alexnet, custom, densenet, googlenet, lenet, "
                     "nin, resnet, vgg; got []"),
    ({"family": "custom", "layers": [{"type": {"a": 1}}]}, "layers[0].type: must be one of "
     "adaptive_avg_pool, avg_pool, batchnorm, conv, dense_block, dropout, flatten, gelu, "
     'inception, linear, max_pool, nin_block, relu, residual, sigmoid, transition, vgg_block; '
     'got {"a": 1}'),
    # Bounds that keep every valid spec quick to build and within PyTorch's integer limits.
    ({"family": "custom", "layers": [{"type": "flatten"},
                                     {"type": "linear", "in_features": 10 ** 20,
                                      "out_features": 2}]},
     "layers[1].in_features: must be ≤ 100,000,000, got 100000000000000000000"),
    ({"family": "resnet", "stages": [[20000, 1]]}, "stages[0][0]: must be ≤ 64, got 20000"),
    ({"family": "vgg", "arch": [[1, 10 ** 6]]}, "arch[0][1]: must be ≤ 65,536, got 1000000"),
    ({"family": "densenet", "num_convs_in_dense_blocks": [65]},
     "num_convs_in_dense_blocks[0]: must be ≤ 64, got 65"),
    ({"family": "custom", "layers": [{"type": "relu"}] * 201},
     "layers: at most 200 items, got 201"),
    ({"family": "alexnet", "adaptive_pool": 10 ** 9},
     "adaptive_pool: must be ≤ 256, got 1000000000"),
    ({"family": "lenet", "input_size": 8193}, "input_size: must be ≤ 8,192, got 8193"),
    # A bound belongs to its field, not its name: a dense block's num_convs is DenseNet's (64),
    # not a VGG block's (32); a residual block's strides is a stride like any other (1024).
    ({"family": "custom", "layers": [{"type": "dense_block", "num_convs": 65,
                                      "growth_rate": 8}]},
     "layers[0].num_convs: must be ≤ 64, got 65"),
    ({"family": "custom", "layers": [{"type": "vgg_block", "num_convs": 33,
                                      "out_channels": 8}]},
     "layers[0].num_convs: must be ≤ 32, got 33"),
    ({"family": "custom", "layers": [{"type": "residual", "num_channels": 8,
                                      "use_1x1conv": True, "strides": 1025}]},
     "layers[0].strides: must be ≤ 1,024, got 1025"),
    # The families' options on the custom blocks keep the families' rules.
    ({"family": "custom", "layers": [{"type": "inception", "c1": 1, "c2": [1, 1],
                                      "c3": [1, 1], "c4": 1, "branch3_kernel": 4}]},
     "layers[0].branch3_kernel: must be odd so the four paths keep one size"),
    ({"family": "custom", "layers": [{"type": "vgg_block", "num_convs": 1, "out_channels": 8,
                                      "activation": "tanh"}]},
     'layers[0].activation: must be one of relu, sigmoid, gelu; got "tanh"'),
    ({"family": "custom", "layers": [{"type": "dense_block", "num_convs": 1, "growth_rate": 8,
                                      "bottleneck_size": 17}]},
     "layers[0].bottleneck_size: must be ≤ 16, got 17"),
    ({"family": "custom", "layers": [{"type": "transition", "out_channels": 8,
                                      "bias": 0}]},
     "layers[0].bias: must be true or false, got 0"),
])
def test_single_problems(data, expected):
    assert problems_of(data) == [expected]


@pytest.mark.parametrize("text, expected", [
    ("{", "not valid JSON at line 1 column 2: Expecting property name enclosed in double "
          "quotes"),
    ("", "not valid JSON at line 1 column 1: Expecting value"),
    (b"\xff\xfe", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply"),
    ('{"family": "custom", "layers": [{"type": "flatten"}, {"type": "linear", '
     '"in_features": ' + "[" * 500 + "]" * 500 + ', "out_features": 2}]}',
     "layers[1].in_features: must be an integer, got [[[["),
    (" " * 1_024_001, "the spec is 1,024,001 characters: Size of a spec (JSON) upload is 1,001 KB"),
    ('{"family": "lenet", "family": "vgg"}', "duplicate key 'family' in the JSON"),
    ('{"family": "lenet", "input_size": ' + "9" * 5000 + "}",
     "not valid JSON: a number is far too long"),
])
def test_malformed_and_hostile_json_give_one_clear_message(text, expected):
    with pytest.raises(SpecError) as info:
        spec_from_json(text)
    assert str(info.value).startswith(expected)


def test_values_nested_past_the_recursion_limit_are_still_described():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert problems_of({"family": "lenet", "input_size": deep}) == [
        "input_size: must be an integer, got a list"]


def test_validate_finds_problems_in_specs_built_in_code():
    bad = SPEC_CLASSES["resnet"](stages=((0, 64),), num_classes=0)
    assert [str(p) for p in validate(bad)] == ["num_classes: must be ≥ 1, got 0",
                                               "stages[0][0]: must be ≥ 1, got 0"]
    assert validate(CustomSpec(layers=())) != []
