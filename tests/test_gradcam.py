"""Grad-CAM: the map's size and range, its meaning on a network made by hand, no side effects."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.activations.gradcam import GradCamError, grad_cam, upsample
from cnnviz.graph.trace import fx_shapes
from cnnviz.models import build, build_meta
from cnnviz.presets import PRESETS


@pytest.mark.parametrize("name, layer, node", [
    ("lenet", "b2.2", "b2.2"),              # the last pooling before Flatten
    ("resnet18", "b5.1.act", "b5.1.act"),   # the last residual block's output, before pooling
    ("googlenet", "b5.1", "cat_8"),         # the last Inception block: its concatenation
])
def test_map_has_the_layers_size_and_lies_in_0_1(name, layer, node):
    spec = PRESETS[name].spec
    torch.manual_seed(0)
    model = build(spec)
    x = torch.rand(1, spec.in_channels, spec.input_size, spec.input_size)
    cam, chosen = grad_cam(model, x, target_class=3)
    assert chosen == layer
    shape = fx_shapes(build_meta(spec), (spec.in_channels, spec.input_size, spec.input_size))
    assert tuple(cam.shape) == tuple(shape[node][1:])
    assert cam.dtype == torch.float32 and not torch.isnan(cam).any()
    assert cam.min() >= 0 and cam.max() <= 1
    assert cam.max() == 1 or cam.abs().sum() == 0
    # An explicit layer is honoured and has its own size.
    early = "b1.0"
    cam_early, chosen = grad_cam(model, x[0], 3, layer=early)  # (C, H, W) is accepted too
    assert chosen == early and tuple(cam_early.shape) == tuple(shape[early][1:])


class _TwoSides(nn.Module):
    """Channel 0 of the last map lights up only on the left half, channel 1 only on the right;
    class 0's score is channel 0's average, class 1's channel 1's."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))

    def forward(self, x):
        return self.flat(self.pool(self.act(self.conv(x))))


def _two_sides_image() -> torch.Tensor:
    x = torch.zeros(2, 6, 8)
    x[0, :, :4] = torch.rand(6, 4) + 0.1
    x[1, :, 4:] = torch.rand(6, 4) + 0.1
    return x


def test_map_is_zero_where_the_class_has_no_evidence():
    torch.manual_seed(0)
    model, x = _TwoSides(), _two_sides_image()
    cam, layer = grad_cam(model, x, 0)
    assert layer == "act"
    assert cam.shape == (6, 8)
    assert torch.all(cam[:, 4:] == 0) and torch.all(cam[:, :4] > 0)
    # Only channel 0 carries weight, so the map is that channel scaled to a maximum of 1.
    assert torch.allclose(cam, x[0] / x[0].max())
    right, _ = grad_cam(model, x, 1)
    assert torch.all(right[:, :4] == 0) and torch.all(right[:, 4:] > 0)


def test_a_map_with_no_evidence_is_zeros_not_nan():
    model = _TwoSides()
    x = torch.zeros(2, 6, 8)
    x[1] = 1.0  # only the right-hand channel is on: nothing speaks for class 0
    cam, _ = grad_cam(model, x, 0)
    assert not torch.isnan(cam).any() and torch.all(cam == 0)


def test_no_lasting_side_effects():
    spec = PRESETS["resnet18"].spec
    model = build(spec).train()
    model.b2[0].body.bn1.eval()  # a module-level mode that must survive too
    frozen = model.b1[0].weight
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, spec.in_channels, spec.input_size, spec.input_size)
    grad_cam(model, x, 1)
    grad_cam(model, x, 2, layer="b3.0.act")
    assert all(p.grad is None for p in model.parameters())
    assert not frozen.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "b1.0.weight")
    assert model.training and not model.b2[0].body.bn1.training and model.b3.training
    assert all(not m._forward_hooks for m in model.modules())
    # Eval mode during the call: BatchNorm's running statistics are untouched.
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_frozen_weights_still_give_a_map():
    model = _TwoSides().requires_grad_(False)
    cam, _ = grad_cam(model, _two_sides_image(), 0)
    assert cam.max() == 1


def test_refusals_say_what_is_wrong():
    model = _TwoSides()
    x = _two_sides_image()
    with pytest.raises(GradCamError, match="not a layer"):
        grad_cam(model, x, 0, layer="b9.0")
    with pytest.raises(GradCamError, match="no feature map"):
        grad_cam(model, x, 0, layer="flat")
    with pytest.raises(GradCamError, match="class 5"):
        grad_cam(model, x, 5)
    with pytest.raises(GradCamError, match="one image"):
        grad_cam(model, torch.stack([x, x]), 0)


def test_upsample_to_the_input_size():
    cam = torch.tensor([[0.0, 1.0], [0.5, 0.25]])
    big = upsample(cam, 28)
    assert big.shape == (28, 28) and big.min() >= 0 and big.max() <= 1
    assert big[0, 0] == 0 and big[0, -1] == 1  # corners keep their cell's value
    assert upsample(cam, (10, 20)).shape == (10, 20)
