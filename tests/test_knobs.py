"""One description per knob: the spec field's Knob holds bounds, label, widget and help text,
and the validators and the editor read it there (no tables keyed by field names)."""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path

import pytest

from cnnviz.errors import SpecError
from cnnviz.specs import LAYER_TYPES, SPEC_CLASSES, Spec, spec_from_dict
from cnnviz.specs import custom as L
from cnnviz.specs import families as F
from cnnviz.specs import fields
from cnnviz.specs.fields import INT_MAX, Knob, knob_of
from cnnviz.ui import editor


def _types_inside(tp) -> list:
    """``tp`` and every type nested in it (unions, tuples)."""
    out = [tp]
    for arg in typing.get_args(tp):
        if arg is not Ellipsis:
            out += _types_inside(arg)
    return out


def spec_dataclasses() -> list[type]:
    """Every dataclass reachable from ``Spec``: families, nested cfgs and custom layers."""
    found: list[type] = []
    todo = list(typing.get_args(Spec))
    while todo:
        cls = todo.pop(0)
        if cls in found:
            continue
        found.append(cls)
        for tp in typing.get_type_hints(cls).values():
            todo += [t for t in _types_inside(tp) if dataclasses.is_dataclass(t)]
    return found


ALL_FIELDS = [(cls, f) for cls in spec_dataclasses() for f in dataclasses.fields(cls)]
FIELD_IDS = [f"{cls.__name__}.{f.name}" for cls, f in ALL_FIELDS]


def test_the_walk_reaches_nested_and_custom_classes():
    names = {cls.__name__ for cls in spec_dataclasses()}
    assert {"ConvLayer", "NiNBlockCfg", "InceptionCfg", "CustomSpec", "Conv", "MaxPool",
            "InceptionLayer", "ResidualLayer", "TransitionLayer"} <= names
    assert {cls.__name__ for cls in SPEC_CLASSES.values()} <= names
    assert {cls.__name__ for cls in LAYER_TYPES.values()} <= names


@pytest.mark.parametrize("cls, f", ALL_FIELDS, ids=FIELD_IDS)
def test_every_field_has_a_doc_and_a_label(cls, f):
    k = knob_of(f)
    assert isinstance(k, Knob)
    assert k.label.strip() and len(k.doc.strip()) >= 20, (k.label, k.doc)


def _numbers_described(k: Knob, tp) -> list[tuple[Knob, type]]:
    """(knob, type) of every number a value of type ``tp`` holds, asserting the knobs exist."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [t for t in typing.get_args(tp) if t is not type(None)]
        tp = members[0] if len(members) == 1 else object  # a tagged union of dataclasses
    if typing.get_origin(tp) is not tuple:
        return [(k, tp)] if tp in (int, float) else []
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        assert k.item is not None, "a list needs an item knob (its label captions the items)"
        assert k.item.label and k.item.doc
        return _numbers_described(k.item, args[0])
    assert len(k.parts) == len(args), "a fixed-length tuple needs one knob per position"
    out = []
    for part, arg in zip(k.parts, args):
        assert part.label and part.doc
        out += _numbers_described(part, arg)
    return out


@pytest.mark.parametrize("cls, f", ALL_FIELDS, ids=FIELD_IDS)
def test_every_number_has_bounds_and_a_widget_range_inside_them(cls, f):
    for k, tp in _numbers_described(knob_of(f), typing.get_type_hints(cls)[f.name]):
        assert k.min is not None or k.gt is not None
        if tp is float:  # a float has no default maximum
            assert k.max is not None or k.lt is not None
        lo, hi = k.slider or (k.min, k.box_max)
        assert lo < hi
        if k.max is not None or tp is int:
            assert hi <= k.upper(tp(1))
        if k.lt is not None:
            assert hi < k.lt
        if tp is float:
            assert k.slider is not None, "a number between bounds is edited with a slider"


TABLES = ("INT_LIMITS", "PAIR_LIMITS", "ITEM_LIMITS", "MAX_ITEMS", "DEFAULT_MAX_ITEMS",
          "SLIDERS", "NUMBER_MAX", "COUNTS", "LABELS", "PART_NAMES", "ITEM_NAMES")


@pytest.mark.parametrize("module", [editor, fields], ids=["editor", "fields"])
def test_no_table_keyed_by_field_names(module):
    assert not [name for name in TABLES if hasattr(module, name)]
    field_names = {f.name for _, f in ALL_FIELDS}
    for name, value in vars(module).items():
        if isinstance(value, dict) and not name.startswith("__"):
            # NEW_LAYERS is keyed by layer type ("dropout" is also a field name)
            keyed_by_field = set(value) & field_names - set(LAYER_TYPES)
            assert not keyed_by_field, f"{module.__name__}.{name} is keyed by {keyed_by_field}"


def knob_at(cls: type, path: str) -> Knob:
    """The knob describing ``path`` (``arch[0][1]``, ``layers[0].kernel``) of ``cls``."""
    name, *rest = re.findall(r"[a-z_0-9]+|\[\d+\]", path)
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    k, tp = knob_of(f), typing.get_type_hints(cls)[name]
    for step in rest:
        if step.startswith("["):
            args = typing.get_args(tp)
            if len(args) == 2 and args[1] is Ellipsis:
                k, tp = k.item, args[0]
            else:
                index = int(step[1:-1])
                k, tp = k.parts[index], args[index]
        else:
            return knob_at(tp, step)
    return k


def test_same_name_different_meaning_different_knobs():
    # num_convs: a VGG block's 3×3 convs vs a dense block's conv blocks
    assert knob_at(L.VGGBlockLayer, "num_convs").max == 32
    assert knob_at(L.DenseBlockLayer, "num_convs").max == 64
    # stride: a convolution's stride vs a pool's, where 0 in the editor means "same as kernel"
    assert knob_at(L.Conv, "stride").slider == (1, 8)
    assert knob_at(L.MaxPool, "stride").slider == (0, 8)
    # kernels: three windows with three editor ranges (and one shared hard bound)
    ranges = {knob_at(L.Conv, "kernel").slider, knob_at(F.LeNetSpec, "pool_kernel").slider,
              knob_at(F.GoogLeNetSpec, "branch3_kernel").slider}
    assert ranges == {(1, 15), (1, 7), (1, 9)}
    # num_classes: a Linear's width in LeNet, the last nin_block's channels in NiN
    assert knob_at(F.NiNSpec, "num_classes").doc != knob_at(F.LeNetSpec, "num_classes").doc
    # the two positions of a pair have their own bounds
    assert knob_at(F.VGGSpec, "arch[0][0]").max == 32
    assert knob_at(F.VGGSpec, "arch[0][1]").upper(1) == INT_MAX
    assert knob_at(F.ResNetSpec, "stages[0][0]").max == 64
    assert knob_at(F.ResNetSpec, "stages[0][1]").upper(1) == INT_MAX
    # and validation follows the knob, not the name
    conv_blocks = {"family": "custom", "layers": [{"type": "dense_block", "num_convs": 40,
                                                   "growth_rate": 8}]}
    assert spec_from_dict(conv_blocks).layers[0].num_convs == 40
    with pytest.raises(SpecError, match=r"layers\[0\]\.num_convs: must be ≤ 32, got 40"):
        spec_from_dict({"family": "custom", "layers": [
            {"type": "vgg_block", "num_convs": 40, "out_channels": 8}]})


@pytest.mark.parametrize("layer, option, family, name", [
    (L.VGGBlockLayer, "batch_norm", F.VGGSpec, "batch_norm"),
    (L.NiNBlockLayer, "batch_norm", F.NiNSpec, "batch_norm"),
    (L.InceptionLayer, "branch3_kernel", F.GoogLeNetSpec, "branch3_kernel"),
    (L.DenseBlockLayer, "bottleneck_size", F.DenseNetSpec, "bottleneck_size"),
    (L.DenseBlockLayer, "bias", F.DenseNetSpec, "conv_bias"),
    (L.ResidualLayer, "bias", F.ResNetSpec, "conv_bias"),
    (L.TransitionLayer, "bias", F.DenseNetSpec, "conv_bias"),
])
def test_a_block_option_is_its_familys_knob(layer, option, family, name):
    """The families' options, per block in custom: the same meaning, bounds, help, default."""
    def field(cls, field_name):
        return next(f for f in dataclasses.fields(cls) if f.name == field_name)

    ours, theirs = field(layer, option), field(family, name)
    assert ours.default == theirs.default
    assert dataclasses.replace(knob_of(ours), label="") == dataclasses.replace(
        knob_of(theirs), label="")


def test_block_activations_are_the_families_choices():
    for layer in (L.VGGBlockLayer, L.NiNBlockLayer):
        k = knob_at(layer, "activation")
        assert k.choices == F.ACTIVATIONS and "block" in k.doc
        assert k.doc != knob_at(F.VGGSpec, "activation").doc  # no hidden dense layer here


def _set(data: dict, path: str, value) -> dict:
    """A copy of ``data`` with ``value`` at ``path`` (every step of the path already there)."""
    data = __import__("copy").deepcopy(data)
    steps = re.findall(r"[a-z_0-9]+|\[\d+\]", path)
    target = data
    for step in steps[:-1]:
        target = target[int(step[1:-1])] if step.startswith("[") else target[step]
    last = steps[-1]
    target[int(last[1:-1]) if last.startswith("[") else last] = value
    return data


def _custom(layer: dict) -> dict:
    return {"family": "custom", "layers": [layer]}


# (JSON that is valid as it stands, the path of one integer in it)
BOUNDED = [
    ({"family": "lenet"}, "in_channels"),
    ({"family": "lenet"}, "num_classes"),
    ({"family": "lenet"}, "input_size"),
    ({"family": "lenet"}, "pool_kernel"),
    ({"family": "alexnet"}, "pool_stride"),
    ({"family": "alexnet"}, "adaptive_pool"),
    ({"family": "lenet", "convs": [{"out_channels": 6, "kernel": 5}]}, "convs[0].kernel"),
    ({"family": "lenet", "convs": [{"out_channels": 6, "kernel": 5}]}, "convs[0].padding"),
    ({"family": "lenet", "dense": [120]}, "dense[0]"),
    ({"family": "vgg", "arch": [[1, 16]]}, "arch[0][0]"),
    ({"family": "vgg", "arch": [[1, 16]]}, "arch[0][1]"),
    ({"family": "resnet", "stages": [[2, 64]]}, "stages[0][0]"),
    ({"family": "resnet", "stages": [[2, 64]]}, "stages[0][1]"),
    ({"family": "densenet", "num_convs_in_dense_blocks": [4]}, "num_convs_in_dense_blocks[0]"),
    ({"family": "densenet"}, "bottleneck_size"),
    ({"family": "googlenet", "stem_channels": [64, 64, 192]}, "stem_channels[2]"),
    ({"family": "nin", "blocks": [{"out_channels": 8, "kernel": 3}]}, "blocks[0].stride"),
    (_custom({"type": "conv", "out_channels": 8, "kernel": 3}), "layers[0].dilation"),
    (_custom({"type": "max_pool", "kernel": 3, "stride": 2}), "layers[0].stride"),
    (_custom({"type": "linear", "in_features": 8, "out_features": 2}), "layers[0].in_features"),
    (_custom({"type": "linear", "in_features": 8, "out_features": 2}),
     "layers[0].out_features"),
    (_custom({"type": "adaptive_avg_pool", "output_size": 1}), "layers[0].output_size"),
    (_custom({"type": "residual", "num_channels": 8, "use_1x1conv": True, "strides": 1}),
     "layers[0].strides"),
    (_custom({"type": "dense_block", "num_convs": 2, "growth_rate": 8}), "layers[0].num_convs"),
    (_custom({"type": "dense_block", "num_convs": 2, "growth_rate": 8}),
     "layers[0].bottleneck_size"),
    (_custom({"type": "inception", "c1": 1, "c2": [1, 1], "c3": [1, 1], "c4": 1}),
     "layers[0].c3[1]"),
]


@pytest.mark.parametrize("data, path", BOUNDED, ids=[p for _, p in BOUNDED])
def test_validation_bounds_come_from_the_knob(data, path):
    cls = SPEC_CLASSES[data["family"]]
    if path.startswith("layers[0]."):
        k = knob_at(LAYER_TYPES[data["layers"][0]["type"]], path.split(".", 1)[1])
    else:
        k = knob_at(cls, path)
    top = int(k.upper(1))
    spec_from_dict(_set(data, path, top))  # the declared maximum is allowed
    with pytest.raises(SpecError) as info:
        spec_from_dict(_set(data, path, top + 1))
    assert [str(p) for p in info.value.problems] == [f"{path}: must be ≤ {top:,}, got {top + 1}"]
    low = int(k.min)
    spec_from_dict(_set(data, path, low))
    with pytest.raises(SpecError) as info:
        spec_from_dict(_set(data, path, low - 1))
    assert [str(p) for p in info.value.problems] == [f"{path}: must be ≥ {low}, got {low - 1}"]


@pytest.mark.parametrize("data, path, item", [
    ({"family": "lenet"}, "convs", {"out_channels": 6, "kernel": 5}),
    ({"family": "densenet"}, "num_convs_in_dense_blocks", 4),
    ({"family": "custom"}, "layers", {"type": "relu"}),
])
def test_item_counts_come_from_the_knob(data, path, item):
    most = knob_at(SPEC_CLASSES[data["family"]], path).max_items
    assert most == (200 if path == "layers" else 32)
    spec_from_dict({**data, path: [item] * most})
    with pytest.raises(SpecError) as info:
        spec_from_dict({**data, path: [item] * (most + 1)})
    assert [str(p) for p in info.value.problems] == [
        f"{path}: at most {most} items, got {most + 1}"]


def test_a_float_bound_comes_from_the_knob():
    k = knob_at(F.DenseNetSpec, "compression")
    assert (k.gt, k.max) == (0.0, 1.0)
    assert spec_from_dict({"family": "densenet", "compression": 1.0}).compression == 1.0
    with pytest.raises(SpecError, match=r"^compression: must be ≤ 1\.0, got 1\.5$"):
        spec_from_dict({"family": "densenet", "compression": 1.5})


# --- docs/config.md lists the upper bounds, as the knobs declare them ---------------------------

def _owner(cls: type) -> str:
    """How docs/config.md names the objects a class describes."""
    if hasattr(cls, "family"):
        return f"`{cls.family}`"
    if hasattr(cls, "type"):
        return f"`{cls.type}` layers"
    return {"ConvLayer": "conv objects", "NiNBlockCfg": "NiN block objects",
            "InceptionCfg": "Inception objects"}[cls.__name__]


def _maxima(k: Knob, tp, path: str):
    """(path, largest value) of every number below ``k`` whose knob declares its maximum."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            if k.item is not None:
                yield from _maxima(k.item, args[0], f"{path}[i]")
        else:
            for i, (part, arg) in enumerate(zip(k.parts, args)):
                yield from _maxima(part, arg, f"{path}[{i}]")
    elif typing.get_origin(tp) in (typing.Union, types.UnionType) or tp is int:
        if k.max is not None:
            yield path, k.max


def bounds_table() -> str:
    """The markdown table of docs/config.md's "Upper bounds", from the knobs."""
    owners: dict[tuple[str, str], list[str]] = {}
    lists: dict[int, list[str]] = {}
    for cls in spec_dataclasses():
        for f in dataclasses.fields(cls):
            k, tp = knob_of(f), typing.get_type_hints(cls)[f.name]
            for path, most in _maxima(k, tp, f.name):
                owners.setdefault((f"`{path}`", f"{most:,}"), []).append(_owner(cls))
            if typing.get_origin(tp) is tuple and typing.get_args(tp)[-1] is Ellipsis:
                lists.setdefault(k.max_items, []).append(f"`{f.name}`")
    families = [_owner(cls) for cls in SPEC_CLASSES.values()]
    rows = [f"| {path} | {'every family' if who == families else ', '.join(who)} | {most} |"
            for (path, most), who in sorted(owners.items())]
    rows += [f"| {', '.join(sorted(set(names)))} | number of items | {most:,} |"
             for most, names in sorted(lists.items())]
    return "\n".join(["| field | of | at most |", "|-------|----|---------|", *rows])


def test_docs_list_the_upper_bounds_the_knobs_declare():
    text = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text()
    assert bounds_table() in text, "regenerate the table with tests.test_knobs.bounds_table()"
    assert f"at most {INT_MAX:,}" in text
