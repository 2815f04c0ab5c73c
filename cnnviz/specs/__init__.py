"""Architecture specs: plain, frozen, JSON-serialisable descriptions of a network."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Union

from cnnviz import limits
from cnnviz.errors import Problem, SpecError
from cnnviz.specs.custom import LAYER_TYPES, CustomSpec, Layer
from cnnviz.specs.families import (AlexNetSpec, ConvLayer, DenseNetSpec, GoogLeNetSpec,
                                   InceptionCfg, LeNetSpec, NiNBlockCfg, NiNSpec, PlainCNNSpec,
                                   ResNetSpec, VGGSpec)
from cnnviz.specs.fields import field_problems, from_dict, to_dict

Spec = Union[LeNetSpec, AlexNetSpec, VGGSpec, NiNSpec, GoogLeNetSpec, ResNetSpec, DenseNetSpec,
             CustomSpec]
SPEC_CLASSES: dict[str, type] = {cls.family: cls for cls in Spec.__args__}
FAMILIES: tuple[str, ...] = tuple(SPEC_CLASSES)

KB = 1024  # as Streamlit's uploader counts its megabytes: 2**20 bytes


def max_spec_bytes() -> int:
    """The largest spec JSON accepted (the teacher's cap ``spec_kb``): a larger one is no
    hand-written architecture, and it is refused before a byte of it is parsed."""
    return limits.limit("spec_kb") * KB


def check_spec_size(size: int, unit: str = "bytes") -> None:
    """A :class:`SpecError` naming the cap when a spec of ``size`` bytes is over it (called
    with an upload's size before its bytes are read)."""
    if size > max_spec_bytes():
        raise SpecError([Problem("", f"the spec is {size:,} {unit}: "
                                     f"{limits.over('spec_kb', math.ceil(size / KB))}")])


def spec_from_dict(data: Any) -> Spec:
    """Parse a spec from its JSON form; :class:`SpecError` lists every problem."""
    return from_dict(Spec, data)


def spec_to_dict(spec: Spec) -> dict:
    return to_dict(spec)


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return data


def spec_from_json(text: str | bytes) -> Spec:
    """A spec from its JSON text; :class:`SpecError` says what is wrong, never anything else
    (too large, empty, not UTF-8, not JSON, nested too deeply, numbers too long, every field's
    problem with its path)."""
    # bytes, or characters (each at least one byte) of a str
    check_spec_size(len(text), "characters" if isinstance(text, str) else "bytes")
    if not (text.strip() if isinstance(text, str) else text.strip(b" \t\r\n")):
        raise SpecError([Problem("", "not valid JSON at line 1 column 1: Expecting value "
                                     "(the text is empty)")])
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else ""
        reason = exc.msg if hasattr(exc, "msg") else "not UTF-8 text"
        raise SpecError([Problem("", f"not valid JSON{where}: {reason}")]) from None
    except _DuplicateKey as exc:
        raise SpecError([Problem("", f"duplicate key {exc.args[0]!r} in the JSON")]) from None
    except RecursionError:
        raise SpecError([Problem("", "JSON nested too deeply")]) from None
    except ValueError:  # Python refuses integers of thousands of digits
        raise SpecError([Problem("", "not valid JSON: a number is far too long")]) from None
    return spec_from_dict(data)


def spec_to_json(spec: Spec) -> str:
    return json.dumps(spec_to_dict(spec), indent=2) + "\n"


def load_spec_file(path: str | Path) -> Spec:
    path = Path(path)
    try:
        with path.open("rb") as file:  # never read more than a config can be
            text = file.read(max_spec_bytes() + 1)
    except IsADirectoryError:
        raise SpecError([Problem("", f"{path} is a folder, not a config file")]) from None
    except OSError as exc:
        raise SpecError([Problem("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    return spec_from_json(text)


def validate(spec: Spec) -> list[Problem]:
    """Every field problem of a spec built in code (JSON input is checked while parsing)."""
    return field_problems(spec)


__all__ = [
    "AlexNetSpec", "ConvLayer", "CustomSpec", "DenseNetSpec", "FAMILIES", "GoogLeNetSpec",
    "InceptionCfg", "KB", "LAYER_TYPES", "Layer", "LeNetSpec", "NiNBlockCfg", "NiNSpec",
    "PlainCNNSpec", "ResNetSpec", "SPEC_CLASSES", "Spec", "VGGSpec", "check_spec_size",
    "load_spec_file", "max_spec_bytes", "spec_from_dict", "spec_from_json", "spec_to_dict", "spec_to_json", "validate",
]
