"""Errors the library raises on purpose: each carries a message fit to show a user."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located by its field path (``layers[3].kernel``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class CnnvizError(Exception):
    """Base class: the message is one clear line for a person."""


class SpecError(CnnvizError):
    """A spec (or its JSON) is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class ShapeError(CnnvizError):
    """The network does not run at the requested input size.

    ``layer`` is the module's dotted name, ``layer_type`` its class name and ``reason`` the
    arithmetic that failed. ``direction`` says which way the input size should move:
    ``"small"`` (input too small), ``"large"`` (too large) or ``"other"`` (no size helps).
    """

    def __init__(self, layer: str, layer_type: str, reason: str, direction: str):
        self.layer = layer
        self.layer_type = layer_type
        self.reason = reason
        self.direction = direction
        super().__init__(f"{layer_type} {layer}: {reason}")


Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) after Flatten; batch excluded


def fmt_shape(shape: Shape) -> str:
    """``(64, 56, 56)`` → ``64×56×56``: how every page and message writes a shape."""
    return "×".join(str(d) for d in shape)
