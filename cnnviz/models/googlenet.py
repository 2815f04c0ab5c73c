"""GoogLeNet: the b1/b2 stem, then Inception stages b3, b4, b5 and a Linear head."""
from __future__ import annotations

from torch import nn

from cnnviz.models.blocks import conv_act, inception, init_weights, named_stages
from cnnviz.models.registry import register


@register("googlenet")
def googlenet(spec) -> nn.Sequential:
    bn = spec.batch_norm

    def conv(i: int, o: int, k: int, s: int = 1, p: int = 0) -> list[nn.Module]:
        return conv_act(i, o, k, s, p, batch_norm=bn, bias=not bn, bn_eps=1e-3)

    def pool(torchvision_kernel: int = 3) -> nn.MaxPool2d:
        # The book pads by 1; torchvision pads by 0, rounds up (ceil_mode) and uses a 2×2
        # window before b5.
        if spec.ceil_mode:
            return nn.MaxPool2d(torchvision_kernel, stride=2, ceil_mode=True)
        return nn.MaxPool2d(3, stride=2, padding=1)

    def inceptions(channels: int, cfgs) -> tuple[list[nn.Module], int]:
        blocks = []
        for c in cfgs:
            blocks.append(inception(channels, c.c1, c.c2, c.c3, c.c4, batch_norm=bn,
                                    branch3_kernel=spec.branch3_kernel,
                                    ceil_mode=spec.ceil_mode))
            channels = blocks[-1].out_channels
        return blocks, channels

    s0, s1, s2 = spec.stem_channels
    b1 = nn.Sequential(*conv(spec.in_channels, s0, 7, 2, 3), pool())
    b2 = nn.Sequential(*conv(s0, s1, 1), *conv(s1, s2, 3, p=1), pool())
    blocks3, channels = inceptions(s2, spec.b3)
    blocks4, channels = inceptions(channels, spec.b4)
    blocks5, channels = inceptions(channels, spec.b5)
    b3 = nn.Sequential(*blocks3, pool())
    b4 = nn.Sequential(*blocks4, pool(torchvision_kernel=2))
    b5 = nn.Sequential(*blocks5, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head = [nn.Dropout(spec.dropout)] if spec.dropout else []
    head.append(nn.Linear(channels, spec.num_classes))
    return init_weights(named_stages([("b1", b1), ("b2", b2), ("b3", b3), ("b4", b4),
                                      ("b5", b5), ("head", nn.Sequential(*head))]))
