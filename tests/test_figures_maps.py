"""The Feature maps page's figures: pure functions of activations, weights and images."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.figures_maps import (DIVERGING, MAX_GRID, SEQUENTIAL, channel_grid, channel_large,
                                 dense_figure, inception_figure, kernels_figure,
                                 picture_figure, prediction_figure, residual_figure)


def images(fig):
    return [t for t in fig.data if t.type == "image"]


def decoded(trace) -> np.ndarray:
    """The RGB pixels of an image trace's PNG source."""
    data = base64.b64decode(trace.source.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def signed_layer() -> torch.Tensor:
    """Four 6×6 channels: c0 in [-1, 1], c1 in [0, 2], c2 in [-4, 0.5], c3 in [1, 3]."""
    ramp = torch.linspace(0, 1, 36).reshape(6, 6)
    return torch.stack([ramp * 2 - 1, ramp * 2, ramp * 4.5 - 4, ramp * 2 + 1])


def ranges(fig) -> list[tuple[float, float]]:
    return [(t.meta["zmin"], t.meta["zmax"]) for t in images(fig)]


def test_the_grid_has_one_captioned_image_per_listed_channel():
    act = signed_layer()
    fig = channel_grid(act, [3, 0, 2], "per layer", title="b1")
    assert [t.meta["channel"] for t in images(fig)] == [3, 0, 2]
    captions = [a.text for a in fig.layout.annotations]
    assert captions[0].startswith("c3<br>") and "mean 2.00" in captions[0] \
        and "max 3.00" in captions[0]
    assert captions[1].startswith("c0<br>") and "mean 0.00" in captions[1]
    assert fig.layout.title.text.startswith("b1")


def test_per_map_scales_each_map_to_its_own_range_centred_on_0_when_signed():
    fig = channel_grid(signed_layer(), range(4), "per map")
    # some map has both signs: every map on the diverging scale, ±max|map|
    assert ranges(fig) == [(-1.0, 1.0), (-2.0, 2.0), (-4.0, 4.0), (-3.0, 3.0)]
    assert {t.meta["colorscale"] for t in images(fig)} == {DIVERGING}
    unsigned = channel_grid(signed_layer()[[1, 3]], range(2), "per map")
    assert ranges(unsigned) == [(0.0, 2.0), (1.0, 3.0)]
    assert {t.meta["colorscale"] for t in images(unsigned)} == {SEQUENTIAL}


def test_per_layer_uses_the_whole_layer_not_only_the_shown_channels():
    fig = channel_grid(signed_layer(), [1, 3], "per layer")
    # the layer spans [-4, 3]: symmetric around 0 on the diverging scale
    assert ranges(fig) == [(-4.0, 4.0)] * 2
    assert fig.layout.coloraxis.cmin == -4.0 and fig.layout.coloraxis.cmax == 4.0
    assert fig.layout.coloraxis.colorscale == channel_large(
        torch.tensor([[-1.0, 1.0]]), "").data[0].colorscale  # the same diverging colours
    positive = channel_grid(signed_layer()[[1, 3]], [0], "per layer")
    assert ranges(positive) == [(0.0, 3.0)]
    assert images(positive)[0].meta["colorscale"] == SEQUENTIAL


def test_global_scope_uses_the_given_range():
    fig = channel_grid(signed_layer(), [0, 1], "global", global_range=(0.0, 10.0))
    assert ranges(fig) == [(0.0, 10.0)] * 2
    assert "global scale 0 … 10" in fig.layout.title.text
    with pytest.raises(ValueError, match="global_range"):
        channel_grid(signed_layer(), [0], "global")
    with pytest.raises(ValueError, match="scope"):
        channel_grid(signed_layer(), [0], "per network")


def test_zero_is_white_and_the_ends_are_blue_and_red_on_the_diverging_scale():
    act = torch.zeros(1, 3, 3)
    act[0, 0, 0], act[0, 2, 2] = -2.0, 2.0
    pixels = decoded(images(channel_grid(act, [0], "per map"))[0])
    low, middle, high = pixels[0, 0], pixels[1, 1], pixels[2, 2]
    assert min(middle) > 235                  # 0: near white
    assert low[2] > low[0] and high[0] > high[2]  # negative blue, positive red


def test_per_map_and_per_layer_colour_the_same_values_differently():
    act = torch.stack([torch.full((4, 4), 1.0), torch.full((4, 4), 10.0)])
    act[0, 0, 0] = act[1, 0, 0] = 0.0
    per_map = [decoded(t)[3, 3] for t in images(channel_grid(act, [0, 1], "per map"))]
    per_layer = [decoded(t)[3, 3] for t in images(channel_grid(act, [0, 1], "per layer"))]
    assert (per_map[0] == per_map[1]).all()      # each at its own max
    assert not (per_layer[0] == per_layer[1]).all()  # 1 and 10 on one scale


def test_worst_case_grids_of_a_1024_channel_layer_stay_under_3_mb():
    torch.manual_seed(0)
    for shape in ((1024, 7, 7), (256, 56, 56), (64, 112, 112)):
        act = torch.randn(shape)  # noise: the worst case for the PNGs' compression
        for scope in ("per map", "per layer"):
            fig = channel_grid(act, range(MAX_GRID), scope)
            assert len(images(fig)) == MAX_GRID
            assert len(fig.to_json()) <= 3_000_000


def test_large_maps_are_averaged_down_in_the_grid_but_keep_their_extent():
    fig = channel_grid(torch.rand(2, 224, 224), [0, 1], "per map")
    first = images(fig)[0]
    assert decoded(first).shape[:2] == (56, 56) and first.dx == 4
    assert "averaged 4×4" in fig.layout.title.text


def test_the_large_view_shows_values_on_hover_square_and_downwards():
    z = torch.arange(12, dtype=torch.float32).reshape(3, 4) - 3
    fig = channel_large(z, "c7")
    [heat] = fig.data
    assert np.array_equal(np.asarray(heat.z), z.numpy())
    assert heat.zmin == -8 and heat.zmax == 8          # centred on 0
    assert all(k in heat.hovertemplate for k in ("row", "col", "value"))
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.autorange == "reversed"
    positive = channel_large(z + 10, "c7").data[0]
    assert positive.zmin == 7 and positive.zmax == 18


def test_rgb_kernels_are_scaled_each_to_0_1_and_captioned():
    weight = torch.randn(70, 3, 5, 5)
    fig = kernels_figure(weight, max_kernels=64)
    assert len(images(fig)) == 64
    assert [a.text for a in fig.layout.annotations] == [f"k{i}" for i in range(64)]
    pixels = decoded(images(fig)[0])
    assert pixels.shape == (5, 5, 3) and pixels.min() == 0 and pixels.max() == 255
    assert "first 64 shown" in fig.layout.title.text


def test_grey_kernels_are_a_diverging_heatmap():
    weight = torch.randn(6, 1, 5, 5)
    fig = kernels_figure(weight)
    assert [t.type for t in fig.data] == ["heatmap"] * 6
    assert np.allclose(np.asarray(fig.data[2].z), weight[2, 0].numpy())
    axis = fig.layout.coloraxis
    assert axis.cmin == -axis.cmax == -float(weight.abs().max())


def test_the_receptive_field_box_is_drawn_around_its_pixels():
    pixels = np.zeros((32, 32, 3), np.uint8)
    fig = picture_figure(pixels, "input", box=(2, 3, 12, 20))
    [rect] = fig.layout.shapes
    assert (rect.y0, rect.x0, rect.y1, rect.x1) == (1.5, 2.5, 12.5, 20.5)
    assert decoded(images(fig)[0]).shape == (32, 32, 3)
    assert fig.layout.yaxis.scaleanchor == "x"


def test_a_grad_cam_overlay_covers_the_image():
    fig = picture_figure(np.zeros((28, 28), np.uint8), "input", overlay=np.eye(7),
                         overlay_opacity=0.3)
    [overlay] = [t for t in fig.data if t.type == "heatmap"]
    assert overlay.opacity == 0.3 and overlay.zmin == 0 and overlay.zmax == 1
    # 7 cells of 4 pixels: from -0.5 to 27.5, like the image
    assert overlay.x0 - overlay.dx / 2 == -0.5 and overlay.x0 + 6.5 * overlay.dx == 27.5
    assert decoded(images(fig)[0]).shape == (28, 28, 3)


def test_residual_panels_share_a_scale_and_carry_the_norms():
    x, fx = torch.randn(8, 8), torch.randn(8, 8) * 3
    norms = {"x": 1.25, "F(x)": 3.5, "x + F(x)": 4.75}
    fig = residual_figure(x, fx, x + fx, (x + fx).relu(), norms)
    titles = [a.text for a in fig.layout.annotations]
    assert "‖x‖ = 1.25" in titles[0] and "‖F(x)‖ = 3.5" in titles[1] \
        and "‖x + F(x)‖ = 4.75" in titles[2] and titles[3].startswith("ReLU(x + F(x))")
    assert [t.coloraxis for t in fig.data] == ["coloraxis"] * 3 + ["coloraxis2"]
    reach = float(torch.cat([x, fx, x + fx]).abs().max())
    assert fig.layout.coloraxis.cmin == pytest.approx(-reach)
    assert fig.layout.coloraxis.cmax == pytest.approx(reach)
    assert fig.layout.coloraxis2.cmin == 0


def test_a_projection_replaces_x_and_says_so():
    x, projection, fx = torch.randn(4, 4), torch.randn(2, 2), torch.randn(2, 2)
    fig = residual_figure(x, fx, projection + fx, (projection + fx).relu(),
                          {"x": 1.0, "projection": 2.5, "F(x)": 1.0, "x + F(x)": 1.0},
                          projection2d=projection)
    assert np.allclose(np.asarray(fig.data[0].z), projection.numpy())
    assert "projection" in fig.layout.annotations[0].text
    assert "= 2.5" in fig.layout.annotations[0].text


def test_dense_bars_are_coloured_by_producer_and_the_title_adds_up():
    producers = [("block input", 0, 64)] + [(f"conv {i + 1} (+32)", 64 + 32 * i, 96 + 32 * i)
                                            for i in range(4)]
    means = np.linspace(0, 1, 192)
    fig = dense_figure(means, producers, transition=(192, 96, 28, 14))
    assert [t.name for t in fig.data] == [label for label, _, _ in producers]
    assert [len(t.x) for t in fig.data] == [64, 32, 32, 32, 32]
    assert np.allclose(np.asarray(fig.data[1].y), means[64:96])
    title = fig.layout.title.text
    assert title.startswith("64 + 4 × 32 = 192 channels")
    first, count, growth, total = map(int, re.match(r"(\d+) \+ (\d+) × (\d+) = (\d+)",
                                                    title).groups())
    assert first + count * growth == total == producers[-1][2]
    assert "192 → 96 channels" in title and "28×28 → 14×14" in title


def test_dense_producers_must_cover_the_channels():
    with pytest.raises(ValueError, match="cover"):
        dense_figure(np.zeros(100), [("block input", 0, 64), ("conv 1", 64, 96)])
    with pytest.raises(ValueError, match="start"):
        dense_figure(np.zeros(96), [("block input", 0, 64), ("conv 1", 70, 96)])


def test_inception_columns_carry_the_branch_labels_and_counts():
    labels = ["p1: 1×1 conv · 64 ch", "p2: 3×3 conv · 128 ch", "p3: 5×5 conv · 32 ch",
              "p4: 3×3 pool, 1×1 conv · 32 ch"]
    counts = [64, 128, 32, 32]
    branches = [(label, torch.rand(c, 7, 7)) for label, c in zip(labels, counts)]
    fig = inception_figure(branches)
    assert [a.text for a in fig.layout.annotations] == labels
    assert len(fig.data) == 4
    assert np.allclose(np.asarray(fig.data[1].z), branches[1][1].mean(dim=0).numpy(),
                       atol=1e-6)
    assert "64 + 128 + 32 + 32 = 256 channels" in fig.layout.title.text


def test_prediction_bars_are_percentages_top_first():
    top = [("7", 0.9), ("1", 0.05), ("9", 0.03), ("4", 0.015), ("2", 0.005)]
    fig = prediction_figure(top)
    [bars] = fig.data
    assert list(bars.y) == ["7", "1", "9", "4", "2"]
    assert list(bars.x) == pytest.approx([90, 5, 3, 1.5, 0.5])
    assert bars.text[0] == "90.0 %" and fig.layout.yaxis.autorange == "reversed"


def test_a_vector_is_one_bar_per_feature_up_to_the_limit():
    from cnnviz.figures_maps import MAX_FEATURES, vector_figure
    short = vector_figure(torch.tensor([-1.0, 0.5, 2.0]), "fc")
    assert list(short.data[0].y) == [-1.0, 0.5, 2.0]
    assert list(short.data[0].marker.color) == ["#2166ac", "#b2182b", "#b2182b"]
    long = vector_figure(torch.arange(MAX_FEATURES + 10, dtype=torch.float32), "flat")
    assert len(long.data[0].y) == MAX_FEATURES and f"of {MAX_FEATURES + 10:,}" in \
        long.layout.title.text
