"""One frozen spec dataclass per family of the book. Fields are d2l's own knobs.

Each class names its family twice over: ``family``, the tag its JSON carries, and ``title``, how
pages, help texts and exported code write it. Every spec also carries ``in_channels``,
``num_classes`` and ``input_size`` (the side length the network is meant for; families whose
head is ``Flatten → Linear`` size that Linear from it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar

from cnnviz.errors import Problem
from cnnviz.specs.fields import Knob, knob

ACTIVATIONS = ("relu", "sigmoid", "gelu")
OUT_SIZE = "out = ⌊(n + 2p − k)/s⌋ + 1"

# --- knobs that mean the same thing wherever they appear --------------------------------------
# Each field still decides its own meaning: it picks a helper (or none) and says its own help.


def in_channels_knob(default: int = 1, *, doc: str = "channels of the input image: 1 for "
                     "Fashion-MNIST, 3 for RGB; the first convolution has c_in·c_out·k² "
                     "weights") -> Any:
    return knob(default, min=1, max=64, slider=(1, 4), doc=doc)


def num_classes_knob(default: int = 10, *, doc: str = "class scores the network outputs: "
                     "the width of the last layer (10 for Fashion-MNIST)") -> Any:
    return knob(default, min=1, max=100_000, label="classes", doc=doc)


def input_size_knob(default: int, *, doc: str = "side n of the square n×n input the network "
                    "is meant for; a Flatten → Linear head is sized from it") -> Any:
    return knob(default, min=1, max=8192, box_max=1024, label="input size", doc=doc)


def channels_knob(default: Any = MISSING, *, doc: str, label: str = "") -> Any:
    """Channels or widths: at least 1, at most INT_MAX, typed in a number box."""
    return knob(default, min=1, label=label, doc=doc)


def kernel_knob(default: Any = MISSING, *, doc: str, slider: tuple[int, int] = (1, 15)) -> Any:
    """A window's side k (convolution or pooling): at most 1024."""
    return knob(default, min=1, max=1024, slider=slider, doc=doc)


def stride_knob(default: Any = 1, *, doc: str, slider: tuple[int, int] = (1, 8)) -> Any:
    """A window's step s: at most 1024."""
    return knob(default, min=1, max=1024, slider=slider, doc=doc)


def padding_knob(default: int = 0, *, doc: str = f"padding p: zeros added on each side; "
                 f"{OUT_SIZE} (p = (k − 1)/2 keeps the size at stride 1)") -> Any:
    return knob(default, min=0, max=1024, slider=(0, 10), doc=doc)


def dropout_knob(default: float, *, doc: str) -> Any:
    """A dropout probability p: 0 ≤ p < 1; no parameters, no change of shape."""
    return knob(default, min=0.0, lt=1.0, slider=(0.0, 0.95), doc=doc)


def activation_knob(default: str) -> Any:
    return knob(default, choices=ACTIVATIONS, doc="the nonlinearity after every convolution and "
                "hidden dense layer (sigmoid: the 1998 LeNet; ReLU: AlexNet on); no parameters")


def dense_knob(default: tuple[int, ...]) -> Any:
    return knob(default, label="dense layer widths", count=(0, 4),
                item=Knob(label="dense layer width", min=1, doc="outputs of this hidden "
                          "Linear: it has in·out + out parameters"),
                doc="hidden dense layers after Flatten, one width each (may be none); "
                    "Linear(…, num_classes) follows them")


def adaptive_pool_knob(example: str) -> Any:
    return knob(0, min=0, max=256, slider=(0, 14),
                doc="0: none; n: AdaptiveAvgPool2d(n) before Flatten, so the first Linear gets "
                    f"c·n·n inputs at any input size ({example})")


def conv_bias_knob() -> Any:
    return knob(True, doc="the book's convs have biases (c_out parameters each); torchvision's "
                          "do not, since the BatchNorm after them has its own shift")


def stem_channels_knob() -> Any:
    """ResNet's and DenseNet's b1 (the same stem in both)."""
    return channels_knob(64, label="stem channels", doc="channels of b1: 7×7 stride-2 conv "
                         "(padding 3), BatchNorm, ReLU, 3×3/2 max pooling")


OUT_CHANNELS_DOC = "output channels c_out: the conv has c_in·c_out·k² weights + c_out biases"
CONV_KERNEL_DOC = f"kernel size k: a k×k window; {OUT_SIZE}; weights grow with k²"
CONV_STRIDE_DOC = f"stride s: the window moves s pixels at a time; {OUT_SIZE}, so s = 2 " \
                  "about halves height and width"


@dataclass(frozen=True)
class ConvLayer:
    """One convolution of LeNet/AlexNet; ``pool`` puts the family's pooling layer after it."""

    out_channels: int = channels_knob(doc=OUT_CHANNELS_DOC)
    kernel: int = kernel_knob(doc=CONV_KERNEL_DOC)
    stride: int = stride_knob(doc=CONV_STRIDE_DOC)
    padding: int = padding_knob()
    pool: bool = knob(False, doc="put the family's pooling layer (pool, pool kernel, pool "
                                 "stride) after this convolution's activation; it ends a stage")


CONVS_DOC = "convolutions in order, each Conv2d → [BatchNorm2d] → activation"


# LeNet and AlexNet differ only in these knobs' defaults.
def convs_knob(default: tuple[ConvLayer, ...]) -> Any:
    return knob(default, nonempty=True, count=(1, 8), label="convolutions",
                item=Knob(label="convolution", doc=CONVS_DOC), doc=CONVS_DOC)


def pool_knob(default: str) -> Any:
    return knob(default, choices=("avg", "max"),
                doc="the pooling layer after a conv marked pool: AvgPool2d (LeNet) or "
                    "MaxPool2d (AlexNet); no parameters, channels unchanged")


def pool_kernel_knob(default: int) -> Any:
    return kernel_knob(default, slider=(1, 7),
                       doc=f"that pooling layer's window k; {OUT_SIZE} with p = 0")


def dense_dropout_knob(default: float) -> Any:
    return dropout_knob(default, doc="Dropout(p) after every hidden dense layer's activation; "
                                     "0 adds none")


@dataclass(frozen=True)
class PlainCNNSpec:
    """Convolutions with pooling, then dense layers: the shape LeNet and AlexNet share.

    The defaults are LeNet's; :class:`AlexNetSpec` changes only the defaults that differ.
    """

    in_channels: int = in_channels_knob()
    num_classes: int = num_classes_knob()
    input_size: int = input_size_knob(28)
    convs: tuple[ConvLayer, ...] = convs_knob(
        (ConvLayer(6, 5, padding=2, pool=True), ConvLayer(16, 5, pool=True)))
    pool: str = pool_knob("avg")
    pool_kernel: int = pool_kernel_knob(2)
    pool_stride: int = stride_knob(2, slider=(1, 7),
                                   doc=f"that pooling layer's stride s; {OUT_SIZE} with p = 0 "
                                       "(2: half the height and width)")
    dense: tuple[int, ...] = dense_knob((120, 84))
    activation: str = activation_knob("sigmoid")
    batch_norm: bool = knob(False, doc="BatchNorm after every conv (BatchNorm2d) and hidden "
                                       "dense layer (BatchNorm1d), before the activation: "
                                       "2 learned parameters per channel")
    dropout: float = dense_dropout_knob(0.0)
    adaptive_pool: int = adaptive_pool_knob("torchvision's AlexNet: 6")


@dataclass(frozen=True)
class LeNetSpec(PlainCNNSpec):
    family: ClassVar[str] = "lenet"
    title: ClassVar[str] = "LeNet"


@dataclass(frozen=True)
class AlexNetSpec(PlainCNNSpec):
    family: ClassVar[str] = "alexnet"
    title: ClassVar[str] = "AlexNet"
    input_size: int = input_size_knob(224)
    convs: tuple[ConvLayer, ...] = convs_knob(
        (ConvLayer(96, 11, stride=4, padding=1, pool=True),
         ConvLayer(256, 5, padding=2, pool=True),
         ConvLayer(384, 3, padding=1),
         ConvLayer(384, 3, padding=1),
         ConvLayer(256, 3, padding=1, pool=True)))
    pool: str = pool_knob("max")
    pool_kernel: int = pool_kernel_knob(3)
    dense: tuple[int, ...] = dense_knob((4096, 4096))
    activation: str = activation_knob("relu")
    dropout: float = dense_dropout_knob(0.5)


# A VGG block's two numbers, as a pair of ``arch`` and as the custom ``vgg_block`` layer.
VGG_NUM_CONVS = Knob(label="num convs", min=1, max=32, slider=(1, 8),
                     doc="3×3 convs (padding 1, size kept) in the block, each followed by the "
                         "activation; the block ends with 2×2 max pooling (half the size)")
VGG_OUT_CHANNELS = Knob(label="out channels", min=1,
                        doc="channels c of every conv in the block: the first has c_in·c·9 + c "
                            "parameters, each further one c·c·9 + c")


@dataclass(frozen=True)
class VGGSpec:
    """``arch`` is the book's ((num_convs, out_channels), ...): one vgg_block per pair."""

    family: ClassVar[str] = "vgg"
    title: ClassVar[str] = "VGG"
    in_channels: int = in_channels_knob()
    num_classes: int = num_classes_knob()
    input_size: int = input_size_knob(224)
    arch: tuple[tuple[int, int], ...] = knob(
        ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)), nonempty=True, count=(1, 8),
        label="VGG blocks (num_convs, out_channels)",
        item=Knob(label="VGG block", parts=(VGG_NUM_CONVS, VGG_OUT_CHANNELS),
                  doc="one vgg_block: (num_convs, out_channels)"),
        doc="the book's conv_arch: one vgg_block per (num_convs, out_channels) pair; each "
            "block halves height and width")
    dense: tuple[int, ...] = dense_knob((4096, 4096))
    activation: str = activation_knob("relu")
    batch_norm: bool = knob(False, doc="BatchNorm2d between every conv and its activation "
                                       "(torchvision's vgg*_bn): 2 parameters per channel")
    dropout: float = dense_dropout_knob(0.5)
    adaptive_pool: int = adaptive_pool_knob("torchvision's VGG: 7")


@dataclass(frozen=True)
class NiNBlockCfg:
    """One nin_block: a k×k convolution followed by two 1×1 convolutions."""

    out_channels: int = channels_knob(doc="channels c of all three convs; the 1×1 convs add "
                                          "c·c + c parameters each")
    kernel: int = kernel_knob(doc=f"kernel size k of the first conv (the 1×1 convs keep the "
                                  f"size); {OUT_SIZE}")
    stride: int = stride_knob(doc=f"stride s of the first conv; {OUT_SIZE}")
    padding: int = padding_knob()


@dataclass(frozen=True)
class NiNSpec:
    """nin_blocks with 3×3/2 max pooling between them, dropout, then a nin_block with
    num_classes channels and global average pooling (no dense layers)."""

    family: ClassVar[str] = "nin"
    title: ClassVar[str] = "NiN"
    in_channels: int = in_channels_knob()
    num_classes: int = num_classes_knob(doc="class scores: the channels of the last nin_block, "
                                            "averaged over the map (no dense layer)")
    input_size: int = input_size_knob(224)
    blocks: tuple[NiNBlockCfg, ...] = knob(
        (NiNBlockCfg(96, 11, 4, 0), NiNBlockCfg(256, 5, 1, 2), NiNBlockCfg(384, 3, 1, 1)),
        nonempty=True, count=(1, 6), label="NiN blocks",
        item=Knob(label="NiN block", doc="k×k conv, then two 1×1 convs"),
        doc="nin_blocks in order, with 3×3 stride-2 max pooling after each (about half the "
            "size)")
    activation: str = activation_knob("relu")
    batch_norm: bool = knob(False, doc="BatchNorm2d between every conv and its activation: "
                                       "2 parameters per channel")
    dropout: float = dropout_knob(0.5, doc="Dropout(p) before the last nin_block; 0 adds none")


def _inception_path(path: int, kernel: str, how: str) -> Any:
    """Inception's paths 2 and 3: a 1×1 conv that thins the input, then a wider conv."""
    c = f"c{path}"
    return knob(label=f"{c} (1×1, {kernel})",
                parts=(Knob(label=f"{c} 1×1", min=1, doc=f"path {path}: channels of the 1×1 "
                            f"conv that thins the input before the {kernel}"),
                       Knob(label=f"{c} {kernel}", min=1,
                            doc=f"path {path}: channels of its {kernel} conv ({how})")),
                doc=f"path {path}: 1×1 conv to {c}[0] channels, then {kernel} conv to {c}[1]")


@dataclass(frozen=True)
class InceptionCfg:
    """The four paths' channels: c1 (1×1), c2 (1×1 → 3×3), c3 (1×1 → 5×5), c4 (pool → 1×1)."""

    c1: int = channels_knob(doc="path 1: channels of its 1×1 conv")
    c2: tuple[int, int] = _inception_path(2, "3×3", "padding 1, size kept")
    c3: tuple[int, int] = _inception_path(3, "k×k", "k: branch3 kernel, padding k//2, "
                                                    "size kept")
    c4: int = channels_knob(doc="path 4: channels of the 1×1 conv after 3×3 max pooling "
                                "(stride 1, padding 1)")

    @property
    def out_channels(self) -> int:
        return self.c1 + self.c2[1] + self.c3[1] + self.c4


def _inceptions(*rows: tuple) -> tuple[InceptionCfg, ...]:
    return tuple(InceptionCfg(c1, c2, c3, c4) for c1, c2, c3, c4 in rows)


INCEPTION_DOC = "one Inception block: four paths concatenated, c1 + c2[1] + c3[1] + c4 " \
                "channels out, size kept"


def inception_stage_knob(default: tuple[InceptionCfg, ...], stage: str, after: str,
                         count: tuple[int, int]) -> Any:
    return knob(default, nonempty=True, count=count, label=f"{stage} Inception blocks",
                item=Knob(label=f"{stage} Inception block", doc=INCEPTION_DOC),
                doc=f"Inception blocks of stage {stage}, then {after}")


@dataclass(frozen=True)
class GoogLeNetSpec:
    """The book's GoogLeNet: stem b1/b2, Inception stages b3 (2), b4 (5), b5 (2)."""

    family: ClassVar[str] = "googlenet"
    title: ClassVar[str] = "GoogLeNet"
    in_channels: int = in_channels_knob()
    num_classes: int = num_classes_knob()
    input_size: int = input_size_knob(96)
    stem_channels: tuple[int, int, int] = knob(
        (64, 64, 192), label="stem channels",
        parts=(Knob(label="b1 conv", min=1, doc="b1: channels of the 7×7 stride-2 conv "
                                                "(padding 3), then 3×3/2 max pooling"),
               Knob(label="b2 1×1", min=1, doc="b2: channels of the 1×1 conv"),
               Knob(label="b2 3×3", min=1, doc="b2: channels of the 3×3 conv (padding 1), "
                                               "then 3×3/2 max pooling")),
        doc="channels of the stem convs: b1's 7×7, b2's 1×1 and 3×3")
    b3: tuple[InceptionCfg, ...] = inception_stage_knob(_inceptions(
        (64, (96, 128), (16, 32), 32), (128, (128, 192), (32, 96), 64)), "b3",
        "3×3/2 max pooling (half the size)", (1, 6))
    b4: tuple[InceptionCfg, ...] = inception_stage_knob(_inceptions(
        (192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64),
        (128, (128, 256), (24, 64), 64), (112, (144, 288), (32, 64), 64),
        (256, (160, 320), (32, 128), 128)), "b4", "3×3/2 max pooling (half the size)", (1, 8))
    b5: tuple[InceptionCfg, ...] = inception_stage_knob(_inceptions(
        (256, (160, 320), (32, 128), 128), (384, (192, 384), (48, 128), 128)), "b5",
        "global average pooling and Flatten", (1, 6))
    branch3_kernel: int = kernel_knob(5, slider=(1, 9),
                                      doc="k of path 3's second conv (padding k//2, so odd k "
                                          "keeps the size): 5 in the book, 3 in torchvision")
    batch_norm: bool = knob(False, doc="torchvision's BasicConv2d: every conv without bias, "
                                       "then BatchNorm2d (2 parameters per channel)")
    ceil_mode: bool = knob(False, doc="torchvision's pools: no padding and rounding up, "
                                      "out = ⌈(n − k)/s⌉ + 1; off: the book's 3×3/2 padding 1")
    dropout: float = dropout_knob(0.0, doc="Dropout(p) before the last Linear; 0 adds none")

    def check(self) -> list[Problem]:
        if self.branch3_kernel % 2 == 0:
            return [Problem("branch3_kernel", "must be odd so the four paths keep one size")]
        return []


# A residual block's two numbers, as a pair of ``stages`` and in the custom ``residual`` layer.
NUM_RESIDUALS = Knob(label="num residuals", min=1, max=64, slider=(1, 8),
                     doc="residual blocks in the stage; the first of a stage after b2 has "
                         "stride 2 and a 1×1 shortcut, halving the size")
NUM_CHANNELS = Knob(label="num channels", min=1,
                    doc="channels of the block's 3×3 convs (a bottleneck outputs 4×): "
                        "each 3×3 conv has c_in·c·9 weights")


@dataclass(frozen=True)
class ResNetSpec:
    """``stages`` is ((num_residuals, num_channels), ...): b2, b3, ... after the b1 stem."""

    family: ClassVar[str] = "resnet"
    title: ClassVar[str] = "ResNet"
    in_channels: int = in_channels_knob()
    num_classes: int = num_classes_knob()
    input_size: int = input_size_knob(96)
    stem_channels: int = stem_channels_knob()
    stages: tuple[tuple[int, int], ...] = knob(
        ((2, 64), (2, 128), (2, 256), (2, 512)), nonempty=True, count=(1, 6),
        label="stages (num_residuals, num_channels)",
        item=Knob(label="stage", parts=(NUM_RESIDUALS, NUM_CHANNELS),
                  doc="one resnet_block: (num_residuals, num_channels)"),
        doc="the book's resnet_block stages b2, b3, …: each (num_residuals, num_channels); "
            "every stage after b2 halves height and width")
    block: str = knob("basic", choices=("basic", "bottleneck"),
                      doc="basic: two 3×3 convs; bottleneck: 1×1 → 3×3 → 1×1 with 4× output "
                          "channels (ResNet-50)")
    conv_bias: bool = conv_bias_knob()
    shortcut_batch_norm: bool = knob(False, doc="BatchNorm after the 1×1 shortcut conv "
                                                "(torchvision's downsample)")


DENSE_NUM_CONVS = Knob(label="num convs", min=1, max=64, slider=(1, 8),
                       doc="conv blocks (BN → ReLU → 3×3 conv) in the dense block; each adds "
                           "growth_rate channels: C → C + num_convs × growth_rate")
GROWTH_RATE_DOC = "channels every conv block adds to the concatenation"


@dataclass(frozen=True)
class DenseNetSpec:
    """b1 stem, dense blocks of ``num_convs_in_dense_blocks`` convs with transitions between."""

    family: ClassVar[str] = "densenet"
    title: ClassVar[str] = "DenseNet"
    in_channels: int = in_channels_knob()
    num_classes: int = num_classes_knob()
    input_size: int = input_size_knob(96)
    stem_channels: int = stem_channels_knob()
    growth_rate: int = channels_knob(32, doc=GROWTH_RATE_DOC)
    num_convs_in_dense_blocks: tuple[int, ...] = knob(
        (4, 4, 4, 4), nonempty=True, count=(1, 6), label="dense blocks (convs in each)",
        item=dataclasses.replace(DENSE_NUM_CONVS, label="dense block"),
        doc="one dense block per item, with a transition (half the size) between blocks")
    compression: float = knob(0.5, gt=0.0, max=1.0, slider=(0.05, 1.0),
                              doc="share of channels a transition keeps: "
                                  "max(1, int(C × compression)); the book halves them")
    bottleneck_size: int = knob(0, min=0, max=16, slider=(0, 8),
                                doc="0: the book's conv_block; b: a 1×1 conv to b × growth_rate "
                                    "channels before each 3×3 (4: DenseNet-BC)")
    conv_bias: bool = conv_bias_knob()
