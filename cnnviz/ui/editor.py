"""The architecture editor: block sliders for every knob of a family, and the custom layer list.

Widgets are generated from the spec dataclasses' fields (types and bounds), so every knob of
every family is editable and a new knob needs no new widget code.
"""
from __future__ import annotations

import dataclasses
import types
import typing

import streamlit as st

from cnnviz.specs import custom as L
from cnnviz.specs.custom import LAYER_TYPES
from cnnviz.ui.state import replace_spec, widget_key
from cnnviz.workbench import features_before

# (low, high) for sliders; other integers get a number box (channels, widths, sizes).
SLIDERS = {"num_residuals": (1, 8), "kernel": (1, 15), "stride": (1, 8), "padding": (0, 10), "dilation": (1, 4),
           "pool_kernel": (1, 7), "pool_stride": (1, 7), "adaptive_pool": (0, 14),
           "branch3_kernel": (1, 9), "num_convs": (1, 8), "bottleneck_size": (0, 8),
           "in_channels": (1, 4), "output_size": (1, 14), "strides": (1, 4)}
NUMBER_MAX = {"input_size": 1024}
COUNTS = {"convs": (1, 8), "dense": (0, 4), "arch": (1, 8), "blocks": (1, 6), "b3": (1, 6),
          "b4": (1, 8), "b5": (1, 6), "stages": (1, 6), "num_convs_in_dense_blocks": (1, 6)}
LABELS = {"arch": "VGG blocks (num_convs, out_channels)", "dense": "dense layer widths",
          "convs": "convolutions", "blocks": "NiN blocks",
          "stages": "stages (num_residuals, num_channels)",
          "num_convs_in_dense_blocks": "dense blocks (convs in each)",
          "b3": "b3 Inception blocks", "b4": "b4 Inception blocks", "b5": "b5 Inception blocks",
          "stem_channels": "stem channels", "c2": "c2 (1×1, 3×3)", "c3": "c3 (1×1, 5×5)",
          "num_classes": "classes", "input_size": "input size"}
# Names for the parts of fixed-length tuples (a VGG block's pair, an Inception path's pair).
PART_NAMES = {"arch": ("num_convs", "out_channels"), "stages": ("num_residuals", "num_channels"),
              "c2": ("c2 1×1", "c2 3×3"), "c3": ("c3 1×1", "c3 k×k"),
              "stem_channels": ("b1 conv", "b2 1×1", "b2 3×3")}
ITEM_NAMES = {"num_convs_in_dense_blocks": "num_convs", "dense": "width"}
HEADER_FIELDS = ("in_channels", "num_classes", "input_size")


def _label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " "))


def _int(name: str, label: str, value: int, path: str, low: int = 0,
         help: str | None = None) -> int:
    if name in SLIDERS:
        lo, hi = SLIDERS[name]
        lo, hi = min(lo, value), max(hi, value)
        return st.slider(label, lo, hi, value, key=widget_key(path), help=help)
    hi = max(NUMBER_MAX.get(name, 4096), value)
    return int(st.number_input(label, min_value=min(low, value), max_value=hi, value=value,
                               step=1, key=widget_key(path), help=help))


def _singular(title: str) -> str:
    """ "VGG blocks" → "VGG block": the caption of one item of a list."""
    return title[:-1] if title.endswith("s") else title


def _value(name: str, tp, value, path: str, meta) -> typing.Any:
    """One widget (or group) for a field value; returns the edited value."""
    label = _label(name)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # int | None: 0 stands for None ("same as kernel")
        chosen = _int(name, label, value or 0, path, help="0: the same as the kernel size")
        return chosen or None
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path)
    if origin is tuple:
        return _tuple(name, typing.get_args(tp), value, path, meta)
    if tp is bool:
        return st.toggle(label, value, key=widget_key(path))
    if tp is str:
        choices = list(meta.get("choices") or [value])
        return st.selectbox(label, choices, index=choices.index(value), key=widget_key(path))
    if tp is float:
        lo = 0.05 if meta.get("gt") == 0.0 else 0.0
        hi = 0.95 if meta.get("lt") == 1.0 else 1.0
        return st.slider(label, lo, hi, min(max(value, lo), hi), 0.05, key=widget_key(path))
    return _int(name, label, value, path, int(meta.get("min") or 0))


def _dataclass(cls, obj, path: str, per_row: int = 3):
    """A part's fields side by side, ``per_row`` to a row so labels stay readable."""
    fields = dataclasses.fields(cls)
    hints = typing.get_type_hints(cls)
    values = {}
    for start in range(0, len(fields), per_row):
        row = fields[start:start + per_row]
        for col, f in zip(st.columns(per_row), row):
            with col:
                values[f.name] = _value(f.name, hints[f.name], getattr(obj, f.name),
                                        f"{path}.{f.name}", f.metadata)
    return cls(**values)


def _tuple(name: str, args, value: tuple, path: str, meta) -> tuple:
    if not (len(args) == 2 and args[1] is Ellipsis):  # fixed length: (a, b) or (a, b, c)
        names = PART_NAMES.get(name) or [f"{_label(name)} {i + 1}" for i in range(len(args))]
        out = []
        for i, (col, item) in enumerate(zip(st.columns(len(args)), value)):
            with col:
                out.append(_int(names[i], _label(names[i]), item, f"{path}[{i}]", 1))
        return tuple(out)
    lo, hi = COUNTS.get(name, (1 if meta.get("nonempty") else 0, 8))
    title = _label(name).split(" (")[0]
    st.markdown(f"**{_label(name)}**")
    count = st.slider(f"number of {title}", lo, max(hi, len(value)), len(value),
                      key=widget_key(f"{path}#count"))
    # A new stage starts as a copy of the last one, as when the book stacks blocks.
    items = list(value[:count]) + [value[-1] if value else 64] * (count - len(value))
    if args[0] is int:
        item_name = ITEM_NAMES.get(name, name)
        out = []
        for i, (col, item) in enumerate(zip(st.columns(max(count, 1)), items)):
            with col:
                out.append(_int(item_name, f"{_singular(title)} {i + 1}", item,
                                f"{path}[{i}]", 1))
        return tuple(out)
    out = []
    for i, item in enumerate(items):
        st.caption(f"{_singular(title)} {i + 1}")
        out.append(_value(name, args[0], item, f"{path}[{i}]", meta))
    return tuple(out)


def edit_family_spec(spec):
    """Widgets for every field of a family spec; returns the edited spec."""
    cls = type(spec)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    cols = st.columns(3)
    for col, name in zip(cols, HEADER_FIELDS):
        with col:
            values[name] = _value(name, hints[name], getattr(spec, name), name,
                                  fields[name].metadata)
    simple = [n for n in fields if n not in HEADER_FIELDS and typing.get_origin(hints[n]) is not tuple]
    grouped = [n for n in fields if n not in HEADER_FIELDS and n not in simple]
    cols = st.columns(2)
    for i, name in enumerate(simple):
        with cols[i % 2]:
            values[name] = _value(name, hints[name], getattr(spec, name), name,
                                  fields[name].metadata)
    for name in grouped:
        with st.container(border=True):
            values[name] = _value(name, hints[name], getattr(spec, name), name,
                                  fields[name].metadata)
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
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for col, name in zip(st.columns(3), HEADER_FIELDS):
        with col:
            values[name] = _value(name, hints[name], getattr(spec, name), name,
                                  fields[name].metadata)
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
                        key=widget_key(f"layers[{i}]#fit")):
                    layers[i] = dataclasses.replace(layers[i], in_features=fits)
                    _restructure(dataclasses.replace(spec, **values), layers)
    kind, where, add = st.columns([3, 2, 2], vertical_alignment="bottom")
    new_type = kind.selectbox("Add a layer or block", list(NEW_LAYERS), key="custom.add.type")
    position = where.number_input("at position", 0, len(layers), len(layers),
                                  key=widget_key("custom.add.position"))
    if add.button("Add", key="custom.add.button", type="primary"):
        layers.insert(int(position), NEW_LAYERS[new_type])
        _restructure(dataclasses.replace(spec, **values), layers)
    return cls(**values, layers=tuple(layers))
