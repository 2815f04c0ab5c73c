"""Build: switching the family to ``custom`` writes the current network out as custom layers
(the same network), instead of loading another one. Driven with Streamlit's AppTest."""
from __future__ import annotations

import dataclasses

import pytest

from cnnviz.models.convert import to_custom
from cnnviz.presets import BOOK_PRESETS, PRESETS
from cnnviz.specs import SPEC_CLASSES, LeNetSpec, ResNetSpec
from cnnviz.specs.url import spec_to_token
from tests.test_pages import (assert_ok, by_label, editor_widgets, errors, open_app, params_help,
                              routed_as_served, spec_of, true_params)

__all__ = ["routed_as_served"]  # the autouse fixture: every rerun goes through the app


def switch_family(at, family: str):
    by_label(at.selectbox, "Family").select(family).run()
    assert_ok(at)
    return at


@pytest.mark.parametrize("name", list(BOOK_PRESETS))
def test_switching_to_custom_keeps_the_network(name):
    spec = PRESETS[name].spec
    at = switch_family(open_app("build", preset=name), "custom")
    assert spec_of(at) == to_custom(spec)
    assert by_label(at.selectbox, "Family").value == "custom"
    count = f"{true_params(spec):,}"
    assert params_help(at) == [count]
    [note] = [i.value for i in at.main.info if i.value.startswith("Converted")]
    assert f"this {spec.title} is now {len(spec_of(at).layers)} custom layers" in note
    assert f"the same {count} parameters" in note
    assert not errors(at)
    # The layer cards are there, one per layer, each widget with its help.
    assert [w for w in editor_widgets(at) if not w.help.strip()] == []


def test_the_note_is_shown_once_and_an_edit_then_sticks():
    at = switch_family(open_app("build", preset="resnet18"), "custom")
    assert [i.value for i in at.main.info if i.value.startswith("Converted")]
    converted = spec_of(at)
    toggle = next(t for t in at.main.toggle if t.key.endswith("layers[4].bias"))
    assert toggle.help and toggle.value
    toggle.set_value(False).run()
    assert_ok(at)
    assert not spec_of(at).layers[4].bias
    assert spec_of(at).layers[5:] == converted.layers[5:]
    assert not [i.value for i in at.main.info if i.value.startswith("Converted")]


def test_an_edited_network_converts_with_its_edits():
    spec = dataclasses.replace(PRESETS["densenet"].spec, growth_rate=12, bottleneck_size=4,
                               conv_bias=False)
    at = switch_family(open_app("build", net=spec_to_token(spec)), "custom")
    assert spec_of(at) == to_custom(spec)
    assert params_help(at) == [f"{true_params(spec):,}"]


def test_from_custom_another_family_starts_from_the_book():
    at = switch_family(open_app("build", preset="resnet18"), "custom")
    help_text = by_label(at.selectbox, "Family").help
    assert "not converted back" in help_text and "book's version" in help_text
    switch_family(at, "vgg")
    assert spec_of(at) == SPEC_CLASSES["vgg"]()


def test_a_network_too_long_for_a_custom_list_stays_and_says_why():
    spec = ResNetSpec(stages=((64, 8),) * 4)
    at = switch_family(open_app("build", net=spec_to_token(spec)), "custom")
    assert spec_of(at) == spec
    assert by_label(at.selectbox, "Family").value == "resnet"
    [warning] = [w.value for w in at.main.warning if "custom layers" in w.value]
    assert warning == ("The network stays a ResNet: as custom layers it would break a bound: "
                       "layers: at most 200 items, got 263")


def test_a_network_that_does_not_build_stays_and_says_why():
    spec = LeNetSpec(input_size=5)
    at = switch_family(open_app("build", net=spec_to_token(spec)), "custom")
    assert spec_of(at) == spec
    assert by_label(at.selectbox, "Family").value == "lenet"
    [warning] = [w.value for w in at.main.warning if w.value.startswith("The network stays")]
    assert warning.startswith("The network stays a LeNet: input_size: 5 is too small for the "
                              "convolutional part")
