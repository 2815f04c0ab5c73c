"""What the pages show, computed by the library: analysis, comparison, links."""
from __future__ import annotations

import base64
import dataclasses
import zlib

import pytest
from hypothesis import given, settings

from cnnviz.errors import SpecError
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from cnnviz.specs.url import spec_from_token, spec_to_token
from cnnviz.workbench import (analyse, compare, describe_sizes, features_before, human_bytes,
                              linear_fix)
from tests.strategies import custom_specs


def test_a_running_network_has_a_summary_and_its_sizes():
    a = analyse(PRESETS["notes-alexnet"].spec)
    assert a.ok and a.failure is None and a.problems == ()
    assert a.summary.total_params == 28_655_946
    assert describe_sizes(a.sizes) == "193–224"


def test_a_size_outside_the_band_names_the_layer_and_the_nearest_sizes():
    below = analyse(PRESETS["notes-alexnet"].spec, (100, 100))
    assert not below.ok and below.failure.layer == "12" and below.nearest == (None, 193)
    above = analyse(PRESETS["notes-alexnet"].spec, (300, 300))
    assert above.nearest == (224, None)
    gap = analyse(CustomSpec(1, 10, 8, (L.Conv(1, 3), L.Flatten(), L.Linear(36, 2))), (5, 5))
    assert gap.nearest == (None, 8)


def test_a_family_too_small_to_build_says_from_which_size_it_builds():
    a = analyse(dataclasses.replace(PRESETS["lenet"].spec, input_size=4))
    assert not a.ok and [p.path for p in a.problems] == ["input_size"]
    assert a.nearest == (None, 12)
    # 12 really is the smallest: it builds there and not at 11.
    assert analyse(dataclasses.replace(PRESETS["lenet"].spec, input_size=12)).ok
    assert not analyse(dataclasses.replace(PRESETS["lenet"].spec, input_size=11)).ok


def test_a_custom_chain_error_has_no_size_to_suggest():
    a = analyse(CustomSpec(layers=(L.Flatten(), L.Conv(3, 3))))
    assert a.problems and a.nearest == (None, None)


def test_describe_sizes():
    assert describe_sizes(analyse(PRESETS["nin"].spec).sizes) == "67 and up"
    assert describe_sizes(None) == "none up to 1024"


def test_compare_lines_up_stages():
    rows = compare(analyse(PRESETS["lenet"].spec), analyse(PRESETS["lenet-bn"].spec))
    table = {r[""]: (r["pinned"], r["current"]) for r in rows}
    assert table["params"] == ("61,706", "44,878")
    assert table["stage b1"] == ("6×14×14", "6×12×12")
    assert table["valid sizes"] == ("28–31", "28–31")
    broken = analyse(CustomSpec(layers=(L.Flatten(), L.Conv(3, 3))))
    assert {r[""]: r["current"] for r in compare(analyse(PRESETS["nin"].spec), broken)}[
        "params"] == "—"


def test_features_before_a_linear():
    spec = PRESETS["notes-alexnet"].spec
    assert features_before(spec, 12) == 6400
    assert features_before(dataclasses.replace(spec, input_size=100), 12) == 256 * 2 * 2
    assert features_before(dataclasses.replace(spec, input_size=30), 12) is None
    assert features_before(spec, 0) is None


@pytest.mark.parametrize("name", list(PRESETS))
def test_link_token_round_trip(name):
    assert spec_from_token(spec_to_token(PRESETS[name].spec)) == PRESETS[name].spec


@settings(max_examples=30)
@given(custom_specs())
def test_link_token_round_trip_random(spec):
    assert spec_from_token(spec_to_token(spec)) == spec


def _token(data: bytes) -> str:
    return base64.urlsafe_b64encode(zlib.compress(data)).decode().rstrip("=")


@pytest.mark.parametrize("token, message", [
    ("###", "damaged"), ("abc", "damaged"), ("x" * 20_001, "too long"),
    (_token(b" " * 300_000), "too large"), (_token(b"{"), "not valid JSON"),
    (_token(b'{"family": "vgg", "arch": 3}'), "arch: must be a list"),
    (spec_to_token(PRESETS["lenet"].spec)[:-12], "damaged"),
])
def test_hostile_link_tokens_are_refused_clearly(token, message):
    with pytest.raises(SpecError, match=message):
        spec_from_token(token)


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1_000, "1 KB"),
                                     (301_720, "302 KB"), (52_400_000, "52.4 MB"),
                                     (123_456_789, "123 MB"), (1_234_567_890, "1.23 GB")])
def test_human_bytes_never_rounds_to_zero_megabytes(n, text):
    assert human_bytes(n) == text


def test_lenet_memory_is_in_kilobytes():
    s = analyse(PRESETS["lenet"].spec).summary
    assert s.total_bytes < 1_000_000 and human_bytes(s.total_bytes) == "302 KB"
    rows = compare(analyse(PRESETS["lenet"].spec), analyse(PRESETS["resnet18"].spec))
    memory = next(r for r in rows if r[""] == "memory")
    assert memory["pinned"] == "302 KB" and memory["current"].endswith(" MB")


def test_a_failing_size_keeps_the_table_up_to_the_failing_layer():
    a = analyse(PRESETS["notes-alexnet"].spec, (100, 100))
    assert not a.ok and a.summary is None
    assert a.table is a.partial and a.partial.failure is a.failure
    assert a.partial.failing_row.name == a.failure.layer == "12"
    assert [r.output_shape for r in a.partial.rows[-3:-1]] == [(256, 2, 2), (1024,)]
    fine = analyse(PRESETS["notes-alexnet"].spec)
    assert fine.table is fine.summary and fine.partial is None


def test_a_flatten_linear_mismatch_offers_in_features_for_a_custom_network():
    spec = dataclasses.replace(PRESETS["notes-alexnet"].spec, input_size=256)
    a = analyse(spec)
    assert "expects 6400 input features but gets 9216" in a.failure.reason
    fix = linear_fix(a)
    assert fix.label == "Set in_features of layer 12 to 9216"
    assert fix.spec.layers[12].in_features == features_before(spec, 12) == 9216
    assert fix.spec.layers[:12] == spec.layers[:12] and fix.spec.layers[13:] == spec.layers[13:]
    assert analyse(fix.spec).ok


@pytest.mark.parametrize("name", ["lenet", "alexnet", "vgg"])
def test_a_family_sized_from_input_size_offers_the_size_tried(name):
    spec = PRESETS[name].spec
    n = spec.input_size + 32  # VGG halves five times: +32 changes what reaches the Linear
    a = analyse(spec, (n, n))
    assert a.failure.layer_type == "Linear"
    fix = linear_fix(a)
    assert fix.label == f"Set input size to {n}"
    assert fix.spec == dataclasses.replace(spec, input_size=n) and analyse(fix.spec).ok


def test_no_linear_fix_for_other_failures():
    assert linear_fix(analyse(PRESETS["notes-alexnet"].spec, (30, 30))) is None  # a pool
    assert linear_fix(analyse(PRESETS["notes-alexnet"].spec)) is None  # it runs
    assert features_before(PRESETS["notes-alexnet"].spec, 12, (256, 256)) == 9216


# --- valid sizes, building and running, the presets' descriptions (issue 8) -------------------

def test_describe_sizes_ends_a_band_at_its_true_maximum_past_the_range():
    from cnnviz.shapes.sizes import valid_sizes
    report = valid_sizes(PRESETS["notes-alexnet"].spec, 200)  # the band goes on past 200
    assert report.valid == [(193, 200)] and report.max == 224
    assert describe_sizes(report) == "193–224"


def test_the_analysis_holds_the_one_size_report_the_pages_show():
    from cnnviz.workbench import size_report
    spec = CustomSpec(1, 10, 28, (L.Conv(4, 451), L.ReLU(), L.AdaptiveAvgPool(1), L.Flatten(),
                                  L.Linear(4, 10)))  # meant for 28, runs from 451 up
    a = analyse(spec)
    assert a.sizes is size_report(spec) and describe_sizes(a.sizes) == "451 and up"
    assert a.nearest == (None, 451)


@pytest.mark.parametrize("name", ["lenet", "lenet-bn", "alexnet", "vgg", "alexnet-imagenet"])
def test_builds_from_is_the_smallest_input_size_that_builds(name):
    from cnnviz.shapes.sizes import valid_sizes
    from cnnviz.workbench import builds_from
    spec = PRESETS[name].spec
    n = builds_from(spec)
    assert not analyse(dataclasses.replace(spec, input_size=n)).problems
    assert analyse(dataclasses.replace(spec, input_size=n - 1)).problems
    assert n <= valid_sizes(spec).min  # building reaches down further than running


@pytest.mark.parametrize("name", ["notes-alexnet", "nin", "resnet18", "densenet"])
def test_builds_from_is_none_where_input_size_builds_nothing_differently(name):
    from cnnviz.workbench import builds_from
    assert builds_from(PRESETS[name].spec) is None


def test_lenet_bn_is_described_as_the_books_version_with_its_own_numbers():
    from cnnviz.presets import BOOK_PRESETS
    bn, plain = analyse(PRESETS["lenet-bn"].spec).summary, analyse(PRESETS["lenet"].spec).summary

    def into_linear(summary) -> str:  # "16·4·4 = 256": what Flatten hands the first Linear
        flat = next(r for r in summary.rows if r.type == "Flatten")
        return "·".join(map(str, flat.input_shape)) + f" = {flat.output_shape[0]}"

    about, card = PRESETS["lenet-bn"].description, BOOK_PRESETS["lenet-bn"]
    assert into_linear(bn) == "16·4·4 = 256" != into_linear(plain)
    assert into_linear(bn) in about and into_linear(plain) in about  # why 44.9 K, not 61.7 K
    assert bn.total_params < plain.total_params
    assert "7.5" in about and "BatchNorm" in card and "same LeNet" not in about + card
