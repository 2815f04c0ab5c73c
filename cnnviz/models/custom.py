"""``custom``: build any chain of layers and blocks, inferring channels along the way."""
from __future__ import annotations

from torch import nn

from cnnviz.errors import Problem, SpecError
from cnnviz.models import blocks
from cnnviz.models.registry import register
from cnnviz.specs import custom as L


class _Chain:
    """What flows between layers: a C×H×W map (``channels``) or flat ``features``."""

    def __init__(self, in_channels: int):
        self.channels: int | None = in_channels
        self.features: int | None = None  # None after Flatten: depends on the input size


@register("custom")
def custom(spec) -> nn.Sequential:
    chain = _Chain(spec.in_channels)
    problems: list[Problem] = []
    modules: list[nn.Module] = []
    for i, layer in enumerate(spec.layers):
        module = _layer(layer, chain, f"layers[{i}]", problems)
        if module is not None:
            modules.append(module)
    if problems:
        raise SpecError(problems)
    return blocks.init_weights(nn.Sequential(*modules))


def _needs_map(chain: _Chain, path: str, what: str, problems: list[Problem]) -> bool:
    if chain.channels is None:
        problems.append(Problem(path, f"{what} needs a C×H×W feature map, but it comes after "
                                      "flatten; move it before the flatten"))
        return False
    return True


def _layer(layer, chain: _Chain, path: str, problems: list[Problem]) -> nn.Module | None:
    c = chain.channels
    if isinstance(layer, (L.ReLU, L.Sigmoid, L.GELU)):
        return blocks.activation(layer.type)
    if isinstance(layer, L.Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, L.Flatten):
        if c is not None:
            chain.channels, chain.features = None, None
        return nn.Flatten()
    if isinstance(layer, L.Linear):
        if c is not None:
            problems.append(Problem(path, "linear needs flat features: add a flatten before it "
                                          "(the C×H×W map must be flattened first)"))
            return None
        if chain.features is not None and chain.features != layer.in_features:
            problems.append(Problem(f"{path}.in_features", f"the previous layer gives "
                                    f"{chain.features} features, not {layer.in_features}"))
        chain.features = layer.out_features
        return nn.Linear(layer.in_features, layer.out_features)
    if isinstance(layer, L.BatchNorm):
        if c is not None:
            return nn.BatchNorm2d(c)
        if chain.features is None:
            problems.append(Problem(path, "batchnorm right after flatten: the number of "
                                          "features depends on the input size; put it after a "
                                          "linear layer"))
            return None
        return nn.BatchNorm1d(chain.features)
    if not _needs_map(chain, path, layer.type, problems):
        return None
    if isinstance(layer, L.Conv):
        chain.channels = layer.out_channels
        return nn.Conv2d(c, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                         layer.dilation, bias=layer.bias)
    if isinstance(layer, (L.MaxPool, L.AvgPool)):
        cls = nn.MaxPool2d if isinstance(layer, L.MaxPool) else nn.AvgPool2d
        return cls(layer.kernel, layer.stride, layer.padding, ceil_mode=layer.ceil_mode)
    if isinstance(layer, L.AdaptiveAvgPool):
        return nn.AdaptiveAvgPool2d(layer.output_size)
    if isinstance(layer, L.VGGBlockLayer):
        module = blocks.VGGBlock(layer.num_convs, c, layer.out_channels, act=layer.activation,
                                 batch_norm=layer.batch_norm)
    elif isinstance(layer, L.NiNBlockLayer):
        module = blocks.NiNBlock(c, layer.out_channels, layer.kernel, layer.stride,
                                 layer.padding, act=layer.activation,
                                 batch_norm=layer.batch_norm)
    elif isinstance(layer, L.InceptionLayer):
        module = blocks.inception(c, layer.c1, layer.c2, layer.c3, layer.c4,
                                  branch3_kernel=layer.branch3_kernel,
                                  batch_norm=layer.batch_norm, ceil_mode=layer.ceil_mode)
    elif isinstance(layer, L.ResidualLayer):
        if not layer.use_1x1conv and c != layer.out_channels:
            width = f"4 × num_channels ({layer.out_channels})" if layer.bottleneck else \
                f"num_channels ({layer.num_channels})"
            problems.append(Problem(f"{path}.use_1x1conv", f"must be true when the input "
                                    f"channels ({c}) differ from {width}: x and f(x) must "
                                    "have one shape to be added"))
            return None
        module = blocks.residual(c, layer.num_channels, use_1x1conv=layer.use_1x1conv,
                                 strides=layer.strides, bottleneck=layer.bottleneck,
                                 bias=layer.bias,
                                 shortcut_batch_norm=layer.shortcut_batch_norm)
    elif isinstance(layer, L.DenseBlockLayer):
        module = blocks.dense_block(layer.num_convs, c, layer.growth_rate,
                                    bottleneck_size=layer.bottleneck_size, bias=layer.bias)
    elif isinstance(layer, L.TransitionLayer):
        module = blocks.Transition(c, layer.out_channels, bias=layer.bias)
    else:  # pragma: no cover - every layer type of the spec is handled above
        raise TypeError(f"no builder for layer type {layer.type}")
    chain.channels = module.out_channels
    return module
