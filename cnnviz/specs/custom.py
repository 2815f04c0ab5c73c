"""The ``custom`` family: an ordered list of layers and the book's blocks.

Channels are inferred along the chain (no Lazy modules are needed for that); a Linear names
its ``in_features`` explicitly, as in the study notes (``nn.Linear(6400, 4096)``), which is
what makes a network with ``Flatten → Linear`` accept only a band of input sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from cnnviz.errors import Problem
from cnnviz.specs.families import InceptionCfg, NiNBlockCfg
from cnnviz.specs.fields import knob


@dataclass(frozen=True)
class Conv:
    type: ClassVar[str] = "conv"
    out_channels: int = knob(min=1)
    kernel: int = knob(min=1)
    stride: int = knob(1, min=1)
    padding: int = knob(0, min=0)
    dilation: int = knob(1, min=1)
    bias: bool = knob(True)


@dataclass(frozen=True)
class _Pool:
    kernel: int = knob(min=1)
    stride: int | None = knob(None, min=1, doc="null: same as kernel (PyTorch's default)")
    padding: int = knob(0, min=0)
    ceil_mode: bool = knob(False)

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
    output_size: int = knob(1, min=1)


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
    p: float = knob(0.5, min=0.0, lt=1.0)


@dataclass(frozen=True)
class Flatten:
    type: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Linear:
    type: ClassVar[str] = "linear"
    in_features: int = knob(min=1)
    out_features: int = knob(min=1)


@dataclass(frozen=True)
class VGGBlockLayer:
    type: ClassVar[str] = "vgg_block"
    num_convs: int = knob(min=1)
    out_channels: int = knob(min=1)


@dataclass(frozen=True)
class NiNBlockLayer(NiNBlockCfg):
    type: ClassVar[str] = "nin_block"


@dataclass(frozen=True)
class InceptionLayer(InceptionCfg):
    type: ClassVar[str] = "inception"


@dataclass(frozen=True)
class ResidualLayer:
    type: ClassVar[str] = "residual"
    num_channels: int = knob(min=1)
    use_1x1conv: bool = knob(False)
    strides: int = knob(1, min=1)

    def check(self) -> list[Problem]:
        if self.strides != 1 and not self.use_1x1conv:
            return [Problem("use_1x1conv", "must be true when strides ≠ 1: the shortcut "
                                           "must shrink like the main path")]
        return []


@dataclass(frozen=True)
class DenseBlockLayer:
    type: ClassVar[str] = "dense_block"
    num_convs: int = knob(min=1)
    growth_rate: int = knob(min=1)


@dataclass(frozen=True)
class TransitionLayer:
    type: ClassVar[str] = "transition"
    out_channels: int = knob(min=1)


Layer = Union[Conv, MaxPool, AvgPool, AdaptiveAvgPool, BatchNorm, ReLU, Sigmoid, GELU, Dropout,
              Flatten, Linear, VGGBlockLayer, NiNBlockLayer, InceptionLayer, ResidualLayer,
              DenseBlockLayer, TransitionLayer]
LAYER_TYPES: dict[str, type] = {cls.type: cls for cls in Layer.__args__}


@dataclass(frozen=True)
class CustomSpec:
    """Any chain of layers and blocks. ``num_classes`` is what the last layer should output."""

    family: ClassVar[str] = "custom"
    in_channels: int = knob(1, min=1)
    num_classes: int = knob(10, min=1)
    input_size: int = knob(224, min=1)
    layers: tuple[Layer, ...] = knob((), nonempty=True)
