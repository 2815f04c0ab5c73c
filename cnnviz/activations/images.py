"""The pictures the Feature maps page shows to a network, and how each becomes its input.

Three sources: a test image of a data set, one of scikit-learn's bundled colour photos, or an
upload, which is checked before it is decoded (size, format, pixel count) so that a damaged
file or a decompression bomb ends in an :class:`ImageError`, never a crash. :func:`to_network`
converts a picture exactly as training converts a batch (:func:`cnnviz.training.batches.prepare`)
and says, step by step, what it did to this picture.
"""
from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from functools import cached_property, lru_cache
from hashlib import blake2b
from pathlib import PurePath

import numpy as np
import torch
from PIL import Image, ImageOps

from cnnviz import limits
from cnnviz.errors import CnnvizError
from cnnviz.training.batches import prepare
from cnnviz.training.data import load_dataset
from cnnviz.training.datasets import dataset_info

MB = 2**20  # as Streamlit's uploader counts its megabytes


def max_upload_bytes() -> int:
    """The largest picture upload (the teacher's cap ``image_mb``)."""
    return limits.limit("image_mb") * MB


def max_pixels() -> int:
    """The most pixels an upload may declare (the cap ``image_pixels``; a phone photo fits, a
    decompression bomb does not), or PIL's own limit where someone lowered it below that."""
    pil = Image.MAX_IMAGE_PIXELS
    cap = limits.limit("image_pixels")
    return cap if pil is None else min(cap, int(pil))


def __getattr__(name: str) -> int:
    """The caps under their old constant names, read when asked (a teacher's variable holds)."""
    if name == "MAX_UPLOAD_BYTES":
        return max_upload_bytes()
    if name == "MAX_PIXELS":
        return max_pixels()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"


class ImageError(CnnvizError):
    """A picture cannot be used; the message is one line saying why and what to do."""


@dataclass(frozen=True, eq=False)
class Picture:
    """One image as the page holds it: uint8 ``pixels`` (C, h, w), C being 1 (grey) or 3 (RGB).

    ``label`` and ``classes`` are known for a data set's images only; ``source`` says where
    the picture came from, in words. Compared by identity: the pixels are a tensor.
    """

    name: str
    pixels: torch.Tensor
    label: int | None
    classes: tuple[str, ...] | None
    source: str

    def __repr__(self) -> str:
        shape = "×".join(str(d) for d in self.pixels.shape)
        return f"Picture({self.name!r}, {shape}, label={self.label}, source={self.source!r})"

    @property
    def label_name(self) -> str | None:
        """The class name of the label, where both are known."""
        if self.label is None or self.classes is None:
            return None
        return self.classes[self.label]

    @property
    def channels(self) -> int:
        return self.pixels.shape[0]

    @property
    def height(self) -> int:
        return self.pixels.shape[1]

    @property
    def width(self) -> int:
        return self.pixels.shape[2]

    @cached_property
    def fingerprint(self) -> str:
        """A digest of the shape and pixels: equal pictures share it, so caches can key on it."""
        digest = blake2b(str(tuple(self.pixels.shape)).encode(), digest_size=16)
        digest.update(self.pixels.contiguous().numpy().tobytes())
        return digest.hexdigest()


# -- test images of a data set ----------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TestImages:
    """The test split of a data set, to pick a picture from by index or by class."""

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    title: str
    classes: tuple[str, ...]
    images: torch.Tensor   # uint8 (N, C, H, W), shared with the data set cache: read only
    labels: torch.Tensor   # int64 (N,)

    @property
    def count(self) -> int:
        return len(self.labels)

    def indices_of_class(self, label: int) -> list[int]:
        """The indices of the test images labelled ``label``, in order."""
        if not 0 <= label < len(self.classes):
            raise ImageError(f"{self.title} has classes 0 to {len(self.classes) - 1}; "
                             f"there is no class {label}.")
        return (self.labels == label).nonzero().flatten().tolist()

    def picture(self, index: int) -> Picture:
        """Test image number ``index``, with its label."""
        if not 0 <= index < self.count:
            raise ImageError(f"{self.title} has {self.count:,} test images; pick an index "
                             f"from 0 to {self.count - 1}, not {index}.")
        label = int(self.labels[index])
        named = self.classes[label]
        said = f"label {label}" if named == str(label) else f"label {label}, {named}"
        return Picture(name=f"{self.name}-test-{index}", pixels=self.images[index].clone(),
                       label=label, classes=self.classes,
                       source=f"{self.title} test image {index} ({said})")


def dataset_images(name: str = "digits") -> TestImages:
    """The test split of data set ``name``, never downloading it (digits is always there).

    Raises :class:`cnnviz.training.datasets.DataError` when the set is not downloaded.
    """
    data = load_dataset(name, download=False)  # cached in-process after the first call
    info = dataset_info(name)
    return TestImages(name, info.title, info.classes, data.test_images, data.test_labels)


def test_count(name: str = "digits") -> int:
    """How many test images data set ``name`` has."""
    return dataset_images(name).count


def test_picture(name: str, index: int) -> Picture:
    """Test image number ``index`` of data set ``name``."""
    return dataset_images(name).picture(index)


def indices_of_class(name: str, label: int) -> list[int]:
    """The indices of data set ``name``'s test images labelled ``label``."""
    return dataset_images(name).indices_of_class(label)


# Their names start with "test": a test module that imports them must not collect them.
test_count.__test__ = False  # type: ignore[attr-defined]
test_picture.__test__ = False  # type: ignore[attr-defined]


# -- scikit-learn's photos --------------------------------------------------------------------

def sample_photos() -> dict[str, Picture]:
    """scikit-learn's bundled colour photos (china.jpg, flower.jpg; 427×640 RGB), by file name."""
    return dict(_sample_photos())


@lru_cache(maxsize=1)
def _sample_photos() -> tuple[tuple[str, Picture], ...]:
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    photos = []
    for path, array in zip(bunch.filenames, bunch.images):
        name = PurePath(path).name
        pixels = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        photos.append((name, Picture(name, pixels, None, None, f"photo {name}")))
    return tuple(photos)


# -- uploads ----------------------------------------------------------------------------------

def read_upload(name: str, data: bytes) -> Picture:
    """An uploaded PNG or JPEG as a :class:`Picture`: grey stays one channel, anything else
    becomes RGB, transparency is laid on white.

    Raises :class:`ImageError` (and nothing else) for an empty or over-large file, one that is
    not a PNG or JPEG, one with more than :func:`max_pixels` pixels (read from its header, before
    anything is decoded), or one that does not decode.
    """
    name = _display_name(name)
    if not data:
        raise ImageError(f"{name} is empty; choose a PNG or JPEG image.")
    check_upload_size(name, len(data))
    kind = _kind(data)
    if kind is None:
        raise ImageError(f"{name} is {_other_format(data)}; only PNG and JPEG images are "
                         f"accepted.")
    size = _header_size(data, kind)
    if size is not None:
        _check_pixels(name, *size)
    try:
        image = Image.open(io.BytesIO(data), formats=[kind])
    except Image.DecompressionBombError:
        raise ImageError(f"{name} has more pixels than the limit of {max_pixels():,}; "
                         f"choose a smaller image.") from None
    except Exception:  # PIL raises many types for a header it cannot read
        raise ImageError(f"{name} is not a readable {kind} image: the file is truncated or "
                         f"damaged; save it again or choose another.") from None
    _check_pixels(name, *image.size)  # the size PIL read, in case our header reading missed
    try:
        image.load()
        pixels = _to_pixels(_upright(image))
    except Exception:  # OSError, SyntaxError, ValueError, zlib errors: PIL's decoders vary
        raise ImageError(f"{name} could not be decoded: the file is truncated or "
                         f"damaged; save it again or choose another.") from None
    return Picture(name, pixels, None, None, f"upload {name}")


def check_upload_size(name: str, size: int) -> None:
    """An :class:`ImageError` naming the cap when ``size`` bytes are over it (called with the
    upload's size before its bytes are read)."""
    if size > max_upload_bytes():
        raise ImageError(f"{_display_name(name)}: {limits.over('image_mb', math.ceil(size / MB))}"
                         f" Save a smaller copy.")


def _display_name(name: str) -> str:
    name = " ".join(PurePath(str(name)).name.split()) or "The upload"
    return name if len(name) <= 80 else name[:77] + "..."


def _kind(data: bytes) -> str | None:
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(_JPEG_SIGNATURE):
        return "JPEG"
    return None


def _other_format(data: bytes) -> str:
    """What a file that is not a PNG or JPEG is, in words, for the refusal."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return f"a {image.format} image"
    except Exception:  # unidentified, or a header some plugin chokes on: not an image for us
        return "not an image"


def _check_pixels(name: str, width: int, height: int) -> None:
    if width * height > max_pixels():
        raise ImageError(f"{name} is {width:,}×{height:,} pixels ({width * height / 1e6:.1f} "
                         f"million); the limit is {max_pixels() / 1e6:g} million pixels "
                         f"(CNNVIZ_MAX_IMAGE_PIXELS, see docs/teaching.md); scale it down "
                         f"first.")


def _header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the file's header, read without PIL; None when it is not found
    (PIL then reads the size itself, still before decoding)."""
    if kind == "PNG":
        if len(data) >= 24 and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        # Start of frame: every SOFn except DHT (C4), JPG (C8) and DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def _upright(image: Image.Image) -> Image.Image:
    """A phone photo turned as its EXIF orientation says, as every image viewer shows it."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a damaged EXIF block should not cost the picture
        return image


_GREY_MODES = {"1", "L"}
_WIDE_GREY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def _to_pixels(image: Image.Image) -> torch.Tensor:
    """uint8 (1, h, w) for a grey image, uint8 (3, h, w) for anything else."""
    mode = image.mode
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info
    if mode in _WIDE_GREY_MODES:
        # 16-bit grey is scaled to 8 bits; converting to "L" would clip it at 255 instead.
        wide = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)[None]
    elif mode in _GREY_MODES and not has_alpha:
        grey = np.asarray(image.convert("L"))[None]
    elif mode in ("L", "LA", "La"):
        grey = _on_white(np.asarray(image.convert("LA")))[None]
    else:
        grey = None
    if grey is not None:
        return torch.from_numpy(np.array(grey, order="C"))  # a writable copy
    if has_alpha:
        rgb = _on_white(np.asarray(image.convert("RGBA")))
    else:
        rgb = np.asarray(image.convert("RGB"))
    return torch.from_numpy(np.array(rgb.transpose(2, 0, 1), order="C"))


def _on_white(array: np.ndarray) -> np.ndarray:
    """(h, w, C + 1) with alpha last → (h, w, C) composited on white, or (h, w) for grey."""
    colour = array[..., :-1].astype(np.float32)
    alpha = array[..., -1:].astype(np.float32) / 255.0
    out = np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


# -- the conversion to the network ------------------------------------------------------------

def check_network_input(channels: int, size: int) -> None:
    """An :class:`ImageError` when no picture can be shown to a network taking ``channels``
    channels at ``size``×``size``."""
    if channels not in (1, 3):
        raise ImageError(f"The network takes {channels} input channels (in_channels); "
                         f"pictures can only be shown to a network that takes 1 (grey) or "
                         f"3 (RGB).")
    if size < 1:
        raise ImageError(f"The network's input size is {size}; it must be at least 1.")


def to_network(picture: Picture, channels: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """The float input (1, ``channels``, ``size``, ``size``) in [0, 1] the network receives
    for ``picture``, and the steps that made it, in order and in words.

    A non-square picture is centre-cropped to a square first; the rest is
    :func:`~cnnviz.training.batches.prepare`, the conversion training uses.
    """
    check_network_input(channels, size)
    pixels = picture.pixels
    steps = []
    c, h, w = pixels.shape
    side = min(h, w)
    if h != w:
        top, left = (h - side) // 2, (w - side) // 2
        pixels = pixels[:, top:top + side, left:left + side]
        steps.append(f"centre-cropped {w} wide × {h} high → {side}×{side}")
    # The order below is prepare's own.
    steps.append("scaled to [0, 1] (÷255), no mean/std normalisation — as in training")
    if c == 3 and channels == 1:
        steps.append("RGB averaged to grey (the network takes 1 channel)")
    elif c == 1 and channels == 3:
        steps.append("grey repeated to 3 channels (the network takes RGB)")
    if side != size:
        how = "bilinear, antialiased" if size < side else "bilinear"
        steps.append(f"resized {side}×{side} → {size}×{size} ({how})")
    x = prepare(pixels[None], channels=channels, size=size)
    return x, steps


def as_display(x: torch.Tensor) -> np.ndarray:
    """An image tensor as a picture to show: uint8 (H, W) for one channel, (H, W, 3) for three.

    Takes (C, H, W) or (1, C, H, W), floats in [0, 1] (the network's input) or uint8 pixels.
    """
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"as_display takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"as_display takes (C, H, W) with C 1 or 3, got {tuple(x.shape)}")
    x = x.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    array = x.numpy()
    return np.ascontiguousarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
