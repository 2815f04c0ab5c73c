"""Typed, validated fields for spec dataclasses, and their exact JSON round trip.

A spec class is a frozen dataclass whose fields are declared with :func:`knob`: one
:class:`Knob` per field says its bounds, its label, its widget and its help text. From the type
hints and the knobs, :func:`from_dict` parses JSON-like data and reports *every* problem with
its field path; :func:`to_dict` writes the same data back. The editor reads the same knobs.
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

# An integer knob with no ``max`` of its own (channels, widths) stops here: far above anything
# the book trains, and it keeps every valid spec buildable in a moment within PyTorch's limits.
INT_MAX = 65_536


@dataclasses.dataclass(frozen=True)
class Knob:
    """Everything about one knob, said once: the validators and the editor both read it.

    Hard bounds (``min``, ``max``, ``gt``, ``lt``, ``choices``) are checked on every spec; an
    integer without ``max`` stops at :data:`INT_MAX`. A tuple value describes its numbers through
    ``parts`` (one knob per position of a fixed-length tuple, such as VGG's
    (num_convs, out_channels)) or ``item`` (every item of a variable-length tuple; for a tuple
    of dataclasses only its label is used, the dataclass's own knobs do the rest), and bounds
    its length with ``nonempty`` and ``max_items``.

    The editor shows ``label`` (default: the field's name with spaces) and ``doc`` as the
    widget's help. A number is a slider over the soft range ``slider`` when that is set, else a
    number box up to the soft maximum ``box_max``; soft ranges widen to include the current
    value. ``count`` is the soft range of a variable-length tuple's count slider (default
    1 or 0 to 8).
    """

    doc: str
    label: str = ""
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    nonempty: bool = False
    max_items: int = 32
    item: Knob | None = None
    parts: tuple[Knob, ...] = ()
    slider: tuple[float, float] | None = None
    box_max: int = 4096
    count: tuple[int, int] | None = None

    def upper(self, number: float) -> float | None:
        """The largest value allowed for ``number`` (integers stop at INT_MAX by default)."""
        if self.max is not None:
            return self.max
        return INT_MAX if isinstance(number, int) else None

    def field(self, default: Any = dataclasses.MISSING) -> Any:
        """A dataclass field described by this knob."""
        return dataclasses.field(default=default, metadata={"knob": self})


def knob(default: Any = dataclasses.MISSING, **described: Any) -> Any:
    """A spec field and its :class:`Knob`: ``described`` are Knob's fields (``doc`` is
    required; an unknown name is a TypeError)."""
    return Knob(**described).field(default)


def knob_of(f: dataclasses.Field) -> Knob:
    """The knob of a spec field, its label filled in from the field's name when not given."""
    k = f.metadata["knob"]
    return k if k.label else dataclasses.replace(k, label=f.name.replace("_", " "))


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
                _check(f.metadata["knob"], f.default, f"{prefix}{name}", problems)
            continue
        parsed = _parse(hints[name], value[name], f"{prefix}{name}", problems)
        if parsed is _INVALID:
            continue
        before = len(problems)
        _check(f.metadata["knob"], parsed, f"{prefix}{name}", problems)
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


def _check(k: Knob, value: Any, path: str, problems: list[Problem]) -> None:
    """Every bound of knob ``k`` that ``value`` breaks (nested dataclasses check themselves)."""
    if isinstance(value, tuple):
        if k.nonempty and not value:
            problems.append(Problem(path, "must not be empty"))
        if len(value) > k.max_items:
            problems.append(Problem(path, f"at most {k.max_items} items, got {len(value)}"))
        for i, item in enumerate(value):
            sub = k.parts[i] if k.parts else k.item
            if sub is not None:
                _check(sub, item, f"{path}[{i}]", problems)
        return
    if k.choices and value not in k.choices:
        problems.append(Problem(path, f"must be one of {', '.join(k.choices)}; "
                                      f"got {_show(value)}"))
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if k.min is not None and value < k.min:
        problems.append(Problem(path, f"must be ≥ {k.min}, got {value}"))
    upper = k.upper(value)
    if upper is not None and value > upper:
        problems.append(Problem(path, f"must be ≤ {upper:,}, got {_show(value)}"))
    if k.gt is not None and value <= k.gt:
        problems.append(Problem(path, f"must be > {k.gt}, got {value}"))
    if k.lt is not None and value >= k.lt:
        problems.append(Problem(path, f"must be < {k.lt}, got {value}"))


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
