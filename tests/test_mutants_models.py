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

from cnnviz.errors import ShapeError
from cnnviz.models import build
from cnnviz.models.arithmetic import output_shape, trace
from cnnviz.models.blocks import (ChainBlock, DenseBlock, Inception, Residual, Transition,
                                  VGGBlock, classifier, residual, runs_in_order, stem,
                                  transition_after)
from cnnviz.presets import PRESETS


def names(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_modules() if name]


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
    model = nn.Sequential(block)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 2, 8, 8))
    with pytest.raises(ShapeError) as caught:
        output_shape(model, (2, 8, 8))
    e = caught.value
    assert (e.layer, e.layer_type, e.direction) == ("0", "Residual", "other")
    assert e.reason == ("main path gives 2×4×4 but the shortcut gives 2×8×8; "
                        "they must match to be added")
    assert str(e) == f"Residual 0: {e.reason}"


def test_an_inception_whose_paths_disagree_names_the_block_and_every_size():
    """Kills Inception.shape_rule's message mutants (sizes None, joined with "XX, XX",
    o[2:] for o[1:], name, type, reason or direction None or altered)."""
    block = Inception(nn.Conv2d(2, 1, 1), nn.Conv2d(2, 1, 3), nn.Conv2d(2, 1, 1),
                      nn.Conv2d(2, 1, 1, stride=2))
    model = nn.Sequential(nn.Identity(), block)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 2, 5, 5))
    with pytest.raises(ShapeError) as caught:
        output_shape(model, (2, 5, 5))
    e = caught.value
    assert (e.layer, e.layer_type, e.direction) == ("1", "Inception", "other")
    assert e.reason == ("paths give different sizes (5×5, 3×3, 5×5, 3×3); "
                        "they must match to be concatenated")


def test_a_batchnorm1d_given_the_wrong_features_is_named_with_both_counts():
    """Kills Tracer._batchnorm1d's mutants (the message's name, type, reason, direction or
    shape None or altered) and its arithmetic text ("XXXX" for "")."""
    model = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12))
    with pytest.raises(RuntimeError, match="18"):
        model.train()(torch.randn(2, 2, 3, 3))  # torch refuses 18 features too
    with pytest.raises(ShapeError) as caught:
        output_shape(model, (2, 3, 3))
    e = caught.value
    assert (e.layer, e.layer_type, e.direction) == ("1", "BatchNorm1d", "other")
    assert e.reason == "expects 12 features but gets 18"
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
