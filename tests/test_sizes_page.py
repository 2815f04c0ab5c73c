"""The Input size page and what the sidebar says about sizes, driven with AppTest (issue 8:
items 2, 3, 12 and 13).

A network that runs only from 451 up used to be checked over 1..256 ("none") while the
sidebar said "451 and up"; "Try a size" kept the last network's value; Build and Input size
gave "builds from 12" and "28–31 runs" without saying why they differ; lenet-bn was "the same
LeNet" with 17 K parameters fewer.
"""
from __future__ import annotations

import dataclasses

import pytest

from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import range_for, spec_sizes
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from cnnviz.specs.url import spec_to_token
from cnnviz.workbench import builds_from, describe_sizes
from tests.test_pages import (PAGES, assert_ok, by_label, errors, metric, open_app,
                              sidebar_text)
from tests.test_pages import routed_as_served  # noqa: F401 (autouse: reruns as served)


def from_451(input_size: int = 451, *kernels: int) -> CustomSpec:
    """Convolutions with huge kernels, then global pooling: runs from 1 + Σ(k − 1) up."""
    convs = tuple(L.Conv(4, k) for k in (kernels or (451,)))
    return CustomSpec(1, 10, input_size, (*convs, L.ReLU(), L.AdaptiveAvgPool(1), L.Flatten(),
                                          L.Linear(4, 10)))


def size_range(at):
    return by_label(at.select_slider, "Check sizes up to")


def probe(at, side: str):
    """The "Try a size" box for ``side`` (height or width)."""
    return by_label(at.number_input, side)


def infos(at) -> list[str]:
    return [i.value for i in at.main.info]


# --- item 2: the range holds the network's size; page and sidebar agree --------------------

def test_a_network_that_runs_from_451_up_says_so_on_the_page_and_in_the_sidebar():
    at = open_app("sizes", net=spec_to_token(from_451()))
    assert metric(at, "smallest size") == "451"
    assert metric(at, "largest size") == "no limit"
    assert metric(at, "valid sizes") == "451 and up"
    assert "valid sizes **451 and up**" in sidebar_text(at)
    assert not any("No size" in e for e in errors(at))
    assert size_range(at).value >= 451 + 451 // 4
    assert min(size_range(at).options, key=int) == str(size_range(at).value)  # only grows


def test_input_size_shows_the_smallest_and_largest_size():
    at = open_app("sizes")
    report = spec_sizes(PRESETS["lenet"].spec)
    assert (metric(at, "smallest size"), metric(at, "largest size")) == ("28", "31")
    assert (report.min, report.max) == (28, 31)
    assert metric(at, "the network's size") == "28"
    assert size_range(at).value == report.checked_up_to == 256


@pytest.mark.parametrize("name", ["lenet", "notes-alexnet", "vgg", "nin", "densenet"])
def test_page_and_sidebar_show_the_same_valid_sizes(name):
    at = open_app("sizes", preset=name)
    shown = metric(at, "valid sizes")
    assert shown == describe_sizes(spec_sizes(PRESETS[name].spec))
    assert f"valid sizes **{shown}**" in sidebar_text(at)
    assert size_range(at).value == range_for(PRESETS[name].spec.input_size)


def test_a_network_meant_for_28_that_runs_from_451_up_is_found_without_asking():
    at = open_app("sizes", net=spec_to_token(from_451(28)))
    assert metric(at, "valid sizes") == "451 and up"
    assert metric(at, "the network's size") == "28"
    assert "does not run as it is" in at.sidebar.error[0].value  # and no sizes that disagree


def test_check_sizes_up_to_grows_the_range_and_the_sidebar_follows():
    spec = from_451(28, 1024, 477)  # runs from 1 + 1023 + 476 = 1500 up
    at = open_app("sizes", net=spec_to_token(spec))
    assert metric(at, "valid sizes") == "none up to 1024"
    assert any("No size up to 1024 runs" in e for e in errors(at))
    size_range(at).set_value(2048).run()
    assert_ok(at)
    assert metric(at, "valid sizes") == "1500 and up"
    assert metric(at, "smallest size") == "1500"
    # the network itself (at 28) still does not run; run it at 1500 and the sidebar agrees
    at.session_state["cnnviz.spec"] = dataclasses.replace(spec, input_size=1500)
    at.run()
    assert_ok(at)
    assert metric(at, "valid sizes") == "1500 and up"
    assert "valid sizes **1500 and up**" in sidebar_text(at)


# --- item 3: "Try a size" starts from the network's own size --------------------------------

def try_size(at, n: int):
    probe(at, "height").set_value(n)
    probe(at, "width").set_value(n).run()
    assert_ok(at)
    return at


def test_try_a_size_that_fails_and_one_that_works():
    at = try_size(open_app("sizes", preset="notes-alexnet"), 100)
    assert any(e.startswith("100×100 does not run") and "Linear" in e for e in errors(at))
    at = try_size(at, 200)
    assert not any("does not run" in e for e in errors(at))
    assert any(s.value.startswith("200×200 runs") for s in at.success)


def test_try_a_size_starts_from_the_new_networks_size_after_a_switch():
    at = try_size(open_app("sizes"), 100)
    assert any(e.startswith("100×100 does not run") for e in errors(at))

    at.sidebar.selectbox[0].select("notes-alexnet").run()
    assert_ok(at)
    assert probe(at, "height").value == 224
    assert probe(at, "width").value == 224
    assert not any("does not run" in e for e in errors(at))
    assert any(s.value.startswith("224×224 runs") for s in at.success)


def test_try_a_size_takes_a_network_larger_than_4096():
    at = open_app("sizes", net=spec_to_token(from_451(5000)))
    assert probe(at, "height").value == 5000
    assert any(s.value.startswith("5000×5000 runs") for s in at.success)


# --- item 12: building is not running ---------------------------------------------------------

def test_input_size_explains_building_against_running():
    at = open_app("sizes")
    spec = PRESETS["lenet"].spec
    start, runs = builds_from(spec), describe_sizes(spec_sizes(spec))
    [text] = [i for i in infos(at) if "Building is not running" in i]
    assert f"from **{start}** up" in text and f"**{runs}**" in text and "in_features = 400" in text


@pytest.mark.parametrize("name", ["nin", "notes-alexnet", "resnet18"])
def test_no_building_explanation_where_input_size_builds_nothing(name):
    at = open_app("sizes", preset=name)
    assert not any("Building is not running" in i for i in infos(at))


def test_build_explains_that_a_network_it_builds_runs_only_at_some_sizes():
    at = open_app("build", net=spec_to_token(dataclasses.replace(PRESETS["lenet"].spec,
                                                                 input_size=8)))
    [text] = [i.value for i in at.info if "builds from input size" in i.value]
    assert "builds from input size 12 up" in text
    assert "Building is not running" in text and "in_features" in text


# --- item 13: lenet-bn is the book's 7.5 version ---------------------------------------------

def test_the_sidebar_says_what_lenet_bn_changes():
    at = open_app("build", preset="lenet-bn")
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert "16·4·4 = 256" in caption and "7.5" in caption and "same LeNet" not in caption


def test_a_grown_range_keeps_page_and_sidebar_in_agreement_across_pages():
    at = open_app("sizes", preset="notes-alexnet")
    size_range(at).set_value(4096).run()
    assert_ok(at)
    for page in ("build", "home", "sizes"):
        at.switch_page(PAGES[page]).run()
        assert_ok(at)
    assert "valid sizes **193–224**" in sidebar_text(at)
