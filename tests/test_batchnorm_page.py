"""The BatchNorm page through ``streamlit_app.py`` with AppTest: networks with and without
BatchNorm, batch size 1, γ and β undone, after a short training run, and the with-vs-without
comparison trained to the end."""
from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_maps_page import charts, open_page, train_briefly
from tests.test_pages import routed_as_served  # noqa: F401 (autouse: reruns as served)
from tests.test_train_page import offline  # noqa: F401 (autouse: no network)

PAGE = "pages/batchnorm.py"


def open_bn(preset: str) -> AppTest:
    return open_page(preset, PAGE, "BatchNorm")


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "BatchNorm"


def texts(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("preset", ["lenet-bn", "resnet18", "densenet", "googlenet", "lenet",
                                    "vgg"])
def test_the_page_on_networks_with_and_without_batchnorm(preset):
    at = open_bn(preset)
    assert not at.main.error
    assert {"bn.stats", "bn.hist", "bn.affine.hist", "bn.gap"} <= charts(at)
    assert "bn.spread" not in charts(at)  # drawn on request: thousands of images
    at.button(key="bn.spread.go").click().run()
    assert_ok(at)
    assert "bn.spread" in charts(at)
    assert "biased" in texts(at) and "unbiased" in texts(at) and "momentum 0.1" in texts(at)
    assert "predictions change" in texts(at)
    has = preset in ("lenet-bn", "resnet18", "densenet")
    twin_note = [i.value for i in at.info if "BatchNorm twin" in i.value]
    assert bool(twin_note) is not has  # lenet and the book's GoogLeNet are shown as twins


def test_batch_size_one_says_which_layers_cannot_train():
    at = open_bn("lenet-bn")
    at.select_slider(key="bn.batch").set_value(1).run()
    assert_ok(at)
    assert any("PyTorch refuses" in w.value for w in at.warning)
    rows = at.table[0].value  # the Statistics tab (the Batch size tab repeats it)
    assert set(rows["trains at batch 1"]) == {"yes", "no"}  # BatchNorm2d yes, BatchNorm1d no
    # and the Input size page's own verdict beside it
    assert any("Fails at every size" in w.value and "BatchNorm1d" in w.value for w in at.warning)


def test_gamma_and_beta_undo_the_normalisation():
    at = open_bn("lenet-bn")
    at.button(key="bn.undo").click().run()
    assert_ok(at)
    assert any("the layer gives its input back" in c.value for c in at.caption)


def test_after_a_short_run_the_recorded_statistics_are_drawn():
    at = train_briefly(open_bn("lenet-bn"), PAGE, "BatchNorm")
    assert at.radio(key="bn.model").value.startswith("trained: #1 lenet-bn")
    assert "bn.evolution" in charts(at)


def test_with_and_without_trains_both_and_compares_them():
    at = open_bn("lenet")
    at.number_input(key="bn.cmp.epochs").set_value(2).run()
    at.button(key="bn.cmp.start").click().run()
    assert_ok(at)
    deadline = time.monotonic() + 120
    while "bn.cmp.figure" not in charts(at):
        assert time.monotonic() < deadline, "the comparison did not finish"
        time.sleep(0.5)
        at.run()
        assert_ok(at)
    table = at.table[-1]
    assert len(table.value) == 2 and any("no BatchNorm" in r for r in table.value["run"])


def test_a_network_that_cannot_go_without_batchnorm_says_so_in_the_comparison():
    at = open_bn("resnet18")
    assert any("No comparison for this network" in i.value and "always have BatchNorm"
               in i.value for i in at.info)


def _largest_within(cost, sizes, cap_mb: float) -> int:
    return max(s for s in sizes if cost(s) <= cap_mb * 2**20)


def test_batches_over_the_memory_cap_are_not_offered_and_the_page_says_why(monkeypatch):
    from cnnviz.batchnorm.stats import batch_memory, spread_memory
    from cnnviz.models import build_meta
    from cnnviz.presets import PRESETS
    from cnnviz.ui.batchnorm_view import POOL, SIZES

    monkeypatch.setenv("CNNVIZ_MAX_BATCH_MB", "3")
    at = open_bn("lenet-bn")
    assert_ok(at)
    meta, shape = build_meta(PRESETS["lenet-bn"].spec), (1, 28, 28)
    most = _largest_within(lambda s: s * batch_memory(meta, shape), SIZES + (256,), 3)
    assert 1 < most < 256
    offered = at.select_slider(key="bn.batch").options
    assert [int(o) for o in offered] == [s for s in SIZES + (256,) if s <= most]
    assert at.select_slider(key="bn.batch").value == most  # the default 64 is over the cap
    said = [c.value for c in at.caption if f"Batches above {most} are not offered" in c.value]
    assert said and "CNNVIZ_MAX_BATCH_MB" in said[0] and "3 MB" in said[0]
    # the Batch size tab draws only the sizes whose forward pass fits beside the pool
    drawn = _largest_within(lambda s: spread_memory(meta, shape, s, POOL), SIZES, 3)
    assert any(f"from 1 to {drawn} " in m.value for m in at.markdown)
    at.button(key="bn.spread.go").click().run()
    assert_ok(at)
    assert "bn.spread" in charts(at)


def test_a_network_whose_one_image_is_over_the_memory_cap_is_refused(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_BATCH_MB", "1")
    at = open_bn("resnet18")  # about 5 MB an image at 96×96
    assert_ok(at)
    refused = [e.value for e in at.error if "One image through this network" in e.value]
    assert refused and "CNNVIZ_MAX_BATCH_MB" in refused[0]
    assert "bn.stats" not in charts(at)
