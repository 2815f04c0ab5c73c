"""A class on one server (issue 12, point 4): page latency and the server's memory with many
browser sessions at once, against one session alone on the same server.

The scenario is tests/test_browser_load.py's, with more students and no assertions. Every
student opens Home, takes a network of its own (Home's card, then Build's kernel slider, or a
spec file uploaded in Build) and opens every page. Then ``--runners`` of them press Start on
the Train page at the same moment (the digits, a ``--run-seconds`` time budget); the tab whose
run trains is closed and the server stops that run after ``--abandon`` seconds
(``CNNVIZ_ABANDON_SECONDS``), and the queued runs train to the end of their budgets. Meanwhile
every other student does ``--rounds`` rounds of: Home, Build, the kernel slider one step and
back, then every other page.

Latency: each action, from the moment it is taken until the page shows what it should and
Streamlit's status says the run is over (``tests.browser.Session.timed``): page switches (the
navigation's links, Home's card) and widget changes (the slider, the upload); p50 and p95 over
all sessions. Baseline: the same actions by one session alone (``--alone`` students one after
the other) on the same server, after a warm-up student (imports, first analyses). Memory:
VmRSS of the ``streamlit run`` process (/proc/PID/status) at start, after the warm-up, the
peak under load (sampled every 0.5 s), once every tab is closed, after the abandon time, and
after Streamlit's ``server.disconnectedSessionTTL`` (``--session-ttl``, Streamlit's default
120 s), when a closed tab's session state may be let go (one fresh visit later, since
Streamlit expires them as sessions come and go). Errors: exception boxes, "Connection error"
and JavaScript errors seen by any tab, and tracebacks in the server's log (all should be 0).

Every tab's Chromium runs on the server's machine here, as no class's would: the server's own
CPU seconds during the class are printed beside the latencies, to tell its share.

Printed: Markdown, or JSON with ``--json``; nothing is asserted. Take final numbers on an
otherwise idle machine. Run from the repository root:

    .venv/bin/python benchmarks/bench_load.py                   # 10 students, 3 runs
    .venv/bin/python benchmarks/bench_load.py --sessions 30     # a class of 30
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # repo root
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/

from playwright.async_api import expect  # noqa: E402

from machine import cpu_model  # noqa: E402
from tests.browser import PAGE_TITLES, Session, async_chromium, streamlit_process  # noqa: E402
from cnnviz.workbench import analyse  # noqa: E402
from tests.test_browser_load import (KERNEL, Student, browse, choose_network,  # noqa: E402
                                     class_of, prepare_run, press_slider, queue_places,
                                     sidebar_params, student)

TIMEOUT_MS = 300_000  # a page may take long under a heavy load: measured, not failed
MEASURED = ("page", "widget")


async def edit_and_back(session: Session, who: Student) -> None:
    """Build's kernel slider of conv 2 one step up and back: two reruns with new shapes."""
    for presses, key in ((who.presses - 1, "ArrowRight"), (who.presses, "ArrowLeft")):
        params = analyse(who.spec_after(who.first_presses, presses)).summary.total_params
        await press_slider(session, KERNEL, 1, key, sidebar_params(params))


async def rounds_of(session: Session, who: Student, rounds: int) -> None:
    for _ in range(rounds):
        await browse(session, PAGE_TITLES[:2])  # Home, Build
        await edit_and_back(session, who)
        await browse(session, PAGE_TITLES[2:])


async def arrive(session: Session, who: Student) -> None:
    await choose_network(session, who)
    await browse(session, PAGE_TITLES[2:])  # choose_network ends on Build


async def alone(browser, url: str, who: Student, rounds: int) -> Session:
    session = await Session.open(browser, url, who.name, TIMEOUT_MS)
    try:
        await arrive(session, who)
        await rounds_of(session, who, rounds)
    finally:
        await session.close()
    return session


async def runs(runners: list[Session], run_seconds: int) -> float:
    """Start together, close the training tab; seconds from the close until the next run
    trains. The queued runs then train to the end of their budgets."""
    if not runners:
        return None
    await asyncio.gather(*(s.go("Train") for s in runners))
    await asyncio.gather(*(prepare_run(s, run_seconds) for s in runners))
    await asyncio.gather(*(s.main.get_by_role("button", name="Start").click() for s in runners))
    places = await queue_places(runners, deadline_s=TIMEOUT_MS / 1000)
    closed = next(s for s, place in places.items() if place == 0)
    queued = sorted((s for s in runners if s is not closed), key=places.get)
    await closed.close()
    gone = time.perf_counter()
    handover = None
    if queued:
        await expect(queued[0].main.locator('[data-testid="stProgress"]')).to_contain_text(
            "running on", timeout=TIMEOUT_MS)
        handover = time.perf_counter() - gone
    budget_ms = (run_seconds * len(queued) + 120) * 1000 + TIMEOUT_MS
    for s in queued:  # Start comes back once the run has ended and the page redrawn
        await expect(s.main.get_by_role("button", name="Start")).to_be_enabled(
            timeout=budget_ms)
        await s.settle()
    return handover


async def a_class(browser, url: str, students: list[Student], runners: int, run_seconds: int,
                  rounds: int) -> tuple[list[Session], float]:
    sessions = [await Session.open(browser, url, s.name, TIMEOUT_MS) for s in students]
    who = dict(zip(sessions, students))
    await asyncio.gather(*(arrive(s, who[s]) for s in sessions))
    training, browsing = sessions[:runners], sessions[runners:]
    handover, *_ = await asyncio.gather(runs(training, run_seconds),
                                        *(rounds_of(s, who[s], rounds) for s in browsing))
    for s in sessions:
        if not s.closed:
            await s.close()
    return sessions, handover


class Memory:
    """The server's RSS, sampled every ``every`` seconds while ``sampling``."""

    def __init__(self, server, every: float = 0.5):
        self.server, self.every, self.peak = server, every, server.rss_mb()
        self._task = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.server.rss_mb())
            await asyncio.sleep(self.every)

    def __enter__(self):
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc) -> None:
        self._task.cancel()


def spread(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0, "p50": None, "p95": None}
    p95 = statistics.quantiles(seconds, n=20, method="inclusive")[18] if len(seconds) > 1 \
        else seconds[0]
    return {"n": len(seconds), "p50": statistics.median(seconds), "p95": p95,
            "max": max(seconds)}


def latency(sessions: list[Session]) -> dict:
    timings = [(kind, t) for s in sessions for kind, t in s.timings]
    by_kind = {kind: spread([t for k, t in timings if k == kind]) for kind in MEASURED}
    return {"all": spread([t for k, t in timings if k in MEASURED]), **by_kind}


async def bench(args) -> dict:
    students = class_of(args.sessions)
    extra = [student(args.sessions + i) for i in range(args.alone + 1)]  # networks of their own
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as data:
        env = {"CNNVIZ_DATA": data, "CNNVIZ_ABANDON_SECONDS": str(args.abandon),
               "STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL": str(args.session_ttl)}
        with streamlit_process(env=env) as server:
            memory = {"start (before the first visit)": server.rss_mb()}
            async with async_chromium() as browser:
                await alone(browser, server.url, extra[0], 0)  # warm-up, not measured
                memory["after warm-up"] = server.rss_mb()
                solo = [await alone(browser, server.url, who, args.rounds)
                        for who in extra[1:]]
                cpu, wall = server.cpu_seconds(), time.perf_counter()
                with Memory(server) as sampled:
                    sessions, handover = await a_class(browser, server.url, students,
                                                       args.runners, args.run_seconds,
                                                       args.rounds)
                    memory["peak under load"] = sampled.peak
                cpu, wall = server.cpu_seconds() - cpu, time.perf_counter() - wall
                await asyncio.sleep(1)
                memory["all tabs closed"] = server.rss_mb()
                await asyncio.sleep(args.abandon + 2)
                memory[f"after the abandon time ({args.abandon} s)"] = server.rss_mb()
                await asyncio.sleep(max(args.session_ttl - args.abandon - 3, 0) + 5)
                await alone(browser, server.url, extra[0], 0)  # a visit: sessions expire
                memory[f"after the session TTL ({args.session_ttl} s) and one visit"] = \
                    server.rss_mb()
            log = server.log()
    problems = [p for s in [*solo, *sessions] for p in s.problems]
    alone_lat, class_lat = latency(solo), latency(sessions)
    ratio = {k: {q: (class_lat[k][q] / alone_lat[k][q]) if alone_lat[k][q] else None
                 for q in ("p50", "p95")} for k in class_lat}
    return {
        "date": datetime.date.today().isoformat(), "machine": f"{cpu_model()}, "
        f"{os.cpu_count()} cores, {platform.system()}", "load_average_before":
        args.load_before, "sessions": args.sessions, "runners": args.runners,
        "run_seconds": args.run_seconds, "rounds": args.rounds, "abandon_seconds": args.abandon,
        "latency_s": {"alone": alone_lat, "class": class_lat}, "ratio": ratio,
        "handover_s": handover, "memory_mb": memory,
        "class_phase": {"wall_s": wall, "server_cpu_s": cpu, "server_cores": cpu / wall},
        "errors": {"in tabs": len(problems), "tracebacks in the server log":
                   log.count("Traceback (most recent call last)")},
        "problems": problems[:20], "wall_s": time.perf_counter() - started}


def markdown(r: dict) -> str:
    def row(name, d):
        return (f"| {name} | {d['n']} | {d['p50']:.2f} s | {d['p95']:.2f} s |" if d["n"]
                else f"| {name} | 0 | – | – |")
    lines = [f"### {r['sessions']} sessions at once on one server ({r['date']}, {r['machine']}, "
             f"load average before: {r['load_average_before']})", "",
             f"{r['runners']} runs started together (digits, {r['run_seconds']} s budgets), the "
             f"training tab closed, abandon time {r['abandon_seconds']} s; {r['rounds']} rounds "
             "of browsing per other student.", "",
             "| actions | n | p50 | p95 |", "|---|---:|---:|---:|"]
    for who in ("alone", "class"):
        for kind, d in r["latency_s"][who].items():
            lines.append(row(f"{who}: {kind}", d))
    lines += ["", "| ratio class / alone | p50 | p95 |", "|---|---:|---:|"]
    for kind, q in r["ratio"].items():
        lines.append(f"| {kind} | " + " | ".join(f"{q[p]:.2f}×" if q[p] else "–"
                                                 for p in ("p50", "p95")) + " |")
    lines += ["", "| server memory (RSS) | MB |", "|---|---:|"]
    lines += [f"| {name} | {mb:.0f} |" for name, mb in r["memory_mb"].items()]
    handover = f"{r['handover_s']:.1f} s" if r["handover_s"] is not None else "–"
    phase = r["class_phase"]
    lines += ["", f"The class took {phase['wall_s']:.0f} s, in which the server used "
              f"{phase['server_cpu_s']:.0f} CPU seconds ({phase['server_cores']:.2f} cores on "
              f"average); the rest of the machine's went mostly to the tabs' Chromium."]
    lines += ["", f"Closed tab → the next queued run training: {handover}. Errors: "
              f"{r['errors']['in tabs']} in tabs, {r['errors']['tracebacks in the server log']} "
              f"tracebacks in the server's log. Whole benchmark: {r['wall_s']:.0f} s."]
    lines += [f"- {p[:300]}" for p in r["problems"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--runners", type=int, default=3)
    parser.add_argument("--run-seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alone", type=int, default=2, help="baseline students, one by one")
    parser.add_argument("--abandon", type=int, default=5)
    parser.add_argument("--session-ttl", type=int, default=120)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.runners = min(args.runners, args.sessions)
    args.load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result = asyncio.run(bench(args))
    print(json.dumps(result, indent=1) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
