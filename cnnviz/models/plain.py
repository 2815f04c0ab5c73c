"""LeNet and AlexNet: convolutions with pooling, then dense layers (same builder, two families)."""
from __future__ import annotations

from torch import nn

from cnnviz.models.blocks import classifier, conv_act, init_weights, named_stages
from cnnviz.models.registry import flat_features, register


@register("lenet")
@register("alexnet")
def plain_cnn(spec) -> nn.Sequential:
    """Stages ``b1``… end at each pooling layer; ``head`` is Flatten and the dense layers."""
    pool_cls = nn.MaxPool2d if spec.pool == "max" else nn.AvgPool2d
    stages: list[tuple[str, nn.Module]] = []
    current: list[nn.Module] = []
    channels = spec.in_channels
    for conv in spec.convs:
        current += conv_act(channels, conv.out_channels, conv.kernel, conv.stride, conv.padding,
                            act=spec.activation, batch_norm=spec.batch_norm)
        channels = conv.out_channels
        if conv.pool:
            current.append(pool_cls(kernel_size=spec.pool_kernel, stride=spec.pool_stride))
            stages.append((f"b{len(stages) + 1}", nn.Sequential(*current)))
            current = []
    if current:
        stages.append((f"b{len(stages) + 1}", nn.Sequential(*current)))
    if spec.adaptive_pool:
        stages[-1][1].append(nn.AdaptiveAvgPool2d(spec.adaptive_pool))
    in_features = flat_features(named_stages(stages), spec)
    head = nn.Sequential(nn.Flatten(), *classifier(
        in_features, spec.dense, spec.num_classes, act=spec.activation, dropout=spec.dropout,
        batch_norm=spec.batch_norm))
    return init_weights(named_stages(stages + [("head", head)]))
