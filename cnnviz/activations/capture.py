"""One forward pass of a network on one picture, every layer's output kept: what the Feature maps
page shows, from the layer list to the insides of residual, dense and Inception blocks.

The layers are the layer table's (``cnnviz.shapes.summarize``), named by module path: the
``call_module`` targets of the torch.fx graph (``cnnviz.graph.trace``) for the leaves, and the
blocks that contain them. Forward hooks on those paths record each output (and each block's
input, which a residual block adds back and a dense block concatenates onto) in a single pass
without gradients, so changing the layer or the channel on the page never runs the network
again. A residual block's x + F(x) is the sum its ``forward`` makes before the ReLU: the body's
output plus the shortcut's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cnnviz.models import build
from cnnviz.models.blocks import (INCEPTION_COUNTS, INCEPTION_PATHS, DenseBlock, Inception,
                                  Residual, Transition, last_conv, transition_after)
from cnnviz.shapes.summary import summarize


@dataclass(frozen=True)
class Layer:
    """A layer of the layer table the page can show."""

    key: str                     # module path, e.g. "b2.0.body.conv1"
    block: str                   # the top-level block it belongs to, e.g. "b2"
    type: str                    # "Conv2d", "Residual", …
    shape: tuple[int, ...]       # its output for one image: (C, H, W) or (features,)
    is_leaf: bool

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3

    @property
    def label(self) -> str:
        shape = "×".join(str(n) for n in self.shape)
        return f"{self.key} · {self.type} · {shape}"


def layers(spec, size: int | None = None) -> list[Layer]:
    """Every layer of the layer table at input ``size`` (the spec's own unless given), in its
    order: the leaves and the blocks around them."""
    summary = summarize(spec, size)
    return [Layer(row.name, row.name.split(".")[0], row.type, tuple(row.output_shape),
                  row.is_leaf) for row in summary.rows]


def fresh_model(spec, seed: int = 0) -> nn.Module:
    """The network as a training run starts it: the same seed, the same initialisation (drawn
    from a generator of its own, never from torch's process-wide one)."""
    return build(spec, seed=seed).eval()


@dataclass
class Capture:
    """What one picture does in the network: every layer's output and every block's input,
    for that one image (the batch dimension dropped), on the CPU."""

    outputs: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]
    logits: torch.Tensor
    input: torch.Tensor          # what the network received, (C, H, W)
    nbytes: int = field(default=0)

    @property
    def probabilities(self) -> torch.Tensor:
        return torch.softmax(self.logits.double(), dim=0).float()

    def top(self, classes: tuple[str, ...] | None, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as (name, probability): the data set's class names
        where the network has as many outputs, else ``class i``."""
        probs = self.probabilities
        values, indices = probs.topk(min(k, probs.numel()))
        names = classes if classes is not None and len(classes) == probs.numel() else None
        return [(names[i] if names else f"class {i}", float(v))
                for v, i in zip(values.tolist(), indices.tolist())]


def capture(model: nn.Module, x: torch.Tensor) -> Capture:
    """Run ``model`` (eval mode, no gradients) on ``x`` of shape (1, C, H, W) and keep every
    named module's output, and the input of every residual, dense and Inception block."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"capture takes one image (1, C, H, W), got {tuple(x.shape)}")
    outputs: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}
    handles = []
    with_input = (Residual, DenseBlock, Inception, Transition)

    def hook(name: str, keep_input: bool):
        def record(module, args, output):
            if isinstance(output, torch.Tensor):
                outputs[name] = output.detach()[0].float().cpu()
            if keep_input and args and isinstance(args[0], torch.Tensor):
                inputs[name] = args[0].detach()[0].float().cpu()
        return record

    was_training = model.training
    model.eval()
    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(
                    hook(name, isinstance(module, with_input))))
        device = next(model.parameters(), x).device  # a chain of pools has no parameters
        with torch.no_grad():
            logits = model(x.to(device)).detach()[0].float().cpu()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    size = sum(t.numel() * t.element_size() for t in (*outputs.values(), *inputs.values()))
    return Capture(outputs, inputs, logits, x[0].detach().float().cpu(), size)


# -- the insides of the blocks ------------------------------------------------------------------

def blocks(model: nn.Module) -> dict[str, list[str]]:
    """The module paths of the residual, dense and Inception blocks, in order."""
    found: dict[str, list[str]] = {"residual": [], "dense": [], "inception": []}
    for name, module in model.named_modules():
        if isinstance(module, Residual):
            found["residual"].append(name)
        elif isinstance(module, DenseBlock):
            found["dense"].append(name)
        elif isinstance(module, Inception):
            found["inception"].append(name)
    return found


def block_of(key: str, paths: list[str]) -> str | None:
    """The innermost of ``paths`` that is ``key`` or contains it."""
    inside = [p for p in paths if key == p or key.startswith(p + ".")]
    return max(inside, key=len) if inside else None


@dataclass(frozen=True)
class ResidualParts:
    """One residual block on one picture: its input x, F(x) (the body), the shortcut's output
    (x itself, or its 1×1 projection), their sum, and the block's output after the ReLU."""

    x: torch.Tensor
    fx: torch.Tensor
    shortcut: torch.Tensor
    projected: bool
    sum: torch.Tensor
    out: torch.Tensor

    def norms(self, channel: int) -> dict[str, float]:
        return {name: float(t[channel].norm()) for name, t in
                (("x", self.shortcut), ("F(x)", self.fx), ("x + F(x)", self.sum),
                 ("ReLU(x + F(x))", self.out))}


def residual_parts(model: nn.Module, cap: Capture, path: str) -> ResidualParts:
    block = model.get_submodule(path)
    x = cap.inputs[path]
    fx = cap.outputs[f"{path}.body"]
    projected = any(isinstance(m, nn.Conv2d) for m in block.shortcut.modules())
    shortcut = cap.outputs.get(f"{path}.shortcut", x)
    return ResidualParts(x, fx, shortcut, projected, fx + shortcut, cap.outputs[path])


@dataclass(frozen=True)
class DenseParts:
    """One dense block on one picture: its output, which channels each part produced (the
    block input, then each conv block's growth), and the transition after it, if any."""

    out: torch.Tensor
    producers: list[tuple[str, int, int]]     # (label, first channel, end channel)
    transition: tuple[int, int, int, int] | None  # (in ch, out ch, in size, out size)


def dense_parts(model: nn.Module, cap: Capture, path: str) -> DenseParts:
    block = model.get_submodule(path)
    start = cap.inputs[path].shape[0]
    producers = [("block input", 0, start)]
    for i in range(len(block.layers)):
        grown = cap.outputs[f"{path}.layers.{i}"].shape[0]
        producers.append((f"conv block {i + 1} (+{grown})", start, start + grown))
        start += grown
    after = transition_after(model, path)
    transition = None if after is None else (cap.inputs[after].shape[0],
                                             cap.outputs[after].shape[0],
                                             cap.inputs[after].shape[-1],
                                             cap.outputs[after].shape[-1])
    return DenseParts(cap.outputs[path], producers, transition)


def inception_parts(model: nn.Module, cap: Capture, path: str) -> list[tuple[str, torch.Tensor]]:
    """The four paths' outputs before their concatenation, labelled with their channels."""
    block = model.get_submodule(path)
    parts = []
    for i, (what, count) in enumerate(zip(INCEPTION_PATHS, INCEPTION_COUNTS), 1):
        out = cap.outputs[f"{path}.p{i}"]
        assert out.shape[0] == last_conv(getattr(block, f"p{i}")).out_channels
        parts.append((f"p{i}: {what} · {count} = {out.shape[0]}", out))
    return parts


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first convolution the input meets: its kernels are worth seeing."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None
