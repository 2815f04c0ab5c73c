"""A block's behaviour lives in its class: its forward, its shape rule and its exported source."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import cnnviz.models
from cnnviz.codegen import LIBRARY_ONLY, block_source
from cnnviz.errors import ShapeError
from cnnviz.models import blocks, build_meta
from cnnviz.models.arithmetic import output_shape
from cnnviz.presets import PRESETS


def _cnnviz_module_classes() -> list[type]:
    """Every nn.Module subclass that cnnviz.models defines."""
    classes = []
    for info in pkgutil.iter_modules(cnnviz.models.__path__):
        module = importlib.import_module(f"cnnviz.models.{info.name}")
        classes += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                    if issubclass(cls, nn.Module) and cls.__module__ == module.__name__]
    return classes


def test_every_block_class_has_a_shape_rule():
    classes = _cnnviz_module_classes()
    assert {"Inception", "Residual", "DenseBlock", "VGGBlock", "NiNBlock",
            "Transition"} <= {c.__name__ for c in classes}
    missing = [c.__name__ for c in classes if not callable(getattr(c, "shape_rule", None))]
    assert missing == []


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_container_in_a_preset_is_plain_or_has_a_shape_rule(name):
    for module in build_meta(PRESETS[name].spec).modules():
        if module._modules:
            assert type(module) in (nn.Sequential, nn.ModuleList) or hasattr(
                module, "shape_rule"), type(module).__name__


class Doubling(nn.Sequential):
    """A Sequential with a forward of its own: its layers are not a plain chain."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([super().forward(x), x], dim=1)


class Unruled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * 2


@pytest.mark.parametrize("block", [Doubling(nn.Conv2d(1, 2, 3, padding=1)), Unruled()])
def test_a_container_without_a_shape_rule_is_refused_not_guessed(block):
    """Tracing Doubling as a chain would say 2 channels; the real answer is 3."""
    with pytest.raises(ShapeError, match="shape_rule") as info:
        output_shape(nn.Sequential(nn.ReLU(), block), (1, 8, 8))
    assert info.value.layer == "1"


def test_a_shape_rule_decides_the_tracers_answer():
    class Doubled(Doubling):
        def shape_rule(self, shape, trace_child, name):
            inner = trace_child("0", shape)
            return (inner[0] + shape[0], *inner[1:])

    block = Doubled(nn.Conv2d(1, 2, 3, padding=1))
    assert output_shape(block, (1, 8, 8)) == tuple(block(torch.zeros(1, 1, 8, 8)).shape[1:])


@pytest.mark.parametrize("cls", [blocks.Inception, blocks.Residual, blocks.DenseBlock])
def test_exported_block_source_is_the_class_less_its_library_only_members(cls):
    source = block_source(cls)
    assert source.startswith(f"class {cls.__name__}(nn.Module):")
    assert "def forward" in source and inspect.getsource(cls.forward) in source
    assert not any(name in source for name in LIBRARY_ONLY)
    namespace = {"torch": torch, "nn": nn}
    exec(source, namespace)  # it defines the class with torch alone
    exported = namespace[cls.__name__]
    assert list(inspect.signature(exported).parameters) == list(
        inspect.signature(cls).parameters)


@pytest.mark.parametrize("factory, channels", [
    (lambda: blocks.inception(3, 2, (2, 4), (1, 3), 5), 14),
    (lambda: blocks.residual(3, 4, use_1x1conv=True), 4),
    (lambda: blocks.residual(3, 4, use_1x1conv=True, bottleneck=True), 16),
    (lambda: blocks.dense_block(3, 5, 2), 11),
    (lambda: blocks.dense_block(2, 5, 2, bottleneck_size=4), 9),
])
def test_out_channels_is_what_the_forward_gives(factory, channels):
    block = factory()
    assert block.out_channels == channels
    assert block(torch.zeros(2, block_in(block), 8, 8)).shape[1] == channels


def block_in(block: nn.Module) -> int:
    first = next(m for m in block.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)))
    return first.in_channels if isinstance(first, nn.Conv2d) else first.num_features


def test_a_chain_block_cannot_have_a_forward_of_its_own():
    with pytest.raises(TypeError, match="cannot have a forward"):
        class Broken(blocks.ChainBlock):  # noqa: F841
            def forward(self, x):
                return x


def test_the_code_export_refuses_a_container_it_cannot_write():
    with pytest.raises(TypeError, match="no source"):
        from cnnviz.codegen import _Renderer
        _Renderer().render(nn.Sequential(Doubling(nn.Conv2d(1, 2, 3))), 1)


def test_an_empty_dense_block_says_why_it_has_no_channels():
    with pytest.raises(ValueError, match="no layer"):
        blocks.DenseBlock([]).out_channels
