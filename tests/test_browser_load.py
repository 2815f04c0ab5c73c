"""A class on one server (issue 12, point 4): ten browser sessions at once against one
``streamlit run``, each a student with a network of its own.

Every student opens Home, takes a network (a card of Home, then Build's kernel slider, or a
spec file uploaded in Build), and opens every page. Three of them press Start on the Train page
at the same moment: the runs queue for the one device and each tab shows its own place in the
queue; the tab whose run trains is closed, the server stops that run once the tab has been gone
for ``CNNVIZ_ABANDON_SECONDS`` and the next run starts. Meanwhile the others go on browsing. At
the end no student sees another's network (link, parameters), runs or upload; no tab showed an
exception, a connection error or a JavaScript error whenever it settled, and the server's log
holds no traceback.

The runs are asked for ``BUDGET_SECONDS``, far longer than the test waits for the next run to
start: only the server stopping the closed tab's run can free the device in time. The scenario
(``Student``, ``choose_network``, ``browse``…) is shared with benchmarks/bench_load.py, which
times it with more students.
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

try:
    from playwright.async_api import expect
except ImportError:  # require_browser() skips the test locally and fails it in CI
    expect = None

from cnnviz.presets import PRESETS
from cnnviz.specs import spec_to_json
from cnnviz.ui.state import RUNS, network_name, url_params
from cnnviz.ui.train_view import POLL_SECONDS
from cnnviz.workbench import analyse, human
from tests.browser import (PAGE_TITLES, Session, async_chromium, require_browser,
                           streamlit_process)

SESSIONS = 10  # the "at least 10 browser sessions at once"
RUNNERS = 3
ABANDON_SECONDS = 3  # the server's CNNVIZ_ABANDON_SECONDS in this test
BUDGET_SECONDS = 600
WAIT_MS = 120_000  # how long a tab may take to show what it should, on a busy 2-core machine
BASES = ("lenet", "lenet-bn")  # cheap on every page, and trained on the digits in seconds
KERNEL = "kernel"  # the slider of a convolution's kernel in Build: nth 0 is conv 1, nth 1 conv 2
STEADY_S = 2.5 * POLL_SECONDS  # every tab has redrawn its place since it last changed
QUEUE_TEXT = re.compile(r"^(?:running on (\w+)|queued \(position (\d+)\): another run is using "
                        r"(\w+))")


@dataclasses.dataclass(frozen=True)
class Student:
    """Who opens which network: ``base`` from Home's card, then conv 2's kernel slider pressed
    ``presses`` times and conv 1's ``first_presses`` times (each press: kernel − 1), or, when
    ``upload``, the same network opened from a spec file in Build instead of the sliders."""

    index: int
    base: str
    presses: int = 0
    first_presses: int = 0
    upload: bool = False

    @property
    def name(self) -> str:
        return f"student {self.index}"

    @property
    def file_name(self) -> str:
        return f"student-{self.index}.json"

    def spec_after(self, first: int, second: int):
        spec = PRESETS[self.base].spec
        conv1, conv2 = spec.convs
        return dataclasses.replace(spec, convs=(
            dataclasses.replace(conv1, kernel=conv1.kernel - first),
            dataclasses.replace(conv2, kernel=conv2.kernel - second)))

    @property
    def spec(self):
        return self.spec_after(self.first_presses, self.presses)

    @property
    def params(self) -> int:
        return analyse(self.spec).summary.total_params

    def run_label(self, number: int = 1) -> str:
        """The start of the Train page's label for this student's run."""
        return f"#{number} {network_name(self.spec)} · digits · 28px · {BUDGET_SECONDS} s"


def student(index: int, upload: bool = False) -> Student:
    """The ``index``-th of 50 different networks: lenet and lenet-bn, each with conv 2's
    kernel 5…1 and conv 1's 5…1."""
    return Student(index, BASES[index % 2], presses=(index // 2) % 5,
                   first_presses=(index // 10) % 5, upload=upload)


def class_of(count: int) -> list[Student]:
    """``count`` students with as many different networks; the last one uploads its own."""
    return [student(i, upload=i == count - 1 and count > 1) for i in range(count)]


def sidebar_params(params: int) -> str:
    return f"params {params:,}"


async def choose_network(session: Session, student: Student) -> None:
    """Home → the base network's card → Build, then the sliders or the upload."""
    await session.visit("/", "Home")
    card = session.main.locator('[data-testid="stVerticalBlock"]').filter(
        has=session.page.get_by_role("heading", name=student.base, exact=True)).filter(
        has=session.page.get_by_role("button", name="Open in the workbench")).last
    await session.timed("page", card.get_by_role("button", name="Open in the workbench").click,
                        lambda: session.heading("Build").wait_for())
    if student.upload:
        await session.main.get_by_role("tab", name="Export").click()
        await session.settle()
        files = session.main.locator('[data-testid="stFileUploader"] input[type="file"]')
        await session.timed(
            "widget", lambda: files.set_input_files(files={
                "name": student.file_name, "mimeType": "application/json",
                "buffer": spec_to_json(student.spec).encode()}),
            lambda: expect(session.sidebar).to_contain_text(sidebar_params(student.params),
                                                            timeout=WAIT_MS))
        await expect(session.main).to_contain_text(f"Opened {student.file_name}.")
        return
    for nth, presses in ((0, student.first_presses), (1, student.presses)):
        for press in range(1, presses + 1):
            done = (press, 0) if nth == 0 else (student.first_presses, press)
            await press_slider(session, KERNEL, nth, "ArrowLeft",
                               sidebar_params(analyse(student.spec_after(*done)).summary
                                              .total_params))


async def press_slider(session: Session, label: str, nth: int, key: str, shown: str) -> None:
    thumb = session.main.locator(f'input[type="range"][aria-label="{label}"]').nth(nth)

    async def press() -> None:
        await thumb.focus()
        await thumb.press(key)
    await session.timed("widget", press,
                        lambda: expect(session.sidebar).to_contain_text(shown, timeout=WAIT_MS))


async def browse(session: Session, titles=PAGE_TITLES) -> None:
    """Every page in the navigation's order, starting after the one the session is on."""
    for title in titles:
        await session.go(title)


async def prepare_run(session: Session, seconds: int = BUDGET_SECONDS) -> None:
    """On the Train page: the digits (the default here), stop after ``seconds``."""
    await expect(session.main.get_by_role("combobox", name="Data set")).to_have_value(
        "Digits (offline)")
    await session.main.get_by_text("time budget", exact=True).click()
    await session.settle()
    box = session.main.get_by_role("spinbutton", name="Time budget (seconds)")
    await box.fill(str(seconds))
    await box.press("Enter")
    await session.settle()


async def queue_text(session: Session) -> str:
    bar = session.main.locator('[data-testid="stProgress"]')
    return (await bar.first.inner_text()).strip() if await bar.count() else ""


def place(text: str) -> tuple[str, int] | None:
    """(device, 0) for a run training, (device, position) for one queued, None otherwise."""
    m = QUEUE_TEXT.match(text)
    return None if m is None else (m.group(1), 0) if m.group(1) else (m.group(3), int(m.group(2)))


async def queue_places(runners: list[Session], deadline_s: float = 120) -> dict:
    """Each runner's place once one of them trains and the others wait, as every tab shows it:
    {session: 0 (training) or its position in the queue}. A tab redraws its place once a
    second, so the places are read once no tab's place has changed for ``STEADY_S``."""
    loop = asyncio.get_running_loop()
    end, places, since, texts = loop.time() + deadline_s, [], loop.time(), []
    while loop.time() < end:
        texts = [await queue_text(s) for s in runners]
        now = [place(t) for t in texts]
        if now != places:
            places, since = now, loop.time()
        if (loop.time() - since >= STEADY_S and all(places)
                and sum(p[1] == 0 for p in places) == 1):
            assert len({device for device, _ in places}) == 1, texts  # one queue per device
            return {s: p[1] for s, p in zip(runners, places)}
        await asyncio.sleep(0.25)
    raise AssertionError(f"no moment with one run training and the others queued: {texts}")


async def stop_after_first_point(session: Session) -> None:
    points = session.main.locator('.js-plotly-plot .scatterlayer .trace .points path')
    await expect(points.first).to_be_visible(timeout=WAIT_MS)
    await session.main.get_by_role("button", name="Stop").click()
    stopped = session.main.locator('[data-testid="stAlert"]').filter(has_text="was stopped")
    await expect(stopped).to_contain_text("Run #1 was stopped", timeout=WAIT_MS)
    await session.settle()


async def runs_and_a_closed_tab(runners: list[Session]) -> Session:
    """Three Starts at once, the queue as each tab shows it, the training tab closed, and the
    queue moving on. Returns the closed session."""
    await asyncio.gather(*(s.main.get_by_role("button", name="Start").click() for s in runners))
    places = await queue_places(runners)
    assert sorted(places.values()) == [0, 1, 2], places
    closed = next(s for s, place in places.items() if place == 0)
    after = sorted((s for s in runners if s is not closed), key=places.get)
    await closed.close()
    nxt, last = after
    # The closed tab's run would train for BUDGET_SECONDS: the next starts only if the server
    # stopped it.
    await expect(nxt.main.locator('[data-testid="stProgress"]')).to_contain_text(
        re.compile(r"^running on \w+"), timeout=WAIT_MS)
    await expect(last.main.locator('[data-testid="stProgress"]')).to_contain_text(
        re.compile(r"^queued \(position 1\): another run is using \w+"), timeout=WAIT_MS)
    await stop_after_first_point(nxt)
    await expect(last.main.locator('[data-testid="stProgress"]')).to_contain_text(
        re.compile(r"^running on \w+"), timeout=WAIT_MS)
    await stop_after_first_point(last)
    return closed


async def own_state_only(session: Session, student: Student, everyone: dict[Session, Student],
                         runners: list[Session], trained: set[Session]) -> None:
    """This tab shows its own network, runs and upload, and nobody else's."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(session.page.url).query).items()}
    runs = {RUNS: "1"} if session in trained else {}  # the link counts this session's runs
    assert query == {**url_params(student.spec), **runs}, (student.name, session.page.url)
    await expect(session.sidebar).to_contain_text(sidebar_params(student.params))
    if "/build" not in session.page.url:
        await session.go("Build")
    value = session.main.locator('[data-testid="stMetric"]').filter(
        has_text="parameters").locator('[data-testid="stMetricValue"]').first
    await expect(value).to_have_text(human(student.params))
    await session.main.get_by_role("tab", name="Export").click()
    await session.settle()
    text = await session.page.locator("body").inner_text()
    for other in everyone.values():
        if other.upload and other is not student:
            assert other.file_name not in text, (student.name, other.file_name)
    await session.go("Train")
    main = await session.shown_text()
    assert (student.run_label() in main) == (session in trained), (student.name, main[-2000:])
    if session not in runners:
        await expect(session.main).to_contain_text("Loss, accuracy and speed of your runs "
                                                   "appear here as they train.")
    for other in runners:  # their labels differ (the test checks it first)
        if other is not session:
            assert everyone[other].run_label() not in main, (student.name, other.name)


async def a_class(url: str, students: list[Student], shots: Path | None = None) -> dict:
    """The scenario of this module's docstring; on a failure, what each tab showed (and a
    screenshot of each under ``shots``)."""
    async with async_chromium() as browser:
        sessions = [await Session.open(browser, url, s.name, WAIT_MS) for s in students]
        everyone = dict(zip(sessions, students))
        try:
            await asyncio.gather(*(choose_network(s, everyone[s]) for s in sessions))
            await asyncio.gather(*(browse(s, PAGE_TITLES[2:]) for s in sessions))  # after Build
            runners, others = sessions[:RUNNERS], sessions[RUNNERS:]
            await asyncio.gather(*(s.go("Train") for s in runners))
            await asyncio.gather(*(prepare_run(s) for s in runners))
            closed, *_ = await asyncio.gather(runs_and_a_closed_tab(runners),
                                              *(browse(s) for s in others))
            trained = {s for s in runners if s is not closed}
            await asyncio.gather(*(own_state_only(s, everyone[s], everyone, runners, trained)
                                   for s in sessions if not s.closed))
        except Exception as exc:
            raise AssertionError(await what_tabs_show(sessions, shots)) from exc
        return {"problems": [p for s in sessions for p in s.problems], "closed": closed.name}


async def what_tabs_show(sessions: list[Session], shots: Path | None) -> str:
    lines = []
    for s in sessions:
        if s.closed:
            lines.append(f"{s.name}: closed")
            continue
        if shots is not None:
            await s.page.screenshot(path=shots / f"{s.name.replace(' ', '-')}.png")
        text = (await s.shown_text())[:800].replace("\n", " | ")
        lines.append(f"{s.name} at {s.page.url}: {s.problems} {text}")
    return "\n".join(lines)


def test_a_class_of_ten_on_one_server(tmp_path):
    require_browser()
    students = class_of(SESSIONS)
    # Every check of "nobody sees another's network" below compares numbers that differ.
    assert len({s.params for s in students}) == len(students)
    assert len({s.run_label() for s in students[:RUNNERS]}) == RUNNERS
    env = {"CNNVIZ_DATA": str(tmp_path / "data"), "CNNVIZ_ABANDON_SECONDS": str(ABANDON_SECONDS)}
    with streamlit_process(env=env) as server:
        outcome = asyncio.run(a_class(server.url, students, tmp_path))
        log = server.log()
    assert not outcome["problems"], "\n\n".join(outcome["problems"])
    assert "Traceback" not in log, log[-3000:]
