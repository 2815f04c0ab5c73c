"""The architecture editor: block sliders for every knob of a family, and the custom layer list.

Widgets are generated from the spec dataclasses' fields: each field's :class:`Knob` gives the
label, the widget (slider or number box, and its soft range) and the help text, so every knob
of every family is editable and a new knob needs no new widget code.
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing

import streamlit as st

from cnnviz.specs import custom as L
from cnnviz.specs.custom import LAYER_TYPES
from cnnviz.specs.fields import Knob, knob_of
from cnnviz.ui.state import replace_spec, widget_key
from cnnviz.workbench import features_before

HEADER_FIELDS = ("in_channels", "num_classes", "input_size")  # side by side at the top


def _int(k: Knob, value: int, path: str, label: str | None = None) -> int:
    """A slider over the knob's soft range, or a number box up to its soft maximum."""
    label = label or k.label
    if k.slider:
        lo, hi = (int(b) for b in k.slider)
        return st.slider(label, min(lo, value), max(hi, value), value, key=widget_key(path),
                         help=k.doc)
    low = int(k.min or 0)
    return int(st.number_input(label, min_value=min(low, value),
                               max_value=max(k.box_max, value), value=value, step=1,
                               key=widget_key(path), help=k.doc))


def _value(k: Knob, tp, value, path: str) -> typing.Any:
    """One widget (or group) for a field value; returns the edited value."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):  # int | None: 0 stands for None
        return _int(k, value or 0, path) or None
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path)
    if origin is tuple:
        return _tuple(k, typing.get_args(tp), value, path)
    if tp is bool:
        return st.toggle(k.label, value, key=widget_key(path), help=k.doc)
    if tp is str:
        choices = list(k.choices or [value])
        return st.selectbox(k.label, choices, index=choices.index(value), key=widget_key(path),
                            help=k.doc)
    if tp is float:
        lo, hi = k.slider or (0.0, 1.0)
        return st.slider(k.label, lo, hi, min(max(value, lo), hi), 0.05, key=widget_key(path),
                         help=k.doc)
    return _int(k, value, path)


@functools.cache
def _hints(cls) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)  # slow (it evaluates the annotations): once per class


def _field(cls, name: str, obj, path: str) -> typing.Any:
    """The widget for field ``name`` of ``obj`` (an instance of ``cls``)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return _value(knob_of(f), _hints(cls)[name], getattr(obj, name), path)


def _grid(cls, obj, names: list[str], path: str, per_row: int) -> dict[str, typing.Any]:
    """Widgets for ``names`` in order, ``per_row`` to a row; a pair such as Inception's c2
    takes a row of its own, and the switches (toggles) follow in one row that wraps, so no
    label or number is cut to fit a narrow column."""
    rows: list[list[str]] = []
    current: list[str] = []
    for name in names:
        if _hints(cls)[name] is bool:
            continue
        if _is_tuple(cls, name):
            rows += [current, [name]] if current else [[name]]
            current = []
            continue
        current.append(name)
        if len(current) == per_row:
            rows.append(current)
            current = []
    rows += [current] if current else []
    values = {}
    for row in rows:
        for col, name in zip(st.columns(1 if _is_tuple(cls, row[0]) else per_row), row):
            with col:
                values[name] = _field(cls, name, obj, f"{path}{name}")
    switches = [n for n in names if _hints(cls)[n] is bool]
    if switches:
        row = st.container(horizontal=True, gap="medium")
        for name in switches:
            with row:
                values[name] = _field(cls, name, obj, f"{path}{name}")
    return values


def _is_tuple(cls, name: str) -> bool:
    return typing.get_origin(_hints(cls)[name]) is tuple


def _dataclass(cls, obj, path: str, per_row: int = 3):
    """A part's fields side by side, ``per_row`` to a row so labels stay readable."""
    names = [f.name for f in dataclasses.fields(cls)]
    return cls(**_grid(cls, obj, names, f"{path}.", per_row))


def _tuple(k: Knob, args, value: tuple, path: str) -> tuple:
    if not (len(args) == 2 and args[1] is Ellipsis):  # fixed length: (a, b) or (a, b, c)
        out = []
        for i, (col, part, item) in enumerate(zip(st.columns(len(args)), k.parts, value)):
            with col:
                out.append(_int(part, item, f"{path}[{i}]"))
        return tuple(out)
    lo, hi = k.count or (1 if k.nonempty else 0, 8)
    title = k.label.split(" (")[0]
    st.markdown(f"**{k.label}**")
    count = st.slider(f"number of {title}", lo, max(hi, len(value)), len(value),
                      key=widget_key(f"{path}#count"), help=k.doc)
    # A new stage starts as a copy of the last one, as when the book stacks blocks.
    items = list(value[:count]) + [value[-1] if value else 64] * (count - len(value))
    if args[0] is int:
        out = []
        for i, (col, item) in enumerate(zip(st.columns(max(count, 1)), items)):
            with col:
                out.append(_int(k.item, item, f"{path}[{i}]", f"{k.item.label} {i + 1}"))
        return tuple(out)
    out = []
    for i, item in enumerate(items):
        st.caption(f"{k.item.label} {i + 1}", help=k.item.doc)
        out.append(_value(k.item, args[0], item, f"{path}[{i}]"))
    return tuple(out)


def edit_family_spec(spec):
    """Widgets for every field of a family spec; returns the edited spec."""
    cls = type(spec)
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for col, name in zip(st.columns(3), HEADER_FIELDS):
        with col:
            values[name] = _field(cls, name, spec, name)
    simple = [n for n in names
              if n not in HEADER_FIELDS and typing.get_origin(hints[n]) is not tuple]
    grouped = [n for n in names if n not in HEADER_FIELDS and n not in simple]
    values |= _grid(cls, spec, simple, "", per_row=2)
    for name in grouped:
        with st.container(border=True):
            values[name] = _field(cls, name, spec, name)
    return cls(**values)


# What a newly added layer starts as.
NEW_LAYERS = {
    "conv": L.Conv(16, 3, padding=1), "max_pool": L.MaxPool(2, 2), "avg_pool": L.AvgPool(2, 2),
    "adaptive_avg_pool": L.AdaptiveAvgPool(1), "batchnorm": L.BatchNorm(), "relu": L.ReLU(),
    "sigmoid": L.Sigmoid(), "gelu": L.GELU(), "dropout": L.Dropout(0.5),
    "flatten": L.Flatten(), "linear": L.Linear(64, 10), "vgg_block": L.VGGBlockLayer(2, 64),
    "nin_block": L.NiNBlockLayer(96, 3, 1, 1),
    "inception": L.InceptionLayer(64, (96, 128), (16, 32), 32),
    "residual": L.ResidualLayer(64, True, 1), "dense_block": L.DenseBlockLayer(2, 32),
    "transition": L.TransitionLayer(64),
}
assert set(NEW_LAYERS) == set(LAYER_TYPES)


def _restructure(spec, layers: list) -> None:
    replace_spec(dataclasses.replace(spec, layers=tuple(layers)))
    st.rerun()


def edit_custom_spec(spec, shapes: dict[str, str]):
    """The layer list: edit each layer's fields, move it, remove it, add new ones.

    ``shapes`` maps a layer's index (as a string) to its output shape, shown beside it.
    """
    cls = type(spec)
    values = {}
    for col, name in zip(st.columns(3), HEADER_FIELDS):
        with col:
            values[name] = _field(cls, name, spec, name)
    layers = list(spec.layers)
    for i, layer in enumerate(spec.layers):
        with st.container(border=True):
            label, buttons = st.columns([3, 2], vertical_alignment="center")
            out = shapes.get(str(i))
            label.markdown(f"**{i}** · `{layer.type}`" + (f" → {out}" if out else ""))
            row = buttons.container(horizontal=True, horizontal_alignment="right", gap="small")
            if row.button("", icon=":material/arrow_upward:", key=widget_key(f"layers[{i}]#up"),
                          disabled=i == 0, help="move up", type="tertiary"):
                layers[i - 1], layers[i] = layers[i], layers[i - 1]
                _restructure(spec, layers)
            if row.button("", icon=":material/arrow_downward:",
                          key=widget_key(f"layers[{i}]#down"), disabled=i == len(layers) - 1,
                          help="move down", type="tertiary"):
                layers[i + 1], layers[i] = layers[i], layers[i + 1]
                _restructure(spec, layers)
            if row.button("", icon=":material/delete:", key=widget_key(f"layers[{i}]#remove"),
                          disabled=len(layers) == 1, help="remove this layer", type="tertiary"):
                del layers[i]
                _restructure(spec, layers)
            if dataclasses.fields(layer):
                layers[i] = _dataclass(type(layer), layer, f"layers[{i}]")
            if isinstance(layer, L.Linear):
                fits = features_before(dataclasses.replace(spec, **values), i)
                if fits is not None and fits != layers[i].in_features and st.button(
                        f"Set in_features to {fits} (what reaches it at this input size)",
                        key=widget_key(f"layers[{i}]#fit"),
                        help="the flattened C×H×W map that reaches this Linear at the input "
                             "size; a Linear must take exactly that many features"):
                    layers[i] = dataclasses.replace(layers[i], in_features=fits)
                    _restructure(dataclasses.replace(spec, **values), layers)
    kind, where, add = st.columns([3, 2, 2], vertical_alignment="bottom")
    new_type = kind.selectbox("Add a layer or block", list(NEW_LAYERS), key="custom.add.type",
                              help="the layer or block to insert; it starts with typical "
                                   "values, which you then edit like any other layer")
    position = where.number_input("at position", 0, len(layers), len(layers),
                                  key=widget_key("custom.add.position"),
                                  help="index the new layer takes: 0 puts it first, the "
                                       "largest value last")
    if add.button("Add", key="custom.add.button", type="primary",
                  help="insert the chosen layer or block at that position"):
        layers.insert(int(position), NEW_LAYERS[new_type])
        _restructure(dataclasses.replace(spec, **values), layers)
    return cls(**values, layers=tuple(layers))
