"""ResNet: the b1 stem, then stages of residual blocks. The first block of every stage after
b2 halves height and width; a 1×1 convolution projects the shortcut whenever the shape changes."""
from __future__ import annotations

from torch import nn

from cnnviz.models.blocks import init_weights, named_stages, residual, stem
from cnnviz.models.registry import register


@register("resnet")
def resnet(spec) -> nn.Sequential:
    stages: list[tuple[str, nn.Module]] = [
        ("b1", stem(spec.in_channels, spec.stem_channels, bias=spec.conv_bias))]
    channels = spec.stem_channels
    for i, (num_residuals, num_channels) in enumerate(spec.stages):
        blocks = []
        for j in range(num_residuals):
            strides = 2 if j == 0 and i > 0 else 1
            block = residual(channels, num_channels, strides=strides,
                             use_1x1conv=strides != 1 or channels != _out(spec, num_channels),
                             bottleneck=spec.block == "bottleneck", bias=spec.conv_bias,
                             shortcut_batch_norm=spec.shortcut_batch_norm)
            blocks.append(block)
            channels = block.out_channels
        stages.append((f"b{i + 2}", nn.Sequential(*blocks)))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, spec.num_classes))
    return init_weights(named_stages(stages + [("head", head)]))


def _out(spec, num_channels: int) -> int:
    return num_channels * 4 if spec.block == "bottleneck" else num_channels
