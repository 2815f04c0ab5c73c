"""Hypothesis strategies: random specs of every family with its options, and random custom
chains, valid by construction or deliberately broken."""
from __future__ import annotations

import dataclasses
import json
import math
import typing

from hypothesis import strategies as st

from cnnviz.errors import ShapeError
from cnnviz.models import build
from cnnviz.models.arithmetic import output_shape
from cnnviz.specs import (AlexNetSpec, ConvLayer, CustomSpec, DenseNetSpec, GoogLeNetSpec,
                          InceptionCfg, LeNetSpec, NiNBlockCfg, NiNSpec, ResNetSpec, VGGSpec)
from cnnviz.specs import custom as L
from cnnviz.specs.fields import Knob, to_dict

small = st.integers(1, 3)


@st.composite
def pool(draw):
    kernel = draw(st.integers(1, 4))
    cls = draw(st.sampled_from([L.MaxPool, L.AvgPool]))
    return cls(kernel, draw(st.none() | st.integers(1, 3)), draw(st.integers(0, kernel // 2)),
               draw(st.booleans()))


@st.composite
def residual(draw, channels: int):
    num_channels = draw(small)
    strides = draw(st.integers(1, 2))
    bottleneck = draw(st.booleans())
    must_project = strides != 1 or num_channels * (4 if bottleneck else 1) != channels
    return L.ResidualLayer(num_channels, must_project or draw(st.booleans()), strides,
                           bottleneck, draw(st.booleans()), draw(st.booleans()))


block_activations = st.sampled_from(["relu", "sigmoid", "gelu"])


def feature_layer(channels: int):
    """Layers that take and give a C×H×W map."""
    return st.one_of(
        st.builds(L.Conv, small, st.integers(1, 7), st.integers(1, 3), st.integers(0, 3),
                  st.integers(1, 2), st.booleans()),
        pool(),
        st.just(L.BatchNorm()),
        st.sampled_from([L.ReLU(), L.Sigmoid(), L.GELU(), L.Dropout(0.5)]),
        st.builds(L.AdaptiveAvgPool, st.integers(1, 4)),
        st.builds(L.VGGBlockLayer, st.integers(1, 2), small, block_activations,
                  st.booleans()),
        st.builds(L.NiNBlockLayer, small, st.integers(1, 5), st.integers(1, 3),
                  st.integers(0, 2), block_activations, st.booleans()),
        st.builds(L.InceptionLayer, small, st.tuples(small, small), st.tuples(small, small),
                  small, st.sampled_from([1, 3, 5]), st.booleans(), st.booleans()),
        residual(channels),
        st.builds(L.DenseBlockLayer, st.integers(1, 2), small, st.integers(0, 2),
                  st.booleans()),
        st.builds(L.TransitionLayer, small, st.booleans()),
    )


def _trace_channels(spec: CustomSpec) -> int:
    model = build(spec, device="meta")
    channels = spec.in_channels
    for module in model:
        channels = getattr(module, "out_channels", None) or getattr(
            module, "num_features", None) or channels
    return channels


@st.composite
def custom_specs(draw, max_reference: int = 64) -> CustomSpec:
    """A chain of 1–6 feature layers and blocks, then (maybe) a head.

    Heads: none; global pooling + flatten + linear; or flatten + linear whose in_features fit
    some reference size (so the valid set is a band) or a random number (maybe no size fits).
    """
    in_channels = draw(st.integers(1, 3))
    layers: list = []
    channels = in_channels
    for _ in range(draw(st.integers(1, 6))):
        layer = draw(feature_layer(channels))
        layers.append(layer)
        spec = CustomSpec(in_channels, 10, 32, tuple(layers))
        channels = _trace_channels(spec)
    head = draw(st.sampled_from(["none", "global", "flatten"]))
    if head == "global":
        layers += [L.AdaptiveAvgPool(1), L.Flatten(), L.Linear(channels, 10)]
    elif head == "flatten":
        reference = draw(st.integers(1, max_reference))
        model = build(CustomSpec(in_channels, 10, 32, tuple(layers) + (L.Flatten(),)), "meta")
        try:
            features = output_shape(model, (in_channels, reference, reference))[0]
        except ShapeError:
            features = draw(st.integers(1, 200))
        layers += [L.Flatten(), L.Linear(features, draw(st.integers(1, 5)))]
        if draw(st.booleans()):
            layers += [L.BatchNorm(), L.ReLU(), L.Linear(layers[-1].out_features, 10)]
    return CustomSpec(in_channels, 10, 32, tuple(layers))


# -- the families, with their options ---------------------------------------------------------
# Tiny channel counts keep real forward passes cheap; every option of every family is drawn.
tiny = st.integers(1, 4)
activations = st.sampled_from(["relu", "sigmoid", "gelu"])
dropouts = st.sampled_from([0.0, 0.5])


@st.composite
def plain_cnn_specs(draw, cls=None):
    """LeNet or AlexNet: convs with optional pooling, dense layers, BN, adaptive pooling."""
    cls = cls or draw(st.sampled_from([LeNetSpec, AlexNetSpec]))
    convs = tuple(draw(st.lists(st.builds(ConvLayer, tiny, st.integers(1, 5), st.integers(1, 2),
                                          st.integers(0, 2), st.booleans()),
                                min_size=1, max_size=3)))
    return cls(in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 12)), input_size=draw(st.integers(12, 48)),
               convs=convs, pool=draw(st.sampled_from(["avg", "max"])),
               pool_kernel=draw(st.integers(1, 3)), pool_stride=draw(st.integers(1, 3)),
               dense=tuple(draw(st.lists(st.integers(1, 8), max_size=2))),
               activation=draw(activations), batch_norm=draw(st.booleans()),
               dropout=draw(dropouts), adaptive_pool=draw(st.integers(0, 3)))


@st.composite
def vgg_specs(draw):
    arch = tuple(draw(st.lists(st.tuples(st.integers(1, 2), tiny), min_size=1, max_size=3)))
    return VGGSpec(in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 12)), input_size=draw(st.integers(8, 40)),
                   arch=arch, dense=tuple(draw(st.lists(st.integers(1, 8), max_size=2))),
                   activation=draw(activations), batch_norm=draw(st.booleans()),
                   dropout=draw(dropouts), adaptive_pool=draw(st.integers(0, 2)))


@st.composite
def nin_specs(draw):
    blocks = tuple(draw(st.lists(st.builds(NiNBlockCfg, tiny, st.integers(1, 5),
                                           st.integers(1, 2), st.integers(0, 2)),
                                 min_size=1, max_size=3)))
    return NiNSpec(in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 12)), input_size=draw(st.integers(16, 64)),
                   blocks=blocks, activation=draw(activations),
                   batch_norm=draw(st.booleans()), dropout=draw(dropouts))


def _inception_cfgs():
    return st.lists(st.builds(InceptionCfg, tiny, st.tuples(tiny, tiny), st.tuples(tiny, tiny),
                              tiny), min_size=1, max_size=2).map(tuple)


@st.composite
def googlenet_specs(draw):
    """GoogLeNet with or without BatchNorm (torchvision's BasicConv2d) and ceil-mode pools."""
    return GoogLeNetSpec(in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 12)),
                         input_size=draw(st.integers(24, 96)),
                         stem_channels=draw(st.tuples(tiny, tiny, tiny)),
                         b3=draw(_inception_cfgs()), b4=draw(_inception_cfgs()),
                         b5=draw(_inception_cfgs()),
                         branch3_kernel=draw(st.sampled_from([1, 3, 5])),
                         batch_norm=draw(st.booleans()), ceil_mode=draw(st.booleans()),
                         dropout=draw(dropouts))


@st.composite
def resnet_specs(draw):
    """Basic or bottleneck residual blocks, with or without biases and shortcut BatchNorm."""
    stages = tuple(draw(st.lists(st.tuples(st.integers(1, 2), tiny), min_size=1, max_size=3)))
    return ResNetSpec(in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 12)), input_size=draw(st.integers(8, 64)),
                      stem_channels=draw(tiny), stages=stages,
                      block=draw(st.sampled_from(["basic", "bottleneck"])),
                      conv_bias=draw(st.booleans()), shortcut_batch_norm=draw(st.booleans()))


@st.composite
def densenet_specs(draw):
    """The book's DenseNet or DenseNet-BC (bottleneck and compression)."""
    return DenseNetSpec(in_channels=draw(st.integers(1, 3)), num_classes=draw(st.integers(1, 12)), input_size=draw(st.integers(8, 64)),
                        stem_channels=draw(tiny), growth_rate=draw(tiny),
                        num_convs_in_dense_blocks=tuple(draw(st.lists(st.integers(1, 3),
                                                                      min_size=1, max_size=3))),
                        compression=draw(st.sampled_from([0.25, 0.5, 1.0])),
                        bottleneck_size=draw(st.integers(0, 4)), conv_bias=draw(st.booleans()))


FAMILY_STRATEGIES = {
    "lenet": plain_cnn_specs(LeNetSpec), "alexnet": plain_cnn_specs(AlexNetSpec),
    "vgg": vgg_specs(), "nin": nin_specs(), "googlenet": googlenet_specs(),
    "resnet": resnet_specs(), "densenet": densenet_specs(), "custom": custom_specs(),
}


# -- hostile JSON: a spec as it arrives from a link, an upload or a config file ---------------
# Each example knows what a refusal must name: the field it broke (its path, as the parser
# reports paths), or, for a fault of the whole text, the words that say so. The expectation
# comes from the mutation drawn here, never from the parser under test.

@dataclasses.dataclass(frozen=True)
class Hostile:
    """``text`` as it arrives; ``spec`` when it is a valid spec (then ``names`` is empty),
    else ``names``: a refusal must mention at least one of them. ``kind`` says which mutation
    made it (the fuzz counts them)."""

    kind: str
    text: str
    spec: object | None = None
    names: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.spec is not None


# A leaf of a spec: a number, string, flag or list, with where it is and what bounds it.
@dataclasses.dataclass(frozen=True)
class _Leaf:
    path: str
    knob: Knob
    value: object
    optional: bool  # null is a valid value here


def _leaves(obj, path: str = "") -> list[_Leaf]:
    """Every leaf of a spec (and of its nested blocks), with its field path."""
    hints = typing.get_type_hints(type(obj))
    found: list[_Leaf] = []
    for f in dataclasses.fields(obj):
        where = f"{path}.{f.name}" if path else f.name
        optional = type(None) in typing.get_args(hints[f.name])
        found += _leaves_of(where, f.metadata["knob"], getattr(obj, f.name), optional)
    return found


def _leaves_of(where: str, knob: Knob, value, optional: bool = False) -> list[_Leaf]:
    if dataclasses.is_dataclass(value):
        return _leaves(value, where)
    found = [_Leaf(where, knob, value, optional)]
    if isinstance(value, tuple):  # a list: itself (its length), then each item
        for i, item in enumerate(value):
            found += _leaves_of(f"{where}[{i}]", knob.parts[i] if knob.parts else knob.item,
                                item)
    return found


def _objects(obj, path: str = "") -> list[tuple[str, object]]:
    """Every object of a spec (itself and its nested blocks) with its path."""
    found = [(path, obj)]
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = f"{path}.{f.name}" if path else f.name
        if isinstance(value, tuple):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    found += _objects(item, f"{where}[{i}]")
    return found


def _breaking(leaf: _Leaf) -> list:
    """Values just past the leaf's bounds, as JSON holds them."""
    k, v = leaf.knob, leaf.value
    if isinstance(v, bool):
        return []
    if isinstance(v, str):
        return [v + "-x"] if k.choices else []
    if isinstance(v, tuple):
        out = []
        if k.parts:  # a fixed-length tuple: one number too many, or too few
            out += [list(v) + [1], list(v)[:-1]]
        else:
            if k.nonempty:
                out.append([])
            if v:
                out.append([to_dict(v[0])] * (k.max_items + 1))
        return out
    if isinstance(v, int) or (v is None and leaf.optional):
        out = []
        if k.min is not None:
            out.append(int(k.min) - 1)
        upper = k.upper(1)
        if upper is not None:
            out.append(int(upper) + 1)
        return out
    out = []  # a float
    if k.min is not None:
        out.append(k.min - 0.25)
    if k.max is not None:
        out.append(k.max + 0.25)
    if k.gt is not None:
        out.append(k.gt)
    if k.lt is not None:
        out.append(k.lt)
    return out


def _wrong_types(leaf: _Leaf) -> list:
    v = leaf.value
    if isinstance(v, bool):
        out = [1, "true", [], {}]
    elif isinstance(v, str):
        out = [5, True, [v], {"value": v}]
    elif isinstance(v, tuple):
        out = ["1,2", 5, {"0": 1}]
    elif isinstance(v, float):
        out = ["0.5", True, [0.5], {}]
    else:  # an int, or an optional int that is null now
        out = ["3", 2.5, True, [3], {}]
    return out if leaf.optional else out + [None]


HUGE = [1e308, -1e308, 10 ** 400, -(10 ** 400), math.nan, math.inf, -math.inf]
JUNK_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)


def _set(data, path: list, value) -> None:
    """Put ``value`` at ``path`` (keys and indices) inside the JSON ``data``."""
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


def _steps(path: str) -> list:
    """``layers[2].kernel`` → ["layers", 2, "kernel"]."""
    steps: list = []
    for part in path.split("."):
        name, *indices = part.split("[")
        if name:
            steps.append(name)
        steps += [int(i.rstrip("]")) for i in indices]
    return steps


def _deep(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


@st.composite
def valid_specs(draw):
    """A valid spec of any family, with every option drawn (tiny channels: cheap to run)."""
    return draw(st.sampled_from(sorted(FAMILY_STRATEGIES)).flatmap(FAMILY_STRATEGIES.get))


def _dumps(data) -> str:
    return json.dumps(data, separators=(",", ":"))


@st.composite
def hostile_json(draw, valid_in: int = 4) -> Hostile:
    """A spec's JSON text: valid (one in ``valid_in``), or broken in one way —
    a bound, a type, an unknown or missing key, an unknown family or layer type, a cross-field
    rule, a huge number or NaN, deep nesting, a duplicate key, not an object, not JSON."""
    spec = draw(valid_specs())
    if draw(st.sampled_from(range(valid_in))) == 0:
        return Hostile("valid", _dumps(to_dict(spec)), spec)
    data = to_dict(spec)
    leaves = _leaves(spec)
    kind = draw(st.sampled_from(["bound", "type", "unknown key", "missing key", "family",
                                 "huge", "nested value", "duplicate key", "cross field",
                                 "not an object", "not JSON", "nested document"]))
    if kind == "bound":
        choices = [(leaf, v) for leaf in leaves for v in _breaking(leaf)]
        leaf, value = draw(st.sampled_from(choices))
        _set(data, _steps(leaf.path), value)
        return Hostile(kind, _dumps(data), names=(leaf.path,))
    if kind == "type":
        leaf = draw(st.sampled_from(leaves))
        _set(data, _steps(leaf.path), draw(st.sampled_from(_wrong_types(leaf))))
        return Hostile(kind, _dumps(data), names=(leaf.path,))
    if kind == "huge":
        numbers = [leaf for leaf in leaves if not isinstance(leaf.value, (bool, str, tuple))]
        leaf = draw(st.sampled_from(numbers))
        _set(data, _steps(leaf.path), draw(st.sampled_from(HUGE)))
        return Hostile(kind, json.dumps(data), names=(leaf.path,))  # NaN, Infinity as JSON5
    if kind == "nested value":
        leaf = draw(st.sampled_from(leaves))
        depth = draw(st.sampled_from([2, 50, 500, 5_000, 50_000]))
        marker = "NESTED"
        _set(data, _steps(leaf.path), marker)
        text = _dumps(data).replace(f'"{marker}"', _deep(depth))
        return Hostile(kind, text, names=(leaf.path, "nested too deeply"))
    if kind == "unknown key":
        where, _ = draw(st.sampled_from(_objects(spec)))
        key = draw(st.sampled_from(["colour", "kernel_size", "Family", "layers ", "__class__",
                                    "ünïcode", ""]))
        target = data
        for step in _steps(where) if where else []:
            target = target[step]
        if key in target:
            key += "_2"
        target[key] = draw(st.sampled_from([1, "x", None, [1]]))
        path = f"{where}.{key}" if where else key
        return Hostile(kind, _dumps(data), names=(path if key else "unknown key",))
    if kind == "missing key":
        required = [(f"{where}.{f.name}" if where else f.name)
                    for where, obj in _objects(spec) for f in dataclasses.fields(obj)
                    if f.default is dataclasses.MISSING]
        tags = ["family"] + [f"{where}.type" for where, obj in _objects(spec)
                             if hasattr(type(obj), "type")]
        path = draw(st.sampled_from(required + tags))
        *parent, last = _steps(path)
        target = data
        for step in parent:
            target = target[step]
        del target[last]
        return Hostile(kind, _dumps(data), names=(path,))
    if kind == "family":
        layers = [where for where, obj in _objects(spec) if hasattr(type(obj), "type")]
        path = draw(st.sampled_from(["family", *(f"{w}.type" for w in layers)]))
        value = draw(st.sampled_from(["LeNet", "lenet5", "transformer", "", " vgg", 7, None,
                                      ["vgg"]]))
        _set(data, _steps(path), value)
        return Hostile(kind, _dumps(data), names=(path,))
    if kind == "duplicate key":
        where, _ = draw(st.sampled_from(_objects(spec)))
        target = data
        for step in _steps(where) if where else []:
            target = target[step]
        key = draw(st.sampled_from(sorted(target)))
        copy = _dumps(target)
        doubled = copy[:-1] + ("," if len(target) else "") + f"{_dumps(key)}:1}}"
        text = _dumps(data).replace(copy, doubled, 1) if where else doubled
        return Hostile(kind, text, names=(f"duplicate key {key!r}",))
    if kind == "cross field":
        broken = _break_a_rule(draw, spec, data)
        if broken is not None:
            return Hostile(kind, _dumps(data), names=(broken,))
        kind = "not an object"
    if kind == "not an object":
        value = draw(st.sampled_from([[data], [], "lenet", 3, None, True, 1e308]))
        return Hostile(kind, json.dumps(value), names=("must be an object",))
    if kind == "not JSON":
        text = _dumps(data)
        how = draw(st.sampled_from(["truncated", "junk", "single quotes", "trailing comma",
                                    "comment"]))
        if how == "truncated":
            text = text[:draw(st.integers(1, len(text) - 1))]
        elif how == "junk":
            text = draw(JUNK_TEXT.filter(_not_json))
        elif how == "single quotes":
            text = text.replace('"', "'")
        elif how == "trailing comma":
            text = text[:-1] + ",}"
        else:
            text = "// a network\n" + text
        return Hostile(kind, text, names=("not valid JSON",))
    depth = draw(st.sampled_from([10, 900, 5_000, 100_000]))  # a whole nested document
    inner = draw(st.sampled_from(["", "1", _dumps(data)]))
    return Hostile("nested document", _deep(depth, inner),
                   names=("nested too deeply", "must be an object"))


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def _break_a_rule(draw, spec, data) -> str | None:
    """Break a rule between fields (a check() of the spec or of a block); the path it breaks,
    or None when this spec has no such rule to break."""
    rules = []
    if isinstance(spec, GoogLeNetSpec):
        rules.append(("branch3_kernel", 4))
    for where, obj in _objects(spec):
        if isinstance(obj, L.InceptionLayer):
            rules.append((f"{where}.branch3_kernel", 2))
        elif isinstance(obj, (L.MaxPool, L.AvgPool)):
            rules.append((f"{where}.padding", obj.kernel // 2 + 1))
        elif isinstance(obj, L.ResidualLayer):
            rules.append((f"{where}.use_1x1conv", False))
    if not rules:
        return None
    path, value = draw(st.sampled_from(rules))
    _set(data, _steps(path), value)
    if path.endswith("use_1x1conv"):
        _set(data, _steps(path)[:-1] + ["strides"], 2)
    return path
