"""Every knob of every family held to numbers found without cnnviz (issue 13).

Each network here is written out a second time, layer by layer, with plain torch (the book's
``vgg_block``, ``nin_block``, ``Inception``, ``Residual``, ``DenseBlock``) or taken from
torchvision. cnnviz's weights are copied into that twin position by position, which needs the
same parameters of the same shapes in the same order, and the two must then compute the same
function in training and in evaluation mode. Parameter counts are counted by hand in the
comments, layer by layer.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tv
from torch import nn
from torchvision.models.vgg import make_layers

from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.specs import (FAMILIES, SPEC_CLASSES, AlexNetSpec, ConvLayer, DenseNetSpec,
                          GoogLeNetSpec, InceptionCfg, LeNetSpec, NiNBlockCfg, NiNSpec,
                          ResNetSpec, VGGSpec)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, kind: type) -> int:
    return sum(type(m) is kind for m in model.modules())


def scramble_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random γ, β and running statistics in every BatchNorm: with PyTorch's fresh ones
    (γ = 1, β = 0, mean 0, variance 1) a misplaced or missing BatchNorm in evaluation mode
    would be the identity and change nothing."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            shape = m.running_mean.shape
            m.weight.data = torch.rand(shape, generator=g) + 0.5
            m.bias.data = torch.randn(shape, generator=g)
            m.running_mean = torch.randn(shape, generator=g)
            m.running_var = torch.rand(shape, generator=g) + 0.5
    return model


def copy_into(reference: nn.Module, ours: nn.Module) -> nn.Module:
    """``ours``'s parameters and buffers put into ``reference`` position by position; this
    works only if both have the same tensors of the same shapes in the same order."""
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert [tuple(t.shape) for t in mine.values()] == [tuple(t.shape) for t in
                                                       theirs.values()]
    reference.load_state_dict(dict(zip(theirs, mine.values())))
    return reference


def assert_same_function(ours: nn.Module, reference: nn.Module, x: torch.Tensor) -> None:
    """Same weights, then the same outputs: in evaluation mode, and in training mode (batch
    statistics, and the same dropout masks from the same seed)."""
    scramble_norms(ours)
    copy_into(reference, ours)
    with torch.no_grad():
        ours.eval(), reference.eval()
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)
        ours.train(), reference.train()
        torch.manual_seed(1)
        mine = ours(x)
        torch.manual_seed(1)
        torch.testing.assert_close(mine, reference(x), rtol=1e-4, atol=1e-5)


def image(channels: int, size: int, batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(7))


# --- the book's blocks, written out again from d2l --------------------------------------------

class BookInception(nn.Module):
    """d2l 8.4: four paths, concatenated; ReLU after every conv."""

    def __init__(self, c_in, c1, c2, c3, c4, k3=5):
        super().__init__()
        self.p1_1 = nn.Conv2d(c_in, c1, 1)
        self.p2_1 = nn.Conv2d(c_in, c2[0], 1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], 3, padding=1)
        self.p3_1 = nn.Conv2d(c_in, c3[0], 1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], k3, padding=k3 // 2)
        self.p4_1 = nn.MaxPool2d(3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(c_in, c4, 1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


class BookResidual(nn.Module):
    """d2l 8.6's Residual, and with ``bottleneck`` ResNet-50's 1×1 → 3×3 → 1×1 block with a
    BatchNorm after each conv (the last one included) and 4× the channels out."""

    def __init__(self, c_in, c, stride=1, project=False, bias=True, shortcut_bn=False,
                 bottleneck=False):
        super().__init__()
        out = 4 * c if bottleneck else c
        if bottleneck:
            convs = [nn.Conv2d(c_in, c, 1, bias=bias), nn.Conv2d(c, c, 3, stride, 1, bias=bias),
                     nn.Conv2d(c, out, 1, bias=bias)]
        else:
            convs = [nn.Conv2d(c_in, c, 3, stride, 1, bias=bias),
                     nn.Conv2d(c, c, 3, padding=1, bias=bias)]
        self.depth = len(convs)
        for i, conv in enumerate(convs, 1):  # registered in the order the forward runs them
            setattr(self, f"conv{i}", conv)
            setattr(self, f"bn{i}", nn.BatchNorm2d(conv.out_channels))
        self.shortcut = nn.Identity()
        if project:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, out, 1, stride, bias=bias),
                                          *([nn.BatchNorm2d(out)] if shortcut_bn else []))

    def forward(self, x):
        y = x
        for i in range(1, self.depth + 1):
            y = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(y))
            if i < self.depth:
                y = F.relu(y)
        return F.relu(y + self.shortcut(x))


def book_conv_block(c_in, growth, bottleneck=0, bias=True):
    """d2l 8.7's conv_block (BN → ReLU → 3×3 conv), DenseNet-BC's 1×1 first."""
    layers = []
    if bottleneck:
        layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, bottleneck * growth, 1,
                                                             bias=bias)]
        c_in = bottleneck * growth
    return nn.Sequential(*layers, nn.BatchNorm2d(c_in), nn.ReLU(),
                         nn.Conv2d(c_in, growth, 3, padding=1, bias=bias))


class BookDenseBlock(nn.Module):
    def __init__(self, num_convs, c_in, growth, bottleneck=0, bias=True):
        super().__init__()
        self.net = nn.Sequential(*[book_conv_block(c_in + i * growth, growth, bottleneck, bias)
                                   for i in range(num_convs)])

    def forward(self, x):
        for blk in self.net:
            x = torch.cat((x, blk(x)), dim=1)
        return x


def book_transition(c_in, c_out, bias=True):
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=bias),
                         nn.AvgPool2d(2, 2))


def book_stem(c_in, c_out, bias=True):
    """ResNet's and DenseNet's b1."""
    return [nn.Conv2d(c_in, c_out, 7, 2, 3, bias=bias), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1)]


# --- LeNet and AlexNet: convs (kernel, stride, padding, pool), pool, pool_kernel, pool_stride,
# dense, activation, batch_norm (2d and 1d), dropout, adaptive_pool ----------------------------

LENET_BN_GELU = LeNetSpec(
    in_channels=2, num_classes=3, input_size=20,
    convs=(ConvLayer(4, 3, padding=1, pool=True), ConvLayer(6, 3, stride=2)),
    pool="max", pool_kernel=3, pool_stride=2, dense=(12,), activation="gelu",
    batch_norm=True)


def lenet_bn_gelu():
    # 20 → conv 3, p 1: 20 → max pool 3/2: ⌊(20 − 3)/2⌋ + 1 = 9 → conv 3, s 2: ⌊(9 − 3)/2⌋ + 1
    # = 4, so 6·4·4 = 96 features. The last conv ends no stage with a pool (pool=False).
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GELU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(4, 6, 3, stride=2), nn.BatchNorm2d(6), nn.GELU(),
        nn.Flatten(), nn.Linear(96, 12), nn.BatchNorm1d(12), nn.GELU(), nn.Linear(12, 3))


# conv 2·4·9 + 4 = 76, BN 2·4 = 8, conv 4·6·9 + 6 = 222, BN 2·6 = 12,
# Linear 96·12 + 12 = 1164, BatchNorm1d 2·12 = 24, Linear 12·3 + 3 = 39: 1545
LENET_BN_GELU_PARAMS = 1545

ALEXNET_SIGMOID_AVG = AlexNetSpec(
    in_channels=1, num_classes=5, input_size=24,
    convs=(ConvLayer(4, 5, stride=2, padding=2, pool=True), ConvLayer(8, 3, padding=1,
                                                                      pool=True)),
    pool="avg", pool_kernel=2, pool_stride=1, dense=(16, 8), activation="sigmoid",
    dropout=0.5, adaptive_pool=2)


def alexnet_sigmoid_avg():
    # 24 → conv 5, s 2, p 2: ⌊(24 + 4 − 5)/2⌋ + 1 = 12 → avg pool 2, stride 1: 11 → conv 3,
    # p 1: 11 → avg pool: 10 → adaptive pool: 2, so 8·2·2 = 32 features.
    return nn.Sequential(
        nn.Conv2d(1, 4, 5, 2, 2), nn.Sigmoid(), nn.AvgPool2d(2, 1),
        nn.Conv2d(4, 8, 3, 1, 1), nn.Sigmoid(), nn.AvgPool2d(2, 1), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(32, 16), nn.Sigmoid(), nn.Dropout(0.5),
        nn.Linear(16, 8), nn.Sigmoid(), nn.Dropout(0.5), nn.Linear(8, 5))


# conv 1·4·25 + 4 = 104, conv 4·8·9 + 8 = 296, Linear 32·16 + 16 = 528, Linear 16·8 + 8 = 136,
# Linear 8·5 + 5 = 45: 1109
ALEXNET_SIGMOID_AVG_PARAMS = 1109

# --- VGG: arch, dense, activation, batch_norm, dropout, adaptive_pool --------------------------

VGG_BN = VGGSpec(in_channels=3, num_classes=10, input_size=32, arch=((1, 4), (2, 8)),
                 dense=(16,), batch_norm=True, dropout=0.0)


def vgg_bn(batch_norm=True):
    """d2l 8.2's vgg_block with BatchNorm2d between each conv and its ReLU (vgg*_bn)."""
    def conv(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), *([nn.BatchNorm2d(o)] if batch_norm else []),
                nn.ReLU()]
    # 32 → 16 → 8: 8·8·8 = 512 features
    return nn.Sequential(*conv(3, 4), nn.MaxPool2d(2, 2), *conv(4, 8), *conv(8, 8),
                         nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(512, 16), nn.ReLU(),
                         nn.Linear(16, 10))


# b1: conv 3·4·9 + 4 = 112, BN 2·4 = 8; b2: conv 4·8·9 + 8 = 296, BN 16, conv 8·8·9 + 8 = 584,
# BN 16; Linear 512·16 + 16 = 8208, Linear 16·10 + 10 = 170: 9410 (without BN: 9410 − 40)
VGG_BN_PARAMS = 9410

VGG_GELU_POOLED = VGGSpec(in_channels=3, num_classes=4, input_size=16, arch=((2, 4),),
                          dense=(6,), activation="gelu", dropout=0.3, adaptive_pool=2)


def vgg_gelu_pooled():
    # 16 → 8 → adaptive pool 2: 4·2·2 = 16 features
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GELU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.GELU(), nn.MaxPool2d(2, 2), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, 6), nn.GELU(), nn.Dropout(0.3), nn.Linear(6, 4))


# conv 3·4·9 + 4 = 112, conv 4·4·9 + 4 = 148, Linear 16·6 + 6 = 102, Linear 6·4 + 4 = 28: 390
VGG_GELU_POOLED_PARAMS = 390

# --- NiN: blocks (out_channels, kernel, stride, padding), activation, batch_norm, dropout -------

NIN_BN = NiNSpec(in_channels=1, num_classes=3, input_size=32,
                 blocks=(NiNBlockCfg(4, 5, 1, 2), NiNBlockCfg(6, 3, 2, 1)), batch_norm=True,
                 dropout=0.0)


def book_nin_block(i, o, k, s, p, act=nn.ReLU, batch_norm=False):
    """d2l 8.3's nin_block, with BatchNorm2d between each conv and its activation."""
    def unit(i, o, k, s=1, p=0):
        return [nn.Conv2d(i, o, k, s, p), *([nn.BatchNorm2d(o)] if batch_norm else []), act()]
    return [*unit(i, o, k, s, p), *unit(o, o, 1), *unit(o, o, 1)]


def nin_bn(batch_norm=True):
    # 32 → conv 5, p 2: 32 → max pool 3/2: 15 → conv 3, s 2, p 1: ⌊(15 + 2 − 3)/2⌋ + 1 = 8 →
    # max pool 3/2: 3 → the last block (3 classes, 3×3, p 1): 3 → global average pooling
    return nn.Sequential(*book_nin_block(1, 4, 5, 1, 2, batch_norm=batch_norm),
                         nn.MaxPool2d(3, 2),
                         *book_nin_block(4, 6, 3, 2, 1, batch_norm=batch_norm),
                         nn.MaxPool2d(3, 2),
                         *book_nin_block(6, 3, 3, 1, 1, batch_norm=batch_norm),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


# block 1: 1·4·25 + 4 = 104, 4·4 + 4 = 20, 20, BN 3·(2·4) = 24 → 168
# block 2: 4·6·9 + 6 = 222, 6·6 + 6 = 42, 42, BN 3·(2·6) = 36 → 342
# last:    6·3·9 + 3 = 165, 3·3 + 3 = 12, 12, BN 3·(2·3) = 18 → 207;  total 717
NIN_BN_PARAMS = 717

NIN_SIGMOID_DROPOUT = NiNSpec(in_channels=2, num_classes=4, input_size=24,
                              blocks=(NiNBlockCfg(5, 3, 2, 0),), activation="sigmoid",
                              dropout=0.5)


def nin_sigmoid_dropout():
    # 24 → conv 3, s 2: ⌊(24 − 3)/2⌋ + 1 = 11 → max pool 3/2: 5 → dropout → last block
    return nn.Sequential(*book_nin_block(2, 5, 3, 2, 0, act=nn.Sigmoid), nn.MaxPool2d(3, 2),
                         nn.Dropout(0.5), *book_nin_block(5, 4, 3, 1, 1, act=nn.Sigmoid),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


# block: 2·5·9 + 5 = 95, 5·5 + 5 = 30, 30; last: 5·4·9 + 4 = 184, 4·4 + 4 = 20, 20: 379
NIN_SIGMOID_DROPOUT_PARAMS = 379

# --- GoogLeNet: stem_channels, b3, b4, b5, branch3_kernel (the book's: no BN, padded pools) ----

GOOGLENET_SMALL = GoogLeNetSpec(
    in_channels=1, num_classes=3, input_size=32, stem_channels=(4, 4, 8),
    b3=(InceptionCfg(2, (2, 4), (1, 2), 2),), b4=(InceptionCfg(4, (2, 4), (1, 2), 2),),
    b5=(InceptionCfg(2, (2, 2), (1, 2), 2),), branch3_kernel=5)


def googlenet_small():
    # 32 → 7×7/2, p 3: 16 → pool 3/2, p 1: 8 → b2: 8 → pool: 4 → b3: 4 → pool: 2 → b4 → pool: 1
    pool = [nn.MaxPool2d(3, 2, 1)]
    return nn.Sequential(
        nn.Conv2d(1, 4, 7, 2, 3), nn.ReLU(), *pool,
        nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), *pool,
        BookInception(8, 2, (2, 4), (1, 2), 2), *pool,        # 2 + 4 + 2 + 2 = 10 channels
        BookInception(10, 4, (2, 4), (1, 2), 2), *pool,       # 4 + 4 + 2 + 2 = 12
        BookInception(12, 2, (2, 2), (1, 2), 2),              # 2 + 2 + 2 + 2 = 8
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


# b1: 1·4·49 + 4 = 200; b2: 4·4 + 4 = 20, 4·8·9 + 8 = 296
# b3 (in 8):  8·2 + 2 = 18 | 8·2 + 2 = 18, 2·4·9 + 4 = 76 | 8·1 + 1 = 9, 1·2·25 + 2 = 52 |
#             8·2 + 2 = 18 → 191
# b4 (in 10): 10·4 + 4 = 44 | 22, 76 | 11, 52 | 22 → 227
# b5 (in 12): 12·2 + 2 = 26 | 26, 2·2·9 + 2 = 38 | 13, 52 | 26 → 181
# Linear 8·3 + 3 = 27;  total 200 + 20 + 296 + 191 + 227 + 181 + 27 = 1142
GOOGLENET_SMALL_PARAMS = 1142

# --- ResNet: stem_channels, stages, block, conv_bias, shortcut_batch_norm ----------------------

RESNET_BASIC = ResNetSpec(in_channels=1, num_classes=3, input_size=32, stem_channels=4,
                          stages=((1, 4), (1, 8)))


def resnet_basic():
    return nn.Sequential(*book_stem(1, 4), BookResidual(4, 4),
                         BookResidual(4, 8, stride=2, project=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


# b1: 1·4·49 + 4 = 200, BN 8; b2: 4·4·9 + 4 = 148, BN 8, 148, BN 8 → 312;
# b3: 4·8·9 + 8 = 296, BN 16, 8·8·9 + 8 = 584, BN 16, 1×1 shortcut 4·8 + 8 = 40 → 952;
# Linear 8·3 + 3 = 27;  total 1499
RESNET_BASIC_PARAMS = 1499

RESNET_BOTTLENECK = ResNetSpec(in_channels=1, num_classes=3, input_size=32, stem_channels=8,
                               stages=((1, 2), (1, 4)), block="bottleneck", conv_bias=False,
                               shortcut_batch_norm=True)


def resnet_bottleneck():
    # b2 takes 8 = 4·2 channels at stride 1: the identity shortcut; b3 projects 8 → 16, /2
    return nn.Sequential(*book_stem(1, 8, bias=False), BookResidual(8, 2, bias=False,
                                                                    bottleneck=True),
                         BookResidual(8, 4, stride=2, project=True, bias=False,
                                      shortcut_bn=True, bottleneck=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))


# no conv has a bias. b1: 1·8·49 = 392, BN 16;
# b2: 1×1 8·2 = 16, BN 4, 3×3 2·2·9 = 36, BN 4, 1×1 2·8 = 16, BN 16 → 92;
# b3: 1×1 8·4 = 32, BN 8, 3×3 4·4·9 = 144, BN 8, 1×1 4·16 = 64, BN 32,
#     shortcut 8·16 = 128, BN 32 → 448;  Linear 16·3 + 3 = 51;  total 999
RESNET_BOTTLENECK_PARAMS = 999

# --- DenseNet: stem_channels, growth_rate, num_convs_in_dense_blocks, compression,
# bottleneck_size, conv_bias ------------------------------------------------------------------

DENSENET_COMPRESSED = DenseNetSpec(in_channels=1, num_classes=3, input_size=32,
                                   stem_channels=6, growth_rate=4,
                                   num_convs_in_dense_blocks=(2, 1), compression=0.3)


def densenet_compressed():
    # 6 + 2·4 = 14 channels, the transition keeps ⌊14 · 0.3⌋ = ⌊4.2⌋ = 4, then 4 + 4 = 8
    return nn.Sequential(*book_stem(1, 6), BookDenseBlock(2, 6, 4), book_transition(14, 4),
                         BookDenseBlock(1, 4, 4), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))


# b1: 1·6·49 + 6 = 300, BN 12; dense: BN 12, 6·4·9 + 4 = 220, BN 20, 10·4·9 + 4 = 364 → 616;
# transition: BN 28, 14·4 + 4 = 60 → 88; dense: BN 8, 4·4·9 + 4 = 148 → 156;
# head: BN 16, Linear 8·3 + 3 = 27;  total 312 + 616 + 88 + 156 + 16 + 27 = 1215
DENSENET_COMPRESSED_PARAMS = 1215

DENSENET_BC = DenseNetSpec(in_channels=2, num_classes=3, input_size=32, stem_channels=4,
                           growth_rate=2, num_convs_in_dense_blocks=(1, 1), compression=1.0,
                           bottleneck_size=2, conv_bias=False)


def densenet_bc():
    # 4 + 2 = 6 channels, all kept (compression 1), then 6 + 2 = 8
    return nn.Sequential(*book_stem(2, 4, bias=False), BookDenseBlock(1, 4, 2, 2, bias=False),
                         book_transition(6, 6, bias=False), BookDenseBlock(1, 6, 2, 2,
                                                                            bias=False),
                         nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 3))


# no conv has a bias. b1: 2·4·49 = 392, BN 8;
# dense (in 4): BN 8, 1×1 to 2·2 = 4: 16, BN 8, 3×3 4·2·9 = 72 → 104;
# transition: BN 12, 6·6 = 36 → 48; dense (in 6): BN 12, 1×1 6·4 = 24, BN 8, 72 → 116;
# head: BN 16, Linear 27;  total 400 + 104 + 48 + 116 + 16 + 27 = 711
DENSENET_BC_PARAMS = 711

WRITTEN_OUT = {
    "lenet-bn-gelu": (LENET_BN_GELU, lenet_bn_gelu, LENET_BN_GELU_PARAMS),
    "alexnet-sigmoid-avg": (ALEXNET_SIGMOID_AVG, alexnet_sigmoid_avg,
                            ALEXNET_SIGMOID_AVG_PARAMS),
    "vgg-bn": (VGG_BN, vgg_bn, VGG_BN_PARAMS),
    "vgg-gelu-pooled": (VGG_GELU_POOLED, vgg_gelu_pooled, VGG_GELU_POOLED_PARAMS),
    "nin-bn": (NIN_BN, nin_bn, NIN_BN_PARAMS),
    "nin-sigmoid-dropout": (NIN_SIGMOID_DROPOUT, nin_sigmoid_dropout,
                            NIN_SIGMOID_DROPOUT_PARAMS),
    "googlenet-small": (GOOGLENET_SMALL, googlenet_small, GOOGLENET_SMALL_PARAMS),
    "resnet-basic": (RESNET_BASIC, resnet_basic, RESNET_BASIC_PARAMS),
    "resnet-bottleneck": (RESNET_BOTTLENECK, resnet_bottleneck, RESNET_BOTTLENECK_PARAMS),
    "densenet-compressed": (DENSENET_COMPRESSED, densenet_compressed,
                            DENSENET_COMPRESSED_PARAMS),
    "densenet-bc": (DENSENET_BC, densenet_bc, DENSENET_BC_PARAMS),
}


# The networks compared with torchvision's below.
DENSENET_TORCHVISION = DenseNetSpec(in_channels=3, num_classes=5, input_size=32, stem_channels=8,
                                    growth_rate=6, num_convs_in_dense_blocks=(2, 3),
                                    compression=0.5, bottleneck_size=3, conv_bias=False)
RESNET50 = ResNetSpec(in_channels=3, num_classes=1000, input_size=224,
                      stages=((3, 64), (4, 128), (6, 256), (3, 512)), block="bottleneck",
                      conv_bias=False, shortcut_batch_norm=True)
COMPARED = [spec for spec, _, _ in WRITTEN_OUT.values()] + [
    DENSENET_TORCHVISION, RESNET50, PRESETS["googlenet-imagenet"].spec]


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("custom", "alexnet")])
def test_every_knob_of_every_family_is_moved_in_a_compared_network(family):
    """Each field of each family's spec takes two values among the networks compared here, or
    one that is not its default: a knob no comparison moves could be ignored unseen. LeNet
    and AlexNet share one builder, so their networks count together."""
    group = ("lenet", "alexnet") if family == "lenet" else (family,)
    specs = [s for s in COMPARED if s.family in group]
    unmoved = [f.name for f in dataclasses.fields(SPEC_CLASSES[family])
               if len({getattr(s, f.name) for s in specs}) < 2
               and all(getattr(s, f.name) == f.default for s in specs)]
    assert specs and unmoved == []


@pytest.mark.parametrize("name", list(WRITTEN_OUT))
def test_a_family_with_its_knobs_moved_is_the_network_written_out_by_hand(name):
    """Same parameter count as counted by hand, same tensors in the same order, and the same
    outputs as the network written out with torch, in training and in evaluation mode."""
    spec, written_out, params = WRITTEN_OUT[name]
    ours, reference = build(spec), written_out()
    assert n_params(reference) == params  # the hand count describes the written-out network
    assert n_params(ours) == params
    assert_same_function(ours, reference, image(spec.in_channels, spec.input_size))


# --- the knobs one at a time -------------------------------------------------------------------

def test_vgg_batch_norm_sits_between_each_conv_and_its_activation():
    """2·C parameters per BatchNorm2d, one after every conv (none in the dense layers), and
    torchvision's own make_layers gives the same convolutional part."""
    with_bn, without = build(VGG_BN), build(dataclasses.replace(VGG_BN, batch_norm=False))
    assert [type(m) for m in with_bn.b1] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert n_params(with_bn) - n_params(without) == 2 * 4 + 2 * 8 + 2 * 8
    assert count(with_bn, nn.BatchNorm2d) == 3 and count(with_bn, nn.BatchNorm1d) == 0
    features = make_layers([4, "M", 8, 8, "M"], batch_norm=True)
    assert_same_function(nn.Sequential(with_bn.b1, with_bn.b2), features, image(3, 32))
    assert_same_function(without, vgg_bn(batch_norm=False), image(3, 32))


def test_vgg11_bn_has_torchvisions_parameters_and_batch_norms():
    """VGG-11 with batch_norm is torchvision's vgg11_bn: 132,868,840 parameters."""
    spec = dataclasses.replace(PRESETS["vgg11-imagenet"].spec, batch_norm=True)
    with torch.device("meta"):
        reference = tv.vgg11_bn(weights=None)
    ours = build(spec, "meta")
    # VGG-11's 132,863,336 plus 2·C for the BatchNorm after each of its eight convs
    assert n_params(ours) == n_params(reference) == 132_863_336 + 2 * (
        64 + 128 + 256 + 256 + 512 + 512 + 512 + 512)
    assert count(ours, nn.BatchNorm2d) == count(reference, nn.BatchNorm2d) == 8
    ours_types = [type(m) for m in ours.modules() if not list(m.children())]
    theirs = [type(m) for m in reference.features]
    assert ours_types[:len(theirs)] == theirs


@pytest.mark.parametrize("spec, norms", [(VGG_BN, 3), (NIN_BN, 9)], ids=["vgg", "nin"])
def test_batch_norm_makes_training_and_evaluation_mode_differ(spec, norms):
    """With BatchNorm a training-mode forward normalises by the batch's statistics and an
    evaluation-mode one by the running ones; without it (and no dropout) they agree."""
    x = image(spec.in_channels, spec.input_size)
    for batch_norm in (True, False):
        model = scramble_norms(build(dataclasses.replace(spec, batch_norm=batch_norm)))
        assert count(model, nn.BatchNorm2d) == (norms if batch_norm else 0)
        with torch.no_grad():
            differ = not torch.allclose(model.train()(x), model.eval()(x))
        assert differ == batch_norm


def test_nin_batch_norm_follows_every_conv_of_every_block():
    model = build(NIN_BN)
    block = model.b1[0]
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 3
    without = build(dataclasses.replace(NIN_BN, batch_norm=False))
    # 2·4 for each of block 1's three convs, 2·6 for block 2's, 2·3 for the last block's
    assert n_params(model) - n_params(without) == 3 * (8 + 12 + 6)
    assert_same_function(without, nin_bn(batch_norm=False), image(1, 32))


@pytest.mark.parametrize("compression, kept", [(0.3, 4), (0.5, 7), (0.75, 10), (1.0, 14)])
def test_densenet_transition_keeps_floor_of_compression_times_channels(compression, kept):
    """14 channels reach the transition (6 + 2·4): it keeps ⌊14·compression⌋ of them."""
    spec = dataclasses.replace(DENSENET_COMPRESSED, compression=compression)
    model = build(spec)
    transition = model.b2.transition
    assert transition[2].in_channels == 14 and transition[2].out_channels == kept
    assert model.b3.dense.layers[0][0].num_features == kept
    # the hand count above with k kept channels: transition conv 14·k + k, dense conv
    # k·4·9 + 4 and BN 2·k, head BN 2·(k + 4) and Linear (k + 4)·3 + 3
    params = 300 + 12 + 616 + 28 + (14 * kept + kept) + (2 * kept + kept * 4 * 9 + 4) + (
        2 * (kept + 4)) + (kept + 4) * 3 + 3
    assert n_params(model) == params
    with torch.no_grad():
        assert model.eval()(image(1, 32)).shape == (4, 3)


def test_densenet_is_torchvisions_densenet_with_its_growth_rate_and_bottleneck():
    """torchvision's DenseNet class (bottleneck, no biases, halving transitions) at
    non-default growth rate, bottleneck size, stem and blocks computes what ours does."""
    spec = DENSENET_TORCHVISION
    reference = tv.DenseNet(growth_rate=6, block_config=(2, 3), num_init_features=8,
                            bn_size=3, num_classes=5)
    assert n_params(build(spec)) == n_params(reference)
    assert_same_function(build(spec), reference, image(3, 32))


def test_bottleneck_resnet_is_torchvisions_resnet50():
    """1×1 → 3×3 (stride) → 1×1 with 4× the channels and a BatchNorm after each conv, the
    last one included: 25,557,032 parameters and the same outputs as torchvision's."""
    spec = RESNET50
    reference = tv.resnet50(weights=None)
    ours = build(spec)
    assert n_params(ours) == n_params(reference) == 25_557_032
    block = ours.b3[0].body
    assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2 + [
        nn.Conv2d, nn.BatchNorm2d]
    assert [(m.kernel_size, m.stride) for m in block if isinstance(m, nn.Conv2d)] == [
        ((1, 1), (1, 1)), ((3, 3), (2, 2)), ((1, 1), (1, 1))]
    # 32 → 16 → 8 → 8 → 4 → 2 → 1: each stage's first block runs its stride
    assert_same_function(ours, reference, image(3, 32, batch=2))


def test_shortcut_batch_norm_adds_a_batch_norm_to_each_projection_only():
    """The book's ResNet-18 (96×96) projects three shortcuts, to 128, 256 and 512 channels:
    shortcut_batch_norm puts a BatchNorm2d after each of those 1×1 convs, and nowhere else."""
    plain = build(ResNetSpec(), "meta")
    normed = build(ResNetSpec(shortcut_batch_norm=True), "meta")
    for model, expected in ((plain, [nn.Conv2d]), (normed, [nn.Conv2d, nn.BatchNorm2d])):
        shortcuts = [m.shortcut for m in model.modules() if hasattr(m, "shortcut")]
        projections = [s for s in shortcuts if not isinstance(s, nn.Identity)]
        assert len(shortcuts) == 8 and len(projections) == 3
        assert all([type(m) for m in s] == expected for s in projections)
    assert n_params(normed) - n_params(plain) == 2 * (128 + 256 + 512)
    assert count(normed, nn.BatchNorm2d) - count(plain, nn.BatchNorm2d) == 3


@pytest.mark.parametrize("spec, convs", [
    (ResNetSpec(), 1 + 16 + 3),  # the stem, two 3×3 per block, three 1×1 shortcuts
    (ResNetSpec(block="bottleneck", stages=((1, 16), (1, 32))), 1 + 3 + 3 + 1),
    (DenseNetSpec(), 1 + 16 + 3),  # the stem, one per conv block, one per transition
    (DenseNetSpec(bottleneck_size=4), 1 + 32 + 3),
], ids=["resnet", "resnet-bottleneck", "densenet", "densenet-bc"])
def test_conv_bias_adds_or_removes_one_bias_per_output_channel(spec, convs):
    """conv_bias=False removes exactly the convs' biases: c_out per conv, and nothing else."""
    with_bias = build(spec, "meta")
    without = build(dataclasses.replace(spec, conv_bias=False), "meta")
    conv_layers = [m for m in with_bias.modules() if isinstance(m, nn.Conv2d)]
    assert len(conv_layers) == convs
    assert all(m.bias is not None for m in conv_layers)
    assert all(m.bias is None for m in without.modules() if isinstance(m, nn.Conv2d))
    assert n_params(with_bias) - n_params(without) == sum(m.out_channels for m in conv_layers)
    # Linear layers keep theirs
    assert all(m.bias is not None for m in without.modules() if isinstance(m, nn.Linear))


def test_googlenet_with_torchvisions_knobs_is_torchvisions_googlenet():
    """batch_norm (BasicConv2d, eps 1e-3), ceil_mode pools with a 2×2 pool before b5,
    branch3_kernel 3 and dropout: torchvision's GoogLeNet computes the same."""
    reference = tv.googlenet(weights=None, aux_logits=False, init_weights=False)
    ours = build(PRESETS["googlenet-imagenet"].spec)
    assert all(m.eps == 1e-3 for m in ours.modules() if isinstance(m, nn.BatchNorm2d))
    # 32 → 16 → 8 → 4 → 2 → 1: even at every pool, where the book's padded 3×3/2 and
    # torchvision's 3×3/2 with ceil_mode give the same size but take the maximum over
    # different windows; the values tell them apart
    assert_same_function(ours, reference, image(3, 32, batch=2))


@pytest.mark.parametrize("m, book, ceil", [(33, 17, 16), (32, 16, 16)])
def test_googlenet_ceil_mode_changes_the_stem_pools_arithmetic(m, book, ceil):
    """b1's pool sees the 7×7/2 conv's m = ⌊(n + 6 − 7)/2⌋ + 1 (n = 2m − 1). The book's 3×3/2
    with padding 1 gives ⌊(m + 2 − 3)/2⌋ + 1, torchvision's ceil_mode one ⌈(m − 3)/2⌉ + 1:
    17 and 16 for m = 33, both 16 for m = 32."""
    n = 2 * m - 1
    for ceil_mode, expected in ((False, book), (True, ceil)):
        spec = dataclasses.replace(GOOGLENET_SMALL, ceil_mode=ceil_mode, input_size=n)
        model = build(spec).eval()
        with torch.no_grad():
            assert model.b1(image(1, n)).shape[-1] == expected


@pytest.mark.parametrize("spec", [LENET_BN_GELU, VGG_GELU_POOLED,
                                  dataclasses.replace(NIN_BN, activation="gelu"),
                                  dataclasses.replace(ALEXNET_SIGMOID_AVG, activation="gelu")],
                         ids=["lenet", "vgg", "nin", "alexnet"])
def test_gelu_is_the_exact_gelu_everywhere(spec):
    """Every activation is nn.GELU (the exact erf form), and each gives F.gelu of its input."""
    model = build(spec).eval()
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.Sigmoid, nn.GELU))]
    assert acts and all(type(m) is nn.GELU and m.approximate == "none" for m in acts)
    seen = []
    for m in acts:
        m.register_forward_hook(lambda _m, inp, out: seen.append(
            torch.equal(out, F.gelu(inp[0]))))
    with torch.no_grad():
        model(image(spec.in_channels, spec.input_size))
    assert seen == [True] * len(acts)


def test_in_channels_and_num_classes_size_the_first_and_last_layers():
    """The first conv has c_in·c_out·k² weights; the last layer gives num_classes scores."""
    for spec, weights in ((LeNetSpec(in_channels=3, num_classes=7), 3 * 6 * 25),
                          (ResNetSpec(in_channels=2, num_classes=7), 2 * 64 * 49),
                          (GoogLeNetSpec(in_channels=3, num_classes=7), 3 * 64 * 49)):
        model = build(spec, "meta")
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert first.weight.numel() == weights
        with torch.no_grad():
            out = model(torch.empty(2, spec.in_channels, spec.input_size, spec.input_size,
                                    device="meta"))
        assert out.shape == (2, 7)


def test_input_size_sizes_the_first_linear_of_a_flatten_linear_head():
    """LeNet at 32 instead of 28: 16·6·6 = 576 features reach the first Linear, not 400
    (28 → 28 → 14 → 10 → 5; 32 → 32 → 16 → 12 → 6)."""
    for size, features in ((28, 16 * 5 * 5), (32, 16 * 6 * 6)):
        model = build(LeNetSpec(input_size=size))
        assert model.head[1].in_features == features
        with torch.no_grad():
            assert model.eval()(image(1, size)).shape == (4, 10)
