"""Downloading a torchvision data set: progress for the page, and a clear end when it fails.

torchvision downloads each file with ``_urlretrieve`` and draws a tqdm bar per file through
``torchvision.datasets.utils.tqdm``. While a download with a progress callback runs, both names
point at dispatchers that hand the calling thread's file to its :class:`_DownloadProgress` and
every other thread's to the real ones. So the page shows "file 2 of 4, 12.3 MB of 26.4 MB", and
when the connection drops halfway the message says which file stopped where, and the file cut
short is deleted (torchvision would check it again anyway: nothing half-written is kept).
"""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError

from cnnviz.training.datasets import DataError, DatasetInfo
from cnnviz.training.files import (FileProblem, expected_files, problems,
                                   torchvision_class)

Progress = Callable[[str, float], None]

# Share of the progress bar the download takes; reading the files takes the rest.
DOWNLOAD_SHARE = 0.9


def download(info: DatasetInfo, root: Path, report: Progress, before: list[FileProblem]):
    """Download ``info``'s data set into ``root``; torchvision's training split, or None when
    the files arrived but torchvision could not read them (the caller reads them again and
    says why). ``before``: the cache's problems before the download, for the message.

    Raises :class:`DataError` when the download fails; an exception from ``report`` itself
    passes through unchanged.
    """
    cls = torchvision_class(info)
    files = len(cls.resources) if hasattr(cls, "resources") else 1
    progress = _DownloadProgress(info.title, files, report)
    report(f"Downloading {info.title}…", 0.0)
    try:
        with _downloads_reported_to(progress):
            return cls(str(root), train=True, download=True)  # both splits, then reads train
    except _ProgressFailed as failed:
        raise failed.__cause__ from None
    except Exception as error:  # torchvision raises URLError, OSError, RuntimeError, ...
        if not problems(info, root):
            return None  # the files arrived but do not read: the caller says so
        raise DataError(_failure(info, root, error, progress, before)) from error
    finally:
        progress.remove_partial()


def _failure(info: DatasetInfo, root: Path, error: BaseException,
             progress: "_DownloadProgress", before: list[FileProblem]) -> str:
    reason = short_reason(error)
    stopped = progress.interrupted()
    if stopped is not None:
        name, done, total = stopped
        of = f" of {_size(total)}" if total else ""
        return (f"The download of {info.title} stopped after {_size(done)}{of} ({name}, file "
                f"{progress.index} of {progress.files}: {reason}). Start again to retry, or "
                f"use the offline Digits data set ('digits').")
    # Some files were there, not all: name what is missing.
    partial = before and len(before) < len(expected_files(info, root))
    missing = f"; {before[0].problem} under {before[0].path.parent}" if partial else ""
    return (f"Could not download {info.title} ({reason}){missing}. Choose the offline "
            f"'digits' data set, or place the files under {root}.")


def _size(count: int) -> str:
    if count >= 100_000:
        return f"{count / 1e6:.1f} MB"
    return f"{count / 1e3:.0f} KB" if count >= 1000 else f"{count} bytes"


def short_reason(error: BaseException) -> str:
    """One short line from an exception whose text may span many lines (torchvision lists
    every mirror it tried)."""
    text = str(error.reason if isinstance(error, URLError) else error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[-1] if lines else type(error).__name__
    reason = re.sub(r"^<urlopen error (.*)>$", r"\1", reason)
    reason = re.sub(r"^\[Errno [-\w]+\]\s*", "", reason)
    if re.search(r"name resolution|not known|nodename|getaddrinfo|unreachable|no route to host",
                 reason, re.IGNORECASE):
        reason = f"no network connection: {reason}"
    return reason if len(reason) <= 160 else reason[:157] + "..."


# -- progress ---------------------------------------------------------------------------------

class _ProgressFailed(Exception):
    """Carries an exception raised by the caller's progress callback through torchvision."""


class _DownloadProgress:
    """Stands in for torchvision's tqdm bar, one file after another, and remembers the file
    being written, so a download that stops can say where and leave no half file behind."""

    def __init__(self, title: str, files: int, report: Progress):
        self.title, self.files, self.report = title, files, report
        self.index = 0
        self.done = 0
        self.total: int | None = None
        self.reported = 0.0
        self.path: Path | None = None    # the file torchvision writes now
        self.writing = False             # it opened that file and has not finished it
        self._named = False              # begin() named the file the next bar is for

    def begin(self, path) -> None:
        """torchvision starts fetching ``path`` (again, when it retries a file)."""
        path = Path(path)
        if path != self.path:
            self.index += 1
        self.path, self.done, self.total, self._named = path, 0, None, True

    def start_file(self, total: int | None) -> _DownloadProgress:
        """The bar for a file torchvision has opened for writing."""
        if not self._named:  # a torchvision without the _urlretrieve we name files by
            self.index += 1
        self._named = False
        self.done, self.total, self.writing = 0, total, True
        return self

    def __enter__(self) -> _DownloadProgress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:  # a failed file is reported by the exception, not as finished
            self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        self._send(final=False)

    def close(self) -> None:
        self.writing = False
        self._send(final=True)

    def interrupted(self) -> tuple[str, int, int | None] | None:
        """(file name, bytes received, bytes expected) of a file cut short, else None."""
        if self.writing and self.done and self.path is not None:
            return self.path.name, self.done, self.total
        return None

    def remove_partial(self) -> None:
        """Delete the file torchvision was writing when the download stopped: it opened it
        for writing (emptying it), so nothing else is lost."""
        if self.writing and self.path is not None and self.path.is_file() and \
                not self.path.is_symlink():
            self.path.unlink(missing_ok=True)
        self.writing = False

    def _send(self, final: bool) -> None:
        within = 1.0 if final else (min(self.done / self.total, 1.0) if self.total else 0.0)
        fraction = DOWNLOAD_SHARE * (min(self.index, self.files) - 1 + within) / self.files
        if fraction < self.reported + 0.005 and not final:
            return
        self.reported = max(self.reported, fraction)
        size = f"{self.done / 1e6:.1f}" + (f" of {self.total / 1e6:.1f}" if self.total else "")
        try:
            self.report(f"Downloading {self.title}… file {min(self.index, self.files)} of "
                        f"{self.files}, {size} MB", self.reported)
        except Exception as error:
            raise _ProgressFailed() from error


_hook_lock = threading.Lock()
_hook_users = 0
_real: dict[str, object] = {}  # torchvision's own tqdm and _urlretrieve while hooked
_thread_progress = threading.local()


def _tqdm_or_progress(*args, **kwargs):
    progress = getattr(_thread_progress, "current", None)
    if progress is None:
        return _real["tqdm"](*args, **kwargs)
    return progress.start_file(kwargs.get("total"))


def _urlretrieve_named(url, filename, *args, **kwargs):
    progress = getattr(_thread_progress, "current", None)
    if progress is not None:
        progress.begin(filename)
    return _real["_urlretrieve"](url, filename, *args, **kwargs)


_HOOKS = {"tqdm": _tqdm_or_progress, "_urlretrieve": _urlretrieve_named}


@contextmanager
def _downloads_reported_to(progress: _DownloadProgress):
    global _hook_users
    from torchvision.datasets import utils as tv_utils

    with _hook_lock:
        if _hook_users == 0:
            for name, hook in _HOOKS.items():
                if hasattr(tv_utils, name):  # a torchvision without it: less detail
                    _real[name] = getattr(tv_utils, name)
                    setattr(tv_utils, name, hook)
        _hook_users += 1
    _thread_progress.current = progress
    try:
        yield
    finally:
        _thread_progress.current = None
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0:
                for name, real in _real.items():
                    setattr(tv_utils, name, real)
                _real.clear()
