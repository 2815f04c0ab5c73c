"""The generated PyTorch source is the network cnnviz builds: same keys, shapes and outputs."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from torch import nn

from cnnviz.codegen import leaf_source, pytorch_source
from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import valid_sizes
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from tests.strategies import custom_specs

# Real forward passes at the default size stay fast for these; the 224 ones compare on meta.
SMALL = ["lenet", "lenet-bn", "nin", "googlenet", "resnet18", "densenet", "notes-nin"]


def generated(spec) -> dict:
    """The namespace of the generated module, executed fresh."""
    source = pytorch_source(spec)
    namespace: dict = {"__name__": "generated"}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace


def assert_same_structure(ours: nn.Module, theirs: nn.Module) -> None:
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_generates_the_same_network(name):
    spec = PRESETS[name].spec
    namespace = generated(spec)
    assert namespace["INPUT_SHAPE"] == (1, spec.in_channels, spec.input_size, spec.input_size)
    if name in SMALL:
        model = namespace["build_model"]().eval()
        assert_same_structure(model, build(spec))
        expected = build(spec).eval()(torch.zeros(namespace["INPUT_SHAPE"])).shape
        with torch.no_grad():
            assert model(torch.zeros(namespace["INPUT_SHAPE"])).shape == expected
    else:  # 224-size networks: structure and output shape without allocating weights
        with torch.device("meta"):
            model = namespace["build_model"]()
        reference = build(spec, device="meta")
        assert_same_structure(model, reference)
        x = torch.empty(namespace["INPUT_SHAPE"], device="meta")
        assert model.eval()(x).shape == reference.eval()(x).shape


@pytest.mark.parametrize("name", list(PRESETS))
def test_source_is_standalone_and_names_the_network(name):
    spec = PRESETS[name].spec
    source = pytorch_source(spec)
    tree = ast.parse(source)
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in ([ast.alias(node.module)] if isinstance(node, ast.ImportFrom)
                              else node.names)}
    assert imported <= {"torch", "collections"}
    params = sum(p.numel() for p in build(spec, device="meta").parameters())
    first_line = ast.get_docstring(tree).splitlines()[0]
    assert f"{params:,} parameters" in first_line
    assert f"(1, {spec.in_channels}, {spec.input_size}, {spec.input_size})" in first_line
    defined = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert {"build_model", "init_weights"} <= defined
    # only the block classes the network uses are defined
    used = {type(m).__name__ for m in build(spec, device="meta").modules()}
    assert defined - {"build_model", "init_weights"} == used & {
        "Inception", "Residual", "DenseBlock"}


@pytest.mark.parametrize("name", ["lenet-bn", "resnet18"])
def test_a_cnnviz_state_dict_loads_and_gives_identical_outputs(name):
    spec = PRESETS[name].spec
    reference = build(spec)
    with torch.no_grad():  # non-trivial running statistics, so eval mode really uses them
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model = generated(spec)["build_model"]()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, spec.in_channels, spec.input_size, spec.input_size)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=0, atol=0)


def test_generated_model_uses_the_books_initialisation():
    model = generated(PRESETS["lenet"].spec)["build_model"]()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(module.bias) == 0
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(module.weight)
            bound = (6 / (fan_in + fan_out)) ** 0.5
            assert module.weight.abs().max() <= bound


def test_generated_files_run_as_scripts(tmp_path):
    # one block class each: plain, Inception, Residual, DenseBlock; run side by side because
    # every process pays for importing torch
    names = ["lenet", "googlenet", "resnet18", "densenet"]
    runs = {}
    for name in names:
        path = tmp_path / f"{name}.py"
        path.write_text(pytorch_source(PRESETS[name].spec))
        runs[name] = subprocess.Popen([sys.executable, str(path)], cwd=tmp_path, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, process in runs.items():
        stdout, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, f"{name}: {stderr}"
        spec = PRESETS[name].spec
        params = sum(p.numel() for p in build(spec, device="meta").parameters())
        assert f"output shape: (1, {spec.num_classes})" in stdout, name
        assert f"parameters: {params}" in stdout, name


def test_each_layer_of_every_preset_rebuilds_from_its_source():
    checked = set()
    for preset in PRESETS.values():
        for module in build(preset.spec, device="meta").modules():
            source = leaf_source(module) if not list(module.children()) else None
            if source is None or source in checked:
                continue
            rebuilt = eval(source, {"nn": nn})
            assert type(rebuilt) is type(module), source
            assert rebuilt.extra_repr() == module.extra_repr(), source
            checked.add(source)
    assert len(checked) > 50


@pytest.mark.parametrize("layer", [
    nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
    nn.MaxPool2d((2, 3), stride=(1, 2), padding=(0, 1), dilation=2, ceil_mode=True),
    nn.Conv2d(3, 4, (3, 5), padding="same", dilation=2, groups=1, bias=False),
    nn.GELU("tanh"), nn.Dropout(0.3), nn.Tanh(), nn.AdaptiveAvgPool2d((6, 7)),
    nn.BatchNorm1d(7, eps=1e-3, momentum=0.2), nn.Flatten(start_dim=2),
])
def test_non_default_arguments_survive(layer):
    rebuilt = eval(leaf_source(layer), {"nn": nn})
    assert vars(rebuilt).keys() == vars(layer).keys()
    for key, value in vars(layer).items():
        if not key.startswith("_"):
            assert getattr(rebuilt, key) == value, key


def test_unknown_layers_are_refused_not_guessed():
    with pytest.raises(TypeError, match="LSTM"):
        leaf_source(nn.LSTM(2, 3))


def test_avg_pool_ceil_mode_changes_the_output_and_is_kept():
    spec = CustomSpec(1, 10, 7, (L.AvgPool(2, 2, 0, True), L.Flatten()))
    model = generated(spec)["build_model"]()
    assert model(torch.zeros(1, 1, 7, 7)).shape == build(spec)(torch.zeros(1, 1, 7, 7)).shape


@settings(max_examples=15)
@given(custom_specs())
def test_random_custom_specs(spec):
    model = generated(spec)["build_model"]()
    reference = build(spec)
    assert_same_structure(model, reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    size = valid_sizes(spec, max_size=64).min  # the spec's own size may not run
    if size is None:
        return
    x = torch.randn(2, spec.in_channels, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), rtol=0, atol=0)
