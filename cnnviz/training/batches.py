"""Mini-batches made on the training device: images stay uint8 at their native size there, and
each batch is converted, channel-adapted, resized and (optionally) augmented on the device —
never per sample on the CPU, which is what makes the book's pipeline slow."""
from __future__ import annotations

import torch
import torch.nn.functional as F


class DeviceImages:
    """One split of a data set, moved to ``device`` once."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device):
        self.images = images.to(device, non_blocking=True)
        self.labels = labels.to(device, non_blocking=True)
        self.device = device

    def __len__(self) -> int:
        return self.labels.shape[0]

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator | None
                = None, drop_last: bool = False):
        """(uint8 images, labels) per batch; the order is drawn on the CPU, once per epoch."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(self.device, non_blocking=True)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            index = order[start:start + batch_size]
            yield self.images[index], self.labels[index]


def prepare(images: torch.Tensor, *, channels: int, size: int, augment: bool = False,
            flip: bool = False, generator: torch.Generator | None = None,
            dtype: torch.dtype = torch.float32, channels_last: bool = False) -> torch.Tensor:
    """uint8 (B, C, h, w) → float (B, channels, size, size) in [0, 1], as ``ToTensor`` after
    ``Resize`` gives in the book, with grey ↔ RGB adapted to the network.

    ``augment`` crops at random; ``flip`` adds a random horizontal flip, which only a data set
    whose labels survive a mirror should ask for (its registry entry's ``flips``)."""
    # One layout, whatever the strides of the data set's tensors: a grey (B, 1, h, w) slice can
    # have channels-last strides, which ran the whole network channels-last by accident.
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = images.to(dtype, memory_format=layout) / 255.0
    if x.shape[1] != channels:  # grey for a colour network is repeated; colour is averaged
        grey = x if x.shape[1] == 1 else x.mean(dim=1, keepdim=True)
        x = grey if channels == 1 else grey.expand(-1, channels, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < x.shape[-1])
    if augment:
        x = random_crop_flip(x, generator=generator, flip=flip)
    return x.contiguous(memory_format=layout)


def random_crop_flip(x: torch.Tensor, padding: int | None = None,
                     generator: torch.Generator | None = None, flip: bool = True
                     ) -> torch.Tensor:
    """Random crop after zero padding (1/8 of the side) and, with ``flip``, a random
    horizontal flip, drawn per example and applied with one gather on the device."""
    b, c, h, w = x.shape
    pad = padding if padding is not None else max(1, h // 8)
    padded = F.pad(x, (pad, pad, pad, pad))
    cpu = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=cpu).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=cpu).to(x.device)
    flipped = (torch.rand(b, generator=cpu) < 0.5).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)[None, :]            # (b, h)
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]            # (b, w)
    if flip:
        cols = torch.where(flipped[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
