"""Hostile uploads — spec JSON, weights, pictures — each refused with one clear message and
nothing allocated first: the size against the teacher's cap before a byte is parsed, a zip's
entries before torch reads them, a picture's header before it is decoded, a pickle's code never
run. Library level for every case, and through the page that takes the upload (Build's Open a
spec, the model chooser of Feature maps, Train's Load weights, Feature maps' picture upload):
the message is on the page, nothing the learner had is lost, no exception.
"""
from __future__ import annotations

import collections
import io
import json
import os
import pickle
import re
import resource
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnviz.specs as specs_module
import cnnviz.training.checkpoint as checkpoint
from cnnviz.activations import images
from cnnviz.activations.images import ImageError, read_upload
from cnnviz.errors import SpecError
from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.specs import spec_from_json, spec_to_json
from cnnviz.training.checkpoint import CheckpointError, load_weights, state_dict_bytes
from tests.test_maps_page import charts, errors, offline, open_page, png  # noqa: F401
from tests.test_maps_page import routed_as_served  # noqa: F401 (autouse)
from tests.test_pages import upload as upload_spec
from tests.test_train_page import upload as upload_weights_on_train

LENET = PRESETS["lenet"].spec
COUNTS: collections.Counter = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\nhostile uploads refused: " + ", ".join(f"{k} {v}" for k, v in
                                                        sorted(COUNTS.items())))


# -- spec JSON -----------------------------------------------------------------------------------

def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


SPEC_TEXT = spec_to_json(LENET).encode()
HOSTILE_SPECS = {
    "empty": (b"", "the text is empty"),
    "whitespace": (b" \n\t ", "the text is empty"),
    "truncated": (SPEC_TEXT[:len(SPEC_TEXT) // 2], "not valid JSON at line"),
    "not JSON": (b"family = lenet", "not valid JSON at line 1"),
    "not UTF-8": (b'{"family": "\xc3\x28"}', "not UTF-8"),
    "binary": (bytes(range(256)) * 4, "not valid JSON"),
    "nested 10^5": (_deep(100_000), "JSON nested too deeply"),
    "nested in a field": (b'{"family": "lenet", "dense": ' + _deep(100_000) + b"}",
                          "JSON nested too deeply"),
    "1e308": (b'{"family": "lenet", "input_size": 1e308}',
              "input_size: must be an integer, got 1e+308"),
    "10^400": (b'{"family": "lenet", "input_size": 1' + b"0" * 400 + b"}",
               "input_size: must be ≤ 8,192"),
    "5000 digits": (b'{"family": "lenet", "input_size": ' + b"9" * 5000 + b"}",
                    "a number is far too long"),
    "NaN": (b'{"family": "lenet", "dropout": NaN}', "dropout: must be a number, got NaN"),
    "-Infinity": (b'{"family": "lenet", "dropout": -Infinity}', "dropout: must be a number"),
    "a list": (b"[" + SPEC_TEXT + b"]", "must be an object"),
}


@pytest.mark.parametrize("case", list(HOSTILE_SPECS))
def test_a_hostile_spec_is_refused_with_its_reason(case):
    data, expected = HOSTILE_SPECS[case]
    texts = [data]  # an upload's bytes, and where they are text, the same as a str
    try:
        texts.append(data.decode())
    except UnicodeDecodeError:
        pass
    for text in texts:
        with pytest.raises(SpecError) as info:
            spec_from_json(text)
        message = str(info.value)
        assert expected in message and "\n" not in message, message
    COUNTS["spec JSON"] += 1


def test_a_spec_over_the_cap_is_refused_before_it_is_parsed(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_SPEC_KB", "1")

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed a spec over the cap")

    monkeypatch.setattr(specs_module.json, "loads", no_parsing)
    big = b'{"family": "lenet"' + b" " * 2000 + b"}"
    with pytest.raises(SpecError) as info:
        spec_from_json(big)
    assert str(info.value) == (
        "the spec is 2,019 bytes: Size of a spec (JSON) upload is 2 KB, over this server's "
        "cap of 1 KB (the teacher raises it with the environment variable CNNVIZ_MAX_SPEC_KB; "
        "see docs/teaching.md).")
    monkeypatch.undo()
    assert spec_from_json(big) == LENET  # under the default cap it opens
    COUNTS["spec JSON"] += 1


@pytest.mark.parametrize("case", ["empty", "truncated", "not UTF-8", "binary", "nested 10^5",
                                  "10^400", "NaN", "a list", "over the cap"])
def test_build_refuses_a_hostile_spec_upload_and_keeps_the_network(case, monkeypatch):
    if case == "over the cap":
        monkeypatch.setenv("CNNVIZ_MAX_SPEC_KB", "1")
        data, expected = SPEC_TEXT + b" " * 1024, "over this server's cap of 1 KB"
    else:
        data, expected = HOSTILE_SPECS[case]
    at = open_page("resnet18", "pages/build.py", "Build")
    before = at.session_state["cnnviz.spec"]
    upload_spec(at, "hostile.json", data)
    assert not at.exception, [e.message for e in at.exception]
    [message] = errors(at)
    assert "hostile.json was not opened** (your network is unchanged)" in message
    assert re.sub(r"^(\w+): ", r"`\1`: ", expected) in message  # the page quotes the field
    assert at.session_state["cnnviz.spec"] == before
    COUNTS["spec JSON on the Build page"] += 1


# -- weights -------------------------------------------------------------------------------------

class RunsAShellCommand:
    """What a hostile pickle carries: unpickling it would call os.system."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def torch_zip(pickled: bytes, records: dict[str, bytes] | None = None,
              compress: bool = False) -> bytes:
    """A file laid out as torch.save lays it out, with this data.pkl and these records."""
    out = io.BytesIO()
    how = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/byteorder", "little")
        for name, data in (records or {}).items():
            z.writestr(f"archive/data/{name}", data, compress_type=how)
        z.writestr("archive/version", "3\n")
    return out.getvalue()


class _Storage(pickle.Pickler):
    """Pickles ("STORAGE", numel) as torch's persistent id of a float storage, key "0"."""

    def persistent_id(self, obj):
        if isinstance(obj, tuple) and obj and obj[0] == "STORAGE":
            return ("storage", torch.FloatStorage, "0", "cpu", obj[1])
        return None


class _Tensor:
    def __init__(self, numel: int):
        self.numel = numel

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (("STORAGE", self.numel), 0, (self.numel,), (1,), False,
                 collections.OrderedDict()))


def declaring(numel: int) -> bytes:
    """data.pkl of {"0.weight": a float tensor of ``numel`` elements}."""
    out = io.BytesIO()
    _Storage(out, protocol=2).dump({"0.weight": _Tensor(numel)})
    return out.getvalue()


# A pickle that would run ``touch MARKER`` (made before any test swaps os.system out).
MARKER = Path(tempfile.gettempdir()) / f"cnnviz-hostile-pickle-ran-{os.getpid()}"
CODE = pickle.dumps({"0.weight": RunsAShellCommand(str(MARKER))}, protocol=2)


@pytest.fixture
def no_shell(monkeypatch):
    """os.system recorded instead of run (should the pickle run after all); returns the calls.
    The marker file must not exist afterwards either."""
    MARKER.unlink(missing_ok=True)
    calls: list = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command) or 0)
    yield calls
    assert not MARKER.exists()


def _refused(data: bytes, spec=LENET) -> str:
    with pytest.raises(CheckpointError) as info:
        load_weights(spec, data)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    COUNTS["weights"] += 1
    return message


def test_weights_that_carry_code_are_refused_and_the_code_never_runs(no_shell):
    for data in (CODE, torch_zip(CODE)):
        assert "it asks for posix.system" in _refused(data)
    assert no_shell == []


@pytest.mark.parametrize("case, data, expected", [
    ("empty", b"", "the file is empty"),
    ("truncated zip", state_dict_bytes(build(LENET))[:3000], "damaged or truncated zip"),
    ("a random file", bytes(range(256)) * 64, "not a PyTorch state_dict file"),
    ("a zip of something else", torch_zip(b"not a pickle"), "not a PyTorch state_dict file"),
    ("another network's", state_dict_bytes(build(PRESETS["lenet-bn"].spec)),
     "these weights are for a different network"),
    ("a whole checkpoint", (lambda b: (torch.save({"state_dict": build(LENET).state_dict(),
                                                   "epoch": 3}, b), b.getvalue())[1])(
        io.BytesIO()), "its 'state_dict' may hold one"),
    ("no tensors", (lambda b: (torch.save({}, b), b.getvalue())[1])(io.BytesIO()),
     "holds no state_dict"),
])
def test_unusable_weights_are_refused_with_their_reason(case, data, expected):
    assert expected in _refused(data), case


def test_a_declared_storage_of_400_gb_is_never_allocated():
    """torch checks a record's size against its declared storage before it allocates (the
    error says so); load_weights passes that on as a refusal, at once."""
    data = torch_zip(declaring(10 ** 11), {"0": b"\0" * 12})
    with pytest.raises(RuntimeError, match=r"record size \(12 bytes\) does not match expected "
                                           r"size \(400000000000 bytes"):
        torch.load(io.BytesIO(data), weights_only=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert "not a PyTorch state_dict file" in _refused(data)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB


def test_a_zip_that_would_inflate_is_refused_before_torch_reads_it(monkeypatch):
    # 80 MB of zeros in 80 KB; torch's reader would inflate it (it reads deflated entries).
    data = torch_zip(declaring(20_000_000), {"0": bytes(80_000_000)}, compress=True)
    assert len(data) < 200_000

    def no_loading(*args, **kwargs):
        raise AssertionError("torch.load read a zip that inflates")

    monkeypatch.setattr(checkpoint.torch, "load", no_loading)
    assert "compressed entries" in _refused(data)


def test_weights_over_the_cap_are_refused_before_they_are_read(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_WEIGHTS_MB", "1")
    monkeypatch.setattr(checkpoint.torch, "load", lambda *a, **k: pytest.fail("read"))
    message = _refused(b"PK" + bytes(2 * 2**20))
    assert message == ("Size of a weights (.pt) upload is 3 MB, over this server's cap of 1 MB "
                       "(the teacher raises it with the environment variable "
                       "CNNVIZ_MAX_WEIGHTS_MB; see docs/teaching.md).")


def test_weights_for_a_network_over_the_cap_build_nothing(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_PARAMS", "1000")
    monkeypatch.setattr(checkpoint, "build", lambda *a, **k: pytest.fail("built the network"))
    assert "over this server's cap of 1,000" in _refused(state_dict_bytes(build(LENET)))


def test_the_networks_own_weights_still_load():
    model = build(LENET)
    loaded = load_weights(LENET, state_dict_bytes(model))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 model.state_dict().values()))


@pytest.mark.parametrize("where", ["Feature maps", "Train"])
def test_the_pages_refuse_hostile_weights_and_keep_going(where, no_shell):
    files = {"code.pt": (torch_zip(CODE), "it asks for posix.system"),
             "half.pt": (state_dict_bytes(build(LENET))[:3000], "damaged or truncated zip"),
             "empty.pt": (b"", "the file is empty")}
    if where == "Train":
        at = open_page("lenet", "pages/train.py", "Train")
        for name, (data, expected) in files.items():
            upload_weights_on_train(at, name, data)
            [message] = errors(at)
            assert f"{name} was not loaded" in message and expected in message
            COUNTS["weights on a page"] += 1
    else:
        at = open_page("lenet", "pages/maps.py", "Feature maps")
        at.radio(key="maps.model").set_value("upload weights (.pt)").run()
        for name, (data, expected) in files.items():
            at.file_uploader(key="maps.weights").set_value(
                (name, data, "application/octet-stream")).run()
            assert not at.exception, [e.message for e in at.exception]
            [message] = errors(at)
            assert f"{name} was not loaded" in message and expected in message
            COUNTS["weights on a page"] += 1
    assert no_shell == []


@pytest.mark.parametrize("where", ["Feature maps", "Train"])
def test_the_pages_refuse_weights_over_the_cap_before_reading_them(where, monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_WEIGHTS_MB", "1")
    monkeypatch.setattr(checkpoint, "_read", lambda *a, **k: pytest.fail("read the file"))
    data = b"PK" + bytes(2 * 2**20)
    if where == "Train":
        at = open_page("lenet", "pages/train.py", "Train")
        upload_weights_on_train(at, "big.pt", data)
    else:
        at = open_page("lenet", "pages/maps.py", "Feature maps")
        at.radio(key="maps.model").set_value("upload weights (.pt)").run()
        at.file_uploader(key="maps.weights").set_value(
            ("big.pt", data, "application/octet-stream")).run()
    assert not at.exception, [e.message for e in at.exception]
    [message] = errors(at)
    assert "big.pt was not loaded" in message and "cap of 1 MB" in message
    assert "CNNVIZ_MAX_WEIGHTS_MB" in message


# -- pictures ------------------------------------------------------------------------------------

def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


GREY = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(30, 40)
COLOUR = np.stack([GREY, GREY[::-1], GREY[:, ::-1]], axis=-1)


def png_declaring(width: int, height: int) -> bytes:
    """A real PNG whose header says width×height (its CRC fixed): a decompression bomb."""
    data = bytearray(png(GREY))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(_encode(Image.fromarray(GREY), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


HOSTILE_PICTURES = {
    "empty": (b"", "is empty"),
    "truncated PNG": (png(COLOUR)[:len(png(COLOUR)) // 2], "truncated or damaged"),
    "truncated JPEG": (_encode(Image.fromarray(COLOUR), "JPEG")[:400], "truncated or damaged"),
    "a PDF renamed .png": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "not an image"),
    "a GIF renamed .png": (_encode(Image.fromarray(GREY), "GIF"), "a GIF image"),
    "PNG bomb 50000×50000": (png_declaring(50_000, 50_000), "50,000×50,000 pixels"),
    "JPEG bomb 60000×60000": (jpeg_declaring(60_000, 60_000), "60,000×60,000 pixels"),
}


@pytest.mark.parametrize("case", list(HOSTILE_PICTURES))
def test_a_hostile_picture_is_refused_with_its_reason(case, monkeypatch):
    data, expected = HOSTILE_PICTURES[case]
    if "bomb" in case:  # refused from the header: PIL never even opens it
        monkeypatch.setattr(images.Image, "open", lambda *a, **k: pytest.fail("opened"))
    with pytest.raises(ImageError) as info:
        read_upload("hostile.png", data)
    message = str(info.value)
    assert expected in message and "\n" not in message, message
    COUNTS["pictures"] += 1


def test_a_picture_over_the_caps_is_refused_naming_the_cap(monkeypatch):
    monkeypatch.setenv("CNNVIZ_MAX_IMAGE_MB", "1")
    monkeypatch.setattr(images.Image, "open", lambda *a, **k: pytest.fail("opened"))
    with pytest.raises(ImageError) as info:
        read_upload("big.png", png(GREY) + bytes(2 * 2**20))
    assert str(info.value) == (
        "big.png: Size of a picture upload is 3 MB, over this server's cap of 1 MB (the teacher "
        "raises it with the environment variable CNNVIZ_MAX_IMAGE_MB; see docs/teaching.md). "
        "Save a smaller copy.")
    monkeypatch.undo()
    monkeypatch.setenv("CNNVIZ_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageError, match="40×30 pixels .* the limit is 0.001 million pixels "
                                         r"\(CNNVIZ_MAX_IMAGE_PIXELS"):
        read_upload("grey.png", png(GREY))
    COUNTS["pictures"] += 2


def _animated_png() -> bytes:
    frames = [Image.fromarray(GREY), Image.fromarray(GREY[::-1].copy())]
    return _encode(frames[0], "PNG", save_all=True, append_images=frames[1:])


def _palette_png() -> bytes:
    image = Image.fromarray(COLOUR).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encode(image, "PNG", transparency=0)


@pytest.mark.parametrize("case, data, channels", [
    ("animated PNG: its first frame", _animated_png(), 1),
    ("palette with transparency", _palette_png(), 3),
    ("16-bit grey", _encode(Image.fromarray(GREY.astype(np.uint16) * 257), "PNG"), 1),
    ("CMYK JPEG", _encode(Image.fromarray(COLOUR).convert("CMYK"), "JPEG"), 3),
])
def test_unusual_but_valid_pictures_work(case, data, channels):
    picture = read_upload("odd.png", data)
    assert picture.pixels.dtype == torch.uint8
    assert tuple(picture.pixels.shape) == (channels, 30, 40), case


def test_feature_maps_refuses_hostile_pictures_and_keeps_the_last_good_one():
    at = open_page("lenet", "pages/maps.py", "Feature maps")
    at.radio(key="maps.source").set_value("Upload").run()
    at.file_uploader(key="maps.upload").set_value(("good.png", png(COLOUR), "image/png")).run()
    assert not errors(at) and "maps.grid" in charts(at)
    for case, (data, expected) in HOSTILE_PICTURES.items():
        at.file_uploader(key="maps.upload").set_value(("bad.png", data, "image/png")).run()
        assert not at.exception, (case, [e.message for e in at.exception])
        [message] = errors(at)
        assert expected in message and message.endswith("still of upload good.png."), case
        assert "maps.grid" in charts(at)
        COUNTS["pictures on the page"] += 1
