"""Weights in and out: a state_dict as bytes, and loading one back safely for a spec.

An uploaded file is checked before anything is allocated for it: its size against the
teacher's cap (``weights_mb``); a zip (what ``torch.save`` writes) for entries that would
inflate (torch never compresses them) or declare more bytes than the file holds; then
``torch.load(weights_only=True)``, which runs no code from the file and checks each tensor's
declared storage against the bytes really there (so a file cannot ask for 400 GB); then the
tensors' names and shapes against the network built on the meta device. Only then are the
network's real weights made and filled.
"""
from __future__ import annotations

import io
import math
import pickle
import re
import zipfile

import torch
from torch import nn

from cnnviz import limits
from cnnviz.errors import CnnvizError
from cnnviz.models import build, build_meta

MB = 2**20  # as Streamlit's uploader counts its megabytes


class CheckpointError(CnnvizError):
    pass


def state_dict_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def check_size(size: int) -> None:
    """A :class:`CheckpointError` naming the cap when a file of ``size`` bytes is over it
    (called with an upload's size before its bytes are read)."""
    if size == 0:
        raise CheckpointError("the file is empty; choose a .pt file saved with "
                              "torch.save(model.state_dict(), path)")
    capped = limits.over("weights_mb", math.ceil(size / MB))
    if capped:
        raise CheckpointError(capped)


def _check_zip(data: bytes) -> None:
    """Refuse a zip that would inflate or that lies about its entries' sizes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise CheckpointError("the file is a damaged or truncated zip (torch.save writes a "
                              "zip); download or save it again") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise CheckpointError("the file has compressed entries, which torch.save never "
                              "writes; it is not read (it could inflate far past its size)")
    if sum(e.file_size for e in entries) > len(data):
        raise CheckpointError("the file's entries declare more bytes than the file holds; "
                              "it is damaged")


def _read(data: bytes) -> dict:
    check_size(len(data))
    if data.startswith(b"PK\x03\x04"):
        _check_zip(data)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses every import but tensors' own; say which one the file asked for
        named = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if named:
            raise CheckpointError(f"the file holds more than tensors: it asks for "
                                  f"{named.group(1)} (an object or code to run, which a "
                                  "weights file never needs); nothing of it was run") from None
        raise CheckpointError("not a PyTorch state_dict file (UnpicklingError)") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear answer
        raise CheckpointError(f"not a PyTorch state_dict file ({type(exc).__name__})") \
            from None
    if not isinstance(state, dict) or not state:
        raise CheckpointError("the file holds no state_dict (a dict of tensors)")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        inner = [k for k, v in state.items() if isinstance(v, dict)]
        hint = f"; its {inner[0]!r} may hold one: save that itself" if inner else ""
        raise CheckpointError(f"the file holds no state_dict (a dict of tensors){hint}")
    return state


def load_weights(spec, data: bytes) -> nn.Module:
    """The spec's network with the weights in ``data``. Raises CheckpointError naming what
    does not fit (the cap, the file, the tensors that are missing, unknown or of another
    shape); nothing is allocated for the network until the file has matched it."""
    state = _read(data)
    meta = build_meta(spec)  # names and shapes, no memory
    capped = limits.network_over(sum(p.numel() for p in meta.parameters()), 0)
    if capped:
        raise CheckpointError(" ".join(capped))
    expected = meta.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} is {_shape(state[k])} in the file but {_shape(v)} here"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing ({', '.join(missing[:3])}…)"
                         if len(missing) > 3 else f"missing {', '.join(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown tensors ({', '.join(unexpected[:3])})")
        parts += wrong[:3]
        raise CheckpointError("these weights are for a different network: " + "; ".join(parts))
    model = build(spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # a dtype that cannot be copied in (complex numbers, …)
        raise CheckpointError(f"the tensors do not load into this network: "
                              f"{str(exc).splitlines()[0]}") from None
    return model


def _shape(t: torch.Tensor) -> str:
    return "×".join(map(str, t.shape)) or "a scalar"
