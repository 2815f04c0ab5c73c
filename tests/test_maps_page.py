"""The Feature maps page through ``streamlit_app.py`` with AppTest: every preset, untrained and
trained, every picture source, bad uploads, and the controls that only redraw."""
from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz.models import build
from cnnviz.presets import BOOK_PRESETS, PRESETS
from cnnviz.training.config import TrainConfig
from cnnviz.training.job import FinishedRun, TrainingJob
from cnnviz.ui.train_view import HISTORY
from cnnviz.training.checkpoint import state_dict_bytes
from tests.test_pages import routed_as_served  # noqa: F401 (autouse: reruns as served)
from tests.test_train_page import APP, offline, run_to_end, settings, start  # noqa: F401

PAGE = "pages/maps.py"


def open_page(preset: str, page: str, title: str) -> AppTest:
    """The app on ``preset``, switched to ``page``, which shows ``title`` and no exception."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["preset"] = preset
    at.run()
    at.switch_page(page).run()
    assert_ok(at, title)
    return at


def open_maps(preset: str = "lenet") -> AppTest:
    return open_page(preset, PAGE, "Feature maps")


def assert_ok(at: AppTest, title: str = "Feature maps") -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == title


def charts(at: AppTest) -> set[str]:
    return {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.main.error]


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_shows_its_maps_untrained(preset):
    at = open_maps(preset)
    assert not errors(at)
    assert {"maps.picture", "maps.input", "maps.prediction", "maps.grid", "maps.large",
            "maps.rf.picture", "maps.cam"} <= charts(at)
    assert at.radio(key="maps.model").value.startswith("freshly initialised")
    assert any("untrained" in w.value for w in at.warning)  # Grad-CAM says what it is worth
    layer = at.selectbox(key="maps.layer").value
    assert layer.split(" › ")[1].split(" · ")[1] == "Conv2d"  # opens on the first convolution
    assert "maps.kernels" in charts(at)
    blocks = {"resnet": "maps.residual", "densenet": "maps.dense", "googlenet": "maps.inception"}
    for family, chart in blocks.items():
        if preset.startswith(family):
            assert chart in charts(at)


def test_every_picture_source_and_a_refused_upload():
    at = open_maps("resnet18")
    digit_label = at.selectbox(key="maps.digit.class")
    digit_label.select("7").run()
    assert_ok(at)
    assert any("label 7" in m.value for m in at.markdown) or \
        any("label is **7**" in c.value for c in at.caption)
    at.radio(key="maps.source").set_value("Photo").run()
    assert_ok(at)
    for name in at.selectbox(key="maps.photo").options:
        at.selectbox(key="maps.photo").select(name).run()
        assert_ok(at)
        assert not errors(at) and "maps.grid" in charts(at)
    steps = " ".join(m.value for m in at.markdown)
    assert "centre-cropped" in steps and "grey" in steps  # 3-channel photo, 1-channel network
    at.radio(key="maps.source").set_value("Upload").run()
    assert_ok(at)
    colour = (np.arange(64 * 48 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    at.file_uploader(key="maps.upload").set_value(("cat.png", png(colour), "image/png")).run()
    assert_ok(at)
    assert not errors(at) and "maps.grid" in charts(at)
    for name, data in (("notes.png", b"just some text"), ("empty.png", b""),
                       ("half.png", png(colour)[:200])):
        at.file_uploader(key="maps.upload").set_value((name, data, "image/png")).run()
        assert_ok(at)
        [message] = errors(at)
        assert "\n" not in message and "Traceback" not in message
        # nothing the learner had is lost: the maps stay, of the last good picture
        assert message.endswith("The maps below are still of upload cat.png.")
        assert "maps.grid" in charts(at)


def test_layer_channel_scope_order_and_pages_redraw_without_errors():
    at = open_maps("resnet18")
    labels = at.selectbox(key="maps.layer").options
    wide = next(label for label in labels if label.split(" · ")[-1].startswith("512×"))
    at.selectbox(key="maps.layer").select(wide).run()
    assert_ok(at)
    key = next(k.key for k in at.number_input if k.key and k.key.startswith("maps.page."))
    assert at.number_input(key=key).max == 8  # 512 channels, 64 a page
    at.number_input(key=key).set_value(8).run()
    assert_ok(at)
    for scope in ("per layer", "global", "per map"):
        at.radio(key="maps.scope").set_value(scope).run()
        assert_ok(at)
    at.radio(key="maps.order").set_value("strongest first").run()
    assert_ok(at)
    channel = next(s for s in at.selectbox if s.key and s.key.startswith("maps.channel."))
    channel.select(channel.options[-1]).run()
    assert_ok(at)
    assert not errors(at) and {"maps.grid", "maps.large"} <= charts(at)
    flat = next(label for label in labels if " · Linear · " in label)
    at.selectbox(key="maps.layer").select(flat).run()
    assert_ok(at)
    assert "maps.vector" in charts(at) and "maps.grid" not in charts(at)


def train_briefly(at: AppTest, back_to: str, title: str) -> AppTest:
    """A one-epoch run of the current network on the Train page, then back to ``back_to``."""
    at.switch_page("pages/train.py").run()
    settings(at, epochs=1, limit=300)
    start(at)
    run_to_end(at)
    at.switch_page(back_to).run()
    assert_ok(at, title)
    return at


def test_a_trained_run_and_uploaded_weights_are_models_to_inspect():
    at = train_briefly(open_maps("lenet-bn"), PAGE, "Feature maps")
    chosen = at.radio(key="maps.model").value
    assert chosen.startswith("trained: #1 lenet-bn")
    assert not any("untrained" in w.value for w in at.warning)
    assert {"maps.grid", "maps.cam", "maps.prediction"} <= charts(at)
    # weights of another network are refused; the network's own are taken
    at.radio(key="maps.model").set_value("upload weights (.pt)").run()
    assert_ok(at)
    at.file_uploader(key="maps.weights").set_value(
        ("lenet.pt", state_dict_bytes(build(PRESETS["lenet"].spec)), "application/octet-stream"))
    at.run()
    assert_ok(at)
    [message] = errors(at)
    assert "lenet.pt was not loaded" in message and "different network" in message
    at.file_uploader(key="maps.weights").set_value(
        ("mine.pt", state_dict_bytes(build(PRESETS["lenet-bn"].spec)),
         "application/octet-stream"))
    at.run()
    assert_ok(at)
    assert at.radio(key="maps.model").value == "uploaded: mine.pt"
    assert "maps.grid" in charts(at)


def test_a_network_that_does_not_run_says_so_instead_of_maps():
    at = open_maps("lenet")
    # an input too small for LeNet's layers, as the sidebar's input size can make it
    at.session_state["cnnviz.spec"] = dataclasses.replace(PRESETS["lenet"].spec, input_size=8)
    at.run()
    assert_ok(at)
    [message] = errors(at)
    assert "Build" in message and "maps.grid" not in charts(at)


def test_the_class_to_explain_survives_a_new_picture_and_the_block_follows_the_layer():
    at = open_maps("resnet18")
    at.radio(key="maps.source").set_value("Photo").run()  # no class names: "class i"
    assert_ok(at)
    labels = at.selectbox(key="maps.layer").options
    b5 = next(label for label in labels if label.split(" › ")[1].startswith("b5.1.act "))
    at.selectbox(key="maps.layer").select(b5).run()  # the rerun that raised before the fix
    assert_ok(at)
    assert at.selectbox(key="maps.block").value == "b5.1 (residual)"
    assert at.selectbox(key="maps.cam.class.plain").value.startswith("class ")
    at.radio(key="maps.source").set_value("Digits test image").run()
    assert_ok(at)
    b3 = next(label for label in labels if label.split(" › ")[1].startswith("b3.0.body.conv1 "))
    at.selectbox(key="maps.layer").select(b3).run()
    assert_ok(at)
    assert at.selectbox(key="maps.block").value == "b3.0 (residual)"
    assert at.selectbox(key="maps.cam.class.named").value in [str(d) for d in range(10)]


@pytest.mark.parametrize("preset", sorted(BOOK_PRESETS))
def test_every_book_preset_after_a_short_training_run(preset):
    """A real (tiny) run of each book network at its book size, as the Train page keeps it."""
    spec = PRESETS[preset].spec
    config = TrainConfig(dataset="digits", epochs=1, batch_size=8, size=spec.input_size,
                         limit=16, device="cpu")
    job = TrainingJob(1, f"{preset} · tiny", spec, config).start()
    assert job.join(300) and job.state == "finished", job.message
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["preset"] = preset
    at.run()
    at.session_state[HISTORY] = [FinishedRun.of(job)]
    at.switch_page(PAGE).run()
    assert_ok(at)
    assert at.radio(key="maps.model").value == f"trained: {FinishedRun.of(job).title}"
    assert not any("untrained" in w.value for w in at.warning)
    assert {"maps.grid", "maps.cam", "maps.rf.picture", "maps.prediction"} <= charts(at)
    assert any("Trained on Digits" in c.value for c in at.caption)


def test_a_grad_cam_map_that_is_zero_everywhere_is_explained(monkeypatch):
    """LeNet-BN trained on the digits gives such maps for about a third of the test images."""
    import streamlit as st
    import torch

    from cnnviz.activations import gradcam

    st.cache_data.clear()
    monkeypatch.setattr(gradcam, "grad_cam", lambda model, x, target: (torch.zeros(4, 4), "b2.3"))
    at = open_maps("lenet-bn")
    assert any("zero everywhere" in i.value and "b2.3" in i.value for i in at.info)
    st.cache_data.clear()
