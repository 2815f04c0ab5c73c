"""What a run that broke says: what happened and where the run was, in one sentence.

The engine's worker thread catches whatever a run raises — an error in a step, a device that
went away, an interruption — and turns it into ``run.message`` here. The Train page shows that
message and the command line prints it, so it must read as an answer, not a traceback: what
broke, at which epoch, what is kept and what to do next.
"""
from __future__ import annotations

import math
import re

import torch

from cnnviz.training import config
from cnnviz.training.advice import format_epochs

# What PyTorch raises when a GPU goes away mid-run: torch.AcceleratorError (a RuntimeError,
# PyTorch ≥ 2.8) for "CUDA error: unspecified launch failure" and its kind, or a plain
# RuntimeError with the same words from code paths (and drivers) that predate it.
_ACCELERATOR_ERROR = getattr(torch, "AcceleratorError", None)
# "Found no NVIDIA driver": a CUDA device chosen while torch still listed it, its driver gone.
_DEVICE_GONE = re.compile(r"\bCUDA (driver )?error\b|\bcuDNN error\b|CUDA-capable device|"
                          r"\bdevices? (is|are) (busy or )?unavailable\b|no NVIDIA driver",
                          re.IGNORECASE)
_LONGEST = 200  # characters of an error's own text in a message


# Out of memory is not a lost device: the caching allocator raises torch.OutOfMemoryError, but
# CUDA's own allocations (a cuDNN or cuBLAS workspace, a new context's handles) raise
# torch.AcceleratorError "CUDA error: out of memory", seen on an H200 whose memory another
# program held; the device works again once memory is freed.
_OUT_OF_MEMORY = re.compile(r"\bout of memory\b|_ALLOC_FAILED\b", re.IGNORECASE)


def out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device ran out of memory (in any of PyTorch's ways)."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and bool(_OUT_OF_MEMORY.search(str(error))))


def lost_device(error: BaseException, device: str) -> str | None:
    """The device ``error`` says stopped responding, or None when it is some other error.

    ``device`` is the run's ("cuda:0", "cpu", or "" before it was chosen); an accelerator
    error on a run not known to be on one is CUDA's, the only accelerator that raises it.
    """
    if out_of_memory(error):
        return None
    accelerator = _ACCELERATOR_ERROR is not None and isinstance(error, _ACCELERATOR_ERROR)
    if not accelerator and not (isinstance(error, RuntimeError)
                                and _DEVICE_GONE.search(str(error))):
        return None
    return device if device not in ("", "cpu") else "cuda"


def remember_if_lost(error: BaseException, device: str) -> None:
    """Note the device ``error`` says went away in :data:`config.LOST_DEVICES` (``auto``
    then passes it over, the Train page says it is not available)."""
    gone = lost_device(error, device)
    if gone:
        config.LOST_DEVICES[gone] = config.LOST_DEVICES[gone.split(":")[0]] = _text(error)


def where(epochs_done: float | None, epochs: int, testing: bool) -> str:
    """Where a run was: ``epochs_done`` after its latest training step (None before its first),
    ``testing`` while it tested what it learned."""
    if testing:
        return f"while testing what it learned after {format_epochs(epochs_done or 0)} " \
               f"of {epochs} epochs"
    if epochs_done is None:
        return "before its first training step"
    return f"in epoch {min(math.floor(epochs_done) + 1, epochs)} of {epochs}, after " \
           f"{format_epochs(epochs_done)} epochs"


def explain(error: BaseException, at: str, device: str, kept: bool) -> str:
    """The failed run's message: ``at`` from :func:`where`, ``kept``: whether it made metric
    points (they stay on the curves and in the run history)."""
    kept_text = ("Its curves up to there are kept" if kept else
                 "It had not reached its first metric point")
    gone = lost_device(error, device)
    if gone:
        return (f"the device {gone} stopped responding {at} — {_text(error)}. {kept_text}; "
                f"choose cpu and Start again ({gone} may only come back when the server "
                f"restarts).")
    if not isinstance(error, Exception):
        # KeyboardInterrupt, SystemExit...: a signal never reaches a worker thread, but code in
        # it (a callback, a library) may raise one; the run must still end as failed, quietly.
        return f"training was interrupted {at} — {_text(error)}. {kept_text}; Start again " \
               f"to retry."
    return f"training broke off {at} — {_text(error)}. {kept_text}; Start again to retry."


def _text(error: BaseException) -> str:
    """The error's type and the first line of its text, shortened (CUDA appends paragraphs of
    debugging advice)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    name = type(error).__name__
    if not lines:
        return name
    first = lines[0] if len(lines[0]) <= _LONGEST else lines[0][:_LONGEST - 1] + "…"
    return f"{name}: {first.rstrip('.')}"  # the message puts its own full stop after it
