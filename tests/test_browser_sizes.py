"""Input size in a real browser (issue 8, item 2): a network that runs only from 451 up.

The page used to check 1..256 ("No input size from 1 to 256 runs") while the sidebar said
"451 and up", and the "current 451" label at the end of the number line was cut off.
"""
from __future__ import annotations

import pytest

from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from cnnviz.specs.url import spec_to_token
from tests.browser import expect, metric, no_exception, settle


def runs_from_451(input_size: int) -> CustomSpec:
    """One 451×451 kernel, then global pooling: every size from 451 up runs."""
    return CustomSpec(1, 10, input_size, (L.Conv(4, 451), L.ReLU(), L.AdaptiveAvgPool(1),
                                          L.Flatten(), L.Linear(4, 10)))


@pytest.mark.parametrize("input_size", [451, 8192])
def test_page_and_sidebar_agree_and_the_current_label_is_whole(page, visit, input_size):
    visit(f"/sizes?net={spec_to_token(runs_from_451(input_size))}")
    expect(metric(page, "smallest size")).to_have_text("451")
    expect(metric(page, "valid sizes")).to_have_text("451 and up")
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("valid sizes 451 and up")

    chart = page.locator('[data-testid="stPlotlyChart"]').first
    label = chart.locator("text.annotation-text", has_text=f"current {input_size}")
    expect(label).to_have_text(f"current {input_size}: runs")
    settle(page)
    box = label.bounding_box()
    frame = chart.locator(".main-svg").first.bounding_box()
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"], \
        (box, frame)
    # no two labels under the line overlap (min 451 and "no maximum")
    below = [chart.locator("text.annotation-text", has_text=t).bounding_box()
             for t in ("min 451", "no maximum")]
    a, b = sorted(below, key=lambda r: r["y"])
    assert a["y"] + a["height"] <= b["y"] or a["x"] + a["width"] <= b["x"] \
        or b["x"] + b["width"] <= a["x"], below
    no_exception(page)
