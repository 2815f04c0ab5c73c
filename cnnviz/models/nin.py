"""NiN: nin_blocks with max pooling, then a nin_block per class and global average pooling."""
from __future__ import annotations

from torch import nn

from cnnviz.models.blocks import NiNBlock, init_weights, named_stages
from cnnviz.models.registry import register


@register("nin")
def nin(spec) -> nn.Sequential:
    stages: list[tuple[str, nn.Module]] = []
    channels = spec.in_channels
    kw = {"act": spec.activation, "batch_norm": spec.batch_norm}
    for i, b in enumerate(spec.blocks, 1):
        stages.append((f"b{i}", nn.Sequential(
            NiNBlock(channels, b.out_channels, b.kernel, b.stride, b.padding, **kw),
            nn.MaxPool2d(kernel_size=3, stride=2))))
        channels = b.out_channels
    last: list[nn.Module] = [nn.Dropout(spec.dropout)] if spec.dropout else []
    last.append(NiNBlock(channels, spec.num_classes, 3, 1, 1, **kw))
    stages.append((f"b{len(stages) + 1}", nn.Sequential(*last)))
    # Global average pooling replaces the dense layers: any input size from the minimum up.
    stages.append(("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return init_weights(named_stages(stages))
