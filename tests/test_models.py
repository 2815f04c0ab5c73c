"""Builders: torchvision's parameter counts, the book's shapes per stage, no Lazy modules."""
from __future__ import annotations

import pytest
import torch
import torchvision.models as tv
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.models import build
from cnnviz.presets import PRESETS, get_preset
from cnnviz.specs import CustomSpec, LeNetSpec, ResNetSpec
from cnnviz.specs import custom as L


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


TORCHVISION = {
    "alexnet-imagenet": lambda: tv.alexnet(weights=None),
    "vgg11-imagenet": lambda: tv.vgg11(weights=None),
    "googlenet-imagenet": lambda: tv.googlenet(weights=None, aux_logits=False,
                                               init_weights=False),
    "resnet18-imagenet": lambda: tv.resnet18(weights=None),
    "densenet121-imagenet": lambda: tv.densenet121(weights=None),
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_imagenet_presets_have_torchvisions_parameter_count(name):
    with torch.device("meta"):
        reference = TORCHVISION[name]()
    ours = build(PRESETS[name].spec, device="meta")
    assert n_params(ours) == n_params(reference)
    # Same layer inventory too, not just the same total.
    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    for kind in kinds:
        assert (sum(isinstance(m, kind) for m in ours.modules())
                == sum(isinstance(m, kind) for m in reference.modules())), kind


@pytest.mark.parametrize("name", ["alexnet-imagenet", "resnet18-imagenet"])
def test_imagenet_presets_produce_1000_scores_on_the_cpu(name):
    model = build(PRESETS[name].spec).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def stage_shapes(name: str, size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Output shape of each top-level stage (b1, b2, ..., head) in a real CPU forward pass."""
    spec = PRESETS[name].spec
    size = size or spec.input_size
    model = build(spec).eval()
    shapes: dict[str, tuple[int, ...]] = {}
    for stage_name, stage in model.named_children():
        stage.register_forward_hook(
            lambda _m, _i, out, key=stage_name: shapes.__setitem__(key, tuple(out.shape[1:])))
    with torch.no_grad():
        model(torch.zeros(1, spec.in_channels, size, size))
    return shapes


BOOK_STAGES = {
    # d2l's printouts, stage by stage (LeNet and AlexNet grouped at each pooling layer).
    "lenet": {"b1": (6, 14, 14), "b2": (16, 5, 5), "head": (10,)},
    "lenet-bn": {"b1": (6, 12, 12), "b2": (16, 4, 4), "head": (10,)},
    "alexnet": {"b1": (96, 26, 26), "b2": (256, 12, 12), "b3": (256, 5, 5), "head": (10,)},
    "vgg": {"b1": (16, 112, 112), "b2": (32, 56, 56), "b3": (64, 28, 28),
            "b4": (128, 14, 14), "b5": (128, 7, 7), "head": (10,)},
    "nin": {"b1": (96, 26, 26), "b2": (256, 12, 12), "b3": (384, 5, 5), "b4": (10, 5, 5),
            "head": (10,)},
    "googlenet": {"b1": (64, 24, 24), "b2": (192, 12, 12), "b3": (480, 6, 6),
                  "b4": (832, 3, 3), "b5": (1024,), "head": (10,)},
    "resnet18": {"b1": (64, 24, 24), "b2": (64, 24, 24), "b3": (128, 12, 12),
                 "b4": (256, 6, 6), "b5": (512, 3, 3), "head": (10,)},
    "densenet": {"b1": (64, 24, 24), "b2": (96, 12, 12), "b3": (112, 6, 6),
                 "b4": (120, 3, 3), "b5": (248, 3, 3), "head": (10,)},
}


@pytest.mark.parametrize("name", list(BOOK_STAGES))
def test_book_presets_give_the_books_shapes_per_stage(name):
    assert stage_shapes(name) == BOOK_STAGES[name]


def test_resnet_at_224_matches_the_books_printout():
    assert stage_shapes("resnet18", 224) == {
        "b1": (64, 56, 56), "b2": (64, 56, 56), "b3": (128, 28, 28), "b4": (256, 14, 14),
        "b5": (512, 7, 7), "head": (10,)}


def test_book_parameter_counts():
    assert n_params(build(PRESETS["lenet"].spec, "meta")) == 61_706
    assert n_params(build(PRESETS["alexnet"].spec, "meta")) == 46_764_746


def test_notes_networks_follow_the_notes_layer_for_layer():
    alex = build(PRESETS["notes-alexnet"].spec)
    assert [type(m).__name__ for m in alex] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU",
        "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    assert (alex[0].kernel_size, alex[0].stride, alex[0].padding) == ((11, 11), (4, 4), (1, 1))
    assert (alex[12].in_features, alex[12].out_features) == (6400, 4096)
    nin = build(PRESETS["notes-nin"].spec)
    assert [type(m).__name__ for m in nin] == [
        "NiNBlock", "MaxPool2d", "NiNBlock", "MaxPool2d", "NiNBlock", "MaxPool2d", "Dropout",
        "NiNBlock", "AdaptiveAvgPool2d", "Flatten"]
    with torch.no_grad():
        assert nin.eval()(torch.zeros(1, 1, 224, 224)).shape == (1, 10)
        assert alex.eval()(torch.zeros(1, 1, 224, 224)).shape == (1, 10)


@pytest.mark.parametrize("name", list(PRESETS))
def test_no_lazy_modules(name):
    model = build(PRESETS[name].spec, device="meta")
    assert not any(isinstance(m, nn.modules.lazy.LazyModuleMixin) for m in model.modules())


def test_weights_are_xavier_initialised_with_zero_bias():
    model = build(PRESETS["lenet"].spec)
    conv = model.b1[0]
    bound = (6 / (1 * 25 + 6 * 25)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.std() > bound / 4
    assert torch.all(conv.bias == 0)


def test_building_on_meta_allocates_no_storage():
    model = build(PRESETS["vgg11-imagenet"].spec, device="meta")
    assert all(p.is_meta for p in model.parameters())


def test_custom_chain_errors_name_the_layer():
    spec = CustomSpec(layers=(L.Conv(8, 3), L.Flatten(), L.Conv(4, 3), L.BatchNorm(),
                              L.Linear(10, 10), L.ResidualLayer(16)))
    with pytest.raises(SpecError) as info:
        build(spec)
    assert [str(p) for p in info.value.problems] == [
        "layers[2]: conv needs a C×H×W feature map, but it comes after flatten; move it "
        "before the flatten",
        "layers[3]: batchnorm right after flatten: the number of features depends on the "
        "input size; put it after a linear layer",
        "layers[5]: residual needs a C×H×W feature map, but it comes after flatten; move it "
        "before the flatten",
    ]
    with pytest.raises(SpecError, match=r"layers\[1\]: linear needs flat features"):
        build(CustomSpec(layers=(L.Conv(8, 3), L.Linear(8, 10))))
    with pytest.raises(SpecError, match=r"layers\[1\]\.use_1x1conv: must be true when the "
                                        r"input channels \(8\) differ"):
        build(CustomSpec(layers=(L.Conv(8, 3), L.ResidualLayer(16))))
    with pytest.raises(SpecError, match=r"layers\[3\]\.in_features: the previous layer gives "
                                        r"20 features, not 30"):
        build(CustomSpec(layers=(L.Flatten(), L.Linear(5, 20), L.ReLU(), L.Linear(30, 2))))


def test_family_input_size_too_small_for_the_convolutions_is_a_spec_error():
    with pytest.raises(SpecError, match=r"input_size: 4 is too small for the convolutional "
                                        r"part: Conv2d b2.0: input 2×2 is smaller than "
                                        r"kernel 5"):
        build(LeNetSpec(input_size=4))


def test_bottleneck_resnet_widens_four_times():
    model = build(ResNetSpec(block="bottleneck", stages=((1, 16), (1, 32))), "meta")
    assert model.b2[0].out_channels == 64 and model.b3[0].out_channels == 128
    assert isinstance(model.b2[0].shortcut, nn.Identity)  # the stem's 64 channels = 4·16
    assert isinstance(model.b3[0].shortcut, nn.Sequential)  # 64 → 128 needs a projection
    wide = build(ResNetSpec(block="bottleneck", stages=((1, 32),)), "meta")
    assert isinstance(wide.b2[0].shortcut, nn.Sequential)  # 64 → 128


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(SpecError, match="unknown preset 'lenet5'; known presets: lenet, "):
        get_preset("lenet5")
