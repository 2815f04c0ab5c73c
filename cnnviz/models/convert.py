"""Any family's network written out as the same network in ``custom``: a layer list.

:func:`to_custom` turns a spec of any family into a :class:`~cnnviz.specs.CustomSpec` whose
built model has the same layers with the same shapes and parameter counts, stage by stage:
every stage of the family (``b1``, ``b2``, …, ``head``) becomes a run of custom layers
(:func:`custom_stages`), its blocks the custom blocks with the family's options (a VGG block's
activation and BatchNorm, GoogLeNet's BasicConv2d, ResNet's bottleneck, DenseNet-BC's 1×1
bottleneck …), its stems and heads plain conv, batchnorm, activation, pooling, flatten, linear
and dropout layers. From there a learner can change anything.

There is no way back: a custom list need not have any family's shape.

It lives beside the builders because sizing a ``Flatten → Linear`` head is the builders' size
arithmetic (:func:`~cnnviz.models.registry.flat_features`), applied here to the custom layers
before the Flatten, so the Linear's ``in_features`` is what the family's builder computes.

One difference PyTorch does not count: the stem BatchNorms of a GoogLeNet with ``batch_norm``
use eps 1e-3 there (torchvision's BasicConv2d) and PyTorch's default 1e-5 as custom
``batchnorm`` layers. The Inception blocks keep 1e-3; shapes and parameters are the same.
"""
from __future__ import annotations

from typing import Callable

from cnnviz.errors import Problem, SpecError
from cnnviz.models.registry import build_meta, flat_features
from cnnviz.specs import CustomSpec, validate
from cnnviz.specs import custom as L

Stage = tuple[str, tuple]  # (the family's stage name, its custom layers)

_CONVERTERS: dict[str, Callable[..., list[Stage]]] = {}


def _converter(*families: str) -> Callable:
    def decorator(fn: Callable) -> Callable:
        for family in families:
            _CONVERTERS[family] = fn
        return fn
    return decorator


def custom_stages(spec) -> list[Stage]:
    """The layers of :func:`to_custom`, grouped by the stages of the family's model (named as
    its children: ``b1``, …, ``head``; a custom spec's children are its layers ``0``, ``1``, …).

    Raises :class:`SpecError` where the family's network cannot be built either (an input size
    too small for a ``Flatten → Linear`` head to be sized).
    """
    problems = validate(spec)
    if problems:
        raise SpecError(problems)
    if spec.family == "custom":
        return [(str(i), (layer,)) for i, layer in enumerate(spec.layers)]
    return _CONVERTERS[spec.family](spec)


def to_custom(spec) -> CustomSpec:
    """``spec`` as a custom layer list: the same network, shapes and parameter count.

    A custom spec is returned as it is. Raises :class:`SpecError` when the family's network
    cannot be built, or when its layer list is longer than a custom network may be.
    """
    if spec.family == "custom":
        return spec
    layers = tuple(layer for _, stage in custom_stages(spec) for layer in stage)
    custom = CustomSpec(spec.in_channels, spec.num_classes, spec.input_size, layers)
    problems = validate(custom)
    if problems:
        raise SpecError([Problem("", f"as custom layers it would break a bound: {p}")
                         for p in problems])
    return custom


# --- pieces several families share -----------------------------------------------------------

def _conv_act(out: int, kernel: int, stride: int, padding: int, *, act: str = "relu",
              batch_norm: bool, bias: bool = True) -> list:
    """Conv → [BatchNorm] → activation, as :func:`cnnviz.models.blocks.conv_act` builds it."""
    return [L.Conv(out, kernel, stride, padding, bias=bias),
            *([L.BatchNorm()] if batch_norm else []), L.LAYER_TYPES[act]()]


def _stem(spec) -> list:
    """ResNet's and DenseNet's b1 (:func:`cnnviz.models.blocks.stem`)."""
    return [L.Conv(spec.stem_channels, 7, 2, 3, bias=spec.conv_bias), L.BatchNorm(), L.ReLU(),
            L.MaxPool(3, 2, 1)]


def _classifier(spec, before: list, widths: tuple[int, ...], *, batch_norm: bool = False
                ) -> list:
    """Flatten and the dense layers (:func:`cnnviz.models.blocks.classifier`); the first
    Linear takes what ``before`` (every layer up to the Flatten) gives at the input size."""
    model = build_meta(CustomSpec(spec.in_channels, spec.num_classes, spec.input_size,
                                  tuple(before)))
    features = flat_features(model, spec)
    layers: list = [L.Flatten()]
    for width in widths:
        layers += [L.Linear(features, width), *([L.BatchNorm()] if batch_norm else []),
                   L.LAYER_TYPES[spec.activation](), *([L.Dropout(spec.dropout)] if spec.dropout
                                                    else [])]
        features = width
    return layers + [L.Linear(features, spec.num_classes)]


def _numbered(stages: list[list]) -> list[Stage]:
    return [(f"b{i}", tuple(stage)) for i, stage in enumerate(stages, 1)]


def _flat(stages: list[Stage]) -> list:
    return [layer for _, stage in stages for layer in stage]


# --- one converter per builder, in the builder's order ---------------------------------------

@_converter("lenet", "alexnet")
def _plain_cnn(spec) -> list[Stage]:
    pool = L.MaxPool if spec.pool == "max" else L.AvgPool
    stages: list[list] = []
    current: list = []
    for conv in spec.convs:
        current += _conv_act(conv.out_channels, conv.kernel, conv.stride, conv.padding,
                             act=spec.activation, batch_norm=spec.batch_norm)
        if conv.pool:
            stages.append(current + [pool(spec.pool_kernel, spec.pool_stride)])
            current = []
    if current:
        stages.append(current)
    if spec.adaptive_pool:
        stages[-1].append(L.AdaptiveAvgPool(spec.adaptive_pool))
    numbered = _numbered(stages)
    head = _classifier(spec, _flat(numbered), spec.dense, batch_norm=spec.batch_norm)
    return numbered + [("head", tuple(head))]


@_converter("vgg")
def _vgg(spec) -> list[Stage]:
    numbered = _numbered([[L.VGGBlockLayer(n, c, spec.activation, spec.batch_norm)]
                          for n, c in spec.arch])
    pool = [L.AdaptiveAvgPool(spec.adaptive_pool)] if spec.adaptive_pool else []
    head = pool + _classifier(spec, _flat(numbered) + pool, spec.dense)
    return numbered + [("head", tuple(head))]


@_converter("nin")
def _nin(spec) -> list[Stage]:
    stages: list[list] = [[L.NiNBlockLayer(b.out_channels, b.kernel, b.stride, b.padding,
                                           spec.activation, spec.batch_norm), L.MaxPool(3, 2)]
                          for b in spec.blocks]
    stages.append([*([L.Dropout(spec.dropout)] if spec.dropout else []),
                   L.NiNBlockLayer(spec.num_classes, 3, 1, 1, spec.activation,
                                   spec.batch_norm)])
    return _numbered(stages) + [("head", (L.AdaptiveAvgPool(1), L.Flatten()))]


@_converter("googlenet")
def _googlenet(spec) -> list[Stage]:
    bn = spec.batch_norm

    def conv(out: int, kernel: int, stride: int = 1, padding: int = 0) -> list:
        return _conv_act(out, kernel, stride, padding, batch_norm=bn, bias=not bn)

    def pool(torchvision_kernel: int = 3) -> L.MaxPool:
        if spec.ceil_mode:
            return L.MaxPool(torchvision_kernel, 2, ceil_mode=True)
        return L.MaxPool(3, 2, 1)

    def inceptions(cfgs) -> list:
        return [L.InceptionLayer(c.c1, c.c2, c.c3, c.c4, spec.branch3_kernel, bn,
                                 spec.ceil_mode) for c in cfgs]

    s0, s1, s2 = spec.stem_channels
    stages = [conv(s0, 7, 2, 3) + [pool()], conv(s1, 1) + conv(s2, 3, padding=1) + [pool()],
              inceptions(spec.b3) + [pool()], inceptions(spec.b4) + [pool(2)],
              inceptions(spec.b5) + [L.AdaptiveAvgPool(1), L.Flatten()]]
    head = [*([L.Dropout(spec.dropout)] if spec.dropout else []),
            L.Linear(spec.b5[-1].out_channels, spec.num_classes)]
    return _numbered(stages) + [("head", tuple(head))]


@_converter("resnet")
def _resnet(spec) -> list[Stage]:
    stages: list[list] = [_stem(spec)]
    channels = spec.stem_channels
    for i, (num_residuals, num_channels) in enumerate(spec.stages):
        blocks = []
        for j in range(num_residuals):
            strides = 2 if j == 0 and i > 0 else 1
            out = num_channels * 4 if spec.block == "bottleneck" else num_channels
            project = strides != 1 or channels != out
            blocks.append(L.ResidualLayer(num_channels, project, strides,
                                          spec.block == "bottleneck", spec.conv_bias,
                                          project and spec.shortcut_batch_norm))
            channels = out
        stages.append(blocks)
    head = (L.AdaptiveAvgPool(1), L.Flatten(), L.Linear(channels, spec.num_classes))
    return _numbered(stages) + [("head", head)]


@_converter("densenet")
def _densenet(spec) -> list[Stage]:
    stages: list[list] = [_stem(spec)]
    channels = spec.stem_channels
    last = len(spec.num_convs_in_dense_blocks) - 1
    for i, num_convs in enumerate(spec.num_convs_in_dense_blocks):
        stage: list = [L.DenseBlockLayer(num_convs, spec.growth_rate, spec.bottleneck_size,
                                         spec.conv_bias)]
        channels += num_convs * spec.growth_rate
        if i != last:
            channels = max(1, int(channels * spec.compression))
            stage.append(L.TransitionLayer(channels, spec.conv_bias))
        stages.append(stage)
    head = (L.BatchNorm(), L.ReLU(), L.AdaptiveAvgPool(1), L.Flatten(),
            L.Linear(channels, spec.num_classes))
    return _numbered(stages) + [("head", head)]


def conversion_note(spec, custom: CustomSpec) -> str:
    """One line for the learner after ``custom = to_custom(spec)``: what happened, and the
    parameter count, counted on both networks rather than assumed."""
    before, after = (sum(p.numel() for p in build_meta(s).parameters()) for s in (spec, custom))
    count = f"the same {after:,} parameters" if after == before else \
        f"{after:,} parameters instead of {before:,}"
    return (f"Converted: this {spec.title} is now {len(custom.layers)} custom layers and "
            f"blocks, the same network with {count}. Every layer is yours to edit.")
