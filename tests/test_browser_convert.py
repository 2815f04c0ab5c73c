"""Build in a real browser: switching resnet18's family to ``custom`` keeps the network (the
same 11,178,378 parameters), now as custom layers and blocks (see tests/browser.py)."""
from __future__ import annotations

import re

from cnnviz.models.convert import to_custom
from cnnviz.presets import PRESETS
from tests.browser import expect, metric, no_exception, settle


def test_resnet18_switched_to_custom_keeps_its_parameters(page, visit):
    visit("/build?preset=resnet18")
    main = page.locator('[data-testid="stMain"]')
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(metric(page, "parameters")).to_have_text("11.2 M")
    expect(sidebar).to_contain_text("11,178,378")

    main.locator('[data-testid="stSelectbox"]').filter(has_text="Family").first.click()
    page.get_by_role("option", name="custom", exact=True).click()
    settle(page)
    no_exception(page)

    layers = to_custom(PRESETS["resnet18"].spec).layers
    expect(main.get_by_text(
        f"Converted: this ResNet is now {len(layers)} custom layers and blocks, the same "
        "network with the same 11,178,378 parameters.")).to_be_visible()
    page.wait_for_url(re.compile(r"/build\?net="))  # a custom network travels in the link
    expect(metric(page, "parameters")).to_have_text("11.2 M")
    expect(sidebar).to_contain_text("family custom")
    expect(sidebar).to_contain_text("11,178,378")
    # One card per layer: the stem's conv first, the residual blocks with their new options.
    expect(main.get_by_text(re.compile(r"^0 · conv"))).to_be_visible()
    expect(main.get_by_text(re.compile(r"^4 · residual"))).to_be_visible()
    expect(main.get_by_text(re.compile(rf"^{len(layers) - 1} · linear"))).to_be_attached()
    expect(main.get_by_label("shortcut batch norm").first).to_be_attached()
