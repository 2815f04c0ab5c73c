"""Typed, validated fields for spec dataclasses, and their exact JSON round trip.

A spec class is a frozen dataclass whose fields are declared with :func:`knob`. From its type
hints and the knob's bounds, :func:`from_dict` parses JSON-like data and reports *every*
problem with its field path; :func:`to_dict` writes the same data back.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any

from cnnviz.errors import Problem, SpecError

_INVALID = object()  # a value that failed to parse; its problem is already recorded

# Upper bounds, by field name, that keep every valid spec buildable in a moment and within
# PyTorch's integer limits: far above anything the book trains. Other integers (channels,
# widths) stop at INT_MAX; per-position limits apply to pairs like VGG's (num_convs, channels).
INT_MAX = 65_536
INT_LIMITS = {"in_channels": 64, "num_classes": 100_000, "input_size": 8192, "kernel": 1024,
              "stride": 1024, "padding": 1024, "dilation": 64, "pool_kernel": 1024,
              "pool_stride": 1024, "adaptive_pool": 256, "output_size": 256,
              "branch3_kernel": 1024, "num_convs": 32, "bottleneck_size": 16,
              "in_features": 100_000_000, "out_features": 1_000_000}
PAIR_LIMITS = {"arch": (32, INT_MAX), "stages": (64, INT_MAX)}
ITEM_LIMITS = {"num_convs_in_dense_blocks": 64}
MAX_ITEMS = {"layers": 200}
DEFAULT_MAX_ITEMS = 32


def knob(default: Any = dataclasses.MISSING, *, min: float | None = None,
         max: float | None = None, gt: float | None = None, lt: float | None = None,
         choices: tuple[str, ...] | None = None, nonempty: bool = False, doc: str = "") -> Any:
    """A spec field. Bounds apply to the value, or to every number inside a tuple."""
    meta = {"min": min, "max": max, "gt": gt, "lt": lt, "choices": choices,
            "nonempty": nonempty, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, "an object")


def _discriminator(cls: type) -> str:
    return "family" if hasattr(cls, "family") else "type"


def _tag(cls: type) -> str:
    return getattr(cls, "family", None) or cls.type


def _parse(tp: Any, value: Any, path: str, problems: list[Problem]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
        if type(None) in members and value is None:
            return None
        rest = [m for m in members if m is not type(None)]
        if len(rest) == 1:
            return _parse(rest[0], value, path, problems)
        return _parse_tagged(rest, value, path, problems)
    if origin is tuple:
        return _parse_tuple(typing.get_args(tp), value, path, problems)
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, path, problems)
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(float(value))
        except OverflowError:
            ok = False
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - a spec class declared a type this module does not know
        raise TypeError(f"unsupported spec field type {tp!r}")
    if not ok:
        problems.append(Problem(path, f"must be {_type_name(tp)}, got {_show(value)}"))
        return _INVALID
    return value


def _show(value: Any) -> str:
    """A value as JSON spells it (null, true), shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_tuple(args: tuple, value: Any, path: str, problems: list[Problem]) -> Any:
    if not isinstance(value, (list, tuple)):
        problems.append(Problem(path, f"must be a list, got {_show(value)}"))
        return _INVALID
    if len(args) == 2 and args[1] is Ellipsis:
        item_types = [args[0]] * len(value)
    else:
        item_types = list(args)
        if len(value) != len(item_types):
            problems.append(Problem(path, f"must be a list of {len(item_types)} items, "
                                          f"got {len(value)}"))
            return _INVALID
    items = [_parse(t, v, f"{path}[{i}]", problems)
             for i, (t, v) in enumerate(zip(item_types, value))]
    return _INVALID if any(i is _INVALID for i in items) else tuple(items)


def _parse_tagged(classes: list, value: Any, path: str, problems: list[Problem]) -> Any:
    by_tag = {_tag(c): c for c in classes}
    key = _discriminator(classes[0])
    if not isinstance(value, dict):
        problems.append(Problem(path, f"must be an object, got {_show(value)}"))
        return _INVALID
    tag = value.get(key)
    if not isinstance(tag, str) or tag not in by_tag:
        known = ", ".join(sorted(by_tag))
        got = f"got {_show(tag)}" if key in value else "it is missing"
        problems.append(Problem(f"{path}.{key}" if path else key,
                                f"must be one of {known}; {got}"))
        return _INVALID
    return _parse_dataclass(by_tag[tag], value, path, problems)


def _parse_dataclass(cls: type, value: Any, path: str, problems: list[Problem]) -> Any:
    if not isinstance(value, dict):
        problems.append(Problem(path, f"must be an object, got {_show(value)}"))
        return _INVALID
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    tag_key = _discriminator(cls) if hasattr(cls, "family") or hasattr(cls, "type") else None
    for key in value:
        if key not in fields and key != tag_key:
            known = ", ".join(fields)
            problems.append(Problem(f"{prefix}{key}", f"unknown key (known keys: {known})"))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in value:
            if f.default is dataclasses.MISSING:
                problems.append(Problem(f"{prefix}{name}", "required"))
            else:  # a default can still break a bound (an empty layer list)
                _check_bounds(f, f.default, f"{prefix}{name}", problems)
            continue
        parsed = _parse(hints[name], value[name], f"{prefix}{name}", problems)
        if parsed is _INVALID:
            continue
        before = len(problems)
        _check_bounds(f, parsed, f"{prefix}{name}", problems)
        if len(problems) == before:
            kwargs[name] = parsed
    if len(kwargs) != sum(1 for n in fields if n in value):
        return _INVALID
    if any(n not in value and f.default is dataclasses.MISSING for n, f in fields.items()):
        return _INVALID
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        problems.extend(Problem(f"{prefix}{p.path}" if p.path else path, p.message)
                        for p in check())
    return obj


def _numbers(value: Any, path: str):
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


def _upper(name: str, where: str, path: str) -> int:
    """The largest integer allowed at ``where`` (a position inside field ``name``)."""
    if name in PAIR_LIMITS and where.endswith("]"):
        return PAIR_LIMITS[name][int(where[where.rindex("[") + 1:-1])]
    return INT_LIMITS.get(name) or ITEM_LIMITS.get(name) or INT_MAX


def _check_bounds(f: dataclasses.Field, value: Any, path: str, problems: list[Problem]) -> None:
    meta = f.metadata
    if not meta:
        return
    if meta["nonempty"] and isinstance(value, tuple) and not value:
        problems.append(Problem(path, "must not be empty"))
    most = MAX_ITEMS.get(f.name, DEFAULT_MAX_ITEMS)
    if isinstance(value, tuple) and len(value) > most:
        problems.append(Problem(path, f"at most {most} items, got {len(value)}"))
    if meta["choices"] and value not in meta["choices"]:
        problems.append(Problem(path, f"must be one of {', '.join(meta['choices'])}; "
                                      f"got {_show(value)}"))
    for where, number in _numbers(value, path):
        if meta["min"] is not None and number < meta["min"]:
            problems.append(Problem(where, f"must be ≥ {meta['min']}, got {number}"))
        upper = meta["max"] if meta["max"] is not None else (
            _upper(f.name, where, path) if isinstance(number, int) else None)
        if upper is not None and number > upper:
            problems.append(Problem(where, f"must be ≤ {upper:,}, got {_show(number)}"))
        if meta["gt"] is not None and number <= meta["gt"]:
            problems.append(Problem(where, f"must be > {meta['gt']}, got {number}"))
        if meta["lt"] is not None and number >= meta["lt"]:
            problems.append(Problem(where, f"must be < {meta['lt']}, got {number}"))


def field_problems(obj: Any, path: str = "") -> list[Problem]:
    """Every problem of an already-built spec object (bounds and cross-field checks)."""
    problems: list[Problem] = []
    _parse_dataclass(type(obj), to_dict(obj), path, problems)
    return problems


def from_dict(cls_or_union: Any, data: Any) -> Any:
    """Parse ``data`` into a spec; raise :class:`SpecError` listing every problem."""
    problems: list[Problem] = []
    obj = _parse(cls_or_union, data, "", problems)
    if problems or obj is _INVALID:
        raise SpecError(problems or [Problem("", "invalid spec")])
    return obj


def to_dict(obj: Any) -> Any:
    """The JSON-ready form of a spec: the tag first, then every field in declaration order."""
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        if hasattr(obj, "family") or hasattr(obj, "type"):
            out[_discriminator(type(obj))] = _tag(type(obj))
        for f in dataclasses.fields(obj):
            out[f.name] = to_dict(getattr(obj, f.name))
        return out
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj
