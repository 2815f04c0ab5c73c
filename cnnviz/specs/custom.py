"""The ``custom`` family: an ordered list of layers and the book's blocks.

Channels are inferred along the chain (no Lazy modules are needed for that); a Linear names
its ``in_features`` explicitly, as in the study notes (``nn.Linear(6400, 4096)``), which is
what makes a network with ``Flatten → Linear`` accept only a band of input sizes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from cnnviz.errors import Problem
from cnnviz.specs.families import (ACTIVATIONS, CONV_KERNEL_DOC, CONV_STRIDE_DOC,
                                   DENSE_NUM_CONVS, GROWTH_RATE_DOC, NUM_CHANNELS,
                                   OUT_CHANNELS_DOC, OUT_SIZE, VGG_NUM_CONVS, VGG_OUT_CHANNELS,
                                   DenseNetSpec, GoogLeNetSpec, InceptionCfg, NiNBlockCfg,
                                   NiNSpec, ResNetSpec, VGGSpec, channels_knob, dropout_knob,
                                   in_channels_knob, input_size_knob, kernel_knob,
                                   num_classes_knob, padding_knob, stride_knob)
from cnnviz.specs.fields import Knob, knob


def _as_in(cls: type, name: str) -> Any:
    """The same knob as field ``name`` of family ``cls`` (same meaning, bounds, help and
    default): a block option that is the family's option, now per block."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.metadata["knob"].field(f.default)


def _block_activation_knob() -> Any:
    return knob("relu", choices=ACTIVATIONS, doc="the nonlinearity after each of the block's "
                "convolutions (the book: ReLU); no parameters")


def _bias_knob() -> Any:
    """A block's conv biases: the families' ``conv_bias``, per block."""
    return _as_in(ResNetSpec, "conv_bias")


@dataclass(frozen=True)
class Conv:
    type: ClassVar[str] = "conv"
    out_channels: int = channels_knob(doc=OUT_CHANNELS_DOC)
    kernel: int = kernel_knob(doc=CONV_KERNEL_DOC)
    stride: int = stride_knob(doc=CONV_STRIDE_DOC)
    padding: int = padding_knob()
    dilation: int = knob(1, min=1, max=64, slider=(1, 4),
                         doc="dilation d: gaps between the kernel's taps, so it spans "
                             "d·(k − 1) + 1 pixels; out = ⌊(n + 2p − d·(k − 1) − 1)/s⌋ + 1")
    bias: bool = knob(True, doc="a learned bias per output channel (c_out parameters); off "
                                "when a BatchNorm follows")


@dataclass(frozen=True)
class _Pool:
    kernel: int = kernel_knob(doc=f"window k×k; {OUT_SIZE}; no parameters, channels "
                                  "unchanged")
    stride: int | None = knob(None, min=1, max=1024, slider=(0, 8),
                              doc=f"step s of the window; {OUT_SIZE}. null (0 here): the "
                                  "same as the kernel, PyTorch's default")
    padding: int = padding_knob(doc=f"padding p on each side (at most k // 2); {OUT_SIZE}")
    ceil_mode: bool = knob(False, doc="round up: out = ⌈(n + 2p − k)/s⌉ + 1, so a partial "
                                      "last window still counts")

    def check(self) -> list[Problem]:
        if self.padding > self.kernel // 2:
            return [Problem("padding", f"must be at most half the kernel ({self.kernel // 2}), "
                                       f"got {self.padding}")]
        return []


@dataclass(frozen=True)
class MaxPool(_Pool):
    type: ClassVar[str] = "max_pool"


@dataclass(frozen=True)
class AvgPool(_Pool):
    type: ClassVar[str] = "avg_pool"


@dataclass(frozen=True)
class AdaptiveAvgPool:
    type: ClassVar[str] = "adaptive_avg_pool"
    output_size: int = knob(1, min=1, max=256, slider=(1, 14),
                            doc="output side n: the map becomes n×n whatever its input size "
                                "(1: global average pooling); channels unchanged")


@dataclass(frozen=True)
class BatchNorm:
    type: ClassVar[str] = "batchnorm"


@dataclass(frozen=True)
class ReLU:
    type: ClassVar[str] = "relu"


@dataclass(frozen=True)
class Sigmoid:
    type: ClassVar[str] = "sigmoid"


@dataclass(frozen=True)
class GELU:
    type: ClassVar[str] = "gelu"


@dataclass(frozen=True)
class Dropout:
    type: ClassVar[str] = "dropout"
    p: float = dropout_knob(0.5, doc="probability p of zeroing each value in training "
                                     "(the rest are scaled by 1/(1 − p)); no parameters")


@dataclass(frozen=True)
class Flatten:
    type: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Linear:
    type: ClassVar[str] = "linear"
    in_features: int = knob(min=1, max=100_000_000,
                            doc="inputs the Linear expects: C·H·W after Flatten, so it fixes "
                                "the input sizes that fit; in·out + out parameters")
    out_features: int = knob(min=1, max=1_000_000, doc="outputs of the Linear (num_classes for "
                                                       "the last one)")


@dataclass(frozen=True)
class VGGBlockLayer:
    type: ClassVar[str] = "vgg_block"
    num_convs: int = VGG_NUM_CONVS.field()
    out_channels: int = VGG_OUT_CHANNELS.field()
    activation: str = _block_activation_knob()
    batch_norm: bool = _as_in(VGGSpec, "batch_norm")


@dataclass(frozen=True)
class NiNBlockLayer(NiNBlockCfg):
    type: ClassVar[str] = "nin_block"
    activation: str = _block_activation_knob()
    batch_norm: bool = _as_in(NiNSpec, "batch_norm")


@dataclass(frozen=True)
class InceptionLayer(InceptionCfg):
    type: ClassVar[str] = "inception"
    branch3_kernel: int = _as_in(GoogLeNetSpec, "branch3_kernel")
    batch_norm: bool = knob(False, doc="torchvision's BasicConv2d: every conv without bias, "
                                       "then BatchNorm2d (eps 1e-3; 2 parameters per channel)")
    ceil_mode: bool = knob(False, doc="path 4's 3×3 max pooling rounds up (torchvision's); at "
                                      "stride 1 with padding 1 no size changes")

    def check(self) -> list[Problem]:
        if self.branch3_kernel % 2 == 0:
            return [Problem("branch3_kernel", "must be odd so the four paths keep one size")]
        return []


@dataclass(frozen=True)
class ResidualLayer:
    type: ClassVar[str] = "residual"
    num_channels: int = NUM_CHANNELS.field()
    use_1x1conv: bool = knob(False, doc="shortcut through a 1×1 conv (stride strides) to the "
                                        "block's output channels; needed when the shape "
                                        "changes")
    strides: int = knob(1, min=1, max=1024, slider=(1, 4),
                        doc=f"stride of the first 3×3 conv and the shortcut; {OUT_SIZE}, so 2 "
                            "halves height and width")
    bottleneck: bool = knob(False, doc="1×1 → 3×3 → 1×1 convs with 4 × num_channels channels "
                                       "out (ResNet-50); off: the book's two 3×3 convs")
    bias: bool = _bias_knob()
    shortcut_batch_norm: bool = knob(False, doc="BatchNorm2d after the 1×1 shortcut conv "
                                                "(torchvision's downsample); nothing without "
                                                "use_1x1conv")

    @property
    def out_channels(self) -> int:
        return self.num_channels * 4 if self.bottleneck else self.num_channels

    def check(self) -> list[Problem]:
        if self.strides != 1 and not self.use_1x1conv:
            return [Problem("use_1x1conv", "must be true when strides ≠ 1: the shortcut "
                                           "must shrink like the main path")]
        return []


@dataclass(frozen=True)
class DenseBlockLayer:
    type: ClassVar[str] = "dense_block"
    num_convs: int = DENSE_NUM_CONVS.field()
    growth_rate: int = channels_knob(doc=GROWTH_RATE_DOC)
    bottleneck_size: int = _as_in(DenseNetSpec, "bottleneck_size")
    bias: bool = _bias_knob()


@dataclass(frozen=True)
class TransitionLayer:
    type: ClassVar[str] = "transition"
    out_channels: int = channels_knob(doc="channels after the transition's 1×1 conv (the "
                                          "book halves them); then 2×2 average pooling halves "
                                          "height and width")
    bias: bool = _bias_knob()


Layer = Union[Conv, MaxPool, AvgPool, AdaptiveAvgPool, BatchNorm, ReLU, Sigmoid, GELU, Dropout,
              Flatten, Linear, VGGBlockLayer, NiNBlockLayer, InceptionLayer, ResidualLayer,
              DenseBlockLayer, TransitionLayer]
LAYER_TYPES: dict[str, type] = {cls.type: cls for cls in Layer.__args__}


@dataclass(frozen=True)
class CustomSpec:
    """Any chain of layers and blocks. ``num_classes`` is what the last layer should output."""

    family: ClassVar[str] = "custom"
    title: ClassVar[str] = "Custom network"
    in_channels: int = in_channels_knob(doc="channels of the input image: what the first "
                                            "layer receives; later ones take the channels "
                                            "of the layer before")
    num_classes: int = num_classes_knob(doc="class scores the last layer should output (not "
                                            "enforced: a note says when it does not)")
    input_size: int = input_size_knob(224, doc="side n of the square n×n input the network is "
                                               "meant for (a linear names its in_features "
                                               "itself)")
    layers: tuple[Layer, ...] = knob(
        (), nonempty=True, max_items=200,
        item=Knob(label="layer", doc="one layer or block; its type key says which"),
        doc="the chain of layers and blocks, in order")
