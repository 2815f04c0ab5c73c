"""The pages, driven through ``streamlit_app.py`` with Streamlit's AppTest.

Every test starts the whole app (navigation and the shared sidebar) and switches pages the
way a user does, then asserts on what the page shows — metrics, tables, messages, the URL —
and that no exception reached the page.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from cnnviz.models.convert import to_custom
from cnnviz.presets import BOOK_PRESETS, PRESETS
from cnnviz.shapes.sizes import valid_sizes
from cnnviz.specs import FAMILIES, SPEC_CLASSES, VGGSpec, spec_to_json
from cnnviz.specs import custom as L
from cnnviz.specs.fields import knob_of
from cnnviz.specs.url import spec_to_token
from cnnviz.ui import routing
from cnnviz.ui.sidebar import EDITED
from cnnviz.ui.state import _SPEC as SPEC_KEY
from cnnviz.workbench import analyse, features_before, human

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")

PAGES = {"home": "pages/home.py", "build": "pages/build.py", "sizes": "pages/sizes.py"}
OTHER_TABS = ["Shape flow", "Conv arithmetic", "Export", "Compare"]  # Build opens on "Layers"


# --- helpers -------------------------------------------------------------------------------

def open_app(page: str = "home", **query: str) -> AppTest:
    """The app opened at ``?query`` and switched to ``page`` (a key of PAGES)."""
    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert_ok(at)
    if page != "home":
        at.switch_page(PAGES[page]).run()
        assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    """No exception on the page, and the shared sidebar is there."""
    assert not at.exception, [e.message for e in at.exception]
    assert [s.label for s in at.sidebar.selectbox] == ["Network"]


def spec_of(at: AppTest):
    """The network the session holds now."""
    return at.session_state[SPEC_KEY]


def true_params(spec) -> int:
    return analyse(spec).summary.total_params


def params_help(at: AppTest) -> list[str]:
    """The exact parameter counts of the page's "parameters" metrics (their help text)."""
    return [m.proto.help for m in at.metric if m.label == "parameters"]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def errors(at: AppTest) -> list[str]:
    """Error boxes in the main area (the sidebar has its own)."""
    return [e.value for e in at.main.error]


def sidebar_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def by_label(elements, label: str):
    matches = [w for w in elements if w.label == label]
    assert len(matches) == 1, f"{len(matches)} widgets labelled {label!r}"
    return matches[0]


def by_key_suffix(elements, suffix: str):
    """A widget whose key is ``edit{version}.{suffix}`` (see ``widget_key``)."""
    matches = [w for w in elements if w.key and w.key.split(".", 1)[-1] == suffix]
    assert len(matches) == 1, f"{len(matches)} widgets keyed *.{suffix}"
    return matches[0]


def button(at: AppTest, label: str):
    return by_label(at.button, label)


def table(at: AppTest, column: str):
    """The one dataframe on the page that has ``column``."""
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"{len(frames)} tables with a {column!r} column"
    return frames[0]


def layer_types(at: AppTest) -> list[str]:
    return [layer.type for layer in spec_of(at).layers]


def edited_copy(name: str):
    """A preset with one more class: the same network, but not a preset.

    Knob edits on a preset are undone by the sidebar (see
    ``test_an_edit_survives_the_next_rerun``); tests about something else start from an
    edited network, where they stick.
    """
    spec = PRESETS[name].spec
    return dataclasses.replace(spec, num_classes=spec.num_classes + 1)


def open_tab(at: AppTest, label: str) -> AppTest:
    """Open a tab of the Build page (its tabs are lazy: only the open one runs)."""
    at.session_state["build.tab"] = label
    at.run()
    assert_ok(at)
    return at


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    """Upload a file on the Build page's Export tab."""
    [uploader] = open_tab(at, "Export").file_uploader
    return uploader.set_value((name, data, "application/json")).run()


@pytest.fixture(autouse=True)
def routed_as_served(monkeypatch):
    """Run every rerun through ``streamlit_app.py``, as a running server does.

    AppTest resets ``PagesManager.uses_pages_directory`` before every run, so with a
    ``pages/`` folder each run after ``switch_page`` first runs the page alone and
    ``require_app`` reruns it through the app; a button's click is spent on that first run
    and lost. A server sets the flag once, at the first ``st.navigation``, and keeps it.
    """
    init = PagesManager.__init__

    def served_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", served_init)


@pytest.fixture
def page_alone(monkeypatch) -> list[bool]:
    """AppTest's own routing (undoes ``routed_as_served``): a page may first run alone.

    Returns, for each ``require_app`` call, whether the page found itself run alone.
    """
    monkeypatch.undo()
    calls = []
    require_app = routing.require_app

    def spy():
        calls.append("cnnviz.routed" not in st.session_state)
        require_app()

    monkeypatch.setattr(routing, "require_app", spy)
    return calls


# --- routing -------------------------------------------------------------------------------

TITLES = {"home": "cnnviz — the classic CNNs", "build": "Build", "sizes": "Input size"}


@pytest.mark.parametrize("page", ["build", "sizes", "home"])
def test_a_page_run_alone_reruns_through_the_app(page_alone, page):
    at = open_app("build")
    page_alone.clear()
    at.switch_page(PAGES[page]).run()
    # AppTest ran the page alone (a pages/ folder); require_app reran it inside the app
    assert page_alone == [True, False]
    assert_ok(at)
    assert at.title[0].value.startswith(TITLES[page])
    assert "cnnviz.routed" not in at.session_state  # each page consumed the app's mark
    assert at.metric if page != "home" else at.subheader  # and showed its content


# --- default state ---------------------------------------------------------------------------

def test_home_shows_a_card_per_book_network():
    at = open_app()
    assert sorted(s.value for s in at.subheader) == sorted(BOOK_PRESETS)
    opens = [b for b in at.button if b.label == "Open in the workbench"]
    assert len(opens) == len(BOOK_PRESETS) == 8
    cards = " ".join(m.value for m in at.markdown)
    for name in BOOK_PRESETS:
        assert f"**{human(true_params(PRESETS[name].spec))}** parameters" in cards
    more = table(at, "network")
    assert set(more["network"]) == set(PRESETS) - set(BOOK_PRESETS)
    assert dict(at.query_params) == {"preset": "lenet"}
    assert at.sidebar.selectbox[0].value == "lenet"


def test_home_opens_a_card_in_the_workbench():
    at = open_app()
    at.button(key="home.open.vgg").click().run()
    assert_ok(at)
    assert at.title[0].value == "Build"
    assert spec_of(at) == PRESETS["vgg"].spec
    assert params_help(at) == [f"{true_params(PRESETS['vgg'].spec):,}"]
    assert at.sidebar.selectbox[0].value == "vgg"


def test_home_opens_a_network_from_the_more_list():
    at = open_app()
    at.selectbox(key="home.more.pick").select("notes-alexnet")
    at.button(key="home.more.open").click().run()
    assert_ok(at)
    assert at.title[0].value == "Build"
    assert spec_of(at) == PRESETS["notes-alexnet"].spec
    assert at.sidebar.selectbox[0].value == "notes-alexnet"


def test_home_keeps_the_opened_network_in_the_url():
    at = open_app()
    at.button(key="home.open.vgg").click().run()
    assert dict(at.query_params) == {"preset": "vgg"}


def test_build_shows_the_numbers_of_the_default_network():
    at = open_app("build")
    lenet = PRESETS["lenet"].spec
    summary = analyse(lenet).summary
    assert params_help(at) == [f"{summary.total_params:,}"]
    assert metric(at, "output") == "10"
    assert {"parameters", "mult-adds", "memory", "output"} <= {m.label for m in at.metric}
    assert len(table(at, "output shape")) == len(summary.rows)
    assert not errors(at)
    assert by_label(at.selectbox, "Family").value == "lenet"


# --- every family ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
def test_sidebar_opens_every_preset(name):
    at = open_app("build")
    at.sidebar.selectbox[0].select(name).run()
    assert_ok(at)
    spec = PRESETS[name].spec
    assert spec_of(at) == spec
    assert params_help(at) == [f"{true_params(spec):,}"]
    assert f"params **{true_params(spec):,}**" in sidebar_text(at)
    assert at.sidebar.selectbox[0].value == name
    assert dict(at.query_params) == {"preset": name}
    assert not errors(at)
    for tab in OTHER_TABS:
        open_tab(at, tab)


@pytest.mark.parametrize("family", FAMILIES)
def test_build_switches_to_every_family(family):
    at = open_app("build", preset="densenet" if family == "lenet" else "lenet")
    by_label(at.selectbox, "Family").select(family).run()
    assert_ok(at)
    # custom: the open network (lenet) written out as custom layers (tests/test_convert_page.py)
    expected = to_custom(PRESETS["lenet"].spec) if family == "custom" else SPEC_CLASSES[family]()
    assert spec_of(at) == expected
    assert by_label(at.selectbox, "Family").value == family
    assert params_help(at) == [f"{true_params(expected):,}"]
    assert not errors(at)


# --- every editor widget explains its knob ---------------------------------------------------

def editor_widgets(at: AppTest) -> list:
    """The editor's sliders, number boxes, toggles, selectboxes and buttons: those keyed for the
    spec (``edit{version}.{path}``, see ``widget_key``) and the custom editor's "Add" row."""
    return [w for kind in ("slider", "number_input", "toggle", "selectbox", "button")
            for w in getattr(at.main, kind)
            if w.key and (w.key.startswith("edit") or w.key.startswith("custom.add"))]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_editor_widget_has_help(family):
    at = open_app("build", preset="densenet" if family == "lenet" else "lenet")
    by_label(at.selectbox, "Family").select(family).run()
    assert_ok(at)
    widgets = editor_widgets(at)
    assert len(widgets) >= 10
    assert {type(w).__name__ for w in widgets} >= {"Slider", "NumberInput", "Toggle"}
    assert [w.key for w in widgets if not w.help.strip()] == []


def test_editor_widgets_show_their_knobs_label_and_help():
    def vgg_knob(name: str):
        return knob_of(next(f for f in dataclasses.fields(VGGSpec) if f.name == name))

    at = open_app("build", net=spec_to_token(edited_copy("vgg")))
    arch = vgg_knob("arch")
    count = by_key_suffix(at.slider, "arch#count")
    assert (count.label, count.help) == ("number of VGG blocks", arch.doc)
    for i, part in enumerate(arch.item.parts):
        widget = by_key_suffix(at.slider if part.slider else at.number_input, f"arch[0][{i}]")
        assert (widget.label, widget.help) == (part.label, part.doc)
    dropout = by_label(at.slider, "dropout")
    assert dropout.help == vgg_knob("dropout").doc
    assert (dropout.min, dropout.max) == vgg_knob("dropout").slider


# --- sliders at their extremes ---------------------------------------------------------------

@pytest.mark.parametrize("extreme", ["min", "max"])
@pytest.mark.parametrize("name", ["vgg", "resnet18", "densenet", "googlenet", "notes-alexnet"])
def test_sliders_at_their_extremes_never_raise(name, extreme):
    start = edited_copy(name)
    at = open_app("build", net=spec_to_token(start))
    for _ in range(3):  # a count slider adds stages with sliders of their own
        moved = [s for s in at.slider if s.value != getattr(s, extreme)]
        if not moved:
            break
        for s in moved:
            s.set_value(getattr(s, extreme))
        at.run()
        assert_ok(at)
        # either the numbers, or a box saying why there are none
        assert params_help(at) or errors(at)
    assert spec_of(at) != start
    for tab in OTHER_TABS:
        open_tab(at, tab)


# --- a size that fails ------------------------------------------------------------------------

def test_a_failing_size_shows_the_diagnosis_and_a_way_out():
    at = open_app("build", net=spec_to_token(edited_copy("notes-alexnet")))
    by_label(at.number_input, "input size").set_value(100).run()
    assert_ok(at)
    [diagnosis] = errors(at)
    assert "Does not run at 100×100" in diagnosis
    assert "Linear" in diagnosis and "193" in diagnosis
    assert not params_help(at)
    assert "does not run" in "\n".join(e.value for e in at.sidebar.error)
    # the layer table stays, up to the failing layer (issue 8, item 8)
    assert not any("Fix the problem above" in i.value for i in at.info)
    [table] = at.dataframe
    assert "12" in table.value.iloc[:, 0].astype(str).tolist()

    button(at, "Use input size 193").click().run()
    assert_ok(at)
    assert spec_of(at).input_size == 193
    assert not errors(at)
    assert params_help(at) == [f"{true_params(spec_of(at)):,}"]
    assert by_label(at.number_input, "input size").value == 193


# --- upload ----------------------------------------------------------------------------------

def test_uploading_a_spec_replaces_the_network():
    at = open_app("build")
    nin = PRESETS["notes-nin"].spec
    upload(at, "net.json", spec_to_json(nin).encode())
    assert_ok(at)
    assert spec_of(at) == nin
    assert dict(at.query_params) == {"preset": "notes-nin"}
    assert at.sidebar.selectbox[0].value == "notes-nin"
    assert params_help(at) == [f"{true_params(nin):,}"]
    assert "Opened net.json" in at.success[0].value


@pytest.mark.parametrize("data, expected", [
    (b"{not json", "not valid JSON"),
    (json.dumps({"family": "vgg", "arch": [[1, "x"]]}).encode(), "arch[0][1]"),
    (b'{"family": "resnet", "block": "basic", "block": "x"}', "duplicate key 'block'"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"family": "lenet"' + b" " * 1_030_000 + b"}", "cap of 1,000 KB (the teacher raises it"),
    (b'{"family": "\xc3\x28"}', "UTF-8"),
], ids=["malformed", "wrong-types", "duplicate-key", "deep-nesting", "oversized", "not-text"])
def test_uploading_a_bad_file_explains_and_keeps_the_network(data, expected):
    at = open_app("build", preset="resnet18")
    before = spec_of(at)
    upload(at, "bad.json", data)
    assert_ok(at)
    [message] = errors(at)
    assert "bad.json was not opened" in message and expected in message
    assert spec_of(at) == before
    assert dict(at.query_params) == {"preset": "resnet18"}
    assert params_help(at) == [f"{true_params(before):,}"]


# --- the URL ---------------------------------------------------------------------------------

def test_a_preset_link_opens_that_preset():
    at = open_app("build", preset="resnet18")
    assert at.sidebar.selectbox[0].value == "resnet18"
    assert "**resnet18**" in sidebar_text(at)
    assert spec_of(at) == PRESETS["resnet18"].spec
    assert params_help(at) == [f"{true_params(PRESETS['resnet18'].spec):,}"]


def test_an_edited_network_round_trips_through_its_link():
    at = open_app("build", preset="resnet18")
    by_key_suffix(at.slider, "stages#count").set_value(3).run()
    assert_ok(at)
    edited = spec_of(at)
    assert len(edited.stages) == 3
    assert set(at.query_params) == {"net"}
    count = params_help(at)
    assert count == [f"{true_params(edited):,}"] != [f"{true_params(PRESETS['resnet18'].spec):,}"]

    again = open_app("build", net=at.query_params["net"])
    assert spec_of(again) == edited
    assert params_help(again) == count
    assert again.sidebar.selectbox[0].value == EDITED
    assert not again.sidebar.warning


@pytest.mark.parametrize("query, says", [
    ({"net": "not-a-network!"}, "could not be opened"),
    ({"net": spec_to_token(PRESETS["resnet18"].spec)[:-12]}, "could not be opened"),
    ({"net": spec_to_token(PRESETS["resnet18"].spec)[:-12] + "!" * 12}, "could not be opened"),
    ({"preset": "resnet999"}, "unknown preset"),
], ids=["garbage", "truncated", "bad-characters", "unknown-preset"])
def test_a_broken_link_warns_and_falls_back_to_lenet(query, says):
    at = open_app(**query)
    [warning] = at.sidebar.warning
    assert says in warning.value
    assert spec_of(at) == PRESETS["lenet"].spec
    assert at.sidebar.selectbox[0].value == "lenet"
    assert dict(at.query_params) == {"preset": "lenet"}
    at.switch_page(PAGES["build"]).run()  # the notice is shown once
    assert_ok(at)
    assert not at.sidebar.warning
    assert params_help(at) == [f"{true_params(PRESETS['lenet'].spec):,}"]


def test_an_over_long_unknown_preset_is_named_in_short():
    at = open_app(preset="x" * 5000)
    [warning] = at.sidebar.warning
    assert "unknown preset ('" + "x" * 60 + "…')" in warning.value
    assert len(warning.value) < 200


def test_the_sidebar_follows_an_edit():
    at = open_app("build", preset="vgg")
    by_label(at.slider, "dropout").set_value(0.2).run()
    assert spec_of(at).dropout == 0.2
    assert "**edited network**" in sidebar_text(at)


def test_an_edit_survives_the_next_rerun():
    at = open_app("build", preset="vgg")
    by_label(at.slider, "dropout").set_value(0.2).run()
    at.run()
    assert spec_of(at).dropout == 0.2
    assert set(at.query_params) == {"net"}


def test_a_knob_edit_on_a_custom_preset_sticks():
    at = open_app("build", preset="notes-alexnet")
    by_label(at.number_input, "input size").set_value(100).run()
    assert spec_of(at).input_size == 100


# --- compare ---------------------------------------------------------------------------------

def test_compare_shows_the_pinned_and_the_current_network():
    at = open_tab(open_app("build"), "Compare")
    at.button(key="build.pin").click().run()
    assert_ok(at)
    at.sidebar.selectbox[0].select("alexnet").run()
    assert_ok(at)
    rows = table(at, "pinned").set_index("")
    assert rows.loc["params", "pinned"] == f"{true_params(PRESETS['lenet'].spec):,}"
    assert rows.loc["params", "current"] == f"{true_params(PRESETS['alexnet'].spec):,}"
    assert rows.loc["family", "pinned"] == "lenet"
    assert rows.loc["family", "current"] == "alexnet"

    at.button(key="build.unpin").click().run()
    assert_ok(at)
    assert not [d for d in at.dataframe if "pinned" in d.value.columns]


# --- the custom layer list -------------------------------------------------------------------

def test_add_a_layer():
    at = open_app("build", preset="notes-alexnet")
    at.selectbox(key="custom.add.type").select("batchnorm")
    by_label(at.number_input, "at position").set_value(1)
    at.button(key="custom.add.button").click().run()
    assert_ok(at)
    types = layer_types(at)
    assert len(types) == 17 and types[:3] == ["conv", "batchnorm", "relu"]
    assert list(table(at, "output shape")["type"][:3]) == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert set(at.query_params) == {"net"}
    assert at.sidebar.selectbox[0].value == EDITED


def test_remove_a_layer():
    at = open_app("build", preset="notes-alexnet")
    removes = [b for b in at.button if b.help == "remove this layer"]
    assert len(removes) == 16
    at.button(key=removes[1].key).click().run()  # the first ReLU
    assert_ok(at)
    assert layer_types(at)[:3] == ["conv", "max_pool", "conv"]
    assert len(table(at, "output shape")) == 15
    assert len([b for b in at.button if b.help == "remove this layer"]) == 15


def test_move_a_layer_up():
    at = open_app("build", preset="notes-alexnet")
    ups = [b for b in at.button if b.help == "move up"]
    assert ups[0].disabled
    at.button(key=ups[2].key).click().run()  # the first max_pool before its ReLU
    assert_ok(at)
    assert layer_types(at)[:3] == ["conv", "max_pool", "relu"]
    assert list(table(at, "output shape")["type"][:3]) == ["Conv2d", "MaxPool2d", "ReLU"]


def test_set_in_features_fixes_a_linear_that_no_longer_fits():
    at = open_app("build", preset="notes-alexnet")
    assert not [b for b in at.button if b.label.startswith("Set in_features")]
    at.button(key=[b for b in at.button if b.help == "remove this layer"][2].key).click().run()
    assert_ok(at)  # without the first max_pool, more features reach the Linear
    [diagnosis] = errors(at)
    assert "Linear" in diagnosis and "6400" in diagnosis
    needed = features_before(spec_of(at), layer_types(at).index("linear"))
    assert needed is not None and needed != 6400

    button(at, f"Set in_features to {needed} (what reaches it at this input size)").click().run()
    assert_ok(at)
    linear = next(layer for layer in spec_of(at).layers if isinstance(layer, L.Linear))
    assert linear.in_features == needed
    assert not errors(at)
    assert params_help(at) == [f"{true_params(spec_of(at)):,}"]
    assert not [b for b in at.button if b.label.startswith("Set in_features")]


# --- the Input size page ---------------------------------------------------------------------

@pytest.mark.parametrize("name, says", [
    ("lenet-bn", "Fails at every size"),
    ("resnet18", "Needs input size ≥ 33"),
    ("lenet", "No BatchNorm"),
])
def test_input_size_checks_batch_size_one_in_training_mode(name, says):
    at = open_app("sizes", preset=name)
    shown = [w.value for w in at.warning] + [s.value for s in at.success]
    assert any(says in text for text in shown), shown


def test_a_network_that_cannot_be_built_says_why_on_both_pages():
    broken = dataclasses.replace(edited_copy("vgg"), input_size=16)  # Linear sized from it
    at = open_app("sizes", net=spec_to_token(broken))
    [message] = errors(at)
    assert "cannot be built" in message and "input_size" in message
    assert not at.metric

    at.switch_page(PAGES["build"]).run()
    assert_ok(at)
    [message] = errors(at)
    assert "cannot be built" in message and "too small" in message
    assert any("builds from input size 32 up" in i.value for i in at.info)
    button(at, "Use input size 32").click().run()
    assert_ok(at)
    assert spec_of(at).input_size == 32 and not errors(at)
    assert params_help(at) == [f"{true_params(spec_of(at)):,}"]
