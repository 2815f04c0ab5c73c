"""What each kind of connection does in the current network, in words and with its own numbers:
a residual block's shortcut (identity, or the 1×1 projection that makes x fit F(x)), a dense
block's concatenation and the transition after it, an Inception block's four paths.

The shapes come from one forward pass on the meta device (no storage, no arithmetic) with
forward hooks on the blocks, so the sentences always match the network as built.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.errors import Shape, fmt_shape
from cnnviz.models import build
from cnnviz.models.blocks import (INCEPTION_COUNTS, INCEPTION_PATHS, DenseBlock, Inception,
                                  Residual, last_conv, transition_after)


@dataclass(frozen=True)
class Explanation:
    kind: str        # "identity", "projection", "dense", "branch", "main"
    path: str        # the block's module path ("" for the main path)
    text: str


def _shapes(model: nn.Module, spec) -> tuple[dict[str, Shape], dict[str, Shape]]:
    """(inputs, outputs) of every module, for one image, from a meta-device forward pass."""
    inputs: dict[str, Shape] = {}
    outputs: dict[str, Shape] = {}
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def record(m, args, out, name=name):
            if args and isinstance(args[0], torch.Tensor):
                inputs[name] = tuple(args[0].shape[1:])
            if isinstance(out, torch.Tensor):
                outputs[name] = tuple(out.shape[1:])
        handles.append(module.register_forward_hook(record))
    try:
        size = spec.input_size
        with torch.no_grad():
            model(torch.empty(1, spec.in_channels, size, size, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return inputs, outputs


def explanations(spec) -> list[Explanation]:
    """One explanation per residual, dense and Inception block, in the order they run; a
    network without them gets one about its main path."""
    model = build(spec, device="meta").eval()
    inputs, outputs = _shapes(model, spec)
    found: list[Explanation] = []
    for path, module in model.named_modules():
        if isinstance(module, Residual):
            found.append(_residual(path, module, inputs, outputs))
        elif isinstance(module, DenseBlock):
            found.append(_dense(path, module, model, inputs, outputs))
        elif isinstance(module, Inception):
            found.append(_inception(path, module, inputs, outputs))
    if not found:
        found.append(Explanation("main", "", "Every layer's output is the next layer's input: "
                                 "a chain, with no shortcut, no concatenation and no "
                                 "parallel paths (ResNet, DenseNet and GoogLeNet have them)."))
    return found


def _residual(path: str, block: Residual, inputs, outputs) -> Explanation:
    x, fx = inputs[path], outputs[f"{path}.body"]
    convs = [m for m in block.shortcut.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        return Explanation("identity", path, (
            f"{path}: x is {fmt_shape(x)} and F(x) is {fmt_shape(fx)}, the same shape, so the "
            f"shortcut adds x as it is (identity): ReLU(x + F(x)) is {fmt_shape(outputs[path])}. "
            "The block only has to learn what to add to x."))
    conv = convs[0]
    stride = conv.stride[0]
    what = []
    if x[0] != fx[0]:
        what.append(f"{x[0]} → {fx[0]} channels")
    if x[1:] != fx[1:]:
        what.append(f"{x[1]}×{x[2]} → {fx[1]}×{fx[2]}")
    change = " and ".join(what) if what else "the same shape"
    return Explanation("projection", path, (
        f"{path}: here x is {fmt_shape(x)} and F(x) is {fmt_shape(fx)}, so the shortcut needs a "
        f"{conv.kernel_size[0]}×{conv.kernel_size[1]} conv with stride {stride} ({change}) to "
        f"add them: ReLU(projection(x) + F(x)) is {fmt_shape(outputs[path])}."))


def _dense(path: str, block: DenseBlock, model: nn.Module, inputs, outputs) -> Explanation:
    start = inputs[path][0]
    growths = [outputs[f"{path}.layers.{i}"][0] for i in range(len(block.layers))]
    out = outputs[path]
    same = len(set(growths)) == 1
    added = f"{len(growths)} × {growths[0]}" if same and growths else " + ".join(map(str, growths))
    text = (f"{path} takes {start} channels and concatenates {added} more (one growth per conv "
            f"block, each seeing all the channels before it): {start} + {sum(growths)} = "
            f"{out[0]} channels at {out[1]}×{out[2]}. Nothing is added up, unlike ResNet: the "
            "channels grow.")
    transition = transition_after(model, path)
    if transition is not None:
        t_in, t_out = inputs[transition], outputs[transition]
        halves = "halves them" if t_out[0] * 2 == t_in[0] else "takes them"
        text += (f" The transition {transition} {halves} to {t_out[0]} with a 1×1 conv and "
                 f"halves the height and width with 2×2 average pooling: {t_in[1]}×{t_in[2]} → "
                 f"{t_out[1]}×{t_out[2]}.")
    return Explanation("dense", path, text)


def _inception(path: str, block: Inception, inputs, outputs) -> Explanation:
    x = inputs[path]
    parts = []
    counts = []
    for i, (words, count) in enumerate(zip(INCEPTION_PATHS, INCEPTION_COUNTS), 1):
        channels = last_conv(getattr(block, f"p{i}")).out_channels
        counts.append(channels)
        parts.append(f"p{i} {words} → {count} = {channels}")
    out = outputs[path]
    return Explanation("branch", path, (
        f"{path} runs four paths side by side on the same {fmt_shape(x)} input: "
        + "; ".join(parts) + f". Their outputs keep the {out[1]}×{out[2]} size and are "
        f"concatenated along the channels: {' + '.join(map(str, counts))} = {out[0]}."))
