"""The caps a teacher sets for a class sharing one server, all in one place.

Each cap is an environment variable read when it is checked (a restart of ``streamlit run``
with a new value takes it; tests set them with ``monkeypatch.setenv``). The defaults let every
preset of the book (and its ImageNet versions) build, train and be inspected, while one
student cannot take the machine from the other 29. ``python -m cnnviz limits`` prints the caps
in force; docs/teaching.md explains each.

A request over a cap gets :func:`over`'s sentence, which names the cap, its variable and how
to raise it. A variable that does not hold a positive number is ignored (the default holds) and
said so by :func:`bad_settings`, which the Home page and ``cnnviz limits`` show.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Cap:
    key: str
    env: str
    default: float
    what: str            # what is capped, in words ("epochs of one run")
    unit: str = ""       # after the number ("s", "MB", "px")
    applies: str = ""    # where the cap is checked, for the teachers' table


CAPS = {cap.key: cap for cap in (
    Cap("params", "CNNVIZ_MAX_PARAMS", 200_000_000, "parameters of a network",
        applies="every page that builds weights: Train, Feature maps, BatchNorm; Build "
                "shows the shapes and says the network is over the cap"),
    Cap("mult_adds", "CNNVIZ_MAX_MULT_ADDS", 20_000_000_000,
        "mult-adds of one example through a network", applies="as for parameters"),
    Cap("input_size", "CNNVIZ_MAX_INPUT_SIZE", 512, "input size of a run or a picture",
        unit="px", applies="Train's input size; Feature maps and BatchNorm refuse a network "
                           "whose own input size is larger"),
    Cap("batch_mb", "CNNVIZ_MAX_BATCH_MB", 3000,
        "memory of one batch through the BatchNorm page", unit="MB",
        applies="BatchNorm: batch sizes whose estimate (from the shapes) is over the cap are "
                "not offered, nor are the larger draws of its Batch size tab"),
    Cap("epochs", "CNNVIZ_MAX_EPOCHS", 100, "epochs of one run",
        applies="Train, and BatchNorm's with-vs-without runs"),
    Cap("run_seconds", "CNNVIZ_MAX_RUN_SECONDS", 1800, "seconds of one run", unit="s",
        applies="Train: a run stops cleanly when it has trained this long, and a time "
                "budget cannot ask for more"),
    Cap("queue", "CNNVIZ_MAX_QUEUE", 30, "runs waiting for a device on the server",
        applies="Train's Start (each session holds one run at a time, training or queued) "
                "and BatchNorm's with-vs-without runs"),
    Cap("kept_weights", "CNNVIZ_KEEP_WEIGHTS", 3, "runs per session that keep their weights",
        applies="Train's run history: older runs keep their metrics, curves and confusion "
                "matrix, not their weights"),
    Cap("abandon_seconds", "CNNVIZ_ABANDON_SECONDS", 60,
        "seconds a run goes on after its browser tab closed", unit="s",
        applies="Train's runs and BatchNorm's with-vs-without runs: then the run stops, "
                "skips its test and frees its device"),
    Cap("spec_kb", "CNNVIZ_MAX_SPEC_KB", 1000, "size of a spec (JSON) upload", unit="KB",
        applies="Build's Open a spec"),
    Cap("weights_mb", "CNNVIZ_MAX_WEIGHTS_MB", 600, "size of a weights (.pt) upload",
        unit="MB", applies="Train's Load weights, the model chooser of Feature maps and "
                           "BatchNorm"),
    Cap("image_mb", "CNNVIZ_MAX_IMAGE_MB", 10, "size of a picture upload", unit="MB",
        applies="Feature maps"),
    Cap("image_pixels", "CNNVIZ_MAX_IMAGE_PIXELS", 40_000_000,
        "pixels of an uploaded picture (width × height)",
        applies="Feature maps: read from the file's header before the picture is decoded"),
)}


def _parse(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.replace("_", "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def limit(key: str) -> int:
    """The cap in force: the environment's value when it is a positive number, else the
    default (whole numbers: every cap counts something)."""
    cap = CAPS[key]
    value = _parse(os.environ.get(cap.env))
    return int(value if value is not None else cap.default)


def bad_settings() -> list[str]:
    """One sentence per cap variable that is set but not a positive number."""
    return [f"{cap.env}={os.environ[cap.env]!r} is not a positive number; the default "
            f"{_number(cap.default, cap.unit)} holds"
            for cap in CAPS.values()
            if cap.env in os.environ and _parse(os.environ[cap.env]) is None]


def _number(value: float, unit: str = "") -> str:
    return f"{value:,.0f}" + (f" {unit}" if unit else "")


def over(key: str, value: float) -> str | None:
    """None when ``value`` is within the cap, else the sentence that refuses it."""
    cap, most = CAPS[key], limit(key)
    if value <= most:
        return None
    return (f"{cap.what[0].upper()}{cap.what[1:]} is {_number(value, cap.unit)}, over this "
            f"server's cap of {_number(most, cap.unit)} (the teacher raises it with the "
            f"environment variable {cap.env}; see docs/teaching.md).")


def network_over(params: int, mult_adds: int) -> list[str]:
    """Why a network is too large for this server (empty when it is not)."""
    return [m for m in (over("params", params), over("mult_adds", mult_adds)) if m]


def table() -> list[dict[str, str]]:
    """The caps as rows (for ``cnnviz limits`` and the teachers' guide)."""
    return [{"variable": cap.env, "caps": cap.what, "default": _number(cap.default, cap.unit),
             "now": _number(limit(cap.key), cap.unit), "where": cap.applies}
            for cap in CAPS.values()]
