"""Weights in and out: a state_dict as bytes, and loading one back safely for a spec."""
from __future__ import annotations

import io

import torch
from torch import nn

from cnnviz.errors import CnnvizError
from cnnviz.models import build


class CheckpointError(CnnvizError):
    pass


def state_dict_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def load_weights(spec, data: bytes) -> nn.Module:
    """The spec's network with the weights in ``data`` (``weights_only=True``: a checkpoint
    can carry no code). Raises CheckpointError naming what does not match."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear answer
        raise CheckpointError(f"not a PyTorch state_dict file ({type(exc).__name__})") \
            from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise CheckpointError("the file holds no state_dict (a dict of tensors)")
    model = build(spec)
    expected = model.state_dict()
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
    model.load_state_dict(state)
    return model


def _shape(t: torch.Tensor) -> str:
    return "×".join(map(str, t.shape)) or "a scalar"
