"""Receptive fields: hand-checked values, the fx shapes, and the gradient's support."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.activations.receptive_field import Field, arithmetic, fields, region
from cnnviz.graph.trace import fx_shapes
from cnnviz.models import build, build_meta
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L


def _rjs(f: Field) -> tuple[int, int, float, int]:
    return f.size, f.jump, f.start, f.side


def test_lenet_by_hand():
    f = fields(build_meta(PRESETS["lenet"].spec), 28)
    assert _rjs(f["b1.0"]) == (5, 1, 0.0, 28)      # 5×5 conv, padding 2
    assert _rjs(f["b1.1"]) == (5, 1, 0.0, 28)      # sigmoid keeps it
    assert _rjs(f["b1.2"]) == (6, 2, 0.5, 14)      # 2×2/2 pooling: 5 + 1·1, 1·2
    assert _rjs(f["b2.0"]) == (14, 2, 4.5, 10)     # 6 + 4·2; 0.5 + 2·2
    assert _rjs(f["b2.2"]) == (16, 4, 5.5, 5)
    assert not f["b2.2"].whole
    # Flatten sees all 5×5 positions: 16 + 4·4 = 32 pixels, the whole 28×28 image.
    assert f["head.0"].whole and f["head.0"].size == 32 and f["head.0"].side == 1
    assert f["head.5"] == f["head.0"]
    assert region(f["b2.2"], 2, 2, 28) == (6, 6, 22, 22)
    assert region(f["b2.2"], 0, 4, 28) == (0, 14, 14, 28)  # clipped at both borders
    assert region(f["head.5"], 0, 0, 28) == (0, 0, 28, 28)


def test_lenet_arithmetic_written_out():
    lines = arithmetic(build_meta(PRESETS["lenet"].spec), "b2.1", 28)
    assert lines == [
        "b1.0 Conv2d (k=5, s=1, p=2): r = 1 + (5 − 1)·1 = 5, j = 1·1 = 1, "
        "start = 0 + ((5 − 1)/2 − 2)·1 = 0",
        "b1.2 AvgPool2d (k=2, s=2, p=0): r = 5 + (2 − 1)·1 = 6, j = 1·2 = 2, "
        "start = 0 + ((2 − 1)/2 − 0)·1 = 0.5",
        "b2.0 Conv2d (k=5, s=1, p=0): r = 6 + (5 − 1)·2 = 14, j = 2·1 = 2, "
        "start = 0.5 + ((5 − 1)/2 − 0)·2 = 4.5",
        "b2.1 Sigmoid keeps every position: r = 14, j = 2, start = 4.5"]
    with pytest.raises(KeyError):
        arithmetic(build_meta(PRESETS["lenet"].spec), "b9.0", 28)


def test_alexnet_by_hand():
    f = fields(build_meta(PRESETS["alexnet"].spec), 224)
    assert _rjs(f["b1.0"]) == (11, 4, 4.0, 54)     # 11×11/4, padding 1: (11 − 1)/2 − 1 = 4
    assert _rjs(f["b1.2"]) == (19, 8, 8.0, 26)     # 3×3/2 max pooling: 11 + 2·4
    assert _rjs(f["b2.0"]) == (51, 8, 8.0, 26)     # 5×5, padding 2: 19 + 4·8
    assert _rjs(f["b2.2"]) == (67, 16, 16.0, 12)
    assert _rjs(f["b3.0"]) == (99, 16, 16.0, 12)
    assert _rjs(f["b3.4"]) == (163, 16, 16.0, 12)
    assert _rjs(f["b3.6"]) == (195, 32, 32.0, 5)
    assert not f["b3.4"].whole and f["head.1"].whole
    lines = arithmetic(build_meta(PRESETS["alexnet"].spec), "b2.0", 224)
    assert lines[-1] == ("b2.0 Conv2d (k=5, s=1, p=2): r = 19 + (5 − 1)·8 = 51, j = 8·1 = 8, "
                         "start = 8 + ((5 − 1)/2 − 2)·8 = 8")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_node_of_every_preset_has_a_field_with_the_map_side(name):
    spec = PRESETS[name].spec
    model = build_meta(spec)
    shapes = fx_shapes(model, (spec.in_channels, spec.input_size, spec.input_size))
    f = fields(model, spec.input_size)
    assert set(shapes) <= set(f)
    for key, shape in shapes.items():
        side = shape[-1] if len(shape) == 3 else 1
        assert f[key].side == side, key
        assert f[key].size >= 1 and f[key].jump >= 1
    assert f[list(shapes)[-1]].whole  # the class scores see the whole image


# --- the gradient's support -----------------------------------------------------------------

def _positive(model: nn.Module) -> nn.Module:
    """Weights that average their inputs (all positive, biases 0): no gradient cancels."""
    model = model.double().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    return model


def _support(model: nn.Module, layer: str, channels: int, size: int,
             row: int, col: int) -> tuple[int, int, int, int] | None:
    """Bounding box (ends excluded) of the input pixels whose gradient is nonzero."""
    out: dict[str, torch.Tensor] = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda m, i, o: out.__setitem__("o", o))
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(1, channels, size, size, generator=gen, dtype=torch.float64) + 0.5)
    x.requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    (g,) = torch.autograd.grad(out["o"][0, :, row, col].sum(), x)
    nz = (g[0].abs().sum(0) > 0).nonzero()
    if len(nz) == 0:
        return None
    (top, left), (bottom, right) = nz.min(0).values.tolist(), nz.max(0).values.tolist()
    return top, left, bottom + 1, right + 1


def _inside(box, outer) -> bool:
    return (box[0] >= outer[0] and box[1] >= outer[1] and box[2] <= outer[2]
            and box[3] <= outer[3])


def _clear_of_borders(f: Field, row: int, col: int, size: int) -> bool:
    first = f.first
    return all(first + i * f.jump >= 0 and first + i * f.jump + f.size <= size
               for i in (row, col))


def _check_all_positions(model: nn.Module, layer: str, channels: int, size: int,
                         exact: bool) -> int:
    """Support inside the region everywhere; equal to it (``exact``) away from borders.
    Returns how many positions were checked exactly."""
    f = fields(model, size)[layer]
    checked = 0
    for row in range(f.side):
        for col in range(f.side):
            box = region(f, row, col, size)
            support = _support(model, layer, channels, size, row, col)
            assert support is not None and _inside(support, box), (row, col, support, box)
            if exact and _clear_of_borders(f, row, col, size):
                assert support == box, (row, col)
                checked += 1
    return checked


def test_gradient_support_equals_the_region_for_a_conv_and_average_pooling_chain():
    model = _positive(nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(3, 3, 3, stride=2),
        nn.Sigmoid(), nn.Conv2d(3, 2, 3, dilation=2)))
    assert _check_all_positions(model, "5", 1, 40, exact=True) > 0


def test_gradient_support_for_a_custom_spec_without_padding():
    spec = CustomSpec(2, 10, 36, (L.Conv(4, 5), L.ReLU(), L.AvgPool(3, 2), L.Conv(4, 3),
                                  L.BatchNorm(), L.Conv(3, 3, stride=2)))
    model = _positive(build(spec))
    # No padding: every position of the 6×6 map lies inside the image, so all are exact.
    assert _check_all_positions(model, "5", 2, 36, exact=True) == 36


def test_adaptive_pooling_into_uneven_bins_keeps_its_map_and_bounds_every_position():
    # 7×7 → 3×3: bins [0, 3), [2, 5), [4, 7) — no single stride
    model = _positive(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(3),
                                    nn.Conv2d(2, 1, 3, padding=1)))
    f = fields(model, 9)
    assert (f["1"].side, f["2"].side) == (3, 3)
    assert region(f["1"], 2, 2, 9) == (0, 0, 9, 9) == region(f["2"], 0, 1, 9)
    _check_all_positions(model, "1", 1, 9, exact=False)
    _check_all_positions(model, "2", 1, 9, exact=False)
    assert "uneven bins" in arithmetic(model, "1", 9)[-1]


def test_padding_keeps_the_support_inside_the_clipped_region_and_exact_at_the_top_left():
    model = _positive(nn.Sequential(
        nn.Conv2d(1, 2, 5, padding=2), nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.AvgPool2d(3, stride=1, padding=1), nn.Conv2d(2, 1, 3, padding=1)))
    size = 21
    assert _check_all_positions(model, "3", 1, size, exact=True) > 0
    f = fields(model, size)["3"]
    assert f.first < 0  # position (0, 0) reaches into the padding: the box is clipped
    assert _support(model, "3", 1, size, 0, 0) == region(f, 0, 0, size)


def test_max_pooling_picks_pixels_inside_the_region():
    model = _positive(nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, 2), nn.ReLU(), nn.Conv2d(2, 2, 3),
        nn.MaxPool2d(2)))
    _check_all_positions(model, "4", 1, 30, exact=False)


def test_lenet_gradient_matches_the_region_away_from_the_padding():
    model = _positive(build(PRESETS["lenet"].spec))
    f = fields(model, 28)["b2.2"]
    assert _support(model, "b2.2", 1, 28, 2, 2) == region(f, 2, 2, 28) == (6, 6, 22, 22)
    assert _support(model, "b2.0", 1, 28, 4, 5) == region(fields(model, 28)["b2.0"], 4, 5, 28)


def test_resnet18_residual_additions_grow_the_field():
    spec = PRESETS["resnet18"].spec
    model = build_meta(spec)
    f = fields(model, spec.input_size)
    adds = [k for k in f if k.startswith("add")]
    assert len(adds) == 8  # two residual blocks in each of b2..b5
    sizes = [f[k].size for k in adds]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    # The main path: every layer's field at least as large as the one before it.
    main = [k for k in f if not k.endswith("shortcut") and ".shortcut." not in k]
    assert all(f[a].size <= f[b].size for a, b in zip(main, main[1:]))
    # An addition sees what its wider path (the body) sees.
    assert f["add"].size == f["b2.0.body.bn2"].size == f["b2.0.body.conv2"].size
    assert f["b3.0.act"] == f["add_2"]
    assert "the widest is b3.0.body.bn2" in arithmetic(model, "b3.0.act", spec.input_size)[-2]


def test_resnet18_gradient_stays_inside_the_region():
    spec = PRESETS["resnet18"].spec
    model = _positive(build(spec))
    f = fields(model, spec.input_size)["b3.0.act"]
    centre = f.side // 2
    box = region(f, centre, centre, spec.input_size)
    support = _support(model, "b3.0.act", 1, spec.input_size, centre, centre)
    assert support is not None and _inside(support, box)
    # The stem's 3×3 max pooling (over a map of jump 2) picks one position per window: at
    # most two positions, 4 pixels, go missing at each edge of the box.
    for lo, hi in ((0, 2), (1, 3)):
        assert support[hi] - support[lo] >= box[hi] - box[lo] - 8


def test_position_outside_the_map_is_refused():
    f = fields(build_meta(PRESETS["lenet"].spec), 28)["b2.2"]
    with pytest.raises(ValueError, match="outside the 5×5 map"):
        region(f, 5, 0, 28)
