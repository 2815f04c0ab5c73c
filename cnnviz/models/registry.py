"""Family name → builder, in the style of timm's ``register_model``/``create_model``."""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Callable

import torch
from torch import nn

from cnnviz.errors import Problem, ShapeError, SpecError
from cnnviz.models.arithmetic import output_shape
from cnnviz.models.blocks import init_weights
from cnnviz.specs import validate

_BUILDERS: dict[str, Callable] = {}


def register(family: str) -> Callable:
    def decorator(builder: Callable) -> Callable:
        _BUILDERS[family] = builder
        return builder
    return decorator


def build(spec, device: str | torch.device | None = None, seed: int | None = None) -> nn.Module:
    """Build the network a spec describes, with the book's initialisation.

    ``device="meta"`` gives a model with shapes but no storage: shape work never pays for
    weights. ``seed``: the weights are drawn from a generator of that seed, never from torch's
    process-wide one, so the same seed gives the same network whatever other sessions' threads
    draw meanwhile, and no other thread's random numbers change. Raises :class:`SpecError`
    when the spec cannot be built.
    """
    problems = validate(spec)
    if problems:
        raise SpecError(problems)
    try:
        if seed is not None:
            return _seeded(spec, device, seed)
        with torch.device(device) if device is not None else contextlib.nullcontext():
            return _BUILDERS[spec.family](spec)
    except (RuntimeError, OverflowError, MemoryError) as exc:
        # Within the spec's bounds this should not happen; if PyTorch still refuses (a
        # tensor too large for this machine), say so instead of crashing.
        raise SpecError([Problem("", f"PyTorch cannot build this network: "
                                     f"{str(exc).splitlines()[0]}")]) from None


def _seeded(spec, device, seed: int) -> nn.Module:
    """Built on the meta device (the layers' own random init draws nothing there), given
    storage, then initialised from a generator of ``seed`` alone: torch's process-wide random
    stream is neither seeded nor drawn from."""
    with torch.device("meta"):
        model = _BUILDERS[spec.family](spec)
    model = model.to_empty(device=device if device is not None else "cpu")
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)) and hasattr(module, "reset_parameters"):
            module.reset_parameters()  # BatchNorm: γ = 1, β = 0, fresh running statistics
    return init_weights(model, torch.Generator().manual_seed(seed))


@functools.lru_cache(maxsize=64)
def build_meta(spec) -> nn.Module:
    """The model on the meta device, cached by spec (specs are frozen and hashable).

    Shared between callers: treat it as read-only.
    """
    return build(spec, device="meta")


def flat_features(features: nn.Module, spec) -> int:
    """How many features ``features`` hands to Flatten at the spec's input size.

    This is how the book sizes the first Linear (``nn.Linear(16 * 5 * 5, 120)``); a different
    input size then no longer fits that Linear, which is what the size finder reports. The size
    arithmetic answers without a forward pass (a first meta-device forward in a process costs
    about a second of imports, on every command-line call).
    """
    try:
        shape = output_shape(features, (spec.in_channels, spec.input_size, spec.input_size))
    except ShapeError as exc:
        raise SpecError([Problem("input_size", f"{spec.input_size} is too small for the "
                                               f"convolutional part: {exc}")]) from None
    return math.prod(shape)
