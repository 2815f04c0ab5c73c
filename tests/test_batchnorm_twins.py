"""BatchNorm twins: every preset's twin builds, differs by the BatchNorm layers its sentence
names (γ and β: 2 parameters a channel) and comes back to the preset; ResNet and DenseNet say
why they have none; custom networks get a BatchNorm after each conv and back."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, assume, given, settings
from torch import nn

from cnnviz.batchnorm.twins import Twin, has_batch_norm, twin
from cnnviz.errors import CnnvizError
from cnnviz.models import build_meta
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec, LeNetSpec
from cnnviz.specs import custom as L
from tests.strategies import FAMILY_STRATEGIES


def params(spec) -> int:
    return sum(p.numel() for p in build_meta(spec).parameters())


def bn_channels(spec) -> int:
    return sum(m.num_features for m in build_meta(spec).modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm))


def bn_layers(spec) -> tuple[int, int]:
    modules = list(build_meta(spec).modules())
    return (sum(isinstance(m, nn.BatchNorm2d) for m in modules),
            sum(isinstance(m, nn.BatchNorm1d) for m in modules))


def conv_biases(spec) -> int:
    return sum(m.bias.numel() for m in build_meta(spec).modules()
               if isinstance(m, nn.Conv2d) and m.bias is not None)


def fmt(n: int) -> str:
    return f"+{n:,}" if n >= 0 else f"−{-n:,}"


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_has_a_twin_or_says_why_not(name):
    spec = PRESETS[name].spec
    result = twin(spec)
    assert isinstance(result, Twin) and result.what
    if spec.family in ("resnet", "densenet"):
        count = sum(bn_layers(spec))
        assert result == Twin(None, False, f"{spec.title}'s blocks always have BatchNorm "
                                           f"({count} BatchNorm layers here): {spec.title} "
                                           f"has no twin without it")
        return
    other = result.spec
    assert result.added == (not has_batch_norm(spec)) == has_batch_norm(other)
    (a2, a1), (b2, b1) = bn_layers(spec), bn_layers(other)
    added2, added1 = abs(b2 - a2), abs(b1 - a1)
    convs = sum(isinstance(m, nn.Conv2d) for m in build_meta(other).modules())
    assert added2 == convs > 1  # one BatchNorm2d after every convolution
    assert f"after each of the {convs} convolutions" in result.what
    if added1:
        assert f"BatchNorm1d after the {added1} hidden Linear layers" in result.what
    assert result.what.startswith("adds" if result.added else "removes the") or \
        spec.family == "lenet"
    # γ and β: 2 parameters a channel of every BatchNorm added or removed
    gamma_beta = 2 * (bn_channels(other) - bn_channels(spec))
    assert f"{fmt(gamma_beta)} parameters (γ and β)" in result.what
    difference = params(other) - params(spec)
    if spec.family == "googlenet":  # torchvision's BasicConv2d: no conv bias before a BN
        biases = conv_biases(other) - conv_biases(spec)
        assert biases == (-1 if result.added else 1) * sum(
            m.out_channels for m in build_meta(spec).modules() if isinstance(m, nn.Conv2d))
        assert difference == gamma_beta + biases
        assert f"({fmt(biases)} parameters; " in result.what
        assert result.what.endswith(f"{fmt(difference)} in all")
    elif spec.family != "lenet":
        assert difference == gamma_beta and "in all" not in result.what
    back = twin(other)
    assert back.spec == spec and back.added == (not result.added)


def test_lenet_and_the_books_batchnorm_lenet_are_twins():
    lenet, lenet_bn = PRESETS["lenet"].spec, PRESETS["lenet-bn"].spec
    there, back = twin(lenet), twin(lenet_bn)
    assert there.spec == lenet_bn and there.added
    assert back.spec == lenet and not back.added
    assert there.what == (
        "the book's BatchNorm LeNet (7.5, lenet-bn) adds BatchNorm2d after each of the 2 "
        "convolutions and BatchNorm1d after the 2 hidden Linear layers: +452 parameters (γ and "
        "β) and running statistics; the first conv's padding goes from 2 to 0, so the first "
        "Linear takes 256 features instead of 400 (−17,280 parameters): −16,828 in all")
    assert params(lenet_bn) - params(lenet) == -16_828
    assert 2 * bn_channels(lenet_bn) == 452  # 2·(6 + 16 + 120 + 84)
    assert back.what.startswith("the book's LeNet (6.6, lenet) removes the BatchNorm2d")


def test_a_lenet_of_ones_own_switches_its_knob():
    spec = LeNetSpec(activation="relu")
    result = twin(spec)
    assert result.spec == dataclasses.replace(spec, batch_norm=True) and result.added
    assert params(result.spec) - params(spec) == 2 * bn_channels(result.spec)
    assert result.what == ("adds BatchNorm2d after each of the 2 convolutions and BatchNorm1d "
                           "after the 2 hidden Linear layers: +452 parameters (γ and β) and "
                           "running statistics")
    assert twin(result.spec).spec == spec


def test_a_custom_network_gets_a_batchnorm_after_each_conv_and_in_its_blocks():
    spec = CustomSpec(1, 10, 28, (
        L.Conv(8, 3, padding=1), L.ReLU(), L.VGGBlockLayer(1, 8), L.NiNBlockLayer(8, 3, 1, 1),
        L.InceptionLayer(4, (4, 4), (4, 4), 4), L.Conv(4, 1), L.ReLU(), L.AdaptiveAvgPool(1),
        L.Flatten(), L.Linear(4, 10)))
    result = twin(spec)
    assert result.added
    layers = result.spec.layers
    assert [type(x).__name__ for x in layers[:2]] == ["Conv", "BatchNorm"]
    assert [type(x).__name__ for x in layers[-6:-4]] == ["Conv", "BatchNorm"]
    assert all(x.batch_norm for x in layers if hasattr(x, "batch_norm"))
    # 1 + 1 (VGG) + 3 (NiN) + 6 (Inception) + 1 convs; the Inception's lose their 6 × 4
    # biases (torchvision's BasicConv2d), the others keep theirs
    assert result.what == ("adds BatchNorm2d after each of the 12 convolutions: +136 "
                           "parameters (γ and β) and running statistics; the convolutions lose "
                           "their biases (−24 parameters; β shifts instead): +112 in all")
    assert twin(result.spec).spec == spec


def test_a_custom_network_with_some_batchnorm_loses_all_of_it():
    spec = CustomSpec(1, 10, 8, (L.Conv(8, 3, padding=1), L.BatchNorm(), L.ReLU(),
                                 L.Conv(8, 3, padding=1), L.ReLU(), L.Flatten(),
                                 L.Linear(512, 16), L.BatchNorm(), L.Linear(16, 10)))
    result = twin(spec)
    assert not result.added and not has_batch_norm(result.spec)
    assert not any(isinstance(x, L.BatchNorm) for x in result.spec.layers)
    assert result.what == ("removes the 1 BatchNorm2d layer and BatchNorm1d after the 1 hidden "
                           "Linear layer: −48 parameters (γ and β) and their running statistics")
    assert params(spec) - params(result.spec) == 2 * (8 + 16)


def test_custom_blocks_that_always_have_batchnorm_have_no_twin():
    spec = CustomSpec(1, 10, 16, (L.Conv(8, 3, padding=1), L.ResidualLayer(8),
                                  L.DenseBlockLayer(1, 4), L.TransitionLayer(6),
                                  L.AdaptiveAvgPool(1), L.Flatten(), L.Linear(6, 10)))
    result = twin(spec)
    assert result.spec is None and not result.added
    assert result.what.startswith("its dense_block, residual, transition layers always have "
                                  "BatchNorm (")


def test_a_spec_that_does_not_build_raises_a_cnnviz_error():
    with pytest.raises(CnnvizError):
        twin(CustomSpec(1, 10, 8, ()))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=FAMILY_STRATEGIES["lenet"] | FAMILY_STRATEGIES["alexnet"] | FAMILY_STRATEGIES["vgg"]
       | FAMILY_STRATEGIES["nin"] | FAMILY_STRATEGIES["googlenet"] | FAMILY_STRATEGIES["custom"]
       | FAMILY_STRATEGIES["resnet"] | FAMILY_STRATEGIES["densenet"])
def test_twins_of_generated_specs(spec):
    try:
        built = has_batch_norm(spec)
    except CnnvizError:
        assume(False)
    result = twin(spec)
    if result.spec is None:
        assert spec.family in ("resnet", "densenet", "custom")
        assert built or "no convolution" in result.what  # nothing to add BatchNorm after
        return
    assert has_batch_norm(result.spec) == result.added == (not built)
    gamma_beta = 2 * (bn_channels(result.spec) - bn_channels(spec))
    biases = conv_biases(result.spec) - conv_biases(spec)
    assert params(result.spec) - params(spec) == gamma_beta + biases
    if not built:  # adding then removing gives the network back
        assert twin(result.spec).spec == spec


def test_a_custom_network_with_nothing_to_switch_has_no_twin_and_says_why():
    from cnnviz.specs import CustomSpec
    from cnnviz.specs import custom as L
    only_bn = twin(CustomSpec(layers=(L.BatchNorm(),)))
    assert only_bn.spec is None and "made of BatchNorm layers only" in only_bn.what
    no_conv = twin(CustomSpec(layers=(L.MaxPool(1),)))
    assert no_conv.spec is None and no_conv.added
    assert no_conv.what == ("Custom network has no convolution (nor a block with one) to put "
                            "BatchNorm after, so it has no twin with BatchNorm")
