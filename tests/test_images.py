"""The Feature maps page's pictures: the three sources, the upload checks, and the conversion to
the network's input with the steps it reports."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cnnviz.activations import images
from cnnviz.activations.images import (
    MAX_PIXELS, MAX_UPLOAD_BYTES, ImageError, Picture, as_display, dataset_images,
    indices_of_class, read_upload, sample_photos, to_network,
)
from cnnviz.activations.images import test_count as count_of_tests
from cnnviz.activations.images import test_picture as picture_of_test
from cnnviz.errors import CnnvizError
from cnnviz.training.batches import prepare
from cnnviz.training.data import load_dataset
from cnnviz.training.datasets import dataset_info


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(mode: str, size: tuple[int, int] = (48, 32), seed: int = 0) -> Image.Image:
    """A ``mode`` image of random pixels, ``size`` = (width, height): compresses badly, so a
    cut file is missing real image data."""
    rng = np.random.default_rng(seed)
    width, height = size
    bands = len(Image.new(mode, (1, 1)).getbands())
    shape = (height, width) if bands == 1 else (height, width, bands)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def refused(name: str, data: bytes) -> str:
    """The message of the ImageError that read_upload raises; fails if it is not one line."""
    with pytest.raises(ImageError) as caught:
        read_upload(name, data)
    message = str(caught.value)
    assert message and "\n" not in message, message
    return message


def with_png_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width``×``height``, with the chunk's CRC made right again."""
    assert data[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """A JPEG whose start-of-frame claims ``width``×``height``."""
    at = data.index(b"\xff\xc0")
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


# -- data set test images ---------------------------------------------------------------------

def test_digits_test_split_is_the_data_sets_own():
    data = load_dataset("digits", download=False)
    split = dataset_images("digits")
    assert split.count == count_of_tests("digits") == dataset_info("digits").test_size == 360
    assert split.classes == dataset_info("digits").classes
    for index in (0, 17, 359):
        picture = picture_of_test("digits", index)
        assert picture.pixels.dtype == torch.uint8
        assert tuple(picture.pixels.shape) == (1, 8, 8)
        assert torch.equal(picture.pixels, data.test_images[index])
        assert picture.label == int(data.test_labels[index])
        assert picture.label_name == str(picture.label)
        assert picture.classes == dataset_info("digits").classes
        assert picture.source == f"Digits test image {index} (label {picture.label})"


def test_a_test_picture_is_a_copy_of_the_data_set():
    picture = picture_of_test("digits", 3)
    picture.pixels.fill_(0)
    assert picture_of_test("digits", 3).pixels.any()


def test_indices_of_class_have_that_label_and_cover_the_split():
    labels = load_dataset("digits", download=False).test_labels
    seen = []
    for label in range(10):
        indices = indices_of_class("digits", label)
        assert indices == sorted(indices) and indices
        assert all(int(labels[i]) == label for i in indices)
        assert all(picture_of_test("digits", i).label == label for i in indices[:3])
        seen += indices
    assert sorted(seen) == list(range(360))


@pytest.mark.parametrize("call", [lambda: picture_of_test("digits", 360),
                                  lambda: picture_of_test("digits", -1),
                                  lambda: indices_of_class("digits", 10),
                                  lambda: indices_of_class("digits", -1)])
def test_a_test_image_out_of_range_is_refused_in_one_line(call):
    with pytest.raises(ImageError) as caught:
        call()
    assert "\n" not in str(caught.value) and "Digits" in str(caught.value)


def test_a_data_set_that_is_not_downloaded_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path))
    with pytest.raises(CnnvizError, match="not downloaded"):
        picture_of_test("mnist", 0)


# -- scikit-learn's photos --------------------------------------------------------------------

def test_sample_photos_are_the_two_colour_photos():
    photos = sample_photos()
    assert set(photos) == {"china.jpg", "flower.jpg"}
    for name, photo in photos.items():
        assert photo.name == name and photo.source == f"photo {name}"
        assert photo.pixels.dtype == torch.uint8
        assert tuple(photo.pixels.shape) == (3, 427, 640)
        assert photo.label is None and photo.classes is None and photo.label_name is None
        assert photo.pixels.float().std() > 10  # a real photo, not a blank
    assert not torch.equal(photos["china.jpg"].pixels, photos["flower.jpg"].pixels)


def test_sample_photos_are_read_once():
    first, second = sample_photos(), sample_photos()
    assert first is not second  # the caller's dict is its own
    assert first["china.jpg"] is second["china.jpg"]


def test_fingerprint_follows_the_pixels():
    a = Picture("a", torch.zeros(1, 4, 4, dtype=torch.uint8), None, None, "a")
    b = Picture("b", torch.zeros(1, 4, 4, dtype=torch.uint8), None, None, "b")
    c = Picture("c", torch.zeros(1, 2, 8, dtype=torch.uint8), None, None, "c")
    d = Picture("d", torch.ones(1, 4, 4, dtype=torch.uint8), None, None, "d")
    assert a.fingerprint == b.fingerprint
    assert len({a.fingerprint, c.fingerprint, d.fingerprint}) == 3
    assert "1×4×4" in repr(a)


# -- uploads: refused -------------------------------------------------------------------------

def test_an_empty_upload_is_refused():
    assert "empty" in refused("cat.png", b"")


def test_an_oversized_upload_is_refused_before_reading_it():
    data = encoded(noise("L")) + b"\0" * MAX_UPLOAD_BYTES
    message = refused("big.png", data)
    assert "big.png" in message and "10 MB" in message


def test_a_text_file_renamed_png_is_refused():
    message = refused("notes.png", b"shopping list:\n- eggs\n- flour\n")
    assert "notes.png is not an image" in message and "PNG and JPEG" in message


def test_a_text_file_that_starts_like_a_png_is_refused():
    assert "truncated or damaged" in refused("fake.png", b"\x89PNG\r\n\x1a\nnot really")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_refused_by_name(fmt):
    message = refused(f"cat.{fmt.lower()}", encoded(noise("RGB"), fmt))
    assert f"a {fmt} image" in message and "PNG and JPEG" in message


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGB"), ("PNG", "L"), ("JPEG", "RGB")])
@pytest.mark.parametrize("keep", [0.4, 0.5, 0.9])
def test_a_truncated_image_is_refused(fmt, mode, keep):
    data = encoded(noise(mode, (64, 64)), fmt)
    message = refused(f"cut.{fmt.lower()}", data[:int(len(data) * keep)])
    assert "truncated or damaged" in message


@pytest.mark.parametrize("cut", [8, 12, 20, 30, 40])
def test_a_png_cut_inside_its_header_is_refused(cut):
    assert "truncated or damaged" in refused("cut.png", encoded(noise("RGB"))[:cut])


@pytest.mark.parametrize("fmt,resize", [("PNG", with_png_size), ("JPEG", with_jpeg_size)])
def test_a_decompression_bomb_is_refused_from_its_header(fmt, resize, monkeypatch):
    bomb = resize(encoded(noise("L", (16, 16)), fmt), 20_000, 20_000)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a bomb must be refused before PIL opens it")

    monkeypatch.setattr(images.Image, "open", no_decoding)
    message = refused(f"bomb.{fmt.lower()}", bomb)
    assert "20,000×20,000 pixels" in message and "400.0 million" in message
    assert f"{MAX_PIXELS / 1e6:g} million" in message


def test_a_bomb_just_over_the_limit_is_refused_and_one_at_it_reaches_the_decoder():
    small = encoded(noise("L", (16, 16)))
    assert "million" in refused("over.png", with_png_size(small, MAX_PIXELS // 1000 + 1, 1000))
    # At the limit the size passes; the patched file then fails to decode, as it should.
    assert "truncated or damaged" in refused("at.png",
                                             with_png_size(small, MAX_PIXELS // 1000, 1000))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_size_pil_reads_is_checked_too(monkeypatch):
    """A size the header reader does not find (here: none is) is still checked before
    decoding, against PIL's own limit where that is lower."""
    monkeypatch.setattr(images, "_header_size", lambda data, kind: None)
    monkeypatch.setattr(images.Image, "MAX_IMAGE_PIXELS", 1000)
    assert "48×32 pixels" in refused("small.png", encoded(noise("L")))
    monkeypatch.setattr(images.Image, "MAX_IMAGE_PIXELS", 100)  # PIL's own error fires in open
    assert "limit" in refused("small.png", encoded(noise("L")))


def test_damaged_files_raise_only_image_errors():
    rng = np.random.default_rng(0)
    originals = [encoded(noise("RGB", (24, 24)), "PNG"), encoded(noise("RGB", (24, 24)), "JPEG"),
                 encoded(noise("P", (24, 24)), "PNG")]
    for data in originals:
        for _ in range(60):
            damaged = bytearray(data)
            for at in rng.integers(0, len(data), rng.integers(1, 6)):
                damaged[at] = int(rng.integers(0, 256))
            try:
                picture = read_upload("damaged.png", bytes(damaged))
            except ImageError as error:
                assert "\n" not in str(error)
            else:
                assert picture.pixels.dtype == torch.uint8 and picture.pixels.shape[0] in (1, 3)


def test_a_file_name_with_a_path_or_newline_stays_one_line():
    message = refused("../../etc/evil\nname.png", b"")
    assert message.startswith("evil name.png is empty")


# -- uploads: accepted ------------------------------------------------------------------------

def test_a_grey_png_stays_grey():
    image = noise("L")
    picture = read_upload("grey.png", encoded(image))
    assert tuple(picture.pixels.shape) == (1, 32, 48)
    assert np.array_equal(picture.pixels[0].numpy(), np.asarray(image))
    assert picture.name == "grey.png" and picture.source == "upload grey.png"
    assert picture.label is None and picture.classes is None


def test_an_rgb_png_is_read_exactly():
    image = noise("RGB")
    picture = read_upload("rgb.png", encoded(image))
    assert tuple(picture.pixels.shape) == (3, 32, 48)
    assert np.array_equal(picture.pixels.permute(1, 2, 0).numpy(), np.asarray(image))


def test_an_rgba_png_is_laid_on_white():
    image = Image.new("RGBA", (4, 2), (200, 100, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))        # transparent: white
    image.putpixel((1, 0), (0, 0, 0, 128))      # half black over white: grey 127
    picture = read_upload("alpha.png", encoded(image))
    assert tuple(picture.pixels.shape) == (3, 2, 4)
    assert picture.pixels[:, 0, 0].tolist() == [255, 255, 255]
    assert picture.pixels[:, 0, 1].tolist() == [127, 127, 127]
    assert picture.pixels[:, 1, 3].tolist() == [200, 100, 0]


def test_a_grey_png_with_alpha_stays_grey_on_white():
    image = Image.new("LA", (3, 3), (10, 255))
    image.putpixel((2, 2), (0, 0))
    picture = read_upload("la.png", encoded(image))
    assert tuple(picture.pixels.shape) == (1, 3, 3)
    assert picture.pixels[0, 0, 0] == 10 and picture.pixels[0, 2, 2] == 255


def test_a_palette_png_becomes_rgb_with_its_colours():
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    image.putdata([0, 1, 2])
    picture = read_upload("palette.png", encoded(image))
    assert picture.pixels[:, 0, :].T.tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_a_palette_png_with_a_transparent_colour_is_laid_on_white():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 0] + [0] * (254 * 3))
    image.putdata([0, 1])
    picture = read_upload("gif-like.png", encoded(image, transparency=1))
    assert picture.pixels[:, 0, :].T.tolist() == [[255, 0, 0], [255, 255, 255]]


def test_a_16_bit_grey_png_is_scaled_not_clipped():
    wide = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    picture = read_upload("deep.png", encoded(Image.fromarray(wide)))
    assert picture.pixels.tolist() == [[[0, 100, 255]]]


@pytest.mark.parametrize("mode,channels", [("RGB", 3), ("L", 1), ("CMYK", 3)])
def test_a_jpeg_is_accepted(mode, channels):
    image = Image.new(mode, (40, 30), {"RGB": (30, 120, 220), "L": 90,
                                       "CMYK": (0, 0, 0, 0)}[mode])
    picture = read_upload("photo.jpg", encoded(image, "JPEG", quality=95))
    assert tuple(picture.pixels.shape) == (channels, 30, 40)
    expected = {"RGB": [30, 120, 220], "L": [90], "CMYK": [255, 255, 255]}[mode]
    centre = picture.pixels[:, 15, 20].tolist()
    assert all(abs(a - b) <= 3 for a, b in zip(centre, expected)), centre


def test_a_jpeg_is_turned_upright_by_its_exif_orientation():
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90°: a viewer shows it 20 wide and 40 high
    picture = read_upload("phone.jpg", encoded(image, "JPEG", exif=exif.tobytes()))
    assert tuple(picture.pixels.shape) == (3, 40, 20)


# -- the conversion to the network ------------------------------------------------------------

def picture_of(channels: int, height: int, width: int, seed: int = 0) -> Picture:
    rng = np.random.default_rng(seed)
    pixels = torch.from_numpy(rng.integers(0, 256, (channels, height, width), dtype=np.uint8))
    return Picture("made", pixels, None, None, "made")


@pytest.mark.parametrize("picture_channels", [1, 3])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("height,width", [(20, 20), (20, 30), (31, 12)])
@pytest.mark.parametrize("size", [8, 20, 28])
def test_to_network_gives_the_input_and_only_the_true_steps(picture_channels, channels, height,
                                                            width, size):
    x, steps = to_network(picture_of(picture_channels, height, width), channels, size)
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, channels, size, size)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    side = min(height, width)
    text = " | ".join(steps)
    assert ("centre-cropped" in text) == (height != width)
    if height != width:
        assert f"centre-cropped {width} wide × {height} high → {side}×{side}" in steps
    assert ("averaged to grey" in text) == (picture_channels == 3 and channels == 1)
    assert ("repeated to 3 channels" in text) == (picture_channels == 1 and channels == 3)
    assert ("resized" in text) == (side != size)
    if side != size:
        how = "bilinear, antialiased" if size < side else "bilinear"
        assert f"resized {side}×{side} → {size}×{size} ({how})" in steps
    scaled = "scaled to [0, 1] (÷255), no mean/std normalisation — as in training"
    assert steps.count(scaled) == 1
    assert len(steps) == 1 + (height != width) + (picture_channels != channels) + (side != size)


def test_to_network_crops_the_centre_and_scales_exactly():
    picture = picture_of(3, 6, 10)
    x, steps = to_network(picture, 3, 6)
    assert torch.equal(x[0], picture.pixels[:, :, 2:8].float() / 255)
    tall = picture_of(1, 11, 4)
    x, _ = to_network(tall, 1, 4)
    assert torch.equal(x[0], tall.pixels[:, 3:7, :].float() / 255)


def test_to_network_is_the_training_conversion():
    picture = picture_of_test("digits", 5)
    for channels, size in [(1, 8), (1, 28), (3, 32), (3, 224)]:
        x, _ = to_network(picture, channels, size)
        assert torch.equal(x, prepare(picture.pixels[None], channels=channels, size=size))


def test_to_network_averages_rgb_and_repeats_grey():
    colour = picture_of(3, 5, 5)
    grey, _ = to_network(colour, 1, 5)
    assert torch.allclose(grey[0, 0], colour.pixels.float().mean(0) / 255)
    mono = picture_of(1, 5, 5)
    rgb, _ = to_network(mono, 3, 5)
    assert torch.equal(rgb[0, 0], rgb[0, 1]) and torch.equal(rgb[0, 1], rgb[0, 2])


@pytest.mark.parametrize("channels,size", [(2, 28), (4, 28), (1, 0)])
def test_to_network_refuses_what_no_picture_can_feed(channels, size):
    with pytest.raises(ImageError):
        to_network(picture_of(1, 8, 8), channels, size)


def test_a_photo_for_an_imagenet_network():
    x, steps = to_network(sample_photos()["china.jpg"], 3, 224)
    assert tuple(x.shape) == (1, 3, 224, 224)
    assert steps == ["centre-cropped 640 wide × 427 high → 427×427",
                     "scaled to [0, 1] (÷255), no mean/std normalisation — as in training",
                     "resized 427×427 → 224×224 (bilinear, antialiased)"]


# -- showing the network's input --------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3])
def test_as_display_gives_back_the_pixels(channels):
    picture = picture_of(channels, 7, 7)
    x, _ = to_network(picture, channels, 7)
    shown = as_display(x)
    expected = picture.pixels.numpy()
    expected = expected[0] if channels == 1 else expected.transpose(1, 2, 0)
    assert shown.dtype == np.uint8 and np.array_equal(shown, expected)
    assert np.array_equal(as_display(picture.pixels), expected)  # uint8 pixels as they are


def test_as_display_clamps_and_refuses_batches():
    assert as_display(torch.tensor([[[-0.5, 0.5, 1.5]]])).tolist() == [[0, 128, 255]]
    with pytest.raises(ValueError):
        as_display(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError):
        as_display(torch.zeros(2, 4, 4))
