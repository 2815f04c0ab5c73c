"""The Build page with AppTest (issue 8, items 5, 8 and 9): memory in KB, the layer table,
arithmetic and shape flow up to the layer where a network stops, and the one-click fixes."""
from __future__ import annotations

import dataclasses

from cnnviz.presets import PRESETS
from cnnviz.specs.url import spec_to_token
from cnnviz.workbench import analyse, human_bytes
from tests.test_pages import (assert_ok, button, errors, metric, open_app, open_tab,
                              routed_as_served, spec_of, table)

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
