"""The Connections page through ``streamlit_app.py`` with AppTest: every preset folded and
unfolded, a stage opened, a node selected and opened in Feature maps."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz.graph.connections import openable
from cnnviz.presets import PRESETS
from tests.test_pages import routed_as_served  # noqa: F401 (autouse: reruns as served)
from tests import test_maps_page as maps_page
from tests.test_maps_page import charts, open_page

PAGE = "pages/graph.py"


def open_graph(preset: str) -> AppTest:
    return open_page(preset, PAGE, "Connections")


def assert_ok(at: AppTest, title: str = "Connections") -> None:
    maps_page.assert_ok(at, title)


def counts(at: AppTest) -> str:
    return next(c.value for c in at.caption if "nodes and" in c.value)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_folded_and_unfolded(preset):
    at = open_graph(preset)
    assert "graph.figure" in charts(at) and not at.main.error
    folded = int(counts(at).split(" nodes and ")[0].split()[-1])
    at.toggle(key="graph.all").set_value(True).run()
    assert_ok(at)
    unfolded = int(counts(at).split(" nodes and ")[0].split()[-1])
    # networks written out layer by layer (the study notes' AlexNet and NiN) have no stage
    assert unfolded > folded if openable(PRESETS[preset].spec) else unfolded >= folded
    assert at.expander  # the explanations


def test_resnet18_counts_its_shortcuts_and_opens_a_stage():
    at = open_graph("resnet18")
    assert "8 additions (3 through a 1×1 projection)" in counts(at)
    before = int(counts(at).split(" nodes and ")[0].split()[-1])
    key = next(m.key for m in at.multiselect if m.key.startswith("graph.open."))
    at.multiselect(key=key).select("b3").run()
    assert_ok(at)
    assert int(counts(at).split(" nodes and ")[0].split()[-1]) > before
    texts = " ".join(m.value for m in at.markdown)
    assert "x is 64×24×24 and F(x) is 128×12×12" in texts


def test_densenet_and_googlenet_explain_their_concatenations():
    at = open_graph("densenet")
    assert "16 concatenations" in counts(at) and "4 dense blocks, 3 transitions" in counts(at)
    assert "64 + 128 = 192 channels" in " ".join(m.value for m in at.markdown)
    at = open_graph("googlenet")
    assert "9 Inception blocks of 4 paths" in counts(at)
    assert "64 + 128 + 32 + 32 = 256" in " ".join(m.value for m in at.markdown)


def test_a_selected_layer_shows_its_numbers_and_opens_in_feature_maps():
    at = open_graph("resnet18")
    at.toggle(key="graph.all").set_value(True).run()
    at.session_state["graph.selected"] = "b3.0.shortcut.conv"  # as a click on the node sets it
    at.run()
    assert_ok(at)
    texts = " ".join(m.value for m in at.markdown)
    assert "**Conv2d**" in texts and "64×24×24 → output 128×12×12" in texts
    # the selected node's block is explained first, in bold, its kind's panel open
    [bold] = [m.value for m in at.markdown if m.value.startswith("- **b3.0:")]
    assert "1×1 conv with stride 2" in bold
    assert [e.label for e in at.expander if e.proto.expanded] == \
        ["Residual shortcut with a 1×1 projection (3)"]
    at.button(key="graph.to.maps").click().run()
    assert_ok(at, "Feature maps")
    assert at.selectbox(key="maps.layer").value.split(" › ")[1].startswith("b3.0.shortcut.conv ")
