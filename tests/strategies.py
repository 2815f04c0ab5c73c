"""Hypothesis strategies: random custom specs, valid by construction or deliberately broken."""
from __future__ import annotations

from hypothesis import strategies as st

from cnnviz.errors import ShapeError
from cnnviz.models import build
from cnnviz.models.arithmetic import output_shape
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L

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
    must_project = strides != 1 or num_channels != channels
    return L.ResidualLayer(num_channels, must_project or draw(st.booleans()), strides)


def feature_layer(channels: int):
    """Layers that take and give a C×H×W map."""
    return st.one_of(
        st.builds(L.Conv, small, st.integers(1, 7), st.integers(1, 3), st.integers(0, 3),
                  st.integers(1, 2), st.booleans()),
        pool(),
        st.just(L.BatchNorm()),
        st.sampled_from([L.ReLU(), L.Sigmoid(), L.GELU(), L.Dropout(0.5)]),
        st.builds(L.AdaptiveAvgPool, st.integers(1, 4)),
        st.builds(L.VGGBlockLayer, st.integers(1, 2), small),
        st.builds(L.NiNBlockLayer, small, st.integers(1, 5), st.integers(1, 3),
                  st.integers(0, 2)),
        st.builds(L.InceptionLayer, small, st.tuples(small, small), st.tuples(small, small),
                  small),
        residual(channels),
        st.builds(L.DenseBlockLayer, st.integers(1, 2), small),
        st.builds(L.TransitionLayer, small),
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
