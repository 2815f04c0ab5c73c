"""One frozen spec dataclass per family of the book. Fields are d2l's own knobs.

Every spec also carries ``in_channels``, ``num_classes`` and ``input_size`` (the side length
the network is meant for; families whose head is ``Flatten → Linear`` size that Linear from it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cnnviz.errors import Problem
from cnnviz.specs.fields import knob

ACTIVATIONS = ("relu", "sigmoid", "gelu")


@dataclass(frozen=True)
class ConvLayer:
    """One convolution of LeNet/AlexNet; ``pool`` puts the family's pooling layer after it."""

    out_channels: int = knob(min=1)
    kernel: int = knob(min=1)
    stride: int = knob(1, min=1)
    padding: int = knob(0, min=0)
    pool: bool = knob(False)


@dataclass(frozen=True)
class PlainCNNSpec:
    """Convolutions with pooling, then dense layers: the shape LeNet and AlexNet share.

    The defaults are LeNet's; :class:`AlexNetSpec` changes only the defaults that differ.
    """

    in_channels: int = knob(1, min=1)
    num_classes: int = knob(10, min=1)
    input_size: int = knob(28, min=1)
    convs: tuple[ConvLayer, ...] = knob(
        (ConvLayer(6, 5, padding=2, pool=True), ConvLayer(16, 5, pool=True)), nonempty=True)
    pool: str = knob("avg", choices=("avg", "max"))
    pool_kernel: int = knob(2, min=1)
    pool_stride: int = knob(2, min=1)
    dense: tuple[int, ...] = knob((120, 84), min=1)
    activation: str = knob("sigmoid", choices=ACTIVATIONS)
    batch_norm: bool = knob(False, doc="BatchNorm after every conv and hidden dense layer")
    dropout: float = knob(0.0, min=0.0, lt=1.0)
    adaptive_pool: int = knob(0, min=0, doc="0: none; n: AdaptiveAvgPool2d(n) before Flatten "
                                            "(torchvision's AlexNet: 6)")


@dataclass(frozen=True)
class LeNetSpec(PlainCNNSpec):
    family: ClassVar[str] = "lenet"


@dataclass(frozen=True)
class AlexNetSpec(PlainCNNSpec):
    family: ClassVar[str] = "alexnet"
    input_size: int = knob(224, min=1)
    convs: tuple[ConvLayer, ...] = knob(
        (ConvLayer(96, 11, stride=4, padding=1, pool=True),
         ConvLayer(256, 5, padding=2, pool=True),
         ConvLayer(384, 3, padding=1),
         ConvLayer(384, 3, padding=1),
         ConvLayer(256, 3, padding=1, pool=True)), nonempty=True)
    pool: str = knob("max", choices=("avg", "max"))
    pool_kernel: int = knob(3, min=1)
    dense: tuple[int, ...] = knob((4096, 4096), min=1)
    activation: str = knob("relu", choices=ACTIVATIONS)
    dropout: float = knob(0.5, min=0.0, lt=1.0)


@dataclass(frozen=True)
class VGGSpec:
    """``arch`` is the book's ((num_convs, out_channels), ...): one vgg_block per pair."""

    family: ClassVar[str] = "vgg"
    in_channels: int = knob(1, min=1)
    num_classes: int = knob(10, min=1)
    input_size: int = knob(224, min=1)
    arch: tuple[tuple[int, int], ...] = knob(
        ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)), min=1, nonempty=True)
    dense: tuple[int, ...] = knob((4096, 4096), min=1)
    activation: str = knob("relu", choices=ACTIVATIONS)
    batch_norm: bool = knob(False)
    dropout: float = knob(0.5, min=0.0, lt=1.0)
    adaptive_pool: int = knob(0, min=0, doc="0: none; 7: torchvision's AdaptiveAvgPool2d(7)")


@dataclass(frozen=True)
class NiNBlockCfg:
    """One nin_block: a k×k convolution followed by two 1×1 convolutions."""

    out_channels: int = knob(min=1)
    kernel: int = knob(min=1)
    stride: int = knob(1, min=1)
    padding: int = knob(0, min=0)


@dataclass(frozen=True)
class NiNSpec:
    """nin_blocks with 3×3/2 max pooling between them, dropout, then a nin_block with
    num_classes channels and global average pooling (no dense layers)."""

    family: ClassVar[str] = "nin"
    in_channels: int = knob(1, min=1)
    num_classes: int = knob(10, min=1)
    input_size: int = knob(224, min=1)
    blocks: tuple[NiNBlockCfg, ...] = knob(
        (NiNBlockCfg(96, 11, 4, 0), NiNBlockCfg(256, 5, 1, 2), NiNBlockCfg(384, 3, 1, 1)),
        nonempty=True)
    activation: str = knob("relu", choices=ACTIVATIONS)
    batch_norm: bool = knob(False)
    dropout: float = knob(0.5, min=0.0, lt=1.0)


@dataclass(frozen=True)
class InceptionCfg:
    """The four paths' channels: c1 (1×1), c2 (1×1 → 3×3), c3 (1×1 → 5×5), c4 (pool → 1×1)."""

    c1: int = knob(min=1)
    c2: tuple[int, int] = knob(min=1)
    c3: tuple[int, int] = knob(min=1)
    c4: int = knob(min=1)

    @property
    def out_channels(self) -> int:
        return self.c1 + self.c2[1] + self.c3[1] + self.c4


def _inceptions(*rows: tuple) -> tuple[InceptionCfg, ...]:
    return tuple(InceptionCfg(c1, c2, c3, c4) for c1, c2, c3, c4 in rows)


@dataclass(frozen=True)
class GoogLeNetSpec:
    """The book's GoogLeNet: stem b1/b2, Inception stages b3 (2), b4 (5), b5 (2)."""

    family: ClassVar[str] = "googlenet"
    in_channels: int = knob(1, min=1)
    num_classes: int = knob(10, min=1)
    input_size: int = knob(96, min=1)
    stem_channels: tuple[int, int, int] = knob((64, 64, 192), min=1)
    b3: tuple[InceptionCfg, ...] = knob(_inceptions(
        (64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64)), nonempty=True)
    b4: tuple[InceptionCfg, ...] = knob(_inceptions(
        (192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64),
        (128, (128, 256), (24, 64), 64), (112, (144, 288), (32, 64), 64),
        (256, (160, 320), (32, 128), 128)), nonempty=True)
    b5: tuple[InceptionCfg, ...] = knob(_inceptions(
        (256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)), nonempty=True)
    branch3_kernel: int = knob(5, min=1, doc="c3's kernel: 5 in the book, 3 in torchvision")
    batch_norm: bool = knob(False, doc="torchvision's BasicConv2d: conv without bias + BN")
    ceil_mode: bool = knob(False, doc="torchvision's pools: no padding, rounding up")
    dropout: float = knob(0.0, min=0.0, lt=1.0)

    def check(self) -> list[Problem]:
        if self.branch3_kernel % 2 == 0:
            return [Problem("branch3_kernel", "must be odd so the four paths keep one size")]
        return []


@dataclass(frozen=True)
class ResNetSpec:
    """``stages`` is ((num_residuals, num_channels), ...): b2, b3, ... after the b1 stem."""

    family: ClassVar[str] = "resnet"
    in_channels: int = knob(1, min=1)
    num_classes: int = knob(10, min=1)
    input_size: int = knob(96, min=1)
    stem_channels: int = knob(64, min=1)
    stages: tuple[tuple[int, int], ...] = knob(
        ((2, 64), (2, 128), (2, 256), (2, 512)), min=1, nonempty=True)
    block: str = knob("basic", choices=("basic", "bottleneck"),
                      doc="bottleneck: 1×1 → 3×3 → 1×1 with 4× output channels")
    conv_bias: bool = knob(True, doc="the book's convs have biases; torchvision's do not")
    shortcut_batch_norm: bool = knob(False, doc="BatchNorm after the 1×1 shortcut conv")


@dataclass(frozen=True)
class DenseNetSpec:
    """b1 stem, dense blocks of ``num_convs_in_dense_blocks`` convs with transitions between."""

    family: ClassVar[str] = "densenet"
    in_channels: int = knob(1, min=1)
    num_classes: int = knob(10, min=1)
    input_size: int = knob(96, min=1)
    stem_channels: int = knob(64, min=1)
    growth_rate: int = knob(32, min=1)
    num_convs_in_dense_blocks: tuple[int, ...] = knob((4, 4, 4, 4), min=1, nonempty=True)
    compression: float = knob(0.5, gt=0.0, max=1.0, doc="transition keeps this share of channels")
    bottleneck_size: int = knob(0, min=0, doc="0: the book's conv_block; 4: DenseNet-BC")
    conv_bias: bool = knob(True, doc="the book's convs have biases; torchvision's do not")
