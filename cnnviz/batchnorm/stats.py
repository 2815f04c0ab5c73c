"""Per-channel BatchNorm statistics of one batch, next to the running ones, γ and β.

Every function works on a copy of the caller's model (:func:`_copy_in_mode`): its weights,
running statistics, ``num_batches_tracked`` and train/eval mode are never touched. The copy
shares the weights (the forward passes here run under ``no_grad`` and never write them) and
owns its buffers, so it costs the running statistics, not another model: a VGG-11 copy is
kilobytes, not 530 MB. Recordings are reduced in the forward pass's hooks, so memory holds one
layer's tensor at a time where it can (:func:`batch_memory` estimates the rest). Where a function runs the
network "in train mode", only the BatchNorm layers are switched to training; dropout and the
rest stay in eval mode, so what changes is BatchNorm's doing alone (and is reproducible).

PyTorch's rules, which the functions here follow and the tests hold to ``nn.BatchNorm2d``:

- the batch statistics are taken over N×H×W per channel (``BatchNorm2d``) or over N
  (``BatchNorm1d``; over N×L for an (N, C, L) input);
- training normalises with the *biased* batch variance, x̂ = (x − μ_B) / √(σ²_B + ε), then
  y = γ·x̂ + β;
- ``running_var`` is updated with the *unbiased* batch variance:
  running ← (1 − m)·running + m·batch, m = ``momentum`` (0.1 by default);
- with ``momentum=None`` the running statistics are the cumulative average of every batch
  seen: m = 1 / ``num_batches_tracked`` after the increment.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.errors import CnnvizError
from cnnviz.graph.trace import symbolic_graph
from cnnviz.models.arithmetic import trace

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
REFUSAL = "Expected more than 1 value per channel when training"


class BatchNormError(CnnvizError):
    """A BatchNorm question that cannot be answered for this network or batch."""


class NoBatchNormError(BatchNormError):
    """The network has no BatchNorm layer."""


@dataclass(frozen=True, eq=False)
class LayerStats:
    """One BatchNorm layer on one batch: its input's statistics and its own state before it."""

    path: str
    kind: str                         # "BatchNorm2d" or "BatchNorm1d"
    channels: int
    batch_mean: torch.Tensor          # (C,)
    batch_var_biased: torch.Tensor    # (C,) what training normalises with
    batch_var_unbiased: torch.Tensor  # (C,) what running_var is updated with
    running_mean: torch.Tensor | None  # (C,) None without track_running_stats
    running_var: torch.Tensor | None
    gamma: torch.Tensor               # (C,) weight; ones without affine
    beta: torch.Tensor                # (C,) bias; zeros without affine
    eps: float
    momentum: float | None
    batches_tracked: int              # num_batches_tracked before this batch
    count: int                        # values per channel: N·H·W (2d) or N (1d)
    input: torch.Tensor               # the layer's input on this batch, detached


@dataclass(frozen=True)
class LayerGap:
    """How far one BatchNorm layer's output moves between train and eval mode."""

    path: str
    mean_abs_diff: float
    relative: float  # mean_abs_diff / the RMS of the train-mode output


@dataclass(frozen=True, eq=False)
class EvalGap:
    """The same batch in train mode (batch statistics) and eval mode (running statistics)."""

    layers: tuple[LayerGap, ...]
    train_predictions: torch.Tensor  # (N,) argmax
    eval_predictions: torch.Tensor

    @property
    def changed(self) -> int:
        """How many of the N predictions differ between the two modes."""
        return int((self.train_predictions != self.eval_predictions).sum())

    @property
    def total(self) -> int:
        return int(self.train_predictions.numel())


@dataclass(frozen=True)
class BatchOfOne:
    """Whether one BatchNorm layer can run in training mode with a batch of one image."""

    path: str
    kind: str
    ok: bool
    values_per_channel: int  # at batch size 1: H·W for BatchNorm2d, 1 for BatchNorm1d
    message: str


def bn_layers(model: nn.Module) -> list[str]:
    """Module paths of every BatchNorm1d/2d, in the order the forward pass runs them."""
    norms = {name for name, m in model.named_modules() if isinstance(m, NORMS)}
    try:  # tracing reads the module tree only: no copy needed
        graph = symbolic_graph(model).graph
        ordered = [n.target for n in graph.nodes if n.op == "call_module" and n.target in norms]
    except Exception:  # noqa: BLE001 - a model fx cannot trace: registration order instead
        ordered = []
    if set(ordered) != norms:
        ordered = [name for name, m in model.named_modules() if isinstance(m, NORMS)]
    return list(dict.fromkeys(ordered))


def _norms(model: nn.Module) -> list[str]:
    paths = bn_layers(model)
    if not paths:
        raise NoBatchNormError("this network has no BatchNorm layer")
    return paths


def _layer(model: nn.Module, path: str) -> nn.Module:
    module = dict(model.named_modules()).get(path)
    if not isinstance(module, NORMS):
        raise BatchNormError(f"no BatchNorm layer at {path!r}; the network's are "
                             f"{', '.join(bn_layers(model)) or 'none'}")
    return module


def _copy(model: nn.Module, own: nn.Module | None = None) -> nn.Module:
    """A copy of ``model`` sharing its parameters (except those of ``own``, copied) and owning
    its buffers and modes: a training-mode BatchNorm writes its running statistics, never γ."""
    shared = {id(p): p for p in model.parameters()}
    if own is not None:
        for p in own.parameters():
            shared.pop(id(p), None)
    return copy.deepcopy(model, memo=shared)


def _copy_in_mode(model: nn.Module, train: bool) -> nn.Module:
    """A copy (see :func:`_copy`) in eval mode, with only its BatchNorm layers training when
    ``train``."""
    twin = _copy(model).eval()
    if train:
        for m in twin.modules():
            if isinstance(m, NORMS):
                m.train()
    return twin


def _device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


class _Stop(Exception):
    """Raised by a hook to end the forward pass once the wanted layer has been seen."""


def _run(model: nn.Module, x: torch.Tensor, paths: list[str], *, what: str,
         stop_after: str | None = None, on_value=None
         ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Forward ``x`` with hooks on ``paths`` recording each layer's input or output; returns
    the recordings and the network's output (None when stopped early). With ``on_value``,
    the hook hands each layer its tensor as ``on_value(path, module, tensor)`` instead of
    keeping a copy (the recordings are then empty)."""
    if x.dim() < 2:
        raise BatchNormError(f"a batch needs a batch dimension; got shape {tuple(x.shape)}")
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def keep(path: str, module: nn.Module, value: torch.Tensor) -> None:
        if on_value is None:
            seen[path] = value.detach().clone()
        else:
            on_value(path, module, value.detach())
        if path == stop_after:
            raise _Stop

    def hook_for(path: str):
        def hook(module, args, output):
            keep(path, module, output)

        def pre_hook(module, args):
            keep(path, module, args[0])
        return pre_hook if what == "input" else hook

    handles = [(modules[p].register_forward_pre_hook(hook_for(p)) if what == "input"
                else modules[p].register_forward_hook(hook_for(p))) for p in paths]
    try:
        with torch.no_grad():
            out = model(x.to(_device(model)))
    except _Stop:
        out = None
    except ValueError as exc:
        if REFUSAL in str(exc):
            raise BatchNormError(f"batch of {x.shape[0]}: a BatchNorm layer would see one "
                                 "value per channel, and training mode needs more than one "
                                 "(see batch_of_one)") from None
        raise
    finally:
        for h in handles:
            h.remove()
    return seen, out


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.dim()))


def _stats(path: str, m: nn.Module, x: torch.Tensor) -> LayerStats:
    dims = _reduce_dims(x)
    count = x.numel() // x.shape[1]
    c = m.num_features
    var_unbiased = (x.var(dim=dims, correction=1) if count > 1
                    else torch.full((c,), float("nan"), device=x.device, dtype=x.dtype))
    buffer = (lambda t: None if t is None else t.detach().clone())
    return LayerStats(
        path=path, kind=type(m).__name__, channels=c,
        batch_mean=x.mean(dim=dims), batch_var_biased=x.var(dim=dims, correction=0),
        batch_var_unbiased=var_unbiased,
        running_mean=buffer(m.running_mean), running_var=buffer(m.running_var),
        gamma=m.weight.detach().clone() if m.affine else torch.ones(c, device=x.device),
        beta=m.bias.detach().clone() if m.affine else torch.zeros(c, device=x.device),
        eps=float(m.eps), momentum=m.momentum,
        batches_tracked=int(m.num_batches_tracked) if m.num_batches_tracked is not None else 0,
        count=count, input=x)


def batch_statistics(model: nn.Module, x: torch.Tensor, mode: str = "train",
                     paths: list[str] | None = None) -> dict[str, LayerStats]:
    """Per BatchNorm layer (in forward order), its input's statistics on batch ``x``
    (N, C, H, W) and its running statistics, γ and β as they stood before the batch.

    ``mode="train"`` runs the BatchNorm layers on batch statistics (what a training step
    sees), ``"eval"`` on running statistics (what prediction sees): the layers' inputs differ
    from the second BatchNorm on.

    ``paths`` picks the layers (default: all); the forward pass stops after the last of them,
    and memory keeps only their inputs, not every layer's (the BatchNorm page asks for one).
    """
    if mode not in ("train", "eval"):
        raise BatchNormError(f"mode must be 'train' or 'eval', got {mode!r}")
    order = _norms(model)
    if paths is not None:
        for p in paths:
            _layer(model, p)
        order = [p for p in order if p in set(paths)]
    found: dict[str, LayerStats] = {}

    def record(path: str, module: nn.Module, value: torch.Tensor) -> None:
        # a pre-hook: the layer has not run on this batch yet, so its running statistics
        # are still those from before it
        found.setdefault(path, _stats(path, module, value.clone()))

    _run(_copy_in_mode(model, mode == "train"), x, order, what="input",
         stop_after=order[-1] if paths is not None else None, on_value=record)
    return {p: found[p] for p in order if p in found}


def after_step_running(stats: LayerStats) -> tuple[torch.Tensor, torch.Tensor]:
    """``running_mean`` and ``running_var`` after one training step on this batch:
    (1 − m)·running + m·batch, with the *unbiased* batch variance. With ``momentum=None``,
    m = 1 / (batches tracked + 1): the cumulative average of every batch so far."""
    if stats.running_mean is None or stats.running_var is None:
        raise BatchNormError(f"{stats.path} keeps no running statistics "
                             "(track_running_stats=False)")
    m = (1.0 / (stats.batches_tracked + 1) if stats.momentum is None else stats.momentum)
    mean = (1 - m) * stats.running_mean + m * stats.batch_mean
    var = (1 - m) * stats.running_var + m * stats.batch_var_unbiased
    return mean, var


def _channel(stats: LayerStats, channel: int) -> int:
    if not 0 <= channel < stats.channels:
        raise BatchNormError(f"{stats.path} has channels 0…{stats.channels - 1}, not {channel}")
    return channel


def normalised(stats: LayerStats, channel: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One channel's values as training mode transforms them, flat for histograms: x (the
    input), x̂ = (x − μ_B) / √(σ²_B + ε) with the biased batch variance, y = γ·x̂ + β."""
    c = _channel(stats, channel)
    x = stats.input.select(1, c).reshape(-1)
    x_hat = (x - stats.batch_mean[c]) / torch.sqrt(stats.batch_var_biased[c] + stats.eps)
    return x, x_hat, stats.gamma[c] * x_hat + stats.beta[c]


def undo(stats: LayerStats) -> tuple[torch.Tensor, torch.Tensor]:
    """γ = √(σ²_B + ε) and β = μ_B per channel: with them, the layer in training mode gives
    its input back exactly (y = γ·x̂ + β = x)."""
    return torch.sqrt(stats.batch_var_biased + stats.eps), stats.batch_mean.clone()


def with_affine(model: nn.Module, path: str, channel: int | None, gamma, beta) -> nn.Module:
    """A copy of ``model`` with γ and β of one channel of layer ``path`` set (every channel
    when ``channel`` is None: then ``gamma`` and ``beta`` are (C,) tensors). The copy owns that
    layer's γ and β and shares every other weight with ``model`` (see :func:`_copy`)."""
    twin = _copy(model, own=_layer(model, path))
    layer = _layer(twin, path)
    if not layer.affine:
        raise BatchNormError(f"{path} has no γ and β (affine=False)")
    if channel is not None and not 0 <= channel < layer.num_features:
        raise BatchNormError(f"{path} has channels 0…{layer.num_features - 1}, not {channel}")
    index = slice(None) if channel is None else channel
    with torch.no_grad():
        layer.weight[index] = torch.as_tensor(gamma, dtype=layer.weight.dtype)
        layer.bias[index] = torch.as_tensor(beta, dtype=layer.bias.dtype)
    return twin


def layer_outputs(model: nn.Module, x: torch.Tensor, mode: str = "train"
                  ) -> dict[str, torch.Tensor]:
    """Every BatchNorm layer's output on ``x``, from a copy with its BatchNorm layers in
    ``mode``: what a changed γ or β does to the map."""
    if mode not in ("train", "eval"):
        raise BatchNormError(f"mode must be 'train' or 'eval', got {mode!r}")
    paths = _norms(model)
    outputs, _ = _run(_copy_in_mode(model, mode == "train"), x, paths, what="output")
    return outputs


def train_vs_eval(model: nn.Module, x: torch.Tensor) -> EvalGap:
    """The same batch through a copy with BatchNorm on batch statistics (train mode) and on
    running statistics (eval mode): per layer the mean |difference| of its output, also
    relative to the RMS of the train-mode output, and the network's argmax predictions."""
    paths = _norms(model)
    evald, out_eval = _run(_copy_in_mode(model, False), x, paths, what="output")
    found: dict[str, LayerGap] = {}

    def compare(path: str, module: nn.Module, train: torch.Tensor) -> None:
        # each eval-mode output is let go as soon as its train-mode twin is compared
        other = evald.pop(path, None)
        if other is None:
            return
        diff = float((train - other).abs().mean())
        scale = float(train.pow(2).mean().sqrt())
        found[path] = LayerGap(path, diff, diff / scale if scale > 0 else float("inf"))

    _, out_train = _run(_copy_in_mode(model, True), x, paths, what="output", on_value=compare)
    gaps = [found[p] for p in paths if p in found]
    predict = (lambda out: out.reshape(out.shape[0], -1).argmax(dim=1).cpu())
    return EvalGap(tuple(gaps), predict(out_train), predict(out_eval))


def _first_channels(model: nn.Module) -> int:
    for m in model.modules():
        if hasattr(m, "in_channels"):
            return int(m.in_channels)
    raise BatchNormError("cannot tell the network's input channels; pass channels=")


def batch_of_one(model: nn.Module, input_size: int, channels: int | None = None
                 ) -> list[BatchOfOne]:
    """Per BatchNorm layer, from the shapes alone (no forward pass): can it run in training
    mode on a batch of one ``input_size``×``input_size`` image? Training mode needs more than
    one value per channel; at batch 1 a BatchNorm2d has H·W of them, a BatchNorm1d one."""
    _norms(model)
    shape = (channels or _first_channels(model), input_size, input_size)
    records = []
    for row in trace(model, shape):
        if not isinstance(row.module, NORMS):
            continue
        values = 1
        for d in row.input_shape[1:]:
            values *= d
        if values > 1:
            message = (f"{'×'.join(map(str, row.input_shape[1:]))} map: {values} values per "
                       "channel at batch size 1 — it trains, but its statistics come from one "
                       "image")
        else:
            what = ("a 1×1 map: one value per channel" if isinstance(row.module, nn.BatchNorm2d)
                    else "one value per feature")
            message = (f"{what} at batch size 1 — PyTorch refuses training mode "
                       f"(\"{REFUSAL}\")")
        records.append(BatchOfOne(row.name, row.type, values > 1, values, message))
    return records


def batch_spread(model: nn.Module, images: torch.Tensor, path: str, sizes, draws: int,
                 generator: torch.Generator | None = None
                 ) -> dict[int, torch.Tensor | BatchOfOne]:
    """Per batch size, ``draws`` random batches from the prepared pool ``images`` (P, C, H, W)
    and the per-channel batch mean of layer ``path``'s input on each: a (draws, C) tensor.
    Sizes are drawn without replacement from the pool, so none may exceed P.

    At batch size 1, when a BatchNorm layer up to ``path`` cannot train on one value per
    channel, the size's entry is that layer's :class:`BatchOfOne` record instead."""
    _layer(model, path)
    if draws < 1:
        raise BatchNormError(f"draws must be at least 1, got {draws}")
    pool = images.shape[0]
    twin = _copy_in_mode(model, True)
    order = bn_layers(model)
    upto = order[:order.index(path) + 1]
    result: dict[int, torch.Tensor | BatchOfOne] = {}
    for size in sizes:
        if not 1 <= size <= pool:
            raise BatchNormError(f"batch size {size} is outside 1…{pool} (the pool's images)")
        if size == 1:
            refusing = [r for r in batch_of_one(model, images.shape[-1], images.shape[1])
                        if r.path in upto and not r.ok]
            if refusing:
                result[size] = refusing[0]
                continue
        means = []
        for _ in range(draws):
            index = torch.randperm(pool, generator=generator)[:size]
            seen, _ = _run(twin, images[index], [path], what="input", stop_after=path)
            means.append(seen[path].mean(dim=_reduce_dims(seen[path])).cpu())
        result[size] = torch.stack(means)
    return result



FLOAT_BYTES = 4
FORWARD_FACTOR = 8  # a forward pass holds several of its largest activations at once (DenseNet)
OVERHEAD = 1.4      # the allocator's share, measured on the ImageNet presets


def _activations(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Per image, from the shapes alone: the values of every BatchNorm layer's output, of the
    largest leaf layer's output, and of the input."""
    pixels = 1
    for c in input_shape:
        pixels *= c
    norms, largest = 0, pixels
    for row in trace(model, tuple(input_shape)):
        if not row.is_leaf:
            continue
        size = 1
        for d in row.output_shape:
            size *= d
        largest = max(largest, size)
        if isinstance(row.module, NORMS):
            norms += size
    return norms, largest, pixels


def batch_memory(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes per image that the BatchNorm page's largest computation on a batch holds, from
    the shapes alone (no forward pass): :func:`train_vs_eval` keeps every BatchNorm layer's
    eval-mode output until its train-mode twin is compared, beside the forward pass's own
    tensors (``FORWARD_FACTOR`` times the largest activation, which covers VGG's first convs
    and DenseNet's growing concatenations), plus the allocator's ``OVERHEAD``. Multiply by
    the batch size; ``benchmarks/bench_batchnorm_memory.py`` measures it against real peaks."""
    _norms(model)
    norms, largest, _ = _activations(model, input_shape)
    return int(OVERHEAD * FLOAT_BYTES * (norms + FORWARD_FACTOR * largest))


def spread_memory(model: nn.Module, input_shape: tuple[int, ...], size: int, pool: int) -> int:
    """Bytes :func:`batch_spread` holds for batches of ``size`` drawn from a pool of ``pool``
    images: the pool, and one forward pass at a time (its recording is reduced at once)."""
    _norms(model)
    _, largest, pixels = _activations(model, input_shape)
    return int(OVERHEAD * FLOAT_BYTES * (pool * pixels + size * FORWARD_FACTOR * largest))
