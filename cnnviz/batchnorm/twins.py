"""A network's BatchNorm twin: the same network with BatchNorm, or without it.

:func:`twin` switches the family's own BatchNorm knob (LeNet, AlexNet, VGG, NiN and GoogLeNet
have ``batch_norm``), or, for ``custom``, puts a ``batchnorm`` layer after every conv and
switches on the blocks' ``batch_norm`` options (and back). LeNet's twin is the book's
BatchNorm LeNet (section 7.5), the ``lenet-bn`` preset, which also drops the first conv's
padding; the sentence says so. ResNet and DenseNet cannot drop BatchNorm (their blocks always
have it; so do custom ``residual``, ``dense_block`` and ``transition`` layers): their twin has
``spec=None`` and ``what`` says why, so a page can show the sentence without catching anything.

``what`` is one sentence with the network's numbers, worked out from the two built networks
(meta device): the BatchNorm layers added or removed, their γ and β, and whatever else the
switch changes (GoogLeNet's convs lose their biases; the book's LeNet-BN has a smaller first
Linear).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from cnnviz.models import build_meta
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec, Spec
from cnnviz.specs import custom as L
from cnnviz.batchnorm.stats import NORMS

# Custom layers whose BatchNorm is part of the block: no option switches it off.
_FIXED = (L.ResidualLayer, L.DenseBlockLayer, L.TransitionLayer)
_SWITCHED = (L.VGGBlockLayer, L.NiNBlockLayer, L.InceptionLayer)


@dataclass(frozen=True)
class Twin:
    spec: Spec | None  # None: the network cannot go without BatchNorm (``what`` says why)
    added: bool        # True: the twin adds BatchNorm; False: it removes it (or cannot)
    what: str          # one sentence with the numbers


def has_batch_norm(spec: Spec) -> bool:
    """Whether the network the spec builds has a BatchNorm layer."""
    return any(isinstance(m, NORMS) for m in build_meta(spec).modules())


def twin(spec: Spec) -> Twin:
    """The spec's BatchNorm twin (see the module's docstring)."""
    bn = has_batch_norm(spec)
    if spec.family in ("resnet", "densenet"):
        return _cannot(spec, f"{spec.title}'s blocks always have BatchNorm")
    if spec.family == "custom":
        fixed = sorted({layer.type for layer in spec.layers if isinstance(layer, _FIXED)})
        if fixed:
            return _cannot(spec, f"its {', '.join(fixed)} layers always have BatchNorm")
        other = _custom_without(spec) if bn else _custom_with(spec)
        if not other.layers:
            return _cannot(spec, "it is made of BatchNorm layers only, and a network needs "
                                 "a layer")
        if other == spec:  # nothing to put BatchNorm after
            return Twin(None, True, f"{spec.title} has no convolution (nor a block with one) to "
                                    "put BatchNorm after, so it has no twin with BatchNorm")
    elif spec.family == "lenet" and spec in (PRESETS["lenet"].spec, PRESETS["lenet-bn"].spec):
        other = PRESETS["lenet"].spec if bn else PRESETS["lenet-bn"].spec
    else:
        other = dataclasses.replace(spec, batch_norm=not spec.batch_norm)
    return Twin(other, not bn, _what(spec, other, added=not bn))


def _cannot(spec: Spec, why: str) -> Twin:
    count = _count(build_meta(spec))
    return Twin(None, False, f"{why} ({count.bn2d + count.bn1d} BatchNorm layers here): "
                             f"{spec.title} has no twin without it")


def _custom_with(spec: CustomSpec) -> CustomSpec:
    layers: list = []
    for layer in spec.layers:
        if isinstance(layer, _SWITCHED):
            layer = dataclasses.replace(layer, batch_norm=True)
        layers.append(layer)
        if isinstance(layer, L.Conv):
            layers.append(L.BatchNorm())
    return dataclasses.replace(spec, layers=tuple(layers))


def _custom_without(spec: CustomSpec) -> CustomSpec:
    layers = tuple(dataclasses.replace(layer, batch_norm=False)
                   if isinstance(layer, _SWITCHED) else layer
                   for layer in spec.layers if not isinstance(layer, L.BatchNorm))
    return dataclasses.replace(spec, layers=layers)


@dataclass(frozen=True)
class _Count:
    params: int
    convs: int
    bn2d: int
    bn1d: int
    bn_params: int    # γ and β: 2 per channel
    conv_biases: int
    first_linear_in: int | None


def _count(model: nn.Module) -> _Count:
    modules = list(model.modules())
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    bns = [m for m in modules if isinstance(m, NORMS)]
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    return _Count(
        params=sum(p.numel() for p in model.parameters()),
        convs=len(convs),
        bn2d=sum(isinstance(m, nn.BatchNorm2d) for m in bns),
        bn1d=sum(isinstance(m, nn.BatchNorm1d) for m in bns),
        bn_params=sum(p.numel() for m in bns for p in m.parameters(recurse=False)),
        conv_biases=sum(m.bias.numel() for m in convs if m.bias is not None),
        first_linear_in=linears[0].in_features if linears else None)


def _signed(n: int) -> str:
    return f"+{n:,}" if n >= 0 else f"−{-n:,}"


def _what(spec: Spec, other: Spec, *, added: bool) -> str:
    a, b = _count(build_meta(spec)), _count(build_meta(other))
    with_bn, without = (b, a) if added else (a, b)
    where = []
    d2, d1 = with_bn.bn2d - without.bn2d, with_bn.bn1d - without.bn1d
    if d2 == with_bn.convs == 1:
        where.append("BatchNorm2d after the convolution")
    elif d2:
        where.append(f"BatchNorm2d after each of the {d2} convolutions" if d2 == with_bn.convs
                     else f"{d2} BatchNorm2d layer{'s' * (d2 != 1)}")
    if d1:
        where.append(f"BatchNorm1d after the {d1} hidden Linear layer{'s' * (d1 != 1)}")
    verb = "adds" if added else "removes the"
    bn_params = b.bn_params - a.bn_params
    stats = "running statistics" if added else "their running statistics"
    sentence = f"{verb} {' and '.join(where)}: {_signed(bn_params)} parameters (γ and β) " \
               f"and {stats}"
    extra = []
    biases = b.conv_biases - a.conv_biases
    if biases:
        extra.append(f"the convolutions lose their biases ({_signed(biases)} parameters; β "
                     f"shifts instead)" if biases < 0 else f"the convolutions get their biases "
                     f"back ({_signed(biases)} parameters; no β shifts any more)")
    rest = b.params - a.params - bn_params - biases
    if rest:
        extra.append(f"the first conv's padding goes from {spec.convs[0].padding} to "
                     f"{other.convs[0].padding}, so the first Linear takes "
                     f"{b.first_linear_in:,} features instead of {a.first_linear_in:,} "
                     f"({_signed(rest)} parameters)"
                     if spec.family == "lenet" and spec.convs != other.convs
                     else f"other layers change by {_signed(rest)} parameters")
    if spec.family == "lenet" and other == PRESETS["lenet-bn"].spec:
        sentence = f"the book's BatchNorm LeNet (7.5, lenet-bn) {sentence}"
    elif spec.family == "lenet" and other == PRESETS["lenet"].spec and spec != other:
        sentence = f"the book's LeNet (6.6, lenet) {sentence}"
    if extra:
        sentence += "; " + "; ".join(extra) + f": {_signed(b.params - a.params)} in all"
    return sentence
