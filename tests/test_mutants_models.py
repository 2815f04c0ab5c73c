"""Models' behaviour the suite left unchecked, found by ``scripts/mutation models``: the layer
names a weights file and the inside views depend on, the messages the shape rules give when a
block's paths disagree, the seeded build, the transition that follows a dense block, and the
blocks' documented defaults.

Each test names the mutants it kills (docs/testing.md). Shapes are checked against real
forward passes of torch; names and counts are written out by hand.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.errors import ShapeError, SpecError
from cnnviz.models import build
from cnnviz.models.arithmetic import output_shape, trace
from cnnviz.models.blocks import (ChainBlock, DenseBlock, Inception, Residual, Transition,
                                  VGGBlock, classifier, dense_conv_block, last_conv, residual,
                                  runs_in_order, stem, transition_after)
from cnnviz.models.convert import custom_stages
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec, validate
from cnnviz.specs import custom as L


def names(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_modules() if name]


def refusal(model: nn.Module, shape, torch_refuses: bool = True) -> ShapeError:
    """The arithmetic's refusal, after checking that torch refuses the same input too (where
    it does: torch takes a flat batch for one unbatched map, and a Linear applies itself to
    a map's last side)."""
    if torch_refuses:
        with pytest.raises((RuntimeError, ValueError, IndexError)):
            model.eval()(torch.randn(1, *shape))
    with pytest.raises(ShapeError) as caught:
        output_shape(model, tuple(shape))
    return caught.value


def said(e: ShapeError) -> tuple[str, str, str, str]:
    return e.layer, e.layer_type, e.reason, e.direction


def test_a_residual_blocks_layer_names_are_those_of_its_weights_files():
    """Kills residual's name mutants ("conv1" → "XXconv1XX", "CONV1", … for every layer of
    the basic block, the bottleneck and the projection). The names are the weights files'
    keys (a file saved before a rename no longer loads) and the Connections view's labels."""
    basic = residual(4, 8, use_1x1conv=True, strides=2)
    assert names(basic) == ["body", "body.conv1", "body.bn1", "body.relu1", "body.conv2",
                            "body.bn2", "shortcut", "shortcut.conv", "act"]
    bottleneck = residual(16, 4, use_1x1conv=True, strides=2, bottleneck=True,
                          shortcut_batch_norm=True)
    assert names(bottleneck) == [
        "body", "body.conv1", "body.bn1", "body.relu1", "body.conv2", "body.bn2", "body.relu2",
        "body.conv3", "body.bn3", "shortcut", "shortcut.conv", "shortcut.bn", "act"]
    assert list(bottleneck.state_dict())[:2] == ["body.conv1.weight", "body.conv1.bias"]


def test_the_books_residual_block_is_the_default():
    """Kills residual's default mutants (use_1x1conv True, strides 2): ``residual(c, c)`` is
    the book's basic block, identity shortcut, same size out."""
    block = residual(3, 3)
    assert isinstance(block.shortcut, nn.Identity)
    assert block(torch.randn(2, 3, 6, 6)).shape == (2, 3, 6, 6)
    assert output_shape(block, (3, 6, 6)) == (3, 6, 6)


def test_stem_and_classifier_defaults():
    """Kills stem's ``bias=False`` default and classifier's defaults (activation "XXreluXX"
    or "RELU", dropout 1.0): the documented defaults are biased convs, ReLU and no dropout."""
    assert stem(3, 64)[0].bias is not None
    layers = classifier(10, (5,), 3)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear]


def test_runs_in_order_is_torchs_plain_containers_and_chain_blocks():
    """Kills runs_in_order's mutants (``and`` for ``or``, ``type(None)``, ``not in``)."""
    assert runs_in_order(nn.Sequential(nn.ReLU()))
    assert runs_in_order(nn.ModuleList([nn.ReLU()]))
    assert runs_in_order(VGGBlock(1, 1, 2))
    assert runs_in_order(Transition(4, 2))
    assert not runs_in_order(residual(3, 3))
    assert not runs_in_order(nn.Conv2d(1, 1, 1))

    class Doubled(nn.Sequential):  # a subclass with a forward of its own
        def forward(self, x):
            return 2 * super().forward(x)

    assert not runs_in_order(Doubled(nn.ReLU()))
    assert issubclass(VGGBlock, ChainBlock)


def test_a_residual_whose_paths_disagree_names_the_block_and_both_shapes():
    """Kills Residual.shape_rule's message mutants (name, type, reason or direction None or
    altered, a shape left out). The shortcut keeps 8×8, the main path halves it; torch
    refuses the sum too."""
    block = Residual(nn.Conv2d(2, 2, 3, stride=2, padding=1), nn.Identity())
    e = refusal(nn.Sequential(block), (2, 8, 8))
    assert said(e) == ("0", "Residual", "main path gives 2×4×4 but the shortcut gives 2×8×8; "
                                        "they must match to be added", "other")
    assert str(e) == f"Residual 0: {e.reason}"


def test_an_inception_whose_paths_disagree_names_the_block_and_every_size():
    """Kills Inception.shape_rule's message mutants (sizes None, joined with "XX, XX",
    o[2:] for o[1:], name, type, reason or direction None or altered)."""
    block = Inception(nn.Conv2d(2, 1, 1), nn.Conv2d(2, 1, 3), nn.Conv2d(2, 1, 1),
                      nn.Conv2d(2, 1, 1, stride=2))
    e = refusal(nn.Sequential(nn.Identity(), block), (2, 5, 5))
    assert said(e) == ("1", "Inception", "paths give different sizes (5×5, 3×3, 5×5, 3×3); "
                                         "they must match to be concatenated", "other")


def test_a_batchnorm1d_given_the_wrong_features_is_named_with_both_counts():
    """Kills Tracer._batchnorm1d's mutants (the message's name, type, reason, direction or
    shape None or altered) and its arithmetic text ("XXXX" for "")."""
    model = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12))
    assert said(refusal(model, (2, 3, 3))) == ("1", "BatchNorm1d",
                                               "expects 12 features but gets 18", "other")
    row = trace(model, (3, 2, 2))[-1]
    assert (row.type, row.output_shape, row.arithmetic) == ("BatchNorm1d", (12,), "")


def test_a_seeded_build_is_its_seed_alone_and_leaves_torchs_stream_alone():
    """Kills every _seeded mutant (no test reached it): the same seed gives the same
    weights, another seed others, torch's process-wide stream is neither seeded nor drawn
    from, and each layer starts as the book says: Xavier-uniform weights (within
    ±√(6/(fan_in + fan_out))), zero biases, BatchNorm's γ = 1, β = 0, running mean 0 and
    variance 1, on the CPU with real storage."""
    spec = PRESETS["lenet-bn"].spec
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b, c = build(spec, seed=5), build(spec, seed=5), build(spec, seed=6)
    assert torch.equal(torch.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if k.endswith("weight"))
    norms = 0
    for module in a.modules():
        for tensor in module.parameters(recurse=False):
            assert tensor.device.type == "cpu" and not tensor.is_meta
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight.detach()
            fan_in = w.shape[1] * w[0, 0].numel()
            fan_out = w.shape[0] * w[0, 0].numel()
            bound = (6 / (fan_in + fan_out)) ** 0.5
            assert 0 < float(w.abs().max()) <= bound
            assert float(w.abs().max()) > 0.5 * bound  # drawn over the whole range
            if module.bias is not None:
                assert not module.bias.any()
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            norms += 1
            assert bool((module.weight == 1).all()) and not module.bias.any()
            assert not module.running_mean.any() and bool((module.running_var == 1).all())
            assert int(module.num_batches_tracked) == 0
    assert norms > 0
    x = torch.randn(2, spec.in_channels, spec.input_size, spec.input_size)
    assert torch.isfinite(a.eval()(x)).all()


def test_a_seeded_build_on_a_named_device_gets_its_storage_there():
    """Kills _seeded's device mutants (None for the device, "cpu" forced the other way)."""
    model = build(PRESETS["lenet"].spec, device="cpu", seed=1)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    meta = build(PRESETS["lenet"].spec, device="meta")
    assert all(p.is_meta for p in meta.parameters())


def test_the_transition_after_each_dense_block_and_none_elsewhere():
    """Kills every transition_after mutant (no test reached it): DenseNet's stages b2..b4
    end in a dense block and its transition, b5's dense block has none after it; a path
    that is no child, a transition itself and a module at the top level have none."""
    model = build(PRESETS["densenet"].spec, device="meta")
    assert [n for n, _ in model.named_children()] == ["b1", "b2", "b3", "b4", "b5", "head"]
    for stage in ("b2", "b3", "b4"):
        assert isinstance(model.get_submodule(f"{stage}.dense"), DenseBlock)
        assert transition_after(model, f"{stage}.dense") == f"{stage}.transition"
    assert isinstance(model.get_submodule("b5.dense"), DenseBlock)
    assert transition_after(model, "b5.dense") is None
    assert transition_after(model, "b2.transition") is None
    assert transition_after(model, "b2.nothing") is None
    assert transition_after(model, "b1") is None  # followed by b2, no Transition
    top = nn.Sequential(DenseBlock([nn.Conv2d(2, 2, 1)]), Transition(4, 2))
    assert transition_after(top, "0") == "1"
    assert transition_after(top, "1") is None


# -- the size arithmetic's refusals in words (arithmetic.py) -----------------------------------

def test_a_dilated_kernel_too_large_names_its_span_per_side():
    """Kills _too_small's span mutants (dilation[1] for dilation[0], k + 1 for k − 1): a 3×3
    kernel with dilation 2×3 spans 5×7 pixels."""
    conv = nn.Conv2d(1, 1, 3, dilation=(2, 3))
    assert said(refusal(nn.Sequential(conv), (1, 6, 6))) == (
        "0", "Conv2d", "input 6×6 is smaller than kernel 3 (spanning 5×7 with dilation 2×3)",
        "small")
    conv = nn.Conv2d(1, 1, 3, dilation=2)
    assert refusal(nn.Sequential(conv), (1, 4, 4)).reason == (
        "input 4×4 is smaller than kernel 3 (spanning 5 with dilation 2)")


@pytest.mark.parametrize("layer, kind", [
    (nn.AdaptiveAvgPool2d(1), "AdaptiveAvgPool2d"), (nn.MaxPool2d(2), "MaxPool2d"),
    (nn.AvgPool2d(2), "AvgPool2d"), (nn.BatchNorm2d(8), "BatchNorm2d"),
])
def test_a_layer_that_needs_a_map_after_flatten_says_so(layer, kind):
    """Kills the flat-features refusals' mutants of adaptive pooling, pooling and BatchNorm2d
    (name, type, reason or direction None, dropped or altered)."""
    e = refusal(nn.Sequential(nn.Flatten(), layer), (2, 2, 2),
                torch_refuses=kind != "AdaptiveAvgPool2d")
    assert (e.layer, e.layer_type, e.direction) == ("1", kind, "other")
    if kind != "BatchNorm2d":
        assert e.reason == "needs a C×H×W feature map but gets flat features"


def test_adaptive_pooling_keeps_a_side_given_as_none():
    """Kills _adaptive's ``oh or shape[2]``: (None, 2) keeps the height of a 4×6 map (the
    arithmetic crashed on a None side before this test)."""
    pool = nn.AdaptiveAvgPool2d((None, 2))
    assert pool(torch.randn(1, 3, 4, 6)).shape == (1, 3, 4, 2)
    assert output_shape(nn.Sequential(pool), (3, 4, 6)) == (3, 4, 2)


def test_pooling_with_dilation_and_too_much_padding():
    """Kills _pool's mutants: the dilation read from another object (so ignored), the
    padding refusal's type and reason."""
    pool = nn.MaxPool2d(3, dilation=2)
    assert pool(torch.randn(1, 1, 10, 10)).shape[-2:] == (2, 2)
    assert output_shape(nn.Sequential(pool), (1, 10, 10)) == (1, 2, 2)
    e = refusal(nn.Sequential(nn.MaxPool2d(2, padding=2)), (1, 8, 8))
    assert said(e) == ("0", "MaxPool2d", "padding 2 is more than half the kernel 2", "other")


def test_a_linear_given_a_map_or_the_wrong_count_says_which():
    """Kills _linear's mutants (the Flatten hint, a detail "XXXX" where nothing was
    flattened)."""
    e = refusal(nn.Sequential(nn.Linear(3, 2)), (4, 3, 3), torch_refuses=False)
    assert said(e) == ("0", "Linear", "gets a 4×3×3 feature map; add a Flatten before it",
                       "other")
    e = refusal(nn.Sequential(nn.Linear(6, 4), nn.Linear(5, 2)), (6,))
    assert said(e) == ("1", "Linear", "expects 5 input features but gets 4", "small")


def test_layers_that_keep_the_shape_write_no_arithmetic():
    """Kills the "XXXX" mutants of the arithmetic text of BatchNorm2d, of a Flatten of what is
    already flat, and of the shape-keeping layers (ReLU)."""
    rows = trace(nn.Sequential(nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Flatten()),
                 (2, 3, 3))
    assert [(r.type, r.arithmetic) for r in rows] == [
        ("BatchNorm2d", ""), ("ReLU", ""), ("Flatten", "2·3·3 = 18"), ("Flatten", "")]


def test_a_dense_block_whose_conv_changes_the_size_names_it():
    """Kills DenseBlock.shape_rule's message mutants."""
    block = DenseBlock([nn.Conv2d(2, 2, 1), nn.Conv2d(4, 2, 3)])
    e = refusal(nn.Sequential(block), (2, 5, 5))
    assert said(e) == ("0", "DenseBlock", "conv block 1 changes the size from 5×5 to 3×3",
                       "other")


def test_a_dense_conv_block_with_and_without_its_bottleneck():
    """Kills dense_conv_block's mutants (default bottleneck 1, the bottleneck's layers
    replaced instead of extended): BN-ReLU-conv, or BN-ReLU-1×1 conv to 4·k, then BN-ReLU-3×3."""
    plain = dense_conv_block(4, 2)
    assert [type(m) for m in plain] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
    bc = dense_conv_block(4, 2, bottleneck_size=4)
    assert [type(m) for m in bc] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d] * 2
    assert [(m.in_channels, m.out_channels, m.kernel_size) for m in bc if
            isinstance(m, nn.Conv2d)] == [(4, 8, (1, 1)), (8, 2, (3, 3))]


def test_last_conv_of_a_module_without_one_names_its_type():
    with pytest.raises(ValueError, match="^ReLU has no convolution to give its channels$"):
        last_conv(nn.ReLU())


def test_a_custom_specs_stages_are_its_numbered_layers_and_a_bad_one_is_refused():
    """Kills custom_stages's mutants (stage names "None", SpecError without its problems)."""
    layers = (L.Conv(4, 3), L.ReLU(), L.Flatten(), L.Linear(10, 10))
    spec = CustomSpec(1, 10, 8, layers)
    assert custom_stages(spec) == [("0", (layers[0],)), ("1", (layers[1],)),
                                   ("2", (layers[2],)), ("3", (layers[3],))]
    bad = CustomSpec(1, 10, 8, (L.Conv(0, 3), L.Flatten(), L.Linear(10, 10)))
    with pytest.raises(SpecError) as caught:
        custom_stages(bad)
    assert caught.value.problems and caught.value.problems == validate(bad)


@pytest.mark.parametrize("bottleneck, width", [
    (False, "num_channels (8)"), (True, "4 × num_channels (32)")])
def test_a_residual_that_cannot_add_without_a_projection_names_its_width(bottleneck, width):
    """Kills _layer's mutant that always names the bottleneck's width."""
    spec = CustomSpec(1, 10, 8, (L.Conv(4, 3, padding=1),
                                 L.ResidualLayer(8, bottleneck=bottleneck),
                                 L.Flatten(), L.Linear(10, 10)))
    with pytest.raises(SpecError) as caught:
        build(spec, device="meta")
    problem, = caught.value.problems
    assert problem.path == "layers[1].use_1x1conv"
    assert problem.message == (f"must be true when the input channels (4) differ from {width}: "
                               "x and f(x) must have one shape to be added")


def test_a_conv_that_cannot_run_says_why():
    """Kills _conv's and _needs_map's message mutants: string padding, a kernel larger than
    the map ("small"), a conv after Flatten, the wrong number of input channels."""
    e = refusal(nn.Sequential(nn.Conv2d(1, 1, 3, padding="same")), (1, 2, 2),
                torch_refuses=False)
    assert said(e) == ("0", "Conv2d", "string padding is not supported", "other")
    e = refusal(nn.Sequential(nn.Conv2d(1, 1, 5)), (1, 4, 4))
    assert said(e) == ("0", "Conv2d", "input 4×4 is smaller than kernel 5", "small")
    e = refusal(nn.Sequential(nn.Flatten(), nn.Conv2d(1, 1, 1)), (2, 3, 3))
    assert said(e) == ("1", "Conv2d", "needs a C×H×W feature map but gets 18 flat features "
                                      "(it comes after Flatten)", "other")
    e = refusal(nn.Sequential(nn.ReLU(), nn.Conv2d(3, 1, 1)), (1, 3, 3))
    assert said(e) == ("1", "Conv2d", "expects 3 input channels but gets 1", "other")


def test_a_conv_on_a_map_that_is_not_square_writes_each_side():
    rows = trace(nn.Sequential(nn.Conv2d(1, 2, 3)), (1, 8, 6))
    assert rows[0].arithmetic == "H: ⌊(8 − 3) / 1⌋ + 1 = 6; W: ⌊(6 − 3) / 1⌋ + 1 = 4"
    assert trace(nn.Sequential(nn.Conv2d(1, 2, 3)), (1, 8, 8))[0].arithmetic == \
        "⌊(8 − 3) / 1⌋ + 1 = 6"


def test_a_kernel_not_square_with_one_dilation_names_both_spans():
    """Kills _too_small's ``spans[1] == spans[1]``: a 3×5 kernel with dilation 2 spans 5×9."""
    e = refusal(nn.Sequential(nn.Conv2d(1, 1, (3, 5), dilation=2)), (1, 6, 6))
    assert e.reason == "input 6×6 is smaller than kernel 3×5 (spanning 5×9 with dilation 2×2)"


def test_the_transition_after_is_the_next_sibling_not_the_last():
    """Kills transition_after's ``index − 1`` (the slice then starts at the last sibling)."""
    model = nn.Sequential(DenseBlock([nn.Conv2d(2, 2, 1)]), Transition(4, 2), nn.ReLU())
    assert transition_after(model, "0") == "1"


def test_a_module_with_no_channel_layer_names_its_type():
    from cnnviz.models.blocks import in_channels
    with pytest.raises(ValueError, match="^ReLU has no layer that fixes its input channels$"):
        in_channels(nn.ReLU())


def test_a_container_with_a_forward_but_no_shape_rule_is_refused_not_guessed():
    """Kills _container's message mutants and the container rows' "XXXX" arithmetic."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(self.conv(x))

    with pytest.raises(ShapeError) as caught:
        output_shape(nn.Sequential(Twice()), (1, 4, 4))
    assert said(caught.value) == (
        "0", "Twice", "cnnviz cannot compute this layer's output size (a container needs a "
                      "shape_rule beside its forward)", "other")
    rows = trace(nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 3))), (1, 4, 4))
    assert [(r.name, r.arithmetic) for r in rows] == [("0", ""),
                                                      ("0.0", "⌊(4 − 3) / 1⌋ + 1 = 2")]


def test_pytorch_refusing_to_build_is_one_problem_with_its_first_line(monkeypatch):
    """Kills build's mutants of its refusal (SpecError without problems, the message None)."""
    from cnnviz.models import registry

    def too_big(spec):
        raise RuntimeError("[enforce fail] cannot allocate\nmore detail")

    monkeypatch.setitem(registry._BUILDERS, "lenet", too_big)
    with pytest.raises(SpecError) as caught:
        build(PRESETS["lenet"].spec)
    problem, = caught.value.problems
    assert (problem.path, problem.message) == (
        "", "PyTorch cannot build this network: [enforce fail] cannot allocate")
