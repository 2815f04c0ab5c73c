"""The book's building blocks as typed modules, shared by every family and by ``custom``.

Block classes expose their structure (``body``/``shortcut``, ``paths``, ``layers``) so that the
size arithmetic in :mod:`cnnviz.shapes` can follow them without running a forward pass.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


def activation(name: str) -> nn.Module:
    return ACTIVATION_MODULES[name]()


def conv_act(in_channels: int, out_channels: int, kernel: int, stride: int = 1,
             padding: int = 0, *, act: str = "relu", batch_norm: bool = False,
             bias: bool = True, bn_eps: float = 1e-5) -> list[nn.Module]:
    """Conv2d → [BatchNorm2d] → activation, as a list to splice into a stage."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride, padding,
                                         bias=bias)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels, eps=bn_eps))
    layers.append(activation(act))
    return layers


class VGGBlock(nn.Sequential):
    """``num_convs`` 3×3 convolutions (padding 1) with activations, then 2×2 max pooling."""

    def __init__(self, num_convs: int, in_channels: int, out_channels: int, *,
                 act: str = "relu", batch_norm: bool = False):
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers += conv_act(in_channels, out_channels, 3, padding=1, act=act,
                               batch_norm=batch_norm)
            in_channels = out_channels
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        super().__init__(*layers)
        self.out_channels = out_channels


class NiNBlock(nn.Sequential):
    """A k×k convolution, then two 1×1 convolutions: an MLP across channels at every pixel."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 padding: int, *, act: str = "relu", batch_norm: bool = False):
        layers = conv_act(in_channels, out_channels, kernel, stride, padding, act=act,
                          batch_norm=batch_norm)
        for _ in range(2):
            layers += conv_act(out_channels, out_channels, 1, act=act, batch_norm=batch_norm)
        super().__init__(*layers)
        self.out_channels = out_channels


class Inception(nn.Module):
    """Four parallel paths p1..p4 whose outputs are concatenated along channels."""

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int],
                 c4: int, *, branch3_kernel: int = 5, batch_norm: bool = False,
                 ceil_mode: bool = False):
        super().__init__()

        def unit(i: int, o: int, k: int, p: int = 0) -> list[nn.Module]:
            return conv_act(i, o, k, padding=p, batch_norm=batch_norm, bias=not batch_norm,
                            bn_eps=1e-3)

        self.p1 = nn.Sequential(*unit(in_channels, c1, 1))
        self.p2 = nn.Sequential(*unit(in_channels, c2[0], 1), *unit(c2[0], c2[1], 3, 1))
        self.p3 = nn.Sequential(*unit(in_channels, c3[0], 1),
                                *unit(c3[0], c3[1], branch3_kernel, branch3_kernel // 2))
        self.p4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode),
                                *unit(in_channels, c4, 1))
        self.out_channels = c1 + c2[1] + c3[1] + c4

    @property
    def paths(self) -> list[nn.Module]:
        return [self.p1, self.p2, self.p3, self.p4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x) for p in self.paths], dim=1)


class Residual(nn.Module):
    """``act(body(x) + shortcut(x))``: the main path learns only the residual."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module, out_channels: int):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = nn.ReLU()
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def residual(in_channels: int, num_channels: int, *, use_1x1conv: bool = False,
             strides: int = 1, bottleneck: bool = False, bias: bool = True,
             shortcut_batch_norm: bool = False) -> Residual:
    """The book's Residual block (basic), or the 1×1 → 3×3 → 1×1 bottleneck (4× wider out)."""
    if bottleneck:
        out = num_channels * 4
        body = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, num_channels, 1, bias=bias)),
            ("bn1", nn.BatchNorm2d(num_channels)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(num_channels, num_channels, 3, strides, 1, bias=bias)),
            ("bn2", nn.BatchNorm2d(num_channels)), ("relu2", nn.ReLU()),
            ("conv3", nn.Conv2d(num_channels, out, 1, bias=bias)),
            ("bn3", nn.BatchNorm2d(out))]))
    else:
        out = num_channels
        body = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, num_channels, 3, strides, 1, bias=bias)),
            ("bn1", nn.BatchNorm2d(num_channels)), ("relu1", nn.ReLU()),
            ("conv2", nn.Conv2d(num_channels, num_channels, 3, padding=1, bias=bias)),
            ("bn2", nn.BatchNorm2d(num_channels))]))
    if use_1x1conv:
        projection: list[tuple[str, nn.Module]] = [
            ("conv", nn.Conv2d(in_channels, out, 1, strides, bias=bias))]
        if shortcut_batch_norm:
            projection.append(("bn", nn.BatchNorm2d(out)))
        shortcut: nn.Module = nn.Sequential(OrderedDict(projection))
    else:
        shortcut = nn.Identity()
    return Residual(body, shortcut, out)


def dense_conv_block(in_channels: int, growth_rate: int, *, bottleneck_size: int = 0,
                     bias: bool = True) -> nn.Sequential:
    """BN → ReLU → 3×3 conv (the book), or with a 1×1 bottleneck first (DenseNet-BC)."""
    layers: list[nn.Module] = []
    if bottleneck_size:
        width = bottleneck_size * growth_rate
        layers += [nn.BatchNorm2d(in_channels), nn.ReLU(),
                   nn.Conv2d(in_channels, width, 1, bias=bias)]
        in_channels = width
    layers += [nn.BatchNorm2d(in_channels), nn.ReLU(),
               nn.Conv2d(in_channels, growth_rate, 3, padding=1, bias=bias)]
    return nn.Sequential(*layers)


class DenseBlock(nn.Module):
    """Each conv block sees the concatenation of the block input and every earlier output."""

    def __init__(self, num_convs: int, in_channels: int, growth_rate: int, *,
                 bottleneck_size: int = 0, bias: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(
            dense_conv_block(in_channels + i * growth_rate, growth_rate,
                             bottleneck_size=bottleneck_size, bias=bias)
            for i in range(num_convs))
        self.out_channels = in_channels + num_convs * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat((x, layer(x)), dim=1)
        return x


class Transition(nn.Sequential):
    """BN → ReLU → 1×1 conv (fewer channels) → 2×2 average pooling (half the height/width)."""

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True):
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, 1, bias=bias),
                         nn.AvgPool2d(kernel_size=2, stride=2))
        self.out_channels = out_channels


def stem(in_channels: int, out_channels: int, *, bias: bool = True) -> nn.Sequential:
    """ResNet's and DenseNet's b1: 7×7/2 conv, BN, ReLU, 3×3/2 max pooling."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=bias),
                         nn.BatchNorm2d(out_channels), nn.ReLU(),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def classifier(in_features: int, widths: tuple[int, ...], num_classes: int, *,
               act: str = "relu", dropout: float = 0.0,
               batch_norm: bool = False) -> list[nn.Module]:
    """Dense layers after Flatten: Linear → [BN] → act → [Dropout] per width, then the output."""
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(nn.Linear(in_features, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(activation(act))
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return layers


def named_stages(stages: list[tuple[str, nn.Module]]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(stages))


def init_weights(model: nn.Module) -> nn.Module:
    """The book's initialisation (``train_ch6``): Xavier-uniform weights, zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
