"""The book's building blocks as typed modules, shared by every family and by ``custom``.

Every container block carries its *shape rule* beside its ``forward``: ``shape_rule(shape,
trace_child, name)`` says how the block's output shape follows from its input shape, calling
``trace_child(child_name, shape)`` for each child in the order ``forward`` runs them. The size
arithmetic (:mod:`cnnviz.models.arithmetic`) calls it and knows no block class by name.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from cnnviz.errors import Shape, ShapeError, fmt_shape

# trace_child(child_name, input_shape) -> output_shape; records the child in the layer table.
TraceChild = Callable[[str, Shape], Shape]

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


class ChainBlock(nn.Sequential):
    """A block that runs its layers one after another (no forward of its own)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            raise TypeError(f"{cls.__name__} is a ChainBlock: its layers run in order, so it "
                            "cannot have a forward of its own; derive from nn.Module instead")

    def shape_rule(self, shape: Shape, trace_child: TraceChild, name: str) -> Shape:
        for child_name in self._modules:
            shape = trace_child(child_name, shape)
        return shape


class VGGBlock(ChainBlock):
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


class NiNBlock(ChainBlock):
    """A k×k convolution, then two 1×1 convolutions: an MLP across channels at every pixel."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 padding: int, *, act: str = "relu", batch_norm: bool = False):
        layers = conv_act(in_channels, out_channels, kernel, stride, padding, act=act,
                          batch_norm=batch_norm)
        for _ in range(2):
            layers += conv_act(out_channels, out_channels, 1, act=act, batch_norm=batch_norm)
        super().__init__(*layers)
        self.out_channels = out_channels


class Transition(ChainBlock):
    """BN → ReLU → 1×1 conv (fewer channels) → 2×2 average pooling (half the height/width)."""

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True):
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(),
                         nn.Conv2d(in_channels, out_channels, 1, bias=bias),
                         nn.AvgPool2d(kernel_size=2, stride=2))
        self.out_channels = out_channels


# torch's containers whose children simply run one after another (exactly these types: a
# subclass may have a forward of its own).
PLAIN_CONTAINERS = (nn.Sequential, nn.ModuleList)


def runs_in_order(module: nn.Module) -> bool:
    """Whether ``module``'s children simply run one after another: torch's plain containers
    and ChainBlocks. The size arithmetic and the code export both ask this."""
    return type(module) in PLAIN_CONTAINERS or isinstance(module, ChainBlock)


# The blocks below have a forward of their own. Their constructors take the built paths, so
# the exported PyTorch code (cnnviz.codegen) copies each class as it stands here; the methods
# named in cnnviz.codegen.LIBRARY_ONLY (the shape rule, out_channels) stay behind.

class Inception(nn.Module):
    """Four parallel paths p1..p4 whose outputs are concatenated along channels."""

    def __init__(self, p1: nn.Module, p2: nn.Module, p3: nn.Module, p4: nn.Module):
        super().__init__()
        self.p1, self.p2, self.p3, self.p4 = p1, p2, p3, p4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.p1(x), self.p2(x), self.p3(x), self.p4(x)], dim=1)

    @property
    def out_channels(self) -> int:
        return sum(last_conv(p).out_channels for p in (self.p1, self.p2, self.p3, self.p4))

    def shape_rule(self, shape: Shape, trace_child: TraceChild, name: str) -> Shape:
        outs = [trace_child(f"p{i}", shape) for i in range(1, 5)]
        if len({o[1:] for o in outs}) != 1:
            sizes = ", ".join(fmt_shape(o[1:]) for o in outs)
            raise ShapeError(name, "Inception", f"paths give different sizes ({sizes}); "
                             "they must match to be concatenated", "other")
        return (sum(o[0] for o in outs), *outs[0][1:])


class Residual(nn.Module):
    """``act(body(x) + shortcut(x))``: the main path learns only the residual."""

    def __init__(self, body: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))

    @property
    def out_channels(self) -> int:
        return last_conv(self.body).out_channels

    def shape_rule(self, shape: Shape, trace_child: TraceChild, name: str) -> Shape:
        main = trace_child("body", shape)
        short = trace_child("shortcut", shape)
        if main != short:
            raise ShapeError(name, "Residual", f"main path gives {fmt_shape(main)} but the "
                             f"shortcut gives {fmt_shape(short)}; they must match to be added",
                             "other")
        return trace_child("act", main)


class DenseBlock(nn.Module):
    """Each conv block sees the concatenation of the block input and every earlier output."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat((x, layer(x)), dim=1)
        return x

    @property
    def out_channels(self) -> int:
        return in_channels(self) + sum(last_conv(layer).out_channels for layer in self.layers)

    def shape_rule(self, shape: Shape, trace_child: TraceChild, name: str) -> Shape:
        for i in range(len(self.layers)):
            out = trace_child(f"layers.{i}", shape)
            if out[1:] != shape[1:]:
                raise ShapeError(name, "DenseBlock", f"conv block {i} changes the size from "
                                 f"{fmt_shape(shape[1:])} to {fmt_shape(out[1:])}", "other")
            shape = (shape[0] + out[0], *shape[1:])
        return shape


# Inception's four paths as the book names them: what each does, and its channel count's name.
INCEPTION_PATHS = ("1×1 conv", "1×1 conv → 3×3 conv", "1×1 conv → 5×5 conv",
                   "3×3 max-pool → 1×1 conv")
INCEPTION_COUNTS = ("c1", "c2[1]", "c3[1]", "c4")


def transition_after(model: nn.Module, path: str) -> str | None:
    """The path of the Transition right after the module at ``path`` among its siblings (a
    DenseNet stage's dense block and its transition), or None."""
    parent = path.rpartition(".")[0]
    siblings = [name for name, _ in (model.get_submodule(parent) if parent else model)
                .named_children()]
    names = [f"{parent}.{n}" if parent else n for n in siblings]
    if path not in names:
        return None
    after = names[names.index(path) + 1:]
    return after[0] if after and isinstance(model.get_submodule(after[0]), Transition) else None


def last_conv(module: nn.Module) -> nn.Conv2d:
    """The last convolution inside ``module``: it decides the channels the module gives."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(module).__name__} has no convolution to give its channels")
    return convs[-1]


def in_channels(module: nn.Module) -> int:
    """The channels ``module`` takes: those of its first convolution or BatchNorm2d."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
        if isinstance(m, nn.BatchNorm2d):
            return m.num_features
    raise ValueError(f"{type(module).__name__} has no layer that fixes its input channels")


def inception(in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int, *,
              branch3_kernel: int = 5, batch_norm: bool = False,
              ceil_mode: bool = False) -> Inception:
    """The book's Inception block from its channel counts c1..c4 (torchvision's with BN)."""

    def unit(i: int, o: int, k: int, p: int = 0) -> list[nn.Module]:
        return conv_act(i, o, k, padding=p, batch_norm=batch_norm, bias=not batch_norm,
                        bn_eps=1e-3)

    return Inception(
        nn.Sequential(*unit(in_channels, c1, 1)),
        nn.Sequential(*unit(in_channels, c2[0], 1), *unit(c2[0], c2[1], 3, 1)),
        nn.Sequential(*unit(in_channels, c3[0], 1),
                      *unit(c3[0], c3[1], branch3_kernel, branch3_kernel // 2)),
        nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode),
                      *unit(in_channels, c4, 1)))


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
    return Residual(body, shortcut)


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


def dense_block(num_convs: int, in_channels: int, growth_rate: int, *,
                bottleneck_size: int = 0, bias: bool = True) -> DenseBlock:
    """``num_convs`` conv blocks; the i-th sees ``in_channels + i·growth_rate`` channels."""
    return DenseBlock([dense_conv_block(in_channels + i * growth_rate, growth_rate,
                                        bottleneck_size=bottleneck_size, bias=bias)
                       for i in range(num_convs)])


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


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """The book's initialisation (``train_ch6``): Xavier-uniform weights, zero biases.

    With ``generator`` the weights are drawn from it alone: a run seeds its own generator
    instead of torch's process-wide one, which every other session's thread shares.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight, generator=generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
