"""The Build page with AppTest (issue 8, items 5, 8 and 9): memory in KB, the layer table,
arithmetic and shape flow up to the layer where a network stops, and the one-click fixes."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from cnnviz.errors import fmt_shape
from cnnviz.presets import PRESETS
from cnnviz.specs.url import spec_to_token
from cnnviz.workbench import analyse, human_bytes
from tests import test_family_options as F
from tests.test_pages import (assert_ok, button, by_label, errors, metric, open_app,
                              open_tab, params_help, routed_as_served, spec_of, table)

__all__ = ["routed_as_served"]  # the fixture, used by every test here (autouse)


def test_lenet_memory_is_shown_in_kilobytes_not_zero_megabytes():
    at = open_app("build", preset="lenet")
    assert metric(at, "memory") == "302 KB"
    total = analyse(PRESETS["lenet"].spec).summary.total_bytes
    assert human_bytes(total) == "302 KB"
    assert f"{total:,} bytes" in next(m.proto.help for m in at.metric if m.label == "memory")


def stopped_alexnet():
    """The notes' AlexNet at 256: it builds, and stops at its first Linear (9216 ≠ 6400)."""
    return dataclasses.replace(PRESETS["notes-alexnet"].spec, input_size=256)


def test_a_network_that_stops_shows_its_layers_up_to_the_failing_one():
    at = open_app("build", net=spec_to_token(stopped_alexnet()))
    [diagnosis] = errors(at)
    assert "expects 6400 input features but gets 9216" in diagnosis
    assert not any("Fix the problem above" in i.value for i in at.info)
    layers = table(at, "output shape")
    assert list(layers["layer"]) == [str(i) for i in range(13)]
    assert layers["output shape"].iloc[-1] == "✖ does not run"
    assert layers["output shape"].iloc[-2] == "9216"
    [frame] = [d for d in at.dataframe if "output shape" in d.value.columns and
               "layer" in d.value.columns]
    assert "#fde0e0" in str(frame.proto.arrow_data)  # the failing row is red (its style)
    assert any("It stops at Linear (layer 12)" in m.value for m in at.markdown)
    # the card of layer 12 says so; the cards before it show their shapes
    cards = "\n".join(m.value for m in at.markdown)
    assert "**11** · `flatten` → 9216" in cards
    assert "**12** · `linear` → :red[**✖ does not run**" in cards

    open_tab(at, "Conv arithmetic")
    arithmetic = table(at, "arithmetic")
    assert arithmetic["output"].iloc[-1] == "✖ does not run"
    assert "expects 6400 input features but gets 9216" in arithmetic["arithmetic"].iloc[-1]
    open_tab(at, "Shape flow")
    [chart] = at.get("plotly_chart")
    assert "stops at Linear 12" in chart.proto.spec


def test_a_flatten_linear_mismatch_offers_both_fixes():
    at = open_app("build", net=spec_to_token(stopped_alexnet()))
    assert [b.label for b in at.button if b.label.startswith("Use input size")] == [
        "Use input size 224"]
    button(at, "Set in_features of layer 12 to 9216").click().run()
    assert_ok(at)
    assert spec_of(at).input_size == 256 and spec_of(at).layers[12].in_features == 9216
    assert not errors(at)
    assert metric(at, "output") == "10"


def test_the_layer_table_shows_every_row_and_sizes_its_columns():
    at = open_app("build", preset="resnet18")
    [frame] = [d for d in at.dataframe if d.key == "build.layers"] or [
        d for d in at.dataframe if "arithmetic" in d.value.columns]
    assert len(frame.value) == len(analyse(PRESETS["resnet18"].spec).summary.rows)
    config = frame.proto.columns
    assert '"layer"' in config and '"width"' in config
    assert frame.value["params"].iloc[1] == "3,200"  # thousands separators


# --- a knob moved on the page, held to numbers found without analyse() (issue 13, item 2) -----
# The networks, their hand counts and their written-out twins are those of
# tests/test_family_options.py, where each twin is shown to compute what cnnviz builds.

def leaf_shapes(model: torch.nn.Module, x: torch.Tensor, kinds: set[str]) -> list[tuple]:
    """(type, output shape) of every leaf layer of ``kinds``, in the order a real forward pass
    runs them."""
    seen: list[tuple] = []
    for module in model.modules():
        if type(module).__name__ in kinds and not list(module.children()):
            module.register_forward_hook(lambda m, _i, out: seen.append(
                (type(m).__name__, fmt_shape(tuple(out.shape[1:])))))
    with torch.no_grad():
        model.eval()(x)
    return seen


def page_leaf_shapes(at, kinds: set[str]) -> list[tuple]:
    layers = table(at, "output shape")
    return [(t, s) for t, s in zip(layers["type"], layers["output shape"]) if t in kinds]


KINDS = {"Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten",
         "Linear"}


@pytest.mark.parametrize("start, move, twin, params", [
    (dataclasses.replace(F.VGG_BN, batch_norm=False),
     lambda at: by_label(at.toggle, "batch norm").set_value(True), F.vgg_bn, F.VGG_BN_PARAMS),
    (dataclasses.replace(F.DENSENET_COMPRESSED, compression=0.5),
     lambda at: by_label(at.slider, "compression").set_value(0.3), F.densenet_compressed,
     F.DENSENET_COMPRESSED_PARAMS),
    (dataclasses.replace(F.RESNET_BOTTLENECK, block="basic"),
     lambda at: by_label(at.selectbox, "block").select("bottleneck"), F.resnet_bottleneck,
     F.RESNET_BOTTLENECK_PARAMS),
], ids=["vgg-batch-norm", "densenet-compression", "resnet-bottleneck"])
def test_a_moved_knob_gives_the_hand_counted_network(start, move, twin, params):
    """After the move the page shows the hand-counted parameters, and the output shape and
    every layer's shape of a real forward pass of the network written out with torch."""
    at = open_app("build", net=spec_to_token(start))
    assert params_help(at) != [f"{params:,}"]
    move(at).run()
    assert_ok(at)
    assert params_help(at) == [f"{params:,}"]
    x = torch.zeros(1, start.in_channels, start.input_size, start.input_size)
    with torch.no_grad():
        assert metric(at, "output") == fmt_shape(tuple(twin().eval()(x).shape[1:]))
    written_out = leaf_shapes(twin(), x, KINDS)
    assert len(written_out) >= 10 and page_leaf_shapes(at, KINDS) == written_out


def test_vgg_batch_norm_memory_counted_by_hand():
    """torchinfo's estimate, float32: the 3×32×32 input, the outputs of every layer with
    parameters twice (values and gradients) and the parameters."""
    at = open_app("build", net=spec_to_token(F.VGG_BN))
    # input 3·32·32·4 = 12,288; outputs: conv and BN 4·32·32 each, then conv, BN, conv, BN
    # 8·16·16 each, Linear 16 and 10: 2·4·(2·4096 + 4·2048 + 26) = 131,280;
    # parameters 4·9,410 = 37,640 (tests/test_family_options.py); 181,208 in all
    help_text = next(m.proto.help for m in at.metric if m.label == "memory")
    assert "(181,208 bytes)" in help_text
    assert metric(at, "memory") == "181 KB"  # decimal units, as torchinfo: 181,208 / 1000
