"""DenseNet: the b1 stem, dense blocks joined by transition layers, then BN, ReLU, pooling."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnviz.models.blocks import Transition, dense_block, init_weights, named_stages, stem
from cnnviz.models.registry import register


@register("densenet")
def densenet(spec) -> nn.Sequential:
    stages: list[tuple[str, nn.Module]] = [
        ("b1", stem(spec.in_channels, spec.stem_channels, bias=spec.conv_bias))]
    channels = spec.stem_channels
    last = len(spec.num_convs_in_dense_blocks) - 1
    for i, num_convs in enumerate(spec.num_convs_in_dense_blocks):
        dense = dense_block(num_convs, channels, spec.growth_rate,
                            bottleneck_size=spec.bottleneck_size, bias=spec.conv_bias)
        parts: list[tuple[str, nn.Module]] = [("dense", dense)]
        channels = dense.out_channels
        if i != last:
            # Transitions shrink the channels the concatenations keep adding, and halve H/W.
            out = max(1, int(channels * spec.compression))
            parts.append(("transition", Transition(channels, out, bias=spec.conv_bias)))
            channels = out
        stages.append((f"b{i + 2}", nn.Sequential(OrderedDict(parts))))
    head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(channels, spec.num_classes))
    return init_weights(named_stages(stages + [("head", head)]))
