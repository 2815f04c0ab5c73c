"""The named networks: the book's versions, the two networks of the study notes,
and canonical ImageNet versions whose parameter counts equal torchvision's."""
from __future__ import annotations

from dataclasses import dataclass

from cnnviz.errors import Problem, SpecError
from cnnviz.specs import (AlexNetSpec, ConvLayer, CustomSpec, DenseNetSpec, GoogLeNetSpec,
                          LeNetSpec, NiNSpec, ResNetSpec, Spec, VGGSpec)
from cnnviz.specs import custom as L


@dataclass(frozen=True)
class Preset:
    name: str
    spec: Spec
    description: str


def _notes_alexnet() -> CustomSpec:
    """The simplified AlexNet of the notes: one 384-channel conv and one 4096 layer removed."""
    return CustomSpec(in_channels=1, num_classes=10, input_size=224, layers=(
        L.Conv(96, 11, stride=4, padding=1), L.ReLU(), L.MaxPool(3, 2),
        L.Conv(256, 5, padding=2), L.ReLU(), L.MaxPool(3, 2),
        L.Conv(384, 3, padding=1), L.ReLU(),
        L.Conv(256, 3, padding=1), L.ReLU(), L.MaxPool(3, 2), L.Flatten(),
        L.Linear(6400, 4096), L.ReLU(), L.Dropout(0.5),
        L.Linear(4096, 10)))


def _notes_nin() -> CustomSpec:
    return CustomSpec(in_channels=1, num_classes=10, input_size=224, layers=(
        L.NiNBlockLayer(96, 11, 4, 0), L.MaxPool(3, 2),
        L.NiNBlockLayer(256, 5, 1, 2), L.MaxPool(3, 2),
        L.NiNBlockLayer(384, 3, 1, 1), L.MaxPool(3, 2), L.Dropout(0.5),
        L.NiNBlockLayer(10, 3, 1, 1), L.AdaptiveAvgPool(1), L.Flatten()))


_IMAGENET = {"in_channels": 3, "num_classes": 1000, "input_size": 224}

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("lenet", LeNetSpec(), "LeNet-5 as in the book: sigmoid, average pooling, 28×28"),
    Preset("lenet-bn", LeNetSpec(
        convs=(ConvLayer(6, 5, pool=True), ConvLayer(16, 5, pool=True)), batch_norm=True),
        "the book's BatchNorm LeNet (7.5): no padding on the first conv, so 16·4·4 = 256 "
        "features reach the first Linear, not 16·5·5 = 400"),
    Preset("alexnet", AlexNetSpec(), "AlexNet for 1-channel 224×224 images, as in the book"),
    Preset("vgg", VGGSpec(), "VGG-11 with a quarter of the channels, as trained in the book"),
    Preset("nin", NiNSpec(), "Network in Network: 1×1 convs and global average pooling"),
    Preset("googlenet", GoogLeNetSpec(), "GoogLeNet with nine Inception blocks, 96×96"),
    Preset("resnet18", ResNetSpec(), "ResNet-18 as in the book, 96×96"),
    Preset("densenet", DenseNetSpec(), "DenseNet with four dense blocks of 4 convs, 96×96"),
    Preset("notes-alexnet", _notes_alexnet(),
           "the study notes' AlexNet: Flatten → Linear(6400) accepts only a band of sizes"),
    Preset("notes-nin", _notes_nin(), "the study notes' NiN, layer for layer"),
    Preset("alexnet-imagenet", AlexNetSpec(
        **_IMAGENET, convs=(ConvLayer(64, 11, 4, 2, True), ConvLayer(192, 5, 1, 2, True),
                            ConvLayer(384, 3, 1, 1), ConvLayer(256, 3, 1, 1),
                            ConvLayer(256, 3, 1, 1, True)), adaptive_pool=6),
        "torchvision's AlexNet (61.1 M parameters)"),
    Preset("vgg11-imagenet", VGGSpec(
        **_IMAGENET, arch=((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)), adaptive_pool=7),
        "torchvision's VGG-11"),
    Preset("googlenet-imagenet", GoogLeNetSpec(
        **_IMAGENET, branch3_kernel=3, batch_norm=True, ceil_mode=True, dropout=0.2),
        "torchvision's GoogLeNet without the auxiliary heads"),
    Preset("resnet18-imagenet", ResNetSpec(**_IMAGENET, conv_bias=False,
                                           shortcut_batch_norm=True),
           "torchvision's ResNet-18"),
    Preset("densenet121-imagenet", DenseNetSpec(
        **_IMAGENET, num_convs_in_dense_blocks=(6, 12, 24, 16), bottleneck_size=4,
        conv_bias=False), "torchvision's DenseNet-121"),
]}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError([Problem("", f"unknown preset {name!r}; known presets: "
                                     f"{', '.join(PRESETS)}")]) from None


# The zoo on the home page: the book's networks, each with its idea in one line.
BOOK_PRESETS: dict[str, str] = {
    "lenet": "Two convolutions with pooling shrink the image; three dense layers classify it.",
    "lenet-bn": "BatchNorm after every conv and hidden dense layer re-centres each layer's "
                "inputs per mini-batch, so it trains in far fewer epochs.",
    "alexnet": "LeNet made deep and wide: large early kernels, ReLU, dropout, and a GPU.",
    "vgg": "Only 3×3 convolutions, grouped in repeated blocks that halve the size: depth "
           "from a simple recipe.",
    "nin": "1×1 convolutions act as an MLP at every pixel; global average pooling replaces "
           "the dense layers.",
    "googlenet": "Inception blocks run 1×1, 3×3, 5×5 and pooling paths side by side and "
                 "concatenate them.",
    "resnet18": "Each block learns only a residual f(x) − x; the identity shortcut keeps very "
                "deep networks trainable.",
    "densenet": "Each layer sees all earlier outputs, concatenated; transition layers keep "
                "the channel count in check.",
}
