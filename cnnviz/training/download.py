"""Downloading a torchvision data set: progress for the page, and a clear end when it fails.

torchvision downloads each file with ``download_url`` (its ``_urlretrieve`` writes the bytes)
and draws a tqdm bar per file through ``torchvision.datasets.utils.tqdm``. While a download
with a progress callback runs, those names point at dispatchers that hand the calling thread's
file to its :class:`_DownloadProgress` and every other thread's to the real ones. So the page
shows "file 2 of 4, 12.3 MB of 26.4 MB", and a failure says which file went wrong and how: the
connection dropped or closed early (after how much of it), the server answered an HTTP error,
the file arrived damaged (its checksum is not torchvision's, it does not unpack, or it unpacks
to a file that is not whole). Nothing half-written is kept: a failed download deletes every
file of it that is not whole, and the archive that gave it, so the next attempt downloads them
again (and only them: the whole files stay).
"""
from __future__ import annotations

import gzip
import os
import re
import tarfile
import threading
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from urllib.error import HTTPError, URLError

from cnnviz.training.datasets import DataError, DatasetInfo
from cnnviz.training.files import (FileProblem, archive_intact, archives, expected_files,
                                   problems, torchvision_class)

Progress = Callable[[str, float], None]

# Share of the progress bar the download takes; reading the files takes the rest.
DOWNLOAD_SHARE = 0.9

_RETRY = "Start again to retry, or use the offline Digits data set ('digits')."
_CLOSED_EARLY = "the server closed the connection before the end of the file"


def download(info: DatasetInfo, root: Path, report: Progress, before: list[FileProblem]):
    """Download ``info``'s data set into ``root``; torchvision's training split, or None when
    the files arrived whole but torchvision could not read them (the caller reads them again
    and says why). ``before``: the cache's problems before the download (none damaged).

    Raises :class:`DataError` when the download fails, having deleted what it left that is
    not whole; an exception from ``report`` itself passes through unchanged.
    """
    cls = torchvision_class(info)
    files = len(cls.resources) if hasattr(cls, "resources") else 1
    progress = _DownloadProgress(info.title, files, report)
    report(f"Downloading {info.title}…", 0.0)
    try:
        with _downloads_reported_to(progress):
            train_set = cls(str(root), train=True, download=True)  # both splits, reads train
    except _ProgressFailed as failed:
        _remove_unfinished(info, root, progress)
        raise failed.__cause__ from None
    except Exception as error:  # torchvision raises URLError, OSError, RuntimeError, ...
        left = problems(info, root)
        if not left:
            return None  # the files arrived but do not read: the caller says so
        message = _failure(info, root, error, progress, before, left)
        _remove_unfinished(info, root, progress, error)
        raise DataError(message) from error
    except BaseException:  # the thread interrupted: nothing half-written stays either
        _remove_unfinished(info, root, progress)
        raise
    # torchvision read only the training split: a test file that arrived damaged is found
    # here, while it is still this download's to delete, not a cache to be repaired by hand.
    left = problems(info, root)
    if left:
        message = (f"Could not download {info.title} ({_damage(info, root, left)}). {_RETRY}"
                   if any(not p.missing for p in left) else
                   f"Could not download {info.title} ({left[0].problem}). {_RETRY}")
        _remove_unfinished(info, root, progress)
        raise DataError(message)
    return train_set


def _failure(info: DatasetInfo, root: Path, error: BaseException,
             progress: "_DownloadProgress", before: list[FileProblem],
             left: list[FileProblem]) -> str:
    stopped = progress.interrupted()
    if stopped is not None:
        name, done, total = stopped
        of = f" of {_size(total)}" if total else ""
        reason = short_reason(error) if progress.writing else _CLOSED_EARLY
        return (f"The download of {info.title} stopped after {_size(done)}{of} "
                f"({progress.where()}: {reason}). {_RETRY}")
    damage = _arrival(info, root, error, progress, left)
    if damage is not None:
        return f"Could not download {info.title} ({damage}). {_RETRY}"
    reason = short_reason(error)
    if reason.startswith("the server answered ") and progress.path is not None:
        reason += f" for {progress.where()}"
    # Some files were there, not all: name what is missing.
    partial = before and len(before) < len(expected_files(info, root))
    missing = f"; {before[0].problem} under {before[0].path.parent}" if partial else ""
    return (f"Could not download {info.title} ({reason}){missing}. Choose the offline "
            f"'digits' data set, or place the files under {root}.")


def _arrival(info: DatasetInfo, root: Path, error: BaseException,
             progress: "_DownloadProgress", left: list[FileProblem]) -> str | None:
    """How the file that arrived whole is damaged, in words, or None when none is."""
    how = _unpacking(error)
    if how is not None and progress.path is not None:
        return f"{progress.path.name} arrived damaged: {how}"
    for archive in archives(info, root):  # the one fetched to its end, failing the check
        if archive.path == progress.path and not progress.writing and \
                archive.path.is_file() and not archive_intact(archive):
            return f"{archive.path.name} arrived damaged: its checksum is not torchvision's"
    if any(not p.missing for p in left):
        return _damage(info, root, left)
    return None


def _unpacking(error: BaseException) -> str | None:
    """What an error from unpacking an archive says about it, in words; None for any other
    error. torchvision unpacks each archive as soon as it arrives (and passes its check)."""
    if not isinstance(error, (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError)):
        return None
    if re.search(r"not a gzip", str(error), re.IGNORECASE):
        return "it is not a gzip file"
    if isinstance(error, tarfile.ReadError):
        return "it is not a tar archive"
    return "its compressed data is damaged"


def _damage(info: DatasetInfo, root: Path, left: list[FileProblem]) -> str:
    """The first damaged file in ``left``, as the archive it came from."""
    damaged = next(p for p in left if not p.missing)
    source = next((a.path.name for a in archives(info, root) if damaged.path in a.unpacks_to),
                  damaged.path.name)
    which = damaged.problem.removeprefix(damaged.path.name + " ")
    return f"{source} arrived damaged: it unpacks to {damaged.path.name}, which {which}"


def _remove_unfinished(info: DatasetInfo, root: Path, progress: "_DownloadProgress",
                       error: BaseException | None = None) -> None:
    """Delete what a failed download left that is not whole: the file it was writing, each
    unpacked file that is damaged, and each archive that fails its checksum, did not unpack
    (``error``) or unpacked into a damaged file. Plain files under ``root`` only; whole files
    stay, so the next attempt does not fetch them again."""
    unpacked = progress.path if error is not None and _unpacking(error) else None
    progress.remove_partial()
    damaged = {p.path for p in problems(info, root) if not p.missing}
    doomed = set(damaged) | ({unpacked} if unpacked is not None else set())
    for archive in archives(info, root):
        if archive.path.is_file() and (damaged.intersection(archive.unpacks_to) or
                                       not archive_intact(archive)):
            doomed.add(archive.path)
    folder = root.resolve()
    for path in doomed:
        if path.is_file() and not path.is_symlink() and \
                path.resolve().is_relative_to(folder):
            path.unlink(missing_ok=True)


def _size(count: int) -> str:
    if count >= 100_000:
        return f"{count / 1e6:.1f} MB"
    return f"{count / 1e3:.0f} KB" if count >= 1000 else f"{count} bytes"


def short_reason(error: BaseException) -> str:
    """One short line from an exception whose text may span many lines (torchvision lists
    every mirror it tried)."""
    if isinstance(error, HTTPError):  # its .reason is only the phrase ("Not Found")
        text = f"HTTP Error {error.code}: {error.reason}"
    else:
        text = str(error.reason if isinstance(error, URLError) else error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[-1] if lines else type(error).__name__
    reason = re.sub(r"^<urlopen error (.*)>$", r"\1", reason)
    reason = re.sub(r"^\[Errno [-\w]+\]\s*", "", reason)
    reason = re.sub(r"^HTTP Error (\d+): (.*)$", r"the server answered \1 \2", reason)
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
        self.short = False               # it finished that file short of its length
        self._named = False              # begin() named the file the next bar is for

    def begin(self, path) -> None:
        """torchvision starts fetching ``path`` (again, when it retries a file)."""
        path = Path(path)
        if path != self.path:
            self.index += 1
        self.path, self.done, self.total, self._named = path, 0, None, True
        self.short = False

    def start_file(self, total: int | None) -> _DownloadProgress:
        """The bar for a file torchvision has opened for writing."""
        if not self._named:  # a torchvision without the _urlretrieve we name files by
            self.index += 1
        self._named = False
        self.done, self.total, self.writing, self.short = 0, total, True, False
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
        # Python's http.client ends a body cut short without an error: the count tells.
        self.short = self.total is not None and self.done < self.total
        self._send(final=True)

    def interrupted(self) -> tuple[str, int, int | None] | None:
        """(file name, bytes received, bytes expected) of a file cut short, else None."""
        if self.path is not None and ((self.writing and self.done) or self.short):
            return self.path.name, self.done, self.total
        return None

    def where(self) -> str:
        """The file being fetched, and which of how many when there are several."""
        name = self.path.name if self.path is not None else "a file"
        return f"{name}, file {self.index} of {self.files}" if self.files > 1 else name

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


def _download_url_named(url, root, filename=None, *args, **kwargs):
    progress = getattr(_thread_progress, "current", None)
    if progress is not None:  # before the first request: an HTTP error names its file too
        progress.begin(os.path.join(os.path.expanduser(root),
                                    filename or os.path.basename(url)))
    return _real["download_url"](url, root, filename, *args, **kwargs)


def _urlretrieve_named(url, filename, *args, **kwargs):
    progress = getattr(_thread_progress, "current", None)
    if progress is not None:
        progress.begin(filename)
    return _real["_urlretrieve"](url, filename, *args, **kwargs)


_HOOKS = {"tqdm": _tqdm_or_progress, "download_url": _download_url_named,
          "_urlretrieve": _urlretrieve_named}


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
