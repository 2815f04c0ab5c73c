"""Hypothesis strategies: random specs of every family with its options, and random custom
chains, valid by construction or deliberately broken."""
from __future__ import annotations

from hypothesis import strategies as st

from cnnviz.errors import ShapeError
from cnnviz.models import build
from cnnviz.models.arithmetic import output_shape
from cnnviz.specs import (AlexNetSpec, ConvLayer, CustomSpec, DenseNetSpec, GoogLeNetSpec,
                          InceptionCfg, LeNetSpec, NiNBlockCfg, NiNSpec, ResNetSpec, VGGSpec)
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
