"""The teachers' guide (docs/teaching.md) and the learners' guide (docs/guide.md) say what the
app does: every cap of cnnviz/limits.py with its default, only settings that exist, the
README's commands, one guide section per page with its screenshot, and no control named in
the guide that the pages do not show."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit import config as streamlit_config

from cnnviz import limits
from tests.container_lint import cnnviz_settings

ROOT = Path(__file__).resolve().parents[1]
TEACHING = ROOT / "docs" / "teaching.md"
GUIDE = ROOT / "docs" / "guide.md"
# The titles of streamlit_app.py's navigation, in its order (tests and links rely on them).
PAGE_TITLES = ["Home", "Build", "Input size", "Train", "Feature maps", "Connections",
               "BatchNorm"]


def section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def caps_rows(text: str) -> dict[str, list[str]]:
    """The caps table of docs/teaching.md: variable → its cells."""
    rows = {}
    for line in section(text, "The caps").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith("`CNNVIZ_"):
            variable = cells[0].strip("`")
            assert variable not in rows, f"{variable} has two rows"
            rows[variable] = cells
    return rows


def test_every_cap_is_in_the_teachers_table_with_its_default():
    rows = caps_rows(TEACHING.read_text())
    for row in limits.table():
        assert row["variable"] in rows, f"{row['variable']} is missing from the caps table"
        cells = rows[row["variable"]]
        assert cells[2] == row["default"], (row["variable"], cells[2], row["default"])
    assert set(rows) == {cap.env for cap in limits.CAPS.values()}, \
        f"rows for no cap: {set(rows) - {cap.env for cap in limits.CAPS.values()}}"


def test_the_table_check_fails_on_a_missing_cap_or_a_changed_default():
    text = TEACHING.read_text()
    cap = limits.CAPS["epochs"]
    default = f"| {limits.table()[list(limits.CAPS).index('epochs')]['default']} |"
    row = next(line for line in text.splitlines() if line.startswith(f"| `{cap.env}`"))
    assert default in row
    without = text.replace(row + "\n", "")
    assert cap.env not in caps_rows(without)
    changed = caps_rows(text.replace(row, row.replace(default, "| 7 |")))
    assert changed[cap.env][2] == "7"


@pytest.mark.parametrize("doc", [TEACHING, GUIDE], ids=lambda p: p.name)
def test_the_docs_name_only_settings_that_exist(doc):
    text = doc.read_text()
    named = set(re.findall(r"CNNVIZ_[A-Z_]+", text))
    assert named <= cnnviz_settings(), named - cnnviz_settings()
    for option in set(re.findall(r"\b((?:server|browser|client|runner)\.[a-zA-Z]+)", text)):
        streamlit_config.get_option(option)  # raises for an option Streamlit does not have


def test_the_teachers_guide_starts_with_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert commands in TEACHING.read_text()


def test_the_teachers_guide_has_the_sections_the_lead_fills():
    text = TEACHING.read_text()
    for heading in ("A class on one machine", "The caps", "How runs share the machine",
                    "What a server restart loses", "What one machine holds",
                    "Past one machine"):
        assert section(text, heading).strip()


def test_the_guide_has_a_section_per_page_in_order_each_with_its_screenshot():
    text = GUIDE.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == PAGE_TITLES
    app = (ROOT / "streamlit_app.py").read_text()
    assert re.findall(r'st\.Page\([^)]*title="([^"]+)"', app) == PAGE_TITLES
    for title in PAGE_TITLES:
        images = re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", section(text, title))
        assert images, f"no screenshot in the section {title}"
        for image in images:
            assert (ROOT / "docs" / image).is_file(), image


def _app_source() -> str:
    files = [ROOT / "streamlit_app.py", *(ROOT / "pages").glob("*.py"),
             *(ROOT / "cnnviz").rglob("*.py")]
    return "\n".join(f.read_text() for f in files)


def bold_names(text: str) -> set[str]:
    """What the guide writes in bold: the names the page shows (a trailing "…" marks a name
    that goes on with the network's own numbers)."""
    return {" ".join(name.split()).rstrip("…").strip()
            for name in re.findall(r"\*\*(.+?)\*\*", text, re.S)}


def test_every_control_the_guide_names_is_on_a_page():
    source = _app_source()
    missing = sorted(name for name in bold_names(GUIDE.read_text()) if name not in source)
    assert not missing, f"the guide names what no page shows: {missing}"


def test_a_renamed_control_fails_the_check():
    names = bold_names(GUIDE.read_text() + "\nPress **Begin training** now.\n")
    assert "Begin training" in names and "Begin training" not in _app_source()
