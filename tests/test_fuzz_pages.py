"""Hostile networks at every page: random specs, valid and invalid, arrive the ways a user can
make them arrive — a link's ``?net=`` (a token of random JSON: valid, past a bound, a wrong
type, an unknown key or family, huge numbers, NaN, deep nesting, not JSON at all; or a token
that is damaged, too long or inflates too far), a link's ``?preset=`` (known and unknown names,
odd characters), and a network put in place in the session (every family with its options,
custom chains, some too small for their own input size).

Each page is one AppTest session that every example reuses, as a learner keeps one tab open
and opens link after link: an example clears the session's network (and the editors' widgets,
which a fresh session would not have) before a link arrives, so the link is read as on a
session's first run. For each example: no exception on the page; a valid network is the one
shown; an invalid link leaves the default network and a message that names the broken field
(the path the example broke, known from how it was made) or, for a fault of the whole text,
says what it is; a network that does not build or run gets a message naming the field or the
layer. The counts are printed (and written to ``$CNNVIZ_FUZZ_COUNTS`` when set).
"""
from __future__ import annotations

import collections
import json
import os
import string
import time
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.presets import BOOK_PRESETS, PRESETS
from cnnviz.specs import CustomSpec, VGGSpec
from cnnviz.specs import custom as L
from cnnviz.specs.url import MAX_JSON_BYTES, MAX_TOKEN_CHARS, spec_to_token, text_to_token
from cnnviz.ui.state import _SPEC, _VERSION, DEFAULT_PRESET
from cnnviz.workbench import analyse, layer_label
from tests.strategies import Hostile, hostile_json, valid_specs
from tests.test_maps_page import offline, open_page, routed_as_served  # noqa: F401 (autouse)

# Page file → its title, as streamlit_app.py's navigation names them (Home's title is the app's own).
PAGES = {"pages/home.py": "cnnviz — the classic CNNs of *Dive into Deep Learning*",
         "pages/build.py": "Build", "pages/sizes.py": "Input size", "pages/train.py": "Train",
         "pages/maps.py": "Feature maps", "pages/graph.py": "Connections",
         "pages/batchnorm.py": "BatchNorm"}
# Pages that show the network itself and cannot when it does not build or run: their main
# area must say why. Home shows the zoo, Input size every size's diagnosis; on those the
# sidebar names what fails.
SHOWS_THE_NETWORK = {"pages/build.py", "pages/train.py", "pages/maps.py", "pages/graph.py",
                     "pages/batchnorm.py"}
EXAMPLES = int(os.environ.get("CNNVIZ_FUZZ_PAGE_EXAMPLES", 1000))


@dataclass(frozen=True)
class Arrival:
    """How a network reaches the page: ``how`` is "net", "preset" or "state"; ``value`` the
    token, the preset's name or the spec; ``expected`` the spec the page must then show
    (None: refused, the default network stays); ``names``: a refusal mentions one of them."""

    how: str
    kind: str
    value: object
    expected: object | None
    names: tuple[str, ...] = ()


def _from_json(h: Hostile) -> Arrival:
    if len(h.text.encode()) > MAX_JSON_BYTES:  # a link holds no more (specs/url.py)
        return Arrival("net", h.kind, text_to_token(h.text), None, ("too large",))
    return Arrival("net", h.kind, text_to_token(h.text), h.spec,
                   () if h.valid else h.names)


B64 = string.ascii_letters + string.digits + "-_"
bad_tokens = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=80).map(
        lambda t: Arrival("net", "damaged token", t, None, ("damaged",))),
    st.text(B64, min_size=1, max_size=80).map(
        lambda t: Arrival("net", "damaged token", "~" + t, None, ("damaged",))),
    valid_specs().map(lambda s: spec_to_token(s)).flatmap(lambda t: st.integers(1, len(t) - 1).map(
        lambda cut: Arrival("net", "truncated token", t[:cut], None, ("damaged", "not valid")))),
    st.integers(1, 5000).map(lambda n: Arrival("net", "long token", "A" * (MAX_TOKEN_CHARS + n),
                                               None, ("too long",))),
    st.sampled_from([b" ", b"[", b"{\"family\":\"lenet\"," + b"\"x\":0,"]).map(
        lambda unit: Arrival("net", "inflating token", text_to_token(
            unit * (MAX_JSON_BYTES // len(unit) + 10)), None, ("too large",))),
)
def preset_names(known: list[str]):
    """Known names (opened: the preset is shown) and unknown ones (refused, named)."""
    return st.one_of(
        st.sampled_from(known).map(
            lambda n: Arrival("preset", "known preset", n, PRESETS[n].spec)),
        st.one_of(st.text(max_size=40), st.sampled_from([
            "LeNet", "lenet ", "resnet-18", "vgg16", "../../etc/passwd", "<script>", "%00",
            "a&net=b", "x" * 3000, ""]))
        .filter(lambda n: n not in PRESETS).map(
            lambda n: Arrival("preset", "unknown preset", n, None, ("unknown preset",))),
    )


def arrivals(page: str):
    """Weighted as a class's links and edits come: mostly networks (from links and from
    editing), fewer damaged tokens and preset names. On BatchNorm the known presets are the
    book's: an ImageNet preset there costs 8 to 13 GB and up to a minute (reported; its own
    page tests open the presets)."""
    known = list(BOOK_PRESETS) if page == "pages/batchnorm.py" else list(PRESETS)
    ways = {"json link": hostile_json().map(_from_json), "damaged link": bad_tokens,
            "preset link": preset_names(known),
            "edited network": valid_specs().map(
                lambda s: Arrival("state", "valid spec in the session", s, s))}
    return st.sampled_from(["json link"] * 8 + ["damaged link"] * 2 + ["preset link"] * 2 +
                           ["edited network"] * 8).flatmap(ways.get)


# Pages with editors keyed by the network's version (cnnviz.ui.state.widget_key).
EDITORS = {"pages/build.py", "pages/sizes.py"}


def _arrive(at, page: str, arrival: Arrival) -> None:
    """Put the arrival where the app finds it, then run the page once."""
    if arrival.how == "state":  # as replace_spec does (preset switch, upload, Use size …)
        at.session_state[_SPEC] = arrival.value
        at.session_state[_VERSION] = at.session_state.get(_VERSION, 0) + 1
        at.query_params.clear()
    else:  # a link: read on the session's first run, before any editor exists
        if at.session_state[_VERSION] == 0 and page in EDITORS:
            # The editors of the last link's network (keyed edit0.*) would hold their values
            # into this one's, as no fresh session does: one rerun under another version
            # lets Streamlit drop them (AppTest cannot delete a drawn widget's state).
            at.session_state[_VERSION] = 1
            at.run()
        del at.session_state[_SPEC]
        del at.session_state[_VERSION]
        at.query_params.clear()
        at.query_params[arrival.how] = arrival.value
    at.run()


def _messages(at, main_only: bool = False) -> list[tuple[str, str]]:
    """(kind, text) of every error, warning and info box (main area, or the whole page)."""
    root = at.main if main_only else at
    return [(kind, box.value) for kind in ("error", "warning", "info")
            for box in getattr(root, kind)]


def _names_layer(text: str, failure) -> bool:
    """Whether ``text`` names the layer that fails: as pages name layers (``layer_label``) or
    as the Train page does (``Type `name```)."""
    return (layer_label(failure.layer, failure.layer_type) in text
            or f"{failure.layer_type} `{failure.layer}`" in text)


def _why_not(spec):
    """None when ``spec`` runs at its input size, else a predicate: does a text name why not?"""
    a = analyse(spec)
    if a.problems:
        return lambda text: any(f"`{p.path}`" in text or f"{p.path}:" in text
                                for p in a.problems if p.path) or \
            all(not p.path and p.message in text for p in a.problems)
    if a.failure is not None:
        return lambda text: _names_layer(text, a.failure)
    return None


COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
SPENT: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    """Print (and write) per page: the arrivals by how and what, what the page said, and the
    cost of a page run (wall and CPU seconds of this process)."""
    yield
    lines = []
    for page, c in COUNTS.items():
        n = sum(v for k, v in c.items() if k.startswith("arrival:"))
        cpu = sum(SPENT[page].values())
        said = ", ".join(f"{k} {v}" for k, v in sorted(c.items())
                         if not k.startswith(("kind:", "seconds")))
        kinds = ", ".join(f"{k[5:]} {v}" for k, v in c.most_common() if k.startswith("kind:"))
        lines.append(f"{page}: {n} arrivals in {c['seconds']} s ({1000 * c['seconds'] / n:.0f} "
                     f"ms a run, {1000 * cpu / n:.0f} ms CPU); {said}; kinds: {kinds}")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for line in lines:
            print("\nfuzz pages: " + line)
    if os.environ.get("CNNVIZ_FUZZ_COUNTS"):
        with open(os.environ["CNNVIZ_FUZZ_COUNTS"], "a") as out:
            out.write(json.dumps({"test": "pages", "counts": COUNTS, "cpu": SPENT}) + "\n")


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_survives_hostile_networks(page):
    at = open_page(DEFAULT_PRESET, page, PAGES[page])
    # Cheap settings, kept for the whole session: the smallest batch with statistics; a run
    # estimate timed on batches of at most 8 images.
    if page == "pages/batchnorm.py":
        at.select_slider(key="bn.batch").set_value(2).run()
    if page == "pages/train.py":
        at.number_input(key="train.limit").set_value(8).run()
    counts = COUNTS[page]
    started = time.perf_counter()

    # One session for all the examples: the fixtures above (routing as served, offline) are
    # meant to hold for the whole session, not to be redone per example.
    @settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                           HealthCheck.too_slow,
                                                           HealthCheck.data_too_large])
    @given(arrival=arrivals(page))
    def check(arrival: Arrival) -> None:
        began = time.process_time()
        _arrive(at, page, arrival)
        SPENT[page][arrival.kind] += time.process_time() - began
        assert not at.exception, (arrival, [e.message for e in at.exception])
        assert at.title[0].value == PAGES[page], arrival
        messages = _messages(at)
        shown = at.session_state[_SPEC]
        counts[f"arrival:{arrival.how}"] += 1
        counts[f"kind:{arrival.kind}"] += 1
        if arrival.expected is None:  # refused: the default network, and a message naming why
            assert shown == PRESETS[DEFAULT_PRESET].spec, arrival
            said = [(kind, text) for kind, text in messages
                    if any(name in text for name in arrival.names)]
            assert said, (arrival, messages)
            counts[f"refused, {said[0][0]}"] += 1
            return
        assert shown == arrival.expected, arrival
        why_not = _why_not(arrival.expected)
        if why_not is None:
            counts["runs"] += 1
            return
        where = _messages(at, main_only=True) if page in SHOWS_THE_NETWORK else messages
        said = [(kind, text) for kind, text in where if why_not(text)]
        assert said, (arrival, analyse(arrival.expected), messages)
        counts[f"does not run, {said[0][0]}"] += 1

    check()
    counts["seconds"] = round(time.perf_counter() - started, 1)


# -- what the fuzz found, each as its smallest example ------------------------------------------

def _show(page: str, spec):
    at = open_page(DEFAULT_PRESET, page, PAGES[page])
    _arrive(at, page, Arrival("state", "example", spec, spec))
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_sidebar_names_the_layer_that_fails_on_every_page():
    too_small = CustomSpec(1, 10, 4, (L.Conv(2, 5), L.Flatten(), L.Linear(2, 10)))
    at = _show("pages/home.py", too_small)
    [box] = at.sidebar.error
    assert box.value == "does not run as it is — see Build: Conv2d (layer 0) — input 4×4 is " \
                        "smaller than kernel 5"


@pytest.mark.parametrize("page", ["pages/graph.py", "pages/batchnorm.py", "pages/maps.py"])
def test_pages_that_cannot_show_a_network_say_which_layer_fails(page):
    at = _show(page, CustomSpec(1, 10, 4, (L.Conv(2, 5), L.Flatten(), L.Linear(2, 10))))
    [message] = [e.value for e in at.main.error]
    assert message.startswith("This network does not run at its input size 4×4: Conv2d "
                              "(layer 0) — input 4×4 is smaller than kernel 5.")


def test_feature_maps_of_a_network_taking_two_channels_says_so():
    at = _show("pages/maps.py", CustomSpec(2, 10, 16, (L.Conv(2, 3),)))
    [message] = [e.value for e in at.main.error]
    assert "takes 2 input channels (in_channels)" in message


def test_feature_maps_of_a_chain_without_a_head_shows_its_maps_and_says_why_no_class():
    at = _show("pages/maps.py", CustomSpec(1, 10, 16, (L.Conv(2, 3),)))
    assert "maps.grid" in {c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")}
    assert any("ends in a 2×14×14 feature map, not class scores" in i.value for i in at.info)


def test_feature_maps_of_one_position_maps_and_uneven_pooling_bins_keep_the_page():
    # 26 → 13 after the block, pooled into 2×2 uneven bins (no single stride): each output is
    # given the whole map, an upper bound, and the arithmetic says so
    vgg = VGGSpec(1, 2, 26, ((2, 3),), (2,), "gelu", False, 0.5, 2)
    at = _show("pages/maps.py", vgg)
    layers = at.selectbox(key="maps.layer").options
    pooled = next(option for option in layers if "AdaptiveAvgPool2d" in option)
    at.selectbox(key="maps.layer").select(pooled).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not any("No receptive field is worked out" in i.value for i in at.info)
    assert any("uneven bins" in c.value and "upper bound" in c.value for c in at.code)
    at = _show("pages/maps.py", CustomSpec(1, 10, 8, (L.Conv(2, 3), L.AdaptiveAvgPool(1),
                                                      L.Flatten(), L.Linear(2, 10))))
    one = next(o for o in at.selectbox(key="maps.layer").options if "AdaptiveAvgPool2d" in o)
    at.selectbox(key="maps.layer").select(one).run()
    assert not at.exception, [e.message for e in at.exception]


@pytest.mark.parametrize("layers, why", [
    ((L.BatchNorm(),), "No comparison for this network: it is made of BatchNorm layers only"),
    ((L.MaxPool(2), L.Flatten(), L.Linear(64, 10)), "no twin with it: Custom network has no "
                                                    "convolution (nor a block with one)"),
])
def test_batchnorm_says_when_a_network_has_no_twin_to_show(layers, why):
    at = _show("pages/batchnorm.py", CustomSpec(1, 10, 16, layers))
    assert any(why in i.value for i in at.info), [i.value for i in at.info]
