"""VGG: one vgg_block per (num_convs, out_channels) pair of ``arch``, then dense layers."""
from __future__ import annotations

from torch import nn

from cnnviz.models.blocks import VGGBlock, classifier, init_weights, named_stages
from cnnviz.models.registry import flat_features, register


@register("vgg")
def vgg(spec) -> nn.Sequential:
    stages: list[tuple[str, nn.Module]] = []
    channels = spec.in_channels
    for i, (num_convs, out_channels) in enumerate(spec.arch, 1):
        stages.append((f"b{i}", VGGBlock(num_convs, channels, out_channels,
                                         act=spec.activation, batch_norm=spec.batch_norm)))
        channels = out_channels
    pool = [nn.AdaptiveAvgPool2d(spec.adaptive_pool)] if spec.adaptive_pool else []
    in_features = flat_features(named_stages(stages + [("pool", nn.Sequential(*pool))]), spec)
    head = nn.Sequential(*pool, nn.Flatten(), *classifier(
        in_features, spec.dense, spec.num_classes, act=spec.activation, dropout=spec.dropout))
    return init_weights(named_stages(stages + [("head", head)]))
