"""The Feature maps page: the current network, freshly initialised or trained, on one picture —
every layer's channels, the insides of residual, dense and Inception blocks, receptive fields
and Grad-CAM.

The network runs once per (model, picture): :func:`_captured` keeps every layer's output in
Streamlit's resource cache, so picking another layer, channel, scope or page only draws.
Everything shown is computed in :mod:`cnnviz.activations` and drawn by
:mod:`cnnviz.figures_maps`.
"""
from __future__ import annotations

import streamlit as st
import torch

from cnnviz.activations import gradcam, receptive_field
from cnnviz.activations.capture import (Capture, Layer, block_of, blocks, capture, dense_parts,
                                        first_conv, inception_parts, layers,
                                        residual_parts)
from cnnviz.activations.images import (ImageError, Picture, as_display, check_network_input,
                                       check_upload_size, dataset_images, read_upload,
                                       sample_photos, to_network)
from cnnviz import figures_maps as fm
from cnnviz.errors import CnnvizError
from cnnviz.limits import limit
from cnnviz.ui.model_choice import choose_model
from cnnviz.ui.results import cannot_show
from cnnviz.ui.state import current_spec, network_name
from cnnviz.workbench import analyse

KEY = "maps."
GO_TO_MAPS = "cnnviz.maps.go"  # another page asked to open Feature maps at a layer
PAGE_SIZE = fm.MAX_GRID
SCOPES = ("per map", "per layer", "global")
ORDERS = ("by index", "strongest first")
SOURCES = ("Digits test image", "Photo", "Upload")
PICTURE_HEIGHT = 300


def show_maps_page() -> None:
    spec = current_spec()
    st.title("Feature maps")
    st.caption(f"What every layer of **{network_name(spec)}** computes on one picture: pick "
               "the model and the picture, then a layer and its channels.")
    if cannot_show(analyse(spec), builds_weights=True):
        return
    try:
        check_network_input(spec.in_channels, spec.input_size)
    except ImageError as exc:
        st.error(f"{exc} Change `in_channels` in **Build** to see its maps.")
        return
    left, right = st.columns(2)
    with left:
        model, model_key, model_text, classes = choose_model(spec, KEY)
    with right:
        picture = _picture()
    if model is None or picture is None:
        return
    x, steps = to_network(picture, spec.in_channels, spec.input_size)
    cap = _captured(model_key, picture.fingerprint, _model_arg=model, _x=x)
    _show_input(picture, x, steps, cap, classes, model_text)
    table = _layers(repr(spec), spec)
    layer = _pick_layer(table, model)
    channels, inside, field, why = st.tabs(
        ["Channels", "Inside the blocks", "Receptive field", "Why this class"])
    with channels:
        _show_channels(cap, layer, model)
    with inside:
        _show_inside(model, cap, layer)
    with field:
        _show_receptive_field(spec, model, model_key, cap, layer, x)
    with why:
        _show_grad_cam(model, model_key, picture, x, cap, classes or picture.classes,
                       model_text)


# -- the picture --------------------------------------------------------------------------------

def _picture() -> Picture | None:
    """The picture picked; while an upload is missing or refused, the last good one (a bad
    file costs the learner nothing that was on the page)."""
    st.subheader("Picture", anchor=False)
    source = st.radio("Source", SOURCES, key=KEY + "source", horizontal=True,
                      label_visibility="collapsed")
    last = st.session_state.get(KEY + "last_picture")
    still = f" The maps below are still of {last.source}." if last is not None else ""
    try:
        if source == "Digits test image":
            picture = _digit()
        elif source == "Photo":
            photos = sample_photos()
            name = st.selectbox("Photo (bundled with scikit-learn)", list(photos),
                                key=KEY + "photo")
            picture = photos[name]
        else:
            most = limit("image_mb")
            upload = st.file_uploader(f"A PNG or JPEG image (at most {most} MB)",
                                      type=["png", "jpg", "jpeg"], key=KEY + "upload",
                                      max_upload_size=most)
            if upload is None:
                st.info("Upload a picture, or pick a digit or a photo above." + still)
                return last
            check_upload_size(upload.name, upload.size)  # before its bytes are copied
            picture = read_upload(upload.name, upload.getvalue())
    except CnnvizError as exc:
        st.error(str(exc) + still)
        return last
    st.session_state[KEY + "last_picture"] = picture
    return picture


def _digit() -> Picture:
    images = dataset_images("digits")
    a, b = st.columns(2)
    label = a.selectbox("Class", ["any", *images.classes], key=KEY + "digit.class")
    pool = list(range(images.count)) if label == "any" else \
        images.indices_of_class(images.classes.index(label))
    which = b.number_input(f"Image (1 to {len(pool)})", 1, len(pool), 1,
                           key=KEY + f"digit.{label}")
    return images.picture(pool[int(which) - 1])


# -- the forward pass ---------------------------------------------------------------------------

@st.cache_resource(max_entries=6, show_spinner="Running the network on the picture…")
def _captured(model_key: str, picture_key: str, _model_arg, _x) -> Capture:
    return capture(_model_arg, _x)


@st.cache_data(max_entries=32, show_spinner=False)
def _layers(spec_key: str, _spec) -> list[Layer]:
    return layers(_spec)


def _show_input(picture: Picture, x, steps: list[str], cap: Capture, classes,
                model_text: str) -> None:
    a, b, c = st.columns(3)
    with a:
        st.plotly_chart(fm.picture_figure(_display(picture.pixels), picture.source,
                                          height=PICTURE_HEIGHT), key=KEY + "picture")
    with b:
        shape = "×".join(str(n) for n in x.shape[1:])
        st.plotly_chart(fm.picture_figure(as_display(x), f"as the network receives it: {shape}",
                                          height=PICTURE_HEIGHT), key=KEY + "input")
        st.markdown("\n".join(f"- {s}" for s in steps))
    with c:
        if not _scores(cap):
            return
        top = cap.top(classes or picture.classes)
        st.plotly_chart(fm.prediction_figure(top), key=KEY + "prediction")
        said = f"; the picture's label is **{picture.label_name}**" \
            if picture.label is not None else ""
        st.caption(f"The top 5 of the {model_text} network{said}.")


def _scores(cap: Capture) -> bool:
    """Whether the network ends in class scores; if not, says so (a custom chain without a
    head ends in a feature map: nothing to predict, no class to explain)."""
    if cap.logits.dim() == 1:
        return True
    st.info(f"This network ends in a {'×'.join(map(str, cap.logits.shape))} feature map, not "
            "class scores, so it predicts no class: add a head in **Build** (adaptive average "
            "pooling, flatten, linear) to see its prediction and Grad-CAM.")
    return False


def _display(pixels: torch.Tensor):
    array = pixels.permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


# -- one layer ----------------------------------------------------------------------------------

def layer_option(layer: Layer) -> str:
    """How the layer picker names a layer: its block, then its table label."""
    return f"{layer.block} › {layer.label}"


def open_maps_at(spec, key: str) -> None:
    """Ask for Feature maps at layer ``key`` (a callback: the layer picker opens on it, and
    the page that asked switches to Feature maps on its next run)."""
    layer = next((layer for layer in _layers(repr(spec), spec) if layer.key == key), None)
    if layer is not None:
        st.session_state[KEY + "layer"] = layer_option(layer)
    st.session_state[GO_TO_MAPS] = True


def go_to_maps_if_asked() -> None:
    if st.session_state.pop(GO_TO_MAPS, False):
        st.switch_page("pages/maps.py")


def _pick_layer(table: list[Layer], model) -> Layer:
    by_label = {layer_option(layer): layer for layer in table}
    labels = list(by_label)
    first = first_conv(model)
    default = next((i for i, layer in enumerate(table) if first and layer.key == first[0]), 0)
    key = KEY + "layer"
    if st.session_state.get(key) not in by_label:
        st.session_state[key] = labels[default]
    chosen = st.selectbox("Layer (as in the layer table, grouped by block)", labels, key=key,
                          help="every leaf layer and every block around them; a block's "
                               "output is its last layer's")
    return by_label[chosen]


def _show_channels(cap: Capture, layer: Layer, model) -> None:
    act = cap.outputs[layer.key]
    if not layer.spatial:
        st.plotly_chart(fm.vector_figure(act, f"{layer.key}: {act.numel():,} features"),
                        key=KEY + "vector")
        st.caption("A vector, not maps: after Flatten or a Linear layer there is no image left.")
        return
    count = act.shape[0]
    a, b, c = st.columns(3)
    scope = a.radio("Colour scale", SCOPES, key=KEY + "scope", horizontal=True,
                    help="per map: each map from its own min to max; per layer: one scale for "
                         "every channel of this layer; global: one scale for every layer")
    order = b.radio("Order", ORDERS, key=KEY + "order", horizontal=True,
                    help="strongest first: the channels with the largest mean activation")
    ranked = list(range(count)) if order == ORDERS[0] else \
        act.mean(dim=(1, 2)).argsort(descending=True).tolist()
    pages = -(-count // PAGE_SIZE)
    page = 1
    if pages > 1:
        page = c.number_input(f"Page (of {pages}, {PAGE_SIZE} channels each)", 1, pages, 1,
                              key=KEY + f"page.{layer.key}")
    shown = ranked[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    scale = _global_range(cap) if scope == "global" else None
    st.plotly_chart(fm.channel_grid(act, shown, scope, title=f"{layer.key}: {count} channels of "
                                    f"{act.shape[1]}×{act.shape[2]}", global_range=scale),
                    key=KEY + "grid")
    channel = st.selectbox("Channel to see large", shown, key=KEY + f"channel.{layer.key}",
                           format_func=lambda i: f"c{i} (mean {float(act[int(i)].mean()):.3g}, "
                                                 f"max {float(act[int(i)].max()):.3g})")
    st.plotly_chart(fm.channel_large(act[channel], f"{layer.key}, channel {channel}"),
                    key=KEY + "large")
    first = first_conv(model)
    if first and layer.key == first[0]:
        st.markdown("**Its kernels**: what each channel above looks for in the picture.")
        st.plotly_chart(fm.kernels_figure(first[1].weight.detach()), key=KEY + "kernels")


def _global_range(cap: Capture) -> tuple[float, float]:
    spatial = [t for t in cap.outputs.values() if t.dim() == 3]
    return (min(float(t.min()) for t in spatial), max(float(t.max()) for t in spatial))


# -- inside the blocks --------------------------------------------------------------------------

BOOK_WORDS = {
    "residual": "A residual block learns only what to **add** to its input: the output is "
                "ReLU(x + F(x)). Where the shapes differ, a 1×1 convolution projects x first. "
                "Channels stay as they are: addition needs equal shapes.",
    "dense": "A dense block **concatenates**: each conv block's output (growth rate channels) "
             "is stacked onto everything before it, so the channels grow and nothing is added "
             "up — unlike ResNet's addition. A transition then halves channels and size.",
    "inception": "An Inception block runs four paths on the same input and **concatenates** "
                 "their outputs along the channels: c1 + c2[1] + c3[1] + c4 channels.",
}


def _show_inside(model, cap: Capture, layer: Layer) -> None:
    found = {kind: paths for kind, paths in blocks(model).items() if paths}
    if not found:
        st.info("This network has no residual, dense or Inception blocks: every layer feeds "
                "the next. ResNet, DenseNet and GoogLeNet have them.")
        return
    options = [(kind, path) for kind, paths in found.items() for path in paths]
    around = [(kind, block_of(layer.key, paths)) for kind, paths in found.items()]
    around = [o for o in around if o[1]]
    key = KEY + "block"
    labels = [f"{path} ({kind})" for kind, path in options]
    follows = st.session_state.get(KEY + "block.for") != layer.key and around
    if st.session_state.get(key) not in labels or follows:  # the block around a new layer
        st.session_state[key] = labels[options.index(around[0])] if around else labels[0]
    st.session_state[KEY + "block.for"] = layer.key
    kind, path = options[labels.index(st.selectbox("Block", labels, key=key))]
    st.markdown(BOOK_WORDS[kind])
    if kind == "residual":
        parts = residual_parts(model, cap, path)
        channel = st.number_input("Channel", 0, parts.fx.shape[0] - 1, 0, key=KEY + "res.ch")
        st.plotly_chart(fm.residual_figure(
            parts.x[channel] if not parts.projected else parts.shortcut[channel],
            parts.fx[channel], parts.sum[channel], parts.out[channel], parts.norms(channel),
            projection2d=parts.shortcut[channel] if parts.projected else None),
            key=KEY + "residual")
        if parts.projected:
            st.caption(f"x has {parts.x.shape[0]} channels of {parts.x.shape[1]}×"
                       f"{parts.x.shape[2]}; its 1×1 projection gives F(x)'s "
                       f"{parts.fx.shape[0]} of {parts.fx.shape[1]}×{parts.fx.shape[2]}.")
    elif kind == "dense":
        parts = dense_parts(model, cap, path)
        means = parts.out.mean(dim=(1, 2)).tolist()
        st.plotly_chart(fm.dense_figure(means, parts.producers, transition=parts.transition),
                        key=KEY + "dense")
    else:
        st.plotly_chart(fm.inception_figure(inception_parts(model, cap, path)),
                        key=KEY + "inception")


# -- receptive field ----------------------------------------------------------------------------

@st.cache_data(max_entries=16, show_spinner=False)
def _fields(model_key: str, size: int, _model):
    return receptive_field.fields(_model, size)


def _show_receptive_field(spec, model, model_key: str, cap: Capture, layer: Layer, x) -> None:
    if not layer.spatial:
        st.info("Pick a layer with maps: after Flatten every feature sees the whole picture.")
        return
    _, height, width = layer.shape
    a, b = st.columns(2)
    row = _position(a, "Row of the output position", height, KEY + f"rf.row.{layer.key}")
    col = _position(b, "Column", width, KEY + f"rf.col.{layer.key}")
    try:
        fields = _fields(f"{model_key}|{spec.input_size}", spec.input_size, model)
        field = fields.get(layer.key)
        if field is not None:
            top, lft, bottom, rgt = receptive_field.region(field, row, col, spec.input_size)
    # The arithmetic's own refusals (a layer it has no rule for, branches whose positions do
    # not line up): the rest of the page stands, this tab says it has no answer.
    except (CnnvizError, ValueError, ArithmeticError) as exc:
        st.info(f"No receptive field is worked out for {layer.key} ({exc}).")
        return
    if field is None:
        st.info(f"No receptive field is worked out for {layer.key}.")
        return
    bottom, rgt = bottom - 1, rgt - 1  # the region's ends are exclusive; the text's inclusive
    left, right = st.columns(2)
    with left:
        st.plotly_chart(fm.picture_figure(as_display(x), f"what {layer.key}[{row}, {col}] can "
                                          "see", box=(top, lft, bottom, rgt)),
                        key=KEY + "rf.picture")
    with right:
        st.markdown(f"**Receptive field** of one position of `{layer.key}`: "
                    f"{field.size}×{field.size} input pixels, jump {field.jump} "
                    f"(neighbouring positions are {field.jump} pixels apart), centre of "
                    f"position 0 at {field.start:g}. Position ({row}, {col}) sees rows "
                    f"{top}–{bottom} and columns {lft}–{rgt} (clipped to the picture).")
        st.code("\n".join(receptive_field.arithmetic(model, layer.key, spec.input_size)),
                language=None, wrap_lines=True)
        st.caption("r_out = r_in + (k − 1)·j_in and j_out = j_in·s, layer by layer from the "
                   "input (r = 1, j = 1); padding moves the start, not the size.")


def _position(where, label: str, n: int, key: str) -> int:
    """A row or column of an n-long map: a slider, or 0 when the map is one position long (a
    slider needs two ends)."""
    if n == 1:
        where.caption(f"{label}: 0 (the map is one position long)")
        return 0
    return where.slider(label, 0, n - 1, n // 2, key=key)


# -- Grad-CAM -----------------------------------------------------------------------------------

def _show_grad_cam(model, model_key: str, picture: Picture, x, cap: Capture, classes,
                   model_text: str) -> None:
    if not _scores(cap):
        return
    if model_text == "freshly initialised":
        st.warning("Grad-CAM shows which parts of the picture a **trained** network's decision "
                   "rests on; this network is untrained, so its map shows noise. Train it on "
                   "**Train** and pick the run as the model.")
    names = classes if classes and len(classes) == cap.logits.numel() else None
    predicted = int(cap.logits.argmax())
    labels = list(names) if names else [f"class {i}" for i in range(cap.logits.numel())]
    # Plain labels as the options, one widget per naming: a label that changed with the
    # picture (a "predicted" mark, digit names against "class i") came back as a stale string.
    key = KEY + ("cam.class.named" if names else "cam.class.plain")
    if st.session_state.get(KEY + "cam.for") != (model_key, picture.fingerprint):
        st.session_state[KEY + "cam.for"] = (model_key, picture.fingerprint)
        st.session_state[key] = labels[predicted]  # a new picture or model: its prediction
    chosen = st.selectbox("Class to explain", labels, key=key,
                          help=f"the network predicts {labels[predicted]}")
    target = labels.index(chosen)
    label = labels.__getitem__
    try:
        cam, where = _cam(model_key, picture.fingerprint, target, _model=model, _x=x)
    except CnnvizError as exc:  # no convolutional map to explain (a chain of linears)
        st.info(f"No Grad-CAM for this network: {exc}.")
        return
    if float(cam.max()) == 0:
        st.info(f"The map is zero everywhere: on this picture the weighted sum of {where}'s "
                f"channels is negative at every position, so no region adds evidence for "
                f"{label(target)} (Grad-CAM's ReLU keeps only positive evidence; the network "
                "may rest its score on channels being weak). Try another class or picture.")
    overlay = gradcam.upsample(cam, x.shape[-1])
    st.plotly_chart(fm.picture_figure(as_display(x), f"Grad-CAM for {label(target)} on {where}",
                                      overlay=overlay.numpy()), key=KEY + "cam")
    st.caption(f"Grad-CAM: the gradient of the {label(target)} score weights each channel of "
               f"the last convolutional layer ({where}); their weighted sum, after a ReLU, is "
               f"the map ({cam.shape[0]}×{cam.shape[1]}), stretched over the picture.")


@st.cache_data(max_entries=32, show_spinner=False)
def _cam(model_key: str, picture_key: str, target: int, _model, _x):
    return gradcam.grad_cam(_model, _x, target)
