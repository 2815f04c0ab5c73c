"""Grad-CAM (Selvaraju et al., 2017): where in the image the evidence for a class lies.

The gradient of the class score (the logit) with respect to a convolutional map, averaged
over space, weighs each channel; the weighted sum of the channels, through a ReLU, is the
class activation map. By default the map is the one the network pools or flattens for its
head: the last map with positions, where the features are the most abstract.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.errors import CnnvizError

# Leaf layers that end the spatial part of a network: Grad-CAM looks at the map they take.
_ENDS_SPACE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)


class GradCamError(CnnvizError):
    """A layer or class that Grad-CAM cannot explain."""


def grad_cam(model: nn.Module, x: torch.Tensor, target_class: int,
             layer: str | None = None) -> tuple[torch.Tensor, str]:
    """The class activation map of ``target_class`` for one image ``x`` ((C, H, W) or
    (1, C, H, W)) at ``layer`` (a module path; default: the map the head pools or
    flattens). Returns the map, CPU float32 (h, w) in [0, 1] at that layer's size (all
    zeros where nothing speaks for the class), and the layer's module path.

    The model runs in eval mode; its modes, hooks and gradients are as before afterwards.
    """
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise GradCamError(f"Grad-CAM explains one image at a time; got a batch of shape "
                           f"{tuple(x.shape)}")
    modules = dict(model.named_modules())
    if layer is not None and (layer not in modules or layer == ""):
        raise GradCamError(f"{layer!r} is not a layer of this network; pick one from the "
                           "layer table")
    modes = {name: m.training for name, m in modules.items()}
    calls: list[tuple[str, nn.Module, torch.Tensor | None, object]] = []

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            calls.append((name, module, first, output))
        return hook

    watched = [layer] if layer is not None else [n for n in modules if n]
    handles = [modules[n].register_forward_hook(record(n)) for n in watched]
    model.eval()
    try:
        with torch.enable_grad():
            # A leaf input that needs a gradient puts every map in the autograd graph even
            # when the weights are frozen; only the map's gradient is asked for, so no
            # parameter's .grad is touched.
            logits = model(x.detach().clone().requires_grad_(True))
            name, maps = _chosen_map(calls, layer)
            if logits.dim() != 2 or not 0 <= target_class < logits.shape[1]:
                raise GradCamError(f"class {target_class} is not one of the network's "
                                   f"{logits.shape[-1]} outputs")
            (grad,) = torch.autograd.grad(logits[0, target_class], maps)
    finally:
        for h in handles:
            h.remove()
        for n, m in modules.items():
            m.train(modes[n])
    weights = grad[0].mean(dim=(1, 2))
    cam = torch.relu(torch.einsum("k,khw->hw", weights, maps[0].detach()))
    cam = torch.nan_to_num(cam.float().cpu(), nan=0.0, posinf=0.0, neginf=0.0)
    top = cam.max()
    return (cam / top if top > 0 else torch.zeros_like(cam)), name


def _chosen_map(calls: list, layer: str | None) -> tuple[str, torch.Tensor]:
    if layer is not None:
        if not calls:
            raise GradCamError(f"{layer} does not run in the forward pass")
        name, _, _, out = calls[-1]
        if not (isinstance(out, torch.Tensor) and out.dim() == 4):
            raise GradCamError(f"{layer} gives no feature map (C×H×W); pick a convolutional "
                               "layer before the head")
        return name, out
    end = next((c for c in calls if isinstance(c[1], _ENDS_SPACE)), None)
    if end is not None and isinstance(end[2], torch.Tensor) and end[2].dim() == 4:
        target = end[2]
        # Several modules return the same tensor (a ReLU, its Residual, its stage): name the
        # innermost, the one the layer table lists.
        makers = [c[0] for c in calls if c[3] is target]
        if makers:
            return max(makers, key=lambda n: n.count(".")), target
    maps = [c for c in calls if isinstance(c[3], torch.Tensor) and c[3].dim() == 4
            and not isinstance(c[1], _ENDS_SPACE) and not list(c[1].children())]
    if not maps:
        raise GradCamError("this network has no convolutional feature map for Grad-CAM")
    return maps[-1][0], maps[-1][3]


def upsample(cam: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``cam`` (h, w) resized bilinearly to the input's ``size``, for an overlay; in [0, 1]."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    out = F.interpolate(cam[None, None].float(), size=size, mode="bilinear",
                        align_corners=False)
    return out[0, 0].clamp(0.0, 1.0)
